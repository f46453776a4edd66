#!/usr/bin/env bash
# Benchmarks of the apps against C references run side by side on the same virtual ports.
#   scripts/bench.sh l2fwd [--runs N] [--seconds S]
# See scripts/bench.py for what is measured and how.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  l2fwd) ;;
  ""|-h|--help) python3 scripts/bench.py --help; exit 0 ;;
  *) echo "bench.sh: error: unknown benchmark '$1': expected l2fwd" >&2; exit 2 ;;
esac

scripts/setup.sh >/dev/null
[ -f target/sluice.env ] && . target/sluice.env
cargo build --release -q -p sluice-l2fwd

# DPDK's own l2fwd, built from the installed example sources (a copy; nothing of it is committed).
ref=target/bench/dpdk-l2fwd
if [ ! -x "$ref/build/l2fwd" ]; then
  rm -rf "$ref" && mkdir -p target/bench && cp -r /usr/share/dpdk/examples/l2fwd "$ref"
  make -s -C "$ref" >/dev/null
fi
exec python3 scripts/bench.py "$@"
