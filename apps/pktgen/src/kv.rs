//! `--workload kv`: sluice-pktgen as the clients of a sluice-kv appliance (docs/protocol.md),
//! on one port. First every session's handshake (HELLO, RETRY, HELLO with the cookie,
//! WELCOME) at `--handshake-rate`; then requests, open loop at `--rate`, evenly spaced or
//! Poisson, each timed from the moment it was scheduled: a server that falls behind cannot
//! hide its tail by slowing the client (coordinated omission). Every figure is counted: the
//! requests sent and answered, results by status, ERRORs by code, answers that match no
//! request, and timeouts.

use crate::args::{is_flood_source, KvWorkload, FLOOD_SOURCES};
use crate::generator::Rng;
use crate::receiver::new_histogram;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sluice::net::ethernet::{Address, AddressPair, EtherType, Frame, HEADER_LEN};
use sluice::net::{arp, ipv4, udp};
use sluice::worker::StopFlag;
use sluice::{Burst, Mempool, RxQueue, TxQueue};
use sluice_kv::protocol::{ErrorCode, Message, Operation, RequestWriter, NONCE_LEN, VERSION};
use sluice_pktgen::spec::KeyDist;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error>;

/// Bursts taken from the RX queue in one round at most.
const RX_BURSTS: usize = 4;
/// HELLOs a session sends before it is given up.
const HELLO_TRIES: u8 = 5;
/// How long a HELLO waits for its answer before it is sent again: 200 ms, then doubling, as
/// docs/protocol.md asks of clients.
const FIRST_HELLO_TIMEOUT: Duration = Duration::from_millis(200);

/// The time HELLO number `tries` (from 1) waits for its answer.
fn hello_timeout(tries: u8) -> Duration {
    FIRST_HELLO_TIMEOUT * (1 << (tries.clamp(1, HELLO_TRIES) - 1))
}
/// IPv4 and UDP headers.
const HEADERS: usize = HEADER_LEN + 20 + 8;

/// The port and queues the clients use.
pub struct Link<'a> {
    pub rx: &'a mut RxQueue,
    pub tx: &'a mut TxQueue,
    pub pool: &'a Mempool,
    pub mac: Address,
    pub burst: usize,
    pub tsc_hz: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Hello { tries: u8, at: u64 },
    Open,
    Failed,
}

struct Session {
    state: State,
    nonce: [u8; NONCE_LEN],
    id: u64,
    /// The id of the session's next request: the last one answered, plus one. After a
    /// timeout the same id goes again, so that the server executes it once (or answers
    /// with what it kept, had only the answer been lost).
    next_request: u64,
    /// The request on its way, if any, and the time it was scheduled for: the protocol
    /// allows one per session.
    outstanding: Option<(u64, u64)>,
}

/// Draws key numbers: uniform, or Zipf by the inverse of its cumulative weights.
enum Keys {
    Uniform(u64),
    Zipf(Vec<f64>),
}

impl Keys {
    fn new(keys: u64, dist: KeyDist) -> Keys {
        match dist {
            KeyDist::Uniform => Keys::Uniform(keys),
            KeyDist::Zipf(theta) => {
                let mut total = 0.0;
                let mut cumulative: Vec<f64> = (0..keys)
                    .map(|k| {
                        total += 1.0 / ((k + 1) as f64).powf(theta);
                        total
                    })
                    .collect();
                for c in &mut cumulative {
                    *c /= total;
                }
                Keys::Zipf(cumulative)
            }
        }
    }

    fn draw(&self, rng: &mut Rng) -> u64 {
        match self {
            Keys::Uniform(n) => rng.next() % n,
            Keys::Zipf(cumulative) => {
                let u = rng.unit();
                cumulative.partition_point(|&c| c < u) as u64
            }
        }
    }
}

/// What a run counted.
#[derive(Default)]
struct Counts {
    hellos: u64,
    hellos_again: u64,
    /// HELLOs not sent for want of an mbuf or of room in the device (sent again soon).
    hellos_not_sent: u64,
    retries: u64,
    welcomes: u64,
    sent: u64,
    gets: u64,
    puts: u64,
    answered: u64,
    /// Results by status (index = status byte).
    statuses: [u64; 5],
    /// ERRORs by code (index = code).
    errors: [u64; 8],
    /// Answers that match no request still waiting (late, after their timeout).
    unmatched: u64,
    /// RETRYs and WELCOMEs for sessions no longer waiting for them (a HELLO sent again
    /// whose first answer was only slow).
    late_handshakes: u64,
    timeouts: u64,
    /// Frames that are not the appliance's answers to us.
    foreign: u64,
    /// Requests sent and not yet answered or given up.
    in_flight: u64,
    /// Requests not sent for want of an mbuf (their sessions try again).
    not_sent: u64,
    /// Rounds of the request loop that came more than 100 us after the one before: the
    /// generator itself was held up (descheduled, most likely), and its requests with it.
    pauses: u64,
    pause_ticks: u64,
    /// `--flood`: spoofed HELLOs sent, the answers that came back to their sources, and the
    /// bytes of each (frames), to show there is no amplification.
    flood_sent: u64,
    flood_answers: u64,
    flood_bytes_sent: u64,
    flood_bytes_answered: u64,
}

const STATUSES: [&str; 5] = ["ok", "not_found", "bad_op", "no_room", "truncated"];
const ERRORS: [&str; 8] = [
    "unknown",
    "bad_cookie",
    "version",
    "unknown_session",
    "malformed",
    "wrong_address",
    "busy",
    "stale_request",
];

struct Clients<'a, 'l> {
    w: &'a KvWorkload,
    link: Link<'l>,
    macs: AddressPair,
    sessions: Vec<Session>,
    counts: Counts,
    latency: Histogram<u64>,
    out: Burst,
    frame: [u8; 1514],
    /// Open sessions with no request on their way, in the order they became free.
    idle: VecDeque<u32>,
    /// Requests on their way, in the order sent: (TSC of their timeout, session, id).
    deadlines: VecDeque<(u64, u32, u64)>,
    /// HELLOs on their way, one queue per try (each with its own timeout, so that each queue
    /// is in the order of its deadlines; a try past the last one waits as long as the last):
    /// (TSC sent, session, its try).
    hellos_out: [VecDeque<(u64, u32, u8)>; HELLO_TRIES as usize],
    /// Each queue's timeout, in TSC ticks.
    hello_timeout_ticks: [u64; HELLO_TRIES as usize],
    /// Sessions to send a HELLO again, with the try they were at when queued.
    hellos_again: VecDeque<(u32, u8)>,
    timeout_ticks: u64,
    /// A request's key and a PUT's value, written again for each request.
    key: String,
    value: Vec<u8>,
}

impl Clients<'_, '_> {
    /// Session `i`'s address: the client IPs count up, then the ports.
    fn address(&self, i: u32) -> (Ipv4Addr, u16) {
        let ip = u32::from(self.w.client_ip).wrapping_add(i % 65_536);
        (Ipv4Addr::from(ip), self.w.client_port + (i / 65_536) as u16)
    }

    /// The session an answer to `ip`:`port` is for.
    fn session_of(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.w.client_ip));
        let round = u32::from(port.checked_sub(self.w.client_port)?);
        let i = round.checked_mul(65_536)?.checked_add(offset)?;
        (offset < 65_536 && i < self.w.sessions).then_some(i)
    }

    /// Sends session `i` a datagram written by `write` (which returns its length).
    fn send(&mut self, i: u32, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let len = write(&mut self.frame[HEADERS..]);
        let (ip, port) = self.address(i);
        let server = *self.w.server.ip();
        let ok = self.headers(ip, port, server, len);
        ok && self.queue(HEADERS + len)
    }

    fn headers(&mut self, src: Ipv4Addr, port: u16, dst: Ipv4Addr, len: usize) -> bool {
        let Ok(mut eth) = Frame::new_checked(&mut self.frame[..]) else {
            return false;
        };
        eth.set_addresses(&self.macs);
        eth.set_ethertype(EtherType::IPV4);
        let ip = ipv4::Repr {
            src,
            dst,
            protocol: ipv4::protocol::UDP,
            ttl: 64,
            payload_len: (8 + len) as u16,
        };
        let ports = udp::Repr {
            src_port: port,
            dst_port: self.w.server.port(),
        };
        ip.emit(&mut self.frame[HEADER_LEN..]).is_ok()
            && ports
                .emit_v4(&mut self.frame[HEADER_LEN + 20..], len, src, dst)
                .is_ok()
    }

    /// Copies the frame's first `len` bytes into an mbuf for the next burst out.
    fn queue(&mut self, len: usize) -> bool {
        if self.out.spare() == 0 {
            self.flush();
        }
        let Some(mut m) = self.link.pool.alloc() else {
            return false;
        };
        if !m.extend_from_slice(&self.frame[..len]) {
            return false;
        }
        self.out.push(m).is_ok()
    }

    /// Sends what is queued; what the device does not take yet waits for the next round.
    fn flush(&mut self) {
        self.link.tx.send(&mut self.out);
    }

    /// One HELLO without a cookie from a random spoofed source (`--flood`).
    fn spoofed_hello(&mut self, rng: &mut Rng) {
        let (net, len) = FLOOD_SOURCES;
        let host = (rng.next() as u32) & ((1u32 << (32 - len)) - 1);
        let src = Ipv4Addr::from(u32::from(net) | host);
        let port = 1024 + (rng.next() % 64_512) as u16;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&rng.next().to_be_bytes());
        nonce[8..].copy_from_slice(&rng.next().to_be_bytes());
        let message = Message::Hello {
            nonce,
            cookie: None,
        };
        let len = message.emit(&mut self.frame[HEADERS..]).unwrap_or(0);
        let server = *self.w.server.ip();
        if self.headers(src, port, server, len) && self.queue(HEADERS + len) {
            self.counts.flood_sent += 1;
            self.counts.flood_bytes_sent += (HEADERS + len) as u64;
        }
    }

    fn hello(&mut self, i: u32, cookie: Option<sluice_kv::protocol::Cookie>, now: u64) {
        let s = &mut self.sessions[i as usize];
        let tries = match s.state {
            State::Hello { tries, .. } => tries + 1,
            _ => 1,
        };
        s.state = State::Hello { tries, at: now };
        let nonce = s.nonce;
        let message = Message::Hello { nonce, cookie };
        if self.send(i, |b| message.emit(b).unwrap_or(0)) {
            self.counts.hellos += 1;
            self.hellos_out[usize::from(tries.min(HELLO_TRIES) - 1)].push_back((now, i, tries));
        } else {
            // No mbuf, or no room in the device: sent again when the pace allows, not after
            // a timeout as if it had been lost on the way.
            self.counts.hellos_not_sent += 1;
            self.hellos_again.push_back((i, tries));
        }
    }

    /// Queues again the HELLOs whose timeout ran out at `now`; a session out of tries fails.
    fn hellos_timed_out(&mut self, now: u64) {
        for (queue, &timeout) in self.hellos_out.iter_mut().zip(&self.hello_timeout_ticks) {
            while let Some(&(sent, i, tries)) = queue.front() {
                if now.saturating_sub(sent) < timeout {
                    break;
                }
                queue.pop_front();
                let s = &mut self.sessions[i as usize];
                // Still waiting for the answer to that very HELLO?
                if s.state != (State::Hello { tries, at: sent }) {
                    continue;
                }
                if tries >= HELLO_TRIES {
                    s.state = State::Failed;
                } else {
                    self.hellos_again.push_back((i, tries));
                }
            }
        }
    }

    /// Issues one request, scheduled for `at`, to session `i` (which has none on its way).
    fn request(&mut self, i: u32, at: u64, now: u64, keys: &Keys, rng: &mut Rng) {
        let s = &mut self.sessions[i as usize];
        let (session, id) = (s.id, s.next_request);
        self.key.clear();
        let _ = write!(self.key, "k{}", keys.draw(rng));
        let get = rng.unit() < self.w.get_ratio;
        let (key, value) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.value),
        );
        let op = if get {
            Operation::Get(key.as_bytes())
        } else {
            Operation::Put(key.as_bytes(), &value)
        };
        let sent = self.send(i, |b| {
            let Ok(mut writer) = RequestWriter::new(b, session, id) else {
                return 0;
            };
            if writer.push(op).is_err() {
                return 0;
            }
            writer.finish()
        });
        (self.key, self.value) = (key, value);
        if sent {
            self.sessions[i as usize].outstanding = Some((id, at));
            self.deadlines.push_back((now + self.timeout_ticks, i, id));
            self.counts.sent += 1;
            self.counts.in_flight += 1;
            if get {
                self.counts.gets += 1;
            } else {
                self.counts.puts += 1;
            }
        } else {
            self.counts.not_sent += 1;
            self.idle.push_front(i);
        }
    }

    /// Gives up the requests whose time ran out; their sessions send their ids again.
    fn expire(&mut self, now: u64) {
        while let Some(&(deadline, i, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let s = &mut self.sessions[i as usize];
            if s.outstanding.is_some_and(|(waiting, _)| waiting == id) {
                s.outstanding = None;
                self.counts.timeouts += 1;
                self.counts.in_flight -= 1;
                self.idle.push_back(i);
            }
        }
    }

    /// Takes what arrived, a few bursts at most, so that answers keep up with what is sent.
    fn receive(&mut self, rx: &mut Burst) {
        for _ in 0..RX_BURSTS {
            let n = self.link.rx.recv_up_to(rx, self.link.burst);
            // The time they arrived: now, not when the loop's round began.
            let now = sluice::clock::tsc();
            for m in rx.drain() {
                self.answer(m.data(), now);
            }
            if n < self.link.burst {
                return;
            }
        }
    }

    fn answer(&mut self, data: &[u8], now: u64) {
        let Some((client, port, datagram)) = self.datagram(data) else {
            self.counts.foreign += 1;
            return;
        };
        let Some(i) = self.session_of(client, port) else {
            if is_flood_source(client) {
                self.counts.flood_answers += 1;
                self.counts.flood_bytes_answered += data.len() as u64;
            } else {
                self.counts.foreign += 1;
            }
            return;
        };
        let Ok(message) = Message::parse(datagram) else {
            self.counts.foreign += 1;
            return;
        };
        let s = &mut self.sessions[i as usize];
        let handshaking = matches!(s.state, State::Hello { .. });
        match message {
            Message::Retry { nonce, cookie } if nonce == s.nonce && handshaking => {
                self.counts.retries += 1;
                self.hello(i, Some(cookie), now);
            }
            Message::Welcome(w) if w.nonce == s.nonce && handshaking => {
                s.state = State::Open;
                s.id = w.session;
                s.next_request = 1;
                self.counts.welcomes += 1;
            }
            Message::Response(r) if r.session == s.id => {
                let Some((_, at)) = s.outstanding.filter(|(id, _)| *id == r.id) else {
                    self.counts.unmatched += 1;
                    return;
                };
                s.outstanding = None;
                s.next_request += 1;
                self.idle.push_back(i);
                self.counts.answered += 1;
                self.counts.in_flight -= 1;
                let ticks = now.saturating_sub(at);
                let ns = (u128::from(ticks) * 1_000_000_000 / u128::from(self.link.tsc_hz)) as u64;
                self.latency.saturating_record(ns.max(1));
                for (status, _) in r.each_result().map_while(Result::ok) {
                    self.counts.statuses[status as usize] += 1;
                }
            }
            Message::Retry { .. } | Message::Welcome(_) => self.counts.late_handshakes += 1,
            Message::Error(e) => {
                self.counts.errors[e.code as usize] += 1;
                if handshaking && e.code == ErrorCode::Busy {
                    s.state = State::Failed;
                } else if s.outstanding.take().is_some() {
                    // The request was refused: the session is given up.
                    s.state = State::Failed;
                    self.counts.in_flight -= 1;
                }
            }
            _ => self.counts.unmatched += 1,
        }
    }

    /// A UDP datagram from the appliance: the client address it is for, and its payload.
    fn datagram<'d>(&self, data: &'d [u8]) -> Option<(Ipv4Addr, u16, &'d [u8])> {
        let frame = Frame::new_checked(data).ok()?;
        if frame.ethertype() != EtherType::IPV4 {
            return None;
        }
        let ip = ipv4::Packet::new_checked(frame.payload()).ok()?;
        if ip.protocol() != ipv4::protocol::UDP || ip.src_addr() != *self.w.server.ip() {
            return None;
        }
        let dgram = udp::Packet::new_checked(ip.payload()).ok()?;
        if dgram.src_port() != self.w.server.port() {
            return None;
        }
        let start = HEADER_LEN + ip.header_len() + udp::HEADER_LEN;
        let end = HEADER_LEN + ip.header_len() + usize::from(dgram.len());
        Some((ip.dst_addr(), dgram.dst_port(), data.get(start..end)?))
    }
}

/// The appliance's MAC, asked by ARP from the first client address.
fn resolve(link: &mut Link, w: &KvWorkload, stop: &StopFlag) -> Result<Address, BoxError> {
    let request = arp::Repr {
        operation: arp::Operation::Request,
        sender_mac: link.mac,
        sender_ip: w.client_ip,
        target_mac: Address::default(),
        target_ip: *w.server.ip(),
    };
    let mut frame = [0u8; 60];
    {
        let mut eth = Frame::new_checked(&mut frame[..]).expect("60 bytes");
        eth.set_addresses(&AddressPair::new(Address::BROADCAST, link.mac));
        eth.set_ethertype(EtherType::ARP);
    }
    request
        .emit(&mut frame[HEADER_LEN..])
        .expect("room for ARP");
    let (mut out, mut rx) = (Burst::new(), Burst::new());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) && !stop.is_stopped() {
        if let Some(mut m) = link.pool.alloc() {
            if m.extend_from_slice(&frame) && out.push(m).is_ok() {
                link.tx.send(&mut out);
                out.clear();
            }
        }
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_millis(200) {
            link.rx.recv_up_to(&mut rx, link.burst);
            for m in rx.drain() {
                let data = m.data();
                let Ok(eth) = Frame::new_checked(data) else {
                    continue;
                };
                if eth.ethertype() != EtherType::ARP {
                    continue;
                }
                if let Ok(reply) = arp::Repr::parse(eth.payload()) {
                    if reply.operation == arp::Operation::Reply && reply.sender_ip == *w.server.ip()
                    {
                        return Ok(reply.sender_mac);
                    }
                }
            }
        }
    }
    Err(format!(
        "no ARP reply from {} in 5 s: is the appliance on this port? (--dst-mac gives its MAC)",
        w.server.ip()
    )
    .into())
}

/// Opens the sessions, then sends requests for `duration` (or `count` of them, or until
/// stopped), then waits `drain` for the last answers; every figure as JSON.
pub fn run(
    mut link: Link,
    w: &KvWorkload,
    duration: Option<Duration>,
    count: Option<u64>,
    drain: Duration,
    seed: u64,
    stop: &StopFlag,
) -> Result<Value, BoxError> {
    let server_mac = match w.server_mac {
        Some(mac) => mac,
        None => resolve(&mut link, w, stop)?,
    };
    println!("kv: appliance {} at {server_mac}", w.server);
    let hz = link.tsc_hz as f64;
    // The same seed draws the same nonces, keys and operations.
    let mut rng = Rng::new(seed);
    let sessions = (0..w.sessions)
        .map(|_| {
            let mut nonce = [0u8; NONCE_LEN];
            nonce[..8].copy_from_slice(&rng.next().to_be_bytes());
            nonce[8..].copy_from_slice(&rng.next().to_be_bytes());
            Session {
                state: State::New,
                nonce,
                id: 0,
                next_request: 0,
                outstanding: None,
            }
        })
        .collect();
    let macs = AddressPair::new(server_mac, link.mac);
    let second = link.tsc_hz;
    let mut c = Clients {
        w,
        link,
        macs,
        sessions,
        counts: Counts::default(),
        latency: new_histogram(),
        out: Burst::new(),
        frame: [0; 1514],
        idle: VecDeque::new(),
        deadlines: VecDeque::new(),
        hellos_out: std::array::from_fn(|t| {
            VecDeque::with_capacity(if t == 0 { w.sessions as usize } else { 0 })
        }),
        hello_timeout_ticks: std::array::from_fn(|t| {
            (hello_timeout(t as u8 + 1).as_secs_f64() * hz) as u64
        }),
        hellos_again: VecDeque::new(),
        timeout_ticks: (w.timeout.as_secs_f64() * hz) as u64,
        key: String::new(),
        value: vec![b'v'; w.value_size],
    };
    let mut rx = Burst::new();
    let tsc = sluice::clock::tsc;

    // Handshakes, paced; HELLOs unanswered in their timeout (200 ms, then doubling) are sent
    // again, within the same pace (a burst of them would overflow the queues that lost the
    // first ones).
    let handshake_start = Instant::now();
    let interval = hz / w.handshake_rate;
    let started = tsc();
    let mut next = 0u32;
    let mut paced = 0u64;
    // Time for every HELLO, and for the last ones to be sent again, all their tries.
    // (In TSC ticks: the loop reads no other clock.)
    let every_try: Duration = (1..=HELLO_TRIES).map(hello_timeout).sum();
    let deadline = started
        + ((f64::from(w.sessions) / w.handshake_rate + every_try.as_secs_f64() + 1.0) * hz) as u64;
    loop {
        let now = tsc();
        if c.counts.welcomes == u64::from(w.sessions) || now >= deadline || stop.is_stopped() {
            break;
        }
        while (now - started) as f64 >= paced as f64 * interval && c.out.spare() > 0 {
            let i = match c.hellos_again.pop_front() {
                // Answered (or given up) since it was queued: nothing to send again.
                Some((i, queued))
                    if !matches!(c.sessions[i as usize].state,
                                 State::Hello { tries, .. } if tries == queued) =>
                {
                    continue
                }
                Some((i, _)) => {
                    c.counts.hellos_again += 1;
                    i
                }
                None if next < w.sessions => {
                    next += 1;
                    next - 1
                }
                None => break,
            };
            c.hello(i, None, now);
            paced += 1;
        }
        c.flush();
        c.receive(&mut rx);
        c.hellos_timed_out(now);
    }
    let handshake_time = handshake_start.elapsed();
    let open: Vec<u32> = (0..w.sessions)
        .filter(|&i| c.sessions[i as usize].state == State::Open)
        .collect();
    println!(
        "kv: {} of {} sessions open in {:.2} s ({:.0} handshakes/s), {} HELLOs sent again, {} found no room to go at first",
        open.len(),
        w.sessions,
        handshake_time.as_secs_f64(),
        open.len() as f64 / handshake_time.as_secs_f64().max(1e-9),
        c.counts.hellos_again,
        c.counts.hellos_not_sent
    );
    if open.is_empty() {
        return Err("no session opened: is sluice-kv answering on --server?".into());
    }

    // Requests, open loop: each has its scheduled time, whatever the answers do. The
    // protocol allows one request on its way per session: when every session has one, the
    // request due waits for the first to be free, and its latency counts the wait.
    c.idle.extend(open.iter().copied());
    c.deadlines.reserve(open.len());
    let keys = Keys::new(w.keys, w.key_dist);
    let interval = hz / w.rate;
    let wall = Instant::now();
    let mut scheduled = tsc() as f64;
    let end = duration.map(|d| scheduled as u64 + (d.as_secs_f64() * hz) as u64);
    let mut issued = 0u64;
    // The flood draws from a generator of its own: the same seed sends the same requests
    // with or without it.
    let mut flood_rng = Rng::new(seed ^ u64::from_be_bytes(*b"\0\0\0flood"));
    let flood_interval = hz / w.flood;
    let mut flood_at = scheduled;
    let pause = second / 10_000;
    let mut last_round = tsc();
    loop {
        let now = tsc();
        if now - last_round > pause {
            c.counts.pauses += 1;
            c.counts.pause_ticks += now - last_round;
        }
        last_round = now;
        if stop.is_stopped()
            || end.is_some_and(|end| now >= end)
            || count.is_some_and(|n| issued >= n)
        {
            break;
        }
        while (scheduled as u64) <= now && c.out.spare() > 0 && count.is_none_or(|n| issued < n) {
            let Some(i) = c.idle.pop_front() else {
                break;
            };
            if c.sessions[i as usize].state != State::Open {
                continue;
            }
            c.request(i, scheduled as u64, now, &keys, &mut rng);
            issued += 1;
            scheduled += if w.poisson {
                -interval * (1.0 - rng.unit()).ln()
            } else {
                interval
            };
        }
        if w.flood > 0.0 {
            // Behind by more than 10 ms (descheduled), the flood skips what it missed
            // rather than send it in one burst.
            flood_at = flood_at.max(now as f64 - hz / 100.0);
            while flood_at <= now as f64 && c.out.spare() > 0 {
                c.spoofed_hello(&mut flood_rng);
                flood_at += flood_interval;
            }
        }
        c.flush();
        c.receive(&mut rx);
        c.expire(now);
    }
    let sending = wall.elapsed();
    let drained = Instant::now();
    while drained.elapsed() < drain.max(w.timeout.min(Duration::from_secs(5))) {
        let now = tsc();
        // Requests the device had no room for when the sending ended are still queued: they
        // go now (dropping them would count them as timeouts the appliance never saw).
        c.flush();
        c.receive(&mut rx);
        c.expire(now);
        if c.counts.in_flight == 0 {
            break;
        }
    }
    // What is still on its way after the drain is a timeout too.
    c.counts.timeouts += c.counts.in_flight;
    let json = report(&c, w, open.len(), handshake_time, sending);
    println!("{}", summary(&json));
    Ok(json)
}

fn report(
    c: &Clients,
    w: &KvWorkload,
    open: usize,
    handshake_time: Duration,
    sending: Duration,
) -> Value {
    let k = &c.counts;
    let secs = sending.as_secs_f64().max(1e-9);
    let us = |q: f64| c.latency.value_at_quantile(q) as f64 / 1e3;
    let latency = if c.latency.is_empty() {
        Value::Null
    } else {
        json!({
            "samples": c.latency.len(), "min": c.latency.min() as f64 / 1e3, "p50": us(0.5),
            "p90": us(0.9), "p99": us(0.99), "p99_9": us(0.999),
            "max": c.latency.max() as f64 / 1e3, "mean": c.latency.mean() / 1e3,
        })
    };
    json!({
        "workload": "kv",
        "server": w.server.to_string(),
        "protocol_version": VERSION,
        "sessions": {
            "asked": w.sessions, "open": open,
            "seconds": handshake_time.as_secs_f64(),
            "per_second": open as f64 / handshake_time.as_secs_f64().max(1e-9),
            "hellos": k.hellos, "hellos_again": k.hellos_again, "hellos_not_sent": k.hellos_not_sent,
            "retries": k.retries,
            "late_answers": k.late_handshakes,
        },
        "requests": {
            "seconds": secs,
            "asked_per_second": w.rate,
            "sent": k.sent, "sent_per_second": k.sent as f64 / secs,
            "answered": k.answered, "answered_per_second": k.answered as f64 / secs,
            "get": k.gets, "put": k.puts, "not_sent": k.not_sent,
            "timeouts": k.timeouts, "unmatched": k.unmatched,
        },
        "results": STATUSES.iter().zip(k.statuses).map(|(n, v)| (n.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>(),
        "errors": ERRORS.iter().zip(k.errors).filter(|(_, v)| *v > 0)
            .map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "flood": {
            "asked_per_second": w.flood,
            "sent": k.flood_sent, "sent_per_second": k.flood_sent as f64 / secs,
            "answers": k.flood_answers,
            "bytes_sent": k.flood_bytes_sent, "bytes_answered": k.flood_bytes_answered,
        },
        "foreign_rx": k.foreign,
        "generator_pauses": {
            "over_100us": k.pauses,
            "ms": k.pause_ticks as f64 * 1e3 / c.link.tsc_hz as f64,
        },
        "latency_us": latency,
    })
}

/// The run in a few lines.
fn summary(j: &Value) -> String {
    let r = &j["requests"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kv summary: {:.3} s of requests at {} a second asked",
        r["seconds"].as_f64().unwrap_or(0.0),
        r["asked_per_second"]
    );
    let _ = writeln!(
        out,
        "  sent {} ({:.0}/s: {} GET, {} PUT), answered {} ({:.0}/s), timeouts {}, not sent {}",
        r["sent"],
        r["sent_per_second"].as_f64().unwrap_or(0.0),
        r["get"],
        r["put"],
        r["answered"],
        r["answered_per_second"].as_f64().unwrap_or(0.0),
        r["timeouts"],
        r["not_sent"]
    );
    let f = &j["flood"];
    if f["asked_per_second"].as_f64().unwrap_or(0.0) > 0.0 {
        let _ = writeln!(
            out,
            "  flood: {} spoofed HELLOs ({:.0}/s), {} answered to their sources, {} bytes back for {} sent",
            f["sent"],
            f["sent_per_second"].as_f64().unwrap_or(0.0),
            f["answers"],
            f["bytes_answered"],
            f["bytes_sent"]
        );
    }
    let _ = writeln!(out, "  results: {}", j["results"]);
    let _ = writeln!(out, "  errors: {}", j["errors"]);
    let p = &j["generator_pauses"];
    let _ = writeln!(
        out,
        "  pktgen itself paused {} times over 100 us, {:.1} ms in all (requests due then wait)",
        p["over_100us"],
        p["ms"].as_f64().unwrap_or(0.0)
    );
    let l = &j["latency_us"];
    let _ = write!(
        out,
        "  latency us, from each request's scheduled time: min {:.1} p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
        l["min"].as_f64().unwrap_or(0.0),
        l["p50"].as_f64().unwrap_or(0.0),
        l["p90"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["p99_9"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_keys_favour_the_first_and_uniform_keys_spread() {
        let mut rng = Rng::new(1);
        let zipf = Keys::new(1000, KeyDist::Zipf(0.99));
        let draws: Vec<u64> = (0..100_000).map(|_| zipf.draw(&mut rng)).collect();
        let first = draws.iter().filter(|&&k| k == 0).count() as f64 / 1e5;
        // 1 / H(1000, 0.99): about 0.13.
        assert!((0.11..0.15).contains(&first), "{first}");
        assert!(draws.iter().all(|&k| k < 1000));
        let uniform = Keys::new(10, KeyDist::Uniform);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[uniform.draw(&mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
