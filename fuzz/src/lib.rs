//! The fuzz targets, as functions: `fuzz_targets/` hands them libFuzzer's inputs
//! (`scripts/fuzz.sh`), and `tests/regressions.rs` replays every input that once failed.
//!
//! Each takes outside bytes to one parser (a `net` view, a rule, neighbour or stream file, a
//! control command, a range, a pcap) or, in [`l3fwd_stage`] and [`l3fwd_responder`], a burst
//! through `L3Forward` or the router's `Responder`. None
//! may panic, and each checks what its parser promises: what parses emits and parses back the
//! same; errors name the line; a forwarded packet is what the reference router
//! (`engine/tests/reference`) sends.

#[path = "../../engine/tests/reference/mod.rs"]
pub mod reference;

use sluice::net::ethernet::{self, Frame};
use sluice::net::{arp, icmp, icmpv6, ipv4, ipv6, tcp, udp, vlan};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Text from bytes, as a user's file would reach the parser (invalid UTF-8 is refused when
/// the file is read, before any parser sees it).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// An error of a file parser names `file:LINE:` with a line the text has.
fn check_error_line(error: &str, file: &str, text: &str) {
    let rest = error
        .strip_prefix(&format!("{file}:"))
        .unwrap_or_else(|| panic!("error does not name the file: {error}"));
    let line: usize = rest
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("error does not name the line: {error}"));
    assert!(
        (1..=text.lines().count().max(1)).contains(&line),
        "line {line} of a {}-line file: {error}",
        text.lines().count()
    );
}

pub fn net_ethernet(data: &[u8]) {
    let Ok(frame) = Frame::new_checked(data) else {
        assert!(data.len() < ethernet::HEADER_LEN);
        return;
    };
    assert_eq!(frame.payload().len(), data.len() - ethernet::HEADER_LEN);
    let repr = ethernet::Repr::parse(&frame);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Frame::new_checked(&mut out[..]).expect("a header's room"));
    assert_eq!(out, data[..ethernet::HEADER_LEN]);
    let _ = (repr.src_addr.is_multicast(), repr.dst_addr.is_local());
}

pub fn net_vlan(data: &[u8]) {
    let Ok(tag) = vlan::Tag::new_checked(data) else {
        assert!(data.len() < vlan::TAG_LEN);
        return;
    };
    assert!(tag.priority() <= 7 && tag.vlan_id() <= 0x0fff);
    let _ = tag.ethertype();
}

pub fn net_arp(data: &[u8]) {
    let Ok(repr) = arp::Repr::parse(data) else {
        return;
    };
    let mut out = [0u8; arp::PACKET_LEN];
    repr.emit(&mut out).expect("a packet's room");
    assert_eq!(arp::Repr::parse(&out), Ok(repr));
    assert_eq!(out, data[..arp::PACKET_LEN]);
}

pub fn net_ipv4(data: &[u8]) {
    let Ok(packet) = ipv4::Packet::new_checked(data) else {
        assert!(data.len() < ipv4::MIN_HEADER_LEN);
        return;
    };
    let valid = packet.validate();
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let _ = (packet.protocol(), packet.checksum(), packet.dst_u32());
    if valid.is_ok() {
        assert!(packet.header_len() + packet.payload().len() == usize::from(packet.total_len()));
    }
    // The fast path takes exactly the plain headers the long way passes.
    let mut copy = data.to_vec();
    let header: &mut [u8; 20] = (&mut copy[..20]).try_into().expect("20 bytes");
    let forwarded = ipv4::forward_plain(header, data.len());
    let suspect = |a: Ipv4Addr| matches!(a.octets()[0], 0 | 127 | 169 | 224..=255);
    let plain = valid.is_ok()
        && packet.header_len() == ipv4::MIN_HEADER_LEN
        && packet.ttl() > 1
        && !suspect(src)
        && !suspect(dst);
    assert_eq!(forwarded.is_some(), plain, "{valid:?} ttl {}", packet.ttl());
    match forwarded {
        Some(dst) => {
            let after = ipv4::Packet::new_checked(&copy[..]).expect("as long");
            assert_eq!(after.validate(), Ok(()), "checksum kept right");
            assert_eq!(after.ttl(), packet.ttl() - 1);
            assert_eq!(dst, packet.dst_u32());
            assert!(!ipv4::is_martian(after.src_addr()) && !ipv4::is_martian(after.dst_addr()));
        }
        None => assert_eq!(copy, data, "left as it was"),
    }
}

pub fn net_ipv6(data: &[u8]) {
    let Ok(packet) = ipv6::Packet::new_checked(data) else {
        assert!(data.len() < ipv6::HEADER_LEN);
        return;
    };
    let valid = packet.validate();
    if valid.is_ok() {
        assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
    }
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let mut copy = data.to_vec();
    let header: &mut [u8; 40] = (&mut copy[..40]).try_into().expect("40 bytes");
    let forwarded = ipv6::forward_plain(header, data.len());
    let suspect = |a: Ipv6Addr| matches!(a.octets()[0], 0x00 | 0xfe | 0xff);
    let plain = valid.is_ok() && packet.hop_limit() > 1 && !suspect(src) && !suspect(dst);
    assert_eq!(forwarded, plain);
    if forwarded {
        assert_eq!(copy[7], data[7] - 1);
        assert_eq!(copy[..7], data[..7]);
        assert_eq!(copy[8..], data[8..]);
        assert!(!ipv6::is_martian(&src) && !ipv6::is_martian(&dst));
    } else {
        assert_eq!(copy, data);
    }
    let _ = (packet.next_header(), packet.src_bytes(), packet.dst_bytes());
}

pub fn net_icmp(data: &[u8]) {
    let Ok(message) = icmp::Message::new_checked(data) else {
        assert!(data.len() < icmp::HEADER_LEN);
        return;
    };
    let request = message.msg_type() == icmp::ECHO_REQUEST && message.code() == 0;
    let valid = message.verify_checksum();
    let mut copy = data.to_vec();
    let mut reply = icmp::Message::new_checked(&mut copy[..]).expect("as long");
    reply.make_echo_reply();
    if request && valid {
        assert!(reply.verify_checksum(), "the reply's checksum is right");
        assert_eq!(reply.msg_type(), icmp::ECHO_REPLY);
        assert_eq!(copy[4..], data[4..]);
    }
}

pub fn net_icmpv6(data: &[u8]) {
    if let Ok(repr) = icmpv6::NeighbourRepr::parse(data) {
        let mut out = [0u8; icmpv6::NEIGHBOUR_LEN];
        let len = repr.emit(&mut out).expect("room for any");
        assert_eq!(icmpv6::NeighbourRepr::parse(&out[..len]), Ok(repr));
    }
    let (src, dst): (Ipv6Addr, Ipv6Addr) =
        ("2001:db8::1".parse().unwrap(), "ff02::1".parse().unwrap());
    let mut copy = data.to_vec();
    if copy.len() >= 4 {
        icmpv6::fill_checksum(&src, &dst, &mut copy);
        assert_eq!(icmpv6::checksum(&src, &dst, &copy), 0);
        let request = copy[..2] == [icmpv6::ECHO_REQUEST, 0];
        if icmpv6::make_echo_reply(&mut copy).is_ok() && request {
            assert_eq!(icmpv6::checksum(&src, &dst, &copy), 0, "reply checksum");
        }
    }
    let group = icmpv6::solicited_node(&src);
    assert!(group.is_multicast() && icmpv6::multicast_mac(&group).is_multicast());
}

pub fn net_udp(data: &[u8]) {
    let Ok(packet) = udp::Packet::new_checked(data) else {
        assert!(data.len() < udp::HEADER_LEN);
        return;
    };
    assert!(packet.payload().len() <= data.len() - udp::HEADER_LEN);
    assert_eq!(
        udp::ports(data),
        Some((packet.src_port(), packet.dst_port()))
    );
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 1, 1));
    let _ = packet.verify_checksum_v4(src, dst);
    let Ok(repr) = udp::Repr::parse(&packet) else {
        return;
    };
    let payload = packet.payload();
    let mut out = vec![0u8; udp::HEADER_LEN + payload.len()];
    out[udp::HEADER_LEN..].copy_from_slice(payload);
    repr.emit_v4(&mut out, payload.len(), src, dst)
        .expect("room");
    let again = udp::Packet::new_checked(&out[..]).expect("a header");
    assert_eq!(udp::Repr::parse(&again), Ok(repr));
    assert!(again.verify_checksum_v4(src, dst));
    assert_eq!(again.payload(), payload);
    // Over IPv6, where the checksum is mandatory.
    let (src6, dst6): (Ipv6Addr, Ipv6Addr) =
        ("fd00:1::2".parse().unwrap(), "fd00:1::1".parse().unwrap());
    let _ = packet.verify_checksum_v6(&src6, &dst6);
    repr.emit_v6(&mut out, payload.len(), &src6, &dst6)
        .expect("room");
    let again = udp::Packet::new_checked(&out[..]).expect("a header");
    assert!(again.verify_checksum_v6(&src6, &dst6));
    assert_eq!(again.payload(), payload);
}

pub fn net_tcp(data: &[u8]) {
    let Ok(packet) = tcp::Packet::new_checked(data) else {
        assert!(data.len() < tcp::HEADER_LEN);
        return;
    };
    let _ = (packet.checksum(), packet.payload().len());
    let Ok(repr) = tcp::Repr::parse(&packet) else {
        return;
    };
    assert_eq!(packet.payload().len(), data.len() - packet.header_len());
    let mut out = [0u8; tcp::HEADER_LEN];
    repr.emit(&mut out).expect("room");
    let again = tcp::Packet::new_checked(&out[..]).expect("a header");
    assert_eq!(tcp::Repr::parse(&again), Ok(repr));
}

pub fn l3fwd_rules(data: &[u8]) {
    use sluice_l3fwd::rules;
    let Some(text) = text(data) else {
        return;
    };
    let file = "fuzz.cfg";
    let check = |e: rules::RuleError| check_error_line(&e.to_string(), file, text);
    let lines = text.lines().count();
    for parsed in [
        rules::parse_lpm_v4(text, file).map(|r| r.iter().map(|r| r.line).collect::<Vec<_>>()),
        rules::parse_lpm_v6(text, file).map(|r| r.iter().map(|r| r.line).collect()),
        rules::parse_em_v4(text, file).map(|r| r.iter().map(|r| r.line).collect()),
        rules::parse_em_v6(text, file).map(|r| r.iter().map(|r| r.line).collect()),
        rules::parse_acl_v4(text, file).map(|r| r.iter().map(|r| r.line).collect()),
        rules::parse_acl_v6(text, file).map(|r| r.iter().map(|r| r.line).collect()),
    ] {
        match parsed {
            Ok(rule_lines) => assert!(rule_lines.iter().all(|l| (1..=lines).contains(l))),
            Err(e) => check(e),
        }
    }
    if let Ok(routes) = rules::parse_lpm_v4(text, file) {
        assert!(routes.iter().all(|r| r.depth <= 32));
    }
    if let Ok(routes) = rules::parse_lpm_v6(text, file) {
        assert!(routes.iter().all(|r| r.depth <= 128));
    }
}

pub fn l3fwd_neighbours(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    match sluice_l3fwd::neighbours::parse(text, "neighbours") {
        Ok(entries) => assert!(entries.len() <= text.lines().count()),
        Err(e) => check_error_line(&e, "neighbours", text),
    }
}

pub fn l3fwd_control(data: &[u8]) {
    use sluice_l3fwd::control::Request;
    let Some(line) = text(data) else {
        return;
    };
    match Request::parse(line) {
        Ok(request) => assert_eq!(Request::parse(&request.to_string()), Ok(request)),
        Err(e) => assert!(!e.is_empty()),
    }
}

pub fn pktgen_ranges(data: &[u8]) {
    use sluice_pktgen::spec::{
        parse_tcp_flags, FieldRange, KeyDist, Rate, Sizes, MAX_FRAME, MIN_FRAME,
    };
    let Some(text) = text(data) else {
        return;
    };
    let (port, mac, ip) = (
        FieldRange::parse_port(text),
        FieldRange::parse_mac(text),
        FieldRange::parse_ip(text).map(|(r, _)| r),
    );
    for range in [port, mac, ip].into_iter().flatten() {
        assert!(range.start <= range.end && range.step > 0);
        assert!(range.count() >= 1);
    }
    if let Ok(sizes) = Sizes::parse(text) {
        let sequence = sizes.sequence();
        assert!(!sequence.is_empty());
        assert!(sequence.iter().all(|s| (MIN_FRAME..=MAX_FRAME).contains(s)));
    }
    if let Ok(rate) = Rate::parse(text) {
        if let Ok(Some(pps)) = rate.pps(64.0, Some(10e9)) {
            assert!(pps.is_finite() && pps >= 0.0);
        }
    }
    let _ = parse_tcp_flags(text);
    if let Ok(KeyDist::Zipf(theta)) = KeyDist::parse(text) {
        assert!((0.0..=5.0).contains(&theta));
    }
}

pub fn pktgen_streams(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    if let Ok(streams) = sluice_pktgen::spec::parse_streams(text, "streams.toml", 0) {
        assert!(!streams.is_empty());
        for s in &streams {
            assert!(!s.sizes.sequence().is_empty());
            assert!(s.dst_ip.start <= s.dst_ip.end);
        }
    }
}

pub fn pktgen_pcap(data: &[u8]) {
    use sluice_pktgen::replay::Replay;
    let Ok(mut replay) = Replay::read(data, "fuzz.pcap", 1, 1518) else {
        return;
    };
    assert!(replay.mean_frame() >= 18.0);
    for _ in 0..1000 {
        if replay.done() {
            break;
        }
        let _ = replay.next_due_ns();
        let frame = replay.take();
        assert!((14..=1518).contains(&frame.len()));
    }
}

/// A frame pktgen receives: inspected without a panic; one of ours stays ours whatever its
/// MACs, which no checksum covers.
pub fn pktgen_receive(data: &[u8]) {
    use sluice_pktgen::signature::{inspect, Inspected};
    let seen = inspect(data);
    if let (Inspected::Signed(_), Some(macs)) = (seen, data.get(..12)) {
        let mut other = data.to_vec();
        other[..12].copy_from_slice(&[0x02; 12]);
        assert_eq!(inspect(&other), seen, "{macs:?}");
    }
}

mod stage;
pub use stage::{burst_for_the_router, l3fwd_responder, l3fwd_stage};

/// A sluice-kv datagram: what parses emits and parses back the same; a request's operations
/// and a response's results lie within the datagram; a response built for a request's
/// operations stays within its limit and parses back with a result for each.
pub fn kv_protocol(data: &[u8]) {
    use sluice_kv::protocol::{self as kv, Message, ResponseWriter, Status};
    // A response in the making, as one worker hands it to another: taken up or refused,
    // and once taken up, finished within the limit.
    let mut partial = data.to_vec();
    partial.resize(data.len().max(kv::MAX_PAYLOAD_V4), 0);
    if let Ok(response) = ResponseWriter::resume(&mut partial, kv::MAX_PAYLOAD_V6, data.len()) {
        let count = response.count();
        let n = response.finish();
        assert!(n <= kv::MAX_PAYLOAD_V6);
        if let Ok(Message::Response(parsed)) = Message::parse(&partial[..n]) {
            assert_eq!(parsed.results().expect("results").len(), usize::from(count));
        }
    }
    serve(data);
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let mut out = vec![0u8; data.len().max(kv::HELLO_LEN)];
    let n = message.emit(&mut out).expect("room for what was parsed");
    assert!(n <= data.len(), "emitted {n} bytes from {}", data.len());
    assert_eq!(Message::parse(&out[..n]), Ok(message));
    match message {
        Message::Request(request) => {
            let Ok(ops) = request.operations() else {
                return;
            };
            assert!((1..=kv::MAX_OPS).contains(&ops.len()));
            let mut buffer = [0u8; kv::MAX_PAYLOAD_V4];
            let count = ops.len() as u8;
            let mut response = ResponseWriter::new(
                &mut buffer,
                kv::MAX_PAYLOAD_V6,
                request.session,
                request.id,
                count,
            )
            .expect("room for every result header");
            for op in ops.iter() {
                let _ = op.check();
                // As a GET would answer with the operation's value.
                if !response.push(Status::Ok, op.value) {
                    break;
                }
            }
            let n = response.finish();
            assert!(n <= kv::MAX_PAYLOAD_V6);
            let Ok(Message::Response(parsed)) = Message::parse(&buffer[..n]) else {
                panic!("a response");
            };
            assert_eq!(parsed.results().expect("results").len(), ops.len());
        }
        Message::Response(response) => {
            if let Ok(results) = response.results() {
                assert_eq!(results.len(), usize::from(response.count));
            }
        }
        _ => assert_eq!(n, message.kind().min_len()),
    }
}

/// `data` as a datagram to a server of two workers (worker 0), which first asks for the lines
/// it will read (as a worker does for a burst), then answers: no panic, and no answer larger
/// than the question (none is authenticated).
fn serve(data: &[u8]) {
    use sluice_kv::protocol as kv;
    use sluice_kv::server::{Limits, Outcome, Server, Shard};
    use sluice_kv::store::Store;
    use std::cell::RefCell;
    thread_local! {
        static SERVER: RefCell<Server> = RefCell::new(Server::sharded(
            1,
            [1; 16],
            [2; 16],
            Store::new(64, [3; 16]),
            Limits { sessions_max: 8, ..Limits::default() },
            Shard { worker: 0, workers: 2, key: [4; 16] },
        ));
    }
    let from = std::net::SocketAddr::from((Ipv4Addr::new(10, 1, 0, 1), 1024));
    let mut out = vec![0u8; kv::MAX_PAYLOAD_V6];
    SERVER.with_borrow_mut(|server| {
        server.prefetch(data);
        // No session can exist (a cookie cannot be guessed): every answer is to an
        // unauthenticated datagram.
        if let Outcome::Reply(n) = server.handle(data, from, 0, &mut out) {
            assert!(n <= data.len(), "{n} bytes for {}", data.len());
        }
    });
}

/// An impairment in netem's words (sluice-impair's --a-to-b, its telemetry command): what
/// parses prints back as netem words that parse to the same impairment.
pub fn impair_netem(data: &[u8]) {
    use sluice::stage::impair::Impairment;
    let Some(line) = text(data) else {
        return;
    };
    let Ok(imp) = Impairment::parse(line) else {
        return;
    };
    let printed = imp.to_string();
    let again = Impairment::parse(if printed == "no impairment" {
        ""
    } else {
        &printed
    })
    .unwrap_or_else(|e| panic!("'{printed}' does not parse back: {e}"));
    assert_eq!(again.to_string(), printed);
}
