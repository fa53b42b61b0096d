#!/usr/bin/env bash
# The btrfs driver against vfs (reflink copies) and overlay on one loop-mounted btrfs:
# container prepare+remove on an image, and commit of a one-file change. Root only.
#
#   CARGOHOLD_CORPUS=/path/to/corpus bash benches/compare-btrfs.sh   # the debootstrap image
#   bash benches/compare-btrfs.sh                                     # a generated image
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (loop device, mounts)" >&2; exit 1; }
scratch=$(mktemp -d /var/tmp/cargohold-btrfs-bench.XXXXXX)
cleanup() { umount "$scratch/mnt" 2>/dev/null || true; rm -rf "$scratch"; }
trap cleanup EXIT
truncate -s 4G "$scratch/btrfs.img"
mkfs.btrfs -q "$scratch/btrfs.img"
mkdir "$scratch/mnt"
mount -o loop "$scratch/btrfs.img" "$scratch/mnt"
CARGOHOLD_BENCH_BTRFS="$scratch/mnt" cargo bench -p cargohold-benches --bench btrfs -- \
  --warm-up-time 1 --measurement-time 5 2>&1 | tee "$scratch/out.txt" | grep -E "time:|^container" || true
python3 - "$scratch/out.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
med = {}
for name, mid, unit in re.findall(r"container on an image, same btrfs/(.+?)\n?\s+time:\s+\[\S+ \S+ (\S+) (\S+)", text):
    scale = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]
    med[name.strip()] = float(mid) * scale
for what in ["prepare+remove", "commit of a one-file change"]:
    b = med.get(f"btrfs: {what}")
    if b is None:
        continue
    for peer in ["vfs (reflink)", "overlay"]:
        p = med.get(f"{peer}: {what}")
        if p:
            print(f"{what}: btrfs {b:.2f} ms, {peer} {p:.2f} ms, btrfs/{peer} = {b / p:.2f}x")
PY
