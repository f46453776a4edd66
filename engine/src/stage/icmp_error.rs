//! The ICMP errors a router sends (RFC 792, RFC 4443): time exceeded for packets whose TTL or
//! hop limit runs out in the router (RFC 1812 §5.3.1, RFC 4443 §3.3), and destination
//! unreachable for packets it has no route for or whose next hop does not answer (RFC 1812
//! §5.2.7.1, RFC 4443 §3.1, RFC 4861 §7.2.2), and port and protocol unreachable for UDP and
//! other transports to the router itself (RFC 1122 §4.1.3.1 and §3.2.2.1, RFC 8200 §4). All
//! under
//! the limits RFC 1812 §4.3.2.7 and RFC 4443 §2.4 put on ICMP errors: none for an ICMP error, a
//! fragment other than the first, a packet to a multicast or broadcast address or in a
//! link-layer multicast frame, or one whose source is not a unicast host; and no more than a
//! rate. The packet becomes its own answer, in place.

use crate::mbuf::Mbuf;
use crate::net::ethernet::{self, AddressPair, EtherType, Frame};
use crate::net::{checksum, icmp, icmpv6, ipv4, ipv6};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// The most of the original an IPv4 error quotes: its IP datagram stays within 576 bytes
/// (RFC 1812 §4.3.2.3).
const QUOTE_V4: usize = 576 - ipv4::MIN_HEADER_LEN - ERROR_HEADER_LEN;
/// The most an ICMPv6 error quotes: its packet stays within the minimum MTU, 1280 bytes.
const QUOTE_V6: usize = 1280 - ipv6::HEADER_LEN - ERROR_HEADER_LEN;
/// An ICMP or ICMPv6 error's own header: type, code, checksum and 4 unused bytes.
const ERROR_HEADER_LEN: usize = 8;
const _: () =
    assert!(icmp::HEADER_LEN == ERROR_HEADER_LEN && icmpv6::HEADER_LEN == ERROR_HEADER_LEN);

/// Which error a packet is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Its TTL or hop limit ran out here (code 0: in transit).
    TimeExceeded,
    /// No route to its destination: IPv4's "net unreachable", ICMPv6's "no route to
    /// destination" (code 0 of each).
    NoRoute,
    /// Its next hop did not answer address resolution: IPv4's "host unreachable" (code 1),
    /// ICMPv6's "address unreachable" (code 3).
    NoNeighbour,
    /// A UDP datagram to the router itself, which serves no UDP port: "port unreachable"
    /// (IPv4 code 3, ICMPv6 code 4).
    PortUnreachable,
    /// A packet to the router itself of a transport it does not speak: IPv4's "protocol
    /// unreachable" (code 2); ICMPv6's parameter problem "unrecognized next header" (code 1),
    /// pointing at the fixed header's next header field (RFC 8200 §4).
    ProtocolUnreachable,
}

impl IcmpError {
    /// The ICMP type and code of the error.
    fn v4(self) -> (u8, u8) {
        match self {
            IcmpError::TimeExceeded => (icmp::TIME_EXCEEDED, 0),
            IcmpError::NoRoute => (icmp::DESTINATION_UNREACHABLE, 0),
            IcmpError::NoNeighbour => (icmp::DESTINATION_UNREACHABLE, 1),
            IcmpError::PortUnreachable => (icmp::DESTINATION_UNREACHABLE, 3),
            IcmpError::ProtocolUnreachable => (icmp::DESTINATION_UNREACHABLE, 2),
        }
    }

    /// The ICMPv6 type and code of the error.
    fn v6(self) -> (u8, u8) {
        match self {
            IcmpError::TimeExceeded => (icmpv6::TIME_EXCEEDED, 0),
            IcmpError::NoRoute => (icmpv6::DESTINATION_UNREACHABLE, 0),
            IcmpError::NoNeighbour => (icmpv6::DESTINATION_UNREACHABLE, 3),
            IcmpError::PortUnreachable => (icmpv6::DESTINATION_UNREACHABLE, 4),
            IcmpError::ProtocolUnreachable => (icmpv6::PARAMETER_PROBLEM, 1),
        }
    }

    /// The ICMPv6 header's last four bytes: a parameter problem's pointer, else unused.
    fn v6_rest(self) -> u32 {
        match self {
            IcmpError::ProtocolUnreachable => NEXT_HEADER_AT,
            _ => 0,
        }
    }
}

/// Where the next header field is in IPv6's fixed header.
const NEXT_HEADER_AT: u32 = 6;

/// The TTL or hop limit of the answers, as a host would start them.
pub(super) const ANSWER_TTL: u8 = 64;

/// A token bucket: `rate` answers a second, at most a tenth of a second's worth at once.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimit {
    pub fn per_second(rate: u32) -> RateLimit {
        let burst = (f64::from(rate) / 10.0).max(1.0);
        RateLimit {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Whether one more may go now (it is then counted).
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        if let Some(last) = self.last {
            let refill = now.duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An IPv4 packet to answer with `error` from `source` (the router's address on the port it
/// came in by, whose MAC is `mac`, for the packet's sender) if `limit` allows: true if it was
/// rewritten into the answer, to go back out of that port; false if it must not or cannot be
/// answered, and is left as it was. `broadcasts` are the directed broadcast addresses of the
/// router's subnets (host order, sorted), which are not answered either.
///
/// The answer quotes the packet as it is: one that had its TTL taken before its route was
/// missed is quoted so (RFC 1812 §4.3.2.3 does not ask a router to undo it).
pub fn answer_v4(
    m: &mut Mbuf,
    error: IcmpError,
    mac: ethernet::Address,
    source: impl Fn(Ipv4Addr) -> Option<Ipv4Addr>,
    broadcasts: &[u32],
    limit: &mut RateLimit,
) -> bool {
    let Some((peer, to, quote)) = eligible_v4(m.data(), broadcasts) else {
        return false;
    };
    let Some(from) = source(to) else {
        return false;
    };
    if !limit.take() {
        return false;
    }
    let Some(data) = make_answer(m, ipv4::MIN_HEADER_LEN, error.v4(), 0, quote) else {
        return false;
    };
    let ip_at = ethernet::HEADER_LEN;
    let message_at = ip_at + ipv4::MIN_HEADER_LEN;
    let header = ipv4::Repr {
        src: from,
        dst: to,
        protocol: ipv4::protocol::ICMP,
        ttl: ANSWER_TTL,
        payload_len: (ERROR_HEADER_LEN + quote) as u16,
    };
    if header.emit(&mut data[ip_at..]).is_err() {
        return false;
    }
    let message = &mut data[message_at..];
    let csum = checksum::internet(message);
    message[2..4].copy_from_slice(&csum.to_be_bytes());
    address_back(data, peer, mac, EtherType::IPV4);
    true
}

/// As [`answer_v4`], for an IPv6 packet.
pub fn answer_v6(
    m: &mut Mbuf,
    error: IcmpError,
    mac: ethernet::Address,
    source: impl Fn(&Ipv6Addr) -> Option<Ipv6Addr>,
    limit: &mut RateLimit,
) -> bool {
    let Some((peer, to, quote)) = eligible_v6(m.data()) else {
        return false;
    };
    let Some(from) = source(&to) else {
        return false;
    };
    if !limit.take() {
        return false;
    }
    let Some(data) = make_answer(m, ipv6::HEADER_LEN, error.v6(), error.v6_rest(), quote) else {
        return false;
    };
    let ip_at = ethernet::HEADER_LEN;
    let message_at = ip_at + ipv6::HEADER_LEN;
    let header = ipv6::Repr {
        src: from,
        dst: to,
        next_header: icmpv6::NEXT_HEADER,
        hop_limit: ANSWER_TTL,
        payload_len: (ERROR_HEADER_LEN + quote) as u16,
    };
    if header.emit(&mut data[ip_at..]).is_err() {
        return false;
    }
    let message = &mut data[message_at..];
    icmpv6::fill_checksum(&from, &to, message);
    address_back(data, peer, mac, EtherType::IPV6);
    true
}

/// The sender's MAC, its address, and how much of the packet to quote, if it may be answered.
fn eligible_v4(data: &[u8], broadcasts: &[u32]) -> Option<(ethernet::Address, Ipv4Addr, usize)> {
    let frame = Frame::new_checked(data).ok()?;
    if frame.dst_addr().is_multicast() {
        return None; // link-layer broadcast or multicast
    }
    let ip = ipv4::Packet::new_checked(frame.payload()).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let unicast = |a: Ipv4Addr| !(a.is_unspecified() || a.is_multicast() || a.is_broadcast());
    let directed_broadcast = broadcasts.binary_search(&u32::from(dst)).is_ok();
    if !unicast(src)
        || src.is_loopback()
        || !unicast(dst)
        || directed_broadcast
        || ip.validate().is_err()
    {
        return None;
    }
    let b = frame.payload();
    let fragment_offset = u16::from_be_bytes([b[6], b[7]]) & 0x1fff;
    if fragment_offset != 0 {
        return None;
    }
    // An ICMP error (destination unreachable, source quench, redirect, time exceeded,
    // parameter problem) is never answered.
    if ip.protocol() == ipv4::protocol::ICMP
        && ip
            .payload()
            .first()
            .is_none_or(|t| matches!(t, 3 | 4 | 5 | 11 | 12))
    {
        return None;
    }
    let total = usize::from(ip.total_len()).min(b.len());
    Some((frame.src_addr(), src, total.min(QUOTE_V4)))
}

fn eligible_v6(data: &[u8]) -> Option<(ethernet::Address, Ipv6Addr, usize)> {
    let frame = Frame::new_checked(data).ok()?;
    if frame.dst_addr().is_multicast() {
        return None;
    }
    let ip = ipv6::Packet::new_checked(frame.payload()).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() || dst.is_multicast() {
        return None;
    }
    if ip.validate().is_err() {
        return None;
    }
    // ICMPv6 errors have the types below 128: they are never answered.
    if ip.next_header() == icmpv6::NEXT_HEADER && ip.payload().first().is_none_or(|&t| t < 128) {
        return None;
    }
    let total = (ipv6::HEADER_LEN + ip.payload().len()).min(frame.payload().len());
    Some((frame.src_addr(), src, total.min(QUOTE_V6)))
}

/// Reshapes `m` into the frame of an answer: an Ethernet header, room for an IP header of
/// `ip_len` bytes, the error header of ICMP type and code `kind` (checksum zero) ending in
/// `rest`, then the first `quote` bytes of the packet's IP datagram. Returns the frame, or
/// None if the mbuf cannot take it.
fn make_answer(
    m: &mut Mbuf,
    ip_len: usize,
    (kind, code): (u8, u8),
    rest: u32,
    quote: usize,
) -> Option<&mut [u8]> {
    let ip_at = ethernet::HEADER_LEN;
    let message_at = ip_at + ip_len;
    if !m.resize(message_at + ERROR_HEADER_LEN + quote) {
        return None;
    }
    let data = m.data_mut();
    data.copy_within(ip_at..ip_at + quote, message_at + ERROR_HEADER_LEN);
    let header = &mut data[message_at..message_at + ERROR_HEADER_LEN];
    header[..4].copy_from_slice(&[kind, code, 0, 0]);
    header[4..].copy_from_slice(&rest.to_be_bytes());
    Some(data)
}

/// Sends a frame back to the MAC it came from, from the port's.
pub(super) fn address_back(
    data: &mut [u8],
    peer: ethernet::Address,
    mac: ethernet::Address,
    ethertype: EtherType,
) {
    let mut frame = Frame::new_checked(data).expect("holds the answer");
    frame.set_addresses(&AddressPair::new(peer, mac));
    frame.set_ethertype(ethertype);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_allows_a_tenth_of_a_second_at_once_then_refills() {
        let mut limit = RateLimit::per_second(100);
        assert_eq!((0..50).filter(|_| limit.take()).count(), 10);
        std::thread::sleep(std::time::Duration::from_millis(30));
        let refilled = (0..50).filter(|_| limit.take()).count();
        assert!((2..=10).contains(&refilled), "{refilled}");
        let mut slow = RateLimit::per_second(1);
        assert!(slow.take());
        assert!(!slow.take());
    }
}
