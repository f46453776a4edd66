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
