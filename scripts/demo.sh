#!/usr/bin/env bash
# The main job on virtual ports, no NIC needed: sluice-l2fwd forwards 64-byte UDP frames
# from a pcap source (replayed forever) to a null sink on one lcore for about 10 s, then
# prints its rate and the final account (rx = tx + dropped, mbufs in use = 0).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${DEMO_SECONDS:-10}

scripts/setup.sh
[ -f target/sluice.env ] && . target/sluice.env
cargo build --release -q -p sluice-l2fwd
mkdir -p target/demo
python3 scripts/gen-pcap.py target/demo/udp64.pcap --count 1024 --size 60 --flows 256

lcore=$(( $(nproc) - 1 ))
echo "demo: sluice-l2fwd on lcore $lcore for ${SECONDS_TO_RUN} s: net_pcap (64-byte UDP, replayed) -> net_null"
set -x
timeout --preserve-status -s INT "$SECONDS_TO_RUN" target/release/sluice-l2fwd \
  -l "$lcore" -m 256 --log-level='*:warning' \
  --vdev "net_pcap0,rx_pcap=target/demo/udp64.pcap,infinite_rx=1" \
  --vdev "net_null0,no-rx=1" \
  -- -p 0x3 -q 2 -T 1
