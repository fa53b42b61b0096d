"""Without this, ``cargohold.Registry("s3://BUCKET/PREFIX")`` could quietly open a local
directory named ``s3:`` instead of the bucket. Runs against moto's S3 server
(``$CARGOHOLD_MOTO_SERVER``, else ``moto_server`` on the PATH); a missing one fails."""

import hashlib
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

import cargohold


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto():
    binary = os.environ.get("CARGOHOLD_MOTO_SERVER") or shutil.which("moto_server")
    assert binary, "moto_server is missing: scripts/test-all.sh installs it"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not listen"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_a_registry_opens_on_a_bucket(moto, monkeypatch, tmp_path):
    req = urllib.request.Request(f"{moto}/images", method="PUT")
    urllib.request.urlopen(req).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.chdir(tmp_path)
    data = b"layer bytes" * 1000
    with cargohold.Registry("s3://images/team") as reg:
        desc = reg.put_blob("lib/app", data)
    assert desc.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    # A second handle sees it: it is in the bucket, not in a local directory.
    with cargohold.Registry("s3://images/team") as again:
        assert again.read_blob("lib/app", desc.digest) == data
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(cargohold.NotFound):
        cargohold.Registry("s3://no-such-bucket/x")


@pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
def test_a_path_object_that_folded_a_location_is_refused(scheme, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folded = pathlib.Path(f"{scheme}://bucket/prefix")
    assert str(folded) == f"{scheme}:/bucket/prefix"
    with pytest.raises(ValueError, match="pass the location as a str"):
        cargohold.Registry(folded)
    assert not (tmp_path / f"{scheme}:").exists(), "no local directory was made"


def test_a_path_object_is_a_local_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A directory whose name merely starts like a scheme stays a directory.
    with cargohold.Registry(pathlib.Path("s3-cache") / "reg") as reg:
        reg.put_blob("lib/app", b"x")
    assert (tmp_path / "s3-cache" / "reg" / "docker" / "registry" / "v2").is_dir()
