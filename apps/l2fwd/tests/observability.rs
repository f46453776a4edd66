//! A running sluice-l2fwd seen from outside, with DPDK's own tools: `dpdk-telemetry.py` reads
//! the `/sluice/*` telemetry commands, and `dpdk-dumpcap` captures through pdump. Both attach
//! through the runtime directory, so the app runs with a --file-prefix of the test's own.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-l2fwd");

/// The app under load, and its runtime files removed when the test ends.
struct App {
    child: Child,
    prefix: String,
}

impl App {
    fn start(prefix: &str, pcap: &std::path::Path) -> App {
        let child = Command::new(BIN)
            .args([
                "-l",
                "0",
                "-m",
                "128",
                "--log-level=*:warning",
                &format!("--file-prefix={prefix}"),
            ])
            .args([
                "--vdev",
                &format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()),
            ])
            .args([
                "--vdev",
                "net_null0,no-rx=1",
                "--",
                "-p",
                "3",
                "-q",
                "2",
                "-T",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let app = App {
            child,
            prefix: prefix.to_owned(),
        };
        // Ready once its telemetry socket exists.
        let socket = format!("/var/run/dpdk/{prefix}/dpdk_telemetry.v2");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::path::Path::new(&socket).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        app
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        // Without --huge-unlink (which secondaries cannot work with) DPDK keeps these.
        for entry in std::fs::read_dir("/dev/hugepages")
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{}map_", self.prefix))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

fn pcap(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("in.pcap");
    let mut w = pcap_file::pcap::PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let frame = [0x42u8; 64];
    w.write_packet(&pcap_file::pcap::PcapPacket::new(
        Duration::ZERO,
        64,
        &frame,
    ))
    .unwrap();
    path
}

#[test]
fn telemetry_reports_stats_and_placement() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("sluice-obs-tel-{}", std::process::id());
    let _app = App::start(&prefix, &pcap(dir.path()));
    let mut client = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian's dpdk-dev) runs");
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"/sluice/stats\n/sluice/placement\n")
        .unwrap();
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stats_line = text
        .lines()
        .find(|l| l.starts_with("{\"/sluice/stats\""))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(stats_line.contains("\"port0\": {\"rx\": "), "{stats_line}");
    assert!(stats_line.contains("\"tx_full\": 0"), "{stats_line}");
    let rx: u64 = stats_line["{\"/sluice/stats\": {\"rx\": ".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rx > 0, "{stats_line}");
    assert!(text.contains("\"lcore 0: RX port 0 queue 0\""), "{text}");
    assert!(text.contains("stage l2fwd"), "{text}");
}

#[test]
fn dumpcap_captures_from_the_running_app() {
    if std::env::var(sluice::eal::EXTRA_ARGS_ENV).is_ok_and(|a| a.contains("--no-huge")) {
        eprintln!("skipped: dpdk-dumpcap attaches as a secondary process, which a --no-huge primary cannot have");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("sluice-obs-cap-{}", std::process::id());
    let _app = App::start(&prefix, &pcap(dir.path()));
    let capture = dir.path().join("cap.pcapng");
    let out = Command::new("timeout")
        .args([
            "20",
            "dpdk-dumpcap",
            &format!("--file-prefix={prefix}"),
            "-i",
            "0",
            "-c",
            "10",
            "-q",
        ])
        .arg("-w")
        .arg(&capture)
        .output()
        .expect("dpdk-dumpcap (Debian's dpdk-dev) runs");
    assert!(
        out.status.success(),
        "dumpcap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&capture).unwrap();
    // pcapng: a section header block, then enhanced packet blocks (type 6) holding our frame.
    assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
    let frames = bytes
        .windows(64)
        .filter(|w| w.iter().all(|b| *b == 0x42))
        .count();
    assert!(frames >= 10, "{frames} frames of ours in the capture");
}
