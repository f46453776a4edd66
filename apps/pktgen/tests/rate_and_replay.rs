//! Pacing (never faster than asked, and any shortfall reported: a functional check, not a
//! speed test) and pcap replay.

mod common;

use common::*;
use std::time::Duration;

/// Runs pktgen at `rate` for 2 s into net_null: the rate it sent, and its output.
fn achieved_mpps(rate: &str) -> (f64, String) {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("run.json");
    let mut args = eal(0, &["net_null0,no-rx=1".to_string()]);
    args.extend(strings(&[
        "--",
        "--rx-port",
        "none",
        "--quiet",
        "--rate",
        rate,
        "--duration",
        "2",
        "--json",
    ]));
    args.push(json_path.display().to_string());
    let out = run_ok(&args);
    let j = json(&json_path);
    let seconds = j["seconds"].as_f64().unwrap();
    // Never short of the duration; past it by at most a pause of the machine, which holds the
    // sending lcore as it passes its deadline (250 ms under scripts/pauses.sh).
    assert!((2.0..2.5).contains(&seconds), "ran {seconds} s");
    (j["tx"][0]["mpps"].as_f64().unwrap(), out)
}

/// Pacing never sends faster than asked; on a quiet machine it sends within 2% of it, and
/// when the lcore could not keep up (a shared machine), pktgen says so rather than pass a
/// lower rate off as the one asked.
fn paces(rate: &str, mpps: f64) {
    let (got, out) = achieved_mpps(rate);
    assert!(
        got <= mpps * 1.02,
        "asked {mpps} Mpps, sent {got}: faster than asked"
    );
    if got < mpps * 0.98 {
        assert!(
            out.contains(&format!("short of the {mpps:.3} Mpps asked")),
            "sent {got} of {mpps} Mpps without saying so:\n{out}"
        );
    }
}

#[test]
fn one_mpps_is_never_exceeded_and_a_shortfall_is_reported() {
    paces("1mpps", 1.0);
}

#[test]
fn a_tenth_of_a_mpps_is_never_exceeded_and_a_shortfall_is_reported() {
    paces("100kpps", 0.1);
}

#[test]
fn a_pcap_in_is_the_same_frames_out_for_every_loop() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Vec<u8>> = (0..50u8)
        .map(|i| {
            let mut f = vec![i; 60 + usize::from(i)];
            f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
            f
        })
        .collect();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    write_pcap(&input, &frames, Duration::from_micros(100));
    for (timing, loops) in [("fast", 3), ("file", 1)] {
        let mut args = eal(0, &[format!("net_pcap0,tx_pcap={}", output.display())]);
        args.extend(strings(&[
            "--",
            "--rx-port",
            "none",
            "--quiet",
            "--pcap-timing",
            timing,
            "--loop",
            &loops.to_string(),
            "--pcap",
        ]));
        args.push(input.display().to_string());
        let out = run_ok(&args);
        let sent = read_pcap(&output);
        let expected: Vec<Vec<u8>> = (0..loops).flat_map(|_| frames.clone()).collect();
        assert_eq!(sent.len(), expected.len(), "{timing}: {out}");
        assert!(sent == expected, "{timing}: the frames differ");
        if timing == "file" {
            // 50 frames 100 us apart take about 5 ms at the file's own pace.
            let took: f64 = out
                .split("summary: ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap();
            assert!(took >= 0.0045, "file timing took {took} s");
        }
    }
}
