//! ICMPv6 (RFC 4443) echo, and the neighbour discovery messages (RFC 4861) a router needs to
//! resolve and be resolved: neighbour solicitation and advertisement with their link-layer
//! address options.

use super::checksum;
use super::ethernet::Address;
use super::Truncated;
use std::net::Ipv6Addr;

/// The IPv6 next-header value of ICMPv6.
pub const NEXT_HEADER: u8 = 58;

pub const DESTINATION_UNREACHABLE: u8 = 1;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const NEIGHBOUR_SOLICITATION: u8 = 135;
pub const NEIGHBOUR_ADVERTISEMENT: u8 = 136;

/// Neighbour discovery messages travel one link only: sent, and accepted, with this hop limit.
pub const ND_HOP_LIMIT: u8 = 255;

/// Type, code, checksum and the 4 bytes after them.
pub const HEADER_LEN: usize = 8;

/// A solicitation or advertisement: header, target, and one link-layer address option.
pub const NEIGHBOUR_LEN: usize = 24 + 8;

const OPTION_SOURCE_LINK_ADDR: u8 = 1;
const OPTION_TARGET_LINK_ADDR: u8 = 2;

/// Advertisement flags (RFC 4861 §4.4).
pub const FLAG_ROUTER: u8 = 0x80;
pub const FLAG_SOLICITED: u8 = 0x40;
pub const FLAG_OVERRIDE: u8 = 0x20;

/// The ICMPv6 checksum of `message` between `src` and `dst` (the field itself counted as is:
/// zero it to compute, leave it to verify, where a right one gives 0).
pub fn checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let length = message.len() as u32;
    checksum::finish(checksum::combine(&[
        checksum::pseudo_v6(src, dst, NEXT_HEADER, length),
        checksum::sum(message),
    ]))
}

/// Writes the checksum of `message` (at least a header long) into it.
pub fn fill_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &mut [u8]) {
    message[2..4].fill(0);
    let sum = checksum(src, dst, message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Turns an echo request into its reply in place (type 128 → 129). The pseudo-header sums the
/// same with source and destination swapped, so the checksum follows the type alone.
pub fn make_echo_reply(message: &mut [u8]) -> Result<(), Truncated> {
    if message.len() < HEADER_LEN {
        return Err(Truncated);
    }
    let old = u16::from_be_bytes([message[0], message[1]]);
    message[0] = ECHO_REPLY;
    let new = u16::from_be_bytes([message[0], message[1]]);
    let sum = u16::from_be_bytes([message[2], message[3]]);
    message[2..4].copy_from_slice(&checksum::update(sum, old, new).to_be_bytes());
    Ok(())
}

/// The solicited-node multicast group of `addr` (ff02::1:ffXX:XXXX), where solicitations for
/// it are sent.
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of an IPv6 multicast group (RFC 2464 §7): 33:33 and its last 32 bits.
pub fn multicast_mac(group: &Ipv6Addr) -> Address {
    let o = group.octets();
    Address([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Which neighbour discovery message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighbourKind {
    Solicitation,
    /// With its flags ([`FLAG_ROUTER`], [`FLAG_SOLICITED`], [`FLAG_OVERRIDE`]).
    Advertisement(u8),
}

/// A neighbour solicitation or advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourRepr {
    pub kind: NeighbourKind,
    pub target: Ipv6Addr,
    /// The sender's link-layer address (a solicitation's source option, an advertisement's
    /// target option), when the message carries it.
    pub link_addr: Option<Address>,
}

impl NeighbourRepr {
    /// Reads a solicitation or advertisement; anything else, or options that run past the
    /// message or have length 0 (RFC 4861 §4.6: to be discarded), is an error.
    pub fn parse(message: &[u8]) -> Result<NeighbourRepr, Truncated> {
        if message.len() < 24 || message[1] != 0 {
            return Err(Truncated);
        }
        let (kind, wanted) = match message[0] {
            NEIGHBOUR_SOLICITATION => (NeighbourKind::Solicitation, OPTION_SOURCE_LINK_ADDR),
            NEIGHBOUR_ADVERTISEMENT => (
                NeighbourKind::Advertisement(message[4]),
                OPTION_TARGET_LINK_ADDR,
            ),
            _ => return Err(Truncated),
        };
        let target: [u8; 16] = message[8..24].try_into().expect("16 bytes");
        let mut link_addr = None;
        let mut options = &message[24..];
        while !options.is_empty() {
            let len = usize::from(*options.get(1).ok_or(Truncated)?) * 8;
            if len == 0 || len > options.len() {
                return Err(Truncated);
            }
            if options[0] == wanted && len == 8 {
                link_addr = Some(Address(options[2..8].try_into().expect("6 bytes")));
            }
            options = &options[len..];
        }
        Ok(NeighbourRepr {
            kind,
            target: Ipv6Addr::from(target),
            link_addr,
        })
    }

    /// Writes the message (checksum zero: see [`fill_checksum`]) into the first
    /// [`NEIGHBOUR_LEN`] bytes of `buffer` (fewer without a link-layer address).
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize, Truncated> {
        let len = if self.link_addr.is_some() {
            NEIGHBOUR_LEN
        } else {
            24
        };
        let b = buffer.get_mut(..len).ok_or(Truncated)?;
        b.fill(0);
        let option = match self.kind {
            NeighbourKind::Solicitation => {
                b[0] = NEIGHBOUR_SOLICITATION;
                OPTION_SOURCE_LINK_ADDR
            }
            NeighbourKind::Advertisement(flags) => {
                b[0] = NEIGHBOUR_ADVERTISEMENT;
                b[4] = flags;
                OPTION_TARGET_LINK_ADDR
            }
        };
        b[8..24].copy_from_slice(&self.target.octets());
        if let Some(mac) = self.link_addr {
            b[24] = option;
            b[25] = 1; // in units of 8 bytes
            b[26..32].copy_from_slice(&mac.0);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_group_and_its_mac() {
        let addr: Ipv6Addr = "fd00:1::1:2:3".parse().unwrap();
        let group = solicited_node(&addr);
        assert_eq!(group, "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            multicast_mac(&group),
            Address([0x33, 0x33, 0xff, 0x02, 0, 3])
        );
    }

    #[test]
    fn neighbour_messages_round_trip_with_a_valid_checksum() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("fd00::1".parse().unwrap(), "ff02::1".parse().unwrap());
        let repr = NeighbourRepr {
            kind: NeighbourKind::Advertisement(FLAG_ROUTER | FLAG_SOLICITED),
            target: src,
            link_addr: Some(Address([2, 0, 0, 0, 0, 9])),
        };
        let mut msg = [0u8; NEIGHBOUR_LEN];
        assert_eq!(repr.emit(&mut msg), Ok(NEIGHBOUR_LEN));
        fill_checksum(&src, &dst, &mut msg);
        assert_eq!(checksum(&src, &dst, &msg), 0);
        assert_eq!(NeighbourRepr::parse(&msg), Ok(repr));
        // A zero-length option is malformed; a source option in an advertisement is ignored.
        let mut bad = msg;
        bad[25] = 0;
        assert_eq!(NeighbourRepr::parse(&bad), Err(Truncated));
        let mut other = msg;
        other[24] = OPTION_SOURCE_LINK_ADDR;
        assert_eq!(NeighbourRepr::parse(&other).unwrap().link_addr, None);
        assert_eq!(NeighbourRepr::parse(&msg[..23]), Err(Truncated));
    }

    #[test]
    fn echo_reply_keeps_the_checksum_right() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let mut msg = [ECHO_REQUEST, 0, 0, 0, 0, 7, 0, 1, b'p', b'i', b'n', b'g'];
        fill_checksum(&a, &b, &mut msg);
        make_echo_reply(&mut msg).unwrap();
        assert_eq!(msg[0], ECHO_REPLY);
        assert_eq!(checksum(&b, &a, &msg), 0, "valid from the replier back");
    }
}
