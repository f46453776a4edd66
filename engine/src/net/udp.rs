//! UDP (RFC 768) and the port fields TCP shares with it.

use super::checksum;
use super::Truncated;
use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 8;

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
    /// Writes the header before `payload_len` bytes of payload already at `buffer[8..]`, and
    /// the checksum over the IPv4 pseudo-header, header and payload.
    pub fn emit_v4(
        &self,
        buffer: &mut [u8],
        payload_len: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<(), Truncated> {
        let len = HEADER_LEN + payload_len;
        let b = buffer.get_mut(..len).ok_or(Truncated)?;
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        b[6..8].copy_from_slice(&[0, 0]);
        let pseudo = checksum::pseudo_v4(src, dst, super::ipv4::protocol::UDP, len as u16);
        let csum = match checksum::finish(checksum::combine(&[pseudo, checksum::sum(b)])) {
            0 => 0xffff, // zero means "no checksum" in UDP over IPv4
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
    }
}
