#!/usr/bin/env bash
# Run every fuzz target for N seconds (default 20), replaying kept regressions first.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# The machines have a stable toolchain only; cargo-fuzz needs nightly flags.
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  mkdir -p "regressions/$target" "corpus/$target"
  if compgen -G "regressions/$target/*" >/dev/null; then
    cargo fuzz run "$target" "regressions/$target"/* -- -runs=0
  fi
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048
done
