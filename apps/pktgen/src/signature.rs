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
use sluice::net::{checksum, icmp, icmpv6, ipv4, ipv6, tcp, udp, vlan};

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

/// What the receiver makes of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inspected {
    /// Intact, and one of ours.
    Signed(Signature),
    /// An IP packet whose IPv4 header checksum or L4 checksum is wrong, or whose UDP length
    /// disagrees with its IP header's: damaged on the way (netem's `corrupt` does this).
    Corrupted,
    /// Anything else: not IP, another protocol, or without our signature.
    Foreign,
}

/// Where a frame's L4 header is, for the headers a generator sends: Ethernet with any number
/// of VLAN tags, IPv4 (with options) or IPv6 (no extension headers), and UDP, TCP, ICMP or
/// ICMPv6.
struct Layer4 {
    protocol: u8,
    /// The L4 header's offset, and the end of the L4 data by the IP header's length.
    at: usize,
    end: usize,
    /// The pseudo-header's sum (none for ICMP over IPv4).
    pseudo: u32,
    ip_intact: bool,
    /// Over IPv4, a UDP checksum of zero means none was computed (RFC 768).
    v4: bool,
}

impl Layer4 {
    /// None for anything else; never reads past the frame.
    fn find(frame: &[u8]) -> Option<Layer4> {
        let mut at = ethernet::HEADER_LEN;
        let mut ethertype = EtherType(u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]));
        while ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
            let tag = vlan::Tag::new_checked(frame.get(at..)?).ok()?;
            ethertype = tag.ethertype();
            at += vlan::TAG_LEN;
        }
        match ethertype {
            EtherType::IPV4 => {
                let ip = ipv4::Packet::new_checked(frame.get(at..)?).ok()?;
                let (protocol, header) = (ip.protocol(), ip.header_len());
                let end = at + usize::from(ip.total_len()).max(header);
                let len = (end - at - header) as u16;
                let pseudo = if protocol == ipv4::protocol::ICMP {
                    0
                } else {
                    checksum::pseudo_v4(ip.src_addr(), ip.dst_addr(), protocol, len)
                };
                Some(Layer4 {
                    protocol,
                    at: at + header,
                    end,
                    pseudo,
                    ip_intact: ip.verify_checksum(),
                    v4: true,
                })
            }
            EtherType::IPV6 => {
                let ip = ipv6::Packet::new_checked(frame.get(at..)?).ok()?;
                let (protocol, len) = (ip.next_header(), ip.payload_len());
                Some(Layer4 {
                    protocol,
                    at: at + ipv6::HEADER_LEN,
                    end: at + ipv6::HEADER_LEN + usize::from(len),
                    pseudo: checksum::pseudo_v6(
                        &ip.src_addr(),
                        &ip.dst_addr(),
                        protocol,
                        u32::from(len),
                    ),
                    ip_intact: true,
                    v4: false,
                })
            }
            _ => None,
        }
    }

    /// The L4 header's length, if the protocol is one a generator sends and its header fits.
    fn header_len(&self, frame: &[u8]) -> Option<usize> {
        let header = match self.protocol {
            ipv4::protocol::UDP => udp::HEADER_LEN,
            ipv4::protocol::TCP => usize::from(*frame.get(self.at + 12)? >> 4) * 4,
            ipv4::protocol::ICMP => icmp::HEADER_LEN,
            icmpv6::NEXT_HEADER => icmpv6::HEADER_LEN,
            _ => return None,
        };
        (header >= tcp::HEADER_LEN || self.protocol != ipv4::protocol::TCP).then_some(header)
    }

    /// Whether the L4 checksum holds, over the L4 data as long as the IP header says.
    fn intact(&self, frame: &[u8]) -> bool {
        let Some(data) = frame.get(self.at..self.end) else {
            return false;
        };
        if self.protocol == ipv4::protocol::UDP {
            let udp_len = data
                .get(4..6)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
            if udp_len != Some(data.len()) {
                return false;
            }
        }
        checksum::finish(checksum::combine(&[self.pseudo, checksum::sum(data)])) == 0
    }
}

/// Checks a received frame's checksums (a UDP checksum of zero over IPv4 is "none", and
/// passes), then reads its signature. IPv6 has no header checksum: a damaged next header
/// makes a frame foreign rather than corrupted.
pub fn inspect(frame: &[u8]) -> Inspected {
    let Some(l4) = Layer4::find(frame) else {
        return Inspected::Foreign;
    };
    if !l4.ip_intact {
        return Inspected::Corrupted;
    }
    let Some(header) = l4.header_len(frame) else {
        return Inspected::Foreign;
    };
    let no_checksum = l4.v4
        && l4.protocol == ipv4::protocol::UDP
        && frame.get(l4.at + 6..l4.at + 8) == Some(&[0, 0]);
    if !no_checksum && !l4.intact(frame) {
        return Inspected::Corrupted;
    }
    match frame.get(l4.at + header..).and_then(Signature::read) {
        Some(sig) => Inspected::Signed(sig),
        None => Inspected::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 60-byte UDP/IPv4 frame carrying `sig`, its checksums right.
    fn frame(sig: &Signature) -> Vec<u8> {
        use std::net::Ipv4Addr;
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 1, 7));
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = ipv4::Repr {
            src,
            dst,
            protocol: ipv4::protocol::UDP,
            ttl: 64,
            payload_len: 26,
        };
        ip.emit(&mut frame[14..]).unwrap();
        sig.write((&mut frame[42..60]).try_into().unwrap());
        let ports = udp::Repr {
            src_port: 1024,
            dst_port: 1024,
        };
        ports.emit_v4(&mut frame[34..], LEN, src, dst).unwrap();
        frame
    }

    #[test]
    fn signature_round_trips_and_hostile_frames_are_refused() {
        let sig = Signature {
            stream: 3,
            seq: (1 << 47) + 5,
            tsc: u64::MAX - 1,
        };
        let mut frame = frame(&sig);
        assert_eq!(inspect(&frame), Inspected::Signed(sig));
        let mut b = [0u8; LEN];
        sig.write(&mut b);
        assert_eq!(
            sluice::net::checksum::finish(sig.sum()),
            sluice::net::checksum::finish(sluice::net::checksum::sum(&b)),
            "the sum from values is the sum of the bytes"
        );
        // Every truncation of it is refused without a panic: short of its IP length, it is
        // damaged; short of an IP header, not ours.
        for len in 0..60 {
            let expected = if len < 34 {
                Inspected::Foreign
            } else {
                Inspected::Corrupted
            };
            assert_eq!(inspect(&frame[..len]), expected, "length {len}");
        }
        // No UDP checksum over IPv4: nothing to check, and the magic decides.
        frame[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(inspect(&frame), Inspected::Signed(sig));
        frame[42] ^= 1;
        assert_eq!(inspect(&frame), Inspected::Foreign, "wrong magic");
        // A TCP data offset below 5 words is not a header.
        frame[42] ^= 1;
        frame[14 + 9] = 6;
        frame[24..26].copy_from_slice(&[0, 0]);
        let csum = sluice::net::checksum::internet(&frame[14..34]);
        frame[24..26].copy_from_slice(&csum.to_be_bytes());
        frame[34 + 12] = 0x10;
        assert_eq!(inspect(&frame), Inspected::Foreign);
    }

    #[test]
    fn every_single_bit_flipped_past_the_ethernet_header_is_told() {
        let sig = Signature {
            stream: 1,
            seq: 77,
            tsc: 123_456_789,
        };
        let intact = frame(&sig);
        for bit in 14 * 8..60 * 8 {
            let mut f = intact.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            let seen = inspect(&f);
            // The IPv4 version or header length may no longer read as IPv4: then it is not
            // ours; otherwise a checksum or the UDP length tells.
            assert!(
                seen == Inspected::Corrupted || (bit < 15 * 8 && seen == Inspected::Foreign),
                "bit {bit}: {seen:?}"
            );
        }
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
