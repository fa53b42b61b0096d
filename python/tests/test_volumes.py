"""Without these, Python callers could remove volumes still in use, escape a volume with
a restored tar, or see a half-made volume when several processes share one root."""

import io
import multiprocessing
import os
import pathlib
import tarfile

import pytest

import cargohold
from conftest import make_tar


@pytest.fixture
def vols(tmp_path):
    with cargohold.VolumeStore(tmp_path / "volumes") as v:
        yield v


def test_create_get_list(vols):
    v = vols.create("data", labels={"team": "db"})
    assert isinstance(v, cargohold.Volume)
    assert v.name == "data" and v.labels == {"team": "db"} and not v.anonymous
    assert isinstance(v.mountpoint, pathlib.Path) and v.mountpoint.is_dir()
    assert v.created_at.endswith("Z") and v.holders == [] and v.options == {}
    anon = vols.create()
    assert anon.anonymous and anon.name
    assert vols.create("data", labels={"team": "db"}).name == "data"  # same options: same
    assert [x.name for x in vols.list()] == sorted(["data", anon.name])
    assert sorted(x.name for x in vols) == sorted(["data", anon.name])
    assert "data" in vols and "nope" not in vols
    assert vols.get("data").labels == {"team": "db"}


def test_bad_input(vols):
    for bad in ["", "../x", "a/b", "-lead", "x" * 300]:
        with pytest.raises(cargohold.InvalidArgument):
            vols.create(bad)
    with pytest.raises(cargohold.InvalidArgument):
        vols.create("o", options={"colour": "blue"})
    with pytest.raises(cargohold.NotFound):
        vols.get("missing")
    with pytest.raises(cargohold.NotFound):
        vols.remove("missing")
    with pytest.raises(TypeError):
        vols.create(42)
    with pytest.raises(TypeError):
        vols.create("t", options={"type": 1})
    with pytest.raises(TypeError):
        vols.export("x", 42)
    assert vols.list() == []


def test_held_volume_cannot_be_removed(vols):
    vols.create("db")
    path = vols.mount("db", "c1")
    assert isinstance(path, pathlib.Path)
    (path / "table").write_bytes(b"rows")
    assert vols.mount("db", "c1") == path  # idempotent per id
    assert vols.get("db").holders == ["c1"]
    with pytest.raises(cargohold.InUse) as info:
        vols.remove("db")
    assert info.value.kind == "in_use"
    assert (path / "table").read_bytes() == b"rows"
    with pytest.raises(cargohold.InvalidArgument):
        vols.unmount("db", "c2")
    vols.unmount("db", "c1")
    vols.remove("db")
    assert "db" not in vols


def test_force_remove(vols):
    vols.create("db")
    vols.mount("db", "c1")
    vols.remove("db", force=True)
    assert vols.list() == []


def test_populate_export_import_round_trip(vols, tmp_path):
    src = tmp_path / "src"
    (src / "conf").mkdir(parents=True)
    (src / "conf/app.ini").write_bytes(b"[app]\n")
    os.symlink("conf/app.ini", src / "link")
    vols.create("va")
    assert vols.populate("va", src) is True
    assert vols.populate("va", src) is False  # only the first time
    out = io.BytesIO()
    vols.export("va", out)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert "conf/app.ini" in names and "link" in names
    vols.create("vb")
    vols.import_("vb", out.getvalue())
    data = vols.get("vb").mountpoint
    assert (data / "conf/app.ini").read_bytes() == b"[app]\n"
    assert os.readlink(data / "link") == "conf/app.ini"
    with pytest.raises(cargohold.Conflict):
        vols.restore("vb", out.getvalue())
    path = tmp_path / "backup.tar"
    vols.export("vb", path)
    vols.create("vc")
    with open(path, "rb") as f:
        vols.restore("vc", f)
    assert (vols.get("vc").mountpoint / "conf/app.ini").exists()


def test_import_of_escaping_tar_leaves_volume_empty(vols, tmp_path):
    vols.create("vv")
    with pytest.raises(cargohold.PathEscape):
        vols.import_("vv", make_tar([("ok", "file", b"1"), ("../../escaped", "file", b"x")]))
    assert list(vols.get("vv").mountpoint.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_prune(vols):
    anon = vols.create()
    vols.create("named")
    held = vols.create()
    vols.mount(held.name, "c")
    report = vols.prune()
    assert report.removed == [anon.name]
    assert {v.name for v in vols} == {"named", held.name}
    vols.unmount(held.name, "c")
    assert sorted(vols.prune(all=True).removed) == sorted(["named", held.name])
    assert vols.list() == []


def _worker(root, n, results):
    with cargohold.VolumeStore(root) as v:
        names = []
        for i in range(5):
            names.append(v.create(f"p{n}-{i}").name)
        v.create("shared", labels={"k": "v"})
        path = v.mount("shared", f"proc-{n}")
        (path / f"from-{n}").write_bytes(b"x")
        v.unmount("shared", f"proc-{n}")
    results.put((n, names))


def test_processes_share_one_root(tmp_path):
    root = str(tmp_path / "volumes")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(root, n, results)) for n in range(4)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with cargohold.VolumeStore(root) as v:
        expected = {f"p{n}-{i}" for n in range(4) for i in range(5)} | {"shared"}
        assert {x.name for x in v.list()} == expected
        assert sorted(sum(got.values(), [])) == sorted(expected - {"shared"})
        shared = v.get("shared")
        assert shared.holders == []
        assert sorted(p.name for p in shared.mountpoint.iterdir()) == [
            f"from-{n}" for n in range(4)
        ]
        v.remove("shared")


def test_closed_store_is_value_error(tmp_path):
    with cargohold.VolumeStore(tmp_path / "v") as v:
        v.create("kept")
    assert v.closed
    with pytest.raises(ValueError):
        v.list()
    with cargohold.VolumeStore(tmp_path / "v") as again:
        assert [x.name for x in again] == ["kept"]
