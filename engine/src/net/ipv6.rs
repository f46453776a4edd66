//! IPv6 headers (RFC 8200).

use super::Truncated;
use std::net::Ipv6Addr;

mod field {
    use std::ops::Range;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Range<usize> = 8..24;
    pub const DESTINATION: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Why a header fails a router's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Version not 6, or a payload length beyond the bytes that arrived.
    BadHeader,
}

/// A view of an IPv6 packet at the start of `buffer`.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Version 6 and the payload within the buffer (IPv6 has no header checksum).
    pub fn validate(&self) -> Result<(), Invalid> {
        let len = self.buffer.as_ref().len();
        if self.version() != 6 || HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Invalid::BadHeader);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::PAYLOAD_LEN.start], b[field::PAYLOAD_LEN.start + 1]])
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_bytes(&self) -> [u8; 16] {
        self.buffer.as_ref()[field::SOURCE]
            .try_into()
            .expect("16 bytes")
    }

    pub fn dst_bytes(&self) -> [u8; 16] {
        self.buffer.as_ref()[field::DESTINATION]
            .try_into()
            .expect("16 bytes")
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_bytes())
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_bytes())
    }

    /// What follows the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(b.len());
        &b[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Takes one from the hop limit (no checksum to update in IPv6).
    pub fn decrement_hop_limit(&mut self) {
        self.buffer.as_mut()[field::HOP_LIMIT] -= 1;
    }

    pub fn set_hop_limit(&mut self, hops: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hops;
    }
}

/// The next header value that says nothing follows (RFC 8200 §4.7).
pub const NO_NEXT_HEADER: u8 = 59;

/// Whether a next header value names an extension header: IANA's "IPv6 Extension Header
/// Types" (hop-by-hop options, routing, fragment, ESP, AH, destination options, mobility,
/// HIP, shim6 and the two for experiments).
pub fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// Whether a router must not forward a packet from or to `addr` (RFC 4291): the unspecified
/// address (§2.5.2), loopback (§2.5.3), link-local unicast fe80::/10 (§2.5.6) and multicast
/// ff00::/8 (§2.7; Sluice routes unicast only).
pub fn is_martian(addr: &Ipv6Addr) -> bool {
    addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_unicast_link_local()
}

/// Whether a header's source or destination may be martian ([`is_martian`] decides): a first
/// byte of 0x00, 0xfe or 0xff, which every martian has.
#[inline(always)]
fn maybe_martian(header: &[u8; HEADER_LEN]) -> bool {
    let suspect = |first: u8| first.wrapping_add(2) <= 2;
    suspect(header[field::SOURCE.start]) || suspect(header[field::DESTINATION.start])
}

/// The forwarding fast path, in one pass over the fixed header at the start of an IPv6 packet
/// of `len` bytes: whether it passes a router's checks (version 6, the payload within `len`, a
/// hop limit above 1, addresses plainly not martian), and if so, its hop limit decremented. A
/// header that does not pass is left as it is: [`Packet::validate`], [`is_martian`] or its hop
/// limit says why.
#[inline(always)]
pub fn forward_plain(header: &mut [u8; HEADER_LEN], len: usize) -> bool {
    let payload = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let hops = header[field::HOP_LIMIT];
    if header[0] >> 4 != 6 || HEADER_LEN + payload > len || hops <= 1 || maybe_martian(header) {
        return false;
    }
    header[field::HOP_LIMIT] = hops - 1;
    true
}

/// A fixed header, to build packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub payload_len: u16,
}

impl Repr {
    pub fn emit(&self, buffer: &mut [u8]) -> Result<(), Truncated> {
        let b = buffer.get_mut(..HEADER_LEN).ok_or(Truncated)?;
        b.fill(0);
        b[0] = 0x60;
        b[field::PAYLOAD_LEN].copy_from_slice(&self.payload_len.to_be_bytes());
        b[field::NEXT_HEADER] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SOURCE].copy_from_slice(&self.src.octets());
        b[field::DESTINATION].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn martians_are_the_rfc_4291_sets() {
        let martian = |a: &str| is_martian(&a.parse().unwrap());
        for a in ["::", "::1", "fe80::1", "febf::1", "ff02::1", "ff0e::1"] {
            assert!(martian(a), "{a}");
        }
        for a in [
            "2001:db8::1",
            "fec0::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "2001:200::1",
        ] {
            assert!(!martian(a), "{a}");
        }
    }

    #[test]
    fn emitted_header_reads_back_and_validates() {
        let mut b = [0u8; 48];
        let repr = Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:200:0:1::9".parse().unwrap(),
            next_header: 17,
            hop_limit: 2,
            payload_len: 8,
        };
        repr.emit(&mut b).unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.dst_addr(), repr.dst);
        assert_eq!(p.src_addr(), repr.src);
        assert_eq!((p.next_header(), p.payload().len()), (17, 8));
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(
            Packet::new_checked(&b[..47]).unwrap().validate(),
            Err(Invalid::BadHeader)
        );
        b[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().validate(),
            Err(Invalid::BadHeader)
        );
        assert_eq!(Packet::new_checked(&b[..39]).err(), Some(Truncated));
    }

    #[test]
    fn the_fast_path_forwards_what_validate_passes_and_leaves_the_rest() {
        let mut header = [0u8; HEADER_LEN];
        Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:200:0:1::9".parse().unwrap(),
            next_header: 17,
            hop_limit: 2,
            payload_len: 8,
        }
        .emit(&mut header)
        .unwrap();
        let mut h = header;
        assert!(forward_plain(&mut h, 48));
        assert_eq!(h[field::HOP_LIMIT], 1);
        // A hop limit of 1, another version, a payload beyond the packet: left as they are.
        type Edit<'a> = &'a dyn Fn(&mut [u8; HEADER_LEN]);
        let cases: [(Edit, usize); 6] = [
            (&|h| h[field::HOP_LIMIT] = 1, 48),
            (&|h| h[0] = 0x40, 48),
            (&|_| (), 47),
            (&|h| h[field::DESTINATION.start] = 0xff, 48),
            (&|h| h[field::DESTINATION.start] = 0, 48),
            (&|h| h[field::SOURCE.start] = 0xfe, 48),
        ];
        for (i, (edit, len)) in cases.iter().enumerate() {
            let mut h = header;
            edit(&mut h);
            let before = h;
            assert!(!forward_plain(&mut h, *len), "case {i}");
            assert_eq!(h, before, "case {i}");
        }
    }
}
