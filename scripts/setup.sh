#!/usr/bin/env bash
# Prepares this machine for Sluice, idempotently: installs the Debian packages the build and
# the tests need (only those missing), then makes sure hugepages are reserved and mounted.
# Where hugepages cannot be had, it says so and writes target/sluice.env, which the other
# scripts source, so every Sluice process runs with --no-huge instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  pkg-config clang libclang-dev          # bindgen
  libdpdk-dev dpdk dpdk-dev              # DPDK 22.11 LTS, its PMDs, dpdk-testpmd, dpdk-telemetry.py
  libhwloc-dev libudev-dev               # NUMA topology (hwloc links udev)
  iproute2 ethtool tcpdump iperf3 iputils-ping  # test hosts in network namespaces
  make dpdk-doc                          # DPDK's C examples (benchmark references) and l3fwd's route files
)
HUGEPAGES_MB=${SLUICE_HUGEPAGES_MB:-2048}

say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: warning: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  case "$p" in \#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest (DPDK tests need one process per test)"
  cargo install --locked cargo-nextest
fi

# Hugepages: 2 MB pages, at least HUGEPAGES_MB free, and a hugetlbfs mount.
mkdir -p target
rm -f target/sluice.env
sys=/sys/kernel/mm/hugepages/hugepages-2048kB
want=$((HUGEPAGES_MB / 2))
huge_ok=true
if [ ! -d "$sys" ]; then
  warn "this kernel has no 2 MB hugepages"
  huge_ok=false
else
  total=$(cat "$sys/nr_hugepages"); free=$(cat "$sys/free_hugepages")
  if [ "$free" -lt "$want" ]; then
    target_total=$((total - free + want))
    say "reserving $target_total 2 MB hugepages ($free of $total free, $want wanted)"
    echo "$target_total" | as_root tee "$sys/nr_hugepages" >/dev/null 2>&1 || true
    free=$(cat "$sys/free_hugepages")
    if [ "$free" -lt "$want" ]; then
      warn "only $free 2 MB hugepages free after reserving (wanted $want)"
      [ "$free" -gt 0 ] || huge_ok=false
    fi
  fi
  if ! grep -q '^[^ ]* [^ ]* hugetlbfs ' /proc/mounts; then
    say "mounting hugetlbfs on /dev/hugepages"
    as_root mkdir -p /dev/hugepages && as_root mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages || huge_ok=false
  fi
fi
if $huge_ok; then
  say "hugepages: $(cat "$sys/free_hugepages") of $(cat "$sys/nr_hugepages") 2 MB pages free"
else
  warn "no usable hugepages: every Sluice process will run with --no-huge (slower, and no multi-process)"
  echo 'export SLUICE_EAL_ARGS="${SLUICE_EAL_ARGS:-} --no-huge"' > target/sluice.env
fi
