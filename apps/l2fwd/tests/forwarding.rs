//! sluice-l2fwd end to end on real DPDK: each test runs the binary (its own EAL, its own
//! process) on `net_pcap` ports fed from pcap files the test writes, and checks the pcap
//! files it writes back byte for byte, and the final account.

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-l2fwd");

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, f))
            .unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        frames.push(p.unwrap().data.into_owned());
    }
    frames
}

/// A frame of `len` bytes whose bytes after the MACs say which frame it is.
fn frame(tag: u8, i: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x0a, 0, 0, 0, tag, i]);
    f[6..12].copy_from_slice(&[0x0c, 0, 0, 0, tag, i]);
    for (k, b) in f.iter_mut().enumerate().skip(12) {
        *b = tag ^ i ^ k as u8;
    }
    f
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill has no memory preconditions; the pid is our live child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

struct Run {
    stdout: String,
    stderr: String,
    success: bool,
}

/// Starts l2fwd, waits until it is forwarding, lets it run `settle`, then sends `sig`.
fn run_until_signal(args: &[String], settle: Duration, sig: i32) -> (Run, Duration) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The lcore lines come after every port has started.
    while !stdout.contains("lcore ") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            break;
        }
        stdout.push_str(&line);
    }
    std::thread::sleep(settle);
    let signalled = Instant::now();
    signal(&child, sig);
    out.read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (
        Run {
            stdout,
            stderr,
            success: status.success(),
        },
        took,
    )
}

fn eal_args() -> Vec<String> {
    ["-l", "0", "-m", "128", "--log-level=*:warning"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn port_mac(stdout: &str, port: u16) -> [u8; 6] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("port {port}: ")))
        .unwrap_or_else(|| panic!("no line for port {port} in:\n{stdout}"));
    let mac = line
        .split("MAC ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// The frames of one pcap file.
type Frames = Vec<Vec<u8>>;

/// Two pcap ports fed with `in0` and `in1`; returns (inputs, outputs, run), per port.
fn forward_two_ports(extra: &[&str], in0: Frames, in1: Frames) -> ([Frames; 2], [Frames; 2], Run) {
    forward_two_ports_on("0", "2", extra, in0, in1)
}

/// As [`forward_two_ports`], on the given lcores with `-q queues_per_lcore`.
fn forward_two_ports_on(
    lcores: &str,
    queues_per_lcore: &str,
    extra: &[&str],
    in0: Frames,
    in1: Frames,
) -> ([Frames; 2], [Frames; 2], Run) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    write_pcap(&p("in0.pcap"), &in0);
    write_pcap(&p("in1.pcap"), &in1);
    let mut args = eal_args();
    args[1] = lcores.to_owned();
    for port in 0..2 {
        args.push("--vdev".into());
        args.push(format!(
            "net_pcap{port},rx_pcap={},tx_pcap={}",
            p(&format!("in{port}.pcap")).display(),
            p(&format!("out{port}.pcap")).display()
        ));
    }
    args.extend(
        ["--", "-p", "0x3", "-q", queues_per_lcore, "-T", "0"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let (run, _) = run_until_signal(&args, Duration::from_millis(1500), libc::SIGINT);
    let outputs = [read_pcap(&p("out0.pcap")), read_pcap(&p("out1.pcap"))];
    ([in0, in1], outputs, run)
}

/// The app printed `text`.
fn assert_says(run: &Run, text: &str) {
    assert!(
        run.stdout.contains(text),
        "expected {text:?} in:\n{}",
        run.stdout
    );
}

/// The run exited 0 (its account balanced and every mbuf came back).
fn assert_succeeded(run: &Run) {
    assert!(
        run.success,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

/// What each port sent is what its partner received, MACs rewritten as l2fwd does: source =
/// the TX port's MAC, destination = 02:00:00:00:00:TX_PORT.
fn assert_macs_rewritten(inputs: &[Frames; 2], outputs: &[Frames; 2], stdout: &str) {
    for (rx, tx) in [(0usize, 1u16), (1, 0)] {
        let tx_mac = port_mac(stdout, tx);
        let expected: Frames = inputs[rx]
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f[..6].copy_from_slice(&[2, 0, 0, 0, 0, tx as u8]);
                f[6..12].copy_from_slice(&tx_mac);
                f
            })
            .collect();
        assert_eq!(
            outputs[tx as usize], expected,
            "frames from port {rx} out of port {tx}"
        );
    }
}

fn mixed_frames(tag: u8, n: u8) -> Frames {
    (0..n)
        .map(|i| frame(tag, i, 60 + (i as usize * 37) % 1455))
        .collect()
}

#[test]
fn mac_updating_rewrites_source_and_destination() {
    let (inputs, outputs, run) = forward_two_ports(&[], mixed_frames(1, 50), mixed_frames(2, 30));
    assert_succeeded(&run);
    assert_macs_rewritten(&inputs, &outputs, &run.stdout);
    assert_says(&run, "total: rx 80 = tx 80 + dropped 0");
    assert_says(&run, "port 0: rx 50 tx 30 dropped 0");
    assert_says(&run, "mbufs in use: 0 of");
}

#[test]
fn no_mac_updating_forwards_frames_unchanged() {
    let (inputs, outputs, run) = forward_two_ports(
        &["--no-mac-updating"],
        mixed_frames(3, 40),
        mixed_frames(4, 40),
    );
    assert_succeeded(&run);
    assert!(run.stdout.contains("MAC updating disabled"));
    assert_eq!(outputs[1], inputs[0]);
    assert_eq!(outputs[0], inputs[1]);
    assert_says(&run, "total: rx 80 = tx 80 + dropped 0");
    assert_says(&run, "mbufs in use: 0 of");
}

#[test]
fn each_port_on_its_own_lcore() {
    let (inputs, outputs, run) = forward_two_ports_on(
        "0,1",
        "1",
        &["--no-mac-updating"],
        mixed_frames(8, 60),
        mixed_frames(9, 20),
    );
    assert_succeeded(&run);
    assert_says(&run, "lcore 1: RX port 0 TX port 1");
    assert_says(&run, "lcore 0: RX port 1 TX port 0");
    assert_eq!(outputs[1], inputs[0]);
    assert_eq!(outputs[0], inputs[1]);
    assert_says(&run, "total: rx 80 = tx 80 + dropped 0");
    assert_says(&run, "mbufs in use: 0 of");
}

#[test]
fn pipeline_mode_forwards_the_same_bytes() {
    let (inputs, outputs, run) = forward_two_ports_on(
        "0,1",
        "2",
        &["--mode", "pipeline"],
        mixed_frames(10, 70),
        mixed_frames(11, 25),
    );
    assert_succeeded(&run);
    assert!(
        run.stdout
            .contains("lcore 1: RX port 0 -> lcore 0: TX port 1"),
        "{}",
        run.stdout
    );
    assert_macs_rewritten(&inputs, &outputs, &run.stdout);
    assert_says(&run, "total: rx 95 = tx 95 + dropped 0");
    assert_says(&run, "mbufs in use: 0 of");
}

#[test]
fn runts_are_dropped_as_truncated_when_macs_must_be_rewritten() {
    let mut in0 = mixed_frames(5, 10);
    in0.insert(3, vec![0xee; 13]);
    in0.insert(7, vec![0xdd; 1]);
    let (_, outputs, run) = forward_two_ports(&[], in0, mixed_frames(6, 5));
    assert_succeeded(&run);
    assert_eq!(outputs[1].len(), 10);
    assert!(
        run.stdout
            .contains("total: rx 17 = tx 15 + dropped 2 (truncated 2)"),
        "{}",
        run.stdout
    );
    assert_says(&run, "mbufs in use: 0 of");
}

/// Full load from an endless pcap source into a null sink; stopped by `sig` after 2.5 s.
fn stop_under_load(lcores: &str, extra: &[&str], sig: i32) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &mixed_frames(7, 64));
    let mut args = eal_args();
    args[1] = lcores.to_owned();
    args.extend([
        "--vdev".to_owned(),
        format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
        "--vdev".to_owned(),
        "net_null0,no-rx=1".to_owned(),
    ]);
    let l2fwd = ["--", "-p", "3", "-q", "2", "-T", "1"];
    args.extend(l2fwd.iter().chain(extra).map(|s| s.to_string()));
    let (run, took) = run_until_signal(&args, Duration::from_millis(2500), sig);
    assert_succeeded(&run);
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");
    assert!(run.stdout.contains("final account:"));
    assert!(
        run.stdout.contains("Mpps"),
        "periodic report missing:\n{}",
        run.stdout
    );
    let total = run
        .stdout
        .lines()
        .find(|l| l.contains("total: rx"))
        .unwrap();
    let n: Vec<u64> = total
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(n[0] > 0 && n[0] == n[1] + n[2], "{total}");
    assert_says(&run, "mbufs in use: 0 of");
}

#[test]
fn sigterm_under_full_load_stops_within_a_second_with_the_account() {
    stop_under_load("0", &[], libc::SIGTERM);
}

#[test]
fn sigint_in_pipeline_mode_stops_within_a_second_with_the_account() {
    stop_under_load("0,1", &["--mode", "pipeline"], libc::SIGINT);
}
