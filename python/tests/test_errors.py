"""Without these, Python callers could not catch cargohold failures by kind."""

import hashlib

import pytest

import cargohold


def test_digest_bytes_matches_hashlib():
    data = b"cargohold" * 1000
    assert cargohold.digest_bytes(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert cargohold.digest_bytes(data, "sha512") == "sha512:" + hashlib.sha512(data).hexdigest()


@pytest.mark.parametrize(
    "bad,exc",
    [
        ("", cargohold.InvalidArgument),
        ("sha256:abc", cargohold.InvalidArgument),
        ("sha256:" + "A" * 64, cargohold.InvalidArgument),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", cargohold.Unsupported),
    ],
)
def test_bad_digests_raise_the_kind_of_error(bad, exc):
    with pytest.raises(exc) as info:
        cargohold.parse_digest(bad)
    assert isinstance(info.value, cargohold.Error)
    assert info.value.kind in ("invalid_argument", "unsupported")
    assert info.value.op == "parse digest"


def test_every_kind_is_an_error_subclass():
    kinds = [
        cargohold.NotFound, cargohold.AlreadyExists, cargohold.InvalidArgument,
        cargohold.DigestMismatch, cargohold.PathEscape, cargohold.InUse, cargohold.Corrupt,
        cargohold.Unsupported, cargohold.Conflict, cargohold.LimitExceeded,
        cargohold.PermissionDenied, cargohold.IoError,
    ]
    assert len(set(kinds)) == 12
    for k in kinds:
        assert issubclass(k, cargohold.Error)
    assert issubclass(cargohold.Error, Exception)
