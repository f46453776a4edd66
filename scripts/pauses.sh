#!/usr/bin/env bash
# Runs a command (by default the whole test suite) while stopping one process of the tests at
# a time, at random, as a shared machine's scheduler or hypervisor does: every PERIOD seconds,
# one DPDK app, test binary or DPDK reference app is stopped for PAUSE seconds (SIGSTOP, then
# SIGCONT). A test that fails only under it assumed the machine never pauses.
#
#   scripts/pauses.sh [--period S] [--pause S] [COMMAND...]
#   scripts/pauses.sh --pause 0.25 cargo nextest run -p sluice-pktgen
set -euo pipefail
cd "$(dirname "$0")/.."

period=1.5
pause=0.1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --period) period="$2"; shift 2 ;;
    --pause) pause="$2"; shift 2 ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
    esac
done
if [[ $# -eq 0 ]]; then
    set -- cargo nextest run --workspace --no-fail-fast
fi

# The apps and examples the tests start, the test binaries, and DPDK's own apps.
victims="$PWD/target/[a-z]+/(sluice-|deps/|examples/)|dpdk-"
pauser() {
    local pid=""
    # Never leave a process stopped, whenever this ends.
    trap '[[ -n "$pid" ]] && kill -CONT "$pid" 2>/dev/null; exit 0' TERM
    while sleep "$period"; do
        pid=$(pgrep -f "$victims" | shuf -n 1 || true)
        [[ -n "$pid" ]] || continue
        kill -STOP "$pid" 2>/dev/null || continue
        sleep "$pause"
        kill -CONT "$pid" 2>/dev/null || true
        pid=""
    done
}
pauser &
pauser_pid=$!
trap 'kill "$pauser_pid" 2>/dev/null; wait "$pauser_pid" 2>/dev/null || true' EXIT
echo "pauses.sh: stopping a random test process for $pause s every $period s" >&2
"$@"
