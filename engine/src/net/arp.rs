//! ARP for IPv4 over Ethernet (RFC 826).

use super::ethernet::Address;
use super::Truncated;
use std::net::Ipv4Addr;

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_mac: Address,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Address,
    pub target_ip: Ipv4Addr,
}

/// Why an ARP packet is not one Sluice handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    Truncated,
    /// Not Ethernet/IPv4, or an operation other than request and reply.
    Unsupported,
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn mac(b: &[u8]) -> Address {
    Address(b.try_into().expect("6 bytes"))
}

impl Repr {
    pub fn parse(buffer: &[u8]) -> Result<Repr, Invalid> {
        let b = buffer.get(..PACKET_LEN).ok_or(Invalid::Truncated)?;
        if b[field::HTYPE] != [0, 1] || b[field::PTYPE] != [8, 0] || b[field::HLEN] != 6 {
            return Err(Invalid::Unsupported);
        }
        if b[field::PLEN] != 4 {
            return Err(Invalid::Unsupported);
        }
        let operation = match b[field::OPER] {
            [0, 1] => Operation::Request,
            [0, 2] => Operation::Reply,
            _ => return Err(Invalid::Unsupported),
        };
        Ok(Repr {
            operation,
            sender_mac: mac(&b[field::SHA]),
            sender_ip: ip(&b[field::SPA]),
            target_mac: mac(&b[field::THA]),
            target_ip: ip(&b[field::TPA]),
        })
    }

    pub fn emit(&self, buffer: &mut [u8]) -> Result<(), Truncated> {
        let b = buffer.get_mut(..PACKET_LEN).ok_or(Truncated)?;
        b[field::HTYPE].copy_from_slice(&[0, 1]);
        b[field::PTYPE].copy_from_slice(&[8, 0]);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        let oper = match self.operation {
            Operation::Request => 1u16,
            Operation::Reply => 2,
        };
        b[field::OPER].copy_from_slice(&oper.to_be_bytes());
        b[field::SHA].copy_from_slice(&self.sender_mac.0);
        b[field::SPA].copy_from_slice(&self.sender_ip.octets());
        b[field::THA].copy_from_slice(&self.target_mac.0);
        b[field::TPA].copy_from_slice(&self.target_ip.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        // A request for 10.0.1.1 from 10.0.1.2, as Linux sends it.
        let bytes: [u8; 28] = [
            0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x0a, 10, 0, 1, 2, 0, 0, 0, 0, 0, 0, 10, 0,
            1, 1,
        ];
        let repr = Repr::parse(&bytes).unwrap();
        assert_eq!(repr.operation, Operation::Request);
        assert_eq!(repr.sender_ip, Ipv4Addr::new(10, 0, 1, 2));
        assert_eq!(repr.target_ip, Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(repr.sender_mac, Address([2, 0, 0, 0, 0, 0x0a]));
        let mut out = [0u8; 28];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(Repr::parse(&bytes[..27]), Err(Invalid::Truncated));
        let mut odd = bytes;
        odd[7] = 9;
        assert_eq!(Repr::parse(&odd), Err(Invalid::Unsupported));
    }
}
