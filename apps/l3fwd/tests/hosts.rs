//! sluice-l3fwd as the router between two real Linux hosts (network namespaces made by
//! scripts/netns.sh), over net_af_packet on veth pairs: ARP, ping both ways and to the
//! router, ICMP time exceeded for a TTL of 1, a TCP run of iperf3, TTL and checksums seen by
//! tcpdump on the far host, and a route deleted and added back through the control socket.
//! Root only.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NETNS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/netns.sh");

/// The namespaces, removed when dropped (also when the test fails).
struct Hosts(String);

impl Hosts {
    fn up() -> Hosts {
        let name = format!("l3h{}", std::process::id() % 100_000);
        let _ = Command::new(NETNS).args(["down", &name]).status();
        let status = Command::new(NETNS).args(["up", &name]).status().unwrap();
        assert!(status.success(), "scripts/netns.sh up failed");
        Hosts(name)
    }

    fn exec(&self, host: u8, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-h{host}", self.0)])
            .args(cmd)
            .output()
            .unwrap()
    }

    /// Pings end on their count or a deadline (`-w`): with `-W`, ping waits only two round
    /// trips for the last answer once one has come, and a pause of the router on a busy machine
    /// lost it.
    fn ping(&self, host: u8, to: &str) -> bool {
        self.exec(host, &["ping", "-c", "2", "-i", "0.2", "-w", "5", to])
            .status
            .success()
    }

    /// What a ping with a TTL (hop limit) of 1 gets back: the router's time exceeded.
    fn ping_ttl_1(&self, host: u8, to: &str) -> String {
        let out = self.exec(host, &["ping", "-c", "1", "-w", "5", "-t", "1", to]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new(NETNS).args(["down", &self.0]).status();
    }
}

/// Sends a datagram to port 9 of argv[1] from a connected socket, then opens a TCP connection
/// to its port 22; prints, for each, "refused" when the answer is ICMP port unreachable or a
/// reset, "silence" when nothing comes back within 2 s.
const TO_CLOSED_PORTS: &str = r#"
import socket, sys
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.connect((sys.argv[1], 9))
udp.settimeout(2)
udp.send(b"anyone?")
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.settimeout(2)
for attempt in (lambda: udp.recv(100), lambda: tcp.connect((sys.argv[1], 22))):
    try:
        attempt()
        print("answered")
    except ConnectionRefusedError:
        print("refused")
    except socket.timeout:
        print("silence")
"#;

fn control(socket: &Path, command: &str) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let last = line.starts_with("ok") || line.starts_with("error");
        reply.push_str(&line);
        if last {
            break;
        }
    }
    reply
}

#[test]
fn real_hosts_route_through_sluice() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hosts = Hosts::up();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let routes = dir.path().join("routes.cfg");
    std::fs::write(
        &routes,
        "# the two host subnets\nR10.0.1.0/24 0\nR10.0.2.0/24 1\n",
    )
    .unwrap();
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    for i in 1..=2 {
        args.push(format!(
            "--vdev=net_af_packet{},iface={}-r{i}",
            i - 1,
            hosts.0
        ));
    }
    args.extend(strings(&[
        "--",
        "-p",
        "0x3",
        "--addr",
        "0,10.0.1.1/24",
        "--addr",
        "1,10.0.2.1/24",
    ]));
    args.push(format!("--rule_ipv4={}", routes.display()));
    args.push(format!("--control={}", socket.display()));
    let router = start(&args);

    assert!(hosts.ping(1, "10.0.1.1"), "host 1 cannot ping the router");
    assert!(hosts.ping(2, "10.0.2.1"), "host 2 cannot ping the router");
    // The first packet to a host not yet resolved becomes the router's ARP request for it.
    let _ = hosts.ping(1, "10.0.2.2");
    assert!(hosts.ping(1, "10.0.2.2"), "host 1 cannot ping host 2");
    assert!(hosts.ping(2, "10.0.1.2"), "host 2 cannot ping host 1");
    assert!(control(&socket, "neighbours").contains("10.0.2.2"));
    // Where the TTL runs out, the router says so from its address on that side (traceroute's
    // first hop).
    let expired = hosts.ping_ttl_1(1, "10.0.2.2");
    assert!(
        expired.contains("From 10.0.1.1") && expired.contains("Time to live exceeded"),
        "{expired}"
    );
    // UDP and TCP to the router itself: the host's own stack hears port unreachable and a
    // reset, and its sockets report each port refused.
    let closed = hosts.exec(1, &["python3", "-c", TO_CLOSED_PORTS, "10.0.2.1"]);
    assert_eq!(
        String::from_utf8_lossy(&closed.stdout),
        "refused\nrefused\n",
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );

    // The far host sees TTL 63 (Linux sends 64) and valid checksums.
    let capture = dir.path().join("h2.pcap");
    let mut tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}-h2", hosts.0),
            "tcpdump",
            "-n",
            "-U",               // write each packet at once: the capture is killed, not stopped
            "--immediate-mode", // and take it from the kernel at once, not once a second
            "-Z",               // keep root: the capture file is in the test's private directory
            "root",
            "-c",
            "2",
            "-i",
        ])
        .arg(format!("{}-e2", hosts.0))
        .args(["icmp", "-w"])
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on" once it captures; on a loaded machine that takes a while.
    let mut progress = BufReader::new(tcpdump.stderr.take().unwrap());
    let mut line = String::new();
    while progress.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening on") {
        line.clear();
    }
    assert!(hosts.ping(1, "10.0.2.2"));
    std::thread::sleep(Duration::from_millis(300));
    let _ = tcpdump.kill();
    let _ = tcpdump.wait();
    let seen = Command::new("tcpdump")
        .args(["-n", "-v", "-r"])
        .arg(&capture)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&seen.stdout);
    let request = text
        .lines()
        .position(|l| l.contains("10.0.1.2 > 10.0.2.2"))
        .map(|i| {
            text.lines()
                .nth(i.saturating_sub(1))
                .unwrap_or_default()
                .to_owned()
                + text.lines().nth(i).unwrap()
        })
        .unwrap_or_else(|| {
            panic!(
                "no forwarded echo request captured:\n{text}\n{}",
                String::from_utf8_lossy(&seen.stderr)
            )
        });
    assert!(request.contains("ttl 63"), "{request}");
    assert!(
        !text.contains("bad cksum") && !text.contains("wrong icmp cksum"),
        "{text}"
    );

    // A TCP run across the router.
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}-h2", hosts.0),
            "iperf3",
            "-s",
            "-1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The client starts once the server listens (or after 5 s, for a paused machine).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let listening = hosts.exec(2, &["ss", "-Hltn", "sport = :5201"]);
        if !listening.stdout.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = hosts.exec(1, &["iperf3", "-c", "10.0.2.2", "-t", "3"]);
    let _ = server.wait();
    assert!(
        client.status.success(),
        "iperf3 failed: {}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );

    // Routes change live: without one, traffic stops, and the router says so (net
    // unreachable, from its address on the sender's side); back, it resumes.
    assert_eq!(control(&socket, "route del 10.0.2.0/24"), "ok\n");
    let unrouted = hosts.exec(1, &["ping", "-c", "2", "-i", "0.2", "-w", "5", "10.0.2.2"]);
    let says = String::from_utf8_lossy(&unrouted.stdout);
    assert!(
        !unrouted.status.success()
            && says.contains("From 10.0.1.1")
            && says.contains("Destination Net Unreachable"),
        "still forwarding after the route was deleted, or not saying it cannot:\n{says}"
    );
    assert_eq!(control(&socket, "route add 10.0.2.0/24 1"), "ok\n");
    assert!(
        hosts.ping(1, "10.0.2.2"),
        "not forwarding after the route came back"
    );
    assert!(control(&socket, "routes").contains("10.0.2.0/24 1\n"));
    assert!(control(&socket, "route add 10.9.0.0/16 7").starts_with("error: port 7 is not enabled"));

    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("no_route"),
        "the pings without a route were answered, not dropped:\n{}",
        run.stdout
    );
}

#[test]
fn real_ipv6_hosts_route_through_sluice_with_neighbour_discovery() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hosts = Hosts::up();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let routes = dir.path().join("routes6.cfg");
    std::fs::write(&routes, "Rfd00:1::/64 0\nRfd00:2::/64 1\n").unwrap();
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    for i in 1..=2 {
        args.push(format!(
            "--vdev=net_af_packet{},iface={}-r{i}",
            i - 1,
            hosts.0
        ));
    }
    args.extend(strings(&[
        "--",
        "-p",
        "0x3",
        "--addr",
        "0,fd00:1::1/64",
        "--addr",
        "1,fd00:2::1/64",
    ]));
    args.push(format!("--rule_ipv6={}", routes.display()));
    args.push(format!("--control={}", socket.display()));
    let router = start(&args);

    // The hosts resolve the router by neighbour solicitation, and it answers their pings.
    assert!(hosts.ping(1, "fd00:1::1"), "host 1 cannot ping the router");
    assert!(hosts.ping(2, "fd00:2::1"), "host 2 cannot ping the router");
    // The first packet to an unresolved host becomes the router's solicitation for it.
    let _ = hosts.ping(1, "fd00:2::2");
    assert!(hosts.ping(1, "fd00:2::2"), "host 1 cannot ping host 2");
    assert!(hosts.ping(2, "fd00:1::2"), "host 2 cannot ping host 1");
    let neighbours = control(&socket, "neighbours");
    assert!(
        neighbours.contains("fd00:2::2") && neighbours.contains("fd00:1::2"),
        "{neighbours}"
    );
    let expired = hosts.ping_ttl_1(1, "fd00:2::2");
    assert!(
        expired.contains("From fd00:1::1") && expired.contains("Time exceeded: Hop limit"),
        "{expired}"
    );
    // The hosts' own view: the router's MAC, learned from its advertisements.
    let cache = hosts.exec(1, &["ip", "-6", "neigh", "show", "fd00:1::1"]);
    let cache = String::from_utf8_lossy(&cache.stdout);
    assert!(
        cache.contains("lladdr") && cache.contains("router"),
        "{cache}"
    );

    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
}

/// A router with both families on both ports, between fresh hosts: nothing resolved yet.
fn dual_stack_router(hosts: &Hosts, dir: &Path) -> Running {
    let routes4 = dir.join("routes.cfg");
    let routes6 = dir.join("routes6.cfg");
    std::fs::write(&routes4, "R10.0.1.0/24 0\nR10.0.2.0/24 1\n").unwrap();
    std::fs::write(&routes6, "Rfd00:1::/64 0\nRfd00:2::/64 1\n").unwrap();
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    for i in 1..=2 {
        args.push(format!(
            "--vdev=net_af_packet{},iface={}-r{i}",
            i - 1,
            hosts.0
        ));
    }
    args.extend(strings(&[
        "--",
        "-p",
        "0x3",
        "--addr",
        "0,10.0.1.1/24",
        "--addr",
        "1,10.0.2.1/24",
        "--addr",
        "0,fd00:1::1/64",
        "--addr",
        "1,fd00:2::1/64",
    ]));
    args.push(format!("--rule_ipv4={}", routes4.display()));
    args.push(format!("--rule_ipv6={}", routes6.display()));
    start(&args)
}

#[test]
fn the_first_ping_across_the_router_is_not_lost() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hosts = Hosts::up();
    let dir = tempfile::tempdir().unwrap();
    let router = dual_stack_router(&hosts, dir.path());
    // Each first echo request finds the far host unresolved: the router holds it, asks (ARP,
    // neighbour solicitation), and sends it on when the answer comes.
    for to in ["10.0.2.2", "fd00:2::2"] {
        let out = hosts.exec(1, &["ping", "-c", "5", "-i", "0.2", "-w", "10", to]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("5 received") && text.contains(" 0% packet loss"),
            "{to}: {text}"
        );
    }
    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    // The hosts' own chatter (IPv6 multicast listener reports, router solicitations) may be
    // dropped; nothing waiting for a neighbour was.
    assert!(!run.stdout.contains("no_neighbour"), "{}", run.stdout);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
}

#[test]
fn a_host_that_never_answers_is_reported_unreachable_and_what_overflowed_is_no_neighbour() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hosts = Hosts::up();
    let dir = tempfile::tempdir().unwrap();
    let router = dual_stack_router(&hosts, dir.path());
    // 10.0.2.9 does not exist: the router asks three times, a second apart, then gives up on
    // what it held, answering each with host unreachable as Linux does. Ten pings 0.1 s apart
    // overflow the hold queue of three: the seven pushed out are dropped. ping waits 5 s for
    // the last answers.
    let out = hosts.exec(1, &["ping", "-c", "10", "-i", "0.1", "-W", "5", "10.0.2.9"]);
    let says = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{says}");
    assert_eq!(
        says.matches("From 10.0.1.1 icmp_seq=").count(),
        3,
        "the three held pings are answered:\n{says}"
    );
    assert_eq!(
        says.matches("Destination Host Unreachable").count(),
        3,
        "{says}"
    );
    // IPv6 likewise: three pings, all held, all answered with address unreachable.
    let out = hosts.exec(
        1,
        &["ping", "-6", "-c", "3", "-i", "0.1", "-W", "5", "fd00:2::9"],
    );
    let says = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        says.matches("From fd00:1::1 icmp_seq=").count(),
        3,
        "the three held pings are answered:\n{says}"
    );
    assert_eq!(says.matches("Address unreachable").count(), 3, "{says}");
    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let total = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("total:"))
        .unwrap_or_else(|| panic!("no total in\n{}", run.stdout));
    assert!(total.contains("no_neighbour 7"), "{total}");
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
}
