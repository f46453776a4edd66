//! Receive-side scaling: which header fields a device hashes, its key and redirection table,
//! and a software Toeplitz hash that gives the same answer as a NIC, for devices without RSS
//! and for generators that must choose the queue a NIC would.

use crate::error::Error;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The key of Microsoft's RSS verification suite, which most NICs also use by default.
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The longest hash input: IPv6 source and destination plus two ports.
pub const MAX_INPUT: usize = 36;

/// A Toeplitz hash with its key.
#[derive(Clone, Debug)]
pub struct Toeplitz {
    key: Vec<u8>,
}

impl Toeplitz {
    /// The key must be at least 40 bytes: 4 more than the longest input.
    pub fn new(key: &[u8]) -> Result<Toeplitz, Error> {
        if key.len() < MAX_INPUT + 4 {
            return Err(Error::Config(format!(
                "an RSS key of {} bytes is too short: Toeplitz over IPv6 with ports needs at least {}",
                key.len(),
                MAX_INPUT + 4
            )));
        }
        Ok(Toeplitz { key: key.to_vec() })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The hash of `input` (at most [`MAX_INPUT`] bytes, in network order): for each set bit
    /// of the input, XOR in the 32 bits of key that start at that bit.
    pub fn hash(&self, input: &[u8]) -> u32 {
        assert!(
            input.len() <= MAX_INPUT,
            "Toeplitz input of {} bytes",
            input.len()
        );
        let key = &self.key;
        let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        let mut result = 0;
        for (i, byte) in input.iter().enumerate() {
            let incoming = key[i + 4];
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    result ^= window;
                }
                window = (window << 1) | u32::from((incoming >> (7 - bit)) & 1);
            }
        }
        result
    }
}

/// `toeplitz(key, input)` with a one-off key (see [`Toeplitz`]).
pub fn toeplitz(key: &[u8], input: &[u8]) -> Result<u32, Error> {
    Ok(Toeplitz::new(key)?.hash(input))
}

/// Hash input of an IPv4 packet: source, destination and, with `ports`, source and
/// destination port, as NICs lay it out.
pub fn ipv4_input(src: Ipv4Addr, dst: Ipv4Addr, ports: Option<(u16, u16)>) -> Vec<u8> {
    addresses_and_ports(&src.octets(), &dst.octets(), ports)
}

/// As [`ipv4_input`], for IPv6.
pub fn ipv6_input(src: Ipv6Addr, dst: Ipv6Addr, ports: Option<(u16, u16)>) -> Vec<u8> {
    addresses_and_ports(&src.octets(), &dst.octets(), ports)
}

fn addresses_and_ports(src: &[u8], dst: &[u8], ports: Option<(u16, u16)>) -> Vec<u8> {
    let mut input = Vec::with_capacity(src.len() + dst.len() + 4);
    input.extend_from_slice(src);
    input.extend_from_slice(dst);
    if let Some((sport, dport)) = ports {
        input.extend_from_slice(&sport.to_be_bytes());
        input.extend_from_slice(&dport.to_be_bytes());
    }
    input
}

/// The RX queue a NIC picks for `hash`: the redirection table indexed by the hash's low bits.
pub fn queue_for(hash: u32, reta: &[u16]) -> u16 {
    reta[hash as usize % reta.len()]
}

/// The redirection table NICs start with: queues in turn.
pub fn round_robin_reta(size: usize, queues: u16) -> Vec<u16> {
    (0..size)
        .map(|i| (i % usize::from(queues.max(1))) as u16)
        .collect()
}

/// Which packets are hashed on which fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashFields {
    /// IPv4 packets on their addresses.
    pub ipv4: bool,
    /// IPv4 TCP and UDP packets on addresses and ports.
    pub ipv4_ports: bool,
    pub ipv6: bool,
    pub ipv6_ports: bool,
}

// DPDK's RTE_ETH_RSS_* bits (function-like macros there, so bindgen does not see them).
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
const RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 12;

impl HashFields {
    /// Addresses and ports, IPv4 and IPv6: what spreads flows best.
    pub const ALL: HashFields = HashFields {
        ipv4: true,
        ipv4_ports: true,
        ipv6: true,
        ipv6_ports: true,
    };

    /// DPDK's `rss_hf` bits for these fields.
    pub fn to_dpdk(self) -> u64 {
        let mut hf = 0;
        if self.ipv4 {
            hf |= RSS_IPV4 | RSS_FRAG_IPV4 | RSS_NONFRAG_IPV4_OTHER;
        }
        if self.ipv4_ports {
            hf |= RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP;
        }
        if self.ipv6 {
            hf |= RSS_IPV6 | RSS_FRAG_IPV6 | RSS_NONFRAG_IPV6_OTHER;
        }
        if self.ipv6_ports {
            hf |= RSS_NONFRAG_IPV6_TCP | RSS_NONFRAG_IPV6_UDP;
        }
        hf
    }

    /// The fields a device offering `offloads` can hash: a field counts if any of its bits is
    /// offered.
    pub fn from_dpdk(offloads: u64) -> HashFields {
        HashFields {
            ipv4: offloads & (RSS_IPV4 | RSS_FRAG_IPV4 | RSS_NONFRAG_IPV4_OTHER) != 0,
            ipv4_ports: offloads & (RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP) != 0,
            ipv6: offloads & (RSS_IPV6 | RSS_FRAG_IPV6 | RSS_NONFRAG_IPV6_OTHER) != 0,
            ipv6_ports: offloads & (RSS_NONFRAG_IPV6_TCP | RSS_NONFRAG_IPV6_UDP) != 0,
        }
    }

    pub fn intersect(self, other: HashFields) -> HashFields {
        HashFields {
            ipv4: self.ipv4 && other.ipv4,
            ipv4_ports: self.ipv4_ports && other.ipv4_ports,
            ipv6: self.ipv6 && other.ipv6,
            ipv6_ports: self.ipv6_ports && other.ipv6_ports,
        }
    }

    pub fn is_empty(self) -> bool {
        self == HashFields::default()
    }
}

impl std::fmt::Display for HashFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.ipv4, "ipv4"),
            (self.ipv4_ports, "ipv4-tcp/udp"),
            (self.ipv6, "ipv6"),
            (self.ipv6_ports, "ipv6-tcp/udp"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        f.write_str(&if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(" ")
        })
    }
}

/// RSS as a port should use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    pub fields: HashFields,
    /// None: the device's own key.
    pub key: Option<Vec<u8>>,
}

impl Default for RssConfig {
    fn default() -> Self {
        RssConfig {
            fields: HashFields::ALL,
            key: Some(DEFAULT_KEY.to_vec()),
        }
    }
}

/// What a port actually got: the fields it hashes (fewer than asked when the device cannot),
/// and why, if so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssApplied {
    pub asked: HashFields,
    pub fields: HashFields,
    pub reta_size: u16,
    /// Set when the port does less than asked: what and why.
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (destination address, port), (source address, port), hash of addresses, with ports.
    type Vector = ((&'static str, u16), (&'static str, u16), u32, u32);

    // Microsoft's "Verifying the RSS Hash Calculation" vectors: (destination, source, hash of
    // the addresses, hash of addresses and ports). The input is source first.
    const IPV4: [Vector; 5] = [
        (
            ("161.142.100.80", 1766),
            ("66.9.149.187", 2794),
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            ("65.69.140.83", 4739),
            ("199.92.111.2", 14230),
            0xd718262a,
            0xc626b0ea,
        ),
        (
            ("12.22.207.184", 38024),
            ("24.19.198.95", 12898),
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            ("209.142.163.6", 2217),
            ("38.27.205.30", 48228),
            0x82989176,
            0xafc7327f,
        ),
        (
            ("202.188.127.2", 1303),
            ("153.39.163.191", 44251),
            0x5d1809c5,
            0x10e828a2,
        ),
    ];
    const IPV6: [Vector; 3] = [
        (
            ("3ffe:2501:200:3::1", 1766),
            ("3ffe:2501:200:1fff::7", 2794),
            0x2cc18cd5,
            0x40207d3d,
        ),
        (
            ("ff02::1", 4739),
            ("3ffe:501:8::260:97ff:fe40:efab", 14230),
            0x0f0c461c,
            0xdde51bbf,
        ),
        (
            ("fe80::200:f8ff:fe21:67cf", 38024),
            ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251),
            0x4b61e985,
            0x02d1feef,
        ),
    ];

    /// Checks `vectors`, building each hash input with `input(source, destination, ports)`.
    fn check(vectors: &[Vector], input: impl Fn(&str, &str, Option<(u16, u16)>) -> Vec<u8>) {
        let t = Toeplitz::new(&DEFAULT_KEY).unwrap();
        for &((dst, dport), (src, sport), addrs, with_ports) in vectors {
            assert_eq!(t.hash(&input(src, dst, None)), addrs, "{src} -> {dst}");
            assert_eq!(
                t.hash(&input(src, dst, Some((sport, dport)))),
                with_ports,
                "{src} -> {dst} ports"
            );
        }
    }

    #[test]
    fn ipv4_verification_vectors() {
        check(&IPV4, |s, d, ports| {
            ipv4_input(s.parse().unwrap(), d.parse().unwrap(), ports)
        });
    }

    #[test]
    fn ipv6_verification_vectors() {
        check(&IPV6, |s, d, ports| {
            ipv6_input(s.parse().unwrap(), d.parse().unwrap(), ports)
        });
    }

    #[test]
    fn short_keys_are_refused() {
        let e = Toeplitz::new(&DEFAULT_KEY[..39]).unwrap_err();
        assert!(e.to_string().contains("too short"), "{e}");
        assert!(toeplitz(&DEFAULT_KEY, &[]).unwrap() == 0);
    }

    #[test]
    fn redirection_table_picks_queues_in_turn() {
        let reta = round_robin_reta(128, 3);
        assert_eq!(&reta[..5], &[0, 1, 2, 0, 1]);
        assert_eq!(queue_for(0x51ccc178, &reta), reta[0x78]);
        assert_eq!(queue_for(5, &round_robin_reta(4, 4)), 1);
    }

    #[test]
    fn hash_fields_map_to_dpdk_bits_and_back() {
        assert_eq!(
            HashFields::from_dpdk(HashFields::ALL.to_dpdk()),
            HashFields::ALL
        );
        let v4 = HashFields {
            ipv4: true,
            ..HashFields::default()
        };
        assert_eq!(HashFields::from_dpdk(v4.to_dpdk()), v4);
        assert_eq!(HashFields::ALL.intersect(v4), v4);
        assert!(HashFields::from_dpdk(0).is_empty());
        assert_eq!(v4.to_string(), "ipv4");
        assert_eq!(HashFields::default().to_string(), "none");
    }
}
