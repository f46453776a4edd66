//! Route files and queue layouts DPDK's l3fwd takes: default routes (`0.0.0.0/0` and `::/0`,
//! which rte_lpm and rte_lpm6 do not take themselves) in every lookup that takes prefixes, and
//! a port that only transmits (enabled in -p, polled by no --config entry).

mod common;

use common::*;
use etherparse::PacketBuilder;

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];
const PORT0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbb, 0x00];

fn udp4(dst: [u8; 4], ttl: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4([198, 18, 0, 7], dst, ttl)
        .udp(5000, 9)
        .write(&mut out, b"default route")
        .unwrap();
    out
}

fn udp6(dst: &str, hops: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let dst = dst.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(
            [0x20, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
            dst,
            hops,
        )
        .udp(5000, 9)
        .write(&mut out, b"default route")
        .unwrap();
    out
}

/// Routes `frames` from port 0 with the given rule files; returns what ports 0 and 1 sent and
/// the final account.
fn route(
    frames: &[Vec<u8>],
    rules: (&str, &str),
    extra: &[&str],
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("v4.cfg"), rules.0).unwrap();
    std::fs::write(p("v6.cfg"), rules.1).unwrap();
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    args.extend(pcap_ports(dir.path(), frames));
    args.extend(strings(&["--", "-p", "0x3"]));
    args.push(format!("--rule_ipv4={}", p("v4.cfg")));
    args.push(format!("--rule_ipv6={}", p("v6.cfg")));
    args.extend(strings(extra));
    let run = run_over_pcaps(&args);
    let out = |n: &str| read_pcap(dir.path().join(n).as_path());
    (out("out0.pcap"), out("out1.pcap"), run.stdout)
}

#[test]
fn default_routes_catch_what_no_prefix_covers_in_lpm_and_fib() {
    let rules = (
        "R0.0.0.0/0 1\nR198.18.0.0/24 0\n",
        "R::/0 1\nR2001:200::/64 0\n",
    );
    let into_port0 = (HOST_MAC, PORT0_MAC);
    let frames = vec![
        udp4([8, 8, 8, 8], 64, into_port0),
        udp4([198, 18, 0, 9], 64, into_port0),
        udp4([203, 0, 113, 1], 64, into_port0),
        udp6("2606:4700::1111", 64, into_port0),
        udp6("2001:200::9", 64, into_port0),
    ];
    for lookup in ["lpm", "fib"] {
        let (out0, out1, stdout) = route(&frames, rules, &["--lookup", lookup]);
        let (mac0, mac1) = (port_mac(&stdout, 0), port_mac(&stdout, 1));
        let (to0, to1) = (([2, 0, 0, 0, 0, 0]), [2, 0, 0, 0, 0, 1]);
        assert_eq!(
            out1,
            [
                udp4([8, 8, 8, 8], 63, (mac1, to1)),
                udp4([203, 0, 113, 1], 63, (mac1, to1)),
                udp6("2606:4700::1111", 63, (mac1, to1)),
            ],
            "{lookup}: {stdout}"
        );
        assert_eq!(
            out0,
            [
                udp4([198, 18, 0, 9], 63, (mac0, to0)),
                udp6("2001:200::9", 63, (mac0, to0)),
            ],
            "{lookup}: {stdout}"
        );
        assert_eq!(total_drops(&stdout), "none", "{lookup}: {stdout}");
    }
}

#[test]
fn a_port_no_config_entry_polls_transmits_as_in_l3fwd() {
    let into_port0 = (HOST_MAC, PORT0_MAC);
    let frames = vec![udp4([198, 18, 1, 3], 64, into_port0)];
    let rules = ("R198.18.1.0/24 1\n", "R2001:200:0:1::/64 1\n");
    let (_, out1, stdout) = route(&frames, rules, &["--config", "(0,0,0)"]);
    assert!(stdout.contains("0 RX / 1 TX queues"), "{stdout}");
    let mac1 = port_mac(&stdout, 1);
    assert_eq!(
        out1,
        [udp4([198, 18, 1, 3], 63, (mac1, [2, 0, 0, 0, 0, 1]))],
        "{stdout}"
    );
}
