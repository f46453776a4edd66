//! sluice-kv on net_af_packet, serving a real Linux host in a network namespace (made by
//! scripts/netns.sh) over a veth pair: ping, sluice-kv-cli's put, get and del over IPv4 and
//! IPv6, port unreachable from its other UDP ports and resets for TCP, `/kv/stats` and
//! `/kv/flush` on the telemetry socket, and a client written in Python from docs/protocol.md
//! alone that sends one request twice: the second gets the kept response and nothing runs
//! twice. Root only.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NETNS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/netns.sh");
const KV: &str = env!("CARGO_BIN_EXE_sluice-kv");
const CLI: &str = env!("CARGO_BIN_EXE_sluice-kv-cli");

/// The namespaces, removed when dropped (also when the test fails).
struct Hosts(String);

impl Hosts {
    fn up() -> Hosts {
        let name = format!("kvh{}", std::process::id() % 100_000);
        let _ = Command::new(NETNS).args(["down", &name]).status();
        let status = Command::new(NETNS).args(["up", &name]).status().unwrap();
        assert!(status.success(), "scripts/netns.sh up failed");
        Hosts(name)
    }

    fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-h1", self.0)])
            .args(cmd)
            .output()
            .unwrap()
    }

    /// sluice-kv-cli in the host: (exit code, stdout, stderr).
    fn cli(&self, server: &str, args: &[&str]) -> (i32, String, String) {
        let out = self.exec(&[&[CLI, "--server", server], args].concat());
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new(NETNS).args(["down", &self.0]).status();
    }
}

/// A running sluice-kv, killed if the test fails before stopping it.
struct Appliance(Option<Child>);

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The EAL's runtime folder of a prefix, removed when dropped (a killed process leaves it).
struct RuntimeDir(std::path::PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts sluice-kv on the router end of host 1's veth, a worker on each of `lcores` with a
/// queue pair each, and waits until it polls.
fn start(hosts: &Hosts, lcores: &str) -> Appliance {
    let workers = lcores.split(',').count();
    let mut child = Command::new(KV)
        .args([
            "-l",
            lcores,
            "-m",
            "128",
            "--no-pci",
            "--log-level=*:warning",
        ])
        // A prefix of its own, for the telemetry socket; --huge-unlink, so that even a
        // killed run leaves no hugepage files (Appliance's drop removes the runtime folder).
        .args(["--file-prefix", &hosts.0, "--huge-unlink"])
        .arg(format!(
            "--vdev=net_af_packet0,iface={}-r1,qpairs={workers}",
            hosts.0
        ))
        .args([
            "--",
            "--addr",
            "10.0.1.1/24",
            "--addr",
            "fd00:1::1/64",
            "--stats-period",
            "0",
        ])
        .arg("--control")
        .arg(control_path(&hosts.0))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while !line.starts_with("lcore ") && Instant::now() < deadline {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
    }
    // The rest of its output is read after it stops.
    child.stdout = Some(out.into_inner());
    Appliance(Some(child))
}

/// Stops sluice-kv with SIGINT; its exit status and output.
fn stop(mut appliance: Appliance) -> (bool, String) {
    let child = appliance.0.take().expect("running");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A client from docs/protocol.md alone: HELLO, RETRY, HELLO with the cookie, WELCOME, then
/// the same REQUEST (a PUT) sent twice; prints both responses in hex.
const PYTHON_CLIENT: &str = r#"
import os, socket, struct, sys
server = (sys.argv[1], 7000)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
nonce = os.urandom(16)
def header(kind): return struct.pack("!HBBI", 0x534B, 1, kind, 0)
s.sendto(header(1) + nonce + bytes(4) + bytes(16) + bytes(20), server)
retry = s.recv(2048)
assert retry[3] == 2 and retry[8:24] == nonce, retry
epoch, mac = retry[24:28], retry[28:44]
s.sendto(header(1) + nonce + epoch + mac + bytes(20), server)
welcome = s.recv(2048)
assert welcome[3] == 3, welcome
session = welcome[24:32]
key, value = b"twice", b"once"
op = struct.pack("!BBH", 2, len(key), len(value)) + key + value
request = header(4) + session + struct.pack("!Q", 1) + bytes([1, 0, 0, 0]) + op
s.sendto(request, server)
first = s.recv(2048)
s.sendto(request, server)
second = s.recv(2048)
print(first.hex())
print(second.hex())
"#;

/// Where sluice-kv's control socket listens for the hosts of `prefix`.
fn control_path(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{prefix}-kv.sock"))
}

/// A command on sluice-kv's control socket; its reply, to its `ok` or `error` line.
fn ask(prefix: &str, command: &str) -> String {
    use std::io::Write;
    let stream = std::os::unix::net::UnixStream::connect(control_path(prefix)).unwrap();
    (&stream)
        .write_all(format!("{command}\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            return reply;
        }
        reply.push_str(&line);
        if line == "ok\n" || line.starts_with("error: ") {
            return reply;
        }
    }
}

/// A command on sluice-kv's telemetry socket; what it answered.
fn telemetry(prefix: &str, command: &str) -> String {
    let mut client = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian's dpdk-dev) runs");
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(format!("{command}\n").as_bytes())
        .unwrap();
    let out = client.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_real_host_uses_the_appliance() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hosts = Hosts::up();
    let _runtime = RuntimeDir(std::path::Path::new("/var/run/dpdk").join(&hosts.0));
    let kv = start(&hosts, "0");

    let ping = hosts.exec(&["ping", "-c", "2", "-i", "0.2", "-w", "5", "10.0.1.1"]);
    assert!(ping.status.success(), "the host cannot ping the appliance");
    assert_eq!(hosts.cli("10.0.1.1", &["put", "colour", "blue"]).1, "OK\n");
    assert_eq!(hosts.cli("10.0.1.1", &["get", "colour"]).1, "blue\n");
    assert_eq!(
        hosts.cli("[fd00:1::1]:7000", &["get", "colour"]).1,
        "blue\n"
    );
    assert_eq!(hosts.cli("fd00:1::1", &["del", "colour"]).1, "OK\n");
    let (code, _, err) = hosts.cli("10.0.1.1", &["get", "colour"]);
    assert_eq!(code, 1);
    assert!(err.contains("colour: not found"), "{err}");
    // Any other UDP port of the appliance answers port unreachable at once, as a host does.
    for server in ["10.0.1.1:7001", "[fd00:1::1]:7001"] {
        let (code, _, err) = hosts.cli(server, &["get", "colour"]);
        assert_ne!(code, 0);
        assert!(err.contains("port unreachable"), "{server}: {err}");
    }
    // And TCP, which it does not serve, is refused with a reset.
    let tcp = hosts.exec(&[
        "python3",
        "-c",
        "import socket; socket.create_connection(('10.0.1.1', 7000), timeout=2)",
    ]);
    let err = String::from_utf8_lossy(&tcp.stderr);
    assert!(err.contains("ConnectionRefusedError"), "{err}");

    // The control side: figures on the telemetry socket, and a flush.
    assert_eq!(hosts.cli("10.0.1.1", &["put", "colour", "green"]).1, "OK\n");
    // The stage publishes once a second: asked until it has (or 5 s, for a paused machine).
    let published = |stats: &str| stats.contains("\"keys 1\"") && stats.contains("\"put 2\"");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stats = telemetry(&hosts.0, "/kv/stats");
    while !published(&stats) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        stats = telemetry(&hosts.0, "/kv/stats");
    }
    assert!(published(&stats), "{stats}");
    assert!(telemetry(&hosts.0, "/kv/flush").contains("sent"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(hosts.cli("10.0.1.1", &["get", "colour"]).0, 1, "flushed");
    // The same on the control socket.
    let stats = ask(&hosts.0, "stats");
    assert!(
        stats.contains("keys 0\n") && stats.ends_with("ok\n"),
        "{stats}"
    );
    let sessions = ask(&hosts.0, "sessions");
    assert!(
        sessions.contains(" of 100000 (idle timeout 30 s)") && sessions.ends_with("ok\n"),
        "{sessions}"
    );
    assert!(ask(&hosts.0, "flush").contains("flush sent"));
    assert!(ask(&hosts.0, "frob").starts_with("error: unknown command 'frob'"));

    let python = hosts.exec(&["python3", "-c", PYTHON_CLIENT, "10.0.1.1"]);
    let stdout = String::from_utf8_lossy(&python.stdout);
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(
        answers[0], answers[1],
        "the retransmission got the kept response"
    );
    // RESPONSE, request 1, one result: OK with no value.
    assert!(answers[0].starts_with("534b0105"), "{}", answers[0]);
    assert!(
        answers[0].ends_with("00000000000000010100000000000000"),
        "{}",
        answers[0]
    );

    let (balanced, account) = stop(kv);
    assert!(balanced, "{account}");
    assert!(
        account.contains("kv_put 3"),
        "three PUTs executed, one each: {account}"
    );
    assert!(account.contains("kv_replayed 1"), "{account}");
    assert!(account.contains("mbufs in use: 0"), "{account}");
}

#[test]
fn two_workers_share_the_sessions_and_the_keys() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hosts = Hosts::up();
    let _runtime = RuntimeDir(std::path::Path::new("/var/run/dpdk").join(&hosts.0));
    let kv = start(&hosts, "0,1");
    // Each run of the CLI is a session of its own, from a port of its own: the kernel's
    // fanout spreads them over the two queues, and the keys belong to either worker.
    for i in 0..16 {
        let (key, value) = (format!("key{i}"), format!("value{i}"));
        assert_eq!(hosts.cli("10.0.1.1", &["put", &key, &value]).1, "OK\n");
    }
    for i in 0..16 {
        let (key, value) = (format!("key{i}"), format!("value{i}\n"));
        assert_eq!(hosts.cli("10.0.1.1", &["get", &key]).1, value);
    }
    std::thread::sleep(Duration::from_millis(1200)); // the stages publish once a second
    let stats = ask(&hosts.0, "stats");
    assert!(stats.contains("keys 16\n"), "{stats}");
    let (balanced, account) = stop(kv);
    assert!(balanced, "{account}");
    assert!(
        account.contains("kv_handoff"),
        "some keys are the other worker's: {account}"
    );
    assert!(account.contains("mbufs in use: 0"), "{account}");
}
