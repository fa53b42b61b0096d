"""Rust and Python processes sharing one root keep every invariant. Without this, a
store that is only ever tested from one language could count holders differently,
lose a blob or a layer, leave a temporary directory or leak a mount when the other
language's processes use it at the same time.

Three Python processes (through the bindings) and a stream of ``cargohold`` command
processes (Rust, through the CLI) work on one root for a bounded time: holding and
releasing one tmpfs volume, pushing unique and shared blobs, applying unique and
shared layers. Afterwards: the volume's holders are exactly the holds nobody
released, every acknowledged blob and layer is there and verifies, no temporary entry
is left anywhere under the root, and releasing the last holds unmounts the volume.
"""

import hashlib
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import threading
import time

import cargohold
import pytest

from conftest import make_tar, require_root

SECONDS = float(os.environ.get("CARGOHOLD_MIXED_SECONDS", "6"))
REPO = "mixed/app"
SHARED_BLOB = b"the same bytes from every process\n" * 500


def cargohold_bin():
    """The built ``cargohold`` command: $CARGOHOLD_BIN, else the workspace's debug build."""
    explicit = os.environ.get("CARGOHOLD_BIN")
    if explicit:
        return explicit
    repo = pathlib.Path(__file__).resolve().parents[2]
    target = os.environ.get("CARGO_TARGET_DIR", str(repo / "target"))
    candidate = pathlib.Path(target) / "debug" / "cargohold"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("cargohold")
    if found:
        return found
    pytest.fail("no cargohold binary: build it (cargo build -p cargohold-cli) or set CARGOHOLD_BIN")


def layer(tag):
    return make_tar([("d", "dir", None), (f"d/{tag}", "file", f"{tag}\n".encode() * 200)])


def _python_worker(root, w, seconds, out):
    vols = cargohold.VolumeStore(os.path.join(root, "volumes"))
    reg = cargohold.Registry(os.path.join(root, "registry"))
    layers = cargohold.LayerStore(os.path.join(root, "layers"), driver="vfs")
    held, blobs, chains = [], [], []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        hold = f"py{w}-{i}"
        path = vols.mount("shared", hold)
        (path / hold).write_bytes(b"x")
        if i % 3 == 0:
            held.append(hold)
        else:
            vols.unmount("shared", hold)
        blobs.append(reg.put_blob(REPO, f"worker {w} item {i}\n".encode() * 100).digest)
        blobs.append(reg.put_blob(REPO, SHARED_BLOB).digest)
        tag = "common" if i % 4 == 0 else f"py{w}-{i}"
        chains.append(layers.apply_layer(layer(tag)).chain_id)
        i += 1
    out.put((w, held, blobs, chains))


def _rust_worker(root, seconds, result, workdir):
    exe = cargohold_bin()
    env = dict(os.environ, CARGOHOLD_DRIVER="vfs")

    def run(*args):
        p = subprocess.run(
            [exe, "--root", root, *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, f"cargohold {' '.join(args)}: {p.stderr}"
        return p.stdout.strip()

    held, chains = [], []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        hold = f"rs-{i}"
        run("volume", "mount", "shared", "--id", hold)
        if i % 3 == 0:
            held.append(hold)
        else:
            run("volume", "unmount", "shared", "--id", hold)
        tag = "common" if i % 4 == 0 else f"rs-{i}"
        tar = workdir / f"{tag}.tar"
        tar.write_bytes(layer(tag))
        chains.append(run("layer", "apply", str(tar)).split()[-1])
        i += 1
    result["held"], result["chains"] = held, chains


def test_rust_and_python_processes_share_one_root(tmp_path):
    require_root()
    root = str(tmp_path / "root")
    with cargohold.VolumeStore(os.path.join(root, "volumes")) as vols:
        vols.create("shared", options={"type": "tmpfs", "device": "tmpfs", "o": "size=16m"})
    try:
        _share_one_root(tmp_path, root)
    finally:
        # Whatever failed, no tmpfs stays mounted under the test's directory.
        with cargohold.VolumeStore(os.path.join(root, "volumes")) as vols:
            if "shared" in vols:
                vols.remove("shared", force=True)


def _share_one_root(tmp_path, root):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_python_worker, args=(root, w, SECONDS, out)) for w in range(3)]
    for p in procs:
        p.start()
    rust = {}
    workdir = tmp_path / "tars"
    workdir.mkdir()
    errors = []

    def rust_thread():
        try:
            _rust_worker(root, SECONDS, rust, workdir)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    t = threading.Thread(target=rust_thread)
    t.start()
    got = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    t.join(timeout=180)
    assert not errors, errors[0]

    held = set(rust["held"])
    blobs, chains = [], list(rust["chains"])
    for _, h, b, c in got:
        held |= set(h)
        blobs += b
        chains += c
    assert len(blobs) > 0 and len(rust["chains"]) > 0, "a worker never got going"

    mountpoint = None
    with cargohold.VolumeStore(os.path.join(root, "volumes")) as vols:
        shared = vols.get("shared")
        assert set(shared.holders) == held and len(shared.holders) == len(held)
        mountpoint = str(shared.mountpoint)
        for h in sorted(held):
            vols.unmount("shared", h)
        assert vols.get("shared").holders == []
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    assert mountpoint not in mounts, "the last release left the tmpfs mounted"
    assert not [m for m in mounts if m.startswith(str(tmp_path))], "a mount leaked"

    with cargohold.Registry(os.path.join(root, "registry")) as reg:
        for d in set(blobs):
            assert "sha256:" + hashlib.sha256(reg.read_blob(REPO, d)).hexdigest() == d
    with cargohold.LayerStore(os.path.join(root, "layers"), driver="vfs") as layers:
        for c in set(chains):
            assert layers.layer(c).chain_id == c
        assert len({x.chain_id for x in layers.layers()}) == len(set(chains))

    left = [
        str(p)
        for p in pathlib.Path(root).rglob(".tmp*")
        if p.name.startswith((".tmp-", ".tmpx-"))
    ]
    assert left == [], f"temporary entries left behind: {left}"
