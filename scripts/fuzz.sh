#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser of outside bytes and of
# L3Forward on arbitrary bursts: scripts/fuzz.sh [TARGET[,TARGET...]] [SECONDS] (default: every
# target, 60 s each). The corpora start from frames of pktgen's templates (captured here through a
# net_pcap port), DPDK's shipped route files and a few lines of each text format, and grow in
# target/fuzz/corpus. A crash is copied to fuzz/regressions/TARGET/, which the normal test
# suite replays, and the script ends non-zero. A table of executions, coverage and crashes
# per target ends the run (also in target/fuzz/summary.txt).
#   FUZZ_JOBS=N   targets run at once (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=${1:-all}
SECONDS_EACH=${2:-60}
JOBS=${FUZZ_JOBS:-1}

scripts/setup.sh >/dev/null
[ -f target/sluice.env ] && . target/sluice.env

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v -e '^sluice-fuzz$' -e '^seed$')
if [ "$ONLY" != all ]; then
  for t in ${ONLY//,/ }; do
    grep -qx "$t" <<<"$targets" || { echo "fuzz.sh: no target '$t'; targets: $(echo $targets)" >&2; exit 2; }
  done
  targets=${ONLY//,/ }
fi

work=target/fuzz
mkdir -p "$work/corpus" "$work/logs" "$work/artifacts"

# Seeds: frames of pktgen's templates (UDP, TCP, ICMP; IPv4 and IPv6; VLAN; many sizes and
# addresses), captured from a net_pcap port, then cut into each target's pieces.
cargo build --release -q -p sluice-pktgen
cargo build --release -q -p sluice-fuzz --bin seed
cat > "$work/streams.toml" <<'EOF'
[[stream]]
protocol = "udp"
dst_ip = "198.18.1.1-198.18.1.9"
src_port = "1024-1027"
size = "64,128,594"
[[stream]]
protocol = "tcp"
tcp_flags = "syn"
ipv6 = true
size = "96,200"
[[stream]]
protocol = "icmp"
vlan = 100
size = 68
[[stream]]
protocol = "icmp"
ipv6 = true
ttl = 1
size = 128
[[stream]]
protocol = "udp"
src_ip = "10.0.0.1"
dst_ip = "8.8.8.8"
ttl = 2
size = "imix"
EOF
# shellcheck disable=SC2086
target/release/sluice-pktgen -l 0 --no-huge -m 256 --log-level='*:error' ${SLUICE_EAL_ARGS:-} \
  --vdev "net_pcap0,tx_pcap=$work/templates.pcap" \
  -- --tx-port 0 --rx-port none --streams "$work/streams.toml" --count 200 --quiet >/dev/null
target/release/seed "$work/corpus" "$work/templates.pcap"

cargo +nightly fuzz build --features libfuzzer -O 2>&1 | grep -v '^\s*Compiling' || true

run_target() {
  local t=$1 log="$work/logs/$1.log"
  # Only this run's crashes count: an earlier run's were copied to fuzz/regressions already.
  rm -rf "${work:?}/artifacts/$t"
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  # -rss_limit_mb: the stage target's EAL takes 1 GB of ordinary memory for its tables.
  cargo +nightly fuzz run --features libfuzzer -O "$t" "$work/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=4096 \
    -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1 || true
}

export -f run_target
export work SECONDS_EACH
echo "fuzz.sh: $(wc -w <<<"$targets") target(s), ${SECONDS_EACH} s each, $JOBS at a time"
# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "$JOBS" -I{} bash -c 'run_target {}'

status=0
{
  printf '%-18s %8s %12s %10s %8s %8s %8s\n' target seconds executions exec/s edges corpus crashes
  for t in $targets; do
    log="$work/logs/$t.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$work/corpus/$t" -type f | wc -l)
    crashes=$(find "$work/artifacts/$t" -type f | wc -l)
    printf '%-18s %8s %12s %10s %8s %8s %8s\n' "$t" "$SECONDS_EACH" "${runs:-?}" "${speed:-?}" \
      "${edges:-?}" "$corpus" "$crashes"
    if [ "$crashes" -gt 0 ] || ! grep -q '^Done [0-9]* runs' "$log"; then
      status=1
      mkdir -p "fuzz/regressions/$t"
      cp "$work/artifacts/$t/"* "fuzz/regressions/$t/" 2>/dev/null || true
    fi
  done
} >"$work/summary.txt"
# (Not piped into tee: a pipe would run the loop in a subshell and lose its status.)
cat "$work/summary.txt"
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: a target failed; its input is in fuzz/regressions/TARGET/ and its log in $work/logs/TARGET.log" >&2
  echo "fuzz.sh: reproduce with cargo +nightly fuzz run --features libfuzzer TARGET fuzz/regressions/TARGET/FILE" >&2
fi
exit "$status"
