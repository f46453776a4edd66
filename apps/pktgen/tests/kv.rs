//! `--workload kv`: pktgen (the memif server, lcore 0) opens sessions on sluice-kv (lcore 1)
//! and sends it requests; every request is answered with no error or timeout, and both sides
//! count the same operations. Beside a spoofed HELLO flood too.

mod common;

use common::memif::*;
use common::*;

/// What one pktgen → sluice-kv run left: pktgen's output, sluice-kv's final account, and
/// pktgen's JSON report.
struct Run {
    out: String,
    account: String,
    json: serde_json::Value,
}

impl Run {
    fn show(&self) -> String {
        format!("{}\n{}", self.out, self.account)
    }

    fn figure(&self, name: &str) -> u64 {
        final_figure(&self.account, name)
    }
}

/// pktgen `--workload kv --server 10.0.0.1` with `pktgen_args`, against sluice-kv on
/// 10.0.0.1/8 with `kv_args`, over memif; `prefix` names their runtime folders.
fn run(prefix: &str, kv_args: &[&str], pktgen_args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kv.sock");
    let (kv_prefix, pktgen_prefix) = (format!("kv-{prefix}"), format!("pktgen-{prefix}"));
    let _dirs = [runtime_dir(&kv_prefix), runtime_dir(&pktgen_prefix)];
    let mut kv = memif_eal(1, &kv_prefix, "client", &[&socket]);
    kv.extend(strings(&["--", "--addr", "10.0.0.1/8", "--idle", "off"]));
    kv.extend(strings(kv_args));
    let json_path = dir.path().join("kv.json");
    let mut args = memif_eal(0, &pktgen_prefix, "server", &[&socket]);
    args.extend(strings(&["--", "--workload", "kv", "--server", "10.0.0.1"]));
    args.extend(strings(pktgen_args));
    args.extend(strings(&["--json", &json_path.display().to_string()]));
    let (out, server) = with_client(&args, 1, || spawn(&workspace_bin("sluice-kv"), &kv, &[]));
    let account = server.stop();
    Run {
        out,
        account,
        json: json(&json_path),
    }
}

#[test]
fn pktgen_drives_sluice_kv_over_memif_with_zero_errors() {
    let run = run(
        "memif",
        // The handshakes come all at once: let them take the lcore.
        &["--handshake-share", "1"],
        &[
            "--sessions",
            "200",
            "--handshake-rate",
            "2000",
            "--rate",
            "20kpps",
            "--duration",
            "2",
            "--keys",
            "100",
        ],
    );
    let (j, show) = (&run.json, || run.show());
    assert_eq!(j["sessions"]["open"], 200, "{}", show());
    let r = &j["requests"];
    let sent = r["sent"].as_u64().unwrap();
    assert!(sent > 10_000, "{}", show());
    assert_eq!(r["answered"].as_u64(), Some(sent), "{}", show());
    assert_eq!(r["timeouts"], 0, "{}", show());
    assert_eq!(r["unmatched"], 0, "{}", show());
    assert_eq!(j["errors"], serde_json::json!({}), "{}", show());
    let results = &j["results"];
    assert_eq!(
        results["ok"].as_u64().unwrap() + results["not_found"].as_u64().unwrap(),
        sent,
        "one result per request, each ok or not found: {}",
        show()
    );
    assert_eq!(
        run.figure("kv_get"),
        r["get"].as_u64().unwrap(),
        "{}",
        show()
    );
    assert_eq!(
        run.figure("kv_put"),
        r["put"].as_u64().unwrap(),
        "{}",
        show()
    );
    assert_eq!(run.figure("kv_welcome"), 200, "{}", show());
    assert!(run.account.contains("mbufs in use: 0"), "{}", run.account);
}

#[test]
fn a_spoofed_hello_flood_makes_no_session_and_costs_the_sessions_nothing() {
    // The guard as it ships: handshakes at most 5% of the packets.
    let run = run(
        "flood",
        &[],
        &[
            "--sessions",
            "100",
            "--handshake-rate",
            "400",
            "--rate",
            "10kpps",
            "--flood",
            "hello:100000",
            "--duration",
            "2",
        ],
    );
    let (j, show) = (&run.json, || run.show());
    assert_eq!(j["sessions"]["open"], 100, "{}", show());
    let (r, f) = (&j["requests"], &j["flood"]);
    assert!(f["sent"].as_u64().unwrap() > 100_000, "{}", show());
    assert_eq!(r["answered"], r["sent"], "{}", show());
    assert_eq!(r["timeouts"], 0, "{}", show());
    assert_eq!(j["errors"], serde_json::json!({}), "{}", show());
    assert_eq!(
        run.figure("kv_welcome"),
        100,
        "no session from the flood: {}",
        show()
    );
    assert!(run.figure("guard_handshakes") > 0, "{}", show());
    assert!(
        f["bytes_answered"].as_u64() <= f["bytes_sent"].as_u64(),
        "no amplification: {}",
        show()
    );
    assert!(run.account.contains("mbufs in use: 0"), "{}", run.account);
}
