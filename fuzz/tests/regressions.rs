//! Every fuzz target on the inputs that once made it fail (`regressions/TARGET/*`, each crash
//! scripts/fuzz.sh found, kept as it was found), and on a few ordinary frames, so that the
//! normal test suite runs each target's checks.

use sluice_fuzz::reference::frames::{self, Ip4, Ip6, Payload};
use std::path::Path;

fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    inputs.sort();
    inputs.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Ordinary frames: IPv4 and IPv6 with each transport, and ARP.
fn ordinary_frames() -> Vec<Vec<u8>> {
    let (to, from) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let payloads = [
        Payload::Udp { src: 1024, dst: 9 },
        Payload::Tcp {
            src: 40000,
            dst: 80,
        },
        Payload::Icmp(8),
        Payload::Other(47),
    ];
    let mut out = Vec::new();
    for payload in payloads {
        out.push(frames::ipv4(
            to,
            from,
            &Ip4 {
                src: "10.0.0.1".parse().unwrap(),
                dst: "198.18.1.1".parse().unwrap(),
                ttl: 64,
                payload,
                option_words: 0,
                fragment: 0,
                body: 18,
            },
        ));
        out.push(frames::ipv6(
            to,
            from,
            &Ip6 {
                src: "2001:db8::1".parse().unwrap(),
                dst: "2001:200::1".parse().unwrap(),
                hops: 64,
                payload,
                body: 18,
            },
        ));
    }
    out.push(frames::arp(
        from,
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
    ));
    out
}

/// Each view's piece of each ordinary frame, and every prefix of it.
fn pieces(view: fn(&[u8]) -> Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for frame in ordinary_frames() {
        if let Some(piece) = view(&frame) {
            for len in 0..=piece.len() {
                out.push(piece[..len].to_vec());
            }
        }
    }
    out
}

fn ip_payload(frame: &[u8]) -> Option<&[u8]> {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => frame.get(14 + 20..),
        0x86dd => frame.get(14 + 40..),
        _ => None,
    }
}

macro_rules! replay {
    ($($target:ident: $view:expr;)*) => {$(
        #[test]
        fn $target() {
            for input in regressions(stringify!($target)).iter().chain(&pieces($view)) {
                sluice_fuzz::$target(input);
            }
        }
    )*};
}

replay! {
    net_ethernet: |f| Some(f);
    net_vlan: |f| f.get(12..);
    net_arp: |f| f.get(14..);
    net_ipv4: |f| f.get(14..);
    net_ipv6: |f| f.get(14..);
    net_icmp: ip_payload;
    net_icmpv6: ip_payload;
    net_udp: ip_payload;
    net_tcp: ip_payload;
    l3fwd_rules: |_| Some(b"R198.18.0.0/24 0\nR0.0.0.0/0 1\n");
    l3fwd_neighbours: |_| Some(b"10.0.2.2 02:00:00:00:00:02\n");
    l3fwd_control: |_| Some(b"route add 10.1.0.0/16 1");
    pktgen_ranges: |_| Some(b"198.18.1.1-198.18.1.254/random");
    pktgen_streams: |_| Some(b"[[stream]]\nsize = \"imix\"\n");
    pktgen_pcap: |_| None;
    pktgen_receive: |f| Some(f);
    kv_protocol: |_| Some(&KV_REQUEST[..]);
    impair_netem: |_| Some(b"delay 10ms 1ms 25% distribution normal loss gemodel 1% 10% duplicate 1% reorder 25% gap 5 rate 1gbit limit 50000");
}

/// A sluice-kv REQUEST: session 42, request 1, a PUT of "k" = "value" and a GET of "k".
const KV_REQUEST: [u8; 46] = [
    0x53, 0x4b, 1, 4, 0, 0, 0, 0, // header
    0, 0, 0, 0, 0, 0, 0, 42, // session
    0, 0, 0, 0, 0, 0, 0, 1, // request id
    2, 0, 0, 0, // op count
    2, 1, 0, 5, b'k', b'v', b'a', b'l', b'u', b'e', // PUT
    1, 1, 0, 0, b'k', // GET
    0, 0, 0, // padding
];

#[test]
fn l3fwd_responder() {
    let mut inputs = regressions("l3fwd_responder");
    inputs.push(sluice_fuzz::burst_for_the_router());
    for input in &inputs {
        sluice_fuzz::l3fwd_responder(input);
    }
}

#[test]
fn l3fwd_stage() {
    let mut inputs = regressions("l3fwd_stage");
    // Every configuration on a burst of the ordinary frames, each in on port 0.
    for kind in 0..6u8 {
        let mut input = vec![kind];
        for f in ordinary_frames() {
            input.extend_from_slice(&(f.len() as u16).to_be_bytes());
            input.push(0);
            input.extend_from_slice(&f);
        }
        inputs.push(input);
    }
    for input in &inputs {
        sluice_fuzz::l3fwd_stage(input);
    }
}
