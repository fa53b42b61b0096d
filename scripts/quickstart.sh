#!/usr/bin/env bash
# The README's main job: build the `cargohold` command and run the container storage
# lifecycle end to end on the default local store (or on $CARGOHOLD_ROOT).
#
#   bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p cargohold-cli
exec target/release/cargohold demo "$@"
