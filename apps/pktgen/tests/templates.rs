//! Generated packets, captured with net_pcap: headers, sizes, field sequences and checksums
//! are checked against packets built independently with etherparse.

mod common;

use common::*;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, PacketHeaders, TransportHeader};
use std::path::Path;

/// Runs pktgen into a pcap file for `count` packets and returns the frames.
fn capture(dir: &Path, extra: &[&str], count: u64) -> Vec<Vec<u8>> {
    let out = dir.join("out.pcap");
    let mut args = eal(0, &[format!("net_pcap0,tx_pcap={}", out.display())]);
    args.extend(strings(&[
        "--",
        "--rx-port",
        "none",
        "--quiet",
        "--count",
        &count.to_string(),
    ]));
    args.extend(strings(extra));
    run_ok(&args);
    read_pcap(&out)
}

/// The L4 payload (signature and padding) of a frame, and the signature's stream and sequence.
fn payload(frame: &[u8]) -> (Vec<u8>, u16, u64) {
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    let p = h.payload.slice().to_vec();
    assert_eq!(&p[..2], &[0x51, 0xce], "signature magic");
    let mut seq = [0u8; 8];
    seq[2..].copy_from_slice(&p[4..10]);
    (
        p.clone(),
        u16::from_be_bytes([p[2], p[3]]),
        u64::from_be_bytes(seq),
    )
}

fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: IpNumber, payload_len: usize) -> Ipv4Header {
    let mut h = Ipv4Header::new(payload_len as u16, 64, protocol, src, dst).unwrap();
    h.dont_fragment = true;
    h
}

#[test]
fn udp_fields_and_sizes_follow_their_ranges_with_valid_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let frames = capture(
        dir.path(),
        &[
            "--dst-ip",
            "198.18.1.1-198.18.1.3",
            "--src-port",
            "1000-1004/2",
            "--size",
            "64,128",
            "--dst-mac",
            "02:00:00:00:00:09",
            "--src-mac",
            "02:00:00:00:00:07",
        ],
        12,
    );
    assert_eq!(frames.len(), 12);
    for (k, frame) in frames.iter().enumerate() {
        assert_eq!(
            frame.len() + 4,
            if k % 2 == 0 { 64 } else { 128 },
            "frame {k}'s size"
        );
        let (payload, stream, seq) = payload(frame);
        assert_eq!((stream, seq), (0, k as u64));
        assert!(
            payload[18..].iter().enumerate().all(|(i, &b)| b == i as u8),
            "padding pattern"
        );
        let dst = [198, 18, 1, 1 + (k % 3) as u8];
        let sport = 1000 + 2 * (k % 3) as u16;
        let mut expected = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 7], [2, 0, 0, 0, 0, 9])
            .ip(etherparse::IpHeaders::Ipv4(
                ipv4([198, 18, 0, 1], dst, IpNumber::UDP, 8 + payload.len()),
                Default::default(),
            ))
            .udp(sport, 9)
            .write(&mut expected, &payload)
            .unwrap();
        assert_eq!(frame, &expected, "frame {k}");
    }
}

#[test]
fn one_fixed_stream_reuses_its_prefilled_mbufs_with_every_packet_right() {
    // One size and no varying field: the mbufs come from a pool prefilled with the frame and
    // only the signature and the UDP checksum are written, so more packets than the pool holds
    // send every mbuf several times.
    let dir = tempfile::tempdir().unwrap();
    let count = 20_000;
    let frames = capture(
        dir.path(),
        &["--size", "64", "--src-mac", "02:00:00:00:00:07"],
        count,
    );
    assert_eq!(frames.len(), count as usize);
    for (k, frame) in frames.iter().enumerate() {
        let (payload, stream, seq) = payload(frame);
        assert_eq!((stream, seq), (0, k as u64));
        let mut expected = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 7], [2, 0, 0, 0, 0, 1])
            .ip(etherparse::IpHeaders::Ipv4(
                ipv4(
                    [198, 18, 0, 1],
                    [198, 18, 1, 1],
                    IpNumber::UDP,
                    8 + payload.len(),
                ),
                Default::default(),
            ))
            .udp(1024, 9)
            .write(&mut expected, &payload)
            .unwrap();
        assert_eq!(frame, &expected, "frame {k}");
    }
}

#[test]
fn tcp_over_ipv6_with_a_vlan_tag() {
    let dir = tempfile::tempdir().unwrap();
    let frames = capture(
        dir.path(),
        &[
            "--proto",
            "tcp",
            "--tcp-flags",
            "syn",
            "--vlan",
            "7",
            "--ipv6",
            "--size",
            "100",
            "--src-mac",
            "02:00:00:00:00:07",
        ],
        5,
    );
    assert_eq!(frames.len(), 5);
    for (k, frame) in frames.iter().enumerate() {
        assert_eq!(frame.len(), 96);
        let (payload, _, seq) = payload(frame);
        assert_eq!(seq, k as u64);
        let mut expected = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 7], [2, 0, 0, 0, 0, 1])
            .single_vlan(7.try_into().unwrap())
            .ipv6(
                "2001:200::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
                "2001:200:0:1::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
                64,
            )
            .tcp(1024, 9, 1, 65535)
            .syn()
            .write(&mut expected, &payload)
            .unwrap();
        assert_eq!(frame, &expected, "frame {k}");
    }
}

#[test]
fn icmp_echo_in_imix_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let frames = capture(dir.path(), &["--proto", "icmp", "--size", "imix"], 24);
    let sizes: Vec<usize> = frames.iter().map(|f| f.len() + 4).collect();
    let count = |n| sizes.iter().filter(|&&s| s == n).count();
    assert_eq!((count(64), count(594), count(1518)), (14, 8, 2));
    for (k, frame) in frames.iter().enumerate() {
        let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
        let Some(TransportHeader::Icmpv4(icmp)) = &h.transport else {
            panic!("frame {k} is not ICMP")
        };
        let mut recomputed = icmp.clone();
        recomputed.update_checksum(h.payload.slice());
        assert_eq!(
            icmp.checksum, recomputed.checksum,
            "ICMP checksum of frame {k}"
        );
        match h.net {
            Some(etherparse::NetHeaders::Ipv4(ip, _)) => {
                assert_eq!(
                    ip.header_checksum,
                    ip.calc_header_checksum(),
                    "IPv4 checksum of frame {k}"
                )
            }
            _ => panic!("frame {k} is not IPv4"),
        }
        assert_eq!(payload(frame).2, k as u64);
    }
}

#[test]
fn random_fields_are_in_range_and_repeat_with_their_seed() {
    let dir = tempfile::tempdir().unwrap();
    let sources = |seed: &str| -> Vec<[u8; 4]> {
        capture(
            dir.path(),
            &[
                "--src-ip",
                "10.0.0.0-10.0.0.255/random",
                "--dst-port",
                "5000-5099/random",
                "--seed",
                seed,
            ],
            64,
        )
        .iter()
        .map(|f| {
            let h = PacketHeaders::from_ethernet_slice(f).unwrap();
            let Some(TransportHeader::Udp(udp)) = &h.transport else {
                panic!("not UDP")
            };
            assert!((5000..5100).contains(&udp.destination_port));
            let expected = udp
                .calc_checksum_ipv4(
                    match &h.net {
                        Some(etherparse::NetHeaders::Ipv4(ip, _)) => ip,
                        _ => panic!("not IPv4"),
                    },
                    h.payload.slice(),
                )
                .unwrap();
            assert_eq!(udp.checksum, expected);
            f[26..30].try_into().unwrap()
        })
        .collect()
    };
    let first = sources("7");
    assert!(first.iter().all(|a| a[..3] == [10, 0, 0]));
    let mut distinct = first.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() > 32,
        "random sources repeat too much: {}",
        distinct.len()
    );
    assert_eq!(sources("7"), first, "the same seed gives the same sequence");
    assert_ne!(sources("8"), first);
}
