//! The appliance's stage: UDP datagrams to the service's port on one of its addresses go to
//! the protocol's [`Server`], and each answer leaves in the same mbuf, back to where the
//! question came from. Everything else goes on to the next stage (the router's `Responder`
//! answers ARP, neighbour discovery and ping). A timer every 10 ms ends idle sessions and adds
//! the server's counters to the engine's (so they appear in the periodic report, the final
//! account and `/sluice/stats`: not per burst, where it cost about 180 instructions), and one
//! each second moves the cookie secrets on.
//! With several workers, requests and responses travel between them by handoff, carrying in
//! the packet what the next worker needs (see [`KvStage::handed`]).

use crate::cookie::epoch_of;
use crate::protocol::Kind;
use crate::server::{Counters, Handed, Outcome, Server, Silent};
use siphasher::sip128::{Hasher128, SipHasher24};
use sluice::net::ethernet::{self, Address, AddressPair, EtherType, Frame};
use sluice::net::{ipv4, ipv6, udp};
use sluice::stage::guard::{Class, Classifier};
use sluice::stage::{Action, Context, Node};
use sluice::stats::{Counter, Reason};
use sluice::{Mbuf, MAX_BURST};
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The service's addresses on one port.
#[derive(Clone, Debug)]
pub struct Listener {
    pub port: u16,
    pub mac: Address,
    pub addrs: Vec<IpAddr>,
}

/// TTL and hop limit of answers.
const HOPS: u8 = 64;

/// The server's counters as the engine's named counters.
struct Names {
    retries: Counter,
    welcomes: Counter,
    gets: Counter,
    puts: Counter,
    dels: Counter,
    bad_ops: Counter,
    truncated: Counter,
    replayed: Counter,
    evictions: Counter,
    closed: Counter,
    expired: Counter,
    handoffs: Counter,
    errors: Counter,
}

impl Names {
    fn new() -> Names {
        let c = |name| Counter::named(name);
        Names {
            retries: c("kv_retry"),
            welcomes: c("kv_welcome"),
            gets: c("kv_get"),
            puts: c("kv_put"),
            dels: c("kv_del"),
            bad_ops: c("kv_bad_op"),
            truncated: c("kv_truncated"),
            replayed: c("kv_replayed"),
            evictions: c("kv_evicted"),
            closed: c("kv_closed"),
            expired: c("kv_expired"),
            handoffs: c("kv_handoff"),
            errors: c("kv_error"),
        }
    }
}

/// What the stage publishes once a second for the control side (`/kv/stats`): its
/// counters, sessions open and keys stored. Written by the worker's timer, off the fast path.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    pub counters: Counters,
    pub sessions: usize,
    pub keys: usize,
    pub capacity: usize,
    /// When it was published (None: not yet).
    pub at: Option<std::time::Instant>,
}

impl Published {
    /// What several workers published, summed (`at`: the oldest).
    pub fn sum(all: impl IntoIterator<Item = Published>) -> Published {
        all.into_iter().fold(Published::default(), |mut sum, p| {
            sum.counters += p.counters;
            sum.sessions += p.sessions;
            sum.keys += p.keys;
            sum.capacity += p.capacity;
            sum.at = match (sum.at, p.at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            sum
        })
    }
}

/// A control message for the stage: empty the store.
#[derive(Clone, Copy, Debug)]
pub struct Flush;

pub struct KvStage {
    server: Server,
    listeners: Vec<Listener>,
    udp_port: u16,
    /// Cookie secrets are SipHash-128 of the epoch under this key: fresh each epoch,
    /// unpredictable without the key, and made with no I/O on the worker.
    secret_key: [u8; 16],
    out: Box<[u8; 2048]>,
    names: Names,
    counted: Counters,
    malformed: Reason,
    bad_checksum: Reason,
    fragment: Reason,
    wrong_direction: Reason,
    in_flight: Reason,
    session_gone: Reason,
    armed: bool,
    published: Arc<Mutex<Published>>,
}

/// The stage's timers.
enum Timer {
    /// Cookie rotation and the published figures.
    EverySecond,
    /// Idle sessions end, a few at a time.
    Expiry,
}

/// Idle sessions are looked at every 10 ms, at most 1,000 at a time: 100,000 a second
/// ending or pushed back, and no pause of the worker longer than about 100 us.
const EXPIRY_PERIOD: Duration = Duration::from_millis(10);
const EXPIRY_BUDGET: usize = 1000;

/// The cookie secret of `epoch`.
pub fn epoch_secret(key: &[u8; 16], epoch: u32) -> [u8; 16] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(&epoch.to_be_bytes());
    h.finish128().as_bytes()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The current epoch, for a new server.
pub fn current_epoch() -> u32 {
    epoch_of(unix_secs())
}

/// A request's addresses, to answer it.
struct Question {
    /// The client's MAC, and the port's (the answer's source, whatever the question was
    /// sent to).
    macs: (Address, Address),
    ip: (IpAddr, IpAddr),
    client_port: u16,
}

impl KvStage {
    pub fn new(
        server: Server,
        secret_key: [u8; 16],
        listeners: Vec<Listener>,
        udp_port: u16,
    ) -> KvStage {
        KvStage {
            server,
            listeners,
            udp_port,
            secret_key,
            out: Box::new([0; 2048]),
            names: Names::new(),
            counted: Counters::default(),
            malformed: Reason::named("kv_malformed"),
            bad_checksum: Reason::named("kv_bad_checksum"),
            fragment: Reason::named("kv_fragment"),
            wrong_direction: Reason::named("kv_wrong_direction"),
            in_flight: Reason::named("kv_in_flight"),
            session_gone: Reason::named("kv_session_gone"),
            armed: false,
            published: Arc::default(),
        }
    }

    /// Where the stage publishes its figures once a second.
    pub fn published(&self) -> Arc<Mutex<Published>> {
        self.published.clone()
    }

    fn publish(&self) {
        let mut p = self.published.lock().unwrap_or_else(|e| e.into_inner());
        *p = Published {
            counters: self.server.counters(),
            sessions: self.server.sessions(),
            keys: self.server.store().len(),
            capacity: self.server.store().capacity(),
            at: Some(std::time::Instant::now()),
        };
    }

    fn ours(&self, port: u16, ip: IpAddr) -> bool {
        self.listeners
            .iter()
            .any(|l| l.port == port && l.addrs.contains(&ip))
    }

    /// Answers a burst of at most [`MAX_BURST`]. When there are several packets, the lines
    /// their requests will read are asked for first, all of them, so that the misses of a
    /// loaded worker overlap.
    fn answer_burst(&mut self, packets: &mut [Mbuf], actions: &mut [Action], now: u64) {
        if packets.len() > 1 {
            for m in packets.iter() {
                if let Some(datagram) = udp_payload_guess(m.data()) {
                    self.server.prefetch(datagram);
                }
            }
        }
        for (m, action) in packets.iter_mut().zip(actions) {
            let Some(question) = self.question(m.port(), m.data()) else {
                continue; // not for the service: the next stage's
            };
            let (q, datagram) = match question {
                Ok(q) => q,
                Err(reason) => {
                    *action = Action::drop(reason);
                    continue;
                }
            };
            let from = SocketAddr::new(q.ip.0, q.client_port);
            let payload = &m.data()[datagram.clone()];
            let outcome = self.server.handle(payload, from, now, &mut self.out[..]);
            *action = self.act(m, &q, datagram, outcome, now);
        }
    }

    /// The UDP payload of a datagram to the service, with where it came from; None for
    /// anything else (the next stage's), Some(Err) for one to drop.
    fn question(&self, port: u16, data: &[u8]) -> Option<Result<(Question, Range<usize>), Reason>> {
        let frame = Frame::new_checked(data).ok()?;
        let port_mac = self.listeners.iter().find(|l| l.port == port)?.mac;
        let macs = (frame.src_addr(), port_mac);
        let (ip, l4_range) = match frame.ethertype() {
            EtherType::IPV4 => {
                let p = ipv4::Packet::new_checked(frame.payload()).ok()?;
                if p.protocol() != ipv4::protocol::UDP || !self.ours(port, p.dst_addr().into()) {
                    return None;
                }
                if p.validate().is_err() {
                    return Some(Err(self.malformed));
                }
                let header = frame.payload();
                if u16::from_be_bytes([header[6], header[7]]) & 0x3fff != 0 {
                    return Some(Err(self.fragment));
                }
                let start = ethernet::HEADER_LEN + usize::from(header[0] & 0x0f) * 4;
                (
                    (IpAddr::from(p.src_addr()), IpAddr::from(p.dst_addr())),
                    start..start + p.payload().len(),
                )
            }
            EtherType::IPV6 => {
                let p = ipv6::Packet::new_checked(frame.payload()).ok()?;
                if p.next_header() != ipv4::protocol::UDP || !self.ours(port, p.dst_addr().into()) {
                    return None;
                }
                if p.validate().is_err() {
                    return Some(Err(self.malformed));
                }
                let start = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
                (
                    (IpAddr::from(p.src_addr()), IpAddr::from(p.dst_addr())),
                    start..start + p.payload().len(),
                )
            }
            _ => return None,
        };
        let l4 = &data[l4_range.clone()];
        let datagram = udp::Packet::new_checked(l4).ok()?;
        if datagram.dst_port() != self.udp_port {
            return None;
        }
        if datagram.validate().is_err() {
            return Some(Err(self.malformed));
        }
        let checksum_ok = match ip {
            (IpAddr::V4(s), IpAddr::V4(d)) => datagram.verify_checksum_v4(s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => datagram.verify_checksum_v6(&s, &d),
            _ => false,
        };
        if !checksum_ok {
            return Some(Err(self.bad_checksum));
        }
        let question = Question {
            macs,
            ip,
            client_port: datagram.src_port(),
        };
        let start = l4_range.start + udp::HEADER_LEN;
        Some(Ok((question, start..start + datagram.payload().len())))
    }

    /// Rewrites `m` as the answer to `q`, carrying `payload`.
    fn answer(&self, m: &mut Mbuf, q: &Question, payload: &[u8]) -> bool {
        let ip_len = match q.ip.0 {
            IpAddr::V4(_) => ipv4::MIN_HEADER_LEN,
            IpAddr::V6(_) => ipv6::HEADER_LEN,
        };
        let l4 = ethernet::HEADER_LEN + ip_len;
        let len = l4 + udp::HEADER_LEN + payload.len();
        if !m.resize(len) {
            return false;
        }
        let data = m.data_mut();
        let mut frame = Frame::new_checked(&mut data[..]).expect("a whole frame");
        frame.set_addresses(&AddressPair::new(q.macs.0, q.macs.1));
        data[l4 + udp::HEADER_LEN..].copy_from_slice(payload);
        let udp_repr = udp::Repr {
            src_port: self.udp_port,
            dst_port: q.client_port,
        };
        let payload_len = (udp::HEADER_LEN + payload.len()) as u16;
        match (q.ip.1, q.ip.0) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                data[12..14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
                ipv4::Repr {
                    src,
                    dst,
                    protocol: ipv4::protocol::UDP,
                    ttl: HOPS,
                    payload_len,
                }
                .emit(&mut data[ethernet::HEADER_LEN..])
                .is_ok()
                    && udp_repr
                        .emit_v4(&mut data[l4..], payload.len(), src, dst)
                        .is_ok()
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                data[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
                ipv6::Repr {
                    src,
                    dst,
                    next_header: ipv4::protocol::UDP,
                    hop_limit: HOPS,
                    payload_len,
                }
                .emit(&mut data[ethernet::HEADER_LEN..])
                .is_ok()
                    && udp_repr
                        .emit_v6(&mut data[l4..], payload.len(), &src, &dst)
                        .is_ok()
            }
            _ => false,
        }
    }

    /// Adds what the server counted since the last call to the engine's counters.
    fn count(&mut self, ctx: &mut Context<'_>) {
        let now = self.server.counters();
        let was = std::mem::replace(&mut self.counted, now);
        let n = &self.names;
        for (counter, new, old) in [
            (n.retries, now.retries, was.retries),
            (n.welcomes, now.welcomes, was.welcomes),
            (n.gets, now.gets, was.gets),
            (n.puts, now.puts, was.puts),
            (n.dels, now.dels, was.dels),
            (n.bad_ops, now.bad_ops, was.bad_ops),
            (n.truncated, now.truncated, was.truncated),
            (n.replayed, now.replayed, was.replayed),
            (n.evictions, now.evictions, was.evictions),
            (n.closed, now.closed, was.closed),
            (n.expired, now.expired, was.expired),
            (n.handoffs, now.handoffs, was.handoffs),
            (n.errors, now.errors.iter().sum(), was.errors.iter().sum()),
        ] {
            if new > old {
                ctx.count(counter, new - old);
            }
        }
    }

    /// The action for an outcome of the server's on `m`, whose UDP payload is `datagram`.
    /// A handoff carries what the next worker needs in the packet itself: the datagram as
    /// it came, then (to execute) the response so far, or (done) only the response.
    fn act(
        &mut self,
        m: &mut Mbuf,
        q: &Question,
        datagram: Range<usize>,
        outcome: Outcome,
        now: u64,
    ) -> Action {
        match outcome {
            Outcome::Reply(n) => {
                if self.answer(m, q, &self.out[..n]) {
                    Action::tx(m.port())
                } else {
                    Action::drop(self.malformed)
                }
            }
            Outcome::Silent(Silent::WrongDirection) => Action::drop(self.wrong_direction),
            Outcome::Silent(Silent::InFlight) => Action::drop(self.in_flight),
            Outcome::Silent(Silent::SessionGone) => Action::drop(self.session_gone),
            Outcome::Silent(_) => Action::drop(self.malformed),
            Outcome::Forward(worker) => {
                m.truncate(datagram.end);
                Action::handoff(worker)
            }
            Outcome::Execute { worker, partial } => {
                if m.resize(datagram.end + partial) {
                    m.data_mut()[datagram.end..].copy_from_slice(&self.out[..partial]);
                    return Action::handoff(worker);
                }
                // No room in the packet for the request and its results so far: the rest
                // are answered TRUNCATED, not executed (the client sends them again).
                let outcome = self.server.give_up(partial, now, &mut self.out[..]);
                self.act(m, q, datagram, outcome, now)
            }
            Outcome::Done { worker, len } => {
                if !m.resize(datagram.start + len) {
                    return Action::drop(self.malformed);
                }
                m.data_mut()[datagram.start..].copy_from_slice(&self.out[..len]);
                Action::handoff(worker)
            }
        }
    }

    /// A handed packet's addresses and its datagram as it came (by the UDP length, which
    /// may now run past the packet's end); the worker that handed it checked the rest.
    fn handed_parts(&self, port: u16, data: &[u8]) -> Option<(Question, Range<usize>)> {
        let frame = Frame::new_checked(data).ok()?;
        let port_mac = self.listeners.iter().find(|l| l.port == port)?.mac;
        let header = frame.payload();
        let (ip, l4) = match frame.ethertype() {
            EtherType::IPV4 => {
                let p = ipv4::Packet::new_checked(header).ok()?;
                let l4 = ethernet::HEADER_LEN + usize::from(header[0] & 0x0f) * 4;
                ((IpAddr::from(p.src_addr()), IpAddr::from(p.dst_addr())), l4)
            }
            EtherType::IPV6 => {
                let p = ipv6::Packet::new_checked(header).ok()?;
                let l4 = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
                ((IpAddr::from(p.src_addr()), IpAddr::from(p.dst_addr())), l4)
            }
            _ => return None,
        };
        let (client_port, _) = udp::ports(data.get(l4..)?)?;
        let udp_len = usize::from(u16::from_be_bytes(
            data.get(l4 + 4..l4 + 6)?.try_into().ok()?,
        ));
        let start = l4 + udp::HEADER_LEN;
        let end = l4 + udp_len.max(udp::HEADER_LEN);
        let question = Question {
            macs: (frame.src_addr(), port_mac),
            ip,
            client_port,
        };
        Some((question, start..end))
    }

    fn now_secs(ctx: &Context<'_>) -> u64 {
        ctx.now() / ctx.tsc_hz()
    }
}

impl Node for KvStage {
    fn name(&self) -> &str {
        "kv"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        if !self.armed {
            self.armed = true;
            ctx.timer_after(Duration::from_secs(1), Timer::EverySecond as u64);
            ctx.timer_after(EXPIRY_PERIOD, Timer::Expiry as u64);
        }
        let now = Self::now_secs(ctx);
        for (packets, actions) in packets
            .chunks_mut(MAX_BURST)
            .zip(actions.chunks_mut(MAX_BURST))
        {
            self.answer_burst(packets, actions, now);
        }
    }

    /// What other workers handed over: requests for sessions of this worker, requests whose
    /// next keys are this worker's, and whole responses for this worker's sessions.
    fn handed(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        let now = Self::now_secs(ctx);
        for (m, action) in packets.iter_mut().zip(actions.iter_mut()) {
            let Some((q, datagram)) = self.handed_parts(m.port(), m.data()) else {
                *action = Action::drop(self.malformed);
                continue;
            };
            let data = m.data();
            let handed = if data.get(datagram.start + 3) == Some(&(Kind::Response as u8)) {
                Handed::Done {
                    response: &data[datagram.start..],
                }
            } else if datagram.end >= data.len() {
                // Forwarded as it came (a request for a session of this worker): as if it
                // had come here.
                self.process(std::slice::from_mut(m), std::slice::from_mut(action), ctx);
                continue;
            } else {
                Handed::Execute {
                    request: &data[datagram.clone()],
                    partial: &data[datagram.end..],
                }
            };
            let outcome = self.server.handed(handed, now, &mut self.out[..]);
            *action = self.act(m, &q, datagram, outcome, now);
        }
    }

    fn takes_handoff(&self) -> bool {
        self.server.shard().workers > 1
    }

    fn timer(&mut self, token: u64, ctx: &mut Context<'_>) {
        if token == Timer::Expiry as u64 {
            self.server.expire(Self::now_secs(ctx), EXPIRY_BUDGET);
            self.count(ctx);
            ctx.timer_after(EXPIRY_PERIOD, token);
            return;
        }
        let epoch = epoch_of(unix_secs());
        if epoch > self.server.epoch() {
            self.server
                .rotate(epoch, epoch_secret(&self.secret_key, epoch));
        }
        self.count(ctx);
        self.publish();
        ctx.timer_after(Duration::from_secs(1), token);
    }

    fn message(&mut self, message: &(dyn std::any::Any + Send + Sync), _ctx: &mut Context<'_>) {
        if message.is::<Flush>() {
            self.server.flush();
            self.publish();
        }
    }

    fn stop(&mut self, ctx: &mut Context<'_>) {
        self.count(ctx);
    }
}

/// Where a frame's UDP payload would be, read with no check but the bounds: enough for
/// [`Server::prefetch`], whose asking is only a hint (the answer checks everything).
fn udp_payload_guess(data: &[u8]) -> Option<&[u8]> {
    let ethertype = Frame::new_checked(data).ok()?.ethertype();
    let ip = &data[ethernet::HEADER_LEN..];
    let udp_at = match ethertype {
        EtherType::IPV4 => usize::from(ip.first()? & 0x0f) * 4,
        EtherType::IPV6 => ipv6::HEADER_LEN,
        _ => return None,
    };
    ip.get(udp_at + udp::HEADER_LEN..)
}

/// The guard's view of a frame: a UDP datagram to the service is established if it is a
/// REQUEST or CLOSE (which name a session), and a handshake otherwise.
pub fn guard_classifier(udp_port: u16) -> Classifier {
    Box::new(move |data: &[u8]| {
        let frame = Frame::new_checked(data).ok()?;
        let (source, l4) = match frame.ethertype() {
            EtherType::IPV4 => {
                let p = ipv4::Packet::new_checked(frame.payload()).ok()?;
                if p.protocol() != ipv4::protocol::UDP {
                    return None;
                }
                let start = usize::from(frame.payload()[0] & 0x0f) * 4;
                (IpAddr::from(p.src_addr()), frame.payload().get(start..)?)
            }
            EtherType::IPV6 => {
                let p = ipv6::Packet::new_checked(frame.payload()).ok()?;
                if p.next_header() != ipv4::protocol::UDP {
                    return None;
                }
                (
                    IpAddr::from(p.src_addr()),
                    frame.payload().get(ipv6::HEADER_LEN..)?,
                )
            }
            _ => return None,
        };
        let (_, dst) = udp::ports(l4)?;
        if dst != udp_port {
            return None;
        }
        let kind = l4.get(udp::HEADER_LEN + 3).copied();
        let class = match kind {
            Some(k) if k == Kind::Request as u8 || k == Kind::Close as u8 => Class::Established,
            _ => Class::Handshake,
        };
        Some((source, class))
    })
}
