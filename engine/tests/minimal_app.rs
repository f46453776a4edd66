//! engine/examples/minimal_app.rs as users run it: its own process on two net_pcap ports, TCP
//! and UDP frames in, the UDP (and anything not TCP) out, and the account with the example's
//! own reason and counter.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The example's binary, which cargo builds beside the tests.
fn example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/minimal_app")
}

/// An Ethernet frame carrying IPv4 or IPv6 with `protocol`, and ports 40000 → `dst_port`.
fn frame(ipv6: bool, protocol: u8, dst_port: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let transport_len = if protocol == 6 { 20 } else { 8 } + 10;
    if ipv6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(transport_len as u16).to_be_bytes());
        f.extend_from_slice(&[protocol, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        f.extend_from_slice(&[0x08, 0, 0x45, 0]);
        f.extend_from_slice(&(20 + transport_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 1, 0, 0, 64, protocol, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2]);
    }
    let mut transport = vec![0u8; transport_len];
    transport[..2].copy_from_slice(&40000u16.to_be_bytes());
    transport[2..4].copy_from_slice(&dst_port.to_be_bytes());
    f.extend_from_slice(&transport);
    f
}

/// A pcap file of `frames` (microsecond timestamps, Ethernet).
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// How many frames a pcap file holds.
fn count_pcap(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let (mut at, mut n) = (24, 0);
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + len;
        n += 1;
    }
    n
}

#[test]
fn the_minimal_app_blocks_tcp_and_counts_udp_by_port() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    let mut frames = Vec::new();
    frames.extend((0..5).map(|_| frame(false, 6, 80)));
    frames.extend((0..3).map(|_| frame(true, 6, 443)));
    frames.extend((0..4).map(|_| frame(false, 17, 53)));
    frames.extend((0..2).map(|_| frame(true, 17, 123)));
    frames.push(frame(false, 1, 0)); // ICMP: neither blocked nor counted
    write_pcap(&input, &frames);

    // A file prefix of its own, for the telemetry socket.
    let prefix = format!("sluice-minimal-{}", std::process::id());
    let child = Command::new(example())
        .args([
            "-l",
            "0",
            "-m",
            "128",
            "--log-level=*:warning",
            "--file-prefix",
            &prefix,
        ])
        .arg(format!("--vdev=net_pcap0,rx_pcap={}", input.display()))
        .arg(format!("--vdev=net_pcap1,tx_pcap={}", output.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The 15 frames take microseconds; two seconds are ample. Its own reason is in the
    // telemetry beside the engine's.
    std::thread::sleep(Duration::from_secs(2));
    let telemetry = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian's dpdk-dev) runs");
    telemetry
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"/sluice/stats\n")
        .unwrap();
    let telemetry = telemetry.wait_with_output().unwrap();
    let telemetry = String::from_utf8_lossy(&telemetry.stdout);
    assert!(
        telemetry.contains("\"tcp_blocked\": 8") && telemetry.contains("\"tx_full\": 0"),
        "{telemetry}"
    );
    // SAFETY: kill has no memory preconditions; the pid is our live child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("stage filter (lane 0): in 15 dropped 8 (tcp_blocked 8)"),
        "{stdout}"
    );
    assert!(stdout.contains("udp_dst_port: 53 4, 123 2"), "{stdout}");
    assert!(
        stdout.contains("total: rx 15 = tx 7 + dropped 8 (tcp_blocked 8)"),
        "{stdout}"
    );
    assert!(stdout.contains("mbufs in use: 0 of"), "{stdout}");
    assert_eq!(count_pcap(&output), 7);
}
