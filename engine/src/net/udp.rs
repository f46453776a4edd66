//! UDP (RFC 768) and the port fields TCP shares with it.

use super::checksum;
use super::Truncated;
use std::net::{Ipv4Addr, Ipv6Addr};

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// The IP protocol number of UDP.
const IP_PROTOCOL: u8 = super::ipv4::protocol::UDP;

/// Why a datagram's header does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Its length field is under the header's 8 bytes or beyond the bytes that arrived.
    BadLength,
}

/// A view of a UDP datagram at the start of `buffer` (the IP payload).
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` if it holds a whole header ([`Packet::validate`] checks the length).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Packet { buffer })
    }

    /// The length field covers the header and lies within the buffer.
    pub fn validate(&self) -> Result<(), Invalid> {
        let len = usize::from(self.len());
        if len < HEADER_LEN || len > self.buffer.as_ref().len() {
            return Err(Invalid::BadLength);
        }
        Ok(())
    }

    fn word(&self, at: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn src_port(&self) -> u16 {
        self.word(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.word(field::DST_PORT)
    }

    /// The length field: header and payload, in bytes.
    pub fn len(&self) -> u16 {
        self.word(field::LENGTH)
    }

    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        self.word(field::CHECKSUM)
    }

    /// The payload, up to the length field (within the buffer).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.len()).clamp(HEADER_LEN, b.len());
        &b[HEADER_LEN..end]
    }

    /// Whether the checksum over the IPv4 pseudo-header and the datagram (to its length, or
    /// the buffer's end) is right; zero means the sender computed none (RFC 768).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.buffer.as_ref()[..HEADER_LEN + self.payload().len()];
        let pseudo = checksum::pseudo_v4(src, dst, IP_PROTOCOL, datagram.len() as u16);
        checksum::finish(checksum::combine(&[pseudo, checksum::sum(datagram)])) == 0
    }

    /// As [`Packet::verify_checksum_v4`] over the IPv6 pseudo-header, where a checksum is
    /// mandatory: zero is wrong (RFC 8200 §8.1).
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let datagram = &self.buffer.as_ref()[..HEADER_LEN + self.payload().len()];
        let pseudo = checksum::pseudo_v6(src, dst, IP_PROTOCOL, datagram.len() as u32);
        checksum::finish(checksum::combine(&[pseudo, checksum::sum(datagram)])) == 0
    }
}

/// The source and destination ports at the start of a UDP or TCP header, if present.
pub fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    let b = l4.get(..4)?;
    Some((
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    ))
}

/// A UDP header, to build datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl Repr {
    /// The ports of a datagram whose length holds ([`Packet::validate`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Invalid> {
        packet.validate()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Writes the header before `payload_len` bytes of payload already at `buffer[8..]`, and
    /// the checksum over the IPv4 pseudo-header, header and payload.
    pub fn emit_v4(
        &self,
        buffer: &mut [u8],
        payload_len: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<(), Truncated> {
        self.emit(buffer, payload_len, |len| {
            checksum::pseudo_v4(src, dst, IP_PROTOCOL, len as u16)
        })
    }

    /// As [`Repr::emit_v4`], the checksum over the IPv6 pseudo-header.
    pub fn emit_v6(
        &self,
        buffer: &mut [u8],
        payload_len: usize,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<(), Truncated> {
        self.emit(buffer, payload_len, |len| {
            checksum::pseudo_v6(src, dst, IP_PROTOCOL, len as u32)
        })
    }

    /// The header and checksum, over the pseudo-header sum `pseudo(datagram length)`.
    fn emit(
        &self,
        buffer: &mut [u8],
        payload_len: usize,
        pseudo: impl FnOnce(usize) -> u32,
    ) -> Result<(), Truncated> {
        let len = HEADER_LEN + payload_len;
        let b = buffer.get_mut(..len).ok_or(Truncated)?;
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        b[6..8].copy_from_slice(&[0, 0]);
        let csum = match checksum::finish(checksum::combine(&[pseudo(len), checksum::sum(b)])) {
            0 => 0xffff, // zero means "no checksum" in UDP
            c => c,
        };
        b[6..8].copy_from_slice(&csum.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_checksum_verifies() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 1, 1));
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"ping");
        Repr {
            src_port: 9,
            dst_port: 9,
        }
        .emit_v4(&mut b, 4, src, dst)
        .unwrap();
        assert_eq!(ports(&b), Some((9, 9)));
        let pseudo = checksum::pseudo_v4(src, dst, 17, 12);
        assert_eq!(
            checksum::finish(checksum::combine(&[pseudo, checksum::sum(&b)])),
            0
        );
        assert_eq!(ports(&b[..3]), None);
        let packet = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((packet.len(), packet.payload()), (12, &b"ping"[..]));
        assert!(packet.verify_checksum_v4(src, dst));
        assert!(!packet.verify_checksum_v4(src, Ipv4Addr::new(198, 18, 1, 2)));
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr {
                src_port: 9,
                dst_port: 9
            })
        );
        let mut long = b;
        long[4..6].copy_from_slice(&13u16.to_be_bytes());
        let long = Packet::new_checked(&long[..]).unwrap();
        assert_eq!(Repr::parse(&long), Err(Invalid::BadLength));
        assert_eq!(long.payload(), b"ping");
        assert!(Packet::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn datagram_checksum_verifies_over_ipv6() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("fd00:1::2".parse().unwrap(), "fd00:1::1".parse().unwrap());
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"ping");
        Repr {
            src_port: 40000,
            dst_port: 7000,
        }
        .emit_v6(&mut b, 4, &src, &dst)
        .unwrap();
        let packet = Packet::new_checked(&b[..]).unwrap();
        assert!(packet.verify_checksum_v6(&src, &dst));
        assert!(!packet.verify_checksum_v6(&src, &"fd00:1::9".parse().unwrap()));
        let mut zero = b;
        zero[6..8].copy_from_slice(&[0, 0]);
        assert!(!Packet::new_checked(&zero[..])
            .unwrap()
            .verify_checksum_v6(&src, &dst));
    }
}
