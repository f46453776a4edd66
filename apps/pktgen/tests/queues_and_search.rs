//! Queue choice as a NIC's RSS would make it, and the RFC 2544 zero-loss search.

mod common;

use common::*;
use sluice::rss;
use std::net::Ipv4Addr;

#[test]
fn each_flow_takes_the_queue_rss_would_give_it() {
    let dir = tempfile::tempdir().unwrap();
    let (q0, q1) = (dir.path().join("q0.pcap"), dir.path().join("q1.pcap"));
    let mut args = eal(
        0,
        &[format!(
            "net_pcap0,tx_pcap={},tx_pcap={}",
            q0.display(),
            q1.display()
        )],
    );
    args.extend(strings(&[
        "--",
        "--rx-port",
        "none",
        "--quiet",
        "--tx-queues",
        "2",
        "--count",
        "256",
        "--dst-ip",
        "198.18.1.1-198.18.1.64",
        "--src-port",
        "1000-1063/random",
    ]));
    run_ok(&args);
    let reta = rss::round_robin_reta(128, 2);
    let mut counts = [0usize; 2];
    for (queue, path) in [&q0, &q1].into_iter().enumerate() {
        for frame in read_pcap(path) {
            let ip =
                |at: usize| Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
            let port = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
            let input = rss::ipv4_input(ip(26), ip(30), Some((port(34), port(36))));
            let hash = rss::toeplitz(&rss::DEFAULT_KEY, &input).unwrap();
            assert_eq!(
                usize::from(rss::queue_for(hash, &reta)),
                queue,
                "flow {input:?}"
            );
            counts[queue] += 1;
        }
    }
    assert_eq!(counts[0] + counts[1], 256);
    assert!(
        counts.iter().all(|&c| c > 64),
        "both queues carry flows: {counts:?}"
    );
}

/// An RFC 2544 search on net_ring's loopback, which loses nothing (two_process.rs searches
/// through a lossy forwarder).
#[test]
fn the_search_reports_each_size_and_its_trials() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("search.json");
    let mut args = eal(0, &["net_ring0".to_string()]);
    args.extend(strings(&[
        "--",
        "--rfc2544",
        "--trial",
        "0.5",
        "--drain",
        "0.1",
        "--size",
        "64,128",
        "--json",
    ]));
    args.push(json_path.display().to_string());
    let out = run_ok(&args);
    assert!(out.contains("| frame bytes | zero-loss Mpps"), "{out}");
    let j = json(&json_path);
    let results = j["rfc2544"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, size) in results.iter().zip([64, 128]) {
        assert_eq!(r["frame_size"], size);
        // A loopback loses nothing: the first trial, as fast as it goes, is the answer.
        let trials = r["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 1, "{r}");
        assert_eq!(trials[0]["loss_pct"].as_f64().unwrap(), 0.0);
        let ndr = r["zero_loss_mpps"].as_f64().unwrap();
        assert!(ndr > 0.1, "{r}");
        assert!((ndr - trials[0]["sent_pps"].as_f64().unwrap() / 1e6).abs() < 1e-9);
        assert!(r["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    }
}
