//! TCP headers (RFC 9293), to build segments: the fixed header without options.

use super::Truncated;

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
}

/// Length of the header without options.
pub const HEADER_LEN: usize = 20;
/// Where the checksum is, from the start of the header.
pub const CHECKSUM_AT: usize = field::CHECKSUM.start;

/// The flag bits of byte 13.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    /// Names as tcpdump and most tools spell them, for parsing and printing.
    pub const NAMES: [(&str, u8); 6] = [
        ("fin", FIN),
        ("syn", SYN),
        ("rst", RST),
        ("psh", PSH),
        ("ack", ACK),
        ("urg", URG),
    ];
}

/// Why a segment's header does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Its data offset is under 5 words or beyond the bytes that arrived.
    BadOffset,
}

/// A view of a TCP segment at the start of `buffer` (the IP payload).
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` if it holds a header without options ([`Packet::validate`] checks the
    /// data offset).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Packet { buffer })
    }

    /// The header (with its options) is at least 20 bytes and within the buffer.
    pub fn validate(&self) -> Result<(), Invalid> {
        let len = self.header_len();
        if len < HEADER_LEN || len > self.buffer.as_ref().len() {
            return Err(Invalid::BadOffset);
        }
        Ok(())
    }

    fn bytes<const N: usize>(&self, at: std::ops::Range<usize>) -> [u8; N] {
        self.buffer.as_ref()[at]
            .try_into()
            .expect("a field's width")
    }

    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::SRC_PORT))
    }

    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::DST_PORT))
    }

    pub fn seq(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::SEQ))
    }

    pub fn ack(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::ACK))
    }

    /// The header's length in bytes, options included (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn window(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::WINDOW))
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::CHECKSUM))
    }

    /// What follows the header and its options (empty if the offset does not hold).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        if self.validate().is_err() {
            return &[];
        }
        &b[self.header_len()..]
    }
}

/// A header without options; the checksum is left zero for the caller to fill, as it
/// covers the pseudo-header and payload too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

impl Repr {
    /// The fields of a segment whose data offset holds ([`Packet::validate`]); options are
    /// not kept.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Invalid> {
        packet.validate()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq(),
            ack: packet.ack(),
            flags: packet.flags(),
            window: packet.window(),
        })
    }

    pub fn emit(&self, buffer: &mut [u8]) -> Result<(), Truncated> {
        let b = buffer.get_mut(..HEADER_LEN).ok_or(Truncated)?;
        b.fill(0);
        b[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        b[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::ACK].copy_from_slice(&self.ack.to_be_bytes());
        b[field::OFFSET] = ((HEADER_LEN / 4) as u8) << 4;
        b[field::FLAGS] = self.flags;
        b[field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emitted_header_has_its_fields_where_rfc_9293_puts_them() {
        let mut b = [0xaau8; 24];
        Repr {
            src_port: 1024,
            dst_port: 80,
            seq: 0x01020304,
            ack: 0,
            flags: flags::SYN | flags::ACK,
            window: 65535,
        }
        .emit(&mut b)
        .unwrap();
        assert_eq!(&b[..4], &[0x04, 0x00, 0x00, 80]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!((b[12], b[13]), (0x50, 0x12));
        assert_eq!(&b[14..18], &[0xff, 0xff, 0, 0]);
        assert_eq!(b[20], 0xaa, "nothing written past the header");
        let packet = Packet::new_checked(&b[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            (repr.src_port, repr.dst_port, repr.seq),
            (1024, 80, 0x01020304)
        );
        assert_eq!((packet.header_len(), packet.payload().len()), (20, 4));
        let mut options = b;
        options[12] = 0x60;
        let packet = Packet::new_checked(&options[..]).unwrap();
        assert_eq!((packet.validate(), packet.payload().len()), (Ok(()), 0));
        for offset in [0x70, 0x40] {
            options[12] = offset;
            let packet = Packet::new_checked(&options[..]).unwrap();
            assert_eq!(Repr::parse(&packet), Err(Invalid::BadOffset));
            assert_eq!(packet.payload(), &[] as &[u8]);
        }
        assert_eq!(
            Repr {
                flags: 0,
                ..Default::default()
            }
            .emit(&mut b[..19]),
            Err(Truncated)
        );
    }
}
