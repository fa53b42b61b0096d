"""cargohold: container storage without a daemon.

Errors raised by cargohold are subclasses of :class:`cargohold.Error`, one per kind of
failure shared by every tier (``NotFound``, ``DigestMismatch``, ``PathEscape``,
``InUse``, ...). Each carries ``kind`` (a stable lower-case name), ``op`` and
``context``.
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
]
