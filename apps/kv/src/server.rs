//! The protocol's server side for one worker, as docs/protocol.md specifies it: the
//! handshake (no state before a valid cookie), sessions bound to an address, at-most-once
//! requests with the last response kept, CLOSE, idle timeouts, and the store. It knows no
//! packets or sockets: [`Server::handle`] takes a UDP payload and its sender and writes the
//! answer, if any, so that the appliance's stage and tests over kernel sockets drive the
//! same code.

use crate::cookie::Secrets;
use crate::protocol::{
    self as kv, ErrorCode, ErrorMessage, Kind, Message, Op, Operation, Refusal, Request,
    ResponseWriter, Status, Welcome, NONCE_LEN,
};
use crate::store::{Put, Store};
use siphasher::sip::SipHasher24;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

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
}

/// What became of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with the first `n` bytes of the output buffer.
    Reply(usize),
    Silent(Silent),
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
    /// ERRORs sent, by code (index = code).
    pub errors: [u64; 8],
    pub silent: u64,
}

/// Session ids are 64 random bits already (SipHash of a counter under a secret key): they
/// index the session table as they are, with no second hash. A client's made-up ids cannot
/// lengthen probes, which depend only on the ids the server chose.
#[derive(Default)]
struct SessionIdHasher(u64);

impl Hasher for SessionIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

type Sessions = HashMap<u64, Session, BuildHasherDefault<SessionIdHasher>>;

struct Session {
    client: SocketAddr,
    nonce: [u8; NONCE_LEN],
    /// The last request id executed (0: none yet) and its response.
    last_id: u64,
    kept: Vec<u8>,
    /// When the last valid request came, in the caller's seconds.
    active: u64,
}

pub struct Server {
    secrets: Secrets,
    limits: Limits,
    sessions: Sessions,
    /// Open sessions by client address and handshake nonce, to answer a repeated HELLO
    /// (whose WELCOME was lost) with the same session.
    by_handshake: HashMap<(SocketAddr, [u8; NONCE_LEN]), u64>,
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
        Server {
            secrets: Secrets::new(epoch, secret),
            limits,
            sessions: Sessions::default(),
            by_handshake: HashMap::new(),
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

    /// Ends the sessions idle for the idle timeout at `now` (seconds); returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let timeout = u64::from(self.limits.idle_timeout_secs);
        let before = self.sessions.len();
        let by_handshake = &mut self.by_handshake;
        self.sessions.retain(|_, s| {
            let keep = now.saturating_sub(s.active) < timeout;
            if !keep {
                by_handshake.remove(&(s.client, s.nonce));
            }
            keep
        });
        let expired = before - self.sessions.len();
        self.counters.expired += expired as u64;
        expired
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
        let session = match self.by_handshake.get(&(from, nonce)) {
            Some(&id) => id,
            None => {
                if self.sessions.len() >= self.limits.sessions_max {
                    return self.error(ErrorCode::Busy, Kind::Hello, 1, out);
                }
                let id = self.new_session_id();
                self.sessions.insert(
                    id,
                    Session {
                        client: from,
                        nonce,
                        last_id: 0,
                        kept: Vec::new(),
                        active: now,
                    },
                );
                self.by_handshake.insert((from, nonce), id);
                id
            }
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

    fn new_session_id(&mut self) -> u64 {
        loop {
            self.next_id += 1;
            let mut h = SipHasher24::new_with_key(&self.id_key);
            h.write(&self.next_id.to_be_bytes());
            let id = h.finish();
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn request(
        &mut self,
        request: &Request<'_>,
        from: SocketAddr,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        // One lookup; the session is borrowed beside the store and the counters.
        let refusal = match self.sessions.get_mut(&request.session) {
            None => ErrorCode::UnknownSession,
            Some(session) if session.client != from => ErrorCode::WrongAddress,
            Some(session) if request.id == session.last_id && session.last_id != 0 => {
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
                    let n = execute(
                        &mut self.store,
                        &mut self.counters,
                        &ops,
                        ResponseWriter::new(
                            out,
                            self.limits.max_payload,
                            request.session,
                            request.id,
                            ops.len() as u8,
                        )
                        .expect("room for every result header"),
                    );
                    session.last_id = request.id;
                    session.active = now;
                    session.kept.clear();
                    session.kept.extend_from_slice(&out[..n]);
                    return Outcome::Reply(n);
                }
            },
        };
        self.error(refusal, Kind::Request, 0, out)
    }

    fn close(&mut self, id: u64, last: u64, from: SocketAddr, out: &mut [u8]) -> Outcome {
        let Some(session) = self.sessions.get(&id) else {
            return self.error(ErrorCode::UnknownSession, Kind::Close, 0, out);
        };
        if session.client != from {
            return self.error(ErrorCode::WrongAddress, Kind::Close, 0, out);
        }
        let session = self.sessions.remove(&id).expect("looked up");
        self.by_handshake.remove(&(session.client, session.nonce));
        self.counters.closed += 1;
        let n = Message::Closed { session: id, last }
            .emit(out)
            .expect("room for a CLOSED");
        Outcome::Reply(n)
    }
}

/// Runs a request's operations in order into `response`; returns its length.
fn execute(
    store: &mut Store,
    counters: &mut Counters,
    ops: &[Op<'_>],
    mut response: ResponseWriter<'_>,
) -> usize {
    for op in ops {
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
    response.finish()
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
            Outcome::Silent(why) => panic!("no answer: {why:?}"),
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
        assert_eq!(s.expire(29), 0);
        assert_eq!(s.expire(30), 2);
        assert_eq!(s.sessions(), 0);
        assert!(matches!(
            Message::parse(&ask(&mut s, &hello, client(), 30)),
            Ok(Message::Welcome(_))
        ));
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
