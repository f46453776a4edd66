//! Ethernet II frames.

use super::Truncated;
use std::fmt;
use std::str::FromStr;

/// A MAC address.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 6]);

impl Address {
    pub const BROADCAST: Address = Address([0xff; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Address::BROADCAST
    }

    /// Group bit set: broadcast or multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Locally administered bit set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address that did not parse; expected six hex bytes separated by `:` or `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadAddress(pub String);

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a MAC address (expected six hex bytes such as 02:00:00:00:00:01)",
            self.0
        )
    }
}

impl std::error::Error for BadAddress {}

impl FromStr for Address {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Address, BadAddress> {
        let bad = || BadAddress(s.to_owned());
        let mut bytes = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Address(bytes))
    }
}

/// A destination and a source address laid out as in the header, to write both at once: as
/// the header's first 8 bytes and the 4 after them, two words a loop keeps in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPair {
    head: u64,
    tail: u32,
}

impl AddressPair {
    pub fn new(dst: Address, src: Address) -> AddressPair {
        let mut bytes = [0u8; 12];
        bytes[..6].copy_from_slice(&dst.0);
        bytes[6..].copy_from_slice(&src.0);
        AddressPair {
            head: u64::from_ne_bytes(bytes[..8].try_into().expect("8 bytes")),
            tail: u32::from_ne_bytes(bytes[8..].try_into().expect("4 bytes")),
        }
    }

    /// Writes the pair over the addresses of a frame whose type says it holds them, with no
    /// length check left to run.
    #[inline(always)]
    pub fn write<const LEN: usize>(&self, frame: &mut [u8; LEN]) {
        const { assert!(LEN >= HEADER_LEN) };
        frame[..8].copy_from_slice(&self.head.to_ne_bytes());
        frame[8..field::SOURCE.end].copy_from_slice(&self.tail.to_ne_bytes());
    }
}

/// The EtherType field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86dd);
    pub const QINQ: EtherType = EtherType(0x88a8);
}

mod field {
    use std::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of an Ethernet frame in `buffer`.
#[derive(Clone, Copy, Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer`, which must hold at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Frame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> Address {
        Address(
            self.buffer.as_ref()[field::DESTINATION]
                .try_into()
                .expect("6 bytes"),
        )
    }

    pub fn src_addr(&self) -> Address {
        Address(
            self.buffer.as_ref()[field::SOURCE]
                .try_into()
                .expect("6 bytes"),
        )
    }

    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Writes destination and source at once (one 12-byte copy, for forwarding fast paths).
    pub fn set_addresses(&mut self, addresses: &AddressPair) {
        let b = self.buffer.as_mut();
        b[..8].copy_from_slice(&addresses.head.to_ne_bytes());
        b[8..field::SOURCE.end].copy_from_slice(&addresses.tail.to_ne_bytes());
    }

    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The Ethernet header's fields, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Repr {
        Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        }
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ARP request from 52:54:00:12:34:56, broadcast, with a 4-byte payload stub.
    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00,
    ];

    #[test]
    fn reads_fields() {
        let frame = Frame::new_checked(&FRAME[..]).unwrap();
        assert!(frame.dst_addr().is_broadcast());
        assert_eq!(
            frame.src_addr(),
            Address([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(frame.ethertype(), EtherType::ARP);
        assert_eq!(frame.payload(), &[0x00, 0x01, 0x08, 0x00]);
    }

    #[test]
    fn short_buffers_are_truncated_not_a_panic() {
        for len in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&FRAME[..len]).unwrap_err(), Truncated);
        }
        assert_eq!(
            Frame::new_checked(&FRAME[..HEADER_LEN]).unwrap().payload(),
            &[] as &[u8]
        );
    }

    #[test]
    fn writes_in_place() {
        let mut bytes = FRAME;
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        frame.set_dst_addr(Address([2, 0, 0, 0, 0, 1]));
        frame.set_src_addr(Address([2, 0, 0, 0, 0, 2]));
        frame.set_ethertype(EtherType::IPV4);
        frame.payload_mut()[0] = 0x45;
        assert_eq!(
            &bytes[..14],
            &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
        );
        assert_eq!(bytes[14], 0x45);
    }

    #[test]
    fn address_pair_writes_destination_then_source() {
        let mut bytes = FRAME;
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        frame.set_addresses(&AddressPair::new(Address([1; 6]), Address([2; 6])));
        assert_eq!(frame.dst_addr(), Address([1; 6]));
        assert_eq!(frame.src_addr(), Address([2; 6]));
        assert_eq!(frame.ethertype(), EtherType::ARP);
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr::parse(&Frame::new_checked(&FRAME[..]).unwrap());
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut Frame::new_checked(&mut out[..]).unwrap());
        assert_eq!(out, FRAME[..HEADER_LEN]);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
    }

    #[test]
    fn addresses_parse_and_print() {
        let a: Address = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(a, Address([2, 0, 0, 0, 0, 10]));
        assert_eq!(a.to_string(), "02:00:00:00:00:0a");
        assert_eq!(
            "AA-BB-CC-DD-EE-FF".parse::<Address>().unwrap(),
            Address([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert!(a.is_local() && !a.is_multicast());
        assert!(Address::BROADCAST.is_multicast());
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "02:00:00:00:00:0g",
            "002:00:00:00:00:00",
            "02::00:00:00:00",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
