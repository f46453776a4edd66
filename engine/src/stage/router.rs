//! The stages of an IPv4/IPv6 router (RFC 1812): [`L3Forward`], the fast path of header
//! checks, route lookup, TTL decrement and MAC rewrite; and [`Responder`], which answers ARP,
//! neighbour solicitations and echo requests for the router's own addresses and learns
//! neighbours. Both share a
//! [`Router`]: its ports, their addresses, and the neighbour table.

use super::icmp_error::{self, IcmpError, RateLimit};
use super::neighbour::{Lookup, Request, Resolver};
use super::table::{FlowKey4, FlowKey6, Lpm6, LpmReader, RouteTable, DENIED, NO_ROUTE};
use super::tcp_reset;
use super::{Action, Context, Held, Node, Stage};
use crate::mbuf::{Mbuf, MAX_BURST};
use crate::net::ethernet::{self, Address, AddressPair, EtherType, Frame};
use crate::net::icmpv6::{self, NeighbourKind, NeighbourRepr};
use crate::net::{arp, icmp, ipv4, ipv6, udp};
use crate::stats::{DropReason, Reason};
use std::sync::OnceLock;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The router's drop reasons, beside the engine's `truncated` and `filtered`.
#[derive(Clone, Copy, Debug)]
pub struct Reasons {
    /// No route to its destination.
    pub no_route: Reason,
    /// Its TTL or hop limit would reach zero here.
    pub ttl_exceeded: Reason,
    /// Its IPv4 header checksum is wrong.
    pub bad_checksum: Reason,
    /// A malformed IP header: wrong version, IHL under 5, lengths that do not fit the frame.
    pub bad_header: Reason,
    /// A frame the router does not handle (an EtherType other than IPv4, IPv6 and ARP; a VLAN
    /// tag; ARP without addresses to answer for).
    pub unsupported: Reason,
    /// Addressed to the router itself and consumed there (ARP learned or ignored, a protocol
    /// it does not answer).
    pub local: Reason,
    /// The next hop's MAC address could not be had: resolution failed, or too many packets
    /// wait for it.
    pub no_neighbour: Reason,
    /// A source or destination address no router forwards (RFC 1812 §5.3.7, RFC 3927 §7,
    /// RFC 4291 §2.5 and §2.7), or a directed broadcast to a subnet of the router's own.
    pub martian: Reason,
}

/// The router's reasons, named once (in this order, so that accounts list them so).
pub fn reasons() -> &'static Reasons {
    static REASONS: OnceLock<Reasons> = OnceLock::new();
    REASONS.get_or_init(|| Reasons {
        no_route: Reason::named("no_route"),
        ttl_exceeded: Reason::named("ttl_exceeded"),
        bad_checksum: Reason::named("bad_checksum"),
        bad_header: Reason::named("bad_header"),
        unsupported: Reason::named("unsupported"),
        local: Reason::named("local"),
        no_neighbour: Reason::named("no_neighbour"),
        martian: Reason::named("martian"),
    })
}

/// How the destination MAC of a packet leaving a port is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHopMac {
    /// Always this address (l3fwd's `--eth-dest`, or its default 02:00:00:00:00:PORT).
    Fixed(Address),
    /// The MAC of the packet's destination, learned by ARP (the port has addresses).
    Resolve,
}

/// One port of the router.
#[derive(Clone, Debug)]
pub struct RouterPort {
    pub id: u16,
    pub mac: Address,
    pub next_hop: NextHopMac,
    /// Interface addresses with their prefix lengths.
    pub v4: Vec<(Ipv4Addr, u8)>,
    pub v6: Vec<(Ipv6Addr, u8)>,
}

pub use super::neighbour::Neighbours;

/// The router's ports and neighbours.
#[derive(Debug)]
pub struct Router {
    /// Indexed by port id.
    ports: Vec<Option<RouterPort>>,
    pub neighbours: Neighbours,
}

impl Router {
    pub fn new(ports: Vec<RouterPort>) -> Router {
        let size = ports
            .iter()
            .map(|p| usize::from(p.id) + 1)
            .max()
            .unwrap_or(0);
        let mut table = vec![None; size];
        for p in ports {
            let id = usize::from(p.id);
            table[id] = Some(p);
        }
        Router {
            ports: table,
            neighbours: Neighbours::default(),
        }
    }

    pub fn port(&self, id: u16) -> Option<&RouterPort> {
        self.ports.get(usize::from(id)).and_then(Option::as_ref)
    }

    pub fn ports(&self) -> impl Iterator<Item = &RouterPort> {
        self.ports.iter().flatten()
    }

    /// Whether any port resolves next hops by ARP (else the fast path never reads the table).
    fn resolves(&self) -> bool {
        self.ports().any(|p| p.next_hop == NextHopMac::Resolve)
    }

    /// The port that owns `ip` as an interface address.
    fn owner_v4(&self, ip: Ipv4Addr) -> Option<&RouterPort> {
        self.ports().find(|p| p.v4.iter().any(|(a, _)| *a == ip))
    }

    fn owns_v6(&self, ip: &Ipv6Addr) -> bool {
        self.ports().any(|p| p.v6.iter().any(|(a, _)| a == ip))
    }

    /// The port's address on the subnet of `ip`, else its first.
    fn source_v4(&self, port: &RouterPort, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let on_link = port.v4.iter().find(|(a, len)| same_subnet(*a, ip, *len));
        on_link.or(port.v4.first()).map(|(a, _)| *a)
    }

    fn source_v6(&self, port: &RouterPort, ip: &Ipv6Addr) -> Option<Ipv6Addr> {
        let on_link = port.v6.iter().find(|(a, len)| same_subnet_v6(a, ip, *len));
        on_link.or(port.v6.first()).map(|(a, _)| *a)
    }
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn same_subnet_v6(a: &Ipv6Addr, b: &Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(*a) & mask == u128::from(*b) & mask
}

/// How often a worker looks at its neighbours being resolved while it has any (for answers
/// that came in on another worker, or a burst that ended in the responder).
const SETTLE_EVERY: Duration = Duration::from_micros(200);

/// Checks, looks up, decrements TTL and rewrites MACs; see the module documentation.
pub struct L3Forward {
    router: Arc<Router>,
    v4: Option<Arc<dyn RouteTable<FlowKey4>>>,
    v6: Option<Arc<dyn RouteTable<FlowKey6>>>,
    /// Whether the tables key on the whole 5-tuple (exact match, ACL), so keys need the L4
    /// header; else they key on the destination alone, and the fast path fills in only that.
    keys_need_ports: bool,
    /// Indexed by next hop (port id): where and how packets leave.
    exits: Vec<Option<Exit>>,
    /// Whether any exit resolves its next hops (else the fast path never reads the table).
    resolves: bool,
    resolver: Resolver,
    /// Whether the settle timer is set.
    settling: bool,
    /// Answers with ICMP errors (time exceeded, no route, no neighbour), and how many a
    /// second.
    icmp_errors: Option<RateLimit>,
    /// Whether packets from or to martian addresses are dropped (RFC 1812 §5.3.7: on unless
    /// the operator turns it off).
    martians: bool,
    /// The directed broadcast addresses (host order) of the router's own IPv4 subnets, sorted:
    /// it does not forward them (RFC 2644) unless martians are forwarded, and never answers
    /// them with an ICMP error (RFC 1812 §4.3.2.7).
    broadcasts: Vec<u32>,
    /// The lcore this stage looks up from, once it has gone online on it.
    online: Option<u32>,
    /// Per-burst scratch, kept here so that it is not zeroed on every burst.
    scratch: Box<Scratch>,
}

struct Scratch {
    keys4: [FlowKey4; MAX_BURST],
    keys6: [FlowKey6; MAX_BURST],
    /// The burst index of each key.
    at4: [u8; MAX_BURST],
    at6: [u8; MAX_BURST],
    hops: [u16; MAX_BURST],
    /// Where neighbours are resolved: the neighbour each packet of the burst was held for,
    /// by burst index (the chain hands held packets over in that order).
    held_for: [Option<IpAddr>; MAX_BURST],
}

/// A port as the fast path needs it.
#[derive(Clone, Copy)]
struct Exit {
    mac: Address,
    /// The MACs to write when the next hop's is fixed; None: resolve it.
    fixed: Option<AddressPair>,
}

impl L3Forward {
    /// Without a table for a family, its packets are dropped as `no_route`.
    pub fn new(
        router: Arc<Router>,
        v4: Option<Arc<dyn RouteTable<FlowKey4>>>,
        v6: Option<Arc<dyn RouteTable<FlowKey6>>>,
        keys_need_ports: bool,
    ) -> L3Forward {
        let exits = router
            .ports
            .iter()
            .map(|p| {
                p.as_ref().map(|p| Exit {
                    mac: p.mac,
                    fixed: match p.next_hop {
                        NextHopMac::Fixed(dst) => Some(AddressPair::new(dst, p.mac)),
                        NextHopMac::Resolve => None,
                    },
                })
            })
            .collect();
        reasons(); // named now, in their order, before any reason of another stage
        let resolves = router.resolves();
        // Subnets of /31 and /32 have no broadcast address (RFC 3021).
        let mut broadcasts: Vec<u32> = router
            .ports()
            .flat_map(|p| &p.v4)
            .filter(|(_, len)| *len <= 30)
            .map(|(addr, len)| u32::from(*addr) | (u32::MAX >> len))
            .collect();
        broadcasts.sort_unstable();
        broadcasts.dedup();
        L3Forward {
            router,
            v4,
            v6,
            keys_need_ports,
            exits,
            resolves,
            resolver: Resolver::default(),
            settling: false,
            icmp_errors: None,
            martians: true,
            broadcasts,
            online: None,
            scratch: Box::new(Scratch {
                keys4: [FlowKey4::default(); MAX_BURST],
                keys6: [FlowKey6::default(); MAX_BURST],
                at4: [0; MAX_BURST],
                at6: [0; MAX_BURST],
                hops: [NO_ROUTE; MAX_BURST],
                held_for: [None; MAX_BURST],
            }),
        }
    }
}

impl L3Forward {
    /// Answers packets whose TTL or hop limit runs out with ICMP time exceeded (RFC 1812
    /// §5.3.1, RFC 4443 §3.3), and packets it has no route for, or held for a next hop that
    /// never answers, with destination unreachable (RFC 1812 §5.2.7.1, RFC 4443 §3.1, RFC 4861
    /// §7.2.2), at most `per_second` a second together, from the router's address on the port
    /// they came in by (ports without one answer none); the rest are dropped as
    /// `ttl_exceeded`, `no_route` and `no_neighbour`. Zero answers none.
    pub fn answer_icmp_errors(mut self, per_second: u32) -> L3Forward {
        let addressed = self
            .router
            .ports()
            .any(|p| !p.v4.is_empty() || !p.v6.is_empty());
        self.icmp_errors = (per_second > 0 && addressed).then(|| RateLimit::per_second(per_second));
        self
    }
}

impl L3Forward {
    /// Forwards packets from and to martian addresses too, and directed broadcasts (RFC 1812
    /// §5.3.7 allows the switch; by default they are dropped as `martian`).
    pub fn forward_martians(mut self) -> L3Forward {
        self.martians = false;
        self
    }
}

/// A packet's family and lookup key, or why it goes no further.
enum Class {
    V4(FlowKey4),
    V6(FlowKey6),
}

fn l4_ports(protocol: u8, l4: &[u8], wanted: bool) -> (u16, u16) {
    if wanted && is_udp_or_tcp(protocol) {
        udp::ports(l4).unwrap_or((0, 0))
    } else {
        (0, 0)
    }
}

/// Where the fields of an untagged IPv4 frame without options are.
mod plain {
    use std::ops::Range;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const IP: usize = 14;
    pub const PROTOCOL: usize = IP + 9;
    pub const DESTINATION: Range<usize> = IP + 16..IP + 20;
    /// What a key is read from: the header from its TTL on, then the ports.
    pub const KEY: Range<usize> = IP + 8..IP + 24;
    pub const HEADERS_LEN: usize = IP + 20;
}

/// Where the fields of an untagged IPv6 frame are.
mod plain6 {
    use std::ops::Range;
    pub const IP: usize = 14;
    pub const DESTINATION: Range<usize> = IP + 24..IP + 40;
    /// What a key is read from: the header from its payload length on, then the ports.
    pub const KEY: Range<usize> = IP + 4..IP + 44;
    pub const HEADERS_LEN: usize = IP + 40;
}

/// The destination (host order) of an untagged IPv4 frame of `len` bytes without options
/// that passes every check, its TTL decremented while the header is at hand; None leaves the
/// frame untouched, for the long way ([`classify`]).
#[inline(always)]
fn plain_v4(frame: &mut [u8; plain::HEADERS_LEN], len: usize) -> Option<u32> {
    if frame[plain::ETHERTYPE] != EtherType::IPV4.0.to_be_bytes() {
        return None;
    }
    let header = (&mut frame[plain::IP..])
        .try_into()
        .expect("a whole header");
    ipv4::forward_plain(header, len - plain::IP)
}

/// As [`plain_v4`] for IPv6: an untagged frame of `len` bytes whose payload fits it and whose
/// hop limit allows forwarding has its hop limit decremented.
#[inline(always)]
fn plain_v6(frame: &mut [u8; plain6::HEADERS_LEN], len: usize) -> bool {
    if frame[plain::ETHERTYPE] != EtherType::IPV6.0.to_be_bytes() {
        return false;
    }
    let header = (&mut frame[plain6::IP..])
        .try_into()
        .expect("a whole header");
    ipv6::forward_plain(header, len - plain6::IP)
}

/// The fast path of [`classify`]: the key of an untagged IPv4 packet without options that
/// passes every check ([`plain_v4`]), read straight from the frame into `key` (in place: keys
/// are copied enough); None sends the packet the long way, untouched (but for `key`).
#[inline(always)]
fn classify_plain_v4(data: &mut [u8], with_ports: bool, key: &mut FlowKey4) -> Option<()> {
    if with_ports {
        // Read before the TTL is written: a wide load over a store just made to part of it
        // waits until the store is done.
        *key = header_key_v4(data);
    }
    let len = data.len();
    let frame = data.first_chunk_mut::<{ plain::HEADERS_LEN }>()?;
    let dst = plain_v4(frame, len)?;
    if !with_ports {
        // LPM and FIB read the destination alone.
        key.set_dst(dst.to_be_bytes());
    }
    Some(())
}

/// The 5-tuple key of a frame that [`plain_v4`] will take, from the header as it arrived.
#[inline(always)]
fn header_key_v4(data: &[u8]) -> FlowKey4 {
    let Some(frame) = data.first_chunk::<{ plain::HEADERS_LEN }>() else {
        return FlowKey4::default(); // not plain: the key goes unused
    };
    let total = u16::from_be_bytes([frame[plain::IP + 2], frame[plain::IP + 3]]);
    let ports = total >= 24 && is_udp_or_tcp(frame[plain::PROTOCOL]);
    match data.get(plain::KEY) {
        Some(bytes) => FlowKey4::from_header(bytes.try_into().expect("16 bytes"), ports),
        None => {
            // A frame too short for the ports.
            let mut bytes = [0u8; 16];
            bytes[..12].copy_from_slice(&frame[plain::KEY.start..]);
            FlowKey4::from_header(&bytes, false)
        }
    }
}

/// As [`classify_plain_v4`] for IPv6 ([`plain_v6`]).
#[inline(always)]
fn classify_plain_v6(data: &mut [u8], with_ports: bool, key: &mut FlowKey6) -> Option<()> {
    if with_ports {
        // Before the hop limit is written, as for IPv4.
        set_header_key_v6(data, key);
    }
    let len = data.len();
    let frame = data.first_chunk_mut::<{ plain6::HEADERS_LEN }>()?;
    if !plain_v6(frame, len) {
        return None;
    }
    if !with_ports {
        // As for IPv4: the destination alone.
        key.set_dst(frame[plain6::DESTINATION].try_into().expect("16 bytes"));
    }
    Some(())
}

/// As [`header_key_v4`], into `key`.
#[inline(always)]
fn set_header_key_v6(data: &[u8], key: &mut FlowKey6) {
    let Some(frame) = data.first_chunk::<{ plain6::HEADERS_LEN }>() else {
        return;
    };
    let payload = u16::from_be_bytes([frame[plain6::IP + 4], frame[plain6::IP + 5]]);
    let ports = payload >= 4 && is_udp_or_tcp(frame[plain6::IP + 6]);
    match data.get(plain6::KEY) {
        Some(bytes) => key.set_from_header(bytes.try_into().expect("40 bytes"), ports),
        None => {
            let mut bytes = [0u8; 40];
            bytes[..36].copy_from_slice(&frame[plain6::KEY.start..]);
            key.set_from_header(&bytes, false);
        }
    }
}

fn is_udp_or_tcp(protocol: u8) -> bool {
    protocol == ipv4::protocol::UDP || protocol == ipv4::protocol::TCP
}

/// Read-only checks of RFC 1812 §5.2.2, §5.3.7 (martians, when `martians` is set) and §5.3.1
/// (the TTL), in that order, and the lookup key; the caller decrements the TTL of a packet that
/// passes ([`decrement_ttl`]).
fn classify(data: &[u8], with_ports: bool, martians: bool) -> Result<Class, Reason> {
    let frame = Frame::new_checked(data).map_err(|_| DropReason::Truncated)?;
    match frame.ethertype() {
        EtherType::IPV4 => {
            let ip =
                ipv4::Packet::new_checked(frame.payload()).map_err(|_| DropReason::Truncated)?;
            ip.validate().map_err(|e| match e {
                ipv4::Invalid::Truncated => DropReason::Truncated.into(),
                ipv4::Invalid::BadHeader => reasons().bad_header,
                ipv4::Invalid::BadChecksum => reasons().bad_checksum,
            })?;
            if martians && (ipv4::is_martian(ip.src_addr()) || ipv4::is_martian(ip.dst_addr())) {
                return Err(reasons().martian);
            }
            if ip.ttl() <= 1 {
                return Err(reasons().ttl_exceeded);
            }
            let (src_port, dst_port) = l4_ports(ip.protocol(), ip.payload(), with_ports);
            Ok(Class::V4(FlowKey4::new(
                ip.dst_addr(),
                ip.src_addr(),
                dst_port,
                src_port,
                ip.protocol(),
            )))
        }
        EtherType::IPV6 => {
            let ip =
                ipv6::Packet::new_checked(frame.payload()).map_err(|_| DropReason::Truncated)?;
            ip.validate().map_err(|_| reasons().bad_header)?;
            if martians && (ipv6::is_martian(&ip.src_addr()) || ipv6::is_martian(&ip.dst_addr())) {
                return Err(reasons().martian);
            }
            if ip.hop_limit() <= 1 {
                return Err(reasons().ttl_exceeded);
            }
            let (src_port, dst_port) = l4_ports(ip.next_header(), ip.payload(), with_ports);
            Ok(Class::V6(FlowKey6::new(
                ip.dst_addr(),
                ip.src_addr(),
                dst_port,
                src_port,
                ip.next_header(),
            )))
        }
        _ => Err(reasons().unsupported),
    }
}

/// Takes one from the TTL or hop limit of a packet that passed [`classify`]: every packet that
/// goes on to the lookup has it taken during classification, while its header is at hand
/// (a packet then dropped for want of a route or a neighbour is not sent, so it does not
/// matter that its copy changed).
fn decrement_ttl(data: &mut [u8], class: &Class) {
    let ip = &mut data[ethernet::HEADER_LEN..];
    match class {
        Class::V4(_) => ipv4::Packet::new_checked(ip)
            .expect("classified")
            .decrement_ttl(),
        Class::V6(_) => ipv6::Packet::new_checked(ip)
            .expect("classified")
            .decrement_hop_limit(),
    }
}

/// What a worker needs to forward a classified packet.
struct Forwarder<'a> {
    exits: &'a [Option<Exit>],
    resolver: &'a mut Resolver,
    /// When this burst is forwarded (for the neighbours' ages), where exits resolve.
    now: Option<Instant>,
    /// The neighbour of the packet last given [`Action::HOLD`].
    held_for: Option<IpAddr>,
}

impl Forwarder<'_> {
    /// Forwards an IPv4 packet that passed [`classify`] to `hop`.
    #[inline]
    fn v4(&mut self, m: &mut Mbuf, hop: u16) -> Action {
        // Classified: at least the headers of a packet without options.
        let dst = |data: &[u8]| {
            let d = data.get(plain::DESTINATION)?;
            Some(IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3])))
        };
        match self.macs(m, hop, dst) {
            Ok(macs) => write_macs(m.data_mut(), &macs, Action::tx(hop)),
            Err(action) => action,
        }
    }

    /// As [`Forwarder::v4`], for IPv6.
    #[inline]
    fn v6(&mut self, m: &mut Mbuf, hop: u16) -> Action {
        let dst = |data: &[u8]| {
            let ip = ipv6::Packet::new_checked(data.get(ethernet::HEADER_LEN..)?).ok()?;
            Some(IpAddr::V6(ip.dst_addr()))
        };
        match self.macs(m, hop, dst) {
            Ok(macs) => write_macs(m.data_mut(), &macs, Action::tx(hop)),
            Err(action) => action,
        }
    }

    /// The MACs a packet to `hop` leaves with: the exit's fixed pair, or its next hop's MAC
    /// from the neighbour table (looked up by the destination `dst` reads from the packet).
    /// Otherwise what becomes of the packet instead: held until the neighbour is resolved
    /// (the resolver then has a request to send), or dropped when too many are held.
    fn macs(
        &mut self,
        m: &mut Mbuf,
        hop: u16,
        dst: impl FnOnce(&[u8]) -> Option<IpAddr>,
    ) -> Result<AddressPair, Action> {
        let Some(Some(exit)) = self.exits.get(usize::from(hop)) else {
            return Err(no_exit(hop));
        };
        if let Some(pair) = exit.fixed {
            return Ok(pair);
        }
        let dst = dst(m.data()).ok_or(Action::drop(DropReason::Truncated))?;
        let now = self.now.unwrap_or_else(Instant::now);
        match self.resolver.lookup(dst, hop, now) {
            Lookup::Mac(mac) => Ok(AddressPair::new(mac, exit.mac)),
            Lookup::Hold => {
                self.held_for = Some(dst);
                Err(Action::HOLD)
            }
            Lookup::Full => Err(Action::drop(reasons().no_neighbour)),
        }
    }
}

/// Sorts a burst into IPv4 and IPv6 keys (with ports when `PORTS`: a constant, so that the
/// commonest loop carries no test of it) and drops the rest by reason; returns the counts.
/// Not inlined: in a function of its own the loop keeps its pointers in registers.
#[inline(never)]
fn classify_burst<const PORTS: bool>(
    packets: &mut [Mbuf],
    actions: &mut [Action],
    scratch: &mut Scratch,
    martians: bool,
) -> (usize, usize) {
    let Scratch {
        keys4,
        keys6,
        at4,
        at6,
        ..
    } = scratch;
    // The commonest bursts are plain IPv4 or plain IPv6 throughout: a loop of its own for each
    // keeps no positions (key i is packet i) until the first packet that is not.
    let (mut n4, mut n6) = (0, 0);
    for (m, key) in packets.iter_mut().zip(keys4.iter_mut()) {
        if classify_plain_v4(m.data_mut(), PORTS, key).is_none() {
            break;
        }
        n4 += 1;
    }
    if n4 == 0 {
        for (m, key) in packets.iter_mut().zip(keys6.iter_mut()) {
            if classify_plain_v6(m.data_mut(), PORTS, key).is_none() {
                break;
            }
            n6 += 1;
        }
    }
    // Positions are written for every burst, the in-order ones too: the resolving loops read
    // them, and a position left from an earlier burst is another packet's verdict.
    for (i, at) in at4[..n4].iter_mut().enumerate() {
        *at = i as u8;
    }
    for (i, at) in at6[..n6].iter_mut().enumerate() {
        *at = i as u8;
    }
    if n4 + n6 == packets.len() {
        return (n4, n6);
    }
    for (i, m) in packets.iter_mut().enumerate().skip(n4 + n6) {
        let data = m.data_mut();
        if classify_plain_v4(data, PORTS, &mut keys4[n4]).is_some() {
            at4[n4] = i as u8;
            n4 += 1;
            continue;
        }
        if classify_plain_v6(data, PORTS, &mut keys6[n6]).is_some() {
            at6[n6] = i as u8;
            n6 += 1;
            continue;
        }
        let class = match classify(data, PORTS, martians) {
            Ok(class) => class,
            Err(reason) => {
                actions[i] = Action::drop(reason);
                continue;
            }
        };
        decrement_ttl(data, &class);
        match class {
            Class::V4(key) => {
                keys4[n4] = key;
                at4[n4] = i as u8;
                n4 += 1;
            }
            Class::V6(key) => {
                keys6[n6] = key;
                at6[n6] = i as u8;
                n6 += 1;
            }
        }
    }
    (n4, n6)
}

/// l3fwd's own case, in one pass per packet: plain IPv4 packets ([`plain_v4`]) to exits with
/// fixed next-hop MACs, each checked, looked up inline in rte_lpm and rewritten while its
/// header is at hand, with no keys or next hops stored in between. It stops at the first packet
/// that is not plain IPv4 and returns how many it took; the rest go the general way. Not
/// inlined, as [`classify_burst`].
#[inline(never)]
fn forward_plain_v4(
    lpm: LpmReader,
    exits: &[Option<Exit>],
    packets: &mut [Mbuf],
    actions: &mut [Action],
) -> usize {
    forward_plain(
        exits,
        packets,
        actions,
        |frame: &mut [u8; plain::HEADERS_LEN], len| {
            plain_v4(frame, len).map(|dst| lpm.next_hop(dst))
        },
    )
}

/// As [`forward_plain_v4`] for plain IPv6 packets ([`plain_v6`]), looked up in rte_lpm6 one
/// call each, straight from the header.
#[inline(never)]
fn forward_plain_v6(
    lpm: &Lpm6,
    exits: &[Option<Exit>],
    packets: &mut [Mbuf],
    actions: &mut [Action],
) -> usize {
    forward_plain(
        exits,
        packets,
        actions,
        |frame: &mut [u8; plain6::HEADERS_LEN], len| {
            plain_v6(frame, len)
                .then(|| lpm.next_hop(frame[plain6::DESTINATION].try_into().expect("16 bytes")))
        },
    )
}

/// The loop of [`forward_plain_v4`] and [`forward_plain_v6`]: `hop(frame, len)` checks the
/// headers of a frame of `len` bytes and looks it up (a next hop or [`NO_ROUTE`]); None for a
/// packet that is not plain.
#[inline(always)]
fn forward_plain<const HEADERS: usize>(
    exits: &[Option<Exit>],
    packets: &mut [Mbuf],
    actions: &mut [Action],
    mut hop: impl FnMut(&mut [u8; HEADERS], usize) -> Option<u16>,
) -> usize {
    let mut runs = ExitRuns::new(exits);
    let mut done = 0;
    for (m, action) in packets.iter_mut().zip(actions.iter_mut()) {
        let data = m.data_mut();
        let len = data.len();
        let Some(frame) = data.first_chunk_mut::<HEADERS>() else {
            break;
        };
        let Some(next_hop) = hop(frame, len) else {
            break;
        };
        *action = runs.rewrite_plain(frame, next_hop);
        done += 1;
    }
    done
}

/// The MACs of exits with fixed next-hop MACs, looked up once per run of packets to the same
/// exit (a flow's, a subnet's), so that they and the run's action stay at hand.
struct ExitRuns<'a> {
    exits: &'a [Option<Exit>],
    /// The exit of the run, its MACs and its action (until the first run starts: no exit's).
    hop: u16,
    macs: AddressPair,
    action: Action,
}

/// The hop of [`ExitRuns`] before its first run: no lookup gives it (next hops are enabled
/// ports, or one of the refusals [`NO_ROUTE`], [`DENIED`] and [`BROADCAST`]).
const BEFORE_FIRST_RUN: u16 = BROADCAST - 1;

impl<'a> ExitRuns<'a> {
    fn new(exits: &'a [Option<Exit>]) -> ExitRuns<'a> {
        ExitRuns {
            exits,
            hop: BEFORE_FIRST_RUN,
            macs: AddressPair::new(Address::default(), Address::default()),
            action: Action::NEXT,
        }
    }

    /// Writes the MACs of `hop`'s exit into a classified frame and sends it there; a frame
    /// without a next hop ([`NO_ROUTE`]), or one to a port with no exit, is dropped as
    /// [`no_exit`] says.
    #[inline(always)]
    fn rewrite(&mut self, frame: &mut [u8], hop: u16) -> Action {
        if hop != self.hop {
            if let Err(refused) = self.switch(hop) {
                return refused;
            }
        }
        write_macs(frame, &self.macs, self.action)
    }

    /// As [`ExitRuns::rewrite`] for a frame [`forward_plain`] checked, long enough by its type.
    #[inline(always)]
    fn rewrite_plain<const HEADERS: usize>(
        &mut self,
        frame: &mut [u8; HEADERS],
        hop: u16,
    ) -> Action {
        if hop != self.hop {
            if let Err(refused) = self.switch(hop) {
                return refused;
            }
        }
        self.macs.write(frame);
        self.action
    }

    /// Makes `hop`'s exit the run's, or says why a packet to it is dropped. Out of line, so
    /// that the loops keep their registers for the packets.
    #[inline(never)]
    fn switch(&mut self, hop: u16) -> Result<(), Action> {
        match self.exits.get(usize::from(hop)) {
            Some(Some(Exit {
                fixed: Some(macs), ..
            })) => {
                (self.hop, self.macs, self.action) = (hop, *macs, Action::tx(hop));
                Ok(())
            }
            _ => Err(no_exit(hop)),
        }
    }
}

/// Turns the packets dropped as `ttl_exceeded` and `no_route` into ICMP time exceeded and
/// destination unreachable messages, back out of the port each came in by, as far as the rate
/// allows; the rest stay dropped.
fn answer_icmp_errors(
    router: &Router,
    broadcasts: &[u32],
    limit: &mut RateLimit,
    packets: &mut [Mbuf],
    actions: &mut [Action],
) {
    let expired = Action::drop(reasons().ttl_exceeded);
    let unroutable = Action::drop(reasons().no_route);
    for (m, action) in packets.iter_mut().zip(actions.iter_mut()) {
        let error = if *action == expired {
            IcmpError::TimeExceeded
        } else if *action == unroutable {
            IcmpError::NoRoute
        } else {
            continue;
        };
        if let Some(rx) = answer_icmp_error(router, broadcasts, limit, m, error) {
            *action = Action::tx(rx);
        }
    }
}

/// Rewrites `m` into its `error` from the router's address on the port it came in by, if the
/// rate and the RFCs' limits allow; returns that port, for the answer to leave by.
fn answer_icmp_error(
    router: &Router,
    broadcasts: &[u32],
    limit: &mut RateLimit,
    m: &mut Mbuf,
    error: IcmpError,
) -> Option<u16> {
    let rx = m.port();
    let port = router.port(rx)?;
    let answered = match Frame::new_checked(m.data()).map(|f| f.ethertype()) {
        Ok(EtherType::IPV4) => {
            let source = |to| router.source_v4(port, to);
            icmp_error::answer_v4(m, error, port.mac, source, broadcasts, limit)
        }
        Ok(EtherType::IPV6) => {
            let source = |to: &Ipv6Addr| router.source_v6(port, to);
            icmp_error::answer_v6(m, error, port.mac, source, limit)
        }
        _ => false,
    };
    answered.then_some(rx)
}

/// Forwards a burst of classified packets, packet i to `hops[i]`, when every exit's next-hop
/// MAC is fixed. Not inlined, as [`classify_burst`].
#[inline(never)]
fn rewrite_burst_fixed(
    exits: &[Option<Exit>],
    packets: &mut [Mbuf],
    actions: &mut [Action],
    hops: &[u16],
) {
    let mut runs = ExitRuns::new(exits);
    for ((m, action), &hop) in packets.iter_mut().zip(actions).zip(hops) {
        *action = runs.rewrite(m.data_mut(), hop);
    }
}

/// Writes the MACs of a classified packet (its TTL already decremented) and gives it `action`.
#[inline(always)]
fn write_macs(data: &mut [u8], macs: &AddressPair, action: Action) -> Action {
    match Frame::new_checked(data) {
        Ok(mut frame) => {
            frame.set_addresses(macs);
            action
        }
        Err(_) => Action::drop(DropReason::Truncated),
    }
}

/// The next hop [`refuse_directed_broadcasts`] gives a directed broadcast: no exit's.
const BROADCAST: u16 = DENIED - 1;

/// Marks the keys to a directed broadcast address of the router's subnets (`broadcasts`,
/// sorted) with the next hop [`BROADCAST`], which no exit has.
fn refuse_directed_broadcasts(broadcasts: &[u32], keys: &[FlowKey4], hops: &mut [u16]) {
    for (key, hop) in keys.iter().zip(hops) {
        if broadcasts
            .binary_search(&u32::from_be_bytes(key.dst()))
            .is_ok()
        {
            *hop = BROADCAST;
        }
    }
}

/// Why a packet whose lookup gave `hop` has no way out.
fn no_exit(hop: u16) -> Action {
    Action::drop(match hop {
        DENIED => DropReason::Filtered.into(),
        BROADCAST => reasons().martian,
        _ => reasons().no_route,
    })
}

/// Makes `m` (fresh) an ARP request for `target` from `source` and `mac`: broadcast, or to
/// `unicast` when probing a neighbour whose MAC is known.
fn arp_request(
    m: &mut Mbuf,
    mac: Address,
    source: Ipv4Addr,
    target: Ipv4Addr,
    unicast: Option<Address>,
) -> bool {
    let request = arp::Repr {
        operation: arp::Operation::Request,
        sender_mac: mac,
        sender_ip: source,
        target_mac: Address::default(),
        target_ip: target,
    };
    emit_arp(m, unicast.unwrap_or(Address::BROADCAST), mac, &request)
}

/// The length of a frame holding an ARP packet: the least Ethernet carries (without FCS).
const ARP_FRAME_LEN: usize = 60;

/// Rewrites `m` into an Ethernet frame of an ARP packet, zero-padded to the least frame: none
/// of what the buffer held before goes out as padding.
fn emit_arp(m: &mut Mbuf, dst: Address, src: Address, repr: &arp::Repr) -> bool {
    if !m.resize(ARP_FRAME_LEN) {
        return false;
    }
    let data = m.data_mut();
    data[ethernet::HEADER_LEN + arp::PACKET_LEN..].fill(0);
    let mut frame = Frame::new_checked(&mut data[..]).expect("resized");
    frame.set_addresses(&AddressPair::new(dst, src));
    frame.set_ethertype(EtherType::ARP);
    repr.emit(&mut data[ethernet::HEADER_LEN..]).is_ok()
}

/// Makes `m` (fresh) a neighbour solicitation for `target` from `source` and `mac`: to the
/// target's solicited-node group, or to the target itself at `unicast` when probing a
/// neighbour whose MAC is known (RFC 4861 §7.2.2).
fn neighbour_solicitation(
    m: &mut Mbuf,
    mac: Address,
    source: Ipv6Addr,
    target: Ipv6Addr,
    unicast: Option<Address>,
) -> bool {
    let (to, to_mac) = match unicast {
        Some(known) => (target, known),
        None => {
            let group = icmpv6::solicited_node(&target);
            (group, icmpv6::multicast_mac(&group))
        }
    };
    let solicitation = NeighbourRepr {
        kind: NeighbourKind::Solicitation,
        target,
        link_addr: Some(mac),
    };
    emit_neighbour(
        m,
        AddressPair::new(to_mac, mac),
        (source, to),
        &solicitation,
    )
}

/// Rewrites `m` into an Ethernet frame of an IPv6 packet carrying a neighbour discovery
/// message, exactly as long as they are.
fn emit_neighbour(
    m: &mut Mbuf,
    macs: AddressPair,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    repr: &NeighbourRepr,
) -> bool {
    const IP_AT: usize = ethernet::HEADER_LEN;
    const MESSAGE_AT: usize = IP_AT + ipv6::HEADER_LEN;
    const LEN: usize = MESSAGE_AT + icmpv6::NEIGHBOUR_LEN;
    if !m.resize(LEN) {
        return false;
    }
    let data = m.data_mut();
    let mut frame = Frame::new_checked(&mut data[..]).expect("grown to fit");
    frame.set_addresses(&macs);
    frame.set_ethertype(EtherType::IPV6);
    let header = ipv6::Repr {
        src,
        dst,
        next_header: icmpv6::NEXT_HEADER,
        hop_limit: icmpv6::ND_HOP_LIMIT,
        payload_len: icmpv6::NEIGHBOUR_LEN as u16,
    };
    if header.emit(&mut data[IP_AT..]).is_err() || repr.emit(&mut data[MESSAGE_AT..]).is_err() {
        return false;
    }
    icmpv6::fill_checksum(&src, &dst, &mut data[MESSAGE_AT..LEN]);
    true
}

impl L3Forward {
    /// l3fwd's own case, when the tables are read inline and every next-hop MAC is fixed:
    /// forwards the burst's leading run of plain IPv4 (or IPv6) packets in one pass each;
    /// returns how many it took.
    fn forward_inline(&self, packets: &mut [Mbuf], actions: &mut [Action]) -> usize {
        // The fast loops know neither neighbours nor the router's subnets.
        if self.resolves || !self.broadcasts.is_empty() {
            return 0;
        }
        let mut done = 0;
        if let Some(lpm) = self.v4.as_ref().and_then(|t| t.inline()) {
            done = forward_plain_v4(lpm, &self.exits, packets, actions);
        }
        if done == 0 {
            if let Some(lpm) = self.v6.as_ref().and_then(|t| t.inline()) {
                done = forward_plain_v6(lpm, &self.exits, packets, actions);
            }
        }
        done
    }

    /// Every other case: classifies the burst into keys, looks each family's keys up in one
    /// call, then resolves and rewrites.
    fn forward_classified(&mut self, packets: &mut [Mbuf], actions: &mut [Action]) {
        let L3Forward {
            v4,
            v6,
            keys_need_ports,
            exits,
            resolver,
            resolves,
            scratch,
            martians,
            broadcasts,
            ..
        } = self;
        let n = packets.len();
        let (n4, n6) = if *keys_need_ports {
            classify_burst::<true>(packets, actions, scratch, *martians)
        } else {
            classify_burst::<false>(packets, actions, scratch, *martians)
        };
        let Scratch {
            keys4,
            keys6,
            at4,
            at6,
            hops,
            held_for,
        } = &mut **scratch;
        let mut forward = Forwarder {
            exits,
            resolver,
            // The clock costs a call: read only where neighbours are resolved.
            now: resolves.then(Instant::now),
            held_for: None,
        };
        if *resolves {
            // Set and read only here: a burst with fixed MACs throughout pays nothing for it.
            held_for[..n].fill(None);
        }
        if n4 > 0 {
            match v4 {
                Some(table) => table.lookup(&keys4[..n4], &mut hops[..n4]),
                None => hops[..n4].fill(NO_ROUTE),
            }
            if *martians && !broadcasts.is_empty() {
                refuse_directed_broadcasts(broadcasts, &keys4[..n4], &mut hops[..n4]);
            }
            if *resolves {
                for j in 0..n4 {
                    let i = usize::from(at4[j]);
                    actions[i] = forward.v4(&mut packets[i], hops[j]);
                    held_for[i] = forward.held_for.take();
                }
            } else if n4 == n {
                // Every exit has a fixed next-hop MAC (l3fwd's own case) and every packet is
                // IPv4, in order: the shortest loop.
                rewrite_burst_fixed(forward.exits, &mut packets[..n], actions, &hops[..n]);
            } else {
                let mut runs = ExitRuns::new(forward.exits);
                for (&at, &hop) in at4[..n4].iter().zip(&hops[..n4]) {
                    let i = usize::from(at);
                    actions[i] = runs.rewrite(packets[i].data_mut(), hop);
                }
            }
        }
        if n6 > 0 {
            match v6 {
                Some(table) => table.lookup(&keys6[..n6], &mut hops[..n6]),
                None => hops[..n6].fill(NO_ROUTE),
            }
            if *resolves {
                for j in 0..n6 {
                    let i = usize::from(at6[j]);
                    actions[i] = forward.v6(&mut packets[i], hops[j]);
                    held_for[i] = forward.held_for.take();
                }
            } else if n6 == n {
                // Fixed next-hop MACs, as for IPv4.
                rewrite_burst_fixed(forward.exits, &mut packets[..n], actions, &hops[..n]);
            } else {
                let mut runs = ExitRuns::new(forward.exits);
                for (&at, &hop) in at6[..n6].iter().zip(&hops[..n6]) {
                    let i = usize::from(at);
                    actions[i] = runs.rewrite(packets[i].data_mut(), hop);
                }
            }
        }
        if *resolves {
            for ip in held_for[..n].iter().flatten() {
                forward.resolver.expect_hold(*ip);
            }
        }
    }
}

impl L3Forward {
    /// Sends the packets held for neighbours now known, and gives up on those that did not
    /// answer in time: each is answered with host unreachable where ICMP errors are (RFC 1812
    /// §5.2.7.1, RFC 4861 §7.2.2), else dropped.
    fn settle(&mut self, ctx: &mut Context<'_>) {
        let L3Forward {
            router,
            exits,
            resolver,
            icmp_errors,
            broadcasts,
            ..
        } = self;
        resolver.settle(&router.neighbours, Instant::now(), |mut held, to| {
            let Some((mac, port)) = to else {
                let error = IcmpError::NoNeighbour;
                let answered = icmp_errors.as_mut().and_then(|limit| {
                    answer_icmp_error(router, broadcasts, limit, held.packet_mut(), error)
                });
                return match answered {
                    Some(rx) => ctx.release(held, rx),
                    None => ctx.release_drop(held, reasons().no_neighbour),
                };
            };
            match exits.get(usize::from(port)) {
                Some(Some(exit)) => {
                    let macs = AddressPair::new(mac, exit.mac);
                    if let Ok(mut frame) = Frame::new_checked(held.packet_mut().data_mut()) {
                        frame.set_addresses(&macs);
                    }
                    ctx.release(held, port);
                }
                _ => ctx.release_drop(held, reasons().no_route),
            }
        });
    }

    /// Sends the resolver's requests, and keeps the settle timer set while anything waits.
    fn request(&mut self, ctx: &mut Context<'_>) {
        let router = &self.router;
        for Request { ip, port, unicast } in self.resolver.requests() {
            let Some(p) = router.port(port) else { continue };
            // Without a packet to spare, the next retry asks again.
            let Some(mut m) = ctx.alloc() else { continue };
            let made = match ip {
                IpAddr::V4(target) => router
                    .source_v4(p, target)
                    .is_some_and(|source| arp_request(&mut m, p.mac, source, target, unicast)),
                IpAddr::V6(target) => router.source_v6(p, &target).is_some_and(|source| {
                    neighbour_solicitation(&mut m, p.mac, source, target, unicast)
                }),
            };
            if made {
                ctx.send(port, m);
            }
        }
        if self.resolver.busy() && !self.settling {
            self.settling = true;
            ctx.timer_after(SETTLE_EVERY, 0);
        }
    }
}

impl Node for L3Forward {
    fn name(&self) -> &str {
        "l3fwd"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        let lcore = *self.online.get_or_insert_with(|| {
            let lcore = super::table::current_lcore();
            self.v4.iter().for_each(|t| t.reader_online(lcore));
            self.v6.iter().for_each(|t| t.reader_online(lcore));
            lcore
        });
        if self.resolves && self.resolver.refresh(&self.router.neighbours) && self.resolver.busy() {
            self.settle(ctx);
        }
        let n = packets.len().min(MAX_BURST);
        let done = self.forward_inline(&mut packets[..n], actions);
        if done < n {
            self.forward_classified(&mut packets[done..n], &mut actions[done..n]);
        }
        if let Some(limit) = &mut self.icmp_errors {
            answer_icmp_errors(
                &self.router,
                &self.broadcasts,
                limit,
                &mut packets[..n],
                &mut actions[..n],
            );
        }
        if self.resolves {
            self.request(ctx);
        }
        self.v4.iter().for_each(|t| t.quiescent(lcore));
        self.v6.iter().for_each(|t| t.quiescent(lcore));
    }

    fn hold(&mut self, packet: Held, ctx: &mut Context<'_>) {
        if let Some(pushed_out) = self.resolver.hold(packet) {
            ctx.release_drop(pushed_out, reasons().no_neighbour);
        }
    }

    fn timer(&mut self, _token: u64, ctx: &mut Context<'_>) {
        self.settling = false;
        self.settle(ctx);
        self.request(ctx);
    }

    fn stop(&mut self, ctx: &mut Context<'_>) {
        for held in self.resolver.drain() {
            ctx.release_drop(held, reasons().no_neighbour);
        }
    }
}

impl Drop for L3Forward {
    fn drop(&mut self) {
        if let Some(lcore) = self.online {
            self.v4.iter().for_each(|t| t.reader_offline(lcore));
            self.v6.iter().for_each(|t| t.reader_offline(lcore));
        }
    }
}

/// Answers ARP requests, neighbour solicitations and ICMP/ICMPv6 echo requests for the
/// router's own addresses, learns neighbours from ARP and neighbour discovery, and consumes
/// whatever else is addressed to the router (if asked, UDP with port unreachable, TCP with a
/// reset and other transports with protocol unreachable); every other packet goes on to the
/// next stage untouched.
pub struct Responder {
    router: Arc<Router>,
    /// Answers UDP and TCP to the router's closed ports, and how many a second.
    closed_ports: Option<RateLimit>,
}

impl Responder {
    pub fn new(router: Arc<Router>) -> Responder {
        Responder {
            router,
            closed_ports: None,
        }
    }

    /// Answers what comes to the router's addresses for a port, where nothing listens, as a
    /// host does: UDP with ICMP (ICMPv6) port unreachable (RFC 1122 §4.1.3.1, RFC 4443 §3.1),
    /// so that traceroute to the router ends at it, under the limits of RFC 1812 §4.3.2.7;
    /// TCP with a reset (RFC 9293 §3.10.7.1), so that a connection is refused at once; and a
    /// transport other than ICMP, UDP and TCP with protocol unreachable (RFC 1122 §3.2.2.1;
    /// ICMPv6 parameter problem, RFC 8200 §4). At most `per_second` a second of them all
    /// together; the rest are consumed as `local`. Zero answers none.
    pub fn answer_closed_ports(mut self, per_second: u32) -> Responder {
        self.closed_ports = (per_second > 0).then(|| RateLimit::per_second(per_second));
        self
    }

    /// Rewrites a packet to our address, for a port or transport we do not serve, into its
    /// `answer`, if asked and the rate and the RFCs' limits allow; else it is consumed.
    fn unserved(&mut self, m: &mut Mbuf, answer: Unserved) -> Action {
        let rx = m.port();
        let (Some(limit), Some(port)) = (self.closed_ports.as_mut(), self.router.port(rx)) else {
            return Action::drop(reasons().local);
        };
        let answered = match answer {
            Unserved::Icmp(IpAddr::V4(to), error) => {
                icmp_error::answer_v4(m, error, port.mac, |_| Some(to), &[], limit)
            }
            Unserved::Icmp(IpAddr::V6(to), error) => {
                icmp_error::answer_v6(m, error, port.mac, |_| Some(to), limit)
            }
            Unserved::Reset => tcp_reset::answer(m, port.mac, limit),
        };
        if answered {
            Action::tx(rx)
        } else {
            Action::drop(reasons().local)
        }
    }

    fn arp(&self, m: &mut Mbuf) -> Action {
        let rx = m.port();
        let Ok(request) = arp::Repr::parse(&m.data()[ethernet::HEADER_LEN..]) else {
            return Action::drop(reasons().unsupported);
        };
        let Some(port) = self.router.port(rx) else {
            return Action::drop(reasons().unsupported);
        };
        let ours = port.v4.iter().any(|(a, _)| *a == request.target_ip);
        // RFC 826: update a known sender; add it if the request is for us.
        let known = self
            .router
            .neighbours
            .get(&IpAddr::V4(request.sender_ip))
            .is_some();
        if (ours || known) && !request.sender_ip.is_unspecified() {
            self.router
                .neighbours
                .learn(IpAddr::V4(request.sender_ip), request.sender_mac);
        }
        if !ours || request.operation != arp::Operation::Request {
            return Action::drop(reasons().local);
        }
        let reply = arp::Repr {
            operation: arp::Operation::Reply,
            sender_mac: port.mac,
            sender_ip: request.target_ip,
            target_mac: request.sender_mac,
            target_ip: request.sender_ip,
        };
        if emit_arp(m, request.sender_mac, port.mac, &reply) {
            Action::tx(rx)
        } else {
            Action::drop(DropReason::Truncated)
        }
    }

    /// An IPv4 packet to one of our addresses: an echo request is answered; if asked, UDP with
    /// port unreachable, TCP with a reset and other transports with protocol unreachable; the
    /// rest is consumed.
    fn local_v4(&mut self, m: &mut Mbuf) -> Action {
        let rx = m.port();
        let data = m.data_mut();
        let Ok(mut ip) = ipv4::Packet::new_checked(&mut data[ethernet::HEADER_LEN..]) else {
            return Action::drop(DropReason::Truncated);
        };
        if let Err(e) = ip.validate() {
            return Action::drop(match e {
                ipv4::Invalid::Truncated => DropReason::Truncated.into(),
                ipv4::Invalid::BadHeader => reasons().bad_header,
                ipv4::Invalid::BadChecksum => reasons().bad_checksum,
            });
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        // RFC 1122 §3.2.1.3: what comes from no host on the link is discarded, not answered
        // (link-local sources are hosts of the link).
        if ipv4::is_martian(src) && !src.is_link_local() {
            return Action::drop(reasons().martian);
        }
        let to = IpAddr::V4(dst);
        match ip.protocol() {
            ipv4::protocol::ICMP => {}
            ipv4::protocol::UDP => {
                return self.unserved(m, Unserved::Icmp(to, IcmpError::PortUnreachable))
            }
            ipv4::protocol::TCP => return self.unserved(m, Unserved::Reset),
            _ => return self.unserved(m, Unserved::Icmp(to, IcmpError::ProtocolUnreachable)),
        }
        match icmp::Message::new_checked(ip.payload_mut()) {
            Ok(mut msg)
                if msg.msg_type() == icmp::ECHO_REQUEST
                    && msg.code() == 0
                    && msg.verify_checksum() =>
            {
                msg.make_echo_reply()
            }
            _ => return Action::drop(reasons().local),
        }
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(64);
        ip.fill_checksum();
        let mut frame = Frame::new_checked(data).expect("holds an IPv4 header");
        let (to, from) = (frame.src_addr(), frame.dst_addr());
        frame.set_addresses(&AddressPair::new(to, from));
        Action::tx(rx)
    }

    /// A neighbour solicitation or advertisement (RFC 4861 §7.1.1 and §7.1.2 checks):
    /// solicitations for our addresses are answered, both teach us their sender's MAC, and
    /// none goes further (they are link-local by nature).
    fn neighbour_v6(&self, m: &mut Mbuf) -> Action {
        let rx = m.port();
        let Some(port) = self.router.port(rx) else {
            return Action::drop(reasons().unsupported);
        };
        let data = m.data();
        let sender_mac = Frame::new_checked(data).expect("classified").src_addr();
        let Ok(ip) = ipv6::Packet::new_checked(&data[ethernet::HEADER_LEN..]) else {
            return Action::drop(DropReason::Truncated);
        };
        if ip.validate().is_err() {
            return Action::drop(reasons().bad_header);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if icmpv6::checksum(&src, &dst, ip.payload()) != 0 {
            return Action::drop(reasons().bad_checksum);
        }
        let message = match NeighbourRepr::parse(ip.payload()) {
            Ok(nd) if ip.hop_limit() == icmpv6::ND_HOP_LIMIT => nd,
            _ => return Action::drop(reasons().bad_header),
        };
        let neighbours = &self.router.neighbours;
        let ours = port.v6.iter().any(|(a, _)| *a == message.target);
        match message.kind {
            NeighbourKind::Advertisement(_) => {
                let mac = message.link_addr.unwrap_or(sender_mac);
                neighbours.learn(IpAddr::V6(message.target), mac);
                Action::drop(reasons().local)
            }
            NeighbourKind::Solicitation if !ours => Action::drop(reasons().local),
            NeighbourKind::Solicitation => {
                // From the unspecified address (duplicate address detection) the answer goes
                // to all nodes, unsolicited; otherwise back to the sender, who is learned.
                let (to, to_mac, flags) = if src.is_unspecified() {
                    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    let mac = icmpv6::multicast_mac(&all_nodes);
                    (all_nodes, mac, icmpv6::FLAG_ROUTER | icmpv6::FLAG_OVERRIDE)
                } else {
                    let mac = message.link_addr.unwrap_or(sender_mac);
                    neighbours.learn(IpAddr::V6(src), mac);
                    let flags =
                        icmpv6::FLAG_ROUTER | icmpv6::FLAG_SOLICITED | icmpv6::FLAG_OVERRIDE;
                    (src, mac, flags)
                };
                let advertisement = NeighbourRepr {
                    kind: NeighbourKind::Advertisement(flags),
                    target: message.target,
                    link_addr: Some(port.mac),
                };
                let macs = AddressPair::new(to_mac, port.mac);
                if emit_neighbour(m, macs, (message.target, to), &advertisement) {
                    Action::tx(rx)
                } else {
                    Action::drop(DropReason::Truncated)
                }
            }
        }
    }

    /// An IPv6 packet to one of our addresses: an echo request is answered; if asked, UDP with
    /// port unreachable, TCP with a reset and other transports with an unrecognized next
    /// header; the rest (extension headers, which it does not walk) is consumed.
    fn local_v6(&mut self, m: &mut Mbuf) -> Action {
        let rx = m.port();
        let data = m.data_mut();
        let (eth, rest) = data.split_at_mut(ethernet::HEADER_LEN);
        let Ok(ip) = ipv6::Packet::new_checked(&*rest) else {
            return Action::drop(DropReason::Truncated);
        };
        if ip.validate().is_err() {
            return Action::drop(reasons().bad_header);
        }
        let (src, dst, end) = (
            ip.src_addr(),
            ip.dst_addr(),
            ipv6::HEADER_LEN + ip.payload().len(),
        );
        // As for IPv4: link-local sources are hosts of the link, the other martians no host.
        if ipv6::is_martian(&src) && !src.is_unicast_link_local() {
            return Action::drop(reasons().martian);
        }
        let to = IpAddr::V6(dst);
        match ip.next_header() {
            icmpv6::NEXT_HEADER => {}
            ipv4::protocol::UDP => {
                return self.unserved(m, Unserved::Icmp(to, IcmpError::PortUnreachable))
            }
            ipv4::protocol::TCP => return self.unserved(m, Unserved::Reset),
            ipv6::NO_NEXT_HEADER => return Action::drop(reasons().local),
            next if ipv6::is_extension_header(next) => return Action::drop(reasons().local),
            _ => return self.unserved(m, Unserved::Icmp(to, IcmpError::ProtocolUnreachable)),
        }
        let (header, message) = rest[..end].split_at_mut(ipv6::HEADER_LEN);
        let is_request = message.len() >= icmpv6::HEADER_LEN
            && message[..2] == [icmpv6::ECHO_REQUEST, 0]
            && icmpv6::checksum(&src, &dst, message) == 0;
        if !is_request || icmpv6::make_echo_reply(message).is_err() {
            return Action::drop(reasons().local);
        }
        let reply = ipv6::Repr {
            src: dst,
            dst: src,
            next_header: icmpv6::NEXT_HEADER,
            hop_limit: 64,
            payload_len: message.len() as u16,
        };
        // Rewrites the header in place; flow label and traffic class start afresh.
        reply.emit(header).expect("a whole header");
        let mut frame = Frame::new_checked(eth).expect("an Ethernet header");
        let (to, from) = (frame.src_addr(), frame.dst_addr());
        frame.set_addresses(&AddressPair::new(to, from));
        Action::tx(rx)
    }
}

/// How the router answers a packet to its own address that it does not serve.
enum Unserved {
    /// This ICMP (ICMPv6) error, from this address of ours.
    Icmp(IpAddr, IcmpError),
    /// A TCP reset.
    Reset,
}

/// Whether an IPv6 packet carries a neighbour solicitation or advertisement.
fn is_neighbour_discovery<T: AsRef<[u8]>>(ip: &ipv6::Packet<T>) -> bool {
    ip.next_header() == icmpv6::NEXT_HEADER
        && matches!(
            ip.payload().first(),
            Some(&(icmpv6::NEIGHBOUR_SOLICITATION | icmpv6::NEIGHBOUR_ADVERTISEMENT))
        )
}

impl Stage for Responder {
    fn name(&self) -> &str {
        "responder"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]) {
        for (m, action) in packets.iter_mut().zip(actions.iter_mut()) {
            let Ok(frame) = Frame::new_checked(m.data()) else {
                continue; // L3Forward counts it
            };
            *action = match frame.ethertype() {
                EtherType::ARP => self.arp(m),
                EtherType::IPV4 => match ipv4::Packet::new_checked(frame.payload()) {
                    Ok(ip) if self.router.owner_v4(ip.dst_addr()).is_some() => self.local_v4(m),
                    _ => Action::NEXT,
                },
                EtherType::IPV6 => match ipv6::Packet::new_checked(frame.payload()) {
                    Ok(ip) if is_neighbour_discovery(&ip) => self.neighbour_v6(m),
                    Ok(ip) if self.router.owns_v6(&ip.dst_addr()) => self.local_v6(m),
                    // Link-scope multicast (router and multicast listener chatter) is for the
                    // hosts of the link; a unicast router takes no part in it.
                    Ok(ip) if ip.dst_addr().is_multicast() => Action::drop(reasons().local),
                    _ => Action::NEXT,
                },
                _ => Action::NEXT,
            };
        }
    }
}
