//! Two pairs of ports on one lcore: each port's packets leave by its peer, and nothing else.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `rx` and `tx` figures of `port` in the final account.
fn figures(account: &str, port: u16) -> (u64, u64) {
    let (_, last) = account.split_once("final account:").expect("an account");
    let line = last
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("port {port}: rx")))
        .unwrap_or_else(|| panic!("no port {port} in {last}"));
    let mut words = line.split_whitespace();
    let mut after = |w: &str| -> u64 {
        words
            .by_ref()
            .skip_while(|x| *x != w)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    (after("rx"), after("tx"))
}

#[test]
fn each_pair_forwards_to_its_own_peer() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-impair"))
        .args(["-l", "0", "-m", "128", "--no-pci", "--in-memory"])
        .args(["--log-level=*:warning"])
        .args(["--vdev", "net_null0", "--vdev", "net_null1"])
        .args(["--vdev", "net_null2", "--vdev", "net_null3"])
        .args([
            "--",
            "--ports",
            "0,1",
            "--ports",
            "2,3",
            "--stats-period",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut account = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut account)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{account}");
    for (a, b) in [(0, 1), (2, 3)] {
        let ((a_rx, a_tx), (b_rx, b_tx)) = (figures(&account, a), figures(&account, b));
        assert!(a_rx > 0 && b_rx > 0, "{account}");
        assert_eq!((a_tx, b_tx), (b_rx, a_rx), "{account}");
    }
    assert!(account.contains("mbufs in use: 0"), "{account}");
}
