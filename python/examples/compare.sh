#!/usr/bin/env bash
# Binding overhead: the same storage call from Rust (ingest_bench.rs) and from Python
# (ingest_bench.py, given a path and given a file object), alternated, one call per
# process, medians in milliseconds. Run on a loop-mounted ext4/xfs or tmpfs, not `/`.
#
#   python/examples/compare.sh RUST_BIN PYTHON LAYER.tar BLOB SCRATCH_DIR [RUNS]
set -euo pipefail
rust=$1 py=$2 layer=$3 blob=$4 scratch=$5 runs=${6:-7}
here=$(cd "$(dirname "$0")" && pwd)
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for mode in apply blob; do
  input=$layer; [ "$mode" = blob ] && input=$blob
  : > "$scratch/rs.$mode"; : > "$scratch/path.$mode"; : > "$scratch/file.$mode"
  for _ in $(seq "$runs"); do
    rm -rf "$scratch/store"; sync
    "$rust" "$mode" "$input" "$scratch/store" >> "$scratch/rs.$mode"
    rm -rf "$scratch/store"; sync
    "$py" "$here/ingest_bench.py" "$mode" "$input" "$scratch/store" path >> "$scratch/path.$mode"
    rm -rf "$scratch/store"; sync
    "$py" "$here/ingest_bench.py" "$mode" "$input" "$scratch/store" file >> "$scratch/file.$mode"
  done
  r=$(median < "$scratch/rs.$mode"); p=$(median < "$scratch/path.$mode"); f=$(median < "$scratch/file.$mode")
  printf '%-5s rust %8.1f ms | python(path) %8.1f ms (%.3fx) | python(file object) %8.1f ms (%.3fx)\n' \
    "$mode" "$r" "$p" "$(echo "$p / $r" | bc -l)" "$f" "$(echo "$f / $r" | bc -l)"
done
rm -rf "$scratch/store"
