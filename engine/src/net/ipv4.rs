//! IPv4 headers (RFC 791), with the checks RFC 1812 §5.2.2 asks of a router.

use super::checksum;
use super::Truncated;
use std::net::Ipv4Addr;

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SOURCE: Range<usize> = 12..16;
    pub const DESTINATION: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers Sluice looks at.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// Why a header fails a router's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than the header claims, or than a minimal header.
    Truncated,
    /// Version not 4, header length under 20 bytes, or total length shorter than the header
    /// or longer than the bytes that arrived.
    BadHeader,
    BadChecksum,
}

/// A view of an IPv4 packet at the start of `buffer`.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` if it holds at least a minimal header (fields are then safe to read;
    /// [`Packet::validate`] checks them).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Truncated> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Packet { buffer })
    }

    /// RFC 1812 §5.2.2: version 4, IHL of at least 5 words within the buffer, total length
    /// covering the header and within the buffer, and a correct checksum.
    pub fn validate(&self) -> Result<(), Invalid> {
        let len = self.buffer.as_ref().len();
        if self.version() != 4 || self.header_len() < MIN_HEADER_LEN {
            return Err(Invalid::BadHeader);
        }
        if self.header_len() > len {
            return Err(Invalid::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < self.header_len() || total > len {
            return Err(Invalid::BadHeader);
        }
        if !self.verify_checksum() {
            return Err(Invalid::BadChecksum);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn total_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::TOTAL_LEN.start], b[field::TOTAL_LEN.start + 1]])
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SOURCE];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DESTINATION];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The destination as a host-order integer, as LPM tables take it.
    pub fn dst_u32(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::DESTINATION];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Whether the header (with its options) sums to zero. Call only on a header that fits
    /// the buffer (after [`Packet::validate`]'s length checks).
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        b.len() >= self.header_len() && checksum::internet(&b[..self.header_len()]) == 0
    }

    /// What follows the header, up to the total length (both must fit the buffer).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        &b[self.header_len().min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Takes one from the TTL, updating the checksum incrementally (RFC 1624). The caller has
    /// checked that the TTL is above 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let bytes = self.buffer.as_mut()[field::TTL..field::CHECKSUM.end]
            .first_chunk_mut::<4>()
            .expect("the header holds them");
        *bytes = ttl_decremented(u32::from_le_bytes(*bytes)).to_le_bytes();
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.octets());
    }

    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        let len = self.header_len();
        let b = self.buffer.as_mut();
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let csum = checksum::internet(&b[..len]);
        b[field::CHECKSUM].copy_from_slice(&csum.to_be_bytes());
    }

    /// The bytes after the header, up to the total length, to rewrite in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, total) = (self.header_len(), usize::from(self.total_len()));
        let b = self.buffer.as_mut();
        let end = total.min(b.len());
        &mut b[start.min(end)..end]
    }
}

/// TTL, protocol and checksum, as one 32-bit word read little-endian whatever the CPU, after
/// the TTL's decrement: the TTL is the word's low byte and the checksum, byte-swapped, its high
/// half. The big-endian word TTL:protocol goes down by 0x100, so RFC 1624's eqn. 3 gives the
/// checksum ~(~C + 0xfeff); byte-swapped, that is the swapped C plus one, or plus two from
/// 0xfffe and 0xffff (ones'-complement carries), wrapping within the high half.
#[inline(always)]
fn ttl_decremented(word: u32) -> u32 {
    debug_assert!(word & 0xff > 1, "the caller checks the TTL");
    let carry = if word >= 0xfffe_0000 {
        0x2_0000
    } else {
        0x1_0000
    };
    word.wrapping_sub(1).wrapping_add(carry)
}

/// Whether a router must not forward a packet from or to `addr` (RFC 1812 §5.3.7 and
/// §4.2.2.11, RFC 3927 §7): "this network" 0.0.0.0/8, loopback 127.0.0.0/8, link-local
/// 169.254.0.0/16, multicast 224.0.0.0/4 (Sluice routes unicast only) and class E
/// 240.0.0.0/4 with the limited broadcast 255.255.255.255.
pub fn is_martian(addr: Ipv4Addr) -> bool {
    let [a, b, ..] = addr.octets();
    MARTIAN_OCTET[usize::from(a)] == ALWAYS || (a, b) == (169, 254)
}

/// [`MARTIAN_OCTET`]'s mark of a first octet that is martian whatever follows.
const ALWAYS: u8 = 1;
/// Its mark of a first octet under which some addresses are martian (169: 169.254/16).
const SOMETIMES: u8 = 2;

/// Per first octet of an address, whether [`is_martian`] may hold: the fast path's screen, two
/// loads for a packet's two addresses.
static MARTIAN_OCTET: [u8; 256] = {
    let mut table = [0; 256];
    let mut octet = 0;
    while octet < 256 {
        table[octet] = match octet {
            0 | 127 | 224..=255 => ALWAYS,
            169 => SOMETIMES,
            _ => 0,
        };
        octet += 1;
    }
    table
};

/// Whether a source or destination whose first octets are `src` and `dst` may be martian
/// ([`is_martian`] decides).
#[inline(always)]
fn maybe_martian(src: u8, dst: u8) -> bool {
    MARTIAN_OCTET[usize::from(src)] | MARTIAN_OCTET[usize::from(dst)] != 0
}

/// The forwarding fast path of the commonest packet, checked in one pass over the first 20
/// bytes of an IPv4 packet of `len` bytes: a header without options (first byte 0x45) whose
/// total length is within `len`, whose TTL is above 1, whose checksum is right and whose
/// addresses are plainly not martian. Such a header has its TTL decremented (RFC 1624) and
/// its destination returned as a host-order integer, as LPM tables take it. Any other is left
/// as it is: [`Packet::validate`], [`is_martian`] or the TTL says why.
#[inline(always)]
pub fn forward_plain(header: &mut [u8; MIN_HEADER_LEN], len: usize) -> Option<u32> {
    // Two 8-byte words and one 4-byte word hold every field (the checksum reads the same).
    let start = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let middle = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let destination = u32::from_le_bytes(header[field::DESTINATION].try_into().expect("4 bytes"));
    let total = usize::from(((start >> 16) as u16).swap_bytes());
    // MIN_HEADER_LEN <= total <= len in one unsigned compare.
    let fits = total.wrapping_sub(MIN_HEADER_LEN) <= len.wrapping_sub(MIN_HEADER_LEN);
    if start as u8 != 0x45
        || !fits
        || middle as u8 <= 1
        || maybe_martian((middle >> 32) as u8, destination as u8)
        || !checksum::verify_plain_header(header)
    {
        return None;
    }
    header[field::TTL..field::CHECKSUM.end]
        .copy_from_slice(&ttl_decremented(middle as u32).to_le_bytes());
    Some(destination.swap_bytes())
}

/// A header without options, to build packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub payload_len: u16,
}

impl Repr {
    /// Writes the header, checksum included, into the first 20 bytes of `buffer`.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<(), Truncated> {
        let b = buffer.get_mut(..MIN_HEADER_LEN).ok_or(Truncated)?;
        b.fill(0);
        b[field::VER_IHL] = 0x45;
        let total = self.payload_len + MIN_HEADER_LEN as u16;
        b[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
        b[6] = 0x40; // don't fragment
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::SOURCE].copy_from_slice(&self.src.octets());
        b[field::DESTINATION].copy_from_slice(&self.dst.octets());
        let csum = checksum::internet(b);
        b[field::CHECKSUM].copy_from_slice(&csum.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 24] {
        let mut b = [0u8; 24];
        Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(198, 18, 1, 7),
            protocol: protocol::UDP,
            ttl: 64,
            payload_len: 4,
        }
        .emit(&mut b)
        .unwrap();
        b
    }

    #[test]
    fn emitted_header_reads_back_and_validates() {
        let b = header();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 24));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 1, 7));
        assert_eq!(p.dst_u32(), 0xc612_0107);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!((p.ttl(), p.protocol()), (64, 17));
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn router_checks_name_what_is_wrong() {
        let check = |edit: &dyn Fn(&mut [u8; 24]), len: usize| {
            let mut b = header();
            edit(&mut b);
            Packet::new_checked(&b[..len]).unwrap().validate()
        };
        assert_eq!(check(&|b| b[0] = 0x65, 24), Err(Invalid::BadHeader));
        assert_eq!(check(&|b| b[0] = 0x44, 24), Err(Invalid::BadHeader));
        assert_eq!(check(&|b| b[0] = 0x46, 20), Err(Invalid::Truncated));
        assert_eq!(check(&|b| b[3] = 25, 24), Err(Invalid::BadHeader));
        assert_eq!(check(&|b| b[3] = 19, 24), Err(Invalid::BadHeader));
        assert_eq!(check(&|b| b[11] ^= 1, 24), Err(Invalid::BadChecksum));
        // Trailing bytes beyond the total length (Ethernet padding) are fine.
        assert_eq!(check(&|b| b[3] = 20, 24).err(), Some(Invalid::BadChecksum));
        assert_eq!(
            check(
                &|b| {
                    b[3] = 20;
                    Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
                },
                24
            ),
            Ok(())
        );
        assert_eq!(Packet::new_checked(&[0u8; 19][..]).err(), Some(Truncated));
    }

    #[test]
    fn the_fast_path_forwards_what_validate_passes_and_leaves_the_rest() {
        let mut b = header();
        let h: &mut [u8; 20] = (&mut b[..20]).try_into().unwrap();
        assert_eq!(forward_plain(h, 24), Some(0xc612_0107));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.ttl(), p.validate()), (63, Ok(())));
        // Every way to fail: the header is left as it was, and validate or the TTL says why.
        type Edit<'a> = &'a dyn Fn(&mut [u8; 24]);
        let cases: [(Edit, usize); 7] = [
            (&|b| b[0] = 0x46, 24),
            (&|b| b[0] = 0x55, 24),
            (&|b| b[3] = 25, 24),
            (&|b| b[3] = 19, 24),
            (&|b| b[11] ^= 1, 24),
            (&|_| (), 23),
            (
                &|b| {
                    b[8] = 1;
                    Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
                },
                24,
            ),
        ];
        for (i, (edit, len)) in cases.iter().enumerate() {
            let mut b = header();
            edit(&mut b);
            let before = b;
            let h: &mut [u8; 20] = (&mut b[..20]).try_into().unwrap();
            assert_eq!(forward_plain(h, *len), None, "case {i}");
            assert_eq!(b, before, "case {i}");
            let p = Packet::new_checked(&b[..*len]).unwrap();
            assert!(p.validate().is_err() || p.ttl() <= 1, "case {i}");
        }
    }

    #[test]
    fn martians_are_the_rfc_1812_and_3927_sets() {
        let martian = |a: &str| is_martian(a.parse().unwrap());
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.0.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(martian(a), "{a}");
        }
        for a in [
            "1.0.0.0",
            "10.0.0.1",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.0.1",
            "169.255.0.1",
            "198.18.1.1",
            "223.255.255.255",
        ] {
            assert!(!martian(a), "{a}");
        }
    }

    #[test]
    fn the_fast_path_leaves_martians_to_the_long_way() {
        for (at, octet) in [(12, 127), (16, 0), (16, 224), (12, 255), (16, 169)] {
            let mut b = header();
            b[at] = octet;
            Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
            let before = b;
            let h: &mut [u8; 20] = (&mut b[..20]).try_into().unwrap();
            assert_eq!(forward_plain(h, 24), None, "octet {octet} at {at}");
            assert_eq!(b, before);
        }
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_right() {
        let mut b = header();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        p.set_ttl(2);
        p.fill_checksum();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn ttl_decrement_matches_rfc_1624_for_every_checksum() {
        let mut b = header();
        for csum in 0..=u16::MAX {
            b[8] = 64;
            b[10..12].copy_from_slice(&csum.to_be_bytes());
            Packet::new_checked(&mut b[..]).unwrap().decrement_ttl();
            let want = checksum::update(csum, 0x4000 | u16::from(b[9]), 0x3f00 | u16::from(b[9]));
            assert_eq!(b[8], 63);
            assert_eq!(u16::from_be_bytes([b[10], b[11]]), want, "from {csum:#06x}");
        }
    }
}
