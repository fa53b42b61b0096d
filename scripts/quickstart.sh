#!/usr/bin/env bash
# The README's main job: build the `cargohold` command and run the container storage
# lifecycle end to end on the default local store (or on $CARGOHOLD_ROOT / --root DIR).
#
#   bash scripts/quickstart.sh [--root DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -p cargohold-cli -- "$@" demo
