#!/usr/bin/env bash
# Every test in the workspace, DPDK tests included: sets the machine up, checks formatting
# and lints, builds, and runs the tests with cargo nextest (one process per test, as the
# EAL starts once per process).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
[ -f target/sluice.env ] && . target/sluice.env

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo build --workspace --all-targets -q
# The SPSC ring under loom's model checker (own target dir: --cfg loom rebuilds everything).
LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -q -p sluice --lib --release ring::loom_tests
cargo nextest run --workspace --no-fail-fast "$@"

# No DPDK process may leave hugepage files behind.
left=$(find /dev/hugepages -maxdepth 1 -name 'sluice*' 2>/dev/null | wc -l)
if [ "$left" -gt 0 ]; then
  echo "test.sh: $left hugepage files left in /dev/hugepages by Sluice processes" >&2
  exit 1
fi
