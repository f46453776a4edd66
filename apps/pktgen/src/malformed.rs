//! Hostile traffic among the good (`--malformed PCT`): that share of the packets sent leaves
//! spoiled in one of the ways a router must catch, each named for the reason sluice-l3fwd drops
//! it under, so that a test can hold the router's drops to what was sent:
//!
//! | kind | how | sluice-l3fwd drops it as |
//! | --- | --- | --- |
//! | `bad_checksum` | IPv4 header checksum off by one (IPv6 has none) | `bad_checksum` |
//! | `truncated` | cut to 10 bytes of IP header | `truncated` |
//! | `bad_length` | IPv4 total length or IPv6 payload length 100 beyond the frame | `bad_header` |
//! | `bad_version` | IP version 5 | `bad_header` |
//! | `martian` | source 127.0.0.1 or ::1 | `martian` |
//! | `ttl_expired` | TTL or hop limit 1 | `ttl_exceeded` (or answered with time exceeded) |
//! | `random` | random bytes after the Ethernet header, EtherType 0x88b5 | `unsupported` |
//!
//! Spoiled packets are taken out of their stream's count (they are not expected back, so
//! they are not loss), and the IPv4 checksum is made right again for the kinds that are not
//! about it: each packet has exactly one fault. Only untagged IPv4 and IPv6 frames are spoiled;
//! the kinds take turns per family (IPv6 skips `bad_checksum`).

use sluice::net::checksum;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BadChecksum,
    Truncated,
    BadLength,
    BadVersion,
    Martian,
    TtlExpired,
    Random,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::BadChecksum,
        Kind::Truncated,
        Kind::BadLength,
        Kind::BadVersion,
        Kind::Martian,
        Kind::TtlExpired,
        Kind::Random,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::BadChecksum => "bad_checksum",
            Kind::Truncated => "truncated",
            Kind::BadLength => "bad_length",
            Kind::BadVersion => "bad_version",
            Kind::Martian => "martian",
            Kind::TtlExpired => "ttl_expired",
            Kind::Random => "random",
        }
    }

    /// The reason sluice-l3fwd drops a packet of this kind under.
    pub fn router_reason(self) -> &'static str {
        match self {
            Kind::BadChecksum => "bad_checksum",
            Kind::Truncated => "truncated",
            Kind::BadLength | Kind::BadVersion => "bad_header",
            Kind::Martian => "martian",
            Kind::TtlExpired => "ttl_exceeded",
            Kind::Random => "unsupported",
        }
    }
}

const IP: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
/// The local experimental EtherType (IEEE 802): no router routes it.
const ETHERTYPE_EXPERIMENTAL: [u8; 2] = [0x88, 0xb5];

/// Spoils `frame` as `kind`; returns the frame's new length (the same, or shorter for
/// `truncated`), or None if the frame is not an untagged IP packet that kind applies to.
pub fn spoil(frame: &mut [u8], kind: Kind, random: u64) -> Option<usize> {
    let v4 = match frame.get(12..14)? {
        t if t == ETHERTYPE_IPV4 && frame.len() >= IP + 20 => true,
        t if t == ETHERTYPE_IPV6 && frame.len() >= IP + 40 => false,
        _ => return None,
    };
    let len = frame.len();
    let ip = &mut frame[IP..];
    match (kind, v4) {
        (Kind::BadChecksum, false) => return None,
        (Kind::BadChecksum, true) => ip[11] ^= 1,
        (Kind::Truncated, _) => return Some(IP + 10),
        (Kind::BadLength, true) => {
            let beyond = (len - IP + 100) as u16;
            ip[2..4].copy_from_slice(&beyond.to_be_bytes());
        }
        (Kind::BadLength, false) => {
            let beyond = (len - IP - 40 + 100) as u16;
            ip[4..6].copy_from_slice(&beyond.to_be_bytes());
        }
        (Kind::BadVersion, _) => ip[0] = 0x50 | (ip[0] & 0x0f),
        (Kind::Martian, true) => ip[12..16].copy_from_slice(&[127, 0, 0, 1]),
        (Kind::Martian, false) => {
            ip[8..24].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets())
        }
        (Kind::TtlExpired, true) => ip[8] = 1,
        (Kind::TtlExpired, false) => ip[7] = 1,
        (Kind::Random, _) => {
            frame[12..14].copy_from_slice(&ETHERTYPE_EXPERIMENTAL);
            let mut state = random | 1;
            for byte in &mut frame[IP..] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            return Some(len);
        }
    }
    if v4 && kind != Kind::BadChecksum {
        // One fault per packet: the header's checksum is right for what it now holds.
        let header_len = usize::from(ip[0] & 0x0f) * 4;
        if let Some(header) = ip.get_mut(..header_len.max(20)) {
            header[10..12].fill(0);
            let sum = checksum::internet(header);
            header[10..12].copy_from_slice(&sum.to_be_bytes());
        }
    }
    Some(len)
}

/// Chooses which packets to spoil, and how: `share` of them, at random (seeded), the kinds
/// taking turns per family.
pub struct Spoiler {
    /// Out of 2^32.
    threshold: u64,
    state: u64,
    turn: [usize; 2],
    /// Spoiled packets handed to the device, per kind (counted by the caller when they leave).
    pub sent: [u64; Kind::ALL.len()],
}

impl Spoiler {
    /// `percent` of the packets (0 to 100), the choices from `seed`.
    pub fn new(percent: f64, seed: u64) -> Spoiler {
        Spoiler {
            threshold: ((percent / 100.0) * (1u64 << 32) as f64) as u64,
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            turn: [0, 0],
            sent: [0; Kind::ALL.len()],
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Whether to spoil the next packet, `frame`, and if so spoils it: its kind and new
    /// length.
    pub fn maybe_spoil(&mut self, frame: &mut [u8]) -> Option<(Kind, usize)> {
        if self.next() >> 32 >= self.threshold {
            return None;
        }
        let family = match frame.get(12..14)? {
            t if t == ETHERTYPE_IPV4 => 0,
            t if t == ETHERTYPE_IPV6 => 1,
            _ => return None,
        };
        let kinds: &[Kind] = if family == 0 {
            &Kind::ALL
        } else {
            &Kind::ALL[1..]
        };
        let kind = kinds[self.turn[family] % kinds.len()];
        let random = self.next();
        let len = spoil(frame, kind, random)?;
        self.turn[family] += 1;
        Some((kind, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::net::ipv4;

    fn udp4() -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
        ipv4::Repr {
            src: "10.0.0.1".parse().unwrap(),
            dst: "198.18.1.1".parse().unwrap(),
            protocol: 17,
            ttl: 64,
            payload_len: 30,
        }
        .emit(&mut f[IP..])
        .unwrap();
        f
    }

    #[test]
    fn each_kind_has_one_fault_and_the_rest_stays_valid() {
        let check = |kind: Kind| {
            let mut f = udp4();
            let len = spoil(&mut f, kind, 7).unwrap();
            let ip = ipv4::Packet::new_checked(&f[IP..len]);
            (f.clone(), len, ip.map(|p| (p.validate(), p.ttl())))
        };
        let (_, _, ip) = check(Kind::BadChecksum);
        assert_eq!(ip.unwrap().0, Err(ipv4::Invalid::BadChecksum));
        assert_eq!(check(Kind::Truncated).1, IP + 10);
        assert_eq!(
            check(Kind::BadLength).2.unwrap().0,
            Err(ipv4::Invalid::BadHeader)
        );
        assert_eq!(
            check(Kind::BadVersion).2.unwrap().0,
            Err(ipv4::Invalid::BadHeader)
        );
        let (f, _, ip) = check(Kind::Martian);
        assert_eq!(ip.unwrap().0, Ok(()));
        assert!(ipv4::is_martian(
            ipv4::Packet::new_checked(&f[IP..]).unwrap().src_addr()
        ));
        assert_eq!(check(Kind::TtlExpired).2.unwrap(), (Ok(()), 1));
        let (f, len, _) = check(Kind::Random);
        assert_eq!((&f[12..14], len), (&ETHERTYPE_EXPERIMENTAL[..], 64));
    }

    #[test]
    fn the_share_is_kept_and_kinds_take_turns() {
        let mut spoiler = Spoiler::new(10.0, 1);
        let mut counts = [0u32; 7];
        let mut spoiled = 0;
        for _ in 0..100_000 {
            let mut f = udp4();
            if let Some((kind, _)) = spoiler.maybe_spoil(&mut f) {
                counts[Kind::ALL.iter().position(|k| *k == kind).unwrap()] += 1;
                spoiled += 1;
            }
        }
        assert!((9_500..10_500).contains(&spoiled), "{spoiled}");
        assert!(
            counts.iter().all(|&c| c.abs_diff(spoiled / 7) <= 1),
            "{counts:?}"
        );
        let mut none = Spoiler::new(0.0, 1);
        assert!((0..1000).all(|_| none.maybe_spoil(&mut udp4()).is_none()));
    }
}
