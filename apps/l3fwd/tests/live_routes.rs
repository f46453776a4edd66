//! Routes change 1000 times through the control socket while packets flow: each packet is
//! forwarded by the old table or the new one, none is dropped, lost or leaked.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[test]
fn thousand_route_changes_under_load_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    // 64-byte UDP to 198.18.1.1 .. 198.18.1.254.
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
    std::fs::write(p("routes.cfg"), "R198.18.1.0/24 1\n").unwrap();
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
    let mut writer = stream.try_clone().unwrap();
    let mut replies = BufReader::new(stream).lines();
    let mut command = |line: &str| {
        writer.write_all(format!("{line}\n").as_bytes()).unwrap();
        let reply = replies.next().unwrap().unwrap();
        assert_eq!(reply, "ok", "{line}");
    };
    // A /25 lives in rte_lpm's tbl24; a /32 needs a tbl8 group, which RCU must reclaim.
    for _ in 0..1000 {
        command("route add 198.18.1.128/25 2");
        command("route add 198.18.1.7/32 2");
        command("route del 198.18.1.128/25");
        command("route del 198.18.1.7/32");
    }
    let run = router.stop();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("dropped 0 (none)\n  forwarding rate")
            || total_drops(&run.stdout) == "none",
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
    let port2 = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("port 2: rx"))
        .unwrap();
    assert!(
        !port2.contains(" tx 0 "),
        "the added routes carried traffic: {port2}"
    );
}
