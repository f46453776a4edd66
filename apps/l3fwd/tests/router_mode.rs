//! The router for real hosts (`--addr`) on bursts a peer can send: a burst that is all plain
//! IPv4 after a mixed one (whose packet positions once leaked into the next burst: a panic, or
//! packets leaving with each other's next-hop MACs), directed broadcasts to its own subnets,
//! and the martian switch. Frames are built with etherparse and compared byte for byte.

mod common;

use common::*;
use etherparse::PacketBuilder;

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];
const PORT0_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];

/// The MAC the neighbour file gives host `n` of either far subnet.
fn neighbour_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0xcc, n]
}

fn v6_host(n: u8) -> [u8; 16] {
    let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    a[15] = n;
    a
}

fn udp4(dst: [u8; 4], ttl: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4([10, 0, 0, 2], dst, ttl)
        .udp(5000, 9)
        .write(&mut out, b"router mode")
        .unwrap();
    out
}

fn udp6(dst: [u8; 16], hops: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            dst,
            hops,
        )
        .udp(5000, 9)
        .write(&mut out, b"router mode")
        .unwrap();
    out
}

/// Runs the router (addresses on both ports, next hops from a neighbour file) over `frames`
/// into port 0; returns what port 1 sent, port 1's MAC and the final account.
fn route(frames: &[Vec<u8>], extra: &[&str]) -> (Vec<Vec<u8>>, [u8; 6], String) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let mut neighbours = String::new();
    for n in 2..=60 {
        let mac = neighbour_mac(n).map(|b| format!("{b:02x}")).join(":");
        neighbours.push_str(&format!("10.0.1.{n} {mac}\n"));
        let ip = std::net::Ipv6Addr::from(v6_host(n));
        neighbours.push_str(&format!("{ip} {mac}\n"));
    }
    std::fs::write(p("neighbours"), neighbours).unwrap();
    std::fs::write(p("v4.cfg"), "R10.0.1.0/24 1\n").unwrap();
    std::fs::write(p("v6.cfg"), "R2001:db8:1::/64 1\n").unwrap();
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    args.extend(pcap_ports(dir.path(), frames));
    args.extend(strings(&["--", "-p", "0x3"]));
    args.extend(strings(&[
        "--addr",
        "0,10.0.0.1/24",
        "--addr",
        "1,10.0.1.1/24",
    ]));
    args.extend(strings(&["--addr", "1,2001:db8:1::1/64"]));
    args.push(format!("--neighbours={}", p("neighbours")));
    args.push(format!("--rule_ipv4={}", p("v4.cfg")));
    args.push(format!("--rule_ipv6={}", p("v6.cfg")));
    args.extend(strings(extra));
    let run = run_over_pcaps(&args);
    let out1 = read_pcap(dir.path().join("out1.pcap").as_path());
    (out1, port_mac(&run.stdout, 1), run.stdout)
}

#[test]
fn a_plain_burst_after_a_mixed_one_leaves_with_its_own_next_hops() {
    // net_pcap hands the router 32 frames a poll: first IPv6 then IPv4 (so the IPv4 packets sit
    // at positions 10 to 31), then a burst of 4 plain IPv4 packets, at positions 0 to 3.
    let into_port0 = (HOST_MAC, PORT0_MAC);
    let mut frames: Vec<Vec<u8>> = (2..12).map(|n| udp6(v6_host(n), 64, into_port0)).collect();
    frames.extend((12..34).map(|n| udp4([10, 0, 1, n], 64, into_port0)));
    frames.extend((40..44).map(|n| udp4([10, 0, 1, n], 64, into_port0)));
    let (out1, mac1, stdout) = route(&frames, &[]);
    let mut want: Vec<Vec<u8>> = (2..12)
        .map(|n| udp6(v6_host(n), 63, (mac1, neighbour_mac(n))))
        .collect();
    want.extend((12..34).map(|n| udp4([10, 0, 1, n], 63, (mac1, neighbour_mac(n)))));
    want.extend((40..44).map(|n| udp4([10, 0, 1, n], 63, (mac1, neighbour_mac(n)))));
    assert_eq!(out1.len(), want.len(), "{stdout}");
    for (i, (got, want)) in out1.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "packet {i} left with another's next hop");
    }
    assert_eq!(total_drops(&stdout), "none", "{stdout}");
}

#[test]
fn directed_broadcasts_to_its_subnets_are_martians_and_the_switch_forwards_martians() {
    let into_port0 = (HOST_MAC, PORT0_MAC);
    let frames = vec![
        udp4([10, 0, 1, 255], 64, into_port0),
        udp4([10, 0, 1, 255], 1, into_port0),
        udp4([10, 0, 1, 7], 64, into_port0),
    ];
    let (out1, mac1, stdout) = route(&frames, &[]);
    assert_eq!(out1, [udp4([10, 0, 1, 7], 63, (mac1, neighbour_mac(7)))]);
    // The one with TTL 1 expires first, and is not answered: ICMP errors never go to a
    // broadcast address (RFC 1812 §4.3.2.7).
    assert_eq!(
        total_drops(&stdout),
        "ttl_exceeded 1, martian 1",
        "{stdout}"
    );

    // With the check off, a martian source is routed like any other packet.
    let from_loopback = |ttl: u8, macs: ([u8; 6], [u8; 6])| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(macs.0, macs.1)
            .ipv4([127, 0, 0, 1], [10, 0, 1, 9], ttl)
            .udp(5000, 9)
            .write(&mut out, b"router mode")
            .unwrap();
        out
    };
    let frames = [from_loopback(64, into_port0)];
    let (out1, mac1, stdout) = route(&frames, &["--forward-martians"]);
    assert_eq!(
        out1,
        [from_loopback(63, (mac1, neighbour_mac(9)))],
        "{stdout}"
    );
}
