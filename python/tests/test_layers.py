"""Without these, Python callers could apply, mount, diff and commit layers that the Rust
store would refuse or lose, and one thread's apply would stall every other thread."""

import faulthandler
import hashlib
import io
import os
import pathlib
import tarfile
import threading
import time

import pytest

import cargohold
from conftest import make_tar, require_root


@pytest.fixture(params=["vfs", "overlay"])
def store(request, tmp_path):
    if request.param == "overlay":
        require_root()
    with cargohold.LayerStore(tmp_path / "layers", driver=request.param) as s:
        yield s


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_apply_from_bytes_path_and_file_give_one_layer(store, tmp_path, base_tar):
    a = store.apply_layer(base_tar)
    assert a.diff_id == sha256(base_tar)
    assert a.chain_id == a.diff_id  # a base layer's chain ID is its diff ID
    assert a.parent is None
    assert a.size == len(base_tar)
    assert a.created > 0
    p = tmp_path / "base.tar"
    p.write_bytes(base_tar)
    assert store.apply_layer(p) == a
    assert store.apply_layer(str(p)) == a
    with open(p, "rb") as f:
        assert store.apply_layer(f) == a
    assert store.apply_layer(io.BytesIO(base_tar), diff_id=a.diff_id) == a
    assert [l.chain_id for l in store.layers()] == [a.chain_id]
    assert store.layer(a.chain_id) == a


def test_child_layers_chain_and_removal_order(store, base_tar, child_tar):
    base = store.apply_layer(base_tar)
    child = store.apply_layer(child_tar, parent=base.chain_id)
    assert child.parent == base.chain_id
    expected_chain = sha256(f"{base.chain_id} {child.diff_id}".encode())
    assert child.chain_id == expected_chain
    assert {l.chain_id for l in store.layers()} == {base.chain_id, child.chain_id}
    with pytest.raises(cargohold.InUse):
        store.remove_layer(base.chain_id)
    store.remove_layer(child.chain_id)
    store.remove_layer(base.chain_id)
    assert list(store.layers()) == []
    with pytest.raises(cargohold.NotFound):
        store.layer(base.chain_id)


def test_a_deferred_sync_layer_is_usable_then_made_durable_by_sync(store, base_tar, child_tar):
    base = store.apply_layer(base_tar, defer_sync=True)
    assert base.durable is False
    child = store.apply_layer(child_tar, parent=base.chain_id, defer_sync=True)
    assert store.layer(child.chain_id).durable is False
    assert sorted(store.sync()) == sorted([base.chain_id, child.chain_id])
    assert store.layer(base.chain_id).durable is True
    assert store.layer(child.chain_id).durable is True
    assert store.sync() == []


def test_gzip_layer_applies_like_plain(store, base_tar):
    import gzip

    layer = store.apply_layer(gzip.compress(base_tar))
    assert layer.diff_id == sha256(base_tar)


def test_wrong_diff_id_keeps_nothing(store, base_tar):
    with pytest.raises(cargohold.DigestMismatch) as info:
        store.apply_layer(base_tar, diff_id=sha256(b"other"))
    assert info.value.kind == "digest_mismatch"
    assert list(store.layers()) == []


@pytest.mark.parametrize(
    "entries",
    [
        [("../escaped", "file", b"x")],
        [("a", "symlink", "/"), ("a/../../escaped", "file", b"x")],
    ],
)
def test_escaping_tar_is_path_escape(store, tmp_path, entries):
    with pytest.raises(cargohold.PathEscape):
        store.apply_layer(make_tar(entries))
    assert list(store.layers()) == []
    assert not (tmp_path / "escaped").exists()


def test_missing_parent_and_bad_ids(store, base_tar):
    with pytest.raises(cargohold.NotFound):
        store.apply_layer(base_tar, parent=sha256(b"nothing"))
    with pytest.raises(cargohold.InvalidArgument):
        store.layer("sha256:nothex")
    with pytest.raises(cargohold.InvalidArgument):
        store.apply_layer(base_tar, parent="latest")
    with pytest.raises(cargohold.NotFound):
        store.remove_layer(sha256(b"nothing"))


def test_wrong_types_are_type_errors(tmp_path, base_tar):
    with pytest.raises(TypeError):
        cargohold.LayerStore(42)
    with cargohold.LayerStore(tmp_path / "s", driver="vfs") as s:
        with pytest.raises(TypeError):
            s.apply_layer(42)
        with pytest.raises(TypeError):
            s.layer(42)
        with pytest.raises(TypeError):
            s.apply_layer(base_tar, labels={"a": 1})
        with pytest.raises(TypeError):
            s.apply_layer(io.StringIO("text"))  # .read returns str
    with pytest.raises(cargohold.InvalidArgument):
        cargohold.LayerStore(tmp_path / "s", driver="zfs")


def test_file_object_exception_is_raised_unchanged(store, base_tar):
    class Broken(Exception):
        pass

    class Source:
        def __init__(self):
            self.inner = io.BytesIO(base_tar)

        def read(self, n):
            if self.inner.tell() > 1000:
                raise Broken("disk on fire")
            return self.inner.read(min(n, 600))

    with pytest.raises(Broken):
        store.apply_layer(Source())
    assert list(store.layers()) == []


def test_closed_store_is_value_error(tmp_path, base_tar):
    s = cargohold.LayerStore(tmp_path / "s", driver="vfs")
    with s:
        assert not s.closed
    assert s.closed
    with pytest.raises(ValueError):
        s.apply_layer(base_tar)
    s.close()  # idempotent


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 2000])
def test_bad_container_names(store, name):
    with pytest.raises(cargohold.InvalidArgument):
        store.prepare_container(name)


def test_container_lifecycle(store, tmp_path, base_tar):
    require_root()
    base = store.apply_layer(base_tar)
    mounts = store.prepare_container("web", parent=base.chain_id, labels={"app": "web"})
    assert mounts and all(isinstance(m, cargohold.Mount) for m in mounts)
    with pytest.raises(cargohold.AlreadyExists):
        store.prepare_container("web", parent=base.chain_id)
    target = tmp_path / "mnt"
    target.mkdir()
    store.mount("web", target)
    try:
        assert (target / "etc/hostname").read_bytes() == b"cargohold\n"
        (target / "etc/new").write_bytes(b"new\n")
        (target / "bin/tool").unlink()
        with pytest.raises(cargohold.InUse):
            store.remove_container("web")
    finally:
        store.unmount(target)
    with pytest.raises(cargohold.NotFound):
        store.unmount(target)
    changes = {(c.kind, c.path) for c in store.changes("web")}
    assert ("A", "/etc/new") in changes or ("A", "etc/new") in changes
    assert any(c[0] == "D" and c[1].endswith("bin/tool") for c in changes)
    out = io.BytesIO()
    diff_id, size = store.export_diff("web", out)
    data = out.getvalue()
    assert diff_id == sha256(data) and size == len(data)
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "etc/new" in names and "bin/.wh.tool" in names
    layer = store.commit_container("web")
    assert layer.parent == base.chain_id and layer.diff_id == diff_id
    with pytest.raises(cargohold.NotFound):
        store.changes("web")
    store.remove_layer(layer.chain_id)


def test_remove_container(store, base_tar):
    base = store.apply_layer(base_tar)
    store.prepare_container("tmp", parent=base.chain_id)
    with pytest.raises(cargohold.InvalidArgument):
        store.remove_container(base.chain_id)
    store.remove_container("tmp")
    with pytest.raises(cargohold.NotFound):
        store.remove_container("tmp")


def test_two_threads_apply_at_once(tmp_path):
    """Each apply reads its layer from a FIFO that this (Python) thread fills while both
    applies are inside Rust: that only completes if both released the GIL, and both
    calls provably overlap the moment the FIFOs got their first halves."""
    faulthandler.dump_traceback_later(120, exit=True)  # a held GIL would hang here
    try:
        s = cargohold.LayerStore(tmp_path / "s", driver="vfs")
        tars = [
            make_tar([(f"t{i}/f{j}", "file", os.urandom(2048)) for j in range(64)])
            for i in range(2)
        ]
        fifos = []
        for i in range(2):
            p = tmp_path / f"fifo{i}"
            os.mkfifo(p)
            fifos.append(p)
        spans, results, errors = [None, None], [None, None], []

        def apply(i):
            try:
                t0 = time.monotonic()
                results[i] = s.apply_layer(fifos[i])
                spans[i] = (t0, time.monotonic())
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=apply, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        writers = [open(p, "wb") for p in fifos]  # blocks until each apply opened it
        half = [len(t) // 2 for t in tars]
        for w, t, h in zip(writers, tars, half):
            w.write(t[:h])
            w.flush()
        both_in_flight = time.monotonic()
        for w, t, h in zip(writers, tars, half):
            w.write(t[h:])
            w.close()
        for t in threads:
            t.join()
        assert errors == []
        for (start, end) in spans:
            assert start < both_in_flight < end
        assert {r.diff_id for r in results} == {sha256(t) for t in tars}
        s.close()
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_export_diff_to_a_path(store, tmp_path, base_tar):
    base = store.apply_layer(base_tar)
    store.prepare_container("c", parent=base.chain_id)
    out = tmp_path / "diff.tar"
    diff_id, size = store.export_diff("c", out)
    assert out.stat().st_size == size and sha256(out.read_bytes()) == diff_id
    assert tarfile.open(out).getnames() == []  # nothing changed
    with pytest.raises(TypeError):
        store.export_diff("c", 42)
    with pytest.raises(cargohold.NotFound):
        store.export_diff("missing", io.BytesIO())


def test_btrfs_driver_refuses_a_root_elsewhere(tmp_path):
    import subprocess

    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(tmp_path)], check=True,
                            capture_output=True, text=True).stdout.strip()
    assert fstype != "btrfs", "this check needs a temporary directory that is not on btrfs"
    with pytest.raises(cargohold.Unsupported):
        cargohold.LayerStore(tmp_path / "s", driver="btrfs")


def test_a_store_keeps_its_driver(tmp_path, base_tar):
    require_root()
    root = tmp_path / "s"
    with cargohold.LayerStore(root, driver="vfs") as s:
        layer = s.apply_layer(base_tar)
    with pytest.raises(cargohold.InvalidArgument):
        cargohold.LayerStore(root, driver="overlay")
    with cargohold.LayerStore(root) as again:  # auto: what the store recorded
        assert again.driver == "vfs"
        assert again.layer(layer.chain_id) == layer
