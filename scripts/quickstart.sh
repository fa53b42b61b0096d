#!/usr/bin/env bash
# The README's main job: build the `cargohold` command and run the container storage
# lifecycle end to end on the default local store (or on $CARGOHOLD_ROOT / --root DIR).
#
#   bash scripts/quickstart.sh [--root DIR]
#
# Env: CARGOHOLD_BUILD_PROFILE=dev uses the test build instead of a release build (the
# test command does this to save a second full compile).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
[ "${CARGOHOLD_BUILD_PROFILE:-release}" = dev ] && profile=dev
exec cargo run --profile "$profile" --quiet -p cargohold-cli -- "$@" demo
