//! Running sluice-l3fwd from tests: each run is its own process with its own EAL.
#![allow(dead_code)] // each test binary uses its own part of this module

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice-l3fwd");

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, f))
            .unwrap();
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        frames.push(p.unwrap().data.into_owned());
    }
    frames
}

/// Two net_pcap ports in `dir`: port 0 receives `frames`, port 1 nothing, and port N sends into
/// `outN.pcap`; returns their `--vdev` arguments.
pub fn pcap_ports(dir: &Path, frames: &[Vec<u8>]) -> Vec<String> {
    write_pcap(&dir.join("in0.pcap"), frames);
    write_pcap(&dir.join("in1.pcap"), &[]);
    (0..2)
        .map(|n| {
            format!(
                "--vdev=net_pcap{n},rx_pcap={},tx_pcap={}",
                dir.join(format!("in{n}.pcap")).display(),
                dir.join(format!("out{n}.pcap")).display()
            )
        })
        .collect()
}

pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// A running sluice-l3fwd whose start-up output has been read.
pub struct Running {
    pub child: Child,
    pub stdout: String,
    out: BufReader<std::process::ChildStdout>,
}

/// Starts sluice-l3fwd and waits until its lcores are polling.
pub fn start(args: &[String]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stdout.contains("lcore ") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            break;
        }
        stdout.push_str(&line);
    }
    Running { child, stdout, out }
}

impl Running {
    /// SIGINT, then everything it printed.
    pub fn stop(mut self) -> Run {
        // SAFETY: kill has no memory preconditions; the pid is our live child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.out.read_to_string(&mut self.stdout).unwrap();
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        Run {
            stdout: std::mem::take(&mut self.stdout),
            stderr,
            success: status.success(),
        }
    }
}

impl Drop for Running {
    /// A test that fails before `stop` must not leave its router running (it holds hugepages).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs sluice-l3fwd over its pcap ports for 1.5 s once its lcores poll, time to forward what
/// they hold, then stops it and checks that it exited cleanly with every mbuf back.
pub fn run_over_pcaps(args: &[String]) -> Run {
    let running = start(args);
    std::thread::sleep(Duration::from_millis(1500));
    let run = running.stop();
    assert!(run.success, "l3fwd failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
    run
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The MAC sluice-l3fwd printed for `port`.
pub fn port_mac(stdout: &str, port: u16) -> [u8; 6] {
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

/// The drops by reason of the final account's total line, e.g. `no_route 2, ttl_exceeded 1`.
pub fn total_drops(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("total: rx"))
        .unwrap_or_else(|| panic!("no total line in:\n{stdout}"));
    line.rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .to_owned()
}
