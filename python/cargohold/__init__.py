"""cargohold: container storage without a daemon, from Python.

Three stores, each a directory that several processes may share at once:

- :class:`LayerStore`: image layers (applied from OCI layer tars) and writable
  container layers on top of them, mounted as one root filesystem;
- :class:`VolumeStore`: named volumes in Docker's local-driver layout;
- :class:`Registry`: blobs, manifests and tags in distribution registry:2's layout.

Every storage call releases the GIL, so threads run in parallel. Data can be given as
bytes, a path, or a binary file object (read in chunks with ``.read(n)``).

Errors raised by cargohold are subclasses of :class:`cargohold.Error`, one per kind of
failure shared by every tier (``NotFound``, ``DigestMismatch``, ``PathEscape``,
``InUse``, ...). Each carries ``kind`` (a stable lower-case name), ``op`` and
``context``. Wrong argument types raise ``TypeError``; a closed store ``ValueError``.
"""

from ._cargohold import (  # noqa: F401
    __version__,
    Error,
    NotFound,
    AlreadyExists,
    InvalidArgument,
    DigestMismatch,
    PathEscape,
    InUse,
    Corrupt,
    Unsupported,
    Conflict,
    LimitExceeded,
    PermissionDenied,
    IoError,
    digest_bytes,
    parse_digest,
    LayerStore,
    Layer,
    Mount,
    Change,
    VolumeStore,
    Volume,
    PruneReport,
    Registry,
    Descriptor,
    Upload,
    BlobReader,
    Transfer,
)

__all__ = [
    "__version__",
    "Error",
    "NotFound",
    "AlreadyExists",
    "InvalidArgument",
    "DigestMismatch",
    "PathEscape",
    "InUse",
    "Corrupt",
    "Unsupported",
    "Conflict",
    "LimitExceeded",
    "PermissionDenied",
    "IoError",
    "digest_bytes",
    "parse_digest",
    "LayerStore",
    "Layer",
    "Mount",
    "Change",
    "VolumeStore",
    "Volume",
    "PruneReport",
    "Registry",
    "Descriptor",
    "Upload",
    "BlobReader",
    "Transfer",
]
