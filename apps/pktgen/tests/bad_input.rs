//! Bad input: one clear line each, and a non-zero exit, before any packet is sent.

mod common;

use common::*;

/// Runs with `args` after `--` and returns stderr, insisting on failure.
fn fails(args: &[&str]) -> String {
    let mut all = eal(0, &["net_null0,no-rx=1".to_string()]);
    all.push("--".into());
    all.extend(strings(args));
    let out = run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("sluice-pktgen: error:"))
        .collect();
    assert_eq!(ours.len(), 1, "one error line for {args:?}:\n{stderr}");
    ours[0].to_string()
}

#[test]
fn a_template_too_big_for_its_frame_says_what_it_needs() {
    let e = fails(&["--ipv6", "--size", "64"]);
    assert!(
        e.contains("64 bytes is too small") && e.contains("need 84"),
        "{e}"
    );
    let e = fails(&["--proto", "tcp", "--vlan", "3", "--size", "64,72"]);
    assert!(e.contains("need 80") && e.contains("VLAN"), "{e}");
}

#[test]
fn a_range_that_starts_after_it_ends_is_refused() {
    let e = fails(&["--src-port", "2000-1000"]);
    assert!(
        e.contains("2000-1000") && e.contains("starts after it ends"),
        "{e}"
    );
    let e = fails(&["--dst-ip", "198.18.1.9-198.18.1.1"]);
    assert!(e.contains("starts after it ends"), "{e}");
}

#[test]
fn an_unknown_field_in_the_toml_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streams.toml");
    std::fs::write(
        &path,
        "[[stream]]\nprotocol = \"udp\"\n\n[[stream]]\ndst_ipp = \"198.18.1.1\"\n",
    )
    .unwrap();
    let e = fails(&["--streams", path.to_str().unwrap()]);
    assert!(
        e.contains("streams.toml:5") && e.contains("dst_ipp") && e.contains("expected one of"),
        "{e}"
    );
}

#[test]
fn an_unreadable_pcap_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    let e = fails(&["--pcap", missing.to_str().unwrap()]);
    assert!(e.contains("missing.pcap: cannot open"), "{e}");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let e = fails(&["--pcap", junk.to_str().unwrap()]);
    assert!(e.contains("junk.pcap: not a readable pcap file"), "{e}");
}

#[test]
fn bad_rates_and_options_say_what_was_expected() {
    assert!(fails(&["--rate", "fast"]).contains("expected e.g. 1mpps"));
    assert!(fails(&["--burst", "100"]).contains("expected 1 to 64"));
    assert!(fails(&["--frobnicate"]).contains("unknown option '--frobnicate'"));
}

#[test]
fn the_kv_workload_says_what_it_is_missing() {
    for (args, says) in [
        (&["--workload", "kv"][..], "--workload kv needs --server"),
        (
            &["--workload", "kv", "--server", "10.0.0.1"],
            "needs --rate in requests a second",
        ),
        (
            &[
                "--workload",
                "kv",
                "--server",
                "10.0.0.1",
                "--rate",
                "1gbps",
            ],
            "takes --rate in requests a second",
        ),
        (
            &[
                "--workload",
                "kv",
                "--server",
                "10.0.0.1",
                "--rate",
                "1kpps",
                "--src-ip",
                "10.1.0.1-10.1.0.9",
            ],
            "--src-ip is one value for --workload kv",
        ),
        (
            &[
                "--workload",
                "kv",
                "--server",
                "10.0.0.1",
                "--rate",
                "1kpps",
                "--rfc2544",
            ],
            "--rfc2544 is for --workload stream",
        ),
        (&["--server", "10.0.0.1"], "--server is for --workload kv"),
        (
            &["--workload", "kv", "--server", "10.0.0"],
            "expected an IPv4 address",
        ),
        (
            &["--workload", "kv", "--key-dist", "zipf:9"],
            "expected uniform or zipf:THETA",
        ),
        (
            &["--workload", "kv", "--get-ratio", "1.5"],
            "expected a share from 0 to 1",
        ),
        (
            &["--workload", "kv", "--flood", "syn:1000"],
            "expected hello:RATE",
        ),
    ] {
        let e = fails(args);
        assert!(e.contains(says), "{args:?}: {e}");
    }
}
