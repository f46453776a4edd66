//! Resets for TCP segments to the router's own addresses, on which nothing listens: each is a
//! segment for a connection in state CLOSED, answered as RFC 9293 §3.10.7.1 says, so that a
//! host's `connect` is refused at once instead of timing out. Not for a reset, a segment
//! whose checksum is wrong, a fragment, one in a link-layer multicast frame or from a source
//! that is no unicast host; and no more than a rate. The packet becomes its own answer, in
//! place.

use super::icmp_error::{address_back, RateLimit, ANSWER_TTL};
use crate::mbuf::Mbuf;
use crate::net::ethernet::{self, EtherType, Frame};
use crate::net::{checksum, ipv4, ipv6, tcp};
use std::net::{Ipv4Addr, Ipv6Addr};

/// An answer: a 20-byte TCP header after the IP header, no options, no data.
const RESET_LEN: usize = tcp::HEADER_LEN;

/// The reset's source (our address) and destination, of one family.
enum Ends {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// Rewrites a TCP segment to one of the router's addresses into its reset, back out of the
/// port it came in by (whose MAC is `mac`), if one is due and `limit` allows: true if it was
/// rewritten, false if it is left as it was.
pub fn answer(m: &mut Mbuf, mac: ethernet::Address, limit: &mut RateLimit) -> bool {
    let Some((peer, ends, reset)) = reset_due(m.data()) else {
        return false;
    };
    if !limit.take() {
        return false;
    }
    let ip_len = match ends {
        Ends::V4(..) => ipv4::MIN_HEADER_LEN,
        Ends::V6(..) => ipv6::HEADER_LEN,
    };
    let tcp_at = ethernet::HEADER_LEN + ip_len;
    if !m.resize(tcp_at + RESET_LEN) {
        return false;
    }
    let data = m.data_mut();
    let (pseudo, ethertype) = match ends {
        Ends::V4(from, to) => {
            let header = ipv4::Repr {
                src: from,
                dst: to,
                protocol: ipv4::protocol::TCP,
                ttl: ANSWER_TTL,
                payload_len: RESET_LEN as u16,
            };
            header
                .emit(&mut data[ethernet::HEADER_LEN..])
                .expect("resized to hold it");
            let pseudo = checksum::pseudo_v4(from, to, ipv4::protocol::TCP, RESET_LEN as u16);
            (pseudo, EtherType::IPV4)
        }
        Ends::V6(from, to) => {
            let header = ipv6::Repr {
                src: from,
                dst: to,
                next_header: ipv4::protocol::TCP,
                hop_limit: ANSWER_TTL,
                payload_len: RESET_LEN as u16,
            };
            header
                .emit(&mut data[ethernet::HEADER_LEN..])
                .expect("resized to hold it");
            let pseudo = checksum::pseudo_v6(&from, &to, ipv4::protocol::TCP, RESET_LEN as u32);
            (pseudo, EtherType::IPV6)
        }
    };
    let segment = &mut data[tcp_at..];
    reset.emit(segment).expect("resized to hold it");
    let csum = checksum::finish(checksum::combine(&[pseudo, checksum::sum(segment)]));
    segment[tcp::CHECKSUM_AT..tcp::CHECKSUM_AT + 2].copy_from_slice(&csum.to_be_bytes());
    address_back(data, peer, mac, ethertype);
    true
}

/// The sender's MAC, the reset's ends, and the reset, if one is due.
fn reset_due(data: &[u8]) -> Option<(ethernet::Address, Ends, tcp::Repr)> {
    let frame = Frame::new_checked(data).ok()?;
    if frame.dst_addr().is_multicast() {
        return None;
    }
    let (ends, segment, pseudo) = match frame.ethertype() {
        EtherType::IPV4 => {
            let ip = ipv4::Packet::new_checked(frame.payload()).ok()?;
            ip.validate().ok()?;
            let b = frame.payload();
            let more_or_offset = u16::from_be_bytes([b[6], b[7]]) & 0x3fff;
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if ip.protocol() != ipv4::protocol::TCP
                || more_or_offset != 0
                || src.is_unspecified()
                || src.is_broadcast()
                || src.is_multicast()
                || src.is_loopback()
            {
                return None;
            }
            // Validated: the header and the total length lie within the frame.
            let segment = &b[ip.header_len()..usize::from(ip.total_len())];
            let length = u16::try_from(segment.len()).ok()?;
            let pseudo = checksum::pseudo_v4(src, dst, ipv4::protocol::TCP, length);
            (Ends::V4(dst, src), segment, pseudo)
        }
        EtherType::IPV6 => {
            let ip = ipv6::Packet::new_checked(frame.payload()).ok()?;
            ip.validate().ok()?;
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if ip.next_header() != ipv4::protocol::TCP
                || src.is_unspecified()
                || src.is_multicast()
                || src.is_loopback()
                || dst.is_multicast()
            {
                return None;
            }
            // Validated: the payload lies within the frame.
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let segment = &frame.payload()[ipv6::HEADER_LEN..end];
            let length = segment.len() as u32;
            let pseudo = checksum::pseudo_v6(&src, &dst, ipv4::protocol::TCP, length);
            (Ends::V6(dst, src), segment, pseudo)
        }
        _ => return None,
    };
    if checksum::finish(checksum::combine(&[pseudo, checksum::sum(segment)])) != 0 {
        return None;
    }
    let reset = reset_for(&tcp::Packet::new_checked(segment).ok()?)?;
    Some((frame.src_addr(), ends, reset))
}

/// RFC 9293 §3.10.7.1: no reset for a reset; for a segment with ACK, <SEQ=SEG.ACK><CTL=RST>;
/// else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, where SYN and FIN count one each.
fn reset_for(segment: &tcp::Packet<&[u8]>) -> Option<tcp::Repr> {
    use tcp::flags::{ACK, FIN, RST, SYN};
    segment.validate().ok()?;
    let flags = segment.flags();
    if flags & RST != 0 {
        return None;
    }
    let (seq, ack, flags) = if flags & ACK != 0 {
        (segment.ack(), 0, RST)
    } else {
        let length = segment.payload().len() as u32
            + u32::from(flags & SYN != 0)
            + u32::from(flags & FIN != 0);
        (0, segment.seq().wrapping_add(length), RST | ACK)
    };
    Some(tcp::Repr {
        src_port: segment.dst_port(),
        dst_port: segment.src_port(),
        seq,
        ack,
        flags,
        window: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp::flags::{ACK, FIN, PSH, RST, SYN};

    fn segment(flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; tcp::HEADER_LEN];
        tcp::Repr {
            src_port: 40000,
            dst_port: 22,
            seq,
            ack,
            flags,
            window: 1024,
        }
        .emit(&mut b)
        .unwrap();
        b.extend_from_slice(data);
        b
    }

    fn reset(b: &[u8]) -> Option<tcp::Repr> {
        reset_for(&tcp::Packet::new_checked(b).unwrap())
    }

    #[test]
    fn each_segment_gets_the_reset_rfc_9293_gives_a_closed_port() {
        let syn = reset(&segment(SYN, 1000, 0, &[])).unwrap();
        assert_eq!(
            syn,
            tcp::Repr {
                src_port: 22,
                dst_port: 40000,
                seq: 0,
                ack: 1001,
                flags: RST | ACK,
                window: 0
            }
        );
        let data = reset(&segment(ACK | PSH, 5, 77, b"hello")).unwrap();
        assert_eq!((data.seq, data.ack, data.flags), (77, 0, RST));
        let fin = reset(&segment(FIN, u32::MAX - 1, 0, b"ab")).unwrap();
        assert_eq!((fin.seq, fin.ack, fin.flags), (0, 1, RST | ACK), "wraps");
        assert_eq!(reset(&segment(RST, 5, 0, &[])), None);
        assert_eq!(reset(&segment(RST | ACK, 5, 9, &[])), None);
        let mut bad_offset = segment(SYN, 1, 0, &[]);
        bad_offset[12] = 0x40;
        assert_eq!(reset(&bad_offset), None);
    }
}
