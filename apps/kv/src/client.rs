//! The protocol's client side over the kernel's UDP sockets, for any Linux host: the
//! handshake, one request at a time with retransmission (200 ms, then doubling, 5 sends in
//! all), and CLOSE. `sluice-kv-cli` is a command line over it.

use crate::protocol::{
    self as kv, ErrorCode, Message, Operation, RequestWriter, Status, NONCE_LEN,
};
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The first retransmission's wait; each next one waits twice as long.
pub const FIRST_WAIT: Duration = Duration::from_millis(200);
/// Sends of one message before giving up.
pub const MAX_SENDS: u32 = 5;

/// Why an exchange failed.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// Nothing came back after [`MAX_SENDS`] sends.
    NoAnswer,
    /// The host answered ICMP port unreachable: it is up, but nothing serves that UDP port.
    PortUnreachable,
    /// The server refused with this ERROR (and detail).
    Refused(ErrorCode, u32),
    /// An answer that breaks the protocol.
    Protocol(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::NoAnswer => write!(
                f,
                "no answer after {MAX_SENDS} tries over {:.1} s: is sluice-kv running there, and is the address reachable?",
                (FIRST_WAIT * (2u32.pow(MAX_SENDS) - 1)).as_secs_f64()
            ),
            ClientError::PortUnreachable => f.write_str(
                "the host answered port unreachable: nothing serves that UDP port there (is the port sluice-kv's --udp-port?)",
            ),
            ClientError::Refused(ErrorCode::Busy, wait) => {
                write!(f, "the server is busy (too many sessions): try again in {wait} s")
            }
            ClientError::Refused(ErrorCode::UnknownSession, _) => {
                f.write_str("the server does not know this session (it timed out, or the server restarted)")
            }
            ClientError::Refused(ErrorCode::Version, _) => {
                f.write_str("the server speaks another version of the protocol")
            }
            ClientError::Refused(code, _) => write!(f, "the server refused the request: {code:?}"),
            ClientError::Protocol(what) => write!(f, "the server's answer breaks the protocol: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        // A connected UDP socket reports the ICMP port unreachable its datagram met as this.
        if e.kind() == io::ErrorKind::ConnectionRefused {
            return ClientError::PortUnreachable;
        }
        ClientError::Io(e)
    }
}

/// An open session with a server.
pub struct Client {
    socket: UdpSocket,
    session: u64,
    last_id: u64,
    max_payload: usize,
}

/// A random nonce, from the kernel.
fn nonce() -> io::Result<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

/// Sends `message` until `accept` takes an answer, waiting 200 ms, 400 ms, ... between sends.
fn exchange<T>(
    socket: &UdpSocket,
    message: &[u8],
    mut accept: impl FnMut(Message<'_>) -> Option<Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let mut buffer = [0u8; kv::MAX_PAYLOAD_V4];
    let mut wait = FIRST_WAIT;
    for _ in 0..MAX_SENDS {
        socket.send(message)?;
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            socket.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let n = match socket.recv(&mut buffer) {
                Ok(got) => got,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                // A read with a timeout fails so after a stop and continue (Ctrl-Z, fg):
                // signal(7). The deadline still holds.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            // Anything else (a late answer to an earlier send, garbage) is ignored.
            if let Some(result) = Message::parse(&buffer[..n]).ok().and_then(&mut accept) {
                return result;
            }
        }
        wait *= 2;
    }
    Err(ClientError::NoAnswer)
}

/// An ERROR answering a message of `kind`, as the client's error.
fn refusal<T>(message: &Message<'_>, kind: kv::Kind) -> Option<Result<T, ClientError>> {
    match message {
        Message::Error(e) if e.refused == kind as u16 || e.code == ErrorCode::Version => {
            Some(Err(ClientError::Refused(e.code, e.detail)))
        }
        _ => None,
    }
}

impl Client {
    /// Opens a session with `server` (HELLO, RETRY, HELLO with the cookie, WELCOME).
    pub fn connect(server: SocketAddr) -> Result<Client, ClientError> {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let socket = UdpSocket::bind(local)?;
        // Connected: only the server's datagrams arrive, and an ICMP error it met is reported.
        socket.connect(server)?;
        let nonce = nonce()?;
        let mut hello = [0u8; kv::HELLO_LEN];
        Message::Hello {
            nonce,
            cookie: None,
        }
        .emit(&mut hello)
        .expect("room");
        let cookie = exchange(&socket, &hello, |m| match m {
            Message::Retry { nonce: n, cookie } if n == nonce => Some(Ok(cookie)),
            other => refusal(&other, kv::Kind::Hello),
        })?;
        Message::Hello {
            nonce,
            cookie: Some(cookie),
        }
        .emit(&mut hello)
        .expect("room");
        let welcome = exchange(&socket, &hello, |m| match m {
            Message::Welcome(w) if w.nonce == nonce => Some(Ok(w)),
            other => refusal(&other, kv::Kind::Hello),
        })?;
        let max_payload = if server.is_ipv4() {
            kv::MAX_PAYLOAD_V4
        } else {
            kv::MAX_PAYLOAD_V6
        };
        Ok(Client {
            socket,
            session: welcome.session,
            last_id: 0,
            max_payload: max_payload.min(welcome.max_request as usize),
        })
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    /// Runs `ops` (1 to 16) as one request; their results, in order.
    pub fn request(
        &mut self,
        ops: &[Operation<'_>],
    ) -> Result<Vec<(Status, Vec<u8>)>, ClientError> {
        let id = self.last_id + 1;
        let mut bytes = vec![0u8; self.max_payload];
        let mut writer = RequestWriter::new(&mut bytes, self.session, id).expect("room");
        for op in ops {
            writer
                .push(*op)
                .map_err(|_| ClientError::Protocol("the operations do not fit one request"))?;
        }
        let n = writer.finish();
        let session = self.session;
        let results = exchange(&self.socket, &bytes[..n], |m| match m {
            Message::Response(r) if r.session == session && r.id == id => Some(
                r.results()
                    .map(|rs| rs.into_iter().map(|(s, v)| (s, v.to_vec())).collect())
                    .map_err(|_| ClientError::Protocol("results beyond the datagram")),
            ),
            other => refusal(&other, kv::Kind::Request),
        })?;
        self.last_id = id;
        Ok(results)
    }

    /// Ends the session.
    pub fn close(self) -> Result<(), ClientError> {
        let mut bytes = [0u8; kv::CLOSE_LEN];
        Message::Close {
            session: self.session,
            last: self.last_id,
        }
        .emit(&mut bytes)
        .expect("room");
        let session = self.session;
        exchange(&self.socket, &bytes, |m| match m {
            Message::Closed { session: s, .. } if s == session => Some(Ok(())),
            // A retransmitted CLOSE whose first copy closed the session.
            Message::Error(e) if e.code == ErrorCode::UnknownSession => Some(Ok(())),
            other => refusal(&other, kv::Kind::Close),
        })
    }
}
