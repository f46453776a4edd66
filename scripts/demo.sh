#!/usr/bin/env bash
# The main job on virtual ports, no NIC needed: sluice-pktgen sends 64-byte UDP flows to
# 198.18.1.0/24 into sluice-l3fwd over two memif links and receives what l3fwd routes back,
# for about 10 s. pktgen prints tx/rx Mpps and latency every second, then its summary (loss,
# latency percentiles); then l3fwd's final account (rx = tx + dropped, mbufs in use = 0).
# Then, for 3 s, pktgen as 1,000 clients of sluice-kv over a third memif link: sessions opened,
# requests a second sent and answered, and their latency.
#   DEMO_SECONDS=N   how long to send (default 10)
#   DEMO_RATE=RATE   pktgen's --rate (default 2mpps; max finds the pair's limit, with loss)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${DEMO_SECONDS:-10}
RATE=${DEMO_RATE:-2mpps}

scripts/setup.sh
[ -f target/sluice.env ] && . target/sluice.env
cargo build --release -q -p sluice-pktgen -p sluice-l3fwd -p sluice-kv

work=$(mktemp -d /tmp/sluice-demo.XXXXXX)
gen_pid= fwd_pid=
cleanup() {
  [ -n "$fwd_pid" ] && kill "$fwd_pid" 2>/dev/null
  [ -n "$gen_pid" ] && kill "$gen_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
memif() { echo "--vdev net_memif0,role=$1,socket=$work/m0.sock --vdev net_memif1,role=$1,socket=$work/m1.sock"; }
# memif needs the EAL's multi-process socket: a prefix of our own and --huge-unlink, not --in-memory.
eal() { echo "-l $1 -m 256 --file-prefix sluice-demo-$2 --huge-unlink --log-level=*:warning ${SLUICE_EAL_ARGS:-}"; }
gen_lcore=0
fwd_lcore=$(( $(nproc) - 1 ))
status=0
# Waits until pktgen, logging to $1, has started $2 memif ports: their sockets listen from then on.
await_ports() {
  for _ in $(seq 200); do
    [ "$(grep -c net_memif "$1" 2>/dev/null)" -ge "$2" ] && return
    sleep 0.1
  done
}
# Waits for pktgen to finish, stops the forwarder, and prints its final account (log $1) as $2.
finish() {
  wait "$gen_pid" || status=$?
  gen_pid=
  kill -INT "$fwd_pid"
  wait "$fwd_pid" || status=$?
  fwd_pid=
  echo
  echo "$2:"
  sed -n '/^final account/,$p' "$1"
}

echo "demo: sluice-pktgen (lcore $gen_lcore) -> memif -> sluice-l3fwd (lcore $fwd_lcore) -> memif -> sluice-pktgen"
echo "demo: 64-byte UDP to 198.18.1.1-254 at $RATE for ${SECONDS_TO_RUN} s"
# pktgen is the memif server: it starts first and waits for l3fwd's links.
# shellcheck disable=SC2046
target/release/sluice-pktgen $(eal "$gen_lcore" gen) $(memif server) \
  -- --tx-port 0 --rx-port 1 --rate "$RATE" --duration "$SECONDS_TO_RUN" \
     --dst-ip 198.18.1.1-198.18.1.254 --src-port 1024-2047 > >(tee "$work/pktgen.log") 2>&1 &
gen_pid=$!
await_ports "$work/pktgen.log" 2
# shellcheck disable=SC2046
target/release/sluice-l3fwd $(eal "$fwd_lcore" fwd) $(memif client) \
  -- -p 0x3 --config "(0,0,$fwd_lcore),(1,0,$fwd_lcore)" > "$work/l3fwd.log" 2>&1 &
fwd_pid=$!
finish "$work/l3fwd.log" sluice-l3fwd

echo
echo "demo: sluice-pktgen (lcore $gen_lcore) as 1,000 clients -> memif -> sluice-kv (lcore $fwd_lcore), 100,000 requests a second for 3 s"
kv_link() { echo "--vdev net_memif0,role=$1,socket=$work/kv.sock"; }
# shellcheck disable=SC2046
target/release/sluice-pktgen $(eal "$gen_lcore" kvgen) $(kv_link server) \
  -- --workload kv --server 10.0.0.1 --sessions 1000 --handshake-rate 5000 --rate 100kpps \
     --duration 3 --get-ratio 0.9 --keys 10000 > >(tee "$work/kvgen.log") 2>&1 &
gen_pid=$!
await_ports "$work/kvgen.log" 1
# shellcheck disable=SC2046
target/release/sluice-kv $(eal "$fwd_lcore" kv) $(kv_link client) \
  -- --addr 10.0.0.1/8 --idle off --handshake-share 1 --stats-period 0 > "$work/kv.log" 2>&1 &
fwd_pid=$!
finish "$work/kv.log" sluice-kv
exit "$status"
