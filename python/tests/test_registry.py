"""Without these, Python callers could store blobs under digests they do not have, lose
an upload's bytes, or read a half-pushed image when several processes push at once."""

import hashlib
import io
import json
import multiprocessing
import os

import pytest

import cargohold

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


@pytest.fixture
def reg(tmp_path):
    with cargohold.Registry(tmp_path / "registry") as r:
        yield r


def push_image(reg, repo, tag, layers):
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    cfg = reg.put_blob(repo, config)
    descs = [reg.put_blob(repo, l) for l in layers]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cfg.digest,
                "size": cfg.size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d.digest,
                    "size": d.size,
                }
                for d in descs
            ],
        }
    ).encode()
    return manifest, reg.put_manifest(repo, tag, manifest), config


def test_blobs_from_bytes_file_and_path(reg, tmp_path):
    data = os.urandom(300_000)
    d = reg.put_blob("lib/app", data)
    assert isinstance(d, cargohold.Descriptor)
    assert d.digest == sha256(data) and d.size == len(data)
    assert reg.stat_blob("lib/app", d.digest) == d
    assert reg.read_blob("lib/app", d.digest) == data
    assert reg.put_blob("lib/app", io.BytesIO(data)) == d
    p = tmp_path / "blob"
    p.write_bytes(data)
    assert reg.put_blob("lib/other", p, digest=d.digest).digest == d.digest
    with reg.open_blob("lib/app", d.digest, offset=10, length=100) as r:
        assert r.read(40) + r.read() == data[10:110]
        assert r.read() == b""
    with pytest.raises(cargohold.InvalidArgument):
        reg.open_blob("lib/app", d.digest, offset=len(data) + 1)
    with pytest.raises(cargohold.NotFound):
        reg.stat_blob("lib/none", d.digest)


def test_a_known_blob_put_by_digest_is_linked_without_reading(reg):
    data = b"layer bytes" * 1000
    d = reg.put_blob("lib/app", data)

    class Unreadable:
        def read(self, n=-1):
            raise AssertionError("read although the registry holds the blob")

    assert reg.put_blob("lib/other", Unreadable(), digest=d.digest) == d
    assert reg.read_blob("lib/other", d.digest) == data


def test_digest_mismatch_keeps_nothing(reg):
    wrong = sha256(b"something else")
    with pytest.raises(cargohold.DigestMismatch) as info:
        reg.put_blob("lib/app", b"payload", digest=wrong)
    assert info.value.kind == "digest_mismatch"
    for digest in (wrong, sha256(b"payload")):
        with pytest.raises(cargohold.NotFound):
            reg.stat_blob("lib/app", digest)


def test_chunked_upload_resumed_by_another_handle(reg, tmp_path):
    data = os.urandom(3 * 100_000)
    up = reg.start_upload("lib/app")
    assert up.append(data[:100_000]) == 100_000
    with cargohold.Registry(tmp_path / "registry") as other:
        again = other.resume_upload("lib/app", up.id)
        assert again.offset == 100_000
        again.append(io.BytesIO(data[100_000:200_000]))
    assert up.append(data[200_000:]) == len(data)
    assert up.digest() == sha256(data)
    d = up.commit(sha256(data), size=len(data))
    assert reg.read_blob("lib/app", d.digest) == data


def test_upload_commit_with_wrong_digest_and_cancel(reg):
    up = reg.start_upload("lib/app")
    up.append(b"abc")
    with pytest.raises(cargohold.DigestMismatch):
        up.commit(sha256(b"abd"))
    with pytest.raises(cargohold.NotFound):
        reg.stat_blob("lib/app", sha256(b"abc"))
    up2 = reg.start_upload("lib/app")
    up2.append(b"xyz")
    up2.cancel()
    with pytest.raises(cargohold.NotFound):
        reg.resume_upload("lib/app", up2.id)


def test_manifests_tags_catalog(reg):
    manifest, digest, _ = push_image(reg, "lib/app", "v1", [b"layer-1", b"layer-2"])
    assert digest == sha256(manifest)
    assert reg.get_manifest("lib/app", "v1") == (manifest, OCI_MANIFEST, digest)
    assert reg.get_manifest("lib/app", digest)[2] == digest
    reg.tag("lib/app", "latest", digest)
    assert reg.tags("lib/app") == ["latest", "v1"]
    reg.untag("lib/app", "latest")
    assert reg.tags("lib/app") == ["v1"]
    assert reg.catalog() == ["lib/app"]
    with pytest.raises(cargohold.NotFound):
        reg.get_manifest("lib/app", "v9")
    with pytest.raises(cargohold.DigestMismatch):
        reg.put_manifest("lib/app", sha256(b"x"), manifest)
    dangling = manifest.replace(sha256(b"layer-1").encode(), sha256(b"gone").encode())
    with pytest.raises(cargohold.NotFound):
        reg.put_manifest("lib/app", "broken", dangling)
    with pytest.raises(cargohold.InvalidArgument):
        reg.put_manifest("lib/app", "v2", b"{not json")


@pytest.mark.parametrize("repo", ["", "UPPER/case", "a//b", "../x"])
def test_bad_repository_names(reg, repo):
    with pytest.raises(cargohold.InvalidArgument):
        reg.put_blob(repo, b"x")


def test_bad_types_and_digests(reg):
    with pytest.raises(TypeError):
        reg.put_blob("lib/app", 42)
    with pytest.raises(TypeError):
        reg.put_manifest("lib/app", "v1", "text, not bytes")
    with pytest.raises(cargohold.InvalidArgument):
        reg.stat_blob("lib/app", "sha256:short")
    with pytest.raises(cargohold.InvalidArgument):
        reg.tag("lib/app", "bad tag!", sha256(b"x"))


def test_oci_layout_round_trip_with_progress(reg, tmp_path):
    layers = [os.urandom(50_000), os.urandom(70_000)]
    _, digest, config = push_image(reg, "lib/app", "v1", layers)
    total = len(config) + sum(len(l) for l in layers)
    calls = []
    t = reg.export_oci("lib/app", "v1", tmp_path / "oci", "v1", progress=lambda d, n: calls.append((d, n)))
    assert isinstance(t, cargohold.Transfer) and t.digest == digest
    assert t.blobs_copied == 3 and t.bytes == total
    assert [n for _, n in calls] == [total] * 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1][0] == total
    assert json.loads((tmp_path / "oci/index.json").read_text())["manifests"][0]["digest"] == digest
    with cargohold.Registry(tmp_path / "other") as other:
        calls.clear()
        t = other.import_oci(tmp_path / "oci", "copy/app", "v1", ref_name="v1", progress=lambda d, n: calls.append((d, n)))
        assert t.digest == digest and calls[-1] == (total, total)
        assert other.read_blob("copy/app", sha256(layers[1])) == layers[1]
        assert other.tags("copy/app") == ["v1"]
        with pytest.raises(cargohold.NotFound):
            other.import_oci(tmp_path / "oci", "copy/app", "v2", ref_name="nope")


def test_progress_exception_is_raised_after_the_transfer(reg, tmp_path):
    push_image(reg, "lib/app", "v1", [b"one"])

    class Stop(Exception):
        pass

    def progress(done, total):
        raise Stop()

    with pytest.raises(Stop):
        reg.export_oci("lib/app", "v1", tmp_path / "oci", "v1", progress=progress)


def _pusher(root, n, shared, results):
    with cargohold.Registry(root) as r:
        own = f"process {n}".encode() * 1000
        digests = [r.put_blob("lib/app", b).digest for b in shared + [own]]
        _, digest, _ = push_image(r, "lib/app", f"p{n}", shared + [own])
    results.put((n, digests, digest))


def test_processes_push_into_one_root(tmp_path):
    root = str(tmp_path / "registry")
    shared = [os.urandom(200_000) for _ in range(3)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_pusher, args=(root, n, shared, results)) for n in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with cargohold.Registry(root) as r:
        assert r.tags("lib/app") == [f"p{n}" for n in range(4)]
        for n, digests, manifest_digest in got:
            for d in digests:
                assert hashlib.sha256(r.read_blob("lib/app", d)).hexdigest() == d.split(":")[1]
            assert r.get_manifest("lib/app", f"p{n}")[2] == manifest_digest


def test_failing_file_object_leaves_no_upload_behind(reg, tmp_path):
    class Broken(Exception):
        pass

    class Source:
        def __init__(self):
            self.sent = 0

        def read(self, n):
            if self.sent > 3 * 1024 * 1024:
                raise Broken()
            self.sent += n
            return b"x" * n

    with pytest.raises(Broken):
        reg.put_blob("lib/app", Source())
    leftovers = [
        os.path.join(d, f)
        for d, _, files in os.walk(tmp_path / "registry")
        for f in files
        if "_uploads" in d
    ]
    assert leftovers == []


def test_closed_registry_and_reader_are_value_errors(tmp_path):
    r = cargohold.Registry(tmp_path / "registry")
    d = r.put_blob("lib/app", b"abc")
    reader = r.open_blob("lib/app", d.digest)
    reader.close()
    assert reader.closed
    with pytest.raises(ValueError):
        reader.read()
    r.close()
    assert r.closed
    with pytest.raises(ValueError):
        r.stat_blob("lib/app", d.digest)
