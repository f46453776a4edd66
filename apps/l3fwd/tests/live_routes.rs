//! Routes change 1000 times through the control socket while packets flow: each packet is
//! forwarded by the old table or the new one, none is dropped, lost or leaked; the default
//! route comes and goes the same way.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Lines, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A connection to the control socket.
struct Control {
    writer: UnixStream,
    replies: Lines<BufReader<UnixStream>>,
}

impl Control {
    /// Runs `line`; returns the reply's lines, the last of which is `ok` or `error: ...`.
    fn run(&mut self, line: &str) -> Vec<String> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut reply = Vec::new();
        loop {
            let next = self.replies.next().unwrap().unwrap();
            let done = next == "ok" || next.starts_with("error: ");
            reply.push(next);
            if done {
                return reply;
            }
        }
    }

    fn ok(&mut self, line: &str) {
        let reply = self.run(line);
        assert_eq!(reply.last().unwrap(), "ok", "{line}: {reply:?}");
    }
}

/// sluice-l3fwd on three ports, `rules` for IPv4, its control socket in `dir`; port 0 receives
/// 64-byte UDP to 198.18.1.1-254 forever, ports 1 and 2 are sinks.
fn router_under_load(dir: &std::path::Path, rules: &str) -> (Running, Control) {
    let p = |n: &str| dir.join(n);
    let frames: Vec<Vec<u8>> = (1..=254u8)
        .map(|host| {
            let mut out = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 8])
                .ipv4([10, 0, 0, 1], [198, 18, 1, host], 64)
                .udp(1024, 9)
                .write(&mut out, &[0u8; 18])
                .unwrap();
            out
        })
        .collect();
    write_pcap(&p("in.pcap"), &frames);
    std::fs::write(p("routes.cfg"), rules).unwrap();
    let socket = p("control.sock");
    let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
    args.push(format!(
        "--vdev=net_pcap0,rx_pcap={},tx_pcap={},infinite_rx=1",
        p("in.pcap").display(),
        p("out0.pcap").display()
    ));
    args.extend(strings(&[
        "--vdev=net_null1,no-rx=1",
        "--vdev=net_null2,no-rx=1",
    ]));
    args.extend(strings(&["--", "-p", "0x7"]));
    args.push(format!("--rule_ipv4={}", p("routes.cfg").display()));
    args.push(format!("--control={}", socket.display()));
    let router = start(&args);
    std::thread::sleep(Duration::from_millis(300));
    let stream = UnixStream::connect(&socket).unwrap();
    let control = Control {
        writer: stream.try_clone().unwrap(),
        replies: BufReader::new(stream).lines(),
    };
    (router, control)
}

/// The `port N: rx ...` line of the final account.
fn port_line(stdout: &str, port: u16) -> &str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("port {port}: rx")))
        .unwrap()
}

#[test]
fn thousand_route_changes_under_load_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (router, mut control) = router_under_load(dir.path(), "R198.18.1.0/24 1\n");
    // A /25 lives in rte_lpm's tbl24; a /32 needs a tbl8 group, which RCU must reclaim.
    for _ in 0..1000 {
        control.ok("route add 198.18.1.128/25 2");
        control.ok("route add 198.18.1.7/32 2");
        control.ok("route del 198.18.1.128/25");
        control.ok("route del 198.18.1.7/32");
    }
    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(total_drops(&run.stdout), "none", "{}", run.stdout);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
    let port2 = port_line(&run.stdout, 2);
    assert!(
        !port2.contains(" tx 0 "),
        "the added routes carried traffic: {port2}"
    );
}

#[test]
fn the_default_route_comes_and_goes_under_load() {
    let dir = tempfile::tempdir().unwrap();
    // Half the destinations have a route; the other half only the default one, while it is
    // there, and are dropped as no_route while it is not.
    let (router, mut control) = router_under_load(dir.path(), "R198.18.1.0/25 1\n");
    for _ in 0..1000 {
        control.ok("route add 0.0.0.0/0 2");
        control.ok("route del 0.0.0.0/0");
    }
    control.ok("route add 0.0.0.0/0 2");
    let routes = control.run("routes");
    assert!(routes.contains(&"0.0.0.0/0 2".to_owned()), "{routes:?}");
    let reply = control.run("route del 0.0.0.0/0");
    assert_eq!(reply, ["ok"]);
    let reply = control.run("route del 0.0.0.0/0");
    assert_eq!(reply, ["error: no route to 0.0.0.0/0"]);
    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
    let drops = total_drops(&run.stdout);
    assert!(
        drops == "none" || drops.starts_with("no_route "),
        "only misses: {drops}"
    );
    assert!(
        !port_line(&run.stdout, 1).contains(" tx 0 "),
        "{}",
        run.stdout
    );
    assert!(
        !port_line(&run.stdout, 2).contains(" tx 0 "),
        "the default route carried traffic: {}",
        run.stdout
    );
}
