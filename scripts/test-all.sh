#!/usr/bin/env bash
# Every gate of cargohold in one command, on a fresh Debian machine, as root:
# installs what is missing, then format, lints, docs and all tests (unit, conformance,
# interop with skopeo/umoci/registry:2, crash and multi-process tests).
#
#   bash scripts/test-all.sh
#
# Env: CARGOHOLD_SKIP_INSTALL=1 skips the package installation step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "scripts/test-all.sh must run as root (mounts, devices, chown)" >&2; exit 1; }

if [ "${CARGOHOLD_SKIP_INSTALL:-0}" != 1 ]; then
  step "system packages"
  export DEBIAN_FRONTEND=noninteractive
  need=()
  # command:package pairs the tests and benchmarks use as peers or fixture builders.
  for pair in skopeo:skopeo umoci:umoci docker-registry:docker-registry go:golang-go \
              hyperfine:hyperfine debootstrap:debootstrap pigz:pigz zstd:zstd jq:jq \
              getfattr:attr setcap:libcap2-bin mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs \
              mkfs.ext4:e2fsprogs losetup:mount curl:curl openssl:openssl valgrind:valgrind \
              unshare:util-linux cc:gcc pkg-config:pkg-config python3:python3 podman:podman; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
  fi
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

step "corpus: a debootstrap root filesystem and a multi-layer image made by umoci, skopeo and registry:2"
# The interop tests compare with what real tools produce from a real root filesystem.
# shared/corpus/make-corpus.sh sits beside the repository in CI; elsewhere point
# CARGOHOLD_CORPUS at a corpus built with it, or the corpus comparisons say they did not run.
corpus_script=../shared/corpus/make-corpus.sh
if [ -z "${CARGOHOLD_CORPUS:-}" ] && [ -f "$corpus_script" ]; then
  mkdir -p target
  export CARGOHOLD_CORPUS="$PWD/target/corpus"
  CORPUS="$CARGOHOLD_CORPUS" BIG_MB=32 SKIP_PODMAN=1 bash "$corpus_script" > target/corpus.log 2>&1 \
    || { tail -30 target/corpus.log; exit 1; }
fi
if [ -n "${CARGOHOLD_CORPUS:-}" ]; then
  export CARGOHOLD_REQUIRE_CORPUS=1
  echo "corpus at $CARGOHOLD_CORPUS"
else
  echo "no corpus: the corpus comparisons will report that they did not run"
fi

step "s3 test server: moto's server mode from PyPI, in a venv under target/"
# regstore's S3 backend is tested against a real S3 API on 127.0.0.1 (docs/s3.md says
# why moto); the tests start it from $CARGOHOLD_MOTO_SERVER and fail when it is missing.
if [ -z "${CARGOHOLD_MOTO_SERVER:-}" ]; then
  eval "$(bash regstore/tests/s3-server.sh install "$PWD/target/moto")"
  export CARGOHOLD_MOTO_SERVER
fi
echo "moto at $CARGOHOLD_MOTO_SERVER"

step "cargo test (all crates, all features, as root)"
cargo test --workspace --all-features --no-fail-fast

step "python: pip install ./python into a fresh venv, then pytest"
venv=target/pyvenv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q pytest
# The wheel is built with the dev profile into the workspace's target directory: the
# dependencies `cargo test` just compiled (optimised even in dev, see Cargo.toml) are
# reused instead of compiled again for a release wheel. `pip install ./python` without
# these variables builds the release wheel users get.
CARGO_TARGET_DIR="$PWD/target" MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/pip" install -q ./python
"$venv/bin/python" -m pytest -q python/tests

step "fuzz: a short run of every target (regressions replayed first)"
# Its own workspace and target directory (fuzz/target): libFuzzer's flags must not
# reach the main build.
mkdir -p target
FUZZ_QUICK=1 bash fuzz/run.sh "${CARGOHOLD_FUZZ_SECONDS:-8}" > target/fuzz.log 2>&1 \
  || { tail -40 target/fuzz.log; exit 1; }
grep -E '^Done [0-9]+ runs' target/fuzz.log

step "quick start (the README's main job), on a scratch root"
demo_root=$(mktemp -d)
CARGOHOLD_ROOT="$demo_root" CARGOHOLD_BUILD_PROFILE=dev bash scripts/quickstart.sh
rm -rf "$demo_root"

step "no mount left behind under the build tree"
if grep -q " $(pwd)/" /proc/self/mountinfo; then
  echo "mounts left behind:" >&2; grep " $(pwd)/" /proc/self/mountinfo >&2; exit 1
fi
echo "all gates passed"
