//! Two DPDK processes over net_memif: sluice-pktgen as the server, a forwarder as the client.

use super::{strings, BIN};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// EAL arguments for a memif process: memif needs the multi-process socket, so a unique
/// prefix with --huge-unlink instead of --in-memory.
pub fn memif_eal(lcore: u32, prefix: &str, role: &str, sockets: &[&Path]) -> Vec<String> {
    let mut args = strings(&[
        "-l",
        &lcore.to_string(),
        "-m",
        "256",
        "--no-pci",
        "--huge-unlink",
        "--log-level=*:warning",
    ]);
    args.push(format!("--file-prefix={prefix}-{}", std::process::id()));
    for (i, s) in sockets.iter().enumerate() {
        args.push("--vdev".into());
        args.push(format!("net_memif{i},role={role},socket={}", s.display()));
    }
    args
}

/// The EAL's runtime directory of a process started with `memif_eal(.., prefix, ..)` by this
/// process, removed when dropped: DPDK leaves it behind for a prefix of one's own.
pub struct RuntimeDir(PathBuf);

pub fn runtime_dir(prefix: &str) -> RuntimeDir {
    RuntimeDir(Path::new("/var/run/dpdk").join(format!("{prefix}-{}", std::process::id())))
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child that is killed if the test fails before stopping it.
pub struct Peer(Option<Child>);

impl Peer {
    pub fn stop(mut self) -> String {
        let mut child = self.0.take().unwrap();
        // SAFETY: kill has no memory preconditions; the pid is our live child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "peer failed:\n{out}\n{err}");
        out
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn spawn(program: &Path, args: &[String], envs: &[(&str, String)]) -> Peer {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Peer(Some(cmd.spawn().unwrap()))
}

/// Starts sluice-pktgen (the memif server), waits until it has started its `ports` ports (the
/// memif sockets listen from then on; they are abstract, so there is no file to wait for),
/// starts the client with `client`, and returns pktgen's output once it has finished, with
/// the client still running.
pub fn with_client(args: &[String], ports: usize, client: impl FnOnce() -> Peer) -> (String, Peer) {
    let mut pktgen = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(pktgen.stdout.take().unwrap());
    let mut stdout = String::new();
    while stdout.matches("net_memif").count() < ports {
        if reader.read_line(&mut stdout).unwrap() == 0 {
            break;
        }
    }
    let peer = client();
    reader.read_to_string(&mut stdout).unwrap();
    let status = pktgen.wait().unwrap();
    let mut stderr = String::new();
    pktgen
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success() && stdout.contains("mbufs in use: 0 of"),
        "sluice-pktgen failed:\n{stdout}\n{stderr}"
    );
    (stdout, peer)
}

/// The drops of a final account's total line, by reason: `{"bad_checksum": 12, ...}`.
pub fn drops_by_reason(account: &str) -> std::collections::BTreeMap<String, u64> {
    let line = account
        .lines()
        .find(|l| l.trim_start().starts_with("total: rx"))
        .unwrap_or_else(|| panic!("no total line in:\n{account}"));
    let reasons = line.rsplit_once('(').unwrap().1.trim_end_matches(')');
    reasons
        .split(", ")
        .filter(|r| *r != "none")
        .map(|r| {
            let (name, n) = r.rsplit_once(' ').unwrap();
            (name.to_owned(), n.parse().unwrap())
        })
        .collect()
}

/// A figure of a forwarder's final account: the number after `name ` (0 if it has none).
pub fn final_figure(account: &str, name: &str) -> u64 {
    let (_, last) = account
        .split_once("final account:")
        .unwrap_or_else(|| panic!("no final account:\n{account}"));
    last.split(&format!("{name} "))
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
