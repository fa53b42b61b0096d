"""Fixtures the binding tests share: small layer tars built with ``tarfile``."""

import io
import os
import tarfile

import pytest


def make_tar(entries):
    """A tar (bytes) from ``(name, kind, payload)`` entries: kind is "file" (payload
    bytes), "dir", "symlink" (payload target) or "link" (payload: the linked name)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "file":
                info.size = len(payload)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(payload))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
            elif kind == "link":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
            else:
                raise ValueError(kind)
            tar.addfile(info)
    return buf.getvalue()


def require_root():
    """Mounting needs root: fail loudly, never skip."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts filesystems and must run as root")


@pytest.fixture
def base_tar():
    return make_tar(
        [
            ("etc", "dir", None),
            ("etc/hostname", "file", b"cargohold\n"),
            ("bin", "dir", None),
            ("bin/tool", "file", b"#!/bin/sh\necho hi\n"),
            ("bin/alias", "symlink", "tool"),
        ]
    )


@pytest.fixture
def child_tar():
    return make_tar(
        [
            ("etc", "dir", None),
            ("etc/motd", "file", b"welcome\n"),
            ("etc/.wh.hostname", "file", b""),
        ]
    )
