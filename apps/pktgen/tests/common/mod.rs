//! Running sluice-pktgen from tests: each run is its own process with its own EAL.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod memif;

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice-pktgen");

/// EAL arguments for one in-memory process on `lcore`, plus the devices.
pub fn eal(lcore: u32, vdevs: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-l",
        &lcore.to_string(),
        "-m",
        "128",
        "--no-pci",
        "--in-memory",
        "--log-level=*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for v in vdevs {
        args.push("--vdev".into());
        args.push(v.clone());
    }
    args
}

pub fn run(args: &[String]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("sluice-pktgen runs")
}

/// Runs to completion and insists on success; returns stdout.
pub fn run_ok(args: &[String]) -> String {
    let out = run(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sluice-pktgen {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mbufs in use: 0 of"), "{stdout}");
    stdout
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        frames.push(p.unwrap().data.into_owned());
    }
    frames
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>], gap: Duration) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(gap * i as u32, f.len() as u32, f))
            .unwrap();
    }
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Another binary of the workspace, built beside this test's (scripts/test.sh builds them all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run cargo build --workspace first",
        path.display()
    );
    path
}
