#!/usr/bin/env bash
# Garbage collection of one registry:2 storage root: cargohold against Debian's registry:2
# (`docker-registry garbage-collect`, distribution 2.8), with and without
# --delete-untagged. A generated root (gc_fixture: REPOS repositories x TAGS tags with
# shared and unique layers, untagged manifests and orphan blobs) is copied afresh before
# every run, on a tmpfs, and hyperfine alternates the two commands.
#
# usage: benches/compare-gc.sh [SCRATCH_DIR] [REPOS] [TAGS] [RUNS]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
scratch=${1:-$(mktemp -d)}
repos=${2:-50}
tags=${3:-20}
runs=${4:-7}
for tool in docker-registry hyperfine cargo; do
    command -v "$tool" >/dev/null || { echo "compare-gc: $tool is required" >&2; exit 1; }
done

mkdir -p "$scratch/mnt"
mountpoint -q "$scratch/mnt" || mount -t tmpfs -o size=4g tmpfs "$scratch/mnt"
trap 'umount "$scratch/mnt" 2>/dev/null || true' EXIT
mnt=$scratch/mnt

(cd "$here" && cargo build -q --release -p regstore --example gc_fixture)
target=${CARGO_TARGET_DIR:-$here/target}
fixture=$target/release/examples/gc_fixture

"$fixture" generate "$mnt/pristine" "$repos" "$tags"
du -sh "$mnt/pristine" | sed 's/^/store size: /'
cat >"$mnt/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $mnt/work
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
EOF

prepare="rm -rf $mnt/work && cp -a $mnt/pristine $mnt/work"
for flag in "" "--delete-untagged"; do
    echo "== garbage-collect $flag"
    hyperfine --runs "$runs" --prepare "$prepare" \
        --export-json "$scratch/gc${flag:+-untagged}.json" \
        -n "registry:2 garbage-collect $flag" \
        "docker-registry garbage-collect $flag $mnt/config.yml >/dev/null 2>&1" \
        -n "cargohold gc $flag" \
        "$fixture collect $mnt/work $flag"
    jq -r '.results | "median ratio registry:2 / cargohold: \(.[0].median / .[1].median | . * 10 | round / 10)x (\(.[0].median * 1000 | round) ms vs \(.[1].median * 1000 | round) ms)"' \
        "$scratch/gc${flag:+-untagged}.json"
done
