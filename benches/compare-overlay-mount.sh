#!/bin/sh
# Compare the overlay driver with the raw kernel calls and with the peers' ways of
# taking a diff. Needs root, hyperfine, GNU tar, diffutils; run from the workspace root.
#
# 1. Mounts: runs the criterion bench `overlay` (container prepare+mount+unmount+remove
#    on a 3-layer image and its two halves, a raw overlay mount(2)+umount2(2) of the
#    same directories, the driver's own mount paths, the commit of a one-file change,
#    500-layer mounts) and prints the median ratio of the lifecycle to the raw mount
#    (target: <= 2x, and a median <= 5 ms).
# 2. Commit on a real root filesystem (needs CARGOHOLD_CORPUS, a corpus made by the
#    project's make-corpus.sh): the same criterion run applies the debootstrap layer to
#    an overlay store, changes one file in a container, and times
#    `LayerStore::commit_container` (export of the upper dir, hashing, storing the layer
#    durably) against `tar -c` of that upper dir (target: <= 1.2x) and a naive
#    full-tree diff, `diff -rq` of the lower against the merged tree (target: >= 50x
#    faster). Then hyperfine compares the two peers alone, alternating, on a plain
#    extracted lower (no store involved).
#
# Everything runs on a fresh loop-mounted journaled ext4 (see the benchmarking notes),
# unmounted and deleted at the end.
set -eu

[ "$(id -u)" = 0 ] || { echo "run as root: the benchmark mounts" >&2; exit 1; }
for t in hyperfine tar diff jq bc mkfs.ext4; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/overlay-compare.XXXXXX")
fs="$work/fs"
mkdir "$fs"
cleanup() {
    umount "$fs/merged" 2>/dev/null || true
    umount "$fs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
truncate -s 6G "$work/img"
mkfs.ext4 -q "$work/img"
mount -o loop "$work/img" "$fs"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
echo "== criterion: overlay (scratch on loop ext4) =="
# CARGOHOLD_CORPUS, when set, is passed on: the bench then also times the commit.
CARGOHOLD_BENCH_DIR="$fs" cargo bench -q -p cargohold-benches --bench overlay -- \
    --warm-up-time 1 --measurement-time 4 >/dev/null
median() { # group bench -> median in ms
    jq '.median.point_estimate / 1e6' \
        "$CARGO_TARGET_DIR/criterion/$1/$2/new/estimates.json"
}
life=$(median "overlay container" "prepare+mount+unmount+remove on 3 layers")
raw=$(median "overlay container" "raw mount(2)+umount2(2) of the same dirs")
halfp=$(median "overlay container" "prepare+remove on 3 layers (no mount)")
halfm=$(median "overlay container" "LayerStore mount+unmount of a prepared container")
drv=$(median "overlay container" "driver mount, mounts()+mount_overlay+umount2 of the same dirs")
drvl=$(median "overlay container" "driver mount through mount(2), same dirs")
commit=$(median "overlay container" "commit of a one-file change")
deep_new=$(median "overlay 500 layers" "mount+unmount, new mount API")
deep_old=$(median "overlay 500 layers" "mount+unmount, mount(2) short names")
printf 'prepare+mount+unmount+remove  %8.3f ms\n' "$life"
printf 'raw mount(2)+umount2(2)       %8.3f ms   ratio %.2fx (target <= 2x, <= 5 ms)\n' \
    "$raw" "$(echo "$life / $raw" | bc -l)"
printf '  of which prepare+remove      %8.3f ms\n' "$halfp"
printf '  of which mount+unmount        %8.3f ms   ratio %.2fx raw\n' \
    "$halfm" "$(echo "$halfm / $raw" | bc -l)"
printf 'driver mount (spec + new API)  %7.3f ms   ratio %.2fx\n' \
    "$drv" "$(echo "$drv / $raw" | bc -l)"
printf 'driver mount (spec + mount(2)) %7.3f ms   ratio %.2fx\n' \
    "$drvl" "$(echo "$drvl / $raw" | bc -l)"
printf 'commit of a one-file change   %8.3f ms\n' "$commit"
printf '500 layers, new mount API     %8.3f ms\n' "$deep_new"
printf '500 layers, mount(2) fallback %8.3f ms\n' "$deep_old"

if [ -z "${CARGOHOLD_CORPUS:-}" ]; then
    echo "CARGOHOLD_CORPUS not set: skipping the root-filesystem diff comparison"
    exit 0
fi
echo "== commit of a one-file change on the debootstrap root filesystem (criterion) =="
cc=$(median "overlay commit on rootfs" "commit_container of a one-file change")
ct=$(median "overlay commit on rootfs" "tar -c of the upper dir")
cd_=$(median "overlay commit on rootfs" "diff -rq lower vs merged tree")
printf 'commit_container               %8.3f ms\n' "$cc"
printf 'tar -c of the upper dir        %8.3f ms   commit/tar %.2fx (target <= 1.2x)\n' \
    "$ct" "$(echo "$cc / $ct" | bc -l)"
printf 'diff -rq lower vs merged       %8.3f ms   diff/commit %.0fx (target >= 50x)\n' \
    "$cd_" "$(echo "$cd_ / $cc" | bc -l)"
echo "== the peers alone, alternating (hyperfine) =="
mkdir -p "$fs/lower" "$fs/upper" "$fs/work" "$fs/merged"
tar -C "$fs/lower" -xf "$CARGOHOLD_CORPUS/layers/1-base.tar"
mount -t overlay overlay \
    -o "lowerdir=$fs/lower,upperdir=$fs/upper,workdir=$fs/work,redirect_dir=nofollow,metacopy=off" \
    "$fs/merged"
echo changed >"$fs/merged/etc/hostname"
hyperfine -N -i --warmup 2 --runs 10 --export-json "$work/diff.json" \
    "tar -C $fs/upper -cf $work/upper.tar ." \
    "diff -rq --no-dereference $fs/lower $fs/merged" >/dev/null
jq -r '.results[] | "\(.command | split(" ")[0])  median \(.median * 1000 | floor) ms"' \
    "$work/diff.json"
tarm=$(jq '.results[0].median' "$work/diff.json")
diffm=$(jq '.results[1].median' "$work/diff.json")
printf 'full-tree diff / upper-dir tar: %.0fx\n' "$(echo "$diffm / $tarm" | bc -l)"
umount "$fs/merged"
