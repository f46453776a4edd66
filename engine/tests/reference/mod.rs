//! A deliberately plain IPv4/IPv6 router, one packet at a time, written from the RFCs and not
//! from the engine: RFC 1812 (§5.2.2 header checks, §5.3.1 TTL, §5.3.7 martians, §4.3.2.7 and
//! §4.3.2.3 ICMP errors), RFC 2644 (directed broadcasts), RFC 3927 §7, RFC 4291 §2.5 and
//! §2.7, RFC 4443 (ICMPv6 errors), RFC 826 and RFC 4861 (resolving next hops). It shares no
//! code with `sluice`: the differential test (`differential.rs`) and the stage fuzz target
//! hold `L3Forward` to it, verdict by verdict and byte by byte.
//!
//! What it models of the engine's choices, where the RFCs leave one: drop reasons by name; a
//! next hop's MAC is the route's fixed one or the destination's from the neighbour table; a
//! packet to an unknown neighbour is held (at most 3 per neighbour, the oldest pushed out),
//! and the first one sends the ARP request (60-byte frame) or neighbour solicitation
//! (86 bytes) for it; time exceeded answers quote up
//! to 576 (IPv6: 1280) bytes, with TTL 64 and DF set, from the address of the port the packet
//! came in by (the one on the sender's subnet, else the first).
#![allow(dead_code)] // each user takes its part

pub mod frames;
pub mod scenario;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub type Mac = [u8; 6];

/// How packets leaving a port find their next hop's MAC.
#[derive(Clone, Debug)]
pub enum NextHop {
    Fixed(Mac),
    Resolve,
}

#[derive(Clone, Debug)]
pub struct Port {
    pub id: u16,
    pub mac: Mac,
    pub next_hop: NextHop,
    pub v4: Vec<(Ipv4Addr, u8)>,
    pub v6: Vec<(Ipv6Addr, u8)>,
}

/// A 5-tuple: destination, source, destination port, source port, protocol.
pub type Tuple<A> = (A, A, u16, u16, u8);

/// One ACL rule: source and destination prefixes, port ranges, protocol and mask; the port to
/// route by, or None to deny.
#[derive(Clone, Debug)]
pub struct AclRule<A> {
    pub src: (A, u8),
    pub dst: (A, u8),
    pub src_ports: (u16, u16),
    pub dst_ports: (u16, u16),
    pub protocol: (u8, u8),
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
pub enum Table {
    /// Longest prefix match (rte_lpm, rte_fib): (prefix, length, port).
    Prefixes {
        v4: Vec<(Ipv4Addr, u8, u16)>,
        v6: Vec<(Ipv6Addr, u8, u16)>,
    },
    /// Exact match of the 5-tuple.
    Exact {
        v4: Vec<(Tuple<Ipv4Addr>, u16)>,
        v6: Vec<(Tuple<Ipv6Addr>, u16)>,
    },
    /// The first rule that matches.
    Acl {
        v4: Vec<AclRule<Ipv4Addr>>,
        v6: Vec<AclRule<Ipv6Addr>>,
    },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub ports: Vec<Port>,
    pub neighbours: Vec<(IpAddr, Mac)>,
    pub table: Table,
    pub martians: bool,
    /// Answer expired packets with ICMP time exceeded, and packets without a route with
    /// destination unreachable (no rate limit here).
    pub icmp_errors: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Drop(&'static str),
    Tx(u16, Vec<u8>),
    /// Kept until its neighbour is resolved.
    Hold,
}

/// The ICMP errors the router sends (type, code 0) and the drop reason of a packet not
/// answered.
const TIME_EXCEEDED_V4: (u8, &str) = (11, "ttl_exceeded");
const UNREACHABLE_V4: (u8, &str) = (3, "no_route");
const TIME_EXCEEDED_V6: (u8, &str) = (3, "ttl_exceeded");
const UNREACHABLE_V6: (u8, &str) = (1, "no_route");

/// Packets held for one neighbour, at most.
pub const HOLD_PER_NEIGHBOUR: usize = 3;

pub struct Router {
    config: Config,
    /// Packets held per unresolved neighbour (each got its request when the first came).
    held: std::collections::HashMap<IpAddr, usize>,
    /// Requests sent, with their port, not yet taken.
    sent: Vec<(u16, Vec<u8>)>,
    /// Held packets pushed out by later ones.
    pushed_out: usize,
}

/// What a lookup found.
enum Lookup {
    Port(u16),
    Denied,
    Miss,
}

fn prefix_covers(prefix: u128, len: u8, addr: u128, bits: u32) -> bool {
    let len = u32::from(len);
    len == 0 || (prefix ^ addr) >> (bits - len) == 0
}

pub fn ones_sum(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    sum
}

pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn martian_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 0 || o[0] == 127 || o[0] >= 224 || (o[0] == 169 && o[1] == 254)
}

fn martian_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a == Ipv6Addr::UNSPECIFIED
        || a == Ipv6Addr::LOCALHOST
        || s[0] >> 8 == 0xff
        || s[0] & 0xffc0 == 0xfe80
}

/// A copy of an IPv4 frame (header `ihl` bytes) with its TTL one less and its header
/// checksum computed afresh.
fn ttl_taken_v4(frame: &[u8], ihl: usize) -> Vec<u8> {
    let mut out = frame.to_vec();
    let ip = &mut out[14..];
    ip[8] -= 1;
    ip[10..12].copy_from_slice(&[0, 0]);
    let checksum = fold(ones_sum(&ip[..ihl]));
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    out
}

/// A copy of an IPv6 frame with its hop limit one less.
fn hop_limit_taken_v6(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[14 + 7] -= 1;
    out
}

pub fn ipv6_pseudo_sum(src: &[u8], dst: &[u8], len: usize, next: u8) -> u32 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(src);
    pseudo.extend_from_slice(dst);
    pseudo.extend_from_slice(&(len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next]);
    ones_sum(&pseudo)
}

impl Router {
    pub fn new(config: Config) -> Router {
        Router {
            config,
            held: std::collections::HashMap::new(),
            sent: Vec::new(),
            pushed_out: 0,
        }
    }

    /// The requests sent since the last call, with their port.
    pub fn take_sent(&mut self) -> Vec<(u16, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }

    /// Packets held now, and held packets pushed out (dropped) so far.
    pub fn held(&self) -> (usize, usize) {
        (self.held.values().sum(), self.pushed_out)
    }

    /// Holds a packet for `ip`; the first for it sends `request` (if the port can speak).
    fn hold(&mut self, ip: IpAddr, request: Option<(u16, Vec<u8>)>) -> Fate {
        let count = self.held.entry(ip).or_insert(0);
        if *count == 0 {
            self.sent.extend(request);
        }
        if *count == HOLD_PER_NEIGHBOUR {
            self.pushed_out += 1;
        } else {
            *count += 1;
        }
        Fate::Hold
    }

    fn port(&self, id: u16) -> Option<&Port> {
        self.config.ports.iter().find(|p| p.id == id)
    }

    fn neighbour(&self, ip: IpAddr) -> Option<Mac> {
        // The last entry given for an address wins, as a table that learns would keep it.
        self.config
            .neighbours
            .iter()
            .rev()
            .find(|(a, _)| *a == ip)
            .map(|(_, m)| *m)
    }

    /// The fate of `frame`, which arrived on port `rx`.
    pub fn forward(&mut self, rx: u16, frame: &[u8]) -> Fate {
        if frame.len() < 14 {
            return Fate::Drop("truncated");
        }
        match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0800 => self.forward_v4(rx, frame),
            0x86dd => self.forward_v6(rx, frame),
            _ => Fate::Drop("unsupported"),
        }
    }

    fn forward_v4(&mut self, rx: u16, frame: &[u8]) -> Fate {
        let ip = &frame[14..];
        if ip.len() < 20 {
            return Fate::Drop("truncated");
        }
        let ihl = usize::from(ip[0] & 0xf) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 {
            return Fate::Drop("bad_header");
        }
        if ihl > ip.len() {
            return Fate::Drop("truncated");
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if total < ihl || total > ip.len() {
            return Fate::Drop("bad_header");
        }
        if fold(ones_sum(&ip[..ihl])) != 0 {
            return Fate::Drop("bad_checksum");
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        if self.config.martians && (martian_v4(src) || martian_v4(dst)) {
            return Fate::Drop("martian");
        }
        if ip[8] <= 1 {
            return self.icmp_error_v4(rx, frame, ihl, total, TIME_EXCEEDED_V4);
        }
        if self.config.martians && self.directed_broadcast(dst) {
            return Fate::Drop("martian");
        }
        let protocol = ip[9];
        let l4 = &ip[ihl..total];
        let (sport, dport) = ports(protocol, l4);
        let hop = match self.lookup_v4((dst, src, dport, sport, protocol)) {
            Lookup::Port(p) => p,
            Lookup::Denied => return Fate::Drop("filtered"),
            Lookup::Miss => return self.unreachable_v4(rx, frame, ihl, total),
        };
        let Some(exit) = self.port(hop).cloned() else {
            return self.unreachable_v4(rx, frame, ihl, total);
        };
        let next_mac = match exit.next_hop {
            NextHop::Fixed(mac) => mac,
            NextHop::Resolve => match self.neighbour(IpAddr::V4(dst)) {
                Some(mac) => mac,
                None => return self.request_v4(&exit, dst),
            },
        };
        let mut out = ttl_taken_v4(frame, ihl);
        out[..6].copy_from_slice(&next_mac);
        out[6..12].copy_from_slice(&exit.mac);
        Fate::Tx(hop, out)
    }

    fn forward_v6(&mut self, rx: u16, frame: &[u8]) -> Fate {
        let ip = &frame[14..];
        if ip.len() < 40 {
            return Fate::Drop("truncated");
        }
        let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        if ip[0] >> 4 != 6 || 40 + payload > ip.len() {
            return Fate::Drop("bad_header");
        }
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
        if self.config.martians && (martian_v6(src) || martian_v6(dst)) {
            return Fate::Drop("martian");
        }
        if ip[7] <= 1 {
            return self.icmp_error_v6(rx, frame, payload, TIME_EXCEEDED_V6);
        }
        let next = ip[6];
        let (sport, dport) = ports(next, &ip[40..40 + payload]);
        let hop = match self.lookup_v6((dst, src, dport, sport, next)) {
            Lookup::Port(p) => p,
            Lookup::Denied => return Fate::Drop("filtered"),
            Lookup::Miss => return self.unreachable_v6(rx, frame, payload),
        };
        let Some(exit) = self.port(hop).cloned() else {
            return self.unreachable_v6(rx, frame, payload);
        };
        let next_mac = match exit.next_hop {
            NextHop::Fixed(mac) => mac,
            NextHop::Resolve => match self.neighbour(IpAddr::V6(dst)) {
                Some(mac) => mac,
                None => return self.request_v6(&exit, dst),
            },
        };
        let mut out = hop_limit_taken_v6(frame);
        out[..6].copy_from_slice(&next_mac);
        out[6..12].copy_from_slice(&exit.mac);
        Fate::Tx(hop, out)
    }

    fn directed_broadcast(&self, dst: Ipv4Addr) -> bool {
        self.config
            .ports
            .iter()
            .flat_map(|p| &p.v4)
            .any(|(a, len)| *len <= 30 && u32::from(dst) == u32::from(*a) | (u32::MAX >> len))
    }

    fn lookup_v4(&self, key: Tuple<Ipv4Addr>) -> Lookup {
        let wide = |t: Tuple<Ipv4Addr>| {
            (
                u128::from(u32::from(t.0)),
                u128::from(u32::from(t.1)),
                t.2,
                t.3,
                t.4,
            )
        };
        match &self.config.table {
            Table::Prefixes { v4, .. } => {
                let routes: Vec<_> = v4
                    .iter()
                    .map(|(p, l, port)| (u128::from(u32::from(*p)), *l, *port))
                    .collect();
                longest(&routes, u128::from(u32::from(key.0)), 32)
            }
            Table::Exact { v4, .. } => exact(v4, key),
            Table::Acl { v4, .. } => {
                let rules: Vec<_> = v4
                    .iter()
                    .map(|r| AclRule {
                        src: (u128::from(u32::from(r.src.0)), r.src.1),
                        dst: (u128::from(u32::from(r.dst.0)), r.dst.1),
                        src_ports: r.src_ports,
                        dst_ports: r.dst_ports,
                        protocol: r.protocol,
                        port: r.port,
                    })
                    .collect();
                acl(&rules, wide(key), 32)
            }
        }
    }

    fn lookup_v6(&self, key: Tuple<Ipv6Addr>) -> Lookup {
        match &self.config.table {
            Table::Prefixes { v6, .. } => {
                let routes: Vec<_> = v6
                    .iter()
                    .map(|(p, l, port)| (u128::from(*p), *l, *port))
                    .collect();
                longest(&routes, u128::from(key.0), 128)
            }
            Table::Exact { v6, .. } => exact(v6, key),
            Table::Acl { v6, .. } => {
                let rules: Vec<_> = v6
                    .iter()
                    .map(|r| AclRule {
                        src: (u128::from(r.src.0), r.src.1),
                        dst: (u128::from(r.dst.0), r.dst.1),
                        src_ports: r.src_ports,
                        dst_ports: r.dst_ports,
                        protocol: r.protocol,
                        port: r.port,
                    })
                    .collect();
                let wide = (u128::from(key.0), u128::from(key.1), key.2, key.3, key.4);
                acl(&rules, wide, 128)
            }
        }
    }

    /// The port's address to speak from towards `to`: on its subnet, else the first.
    fn source_v4(port: &Port, to: Ipv4Addr) -> Option<Ipv4Addr> {
        let on_link = port.v4.iter().find(|(a, len)| {
            prefix_covers(
                u128::from(u32::from(*a)),
                *len,
                u128::from(u32::from(to)),
                32,
            )
        });
        on_link.or(port.v4.first()).map(|(a, _)| *a)
    }

    fn source_v6(port: &Port, to: Ipv6Addr) -> Option<Ipv6Addr> {
        let on_link = port
            .v6
            .iter()
            .find(|(a, len)| prefix_covers(u128::from(*a), *len, u128::from(to), 128));
        on_link.or(port.v6.first()).map(|(a, _)| *a)
    }

    /// RFC 826: holds the packet; the first for `target` sends the request.
    fn request_v4(&mut self, exit: &Port, target: Ipv4Addr) -> Fate {
        let request = Self::source_v4(exit, target)
            .map(|source| (exit.id, Self::arp_request(exit, source, target)));
        self.hold(IpAddr::V4(target), request)
    }

    fn arp_request(exit: &Port, source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        let mut out = vec![0u8; 60];
        out[..6].copy_from_slice(&[0xff; 6]);
        out[6..12].copy_from_slice(&exit.mac);
        out[12..14].copy_from_slice(&[0x08, 0x06]);
        out[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
        out[22..28].copy_from_slice(&exit.mac);
        out[28..32].copy_from_slice(&source.octets());
        out[38..42].copy_from_slice(&target.octets());
        out
    }

    /// RFC 4861 §7.2.2: holds the packet; the first for `target` sends a solicitation to its
    /// solicited-node group.
    fn request_v6(&mut self, exit: &Port, target: Ipv6Addr) -> Fate {
        let request = Self::source_v6(exit, target)
            .map(|source| (exit.id, Self::solicitation(exit, source, target)));
        self.hold(IpAddr::V6(target), request)
    }

    fn solicitation(exit: &Port, source: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let t = target.octets();
        let mut group = [0u8; 16];
        group[..2].copy_from_slice(&[0xff, 0x02]);
        group[11..13].copy_from_slice(&[0x01, 0xff]);
        group[13..].copy_from_slice(&t[13..]);
        let mut out = vec![0u8; 86];
        out[..6].copy_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
        out[6..12].copy_from_slice(&exit.mac);
        out[12..14].copy_from_slice(&[0x86, 0xdd]);
        let ip = &mut out[14..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&32u16.to_be_bytes());
        ip[6] = 58;
        ip[7] = 255;
        ip[8..24].copy_from_slice(&source.octets());
        ip[24..40].copy_from_slice(&group);
        let message = &mut ip[40..72];
        message[0] = 135;
        message[8..24].copy_from_slice(&t);
        message[24..26].copy_from_slice(&[1, 1]);
        message[26..32].copy_from_slice(&exit.mac);
        let sum = ipv6_pseudo_sum(&source.octets(), &group, 32, 58) + ones_sum(message);
        let checksum = fold(sum);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
        out
    }

    /// RFC 1812 §5.2.7.1: no route, so destination unreachable (net unreachable) back to the
    /// sender when allowed. The packet is quoted with its TTL already taken, as the router
    /// had it when the lookup missed (§4.3.2.3 does not ask for it to be undone).
    fn unreachable_v4(&self, rx: u16, frame: &[u8], ihl: usize, total: usize) -> Fate {
        let had = ttl_taken_v4(frame, ihl);
        self.icmp_error_v4(rx, &had, ihl, total, UNREACHABLE_V4)
    }

    /// RFC 4443 §3.1: no route, so destination unreachable (no route to destination), the
    /// packet quoted with its hop limit taken, as for IPv4.
    fn unreachable_v6(&self, rx: u16, frame: &[u8], payload: usize) -> Fate {
        self.icmp_error_v6(rx, &hop_limit_taken_v6(frame), payload, UNREACHABLE_V6)
    }

    /// RFC 1812 §5.3.1, §5.2.7.1 and §4.3.2.7: an ICMP error (type, code 0, and the reason
    /// of the drop when it cannot go) back to the sender when allowed.
    fn icmp_error_v4(
        &self,
        rx: u16,
        frame: &[u8],
        ihl: usize,
        total: usize,
        (kind, reason): (u8, &'static str),
    ) -> Fate {
        let ip = &frame[14..];
        let unanswered = Fate::Drop(reason);
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let not_unicast =
            |a: Ipv4Addr| a.is_unspecified() || a.is_multicast() || a == Ipv4Addr::BROADCAST;
        let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        // ICMP errors: destination unreachable, source quench, redirect, time exceeded,
        // parameter problem (and an ICMP packet too short to say).
        let icmp_error = ip[9] == 1 && (total == ihl || matches!(ip[ihl], 3 | 4 | 5 | 11 | 12));
        let Some(port) = self.port(rx) else {
            return unanswered;
        };
        if !self.config.icmp_errors
            || frame[0] & 1 != 0
            || not_unicast(src)
            || src.is_loopback()
            || not_unicast(dst)
            || self.directed_broadcast(dst)
            || fragment_offset != 0
            || icmp_error
        {
            return unanswered;
        }
        let Some(from) = Self::source_v4(port, src) else {
            return unanswered;
        };
        let quote = &ip[..total.min(576 - 28)];
        let mut out = Vec::new();
        out.extend_from_slice(&frame[6..12]);
        out.extend_from_slice(&port.mac);
        out.extend_from_slice(&[0x08, 0x00]);
        let mut header = [0u8; 20];
        header[0] = 0x45;
        header[2..4].copy_from_slice(&((20 + 8 + quote.len()) as u16).to_be_bytes());
        header[6] = 0x40;
        header[8] = 64;
        header[9] = 1;
        header[12..16].copy_from_slice(&from.octets());
        header[16..20].copy_from_slice(&src.octets());
        let checksum = fold(ones_sum(&header));
        header[10..12].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&header);
        let mut message = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(quote);
        let checksum = fold(ones_sum(&message));
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&message);
        Fate::Tx(rx, out)
    }

    /// RFC 4443 §3.3, §3.1 and §2.4.
    fn icmp_error_v6(
        &self,
        rx: u16,
        frame: &[u8],
        payload: usize,
        (kind, reason): (u8, &'static str),
    ) -> Fate {
        let ip = &frame[14..];
        let unanswered = Fate::Drop(reason);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
        // ICMPv6 errors have types below 128.
        let icmp_error = ip[6] == 58 && (payload == 0 || ip[40] < 128);
        let Some(port) = self.port(rx) else {
            return unanswered;
        };
        if !self.config.icmp_errors
            || frame[0] & 1 != 0
            || src.is_unspecified()
            || src.is_multicast()
            || src.is_loopback()
            || dst.is_multicast()
            || icmp_error
        {
            return unanswered;
        }
        let Some(from) = Self::source_v6(port, src) else {
            return unanswered;
        };
        let quote = &ip[..(40 + payload).min(1280 - 48)];
        let mut out = Vec::new();
        out.extend_from_slice(&frame[6..12]);
        out.extend_from_slice(&port.mac);
        out.extend_from_slice(&[0x86, 0xdd]);
        let mut header = [0u8; 40];
        header[0] = 0x60;
        header[4..6].copy_from_slice(&((8 + quote.len()) as u16).to_be_bytes());
        header[6] = 58;
        header[7] = 64;
        header[8..24].copy_from_slice(&from.octets());
        header[24..40].copy_from_slice(&src.octets());
        out.extend_from_slice(&header);
        let mut message = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(quote);
        let sum =
            ipv6_pseudo_sum(&from.octets(), &src.octets(), message.len(), 58) + ones_sum(&message);
        let checksum = fold(sum);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&message);
        Fate::Tx(rx, out)
    }
}

/// The source and destination ports of a UDP or TCP header that is there, else zeros.
fn ports(protocol: u8, l4: &[u8]) -> (u16, u16) {
    if (protocol == 6 || protocol == 17) && l4.len() >= 4 {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    } else {
        (0, 0)
    }
}

fn longest(routes: &[(u128, u8, u16)], addr: u128, bits: u32) -> Lookup {
    routes
        .iter()
        .filter(|(p, l, _)| prefix_covers(*p, *l, addr, bits))
        .max_by_key(|(_, l, _)| *l)
        .map_or(Lookup::Miss, |(_, _, port)| Lookup::Port(*port))
}

fn exact<A: PartialEq + Copy>(rules: &[(Tuple<A>, u16)], key: Tuple<A>) -> Lookup {
    rules
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(Lookup::Miss, |(_, port)| Lookup::Port(*port))
}

fn acl(rules: &[AclRule<u128>], key: Tuple<u128>, bits: u32) -> Lookup {
    let (dst, src, dport, sport, protocol) = key;
    let within = |v: u16, (lo, hi): (u16, u16)| lo <= v && v <= hi;
    rules
        .iter()
        .find(|r| {
            prefix_covers(r.src.0, r.src.1, src, bits)
                && prefix_covers(r.dst.0, r.dst.1, dst, bits)
                && within(sport, r.src_ports)
                && within(dport, r.dst_ports)
                && protocol & r.protocol.1 == r.protocol.0 & r.protocol.1
        })
        .map_or(Lookup::Miss, |r| match r.port {
            Some(p) => Lookup::Port(p),
            None => Lookup::Denied,
        })
}
