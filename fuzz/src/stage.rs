//! `L3Forward` on arbitrary bursts, in every configuration, held to the reference router.
//!
//! The input's first byte picks the configuration; the rest is frames, each as a two-byte
//! length, the port it came in by, then its bytes (a short last frame takes what is left).
//! Each packet's verdict must be the reference's, and each packet sent the reference's bytes:
//! valid checksums, TTL or hop limit one less, the right MACs, nothing a RFC forbids.

use crate::reference::frames::{self, Ip4, Ip6, Payload};
use crate::reference::scenario::{Kind, Scenario, PORTS};
use crate::reference::{fold, ipv6_pseudo_sum, ones_sum, Config, Fate, Router as Reference};
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::stage::offline::Runner;
use sluice::stage::router::Responder;
use sluice::stage::Verdict;
use sluice::{EalBuilder, Mempool, MAX_BURST};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// The largest frame a burst carries (a jumbo frame's worth fits the pool's mbufs).
const MAX_FRAME: usize = 2048;

struct World {
    pool: Mempool,
    scenarios: Vec<Scenario>,
}

/// The EAL, a pool and every scenario's tables, built at the first input.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // One EAL for the process, without hugepages (the fuzzer runs anywhere); room for the
        // six scenarios' tables (rte_lpm alone takes 64 MB).
        let eal = EalBuilder::new("sluice-fuzz")
            .args(["-l", "0", "--no-huge", "-m", "1024", "--log-level=*:error"])
            .args(["--no-shconf", "--no-telemetry"])
            .start()
            .unwrap_or_else(|e| panic!("EAL: {e}"));
        // This EAL lives as long as the process and is never cleaned up; with no shared
        // configuration and no telemetry its runtime directory stays empty: remove it now.
        let _ = std::fs::remove_dir_all(eal.runtime_dir());
        let pool = Mempool::pktmbuf(&eal, "fuzz", 1023, DEFAULT_CACHE, DEFAULT_DATA_ROOM, None)
            .expect("a pool");
        let scenarios = Kind::ALL.iter().map(|&k| Scenario::new(&eal, k)).collect();
        World { pool, scenarios }
    })
}

/// The frames of an input: (port, bytes), at most a burst.
fn frames(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 && out.len() < MAX_BURST {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]])) % (MAX_FRAME + 1);
        let port = PORTS[usize::from(data[2]) % PORTS.len()];
        let rest = &data[3..];
        let (frame, next) = rest.split_at(len.min(rest.len()));
        out.push((port, frame));
        data = next;
    }
    out
}

pub fn l3fwd_stage(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let scenario = &world.scenarios[usize::from(pick) % world.scenarios.len()];
    let burst = frames(rest);
    if burst.is_empty() {
        return;
    }
    let mut runner = Runner::new(world.pool.clone());
    let mut stage = scenario.stage();
    let mut reference = Reference::new(scenario.config.clone());
    let run = runner
        .run(&mut stage, &burst)
        .expect("the pool holds a burst");
    assert_eq!(run.outcomes.len(), burst.len(), "one verdict per packet");
    for (i, ((port, frame), outcome)) in burst.iter().zip(&run.outcomes).enumerate() {
        let want = reference.forward(*port, frame);
        let got = match outcome.verdict {
            Verdict::Tx(p) => Fate::Tx(p, outcome.frame.clone()),
            Verdict::Drop(reason) => Fate::Drop(reason.name()),
            Verdict::Hold => Fate::Hold,
            Verdict::Next | Verdict::Handoff(_) => Fate::Drop("next"),
        };
        assert_eq!(
            got, want,
            "packet {i} ({:?}), in on port {port}",
            scenario.config.table
        );
    }
    let (mut sent, mut requested) = (run.sent, reference.take_sent());
    sent.sort();
    requested.sort();
    assert_eq!(sent, requested, "requests for neighbours");
    assert_eq!(runner.counts().held as usize, reference.held().0);
    runner.stop(&mut stage);
}

/// The router's `Responder` (ARP, neighbour discovery, echo, port unreachable) on arbitrary
/// bursts, with router mode's addresses; the input is frames as for [`l3fwd_stage`]. No panic,
/// one verdict per packet; a packet passed on is untouched; every answer goes back out of the
/// port its packet came in by, from one of the router's addresses, checksums right
/// ([`check_answer`]).
pub fn l3fwd_responder(data: &[u8]) {
    let world = world();
    let scenario = world
        .scenarios
        .iter()
        .find(|s| s.kind == Kind::Router)
        .expect("router mode is a scenario");
    let burst = frames(data);
    if burst.is_empty() {
        return;
    }
    let mut runner = Runner::new(world.pool.clone());
    let mut responder = Responder::new(scenario.router.clone()).answer_closed_ports(u32::MAX);
    let run = runner
        .run(&mut responder, &burst)
        .expect("the pool holds a burst");
    assert_eq!(run.outcomes.len(), burst.len(), "one verdict per packet");
    assert!(run.sent.is_empty(), "answers go as verdicts");
    for (i, ((port, frame), outcome)) in burst.iter().zip(&run.outcomes).enumerate() {
        match outcome.verdict {
            Verdict::Next => assert_eq!(outcome.frame, *frame, "packet {i} passed on, changed"),
            Verdict::Drop(_) => {}
            Verdict::Tx(out) => {
                assert_eq!(out, *port, "packet {i} answered out of another port");
                check_answer(&scenario.config, frame, &outcome.frame);
            }
            other => panic!("packet {i}: {other:?} from a stage that only answers"),
        }
    }
    runner.stop(&mut responder);
}

/// An answer of the Responder to `asked`, checked with the reference's own checksum code: an
/// ARP reply from one of the router's addresses, or an IPv4 or IPv6 packet from one of them
/// carrying ICMP or ICMPv6 with every checksum right, back to the MAC that asked (but for
/// neighbour discovery, whose answers may go to a multicast group).
fn check_answer(config: &Config, asked: &[u8], answer: &[u8]) {
    let ours_v4: Vec<Ipv4Addr> = config
        .ports
        .iter()
        .flat_map(|p| &p.v4)
        .map(|a| a.0)
        .collect();
    let ours_v6: Vec<Ipv6Addr> = config
        .ports
        .iter()
        .flat_map(|p| &p.v6)
        .map(|a| a.0)
        .collect();
    assert!(
        answer.len() >= 14 && asked.len() >= 14,
        "an Ethernet header"
    );
    let back_to_asker = answer[..6] == asked[6..12];
    let ip = &answer[14..];
    match u16::from_be_bytes([answer[12], answer[13]]) {
        0x0806 => {
            assert!(ip.len() >= 28, "a whole ARP packet");
            assert_eq!(
                ip[..8],
                [0, 1, 8, 0, 6, 4, 0, 2],
                "an Ethernet/IPv4 ARP reply"
            );
            let sender = Ipv4Addr::new(ip[14], ip[15], ip[16], ip[17]);
            assert!(ours_v4.contains(&sender), "ARP reply for {sender}");
            assert_eq!(answer[6..12], ip[8..14], "from the MAC it names");
        }
        0x0800 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            assert!(
                ip[0] >> 4 == 4 && ihl >= 20 && ip.len() >= ihl,
                "an IPv4 header"
            );
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert!(
                (ihl + 8..=ip.len()).contains(&total),
                "total length {total}"
            );
            assert_eq!(fold(ones_sum(&ip[..ihl])), 0, "IPv4 header checksum");
            let message = &ip[ihl..total];
            match ip[9] {
                1 => assert_eq!(fold(ones_sum(message)), 0, "ICMP checksum"),
                6 => {
                    let pseudo = ones_sum(&ip[12..20]) + 6 + message.len() as u32;
                    assert_eq!(fold(pseudo + ones_sum(message)), 0, "TCP checksum");
                    check_reset(message);
                }
                other => panic!("an answer of IP protocol {other}"),
            }
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            assert!(ours_v4.contains(&src), "from {src}");
            assert!(back_to_asker, "back to the MAC that asked");
        }
        0x86dd => {
            assert!(
                ip.len() >= 48 && ip[0] >> 4 == 6,
                "an IPv6 header and a message"
            );
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            assert!(40 + len <= ip.len() && len >= 8, "payload length {len}");
            let message = &ip[40..40 + len];
            let sum = ipv6_pseudo_sum(&ip[8..24], &ip[24..40], len, ip[6]) + ones_sum(message);
            match ip[6] {
                58 => assert_eq!(fold(sum), 0, "ICMPv6 checksum"),
                6 => {
                    assert_eq!(fold(sum), 0, "TCP checksum");
                    check_reset(message);
                }
                other => panic!("an answer of next header {other}"),
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).expect("16 bytes"));
            assert!(ours_v6.contains(&src), "from {src}");
            let neighbour_discovery = matches!(message[0], 135 | 136);
            assert!(
                back_to_asker || neighbour_discovery,
                "back to the MAC that asked"
            );
        }
        other => panic!("an answer of EtherType {other:#06x}"),
    }
}

/// A TCP answer is a bare reset: a 20-byte header with RST, no data, no window.
fn check_reset(segment: &[u8]) {
    assert_eq!(segment.len(), 20, "a header alone");
    assert_eq!(segment[12], 0x50, "no options");
    assert_eq!(segment[13] & !0x10, 0x04, "RST, with ACK or without");
    assert_eq!(segment[14..16], [0, 0], "window 0");
}

/// A burst for [`l3fwd_responder`], into port 0, of what hosts send the router there (its
/// addresses 198.18.0.1 and 2001:db8::ffff): an ARP request, and echo requests, UDP, TCP and
/// another protocol over IPv4 and IPv6. The seeds of the target, and its regression test's
/// input.
pub fn burst_for_the_router() -> Vec<u8> {
    let (router, host) = ([2, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 7]);
    let payloads = [
        Payload::Icmp(8),
        Payload::Udp {
            src: 33434,
            dst: 33435,
        },
        Payload::Tcp {
            src: 40000,
            dst: 22,
        },
        Payload::Other(47),
    ];
    let mut frames = vec![frames::arp(
        host,
        Ipv4Addr::new(198, 18, 0, 7),
        Ipv4Addr::new(198, 18, 0, 1),
    )];
    for payload in payloads {
        let ip4 = Ip4 {
            src: Ipv4Addr::new(198, 18, 0, 7),
            dst: Ipv4Addr::new(198, 18, 0, 1),
            ttl: 64,
            payload,
            option_words: 0,
            fragment: 0,
            body: 18,
        };
        frames.push(frames::ipv4(router, host, &ip4));
        let ip6 = Ip6 {
            src: "2001:db8::7".parse().expect("an address"),
            dst: "2001:db8::ffff".parse().expect("an address"),
            hops: 64,
            // ICMPv6's echo request is 128.
            payload: match payload {
                Payload::Icmp(8) => Payload::Icmp(128),
                other => other,
            },
            body: 18,
        };
        frames.push(frames::ipv6(router, host, &ip6));
    }
    let mut out = Vec::new();
    for f in &frames {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.push(0);
        out.extend_from_slice(f);
    }
    out
}
