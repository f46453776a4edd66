//! sluice-kv's command line: each mistake gets one line saying what was expected, and a
//! non-zero exit.

use std::process::Command;

const KV: &str = env!("CARGO_BIN_EXE_sluice-kv");

/// Runs sluice-kv on a net_pcap port (one queue pair, reading an empty capture) with
/// `lcores` and `args`; its exit code and the last line of its standard error.
fn run(lcores: &str, args: &[&str]) -> (i32, String) {
    // A pcap file header (microsecond timestamps, Ethernet) and no packets.
    let pcap = capture();
    let mut header = Vec::new();
    for field in [
        0xa1b2_c3d4u32.to_le_bytes(),
        [2, 0, 4, 0],
        [0; 4],
        [0; 4],
        65535u32.to_le_bytes(),
        1u32.to_le_bytes(),
    ] {
        header.extend_from_slice(&field);
    }
    std::fs::write(&pcap, header).unwrap();
    let pcap = pcap.display();
    let out = Command::new(KV)
        .args([
            "-l",
            lcores,
            "-m",
            "64",
            "--no-pci",
            "--in-memory",
            "--log-level=*:error",
        ])
        .arg(format!("--vdev=net_pcap0,rx_pcap={pcap},tx_pcap=/dev/null"))
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("").to_owned();
    (out.status.code().unwrap_or(-1), last)
}

#[test]
fn mistakes_get_one_line_saying_what_was_expected() {
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "0",
            &["--addr", "10.0.0.1"],
            "expected IP/LEN such as 10.0.1.1/24",
        ),
        (
            "0",
            &["--addr", "10.0.0.1/24", "--memory", "lots"],
            "expected bytes with an optional K, M or G",
        ),
        (
            "0",
            &["--addr", "10.0.0.1/24", "--store", "disk"],
            "expected one of hugepages, heap",
        ),
        ("0", &["--addr", "10.0.0.1/24", "--port", "3"], "no port 3"),
        (
            "0",
            &["--addr", "10.0.0.1/24", "--sessions-max", "20000000"],
            "expected 1 to 16000000",
        ),
        (
            "0,1",
            &["--addr", "10.0.0.1/24"],
            "give fewer lcores with -l, or a device with more queues",
        ),
    ];
    for (lcores, args, expected) in cases {
        let (code, line) = run(lcores, args);
        assert_ne!(code, 0, "{args:?}");
        assert!(line.starts_with("sluice-kv: error: "), "{line}");
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    let _ = std::fs::remove_file(capture());
}

/// Where the empty capture is written.
fn capture() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sluice-kv-cmdline-{}.pcap", std::process::id()))
}
