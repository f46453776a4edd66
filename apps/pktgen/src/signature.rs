//! The signature every generated packet carries at the start of its L4 payload, so that the
//! receiver can tell its own packets from others and account for them per stream:
//!
//! ```text
//! 0      2        4                10                 18
//! | magic | stream | sequence (48) | TSC when sent (64) |
//! ```
//!
//! All big-endian. 18 bytes: what is left of a 64-byte UDP/IPv4 frame after its headers.

use sluice::net::ethernet::{self, EtherType};
use sluice::net::{icmp, icmpv6, ipv4, ipv6, tcp, udp, vlan};

pub const LEN: usize = 18;
const MAGIC: [u8; 2] = [0x51, 0xce];
/// The 48 bits of the sequence number the signature carries.
const SEQ_MASK: u64 = (1 << 48) - 1;

/// What a signature says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    pub stream: u16,
    pub seq: u64,
    pub tsc: u64,
}

impl Signature {
    #[inline]
    pub fn write(&self, out: &mut [u8; LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        // Stream and sequence number as one 8-byte word: two stores after the magic.
        let word = (u64::from(self.stream) << 48) | (self.seq & SEQ_MASK);
        out[2..10].copy_from_slice(&word.to_be_bytes());
        out[10..18].copy_from_slice(&self.tsc.to_be_bytes());
    }

    /// The signature's ones'-complement partial sum (below 2^18), from the values rather
    /// than from the bytes just stored: reading those back with other widths stalls store
    /// forwarding. As 2^16 ≡ 1 modulo 0xffff, a value is worth the sum of its 16-bit words:
    /// the values are added whole, with the carries out of 64 bits added back in, and folded.
    #[inline]
    pub fn sum(&self) -> u32 {
        let small =
            u64::from(u16::from_be_bytes(MAGIC)) + u64::from(self.stream) + (self.seq & SEQ_MASK);
        let (acc, carry) = self.tsc.overflowing_add(small);
        let acc = acc + u64::from(carry); // cannot carry again: acc is small after a carry
        let acc = (acc & 0xffff_ffff) + (acc >> 32);
        ((acc & 0xffff) + (acc >> 16)) as u32
    }

    fn read(b: &[u8]) -> Option<Signature> {
        let b = b.first_chunk::<LEN>()?;
        if b[0..2] != MAGIC {
            return None;
        }
        let mut seq = [0u8; 8];
        seq[2..].copy_from_slice(&b[4..10]);
        Some(Signature {
            stream: u16::from_be_bytes([b[2], b[3]]),
            seq: u64::from_be_bytes(seq),
            tsc: u64::from_be_bytes(b[10..18].try_into().expect("8 bytes")),
        })
    }
}

/// Where the L4 payload of `frame` starts, for the headers a generator sends: Ethernet with
/// any number of VLAN tags, IPv4 (with options) or IPv6 (no extension headers), and UDP, TCP,
/// ICMP or ICMPv6. None for anything else; never reads past the frame.
pub fn payload_offset(frame: &[u8]) -> Option<usize> {
    let mut at = ethernet::HEADER_LEN;
    let mut ethertype = EtherType(u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]));
    while ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
        let tag = vlan::Tag::new_checked(frame.get(at..)?).ok()?;
        ethertype = tag.ethertype();
        at += vlan::TAG_LEN;
    }
    let (protocol, l4) = match ethertype {
        EtherType::IPV4 => {
            let ip = ipv4::Packet::new_checked(frame.get(at..)?).ok()?;
            (ip.protocol(), at + ip.header_len())
        }
        EtherType::IPV6 => {
            let ip = ipv6::Packet::new_checked(frame.get(at..)?).ok()?;
            (ip.next_header(), at + ipv6::HEADER_LEN)
        }
        _ => return None,
    };
    let header = match protocol {
        ipv4::protocol::UDP => udp::HEADER_LEN,
        ipv4::protocol::TCP => usize::from(*frame.get(l4 + 12)? >> 4) * 4,
        ipv4::protocol::ICMP => icmp::HEADER_LEN,
        icmpv6::NEXT_HEADER => icmpv6::HEADER_LEN,
        _ => return None,
    };
    if protocol == ipv4::protocol::TCP && header < tcp::HEADER_LEN {
        return None;
    }
    Some(l4 + header)
}

/// The signature of a received frame, if it carries one.
pub fn find(frame: &[u8]) -> Option<Signature> {
    Signature::read(frame.get(payload_offset(frame)?..)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_and_hostile_frames_are_refused() {
        let sig = Signature {
            stream: 3,
            seq: (1 << 47) + 5,
            tsc: u64::MAX - 1,
        };
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[14 + 9] = 17;
        let mut b = [0u8; LEN];
        sig.write(&mut b);
        frame[42..60].copy_from_slice(&b);
        assert_eq!(find(&frame), Some(sig));
        assert_eq!(
            sluice::net::checksum::finish(sig.sum()),
            sluice::net::checksum::finish(sluice::net::checksum::sum(&b)),
            "the sum from values is the sum of the bytes"
        );
        // Every truncation of it is refused without a panic.
        for len in 0..60 {
            assert_eq!(find(&frame[..len]), None, "length {len}");
        }
        frame[42] ^= 1;
        assert_eq!(find(&frame), None, "wrong magic");
        // A TCP data offset below 5 words is not a header.
        frame[42] ^= 1;
        frame[14 + 9] = 6;
        frame[34 + 12] = 0x10;
        assert_eq!(find(&frame), None);
    }

    #[test]
    fn the_sum_from_values_is_the_sum_of_the_bytes() {
        use sluice::net::checksum::{finish, sum};
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..100_000u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let sig = Signature {
                stream: (state >> 48) as u16,
                // Sequence numbers past 48 bits, and TSCs near the top, where adds carry.
                seq: state.rotate_left(17),
                tsc: if round % 2 == 0 {
                    state
                } else {
                    u64::MAX - (state >> 40)
                },
            };
            let mut b = [0u8; LEN];
            sig.write(&mut b);
            assert!(sig.sum() < 1 << 18);
            assert_eq!(finish(sig.sum()), finish(sum(&b)), "{sig:?}");
        }
    }
}
