#!/usr/bin/env bash
# regstore ingest against the tools it has to keep up with, on a tmpfs (BENCHMARKING.md:
# never on the unjournaled root filesystem).
#
#   benches/compare-ingest.sh [SIZE_MIB]     (default 1024)
#
# 1. Ingest of a SIZE_MIB file as a blob (stream, hash, write, commit) with the
#    `ingest` example, against `openssl dgst -sha256` (hash only) and `cp` (write only)
#    of the same file, with hyperfine (ROUNDS alternating rounds, default 5); prints the
#    load average, median times, CPU seconds and the throughput ratio of ingest to the
#    slower of the two (target: >= 0.8).
# 2. Resume after a SIGKILL at 900/1024 of the upload: prints the bytes re-hashed on
#    resume (target: <= 16 MiB, one checkpoint interval).
set -euo pipefail
SIZE_MIB=${1:-1024}
for tool in hyperfine openssl jq cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (mounts a tmpfs)" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}
cargo build -q -p regstore --release --example ingest
INGEST=$CARGO_TARGET_DIR/release/examples/ingest

WORK=$(mktemp -d /var/tmp/regstore-ingest.XXXXXX)
cleanup() { umount "$WORK" 2>/dev/null || true; rmdir "$WORK"; }
trap cleanup EXIT
mount -t tmpfs -o size=$((SIZE_MIB * 4 + 512))m tmpfs "$WORK"

SRC=$WORK/src.bin
head -c $((SIZE_MIB << 20)) /dev/urandom > "$SRC"

# The machine is shared: ROUNDS rounds of two runs of each command, alternating, so a
# change of load hits all three alike; medians over every run.
ROUNDS=${ROUNDS:-5}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    hyperfine -N --warmup 1 --runs 2 --export-json "$WORK/h$r.json" \
        --prepare "rm -rf $WORK/copy $WORK/root" \
        -n openssl "openssl dgst -sha256 $SRC" \
        -n cp "cp $SRC $WORK/copy" \
        -n ingest "$INGEST $WORK/root $SRC" >/dev/null
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

jq -rs --argjson mib "$SIZE_MIB" '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  (map(.results[]) | group_by(.command)
    | map({(.[0].command): (map(.times[]) | median)}) | add) as $m
  | (map(.results[]) | group_by(.command)
    | map({(.[0].command): (((map(.user) | add) + (map(.system) | add)) / length)}) | add) as $cpu
  | ([$m.openssl, $m.cp] | max) as $slower
  | "runs per command: \(map(.results[0].times | length) | add)",
    "median seconds: openssl \($m.openssl|.*1000|round/1000)  cp \($m.cp|.*1000|round/1000)  ingest \($m.ingest|.*1000|round/1000)",
    "mean CPU seconds (user+sys): openssl \($cpu.openssl|.*100|round/100)  cp \($cpu.cp|.*100|round/100)  ingest \($cpu.ingest|.*100|round/100)",
    "throughput MiB/s: openssl \($mib/$m.openssl|round)  cp \($mib/$m.cp|round)  ingest \($mib/$m.ingest|round)",
    "ingest / slower-of(openssl, cp) throughput ratio: \($slower/$m.ingest*100|round/100)"
' "$WORK"/h*.json

rm -rf "$WORK/root" "$WORK/copy"
KILL_AT=$(( (SIZE_MIB << 20) * 900 / 1024 ))
"$INGEST" "$WORK/root" "$SRC" --kill-at "$KILL_AT" 2>/dev/null && { echo "the ingest was not killed" >&2; exit 1; } || true
RESUME=$("$INGEST" "$WORK/root" "$SRC" --resume)
WANT=$(openssl dgst -sha256 -r "$SRC" | cut -d' ' -f1)
echo "$RESUME" | jq -r --arg want "sha256:$WANT" '
  "resume after SIGKILL at \(.resumed_at) bytes: re-hashed \(.rehashed_bytes) bytes (\(.rehashed_bytes/1048576*100|round/100) MiB), digest ok: \(.digest == $want)"'
