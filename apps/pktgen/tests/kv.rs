//! `--workload kv`: pktgen (the memif server, lcore 0) opens sessions on sluice-kv (lcore 1)
//! and sends it requests; every request is answered with no error or timeout, and both sides
//! count the same operations.

mod common;

use common::memif::*;
use common::*;

#[test]
fn pktgen_drives_sluice_kv_over_memif_with_zero_errors() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kv.sock");
    let _dirs = [runtime_dir("kv-memif"), runtime_dir("pktgen-kv")];
    let mut kv_args = memif_eal(1, "kv-memif", "client", &[&socket]);
    kv_args.extend(strings(&[
        "--",
        "--addr",
        "10.0.0.1/8",
        "--idle",
        "off",
        // The handshakes come all at once: let them take the lcore.
        "--handshake-share",
        "1",
    ]));
    let json_path = dir.path().join("kv.json");
    let mut args = memif_eal(0, "pktgen-kv", "server", &[&socket]);
    args.extend(strings(&[
        "--",
        "--workload",
        "kv",
        "--server",
        "10.0.0.1",
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
        "--json",
    ]));
    args.push(json_path.display().to_string());
    let (out, kv) = with_client(&args, 1, || {
        spawn(&workspace_bin("sluice-kv"), &kv_args, &[])
    });
    let account = kv.stop();
    let j = json(&json_path);
    let show = || format!("{out}\n{account}");
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
    let figure = |name: &str| final_figure(&account, name);
    assert_eq!(figure("kv_get"), r["get"].as_u64().unwrap(), "{}", show());
    assert_eq!(figure("kv_put"), r["put"].as_u64().unwrap(), "{}", show());
    assert_eq!(figure("kv_welcome"), 200, "{}", show());
    assert!(account.contains("mbufs in use: 0"), "{account}");
}

#[test]
fn a_spoofed_hello_flood_makes_no_session_and_costs_the_sessions_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kv.sock");
    let _dirs = [runtime_dir("kv-flood"), runtime_dir("pktgen-flood")];
    let mut kv_args = memif_eal(1, "kv-flood", "client", &[&socket]);
    // The guard as it ships: handshakes at most 5% of the packets.
    kv_args.extend(strings(&["--", "--addr", "10.0.0.1/8", "--idle", "off"]));
    let json_path = dir.path().join("kv.json");
    let mut args = memif_eal(0, "pktgen-flood", "server", &[&socket]);
    args.extend(strings(&[
        "--",
        "--workload",
        "kv",
        "--server",
        "10.0.0.1",
        "--sessions",
        "100",
        "--handshake-rate",
        "400",
        "--rate",
        "10kpps",
        "--flood",
        "100000",
        "--duration",
        "2",
        "--json",
    ]));
    args.push(json_path.display().to_string());
    let (out, kv) = with_client(&args, 1, || {
        spawn(&workspace_bin("sluice-kv"), &kv_args, &[])
    });
    let account = kv.stop();
    let j = json(&json_path);
    let show = || format!("{out}\n{account}");
    assert_eq!(j["sessions"]["open"], 100, "{}", show());
    let (r, f) = (&j["requests"], &j["flood"]);
    assert!(f["sent"].as_u64().unwrap() > 100_000, "{}", show());
    assert_eq!(r["answered"], r["sent"], "{}", show());
    assert_eq!(r["timeouts"], 0, "{}", show());
    assert_eq!(j["errors"], serde_json::json!({}), "{}", show());
    let figure = |name: &str| final_figure(&account, name);
    assert_eq!(
        figure("kv_welcome"),
        100,
        "no session from the flood: {}",
        show()
    );
    assert!(figure("guard_handshakes") > 0, "{}", show());
    assert!(
        f["bytes_answered"].as_u64() <= f["bytes_sent"].as_u64(),
        "no amplification: {}",
        show()
    );
    assert!(account.contains("mbufs in use: 0"), "{account}");
}
