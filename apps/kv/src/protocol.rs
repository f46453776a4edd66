//! The messages of the sluice-kv protocol (docs/protocol.md), parsed from and emitted into
//! UDP payloads without copying: [`Message::parse`] borrows the datagram, and a request's
//! operations and a response's results are read in place by iterators that check every
//! length against the datagram.

use std::fmt;

/// The first two bytes of every message: "SK".
pub const MAGIC: u16 = 0x534b;
pub const VERSION: u8 = 1;
/// The server's UDP port unless told otherwise.
pub const DEFAULT_PORT: u16 = 7000;

pub const HEADER_LEN: usize = 8;
pub const HELLO_LEN: usize = 64;
pub const RETRY_LEN: usize = 48;
pub const WELCOME_LEN: usize = 40;
/// A REQUEST's or RESPONSE's fixed part, before its operations or results.
pub const REQUEST_HEADER_LEN: usize = 28;
pub const CLOSE_LEN: usize = 24;
pub const ERROR_LEN: usize = 16;
/// An operation's or a result's fixed part, before its bytes.
pub const ITEM_HEADER_LEN: usize = 4;

pub const NONCE_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
pub const MAX_KEY_LEN: usize = 250;
pub const MAX_VALUE_LEN: usize = 1024;
pub const MAX_OPS: usize = 16;
/// The largest UDP payload either side sends: a 1,500-byte frame's, over IPv4 and IPv6.
pub const MAX_PAYLOAD_V4: usize = 1472;
pub const MAX_PAYLOAD_V6: usize = 1452;

// No amplification: the answers to messages not yet authenticated (RETRY to HELLO, ERROR to
// anything) are never larger than the smallest message that draws them.
const _: () = assert!(RETRY_LEN < HELLO_LEN);
const _: () = assert!(ERROR_LEN <= CLOSE_LEN && ERROR_LEN < REQUEST_HEADER_LEN + ITEM_HEADER_LEN);

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    // HELLO, RETRY, WELCOME
    pub const NONCE: Range<usize> = 8..24;
    pub const EPOCH: Range<usize> = 24..28;
    pub const MAC: Range<usize> = 28..44;
    pub const WELCOME_SESSION: Range<usize> = 24..32;
    pub const IDLE_TIMEOUT: Range<usize> = 32..34;
    pub const MAX_OPS: usize = 34;
    pub const MAX_REQUEST: Range<usize> = 36..40;
    // REQUEST, RESPONSE, CLOSE, CLOSED
    pub const SESSION: Range<usize> = 8..16;
    pub const REQUEST_ID: Range<usize> = 16..24;
    pub const COUNT: usize = 24;
    // ERROR
    pub const CODE: Range<usize> = 8..10;
    pub const REFUSED: Range<usize> = 10..12;
    pub const DETAIL: Range<usize> = 12..16;
}

/// The message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    Retry = 2,
    Welcome = 3,
    Request = 4,
    Response = 5,
    Close = 6,
    Closed = 7,
    Error = 8,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Retry,
            3 => Kind::Welcome,
            4 => Kind::Request,
            5 => Kind::Response,
            6 => Kind::Close,
            7 => Kind::Closed,
            8 => Kind::Error,
            _ => return None,
        })
    }
}

/// Why a datagram is not a message to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Shorter than the common header, or another magic: not this protocol. Dropped silently.
    NotOurs,
    /// Another version of the protocol: answered with ERROR `VERSION` when the datagram is at
    /// least [`ERROR_LEN`] bytes, so that the answer is never the larger.
    Version(u8),
    /// An unknown type, or too short for its type's fixed fields. Dropped silently.
    Malformed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotOurs => f.write_str("not a sluice-kv message"),
            Refusal::Version(v) => write!(f, "protocol version {v}, not {VERSION}"),
            Refusal::Malformed => f.write_str("malformed message"),
        }
    }
}

/// A buffer too small for what was to be written into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

/// A handshake cookie: the epoch it was made in, and its MAC ([`crate::cookie`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub epoch: u32,
    pub mac: [u8; MAC_LEN],
}

/// WELCOME's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub nonce: [u8; NONCE_LEN],
    pub session: u64,
    pub idle_timeout_secs: u16,
    pub max_ops: u8,
    pub max_request: u32,
}

/// The error codes of ERROR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    BadCookie = 1,
    Version = 2,
    UnknownSession = 3,
    Malformed = 4,
    WrongAddress = 5,
    Busy = 6,
    StaleRequest = 7,
}

impl ErrorCode {
    fn from_word(w: u16) -> Option<ErrorCode> {
        Some(match w {
            1 => ErrorCode::BadCookie,
            2 => ErrorCode::Version,
            3 => ErrorCode::UnknownSession,
            4 => ErrorCode::Malformed,
            5 => ErrorCode::WrongAddress,
            6 => ErrorCode::Busy,
            7 => ErrorCode::StaleRequest,
            _ => return None,
        })
    }
}

/// ERROR's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    pub code: ErrorCode,
    /// The type of the message refused (a byte, kept as the wire's word).
    pub refused: u16,
    /// For [`ErrorCode::Busy`], the seconds to wait; otherwise 0.
    pub detail: u32,
}

/// A REQUEST, its operations still in the datagram ([`Request::operations`] reads them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub session: u64,
    pub id: u64,
    pub count: u8,
    /// The bytes after the fixed part: the operations, then any padding.
    pub body: &'a [u8],
}

/// A RESPONSE, its results still in the datagram ([`Response::results`] reads them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub session: u64,
    pub id: u64,
    pub count: u8,
    pub body: &'a [u8],
}

/// One message, borrowing the datagram it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Hello {
        nonce: [u8; NONCE_LEN],
        /// None in a first HELLO (epoch 0, MAC zero).
        cookie: Option<Cookie>,
    },
    Retry {
        nonce: [u8; NONCE_LEN],
        cookie: Cookie,
    },
    Welcome(Welcome),
    Request(Request<'a>),
    Response(Response<'a>),
    Close {
        session: u64,
        last: u64,
    },
    Closed {
        session: u64,
        last: u64,
    },
    Error(ErrorMessage),
}

fn u16_at(b: &[u8], at: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes(b[at].try_into().expect("2 bytes"))
}

fn u32_at(b: &[u8], at: std::ops::Range<usize>) -> u32 {
    u32::from_be_bytes(b[at].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: std::ops::Range<usize>) -> u64 {
    u64::from_be_bytes(b[at].try_into().expect("8 bytes"))
}

fn array_at<const N: usize>(b: &[u8], at: std::ops::Range<usize>) -> [u8; N] {
    b[at].try_into().expect("a fixed field")
}

impl Kind {
    /// The fixed length of the type's messages (REQUEST and RESPONSE: their fixed part).
    pub fn min_len(self) -> usize {
        match self {
            Kind::Hello => HELLO_LEN,
            Kind::Retry => RETRY_LEN,
            Kind::Welcome => WELCOME_LEN,
            Kind::Request | Kind::Response => REQUEST_HEADER_LEN,
            Kind::Close | Kind::Closed => CLOSE_LEN,
            Kind::Error => ERROR_LEN,
        }
    }
}

impl<'a> Message<'a> {
    /// Reads the message at the start of a UDP payload. Bytes after its end are padding.
    pub fn parse(b: &'a [u8]) -> Result<Message<'a>, Refusal> {
        if b.len() < HEADER_LEN || u16_at(b, field::MAGIC) != MAGIC {
            return Err(Refusal::NotOurs);
        }
        if b[field::VERSION] != VERSION {
            return Err(Refusal::Version(b[field::VERSION]));
        }
        let kind = Kind::from_byte(b[field::TYPE]).ok_or(Refusal::Malformed)?;
        if b.len() < kind.min_len() {
            return Err(Refusal::Malformed);
        }
        let cookie = || Cookie {
            epoch: u32_at(b, field::EPOCH),
            mac: array_at(b, field::MAC),
        };
        Ok(match kind {
            Kind::Hello => {
                let c = cookie();
                Message::Hello {
                    nonce: array_at(b, field::NONCE),
                    cookie: (c.epoch != 0 || c.mac != [0; MAC_LEN]).then_some(c),
                }
            }
            Kind::Retry => Message::Retry {
                nonce: array_at(b, field::NONCE),
                cookie: cookie(),
            },
            Kind::Welcome => Message::Welcome(Welcome {
                nonce: array_at(b, field::NONCE),
                session: u64_at(b, field::WELCOME_SESSION),
                idle_timeout_secs: u16_at(b, field::IDLE_TIMEOUT),
                max_ops: b[field::MAX_OPS],
                max_request: u32_at(b, field::MAX_REQUEST),
            }),
            Kind::Request => Message::Request(Request {
                session: u64_at(b, field::SESSION),
                id: u64_at(b, field::REQUEST_ID),
                count: b[field::COUNT],
                body: &b[REQUEST_HEADER_LEN..],
            }),
            Kind::Response => Message::Response(Response {
                session: u64_at(b, field::SESSION),
                id: u64_at(b, field::REQUEST_ID),
                count: b[field::COUNT],
                body: &b[REQUEST_HEADER_LEN..],
            }),
            Kind::Close => Message::Close {
                session: u64_at(b, field::SESSION),
                last: u64_at(b, field::REQUEST_ID),
            },
            Kind::Closed => Message::Closed {
                session: u64_at(b, field::SESSION),
                last: u64_at(b, field::REQUEST_ID),
            },
            Kind::Error => Message::Error(ErrorMessage {
                code: ErrorCode::from_word(u16_at(b, field::CODE)).ok_or(Refusal::Malformed)?,
                refused: u16_at(b, field::REFUSED),
                detail: u32_at(b, field::DETAIL),
            }),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello { .. } => Kind::Hello,
            Message::Retry { .. } => Kind::Retry,
            Message::Welcome(_) => Kind::Welcome,
            Message::Request(_) => Kind::Request,
            Message::Response(_) => Kind::Response,
            Message::Close { .. } => Kind::Close,
            Message::Closed { .. } => Kind::Closed,
            Message::Error(_) => Kind::Error,
        }
    }

    /// Writes the message at the start of `buffer`; returns its length. A REQUEST's or
    /// RESPONSE's body is copied as it is (build new ones with [`RequestWriter`] and
    /// [`ResponseWriter`]).
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize, Truncated> {
        let len = match self {
            Message::Request(r) => REQUEST_HEADER_LEN + r.body.len(),
            Message::Response(r) => REQUEST_HEADER_LEN + r.body.len(),
            other => other.kind().min_len(),
        };
        let b = buffer.get_mut(..len).ok_or(Truncated)?;
        b.fill(0);
        write_header(b, self.kind());
        match *self {
            Message::Hello { nonce, cookie } => {
                b[field::NONCE].copy_from_slice(&nonce);
                if let Some(c) = cookie {
                    write_cookie(b, c);
                }
            }
            Message::Retry { nonce, cookie } => {
                b[field::NONCE].copy_from_slice(&nonce);
                write_cookie(b, cookie);
            }
            Message::Welcome(w) => {
                b[field::NONCE].copy_from_slice(&w.nonce);
                b[field::WELCOME_SESSION].copy_from_slice(&w.session.to_be_bytes());
                b[field::IDLE_TIMEOUT].copy_from_slice(&w.idle_timeout_secs.to_be_bytes());
                b[field::MAX_OPS] = w.max_ops;
                b[field::MAX_REQUEST].copy_from_slice(&w.max_request.to_be_bytes());
            }
            Message::Request(Request {
                session,
                id,
                count,
                body,
            })
            | Message::Response(Response {
                session,
                id,
                count,
                body,
            }) => {
                write_exchange(b, session, id);
                b[field::COUNT] = count;
                b[REQUEST_HEADER_LEN..].copy_from_slice(body);
            }
            Message::Close { session, last } | Message::Closed { session, last } => {
                write_exchange(b, session, last);
            }
            Message::Error(e) => {
                b[field::CODE].copy_from_slice(&(e.code as u16).to_be_bytes());
                b[field::REFUSED].copy_from_slice(&e.refused.to_be_bytes());
                b[field::DETAIL].copy_from_slice(&e.detail.to_be_bytes());
            }
        }
        Ok(len)
    }
}

fn write_header(b: &mut [u8], kind: Kind) {
    b[field::MAGIC].copy_from_slice(&MAGIC.to_be_bytes());
    b[field::VERSION] = VERSION;
    b[field::TYPE] = kind as u8;
}

fn write_cookie(b: &mut [u8], cookie: Cookie) {
    b[field::EPOCH].copy_from_slice(&cookie.epoch.to_be_bytes());
    b[field::MAC].copy_from_slice(&cookie.mac);
}

fn write_exchange(b: &mut [u8], session: u64, id: u64) {
    b[field::SESSION].copy_from_slice(&session.to_be_bytes());
    b[field::REQUEST_ID].copy_from_slice(&id.to_be_bytes());
}

/// Writes the ERROR `VERSION` answer to a datagram of another version, if the datagram is
/// long enough for the answer not to be larger (see [`Refusal::Version`]).
pub fn version_error(datagram: &[u8], buffer: &mut [u8]) -> Option<usize> {
    if datagram.len() < ERROR_LEN {
        return None;
    }
    let refused = u16::from(datagram[field::TYPE]);
    Message::Error(ErrorMessage {
        code: ErrorCode::Version,
        refused,
        detail: 0,
    })
    .emit(buffer)
    .ok()
}

/// One operation of a request, as it came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op<'a> {
    pub opcode: u8,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// An operation that keeps the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation<'a> {
    Get(&'a [u8]),
    Put(&'a [u8], &'a [u8]),
    Del(&'a [u8]),
}

impl Operation<'_> {
    fn opcode(&self) -> u8 {
        match self {
            Operation::Get(_) => 1,
            Operation::Put(..) => 2,
            Operation::Del(_) => 3,
        }
    }

    fn parts(&self) -> (&[u8], &[u8]) {
        match *self {
            Operation::Get(k) | Operation::Del(k) => (k, &[]),
            Operation::Put(k, v) => (k, v),
        }
    }
}

impl<'a> Op<'a> {
    /// The operation, if it keeps the limits; otherwise its result is `BAD_OP`.
    pub fn check(&self) -> Option<Operation<'a>> {
        if self.key.is_empty() || self.key.len() > MAX_KEY_LEN {
            return None;
        }
        match (self.opcode, self.value.len()) {
            (1, 0) => Some(Operation::Get(self.key)),
            (2, n) if n <= MAX_VALUE_LEN => Some(Operation::Put(self.key, self.value)),
            (3, 0) => Some(Operation::Del(self.key)),
            _ => None,
        }
    }
}

/// A request whose operation count or lengths do not fit its datagram: answered with ERROR
/// `MALFORMED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedOps;

/// A request's operations, 1 to [`MAX_OPS`]: its body, whose items were checked to lie
/// within it, read item by item as they are used (a view, not an array of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ops<'a> {
    body: &'a [u8],
    len: usize,
}

impl<'a> Ops<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> OpsIter<'a> {
        OpsIter {
            rest: self.body,
            left: self.len,
        }
    }
}

/// The operations of [`Ops`], in order.
#[derive(Clone, Debug)]
pub struct OpsIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for OpsIter<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        self.left = self.left.checked_sub(1)?;
        let (op, rest) = split_op(self.rest)?;
        self.rest = rest;
        Some(op)
    }
}

/// The first operation of `bytes` and what follows it; None if it does not fit.
#[inline(always)]
fn split_op(bytes: &[u8]) -> Option<(Op<'_>, &[u8])> {
    let (head, tail) = bytes.split_first_chunk::<ITEM_HEADER_LEN>()?;
    let key_len = usize::from(head[1]);
    let value_len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let (key, tail) = tail.split_at_checked(key_len)?;
    let (value, tail) = tail.split_at_checked(value_len)?;
    let op = Op {
        opcode: head[0],
        key,
        value,
    };
    Some((op, tail))
}

impl<'a> Request<'a> {
    /// The operations, each checked to lie within the datagram; the count must be 1 to
    /// [`MAX_OPS`].
    pub fn operations(&self) -> Result<Ops<'a>, MalformedOps> {
        let len = usize::from(self.count);
        if len == 0 || len > MAX_OPS {
            return Err(MalformedOps);
        }
        let mut rest = self.body;
        for _ in 0..len {
            rest = split_op(rest).ok_or(MalformedOps)?.1;
        }
        Ok(Ops {
            body: self.body,
            len,
        })
    }
}

/// A result's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadOp = 2,
    NoRoom = 3,
    /// Not executed: the response had no room for it.
    Truncated = 4,
}

impl Status {
    fn from_byte(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadOp,
            3 => Status::NoRoom,
            4 => Status::Truncated,
            _ => return None,
        })
    }
}

impl<'a> Response<'a> {
    /// The results with their values, each checked to lie within the datagram.
    pub fn results(&self) -> Result<Vec<(Status, &'a [u8])>, MalformedOps> {
        self.each_result().collect()
    }

    /// The results one by one, as [`Response::results`] checks them, with nothing allocated;
    /// after the first that is malformed, nothing more.
    pub fn each_result(&self) -> Results<'a> {
        Results {
            rest: self.body,
            left: self.count,
        }
    }
}

/// The results of a RESPONSE ([`Response::each_result`]).
pub struct Results<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Iterator for Results<'a> {
    type Item = Result<(Status, &'a [u8]), MalformedOps>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let item = (|| {
            let (head, tail) = self
                .rest
                .split_first_chunk::<ITEM_HEADER_LEN>()
                .ok_or(MalformedOps)?;
            let status = Status::from_byte(head[0]).ok_or(MalformedOps)?;
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value = tail.get(..len).ok_or(MalformedOps)?;
            self.rest = &tail[len..];
            Ok((status, value))
        })();
        if item.is_err() {
            self.left = 0;
        }
        Some(item)
    }
}

/// Builds a REQUEST in place.
pub struct RequestWriter<'b> {
    buffer: &'b mut [u8],
    len: usize,
    count: u8,
}

impl<'b> RequestWriter<'b> {
    pub fn new(buffer: &'b mut [u8], session: u64, id: u64) -> Result<Self, Truncated> {
        let b = buffer.get_mut(..REQUEST_HEADER_LEN).ok_or(Truncated)?;
        b.fill(0);
        write_header(b, Kind::Request);
        write_exchange(b, session, id);
        Ok(RequestWriter {
            buffer,
            len: REQUEST_HEADER_LEN,
            count: 0,
        })
    }

    /// Appends an operation (its limits are the server's to check).
    pub fn push(&mut self, op: Operation<'_>) -> Result<(), Truncated> {
        let (key, value) = op.parts();
        let key_len = u8::try_from(key.len()).map_err(|_| Truncated)?;
        let value_len = u16::try_from(value.len()).map_err(|_| Truncated)?;
        let end = self.len + ITEM_HEADER_LEN + key.len() + value.len();
        if usize::from(self.count) == MAX_OPS {
            return Err(Truncated);
        }
        let b = self.buffer.get_mut(self.len..end).ok_or(Truncated)?;
        b[0] = op.opcode();
        b[1] = key_len;
        b[2..4].copy_from_slice(&value_len.to_be_bytes());
        b[ITEM_HEADER_LEN..ITEM_HEADER_LEN + key.len()].copy_from_slice(key);
        b[ITEM_HEADER_LEN + key.len()..].copy_from_slice(value);
        self.len = end;
        self.count += 1;
        self.buffer[field::COUNT] = self.count;
        Ok(())
    }

    /// The request's length.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// Builds a RESPONSE in place, within `limit` bytes, keeping room for a result header for
/// each operation still to come, so that once one result does not fit, it and the rest can
/// still be written as [`Status::Truncated`].
pub struct ResponseWriter<'b> {
    buffer: &'b mut [u8],
    len: usize,
    limit: usize,
    written: u8,
    count: u8,
}

impl<'b> ResponseWriter<'b> {
    /// For a request of `count` operations (1 to [`MAX_OPS`]).
    pub fn new(
        buffer: &'b mut [u8],
        limit: usize,
        session: u64,
        id: u64,
        count: u8,
    ) -> Result<Self, Truncated> {
        let limit = limit.min(buffer.len());
        if REQUEST_HEADER_LEN + usize::from(count) * ITEM_HEADER_LEN > limit {
            return Err(Truncated);
        }
        let b = &mut buffer[..REQUEST_HEADER_LEN];
        b.fill(0);
        write_header(b, Kind::Response);
        write_exchange(b, session, id);
        b[field::COUNT] = count;
        Ok(ResponseWriter {
            buffer,
            len: REQUEST_HEADER_LEN,
            limit,
            written: 0,
            count,
        })
    }

    /// Goes on with a response whose first `len` bytes `buffer` holds, as [`Self::new`] and
    /// [`Self::push`] wrote them (a response in the making that another worker handed over).
    /// Refused if those bytes are not a response header and whole results of known statuses.
    pub fn resume(buffer: &'b mut [u8], limit: usize, len: usize) -> Result<Self, Truncated> {
        let limit = limit.min(buffer.len());
        let partial = buffer.get(..len).ok_or(Truncated)?;
        if len < REQUEST_HEADER_LEN || partial[field::TYPE] != Kind::Response as u8 {
            return Err(Truncated);
        }
        let count = partial[field::COUNT];
        let (mut at, mut written) = (REQUEST_HEADER_LEN, 0u8);
        while at < len {
            let head = partial.get(at..at + ITEM_HEADER_LEN).ok_or(Truncated)?;
            Status::from_byte(head[0]).ok_or(Truncated)?;
            at += ITEM_HEADER_LEN + usize::from(u16::from_be_bytes([head[2], head[3]]));
            written += 1;
        }
        let to_come = usize::from(count.saturating_sub(written)) * ITEM_HEADER_LEN;
        if at != len || written > count || usize::from(count) > MAX_OPS || len + to_come > limit {
            return Err(Truncated);
        }
        Ok(ResponseWriter {
            buffer,
            len,
            limit,
            written,
            count,
        })
    }

    /// Whether a result with a value of `value_len` bytes fits beside the headers the rest
    /// need.
    pub fn fits(&self, value_len: usize) -> bool {
        let later = usize::from(self.count - self.written).saturating_sub(1) * ITEM_HEADER_LEN;
        self.written < self.count
            && self.len + ITEM_HEADER_LEN + value_len + later <= self.limit
            && value_len <= usize::from(u16::MAX)
    }

    /// Appends a result; returns false (writing nothing) when it does not fit ([`Self::fits`]).
    pub fn push(&mut self, status: Status, value: &[u8]) -> bool {
        if !self.fits(value.len()) {
            return false;
        }
        let b = &mut self.buffer[self.len..self.len + ITEM_HEADER_LEN + value.len()];
        b[0] = status as u8;
        b[1] = 0;
        b[2..4].copy_from_slice(&(value.len() as u16).to_be_bytes());
        b[ITEM_HEADER_LEN..].copy_from_slice(value);
        self.len += ITEM_HEADER_LEN + value.len();
        self.written += 1;
        true
    }

    /// The response's length so far.
    pub fn bytes_written(&self) -> usize {
        self.len
    }

    /// How many results the response will have.
    pub fn count(&self) -> u8 {
        self.count
    }

    /// How many results are written so far.
    pub fn written(&self) -> u8 {
        self.written
    }

    /// Writes the results not yet written as [`Status::Truncated`]; returns the length.
    pub fn finish(mut self) -> usize {
        while self.written < self.count {
            let pushed = self.push(Status::Truncated, &[]);
            debug_assert!(pushed, "room was kept for every result header");
        }
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Message<'_>) -> Vec<u8> {
        let mut buffer = [0u8; MAX_PAYLOAD_V4];
        let n = m.emit(&mut buffer).unwrap();
        assert_eq!(Message::parse(&buffer[..n]), Ok(m));
        buffer[..n].to_vec()
    }

    #[test]
    fn fixed_messages_round_trip_at_their_documented_sizes() {
        let nonce = [7; NONCE_LEN];
        let cookie = Cookie {
            epoch: 0x0123_4567,
            mac: [9; MAC_LEN],
        };
        let first = round_trip(Message::Hello {
            nonce,
            cookie: None,
        });
        assert_eq!(first.len(), HELLO_LEN);
        assert_eq!(&first[..8], &[0x53, 0x4b, 1, 1, 0, 0, 0, 0]);
        assert_eq!(&first[24..], &[0; 40]);
        let second = round_trip(Message::Hello {
            nonce,
            cookie: Some(cookie),
        });
        assert_eq!(&second[24..28], &[0x01, 0x23, 0x45, 0x67]);
        assert_eq!(
            round_trip(Message::Retry { nonce, cookie }).len(),
            RETRY_LEN
        );
        let welcome = round_trip(Message::Welcome(Welcome {
            nonce,
            session: 0x1122_3344_5566_7788,
            idle_timeout_secs: 30,
            max_ops: 16,
            max_request: 1472,
        }));
        assert_eq!(welcome.len(), WELCOME_LEN);
        assert_eq!(
            &welcome[24..40],
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 30, 16, 0, 0, 0, 0x05, 0xc0]
        );
        let close = round_trip(Message::Close {
            session: 5,
            last: 9,
        });
        assert_eq!(close.len(), CLOSE_LEN);
        round_trip(Message::Closed {
            session: 5,
            last: 9,
        });
        let error = round_trip(Message::Error(ErrorMessage {
            code: ErrorCode::Busy,
            refused: Kind::Hello as u16,
            detail: 2,
        }));
        assert_eq!(
            error,
            [0x53, 0x4b, 1, 8, 0, 0, 0, 0, 0, 6, 0, 1, 0, 0, 0, 2]
        );
    }

    #[test]
    fn answers_to_unauthenticated_messages_are_never_larger() {
        let mut out = [0u8; 64];
        let other_version = [0x53, 0x4b, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Message::parse(&other_version), Err(Refusal::Version(2)));
        assert_eq!(version_error(&other_version, &mut out), Some(ERROR_LEN));
        assert_eq!(version_error(&other_version[..15], &mut out), None);
    }

    #[test]
    fn short_foreign_and_unknown_datagrams_are_refused() {
        assert_eq!(Message::parse(b"SK\x01"), Err(Refusal::NotOurs));
        assert_eq!(Message::parse(&[0; 64]), Err(Refusal::NotOurs));
        let mut hello = [0u8; HELLO_LEN];
        Message::Hello {
            nonce: [1; 16],
            cookie: None,
        }
        .emit(&mut hello)
        .unwrap();
        assert_eq!(Message::parse(&hello[..63]), Err(Refusal::Malformed));
        hello[3] = 9;
        assert_eq!(Message::parse(&hello), Err(Refusal::Malformed));
        let mut error = [0u8; ERROR_LEN];
        error[..4].copy_from_slice(&[0x53, 0x4b, 1, 8]);
        assert_eq!(Message::parse(&error), Err(Refusal::Malformed), "code 0");
    }

    #[test]
    fn requests_carry_operations_checked_against_the_limits() {
        let mut buffer = [0u8; MAX_PAYLOAD_V4];
        let mut w = RequestWriter::new(&mut buffer, 42, 1).unwrap();
        w.push(Operation::Put(b"k", b"value")).unwrap();
        w.push(Operation::Get(b"k")).unwrap();
        w.push(Operation::Del(b"k")).unwrap();
        let n = w.finish();
        assert_eq!(n, REQUEST_HEADER_LEN + 3 * ITEM_HEADER_LEN + 3 + 5);
        let Ok(Message::Request(request)) = Message::parse(&buffer[..n + 10]) else {
            panic!("a request");
        };
        assert_eq!((request.session, request.id, request.count), (42, 1, 3));
        let ops = request.operations().unwrap();
        let checked: Vec<_> = ops.iter().map(|op| op.check()).collect();
        assert_eq!(
            checked,
            [
                Some(Operation::Put(b"k", b"value")),
                Some(Operation::Get(b"k")),
                Some(Operation::Del(b"k")),
            ]
        );
        // Each limit broken: a BAD_OP result, not a malformed request.
        let long_key = [b'k'; MAX_KEY_LEN + 1];
        let long_value = [0u8; MAX_VALUE_LEN + 1];
        for op in [
            Op {
                opcode: 1,
                key: b"",
                value: b"",
            },
            Op {
                opcode: 1,
                key: &long_key[..],
                value: b"",
            },
            Op {
                opcode: 1,
                key: b"k",
                value: b"v",
            },
            Op {
                opcode: 3,
                key: b"k",
                value: b"v",
            },
            Op {
                opcode: 2,
                key: b"k",
                value: &long_value[..],
            },
            Op {
                opcode: 4,
                key: b"k",
                value: b"",
            },
        ] {
            assert_eq!(op.check(), None, "{op:?}");
        }
        // A count of 0, over 16, or past the datagram: malformed.
        let mut bad = buffer;
        bad[24] = 0;
        let Ok(Message::Request(r)) = Message::parse(&bad[..n]) else {
            panic!()
        };
        assert_eq!(r.operations(), Err(MalformedOps));
        bad[24] = 17;
        let Ok(Message::Request(r)) = Message::parse(&bad[..n]) else {
            panic!()
        };
        assert_eq!(r.operations(), Err(MalformedOps));
        let Ok(Message::Request(r)) = Message::parse(&buffer[..n - 1]) else {
            panic!()
        };
        assert_eq!(r.operations(), Err(MalformedOps));
    }

    #[test]
    fn a_response_that_runs_out_of_room_truncates_the_rest() {
        let mut buffer = [0u8; MAX_PAYLOAD_V4];
        let value = [0xab; MAX_VALUE_LEN];
        let mut w = ResponseWriter::new(&mut buffer, MAX_PAYLOAD_V4, 42, 7, 3).unwrap();
        assert!(w.push(Status::Ok, &value));
        assert!(
            !w.fits(MAX_VALUE_LEN),
            "a second 1,024-byte value does not fit"
        );
        assert!(!w.push(Status::Ok, &value));
        assert_eq!(w.written(), 1);
        let n = w.finish();
        let Ok(Message::Response(r)) = Message::parse(&buffer[..n]) else {
            panic!()
        };
        assert_eq!(
            r.results().unwrap(),
            [
                (Status::Ok, &value[..]),
                (Status::Truncated, &[][..]),
                (Status::Truncated, &[][..]),
            ]
        );
        // One GET of the largest value always fits, even over IPv6.
        let mut w = ResponseWriter::new(&mut buffer, MAX_PAYLOAD_V6, 1, 1, 1).unwrap();
        assert!(w.push(Status::Ok, &value));
    }

    #[test]
    fn a_response_taken_up_by_another_worker_ends_as_if_written_at_once() {
        let mut whole = [0u8; MAX_PAYLOAD_V4];
        let mut w = ResponseWriter::new(&mut whole, MAX_PAYLOAD_V4, 42, 7, 3).unwrap();
        assert!(w.push(Status::Ok, b"one") && w.push(Status::NotFound, &[]));
        assert!(w.push(Status::Ok, b"three"));
        let n = w.finish();

        let mut parts = [0u8; MAX_PAYLOAD_V4];
        let mut w = ResponseWriter::new(&mut parts, MAX_PAYLOAD_V4, 42, 7, 3).unwrap();
        assert!(w.push(Status::Ok, b"one"));
        let first = w.bytes_written();
        let mut w = ResponseWriter::resume(&mut parts, MAX_PAYLOAD_V4, first).unwrap();
        assert_eq!((w.count(), w.written()), (3, 1));
        assert!(w.push(Status::NotFound, &[]));
        let second = w.bytes_written();
        let mut w = ResponseWriter::resume(&mut parts, MAX_PAYLOAD_V4, second).unwrap();
        assert!(w.push(Status::Ok, b"three"));
        assert_eq!(w.finish(), n);
        assert_eq!(parts[..n], whole[..n]);

        // Not a response, a result cut short, no room left for the rest's headers, or a
        // status no response has (found by the fuzzer).
        assert!(ResponseWriter::resume(&mut parts, MAX_PAYLOAD_V4, first - 1).is_err());
        assert!(ResponseWriter::resume(&mut parts, first + 2, first).is_err());
        parts[REQUEST_HEADER_LEN] = 0x6c;
        assert!(ResponseWriter::resume(&mut parts, MAX_PAYLOAD_V4, first).is_err());
        parts[field::TYPE] = Kind::Request as u8;
        assert!(ResponseWriter::resume(&mut parts, MAX_PAYLOAD_V4, first).is_err());
    }
}
