#!/usr/bin/env bash
# Run every fuzz target for N seconds (default 20), replaying kept regressions first.
#
#   bash fuzz/run.sh SECONDS            # long runs: optimised, with AddressSanitizer
#   FUZZ_QUICK=1 bash fuzz/run.sh 8     # the test command: unoptimised, no sanitizer,
#                                       # so the build stays short on a fresh machine
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# The machines have a stable toolchain only; cargo-fuzz needs nightly flags.
export RUSTC_BOOTSTRAP=1
flags=()
if [ "${FUZZ_QUICK:-0}" = 1 ]; then
  flags=(--dev --sanitizer none)
fi
for target in $(cargo fuzz list); do
  mkdir -p "regressions/$target" "corpus/$target"
  if compgen -G "regressions/$target/*" >/dev/null; then
    cargo fuzz run "${flags[@]}" "$target" "regressions/$target"/* -- -runs=0
  fi
  cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048
done
