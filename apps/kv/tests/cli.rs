//! sluice-kv-cli against the protocol's server state machine behind a kernel UDP socket on
//! loopback: handshake, put, get, del, a lost response whose retransmitted request is
//! executed once, and the errors a user sees. (The appliance on DPDK ports is issue 14's next
//! step; its end-to-end test will run this same CLI from a network namespace.)

use sluice_kv::server::{Limits, Outcome, Server};
use sluice_kv::store::Store;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

struct Harness {
    addr: SocketAddr,
    server: Arc<Mutex<Server>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Harness {
    /// A server on loopback; with `lose_first_response`, the first answer to each REQUEST
    /// is not sent, as if the network lost it.
    fn start(lose_first_response: bool) -> Harness {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let server = Arc::new(Mutex::new(Server::new(
            1,
            [1; 16],
            [2; 16],
            Store::new(1024, [3; 16]),
            Limits::default(),
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, done) = (server.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut seen_requests = std::collections::HashSet::new();
            let (mut input, mut output) = ([0u8; 2048], [0u8; 2048]);
            while !done.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut input) else {
                    continue;
                };
                let outcome = s.lock().unwrap().handle(&input[..n], from, 0, &mut output);
                if let Outcome::Reply(len) = outcome {
                    let is_request = n > 3 && input[3] == 4;
                    if lose_first_response
                        && is_request
                        && seen_requests.insert(input[..n].to_vec())
                    {
                        continue;
                    }
                    socket.send_to(&output[..len], from).unwrap();
                }
            }
        });
        Harness {
            addr,
            server,
            stop,
            thread: Some(thread),
        }
    }

    /// Runs the CLI with `args` after `--server ADDR`: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        cli(&[&["--server", &self.addr.to_string()], args].concat())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-kv-cli"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn put_get_del_over_a_kernel_socket() {
    let h = Harness::start(false);
    assert_eq!(
        h.cli(&["put", "colour", "blue"]),
        (0, "OK\n".into(), String::new())
    );
    assert_eq!(
        h.cli(&["get", "colour"]),
        (0, "blue\n".into(), String::new())
    );
    assert_eq!(h.cli(&["del", "colour"]), (0, "OK\n".into(), String::new()));
    let (code, out, err) = h.cli(&["get", "colour"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("colour: not found"), "{err}");
    let server = h.server.lock().unwrap();
    let c = server.counters();
    assert_eq!(
        (c.puts, c.gets, c.dels, c.welcomes, c.closed),
        (1, 2, 1, 4, 4)
    );
    assert_eq!(server.sessions(), 0, "every run closed its session");
}

#[test]
fn a_request_whose_response_was_lost_is_executed_once() {
    let h = Harness::start(true);
    assert_eq!(h.cli(&["put", "k", "v"]), (0, "OK\n".into(), String::new()));
    let c = h.server.lock().unwrap().counters();
    assert_eq!(c.puts, 1, "executed once");
    assert_eq!(c.replayed, 1, "the retransmission got the kept response");
}

#[test]
fn mistakes_silence_and_closed_ports_get_one_line_saying_what_is_wrong() {
    let (code, _, err) = cli(&["--server", "nowhere", "get", "k"]);
    assert_eq!(code, 2);
    assert!(err.contains("'nowhere' is not IP:PORT or IP"), "{err}");
    let long = "k".repeat(251);
    let (code, _, err) = cli(&["--server", "127.0.0.1", "get", &long]);
    assert_eq!(code, 2);
    assert!(err.contains("a key is 1 to 250 bytes, not 251"), "{err}");
    // A port nobody answers on (bound here, never read).
    let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (code, _, err) = cli(&[
        "--server",
        &quiet.local_addr().unwrap().to_string(),
        "get",
        "k",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no answer after 5 tries"), "{err}");
    // A port nobody has: the kernel answers port unreachable, and the client says so at once.
    let closed = quiet.local_addr().unwrap().to_string();
    drop(quiet);
    let (code, _, err) = cli(&["--server", &closed, "get", "k"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the host answered port unreachable: nothing serves that UDP port there"),
        "{err}"
    );
}
