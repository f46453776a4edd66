//! The protocol's server side for one worker, as docs/protocol.md specifies it: the
//! handshake (no state before a valid cookie), sessions bound to an address, at-most-once
//! requests with the last response kept, CLOSE, idle timeouts, and the store. It knows no
//! packets or sockets: [`Server::handle`] takes a UDP payload and its sender and writes the
//! answer, if any, so that the appliance's stage and tests over kernel sockets drive the
//! same code.

use crate::cookie::Secrets;
use crate::protocol::{
    self as kv, ErrorCode, ErrorMessage, Kind, Message, Op, Operation, Ops, Refusal, Request,
    ResponseWriter, Status, Welcome, NONCE_LEN,
};
use crate::sessions::{Session, Sessions};
use crate::store::{Put, Store};
use siphasher::sip::{SipHasher13, SipHasher24};
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

/// A server's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub sessions_max: usize,
    pub idle_timeout_secs: u16,
    /// The largest UDP payload to send (1,472 over IPv4, 1,452 over IPv6).
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions_max: 100_000,
            idle_timeout_secs: 30,
            max_payload: kv::MAX_PAYLOAD_V6,
        }
    }
}

/// Why a datagram got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Silent {
    /// Not this protocol.
    NotOurs,
    /// Malformed, or a version mismatch too short to answer without amplification.
    Malformed,
    /// A message only a server sends (RETRY, WELCOME, RESPONSE, CLOSED, ERROR).
    WrongDirection,
    /// A request sent again while the workers owning its keys still execute it: the
    /// answer to the first is on its way.
    InFlight,
    /// A response finished for a session that ended meanwhile.
    SessionGone,
}

/// What became of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with the first `n` bytes of the output buffer.
    Reply(usize),
    Silent(Silent),
    /// A request for a session of another worker: hand the datagram, unchanged, to that
    /// worker (whose [`Server::handle`] takes it as if it had come there).
    Forward(u16),
    /// The next operation's key belongs to `worker`: hand it the request with the response
    /// so far, the first `partial` bytes of the output buffer ([`Handed::Execute`]).
    Execute {
        worker: u16,
        partial: usize,
    },
    /// The response is whole, the first `len` bytes of the output buffer: hand it to the
    /// session's worker, which keeps it and answers ([`Handed::Done`]).
    Done {
        worker: u16,
        len: usize,
    },
}

/// What a worker hands another, to go on with a request.
#[derive(Clone, Copy, Debug)]
pub enum Handed<'a> {
    /// A request whose session's worker checked it, and its response so far.
    Execute {
        request: &'a [u8],
        partial: &'a [u8],
    },
    /// A whole response, for the session's worker to keep and send.
    Done { response: &'a [u8] },
}

/// Which worker owns what, when several share the service: sessions by their id (each
/// worker chooses ids that name it), keys by a keyed hash. One worker owns everything.
#[derive(Clone, Copy, Debug)]
pub struct Shard {
    pub worker: u16,
    pub workers: u16,
    /// The key of the keys' hash, the same on every worker (random, so that a client cannot
    /// choose keys that all land on one worker).
    pub key: [u8; 16],
}

impl Shard {
    /// The only worker.
    pub const ALONE: Shard = Shard {
        worker: 0,
        workers: 1,
        key: [0; 16],
    };

    pub fn owner_of_key(&self, key: &[u8]) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write(key);
        (h.finish() % u64::from(self.workers)) as u16
    }

    pub fn owner_of_session(&self, id: u64) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        (id % u64::from(self.workers)) as u16
    }

    /// The worker that executes `op`: its key's owner, or (for an operation refused as
    /// BAD_OP, which touches no key) whoever comes to it.
    fn owner_of_op(&self, op: &Op<'_>) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        match op.check() {
            Some(_) => self.owner_of_key(op.key),
            None => self.worker,
        }
    }
}

/// What a server has done, for the live line, telemetry and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub retries: u64,
    pub welcomes: u64,
    pub gets: u64,
    pub puts: u64,
    pub dels: u64,
    pub bad_ops: u64,
    pub truncated: u64,
    /// Requests answered from the kept response (retransmissions).
    pub replayed: u64,
    pub evictions: u64,
    pub closed: u64,
    pub expired: u64,
    /// Requests and responses handed to another worker.
    pub handoffs: u64,
    /// ERRORs sent, by code (index = code).
    pub errors: [u64; 8],
    pub silent: u64,
}

impl std::ops::AddAssign for Counters {
    /// Several workers' counters, summed.
    fn add_assign(&mut self, o: Counters) {
        let Counters {
            retries,
            welcomes,
            gets,
            puts,
            dels,
            bad_ops,
            truncated,
            replayed,
            evictions,
            closed,
            expired,
            handoffs,
            errors,
            silent,
        } = o;
        self.retries += retries;
        self.welcomes += welcomes;
        self.gets += gets;
        self.puts += puts;
        self.dels += dels;
        self.bad_ops += bad_ops;
        self.truncated += truncated;
        self.replayed += replayed;
        self.evictions += evictions;
        self.closed += closed;
        self.expired += expired;
        self.handoffs += handoffs;
        self.silent += silent;
        for (sum, n) in self.errors.iter_mut().zip(errors) {
            *sum += n;
        }
    }
}

/// A client's address and handshake nonce as one run of bytes: hashed in one write, where
/// the tuple `(SocketAddr, [u8; 16])` took six (each with its own length or tag), about
/// 500 instructions a hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct HandshakeKey([u8; 1 + 16 + 2 + NONCE_LEN]);

impl HandshakeKey {
    fn new(from: SocketAddr, nonce: &[u8; NONCE_LEN]) -> HandshakeKey {
        let mut key = [0u8; 1 + 16 + 2 + NONCE_LEN];
        let (family, ip) = match from.ip() {
            IpAddr::V4(ip) => (4, ip.to_ipv6_mapped()),
            IpAddr::V6(ip) => (6, ip),
        };
        key[0] = family;
        key[1..17].copy_from_slice(&ip.octets());
        key[17..19].copy_from_slice(&from.port().to_be_bytes());
        key[19..].copy_from_slice(nonce);
        HandshakeKey(key)
    }
}

pub struct Server {
    secrets: Secrets,
    limits: Limits,
    sessions: Sessions,
    shard: Shard,
    /// Open sessions by client address and handshake nonce, to answer a repeated HELLO
    /// (whose WELCOME was lost) with the same session.
    by_handshake: HashMap<HandshakeKey, u64>,
    /// When each session may next be idle for the timeout, earliest first: (seconds, id).
    /// Requests only move a session's `active`; its entry is looked at when due and pushed
    /// again if the session was active since, so that expiry visits each session about once
    /// per timeout instead of scanning the whole table (a pause of the worker that grew with
    /// the sessions). Entries of closed sessions stay until due.
    deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    store: Store,
    /// Session ids come from SipHash under this key over a counter: unpredictable without
    /// the key.
    id_key: [u8; 16],
    next_id: u64,
    counters: Counters,
}

impl Server {
    /// A server whose cookies start in `epoch` with `secret`, whose session ids come from
    /// `id_key`, over `store`. The keys must be random (e.g. from /dev/urandom).
    pub fn new(
        epoch: u32,
        secret: [u8; 16],
        id_key: [u8; 16],
        store: Store,
        limits: Limits,
    ) -> Server {
        Server::sharded(epoch, secret, id_key, store, limits, Shard::ALONE)
    }

    /// One of several workers' servers: each has its own sessions, limits and part of the
    /// keys; all share the cookie secret (any worker may finish a handshake) and `shard.key`.
    pub fn sharded(
        epoch: u32,
        secret: [u8; 16],
        id_key: [u8; 16],
        store: Store,
        limits: Limits,
        shard: Shard,
    ) -> Server {
        Server {
            secrets: Secrets::new(epoch, secret),
            shard,
            limits,
            // Sized for the limit at start: a table that grew under a flood of handshakes
            // would stop the worker while it moved every entry to a larger one.
            sessions: Sessions::new(limits.sessions_max, shard.worker, shard.workers),
            by_handshake: HashMap::with_capacity(limits.sessions_max),
            deadlines: BinaryHeap::with_capacity(limits.sessions_max),
            store,
            id_key,
            next_id: 0,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Empties the store (sessions stay open).
    pub fn flush(&mut self) {
        self.store.clear();
    }

    /// The cookies' current epoch.
    pub fn epoch(&self) -> u32 {
        self.secrets.epoch()
    }

    /// Moves the cookies on to `epoch` with a fresh secret (call as each epoch starts).
    pub fn rotate(&mut self, epoch: u32, fresh: [u8; 16]) {
        self.secrets.rotate(epoch, fresh);
    }

    /// Ends the sessions idle for the idle timeout at `now` (seconds), looking at no more
    /// than `budget` due entries so that one call's work is bounded; returns how many ended.
    /// Call it often enough for the budget to keep up (the stage: every 10 ms).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let timeout = u64::from(self.limits.idle_timeout_secs);
        let mut ended = 0;
        for _ in 0..budget {
            match self.deadlines.peek() {
                Some(&Reverse((due, _))) if due <= now => {}
                _ => break,
            }
            let Some(Reverse((_, id))) = self.deadlines.pop() else {
                break;
            };
            let Some(session) = self.sessions.get(id) else {
                continue; // closed, or ended already
            };
            let due = session.active.saturating_add(timeout);
            if due > now {
                self.deadlines.push(Reverse((due, id)));
                continue;
            }
            let session = self.sessions.remove(id).expect("looked up");
            self.by_handshake
                .remove(&HandshakeKey::new(session.client, &session.nonce));
            ended += 1;
        }
        // Closed sessions leave their entries behind: past twice the live sessions, the
        // heap is rebuilt from them, so that open-and-close churn cannot grow it unbounded.
        if self.deadlines.len() > 2 * self.sessions.len() + 1024 {
            self.deadlines = self
                .sessions
                .iter()
                .map(|(id, s)| Reverse((s.active.saturating_add(timeout), id)))
                .collect();
        }
        self.counters.expired += ended as u64;
        ended
    }

    /// Asks for the lines that [`Server::handle`] of `datagram` will read first: for a
    /// request for one of this worker's sessions, the session's slot and the store's index
    /// where the keys this worker owns are. For a burst, ahead of handling it, so that the
    /// misses overlap.
    pub fn prefetch(&self, datagram: &[u8]) {
        let Ok(Message::Request(request)) = Message::parse(datagram) else {
            return;
        };
        if self.shard.owner_of_session(request.session) != self.shard.worker {
            return;
        }
        self.sessions.prefetch(request.session);
        let Ok(ops) = request.operations() else {
            return;
        };
        for op in ops.iter() {
            if self.shard.owner_of_key(op.key) == self.shard.worker {
                self.store.prefetch(op.key);
            }
        }
    }

    /// Handles one datagram from `from` at `now` (seconds), writing any answer into `out`
    /// (at least [`Limits::max_payload`] bytes).
    pub fn handle(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        let outcome = self.answer(datagram, from, now, out);
        self.count_handoff(outcome)
    }

    fn count_handoff(&mut self, outcome: Outcome) -> Outcome {
        if let Outcome::Forward(_) | Outcome::Execute { .. } | Outcome::Done { .. } = outcome {
            self.counters.handoffs += 1;
        }
        outcome
    }

    fn answer(&mut self, datagram: &[u8], from: SocketAddr, now: u64, out: &mut [u8]) -> Outcome {
        let message = match Message::parse(datagram) {
            Ok(m) => m,
            Err(Refusal::Version(_)) => {
                return match kv::version_error(datagram, out) {
                    Some(n) => {
                        self.counters.errors[ErrorCode::Version as usize] += 1;
                        Outcome::Reply(n)
                    }
                    None => self.silent(Silent::Malformed),
                };
            }
            Err(Refusal::NotOurs) => return self.silent(Silent::NotOurs),
            Err(Refusal::Malformed) => return self.silent(Silent::Malformed),
        };
        match message {
            Message::Hello { nonce, cookie } => self.hello(nonce, cookie, from, now, out),
            Message::Request(request) => self.request(&request, from, now, out),
            Message::Close { session, last } => self.close(session, last, from, out),
            _ => self.silent(Silent::WrongDirection),
        }
    }

    fn silent(&mut self, why: Silent) -> Outcome {
        self.counters.silent += 1;
        Outcome::Silent(why)
    }

    fn error(&mut self, code: ErrorCode, refused: Kind, detail: u32, out: &mut [u8]) -> Outcome {
        self.counters.errors[code as usize] += 1;
        let n = Message::Error(ErrorMessage {
            code,
            refused: refused as u16,
            detail,
        })
        .emit(out)
        .expect("room for an ERROR");
        Outcome::Reply(n)
    }

    fn hello(
        &mut self,
        nonce: [u8; NONCE_LEN],
        cookie: Option<kv::Cookie>,
        from: SocketAddr,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        let Some(cookie) = cookie else {
            self.counters.retries += 1;
            let cookie = self.secrets.make(from, &nonce);
            let n = Message::Retry { nonce, cookie }
                .emit(out)
                .expect("room for a RETRY");
            return Outcome::Reply(n);
        };
        if !self.secrets.check(&cookie, from, &nonce) {
            return self.error(ErrorCode::BadCookie, Kind::Hello, 0, out);
        }
        // One hash of the key, for the lookup and the insert both.
        let opened = match self.by_handshake.entry(HandshakeKey::new(from, &nonce)) {
            Entry::Occupied(known) => Some(*known.get()),
            Entry::Vacant(slot) => {
                let session = Session {
                    client: from,
                    nonce,
                    last_id: 0,
                    kept: Vec::new(),
                    active: now,
                };
                let (id_key, next_id) = (&self.id_key, &mut self.next_id);
                let id = self.sessions.insert(session, || {
                    // Unpredictable without the key: SipHash of a counter.
                    *next_id += 1;
                    let mut h = SipHasher24::new_with_key(id_key);
                    h.write(&next_id.to_be_bytes());
                    h.finish()
                });
                if let Some(id) = id {
                    slot.insert(id);
                    let timeout = u64::from(self.limits.idle_timeout_secs);
                    self.deadlines
                        .push(Reverse((now.saturating_add(timeout), id)));
                }
                id
            }
        };
        let Some(session) = opened else {
            return self.error(ErrorCode::Busy, Kind::Hello, 1, out);
        };
        self.counters.welcomes += 1;
        let n = Message::Welcome(Welcome {
            nonce,
            session,
            idle_timeout_secs: self.limits.idle_timeout_secs,
            max_ops: kv::MAX_OPS as u8,
            max_request: self.limits.max_payload as u32,
        })
        .emit(out)
        .expect("room for a WELCOME");
        Outcome::Reply(n)
    }

    fn request(
        &mut self,
        request: &Request<'_>,
        from: SocketAddr,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        let owner = self.shard.owner_of_session(request.session);
        if owner != self.shard.worker {
            return Outcome::Forward(owner);
        }
        // One lookup; the session is borrowed beside the store and the counters.
        let refusal = match self.sessions.get_mut(request.session) {
            None => ErrorCode::UnknownSession,
            Some(session) if session.client != from => ErrorCode::WrongAddress,
            Some(session) if request.id == session.last_id && session.last_id != 0 => {
                if session.kept.is_empty() {
                    // Still with the workers that own its keys: the answer is coming.
                    return self.silent(Silent::InFlight);
                }
                self.counters.replayed += 1;
                session.active = now;
                let n = session.kept.len();
                out[..n].copy_from_slice(&session.kept);
                return Outcome::Reply(n);
            }
            Some(session) if Some(request.id) != session.last_id.checked_add(1) => {
                ErrorCode::StaleRequest
            }
            Some(session) => match request.operations() {
                Err(_) => ErrorCode::Malformed,
                Ok(ops) => {
                    let response = ResponseWriter::new(
                        out,
                        self.limits.max_payload,
                        request.session,
                        request.id,
                        ops.len() as u8,
                    )
                    .expect("room for every result header");
                    session.last_id = request.id;
                    session.active = now;
                    session.kept.clear();
                    return match execute(
                        &mut self.store,
                        &mut self.counters,
                        &self.shard,
                        &ops,
                        response,
                    ) {
                        Step::Whole(n) => {
                            session.kept.extend_from_slice(&out[..n]);
                            Outcome::Reply(n)
                        }
                        Step::Next { worker, partial } => Outcome::Execute { worker, partial },
                    };
                }
            },
        };
        self.error(refusal, Kind::Request, 0, out)
    }

    /// Goes on with what another worker handed over, writing into `out` as
    /// [`Server::handle`] does.
    pub fn handed(&mut self, handed: Handed<'_>, now: u64, out: &mut [u8]) -> Outcome {
        let outcome = self.go_on(handed, now, out);
        self.count_handoff(outcome)
    }

    fn go_on(&mut self, handed: Handed<'_>, now: u64, out: &mut [u8]) -> Outcome {
        match handed {
            Handed::Execute { request, partial } => {
                let Ok(Message::Request(request)) = Message::parse(request) else {
                    return self.silent(Silent::Malformed);
                };
                let Ok(ops) = request.operations() else {
                    return self.silent(Silent::Malformed);
                };
                let Some(out_partial) = out.get_mut(..partial.len()) else {
                    return self.silent(Silent::Malformed);
                };
                out_partial.copy_from_slice(partial);
                let Ok(response) =
                    ResponseWriter::resume(out, self.limits.max_payload, partial.len())
                else {
                    return self.silent(Silent::Malformed);
                };
                match execute(
                    &mut self.store,
                    &mut self.counters,
                    &self.shard,
                    &ops,
                    response,
                ) {
                    Step::Whole(len) => self.finish(request.session, len, now, out),
                    Step::Next { worker, partial } => Outcome::Execute { worker, partial },
                }
            }
            Handed::Done { response } => {
                let Some(out_response) = out.get_mut(..response.len()) else {
                    return self.silent(Silent::Malformed);
                };
                out_response.copy_from_slice(response);
                let Ok(Message::Response(r)) = Message::parse(response) else {
                    return self.silent(Silent::Malformed);
                };
                self.finish(r.session, response.len(), now, out)
            }
        }
    }

    /// Finishes the response so far, `out[..partial]`, with the operations still to run
    /// answered TRUNCATED (not executed), when it cannot travel on.
    pub fn give_up(&mut self, partial: usize, now: u64, out: &mut [u8]) -> Outcome {
        let Ok(response) = ResponseWriter::resume(out, self.limits.max_payload, partial) else {
            return self.silent(Silent::Malformed);
        };
        self.counters.truncated += u64::from(response.count() - response.written());
        let len = response.finish();
        let Ok(Message::Response(r)) = Message::parse(&out[..len]) else {
            return self.silent(Silent::Malformed);
        };
        let session = r.session;
        self.finish(session, len, now, out)
    }

    /// A whole response, `out[..len]`, for `session`: kept and sent if the session is this
    /// worker's, handed to its worker otherwise.
    fn finish(&mut self, session: u64, len: usize, now: u64, out: &[u8]) -> Outcome {
        let worker = self.shard.owner_of_session(session);
        if worker != self.shard.worker {
            return Outcome::Done { worker, len };
        }
        match self.sessions.get_mut(session) {
            Some(s) => {
                s.kept.clear();
                s.kept.extend_from_slice(&out[..len]);
                s.active = now;
                Outcome::Reply(len)
            }
            // Ended while its keys' workers executed it: the client is told so when it asks again.
            None => self.silent(Silent::SessionGone),
        }
    }

    fn close(&mut self, id: u64, last: u64, from: SocketAddr, out: &mut [u8]) -> Outcome {
        let Some(session) = self.sessions.get(id) else {
            return self.error(ErrorCode::UnknownSession, Kind::Close, 0, out);
        };
        if session.client != from {
            return self.error(ErrorCode::WrongAddress, Kind::Close, 0, out);
        }
        let session = self.sessions.remove(id).expect("looked up");
        self.by_handshake
            .remove(&HandshakeKey::new(session.client, &session.nonce));
        self.counters.closed += 1;
        let n = Message::Closed { session: id, last }
            .emit(out)
            .expect("room for a CLOSED");
        Outcome::Reply(n)
    }
}

/// How far a request's execution went.
enum Step {
    /// Every operation has its result: the response is `out[..n]`.
    Whole(usize),
    /// The next operation's key is `worker`'s; the response so far is `out[..partial]`.
    Next { worker: u16, partial: usize },
}

/// Runs a request's operations in order into `response`, from the first without a result,
/// as long as their keys are this worker's.
fn execute(
    store: &mut Store,
    counters: &mut Counters,
    shard: &Shard,
    ops: &Ops<'_>,
    mut response: ResponseWriter<'_>,
) -> Step {
    for op in ops.iter().skip(usize::from(response.written())) {
        let owner = shard.owner_of_op(&op);
        if owner != shard.worker {
            return Step::Next {
                worker: owner,
                partial: response.bytes_written(),
            };
        }
        let (status, value): (Status, &[u8]) = match op.check() {
            None => {
                counters.bad_ops += 1;
                (Status::BadOp, &[])
            }
            Some(Operation::Get(key)) => {
                counters.gets += 1;
                match store.get(key) {
                    Some(value) => (Status::Ok, value),
                    None => (Status::NotFound, &[]),
                }
            }
            Some(Operation::Put(key, value)) => {
                // A result without a value always fits (the writer keeps room).
                counters.puts += 1;
                match store.put(key, value) {
                    Put::Stored { evicted } => {
                        counters.evictions += u64::from(evicted);
                        (Status::Ok, &[])
                    }
                    Put::NoRoom => (Status::NoRoom, &[]),
                }
            }
            Some(Operation::Del(key)) => {
                counters.dels += 1;
                match store.del(key) {
                    true => (Status::Ok, &[]),
                    false => (Status::NotFound, &[]),
                }
            }
        };
        if !response.push(status, value) {
            // Only a GET's value can overflow, and a GET changes nothing: this one and the
            // rest are answered TRUNCATED, not executed.
            counters.truncated += u64::from(ops.len() as u8 - response.written());
            break;
        }
    }
    Step::Whole(response.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RequestWriter, MAX_PAYLOAD_V4};

    fn server(sessions_max: usize) -> Server {
        let limits = Limits {
            sessions_max,
            ..Limits::default()
        };
        Server::new(1000, [1; 16], [2; 16], Store::new(16, [3; 16]), limits)
    }

    fn client() -> SocketAddr {
        "192.0.2.7:40000".parse().unwrap()
    }

    /// Sends `bytes` from `from` at `now`; the answer's bytes.
    fn ask(s: &mut Server, bytes: &[u8], from: SocketAddr, now: u64) -> Vec<u8> {
        let mut out = [0u8; MAX_PAYLOAD_V4];
        match s.handle(bytes, from, now, &mut out) {
            Outcome::Reply(n) => out[..n].to_vec(),
            other => panic!("no answer: {other:?}"),
        }
    }

    fn emit(m: Message<'_>) -> Vec<u8> {
        let mut b = [0u8; MAX_PAYLOAD_V4];
        let n = m.emit(&mut b).unwrap();
        b[..n].to_vec()
    }

    fn error_code(answer: &[u8]) -> ErrorCode {
        match Message::parse(answer) {
            Ok(Message::Error(e)) => e.code,
            other => panic!("not an ERROR: {other:?}"),
        }
    }

    /// The whole handshake; returns the session id.
    fn open(s: &mut Server, from: SocketAddr, nonce: [u8; 16]) -> u64 {
        let hello = emit(Message::Hello {
            nonce,
            cookie: None,
        });
        let retry = ask(s, &hello, from, 0);
        let Ok(Message::Retry { cookie, .. }) = Message::parse(&retry) else {
            panic!("a RETRY")
        };
        let hello = emit(Message::Hello {
            nonce,
            cookie: Some(cookie),
        });
        let welcome = ask(s, &hello, from, 0);
        match Message::parse(&welcome) {
            Ok(Message::Welcome(w)) => w.session,
            other => panic!("not a WELCOME: {other:?}"),
        }
    }

    fn request(session: u64, id: u64, ops: &[Operation<'_>]) -> Vec<u8> {
        let mut b = [0u8; MAX_PAYLOAD_V4];
        let mut w = RequestWriter::new(&mut b, session, id).unwrap();
        for op in ops {
            w.push(*op).unwrap();
        }
        let n = w.finish();
        b[..n].to_vec()
    }

    fn results(answer: &[u8]) -> Vec<(Status, Vec<u8>)> {
        let Ok(Message::Response(r)) = Message::parse(answer) else {
            panic!("not a RESPONSE: {:?}", Message::parse(answer))
        };
        r.results()
            .unwrap()
            .into_iter()
            .map(|(s, v)| (s, v.to_vec()))
            .collect()
    }

    #[test]
    fn no_state_before_a_valid_cookie_and_no_answer_larger_than_its_question() {
        let mut s = server(10);
        let hello = emit(Message::Hello {
            nonce: [5; 16],
            cookie: None,
        });
        let retry = ask(&mut s, &hello, client(), 0);
        assert!(retry.len() < hello.len());
        assert_eq!(s.sessions(), 0);
        // The cookie is good only from its address.
        let Ok(Message::Retry { cookie, .. }) = Message::parse(&retry) else {
            panic!()
        };
        let second = emit(Message::Hello {
            nonce: [5; 16],
            cookie: Some(cookie),
        });
        let spoofed = ask(&mut s, &second, "192.0.2.99:40000".parse().unwrap(), 0);
        assert_eq!(error_code(&spoofed), ErrorCode::BadCookie);
        assert!(spoofed.len() < second.len());
        assert_eq!(s.sessions(), 0);
        // A lost WELCOME: the same HELLO again gets the same session.
        let a = ask(&mut s, &second, client(), 0);
        let b = ask(&mut s, &second, client(), 0);
        assert_eq!(a, b);
        assert_eq!(s.sessions(), 1);
        // Two epochs on, the cookie is refused.
        s.rotate(1001, [8; 16]);
        s.rotate(1002, [9; 16]);
        let third = emit(Message::Hello {
            nonce: [6; 16],
            cookie: Some(cookie),
        });
        assert_eq!(
            error_code(&ask(&mut s, &third, client(), 0)),
            ErrorCode::BadCookie
        );
    }

    #[test]
    fn put_get_del_and_a_retransmission_executed_once() {
        let mut s = server(10);
        let id = open(&mut s, client(), [1; 16]);
        let put = request(id, 1, &[Operation::Put(b"k", b"v1")]);
        assert_eq!(
            results(&ask(&mut s, &put, client(), 1)),
            [(Status::Ok, vec![])]
        );
        let get = request(id, 2, &[Operation::Get(b"k"), Operation::Get(b"nothing")]);
        let answer = ask(&mut s, &get, client(), 1);
        assert_eq!(
            results(&answer),
            [(Status::Ok, b"v1".to_vec()), (Status::NotFound, vec![])]
        );
        // The same request again: the kept answer, nothing executed.
        assert_eq!(ask(&mut s, &get, client(), 2), answer);
        assert_eq!((s.counters().gets, s.counters().replayed), (2, 1));
        // An old one, or one from the future: STALE_REQUEST.
        assert_eq!(
            error_code(&ask(&mut s, &put, client(), 2)),
            ErrorCode::StaleRequest
        );
        let skip = request(id, 9, &[Operation::Get(b"k")]);
        assert_eq!(
            error_code(&ask(&mut s, &skip, client(), 2)),
            ErrorCode::StaleRequest
        );
        let del = request(id, 3, &[Operation::Del(b"k"), Operation::Del(b"k")]);
        assert_eq!(
            results(&ask(&mut s, &del, client(), 2)),
            [(Status::Ok, vec![]), (Status::NotFound, vec![])]
        );
        // Another address may not use the session.
        let get = request(id, 4, &[Operation::Get(b"k")]);
        let elsewhere = "192.0.2.7:40001".parse().unwrap();
        assert_eq!(
            error_code(&ask(&mut s, &get, elsewhere, 2)),
            ErrorCode::WrongAddress
        );
        let close = emit(Message::Close {
            session: id,
            last: 3,
        });
        assert!(matches!(
            Message::parse(&ask(&mut s, &close, client(), 3)),
            Ok(Message::Closed { last: 3, .. })
        ));
        assert_eq!(
            error_code(&ask(&mut s, &get, client(), 3)),
            ErrorCode::UnknownSession
        );
    }

    #[test]
    fn sessions_are_capped_and_time_out() {
        let mut s = server(2);
        open(&mut s, client(), [1; 16]);
        open(&mut s, client(), [2; 16]);
        let hello = emit(Message::Hello {
            nonce: [3; 16],
            cookie: None,
        });
        let Ok(Message::Retry { cookie, .. }) = Message::parse(&ask(&mut s, &hello, client(), 0))
        else {
            panic!()
        };
        let hello = emit(Message::Hello {
            nonce: [3; 16],
            cookie: Some(cookie),
        });
        assert_eq!(
            error_code(&ask(&mut s, &hello, client(), 0)),
            ErrorCode::Busy
        );
        assert_eq!(s.expire(29, 100), 0);
        assert_eq!(s.expire(30, 1), 1, "the budget bounds one call's work");
        assert_eq!(s.expire(30, 100), 1);
        assert_eq!(s.sessions(), 0);
        assert!(matches!(
            Message::parse(&ask(&mut s, &hello, client(), 30)),
            Ok(Message::Welcome(_))
        ));
    }

    #[test]
    fn a_session_ends_a_timeout_after_its_last_request_and_a_closed_one_is_not_counted() {
        let mut s = server(10);
        let active = open(&mut s, client(), [1; 16]);
        let closed = open(&mut s, client(), [2; 16]);
        ask(
            &mut s,
            &request(active, 1, &[Operation::Get(b"k")]),
            client(),
            20,
        );
        let close = emit(Message::Close {
            session: closed,
            last: 0,
        });
        ask(&mut s, &close, client(), 21);
        assert_eq!(s.expire(30, 100), 0);
        assert_eq!(s.sessions(), 1);
        assert_eq!(s.expire(49, 100), 0);
        assert_eq!(s.expire(50, 100), 1);
        assert_eq!(s.sessions(), 0);
        assert_eq!(s.counters().expired, 1);
    }

    /// Two workers' servers, as sluice-kv builds them for two lcores.
    fn two_workers() -> [Server; 2] {
        [0u16, 1].map(|worker| {
            let shard = Shard {
                worker,
                workers: 2,
                key: [9; 16],
            };
            let id_key = [2 + worker as u8; 16];
            let store = Store::new(64, [3; 16]);
            Server::sharded(1000, [1; 16], id_key, store, Limits::default(), shard)
        })
    }

    /// Sends `bytes` to worker `at` and carries every handoff on, as the stage does; the
    /// answer, and how many handoffs it took.
    fn deliver(workers: &mut [Server; 2], at: u16, bytes: &[u8], now: u64) -> (Vec<u8>, u32) {
        let mut out = [0u8; MAX_PAYLOAD_V4];
        let mut outcome = workers[usize::from(at)].handle(bytes, client(), now, &mut out);
        for hops in 0.. {
            outcome = match outcome {
                Outcome::Reply(n) => return (out[..n].to_vec(), hops),
                Outcome::Silent(why) => panic!("no answer: {why:?}"),
                Outcome::Forward(w) => {
                    workers[usize::from(w)].handle(bytes, client(), now, &mut out)
                }
                Outcome::Execute { worker, partial } => {
                    let partial = out[..partial].to_vec();
                    let handed = Handed::Execute {
                        request: bytes,
                        partial: &partial,
                    };
                    workers[usize::from(worker)].handed(handed, now, &mut out)
                }
                Outcome::Done { worker, len } => {
                    let response = out[..len].to_vec();
                    let handed = Handed::Done {
                        response: &response,
                    };
                    workers[usize::from(worker)].handed(handed, now, &mut out)
                }
            };
        }
        unreachable!()
    }

    #[test]
    fn two_workers_each_own_sessions_and_keys_and_hand_requests_over() {
        let mut w = two_workers();
        let session = open(&mut w[1], client(), [1; 16]);
        assert_eq!(
            w[0].shard().owner_of_session(session),
            1,
            "the id names its worker"
        );
        let keys: Vec<String> = (0..16).map(|i| format!("key{i}")).collect();
        let mut handed = 0;
        for (i, key) in keys.iter().enumerate() {
            let put = request(
                session,
                i as u64 + 1,
                &[Operation::Put(key.as_bytes(), b"v")],
            );
            let (answer, hops) = deliver(&mut w, 1, &put, 0);
            assert_eq!(results(&answer), vec![(Status::Ok, vec![])]);
            handed += hops;
        }
        assert!(handed > 0, "some keys are worker 0's");
        assert_eq!(w[0].store().len() + w[1].store().len(), 16);
        assert!(!w[0].store().is_empty() && !w[1].store().is_empty());

        // A batch over both workers' keys, sent to the wrong worker: forwarded, executed
        // in order, its response kept by the session's worker.
        let ops: Vec<Operation<'_>> = keys[..8]
            .iter()
            .map(|k| Operation::Get(k.as_bytes()))
            .chain([Operation::Get(b"absent")])
            .collect();
        let batch = request(session, 17, &ops);
        let (answer, _) = deliver(&mut w, 0, &batch, 1);
        let mut expected = vec![(Status::Ok, b"v".to_vec()); 8];
        expected.push((Status::NotFound, vec![]));
        assert_eq!(results(&answer), expected);
        let gets = w[0].counters().gets + w[1].counters().gets;
        assert_eq!(gets, 9);

        // Sent again: the kept response, executed once.
        let (again, hops) = deliver(&mut w, 1, &batch, 2);
        assert_eq!((again, hops), (answer, 0));
        assert_eq!(w[0].counters().gets + w[1].counters().gets, gets);
        assert_eq!(w[1].counters().replayed, 1);
    }

    #[test]
    fn a_request_sent_again_while_other_workers_execute_it_gets_no_second_execution() {
        let mut w = two_workers();
        let session = open(&mut w[0], client(), [1; 16]);
        let key = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| w[0].shard().owner_of_key(k.as_bytes()) == 1)
            .unwrap();
        let put = request(session, 1, &[Operation::Put(key.as_bytes(), b"v")]);
        let mut out = [0u8; MAX_PAYLOAD_V4];
        let outcome = w[0].handle(&put, client(), 0, &mut out);
        assert!(
            matches!(outcome, Outcome::Execute { worker: 1, .. }),
            "{outcome:?}"
        );
        assert_eq!(
            w[0].handle(&put, client(), 0, &mut out),
            Outcome::Silent(Silent::InFlight)
        );
    }

    #[test]
    fn a_request_that_cannot_travel_on_is_finished_truncated_and_kept() {
        let mut w = two_workers();
        let session = open(&mut w[0], client(), [1; 16]);
        let owned_by = |w: &[Server; 2], owner: u16| {
            (0..)
                .map(|i| format!("k{i}"))
                .find(|k| w[0].shard().owner_of_key(k.as_bytes()) == owner)
                .unwrap()
        };
        let (mine, theirs) = (owned_by(&w, 0), owned_by(&w, 1));
        let ops = [
            Operation::Put(mine.as_bytes(), b"v"),
            Operation::Put(theirs.as_bytes(), b"v"),
        ];
        let put = request(session, 1, &ops);
        let mut out = [0u8; MAX_PAYLOAD_V4];
        let Outcome::Execute { worker: 1, partial } = w[0].handle(&put, client(), 0, &mut out)
        else {
            panic!("the second key is worker 1's")
        };
        // The stage found no room to carry it on: the first ran, the second is TRUNCATED.
        let Outcome::Reply(n) = w[0].give_up(partial, 0, &mut out) else {
            panic!("the session's worker answers")
        };
        let answer = out[..n].to_vec();
        assert_eq!(
            results(&answer),
            vec![(Status::Ok, vec![]), (Status::Truncated, vec![])]
        );
        assert_eq!(w[0].counters().truncated, 1);
        assert!(w[1].store().is_empty(), "nothing ran on worker 1");
        // Sent again, the kept answer.
        assert_eq!(ask(&mut w[0], &put, client(), 1), answer);
    }

    #[test]
    fn bad_operations_and_malformed_requests() {
        let mut s = server(10);
        let id = open(&mut s, client(), [1; 16]);
        let mut bad = request(id, 1, &[Operation::Get(b"k")]);
        bad[28] = 9; // unknown opcode
        assert_eq!(
            results(&ask(&mut s, &bad, client(), 0)),
            [(Status::BadOp, vec![])]
        );
        let mut cut = request(id, 2, &[Operation::Put(b"k", b"value")]);
        cut.truncate(cut.len() - 1);
        assert_eq!(
            error_code(&ask(&mut s, &cut, client(), 0)),
            ErrorCode::Malformed
        );
        // A malformed request uses no id: 2 is still the next.
        let get = request(id, 2, &[Operation::Get(b"k")]);
        assert_eq!(
            results(&ask(&mut s, &get, client(), 0)),
            [(Status::NotFound, vec![])]
        );
        let mut out = [0u8; MAX_PAYLOAD_V4];
        assert_eq!(
            s.handle(b"GET k", client(), 0, &mut out),
            Outcome::Silent(Silent::NotOurs)
        );
    }

    #[test]
    fn values_that_do_not_fit_one_response_are_truncated_not_executed() {
        let mut s = server(10);
        let id = open(&mut s, client(), [1; 16]);
        let big = [7u8; kv::MAX_VALUE_LEN];
        let puts = request(id, 1, &[Operation::Put(b"a", &big)]);
        ask(&mut s, &puts, client(), 0);
        let puts = request(id, 2, &[Operation::Put(b"b", &big)]);
        ask(&mut s, &puts, client(), 0);
        let gets = request(
            id,
            3,
            &[
                Operation::Get(b"a"),
                Operation::Get(b"b"),
                Operation::Del(b"a"),
            ],
        );
        let answer = ask(&mut s, &gets, client(), 0);
        assert!(answer.len() <= kv::MAX_PAYLOAD_V6);
        assert_eq!(
            results(&answer),
            [
                (Status::Ok, big.to_vec()),
                (Status::Truncated, vec![]),
                (Status::Truncated, vec![]),
            ]
        );
        assert!(
            s.store.get(b"a").is_some(),
            "the truncated DEL was not executed"
        );
    }
}
