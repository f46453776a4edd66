//! sluice-pktgen against a second DPDK process over net_memif (pktgen's side is the server):
//! an impairing forwarder that drops every 100th packet and swaps neighbours, whose own counts
//! pktgen's loss and reorder figures must equal; sluice-l3fwd routing 64-byte UDP to
//! 198.18.1.0/24 back with zero loss, and under hostile traffic. (sluice-impair's are in
//! impair.rs.)

mod common;

use common::memif::*;
use common::*;
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::pipeline::{Lane, Pipeline, Settings};
use sluice::stage::{Action, Stage};
use sluice::stats::DropReason;
use sluice::worker::StopFlag;
use sluice::{EalBuilder, Mbuf, Mempool, Port, PortConfig};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Packets a run must at least carry for its counts to be worth checking. The tests ask for
/// 200 kpps; a shared machine may give far less, and rates are for scripts/bench.sh to judge.
const ENOUGH: u64 = 50_000;

/// Drops every 100th packet and swaps the 10th and 11th of every 50: impairments with known
/// counts.
struct Impair {
    seen: u64,
    dropped: Arc<AtomicU64>,
    swapped: Arc<AtomicU64>,
}

impl Stage for Impair {
    fn name(&self) -> &str {
        "impair"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]) {
        let first = self.seen;
        self.seen += packets.len() as u64;
        for (i, action) in actions.iter_mut().enumerate() {
            *action = if (first + i as u64 + 1).is_multiple_of(100) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Action::drop(DropReason::Filtered)
            } else {
                Action::tx(0)
            };
        }
        for i in 0..packets.len().saturating_sub(1) {
            let both_sent = actions[i] == Action::tx(0) && actions[i + 1] == Action::tx(0);
            if (first + i as u64) % 50 == 10 && both_sent {
                packets.swap(i, i + 1);
                self.swapped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
#[ignore = "the impairing forwarder: loss_and_reordering_are_counted_exactly starts it"]
fn impairing_forwarder() {
    let Ok(socket) = std::env::var("IMPAIR_SOCKET") else {
        return;
    };
    let _dir = runtime_dir("impair"); // dropped last, after the EAL
    let args = memif_eal(1, "impair", "client", &[Path::new(&socket)]);
    let stop = StopFlag::new();
    stop.on_signals().unwrap();
    let eal = EalBuilder::new("impair").args(args).start().unwrap();
    let pool =
        Mempool::pktmbuf(&eal, "impair", 8192, DEFAULT_CACHE, DEFAULT_DATA_ROOM, None).unwrap();
    let (_port, rx, tx) = Port::start(&eal, 0, &PortConfig::default(), &pool).unwrap();
    let (dropped, swapped) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut pipeline = Pipeline::new(Settings::default());
    pipeline.lane(Lane {
        rx,
        tx,
        stages: vec![Box::new(Impair {
            seen: 0,
            dropped: dropped.clone(),
            swapped: swapped.clone(),
        })],
        lcore: 1,
        stage_lcore: None,
    });
    println!("impair: forwarding");
    let outcome = pipeline.run(&eal, &stop, |_, _| {}).unwrap();
    let totals = outcome.stats.totals();
    println!(
        "impair: received {} dropped {} swapped {} tx_full {}",
        totals.rx,
        dropped.load(Ordering::Relaxed),
        swapped.load(Ordering::Relaxed),
        totals.drops_for(DropReason::TxFull)
    );
}

/// Starts this test binary's impairing forwarder as the memif client on `socket`.
fn impairing(socket: &Path) -> Peer {
    spawn(
        &std::env::current_exe().unwrap(),
        &strings(&["--ignored", "--exact", "impairing_forwarder", "--nocapture"]),
        &[("IMPAIR_SOCKET", socket.display().to_string())],
    )
}

fn figure(text: &str, name: &str) -> u64 {
    text.split(&format!("{name} "))
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no '{name}' in {text}"))
}

#[test]
fn loss_and_reordering_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("impair.sock");
    let json_path = dir.path().join("run.json");
    let _dir = runtime_dir("pktgen-impair");
    let mut args = memif_eal(0, "pktgen-impair", "server", &[&socket]);
    args.extend(strings(&[
        "--",
        "--quiet",
        "--rate",
        "200kpps",
        "--duration",
        "2",
        "--dst-port",
        "1-64",
        "--json",
    ]));
    args.push(json_path.display().to_string());
    let (out, forwarder) = with_client(&args, 1, || impairing(&socket));
    let impaired = forwarder.stop();
    let (dropped, swapped) = (figure(&impaired, "dropped"), figure(&impaired, "swapped"));
    let j = json(&json_path);
    let stream = &j["streams"][0];
    let tx = stream["tx_packets"].as_u64().unwrap();
    // Enough traffic for the counts to mean something; how fast is for scripts/bench.sh.
    assert!(tx > ENOUGH, "sent only {tx}:\n{out}");
    assert_eq!(
        figure(&impaired, "received"),
        tx,
        "the forwarder saw every packet sent"
    );
    // When pktgen is descheduled for a moment its RX ring fills and the forwarder drops
    // what it cannot send (tx_full): counted, so the loss still adds up exactly.
    let tx_full = figure(&impaired, "tx_full");
    assert_eq!(stream["lost"].as_u64().unwrap(), dropped + tx_full, "{out}");
    assert_eq!(dropped, tx / 100);
    let reordered = stream["reordered"].as_u64().unwrap();
    if tx_full == 0 {
        let loss = stream["loss_pct"].as_f64().unwrap();
        assert!((loss - 1.0).abs() < 0.01, "loss {loss}%");
        assert_eq!(reordered, swapped, "{out}");
    } else {
        assert!(reordered <= swapped + tx_full, "{out}");
    }
    assert!(swapped > 0, "no neighbours came in one burst");
    assert_eq!(stream["duplicates"].as_u64().unwrap(), 0);
    assert!(stream["latency_us"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn pktgen_drives_l3fwd_over_memif_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (s0, s1) = (dir.path().join("m0.sock"), dir.path().join("m1.sock"));
    let _dirs = [runtime_dir("l3fwd-memif"), runtime_dir("pktgen-l3fwd")];
    let mut l3fwd_args = memif_eal(1, "l3fwd-memif", "client", &[&s0, &s1]);
    l3fwd_args.extend(strings(&["--", "-p", "0x3", "--config", "(0,0,1),(1,0,1)"]));
    let json_path = dir.path().join("run.json");
    let mut args = memif_eal(0, "pktgen-l3fwd", "server", &[&s0, &s1]);
    args.extend(strings(&[
        "--",
        "--tx-port",
        "0",
        "--rx-port",
        "1",
        "--rate",
        "200kpps",
        "--duration",
        "5",
        "--size",
        "64",
        "--dst-ip",
        "198.18.1.1-198.18.1.254",
        "--json",
    ]));
    args.push(json_path.display().to_string());
    let (out, l3fwd) = with_client(&args, 2, || {
        spawn(&workspace_bin("sluice-l3fwd"), &l3fwd_args, &[])
    });
    let routed = l3fwd.stop();
    let j = json(&json_path);
    let tx = j["tx"][0]["packets"].as_u64().unwrap();
    let rx = j["rx"][0]["packets"].as_u64().unwrap();
    assert!(tx > ENOUGH, "sent only {tx}:\n{out}");
    // Nothing is lost without a reason: l3fwd drops only what pktgen, descheduled for a
    // moment on a busy machine, had no room to receive (tx_full); on a quiet one, nothing.
    let drops = drops_by_reason(&routed);
    let tx_full = drops.get("tx_full").copied().unwrap_or(0);
    assert!(drops.keys().all(|r| r == "tx_full"), "{routed}");
    assert_eq!(rx + tx_full, tx, "{out}\n{routed}");
    assert_eq!(j["total"]["lost"].as_u64().unwrap(), tx_full);
    let latency = &j["total"]["latency_us"];
    assert!(
        latency["p50"].as_f64().unwrap() > 0.0
            && latency["max"].as_f64().unwrap() >= latency["p99"].as_f64().unwrap()
    );
    assert!(out.contains("latency us: min"), "{out}");
    assert!(
        routed.contains(&format!("total: rx {tx} = tx {rx} + dropped {tx_full}")),
        "{routed}"
    );
}

/// The RFC 2544 search through the forwarder that loses 1% at any rate: with no tolerance it
/// narrows down to nothing, trial by trial; with 1.5% tolerated, the first trial passes.
#[test]
fn the_zero_loss_search_narrows_down_through_a_lossy_forwarder() {
    for (tolerance, passes) in [("0", false), ("1.5", true)] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("impair.sock");
        let json_path = dir.path().join("search.json");
        let _dir = runtime_dir("pktgen-search");
        let mut args = memif_eal(0, "pktgen-search", "server", &[&socket]);
        args.extend(strings(&[
            "--",
            "--rfc2544",
            "--trial",
            "0.3",
            "--drain",
            "0.1",
            "--resolution",
            "20",
            "--loss-tolerance",
            tolerance,
            "--json",
        ]));
        args.push(json_path.display().to_string());
        let (out, forwarder) = with_client(&args, 1, || impairing(&socket));
        forwarder.stop();
        let j = json(&json_path);
        let result = &j["rfc2544"][0];
        let trials = result["trials"].as_array().unwrap();
        let ndr = result["zero_loss_mpps"].as_f64().unwrap();
        if passes {
            assert_eq!(trials.len(), 1, "{out}");
            assert!(ndr > 0.0, "{out}");
        } else {
            // 1/2, 1/4, ... of the top rate until the interval is under 20% of it: 3 more.
            assert_eq!(trials.len(), 4, "{out}");
            assert_eq!(ndr, 0.0, "{out}");
            assert!(
                trials.iter().all(|t| t["loss_pct"].as_f64().unwrap() > 0.5),
                "{out}"
            );
            let asked: Vec<f64> = trials[1..]
                .iter()
                .map(|t| t["asked_pps"].as_f64().unwrap())
                .collect();
            assert!(
                asked.windows(2).all(|w| (w[1] - w[0] / 2.0).abs() < 1.0),
                "halving: {asked:?}"
            );
        }
    }
}

/// Mixed hostile traffic end to end: pktgen spoils 10% of what it sends to sluice-l3fwd in
/// router mode (bad checksums, truncations, bad lengths and versions, martians, expired TTLs,
/// random bytes), over IPv4 and IPv6. The router keeps running, every good packet comes back,
/// and its drops by reason are exactly what pktgen spoiled of each kind.
#[test]
fn a_router_under_hostile_traffic_drops_exactly_what_was_spoiled() {
    let dir = tempfile::tempdir().unwrap();
    let (s0, s1) = (dir.path().join("m0.sock"), dir.path().join("m1.sock"));
    let _dirs = [runtime_dir("l3fwd-hostile"), runtime_dir("pktgen-hostile")];
    let mut l3fwd_args = memif_eal(1, "l3fwd-hostile", "client", &[&s0, &s1]);
    l3fwd_args.extend(strings(&[
        "--",
        "-p",
        "0x3",
        "--config",
        "(0,0,1),(1,0,1)",
        "--addr",
        "0,198.18.0.1/24",
        "--addr",
        "1,198.18.1.1/24",
        "--eth-dest",
        "1,02:00:00:00:00:01",
        "--icmp-rate",
        "0",
    ]));
    let streams = dir.path().join("streams.toml");
    std::fs::write(
        &streams,
        "[[stream]]\nsrc_ip = \"198.18.0.7\"\ndst_ip = \"198.18.1.2-198.18.1.254\"\nsize = 128\n\
         [[stream]]\nipv6 = true\ndst_ip = \"2001:200:0:1::2-2001:200:0:1::ff\"\nsize = 128\n",
    )
    .unwrap();
    let json_path = dir.path().join("run.json");
    let mut args = memif_eal(0, "pktgen-hostile", "server", &[&s0, &s1]);
    args.extend(strings(&[
        "--",
        "--tx-port",
        "0",
        "--rx-port",
        "1",
        "--rate",
        "200kpps",
        "--duration",
        "3",
        "--malformed",
        "10",
        "--quiet",
        "--streams",
    ]));
    args.push(streams.display().to_string());
    args.push("--json".into());
    args.push(json_path.display().to_string());
    let (out, l3fwd) = with_client(&args, 2, || {
        spawn(&workspace_bin("sluice-l3fwd"), &l3fwd_args, &[])
    });
    let routed = l3fwd.stop();
    let j = json(&json_path);
    let sent = j["tx"][0]["packets"].as_u64().unwrap();
    let spoiled = &j["malformed"];
    let count = |kind: &str| spoiled[kind].as_u64().unwrap();
    let total_spoiled: u64 = sluice_pktgen::malformed::Kind::ALL
        .iter()
        .map(|k| count(k.name()))
        .sum();
    assert!(sent > ENOUGH, "sent only {sent}:\n{out}");
    let share = total_spoiled as f64 / sent as f64;
    assert!(
        (0.09..0.11).contains(&share),
        "spoiled {share} of it:\n{out}"
    );
    assert_eq!(j["total"]["lost"].as_u64().unwrap(), 0, "{out}\n{routed}");
    assert_eq!(
        j["total"]["tx_packets"].as_u64().unwrap() + total_spoiled,
        sent
    );
    let mut want = std::collections::BTreeMap::new();
    for kind in sluice_pktgen::malformed::Kind::ALL {
        *want.entry(kind.router_reason().to_owned()).or_insert(0) += count(kind.name());
    }
    assert_eq!(drops_by_reason(&routed), want, "{routed}");
    assert!(routed.contains("mbufs in use: 0 of"), "{routed}");
}
