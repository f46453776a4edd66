#!/usr/bin/env bash
# Test hosts for sluice-l3fwd: two network namespaces, each a Linux host on its own subnet
# behind a veth pair whose root-side end the router drives (net_af_packet).
#   scripts/netns.sh up NAME      creates NAME-h1 (10.0.1.2/24, fd00:1::2/64) and NAME-h2
#                                 (10.0.2.2/24, fd00:2::2/64), gateways 10.0.X.1 and fd00:X::1,
#                                 router ends NAME-r1, NAME-r2
#   scripts/netns.sh down NAME    removes them
# Root only. Checksum offload is off on the hosts' ends so that frames carry full checksums.
set -euo pipefail
action=${1:-}; name=${2:-sl}
case "$action" in
  up)
    for i in 1 2; do
      ip netns add "$name-h$i"
      ip link add "$name-r$i" type veth peer name "$name-e$i"
      ip link set "$name-e$i" netns "$name-h$i"
      # No duplicate address detection: the addresses are usable at once.
      ip netns exec "$name-h$i" sysctl -qw "net.ipv6.conf.$name-e$i.accept_dad=0"
      ip -n "$name-h$i" addr add "10.0.$i.2/24" dev "$name-e$i"
      ip -n "$name-h$i" addr add "fd00:$i::2/64" dev "$name-e$i" nodad
      ip -n "$name-h$i" link set lo up
      ip -n "$name-h$i" link set "$name-e$i" up
      ip -n "$name-h$i" route add default via "10.0.$i.1"
      ip -n "$name-h$i" -6 route add default via "fd00:$i::1"
      ip netns exec "$name-h$i" ethtool -K "$name-e$i" tx off rx off >/dev/null 2>&1 || true
      ethtool -K "$name-r$i" tx off rx off >/dev/null 2>&1 || true
      ip link set "$name-r$i" up
      # The root-side end belongs to the router: no IPv6 autoconfiguration chatter from the kernel.
      sysctl -qw "net.ipv6.conf.$name-r$i.disable_ipv6=1" || true
    done
    ;;
  down)
    for i in 1 2; do
      ip link del "$name-r$i" 2>/dev/null || true
      ip netns del "$name-h$i" 2>/dev/null || true
    done
    ;;
  *) echo "usage: scripts/netns.sh up|down NAME" >&2; exit 2 ;;
esac
