#!/usr/bin/env bash
# Layer apply against its peers, on the corpus's debootstrap layer (plain, gzip, zstd):
#   cargohold  `cargohold --root DIR layer apply FILE` (release build): opens a new
#              store, parses the tar, writes the tree (owners, modes, xattrs, times),
#              computes the diff ID and the compressed digest, makes the layer durable
#              (syncfs, fsync of the published directory and of its record) and records
#              it in the store; `--defer-sync` does the same without the syncfs and
#              the fsync of the published directory (the layer's record says so, and
#              a store opened after a crash, reboot or remount drops it);
#   GNU tar    `tar -xf` / `tar -xzf` / `tar --zstd -xf` with --same-owner --xattrs: writes
#              the same tree, hashes nothing, syncs nothing (a second row adds `sync -f`
#              so that both sides end with the tree on disk);
#   umoci      `umoci unpack` of the one-layer image `base` (gzip): writes the tree, checks
#              the blob digests, writes a runtime bundle config.
# Medians of one hyperfine run and ratios are printed at the end.
#
# Needs root, hyperfine, umoci, GNU tar, zstd, jq, mkfs.ext4 and a corpus built by the
# project's corpus script: CARGOHOLD_CORPUS=/path/to/corpus benches/compare-apply.sh
# The trees are written to a loop-mounted journaled ext4 image (created under /var/tmp,
# unmounted and deleted on exit), never to `/` (see the benchmarking notes).
# CARGOHOLD_BIN=path/to/cargohold skips the release build; RUNS (default 7) sets the
# number of timed runs per command.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "compare-apply: needs root (loop mount, ownership)" >&2; exit 1; }
corpus=${CARGOHOLD_CORPUS:?set CARGOHOLD_CORPUS to a corpus built by the corpus script}
for tool in hyperfine umoci tar zstd jq mkfs.ext4 sync; do
    command -v "$tool" >/dev/null || { echo "compare-apply: $tool is missing" >&2; exit 1; }
done
for f in layers/1-base.tar layers/1-base.tar.gz layers/1-base.tar.zst oci-debian/index.json; do
    [ -e "$corpus/$f" ] || { echo "compare-apply: $corpus/$f is missing" >&2; exit 1; }
done
runs=${RUNS:-7}

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGOHOLD_BIN:-}
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release -q -p cargohold-cli)
    bin="${CARGO_TARGET_DIR:-$repo/target}/release/cargohold"
fi
[ -x "$bin" ] || { echo "compare-apply: no cargohold binary at $bin" >&2; exit 1; }

work=$(mktemp -d /var/tmp/compare-apply.XXXXXX)
mnt="$work/mnt"
cleanup() {
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    rm -rf "$work"
}
trap cleanup EXIT
truncate -s 8G "$work/fs.img"
mkfs.ext4 -q "$work/fs.img"
mkdir "$mnt"
mount -o loop "$work/fs.img" "$mnt"

run="$mnt/run"
# Each timed run starts from an empty directory with nothing left to write back.
prep="rm -rf $run && mkdir $run && sync -f $mnt"
tar_opts="--same-owner --xattrs --xattrs-include=\\* -C $run"
layer="$corpus/layers/1-base.tar"

bench() { # name, then commands
    local name=$1
    shift
    hyperfine --style basic --runs "$runs" --warmup 1 --prepare "$prep" \
        --export-json "$work/$name.json" "$@" >&2
}

bench plain \
    -n "cargohold plain" "$bin --root $run layer apply $layer" \
    -n "plain --defer-sync" "$bin --root $run layer apply --defer-sync $layer" \
    -n "tar -xf" "tar -xf $layer $tar_opts" \
    -n "tar -xf + sync" "tar -xf $layer $tar_opts && sync -f $run"
bench gzip \
    -n "cargohold gzip" "$bin --root $run layer apply $layer.gz" \
    -n "tar -xzf" "tar -xzf $layer.gz $tar_opts" \
    -n "tar -xzf + sync" "tar -xzf $layer.gz $tar_opts && sync -f $run"
bench zstd \
    -n "cargohold zstd" "$bin --root $run layer apply $layer.zst" \
    -n "tar --zstd -xf" "tar --zstd -xf $layer.zst $tar_opts"
bench umoci \
    -n "cargohold gzip" "$bin --root $run layer apply $layer.gz" \
    -n "umoci unpack" "umoci unpack --image $corpus/oci-debian:base $run/bundle"

median() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median' "$work/$1.json"; }
row() { # group, ours, peer, target
    local ours peer
    ours=$(median "$1" "$2")
    peer=$(median "$1" "$3")
    awk -v a="$ours" -v b="$peer" -v o="$2" -v p="$3" -v t="$4" 'BEGIN {
        printf "| %-18s | %7.0f ms | %-16s | %7.0f ms | %5.2fx | %-6s |\n", o, a*1000, p, b*1000, a/b, t }'
}
echo
echo "| cargohold          |   median | peer             |   median | ratio | target |"
echo "|--------------------|----------|------------------|----------|-------|--------|"
row plain "cargohold plain" "tar -xf" "<=1.15"
row plain "cargohold plain" "tar -xf + sync" ""
row plain "plain --defer-sync" "tar -xf" "<=1.15"
row gzip "cargohold gzip" "tar -xzf" "<=0.75"
row gzip "cargohold gzip" "tar -xzf + sync" ""
row zstd "cargohold zstd" "tar --zstd -xf" ""
row umoci "cargohold gzip" "umoci unpack" "<=0.3"
