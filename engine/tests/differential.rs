//! `L3Forward` against the plain reference router of `reference/` (written from RFC 1812 and
//! RFC 4443, sharing no code with the engine), on random and spoiled bursts, in every
//! configuration: each packet's verdict must be the reference's, and each packet sent must be
//! the reference's byte for byte. Bounded to a few seconds per configuration.

mod common;
mod reference;

use proptest::prelude::*;
use reference::frames::{self, Ip4, Ip6, Payload, Spoil};
use reference::scenario::{self, Kind, Scenario};
use reference::{Fate, Router as Reference};
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::stage::offline::Runner;
use sluice::stage::Verdict;
use sluice::Mempool;

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];

fn payload() -> impl Strategy<Value = Payload> {
    let port = proptest::sample::select(scenario::L4_PORTS.to_vec());
    prop_oneof![
        4 => (port.clone(), port.clone()).prop_map(|(src, dst)| Payload::Udp { src, dst }),
        2 => (port.clone(), port).prop_map(|(src, dst)| Payload::Tcp { src, dst }),
        2 => proptest::sample::select(vec![0u8, 3, 8, 11, 128, 129, 1, 135])
            .prop_map(Payload::Icmp),
        1 => proptest::sample::select(vec![47u8, 50, 132]).prop_map(Payload::Other),
    ]
}

fn ttl() -> impl Strategy<Value = u8> {
    proptest::sample::select(vec![0u8, 1, 2, 64, 255])
}

/// The destination MAC of a frame: the router's port, broadcast or multicast.
fn frame_dst() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        8 => Just(scenario::port_mac(0)),
        1 => Just([0xff; 6]),
        1 => Just([0x33, 0x33, 0, 0, 0, 1]),
    ]
}

fn spoil() -> impl Strategy<Value = Spoil> {
    prop_oneof![
        12 => Just(Spoil::None),
        2 => any::<usize>().prop_map(Spoil::FlipBit),
        2 => any::<usize>().prop_map(Spoil::Truncate),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, v)| Spoil::SetByte(at, v)),
        1 => (1usize..40).prop_map(Spoil::Pad),
    ]
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    let v4 = proptest::sample::select(scenario::addresses_v4());
    let v6 = proptest::sample::select(scenario::addresses_v6());
    let ip4 = (
        v4.clone(),
        v4.clone(),
        ttl(),
        payload(),
        prop_oneof![6 => Just(0u8), 1 => 1u8..4],
        prop_oneof![6 => Just(0u16), 1 => 1u16..100],
        0usize..80,
    )
        .prop_map(
            |(src, dst, ttl, payload, option_words, fragment, body)| Ip4 {
                src,
                dst,
                ttl,
                payload,
                option_words,
                fragment,
                body,
            },
        );
    let ip6 = (v6.clone(), v6, ttl(), payload(), 0usize..80).prop_map(
        |(src, dst, hops, payload, body)| Ip6 {
            src,
            dst,
            hops,
            payload,
            body,
        },
    );
    let built = prop_oneof![
        6 => (frame_dst(), ip4).prop_map(|(mac, ip)| frames::ipv4(mac, HOST_MAC, &ip)),
        4 => (frame_dst(), ip6).prop_map(|(mac, ip)| frames::ipv6(mac, HOST_MAC, &ip)),
        1 => (v4.clone(), v4.clone()).prop_map(|(s, t)| frames::arp(HOST_MAC, s, t)),
        1 => (frame_dst(), any::<u16>(), proptest::sample::select(scenario::addresses_v4()))
            .prop_map(|(mac, vlan, dst)| {
                let ip = Ip4 {
                    src: "10.9.9.9".parse().unwrap(),
                    dst,
                    ttl: 64,
                    payload: Payload::Udp { src: 9, dst: 9 },
                    option_words: 0,
                    fragment: 0,
                    body: 10,
                };
                frames::tagged(&frames::ipv4(mac, HOST_MAC, &ip), vlan)
            }),
    ];
    prop_oneof![
        30 => (built, spoil()).prop_map(|(f, how)| frames::spoil(f, how)),
        1 => proptest::collection::vec(any::<u8>(), 0..120),
    ]
}

/// The commonest packets: plain IPv4 or IPv6 to routed, ordinary addresses.
fn plain(v6: bool) -> impl Strategy<Value = Vec<u8>> {
    let ordinary4 = proptest::sample::select(scenario::ordinary_v4());
    let ordinary6 = proptest::sample::select(scenario::ordinary_v6());
    (
        ordinary4.clone(),
        ordinary4,
        ordinary6.clone(),
        ordinary6,
        payload(),
        0usize..40,
    )
        .prop_map(move |(src4, dst4, src6, dst6, payload, body)| {
            let to = scenario::port_mac(0);
            if v6 {
                let ip = Ip6 {
                    src: src6,
                    dst: dst6,
                    hops: 64,
                    payload,
                    body,
                };
                frames::ipv6(to, HOST_MAC, &ip)
            } else {
                let ip = Ip4 {
                    src: src4,
                    dst: dst4,
                    ttl: 64,
                    payload,
                    option_words: 0,
                    fragment: 0,
                    body,
                };
                frames::ipv4(to, HOST_MAC, &ip)
            }
        })
}

/// A burst: of anything, or all plain IPv4 or all plain IPv6 (the fast paths' own case), of
/// any size up to 64, the smallest and the fullest more often.
fn burst() -> impl Strategy<Value = Vec<(u16, Vec<u8>)>> {
    let size = || prop_oneof![1 => 1usize..=3, 3 => 1usize..=64, 1 => 60usize..=64];
    let port = || proptest::sample::select(scenario::PORTS.to_vec());
    prop_oneof![
        3 => size().prop_flat_map(move |n| proptest::collection::vec((port(), frame()), n)),
        1 => size().prop_flat_map(move |n| proptest::collection::vec((port(), plain(false)), n)),
        1 => size().prop_flat_map(move |n| proptest::collection::vec((port(), plain(true)), n)),
    ]
}

/// Runs `bursts` through a fresh stage and a fresh reference, packet by packet: the same
/// verdicts, the same packets sent and requests made, the same packets held.
fn check(scenario: &Scenario, pool: &Mempool, bursts: &[Vec<(u16, Vec<u8>)>]) {
    let mut runner = Runner::new(pool.clone());
    let mut stage = scenario.stage();
    let mut reference = Reference::new(scenario.config.clone());
    let mut no_neighbour = 0;
    for burst in bursts {
        let frames: Vec<(u16, &[u8])> = burst.iter().map(|(p, f)| (*p, &f[..])).collect();
        let run = runner
            .run(&mut stage, &frames)
            .expect("the pool holds a burst");
        for (i, ((port, frame), outcome)) in burst.iter().zip(&run.outcomes).enumerate() {
            let want = reference.forward(*port, frame);
            let got = match outcome.verdict {
                Verdict::Tx(p) => Fate::Tx(p, outcome.frame.clone()),
                Verdict::Drop(reason) => Fate::Drop(reason.name()),
                Verdict::Hold => Fate::Hold,
                Verdict::Next | Verdict::Handoff(_) => Fate::Drop("next"),
            };
            no_neighbour += usize::from(want == Fate::Drop("no_neighbour"));
            assert_eq!(
                got, want,
                "packet {i} of the burst, in on port {port}: {frame:02x?}"
            );
        }
        // Requests go out in the order of the lookups, which need not be the burst's.
        let (mut sent, mut requested) = (run.sent, reference.take_sent());
        sent.sort();
        requested.sort();
        assert_eq!(sent, requested, "requests for neighbours");
    }
    let (held, pushed_out) = reference.held();
    let counts = runner.counts();
    assert_eq!(counts.held as usize, held, "packets held");
    let reason = sluice::stage::router::reasons().no_neighbour;
    assert_eq!(counts.drops_for(reason) as usize, no_neighbour + pushed_out);
    runner.stop(&mut stage);
    assert_eq!(
        runner.counts().held,
        0,
        "the stop releases every held packet"
    );
}

fn differential(kind: Kind) {
    let eal = common::start_eal(&[]);
    let pool =
        Mempool::pktmbuf(&eal, "diff", 1023, DEFAULT_CACHE, DEFAULT_DATA_ROOM, None).unwrap();
    let scenario = Scenario::new(&eal, kind);
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(bursts in proptest::collection::vec(burst(), 1..4))| {
        check(&scenario, &pool, &bursts);
    });
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn lpm_agrees_with_the_reference() {
    differential(Kind::Lpm);
}

#[test]
fn fib_agrees_with_the_reference() {
    differential(Kind::Fib);
}

#[test]
fn exact_match_agrees_with_the_reference() {
    differential(Kind::Exact);
}

#[test]
fn acl_agrees_with_the_reference() {
    differential(Kind::Acl);
}

#[test]
fn the_router_for_real_hosts_agrees_with_the_reference() {
    differential(Kind::Router);
}

#[test]
fn forwarding_martians_agrees_with_the_reference() {
    differential(Kind::MartiansForwarded);
}
