#!/usr/bin/env bash
# Benchmarks of the apps on virtual ports, side by side in one invocation:
#   scripts/bench.sh l2fwd [--runs N] [--seconds S]     sluice-l2fwd vs DPDK's l2fwd and testpmd
#   scripts/bench.sh pipeline [--runs N] [--seconds S]  run to completion (1 lcore) vs pipelined (2)
#   scripts/bench.sh l3fwd [--runs N] [--seconds S]     sluice-l3fwd vs DPDK's l3fwd, LPM and EM, IPv4 and IPv6
#   scripts/bench.sh pktgen [--runs N] [--seconds S]    sluice-pktgen vs testpmd txonly; pktgen -> l3fwd over memif
#   scripts/bench.sh handoff [--runs N] [--seconds S]   a stage handing every packet to a second worker, or not
#   scripts/bench.sh impair [--runs N] [--seconds S]    sluice-impair vs sluice-l2fwd; zero-loss rate at 1 ms of delay
#   scripts/bench.sh kv [--sessions N] [--seconds S] [--parts rate,flood,memory,handshakes]
#                                                       pktgen -> sluice-kv: highest clean rate, latency, work;
#                                                       a HELLO flood; memory at 1M sessions and keys; handshakes a second
#   scripts/bench.sh idle [--seconds S]                 CPU of an idle sluice-l2fwd
#   scripts/bench.sh ring                               the SPSC ring vs crossbeam and rte_ring (Criterion)
# See scripts/bench.py for what is measured and how.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  l2fwd|l3fwd|pipeline|idle|ring|pktgen|handoff|impair|kv) ;;
  ""|-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench.sh: error: unknown benchmark '$1': expected l2fwd, l3fwd, pipeline, pktgen, handoff, impair, kv, idle or ring" >&2; exit 2 ;;
esac

scripts/setup.sh >/dev/null
[ -f target/sluice.env ] && . target/sluice.env
if [ "$1" = ring ]; then
  exec cargo bench -p sluice --bench ring
fi
cargo build --release -q -p sluice-l2fwd -p sluice-l3fwd -p sluice-pktgen -p sluice-impair -p sluice-kv
[ "$1" = handoff ] && cargo build --release -q -p sluice --example handoff

# DPDK's own l2fwd, built from the installed example sources (a copy; nothing of it is committed).
ref=target/bench/dpdk-l2fwd
if [ "$1" = l2fwd ] && [ ! -x "$ref/build/l2fwd" ]; then
  rm -rf "$ref" && mkdir -p target/bench && cp -r /usr/share/dpdk/examples/l2fwd "$ref"
  make -s -C "$ref" >/dev/null
fi
# DPDK's own l3fwd, likewise. It asks for RX checksum offload, which virtual ports lack: the
# build copy asks for none (it then forwards without checking checksums; ours checks them).
ref=target/bench/dpdk-l3fwd
if [ "$1" = l3fwd ] && [ ! -x "$ref/build/l3fwd" ]; then
  rm -rf "$ref" && mkdir -p target/bench && cp -r /usr/share/dpdk/examples/l3fwd "$ref"
  cp -r /usr/share/dpdk/examples/common/. "$ref/"     # pkt_group.h, sse/port_group.h
  cp "$ref/pkt_group.h" "$ref/sse/"
  sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0,/' "$ref/main.c"
  make -s -C "$ref" >/dev/null
fi
exec python3 scripts/bench.py "$@"
