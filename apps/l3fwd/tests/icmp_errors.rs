//! ICMP errors on real DPDK with net_pcap ports: packets whose TTL or hop limit runs out,
//! packets the router has no route for, and UDP to the router itself come back out of the
//! port they came in by as the ICMP time exceeded or destination unreachable message a router
//! sends, TCP to the router as a reset, and other transports to the router as protocol
//! unreachable (IPv6: parameter problem), byte for byte against etherparse; ICMP errors,
//! resets and packets beyond the rate are dropped as `ttl_exceeded`, `no_route` and `local`.

mod common;

use common::*;
use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, IpNumber, Ipv4Header, PacketBuilder};

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x07];
const PORT0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbb, 0x00];
const HOST: [u8; 4] = [198, 18, 0, 7];
const ROUTER: [u8; 4] = [198, 18, 0, 1];
const FAR: [u8; 4] = [198, 18, 1, 5];
const HOST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const ROUTER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const FAR6: [u8; 16] = [0x20, 0x01, 0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5];
/// Addresses no route covers (the built-in tables route 198.18.P.0/24 and 2001:200:0:P::/64).
const NOWHERE: [u8; 4] = [203, 0, 113, 5];
const NOWHERE6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
];

fn udp4(ttl: u8) -> Vec<u8> {
    udp4_to(FAR, ttl)
}

fn udp4_to(dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, PORT0_MAC)
        .ipv4(HOST, dst, ttl)
        .udp(33434, 33435)
        .write(&mut out, b"traceroute probe")
        .unwrap();
    out
}

fn udp6(hops: u8) -> Vec<u8> {
    udp6_to(FAR6, hops)
}

fn udp6_to(dst: [u8; 16], hops: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, PORT0_MAC)
        .ipv6(HOST6, dst, hops)
        .udp(33434, 33435)
        .write(&mut out, b"traceroute probe")
        .unwrap();
    out
}

/// The ICMP error `kind` the router sends back for an IPv4 packet, quoting `had` (the packet
/// as the router had it: its TTL one less if it was taken before the error was found, which
/// RFC 1812 §4.3.2.3 allows) whole, from its address on port 0.
fn error4(kind: Icmpv4Type, had: &[u8], router_mac: [u8; 6]) -> Vec<u8> {
    let quoted = &had[14..];
    let icmp_len = (8 + quoted.len()) as u16;
    let mut ip = Ipv4Header::new(icmp_len, 64, IpNumber::ICMP, ROUTER, HOST).unwrap();
    ip.dont_fragment = true;
    let mut out = Vec::new();
    PacketBuilder::ethernet2(router_mac, HOST_MAC)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .icmpv4(kind)
        .write(&mut out, quoted)
        .unwrap();
    out
}

/// As [`error4`], for ICMPv6.
fn error6(kind: Icmpv6Type, had: &[u8], router_mac: [u8; 6]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(router_mac, HOST_MAC)
        .ipv6(ROUTER6, HOST6, 64)
        .icmpv6(kind)
        .write(&mut out, &had[14..])
        .unwrap();
    out
}

const TIME_EXCEEDED4: Icmpv4Type =
    Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit);
const TIME_EXCEEDED6: Icmpv6Type =
    Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded);
const NET_UNREACHABLE4: Icmpv4Type =
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Network);
const NO_ROUTE6: Icmpv6Type =
    Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::NoRoute);
const PORT_UNREACHABLE4: Icmpv4Type =
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port);
const PORT_UNREACHABLE6: Icmpv6Type =
    Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port);

/// Port 0 sent exactly the answers `want`, in order.
fn assert_answers(out0: &[Vec<u8>], want: &[Vec<u8>], stdout: &str) {
    assert_eq!(out0.len(), want.len(), "{stdout}");
    for (i, (got, want)) in out0.iter().zip(want).enumerate() {
        assert_eq!(got, want, "answer {i}");
    }
}

/// With `--icmp-rate 0`, no frame of `frames` is answered, and the account's drops are
/// `drops`.
fn assert_none_answered(frames: &[Vec<u8>], drops: &str) {
    let (out0, _, stdout) = run(frames, &["--icmp-rate", "0"]);
    assert!(out0.is_empty(), "{stdout}");
    assert_eq!(total_drops(&stdout), drops, "{stdout}");
}

/// Runs the router with addresses on port 0 over `frames` into port 0; returns what port 0
/// sent, port 0's MAC and the final account.
fn run(frames: &[Vec<u8>], extra: &[&str]) -> (Vec<Vec<u8>>, [u8; 6], String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    args.extend(pcap_ports(dir.path(), frames));
    args.extend(strings(&[
        "--",
        "-p",
        "0x3",
        "--addr",
        "0,198.18.0.1/24",
        "--addr",
        "0,2001:db8::1/64",
    ]));
    args.extend(strings(extra));
    let run = run_over_pcaps(&args);
    let out0 = read_pcap(dir.path().join("out0.pcap").as_path());
    let mac0 = port_mac(&run.stdout, 0);
    (out0, mac0, run.stdout)
}

#[test]
fn expired_packets_are_answered_from_the_router_and_icmp_errors_are_not() {
    // An ICMP error itself (a time exceeded message from further on) must not be answered.
    let mut error = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, PORT0_MAC)
        .ipv4(HOST, FAR, 1)
        .icmpv4(TIME_EXCEEDED4)
        .write(&mut error, &udp4(1)[14..42])
        .unwrap();
    let frames = vec![udp4(1), udp4(0), udp6(1), error];
    let (out0, mac0, stdout) = run(&frames, &[]);
    let want = [
        error4(TIME_EXCEEDED4, &frames[0], mac0),
        error4(TIME_EXCEEDED4, &frames[1], mac0),
        error6(TIME_EXCEEDED6, &frames[2], mac0),
    ];
    assert_answers(&out0, &want, &stdout);
    assert_eq!(total_drops(&stdout), "ttl_exceeded 1", "{stdout}");
}

#[test]
fn answers_beyond_the_rate_are_dropped_as_ttl_exceeded() {
    // One a second allows one at once: the other two go unanswered.
    let frames = vec![udp4(1), udp4(1), udp4(1)];
    let (out0, mac0, stdout) = run(&frames, &["--icmp-rate", "1"]);
    assert_eq!(out0, [error4(TIME_EXCEEDED4, &frames[0], mac0)], "{stdout}");
    assert_eq!(total_drops(&stdout), "ttl_exceeded 2", "{stdout}");
    // And none at all with a rate of zero.
    assert_none_answered(&frames, "ttl_exceeded 3");
}

#[test]
fn packets_without_a_route_are_answered_with_destination_unreachable() {
    // An unreachable answered would be an ICMP error about an ICMP error: not sent.
    let mut error = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, PORT0_MAC)
        .ipv4(HOST, NOWHERE, 64)
        .icmpv4(PORT_UNREACHABLE4)
        .write(&mut error, &udp4(64)[14..42])
        .unwrap();
    let frames = vec![udp4_to(NOWHERE, 64), udp6_to(NOWHERE6, 64), error];
    let (out0, mac0, stdout) = run(&frames, &[]);
    let want = [
        error4(NET_UNREACHABLE4, &udp4_to(NOWHERE, 63), mac0),
        error6(NO_ROUTE6, &udp6_to(NOWHERE6, 63), mac0),
    ];
    assert_answers(&out0, &want, &stdout);
    assert_eq!(total_drops(&stdout), "no_route 1", "{stdout}");
    // Time exceeded and unreachable share the rate: one a second allows one at once.
    let frames = vec![udp4(1), udp4_to(NOWHERE, 64)];
    let (out0, _, stdout) = run(&frames, &["--icmp-rate", "1"]);
    assert_eq!(out0.len(), 1, "{stdout}");
    assert_eq!(total_drops(&stdout), "no_route 1", "{stdout}");
}

/// A TCP segment between the host's port 40000 and the router's port 22, either way.
fn tcp_segment(
    ip: etherparse::IpHeaders,
    macs: ([u8; 6], [u8; 6]),
    (from_router, seq, window): (bool, u32, u16),
    flags: &str,
    ack: Option<u32>,
    data: &[u8],
) -> Vec<u8> {
    let ports = if from_router {
        (22, 40000)
    } else {
        (40000, 22)
    };
    let mut step = PacketBuilder::ethernet2(macs.0, macs.1)
        .ip(ip)
        .tcp(ports.0, ports.1, seq, window);
    for flag in flags.chars() {
        step = match flag {
            'S' => step.syn(),
            'R' => step.rst(),
            'F' => step.fin(),
            _ => unreachable!("a flag the tests use"),
        };
    }
    if let Some(n) = ack {
        step = step.ack(n);
    }
    let mut out = Vec::new();
    step.write(&mut out, data).unwrap();
    out
}

fn host_to_router4() -> etherparse::IpHeaders {
    etherparse::IpHeaders::Ipv4(
        Ipv4Header::new(0, 64, IpNumber::TCP, HOST, ROUTER).unwrap(),
        Default::default(),
    )
}

fn host_to_router6() -> etherparse::IpHeaders {
    etherparse::IpHeaders::Ipv6(
        etherparse::Ipv6Header {
            hop_limit: 64,
            source: HOST6,
            destination: ROUTER6,
            ..Default::default()
        },
        Default::default(),
    )
}

/// The reset the router answers with, from its address on port 0 (IPv4 with don't fragment
/// set, as its other answers).
fn reset(v6: bool, router_mac: [u8; 6], seq: u32, ack: Option<u32>) -> Vec<u8> {
    let ip = if v6 {
        etherparse::IpHeaders::Ipv6(
            etherparse::Ipv6Header {
                hop_limit: 64,
                source: ROUTER6,
                destination: HOST6,
                ..Default::default()
            },
            Default::default(),
        )
    } else {
        let mut ip = Ipv4Header::new(0, 64, IpNumber::TCP, ROUTER, HOST).unwrap();
        ip.dont_fragment = true;
        etherparse::IpHeaders::Ipv4(ip, Default::default())
    };
    tcp_segment(ip, (router_mac, HOST_MAC), (true, seq, 0), "R", ack, &[])
}

/// A packet of IP protocol (next header) `protocol` from the host to the router.
fn to_router_over(v6: bool, protocol: u8) -> Vec<u8> {
    let ip = if v6 {
        host_to_router6()
    } else {
        host_to_router4()
    };
    let mut out = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, PORT0_MAC)
        .ip(ip)
        .write(
            &mut out,
            IpNumber(protocol),
            b"not a transport the router speaks",
        )
        .unwrap();
    out
}

/// An IPv6 packet from the host to the router whose next header is `next` with nothing of it
/// after the fixed header (etherparse builds no such packet: the byte is written here).
fn to_router_next_header(next: u8) -> Vec<u8> {
    let mut out = to_router_over(true, 47);
    out[14 + 6] = next;
    out
}

const PROTOCOL_UNREACHABLE4: Icmpv4Type =
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Protocol);
/// RFC 8200 §4: the pointer is the offset of the next header field, 6 in the fixed header.
const UNRECOGNIZED_NEXT_HEADER6: Icmpv6Type =
    Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
        code: icmpv6::ParameterProblemCode::UnrecognizedNextHeader,
        pointer: 6,
    });

#[test]
fn transports_the_router_does_not_speak_are_answered_with_protocol_unreachable() {
    const GRE: u8 = 47;
    let frames = vec![
        to_router_over(false, GRE),
        to_router_over(true, GRE),
        // Extension headers, which the router does not walk, and no next header: consumed.
        to_router_next_header(0),
        to_router_next_header(44),
        to_router_next_header(59),
    ];
    let (out0, mac0, stdout) = run(&frames, &[]);
    let want = [
        error4(PROTOCOL_UNREACHABLE4, &frames[0], mac0),
        error6(UNRECOGNIZED_NEXT_HEADER6, &frames[1], mac0),
    ];
    assert_answers(&out0, &want, &stdout);
    assert_eq!(total_drops(&stdout), "local 3", "{stdout}");
    assert_none_answered(&frames, "local 5");
}

#[test]
fn closed_ports_of_the_router_answer_udp_with_port_unreachable_and_tcp_with_a_reset() {
    // traceroute's probes to the router itself: the TTL does not matter, the router is the
    // destination.
    let to_router = (HOST_MAC, PORT0_MAC);
    let frames = vec![
        udp4_to(ROUTER, 1),
        udp6_to(ROUTER6, 64),
        // A SYN: RST and ACK, acknowledging the SYN (RFC 9293 §3.10.7.1).
        tcp_segment(
            host_to_router4(),
            to_router,
            (false, 1, 64240),
            "S",
            None,
            &[],
        ),
        // Data with an ACK: a RST whose sequence number is the ACK's.
        tcp_segment(
            host_to_router6(),
            to_router,
            (false, 5, 512),
            "",
            Some(77),
            b"hi",
        ),
        // A FIN with data: each counts.
        tcp_segment(
            host_to_router4(),
            to_router,
            (false, 9, 512),
            "F",
            None,
            b"abc",
        ),
        // A reset is never answered.
        tcp_segment(host_to_router4(), to_router, (false, 7, 0), "R", None, &[]),
    ];
    let (out0, mac0, stdout) = run(&frames, &[]);
    let want = [
        error4(PORT_UNREACHABLE4, &frames[0], mac0),
        error6(PORT_UNREACHABLE6, &frames[1], mac0),
        reset(false, mac0, 0, Some(2)),
        reset(true, mac0, 77, None),
        reset(false, mac0, 0, Some(13)),
    ];
    assert_answers(&out0, &want, &stdout);
    assert_eq!(total_drops(&stdout), "local 1", "{stdout}");
    // A segment whose checksum is wrong is consumed unanswered.
    let mut spoiled = frames[2].clone();
    let last = spoiled.len() - 1;
    spoiled[last - 2] ^= 0x01; // in the TCP header's checksum
    let (out0, _, stdout) = run(&[spoiled], &[]);
    assert!(out0.is_empty(), "{stdout}");
    assert_eq!(total_drops(&stdout), "local 1", "{stdout}");
    // With no answers asked for, UDP and TCP are consumed.
    assert_none_answered(&frames, "local 6");
}
