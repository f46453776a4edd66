//! `L3Forward` on arbitrary bursts, in every configuration, held to the reference router.
//!
//! The input's first byte picks the configuration; the rest is frames, each as a two-byte
//! length, the port it came in by, then its bytes (a short last frame takes what is left).
//! Each packet's verdict must be the reference's, and each packet sent the reference's bytes:
//! valid checksums, TTL or hop limit one less, the right MACs, nothing a RFC forbids.

use crate::reference::scenario::{Kind, Scenario, PORTS};
use crate::reference::{Fate, Router as Reference};
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::stage::offline::Runner;
use sluice::stage::Verdict;
use sluice::{EalBuilder, Mempool, MAX_BURST};
use std::sync::OnceLock;

/// The largest frame a burst carries (a jumbo frame's worth fits the pool's mbufs).
const MAX_FRAME: usize = 2048;

struct World {
    pool: Mempool,
    scenarios: Vec<Scenario>,
}

/// The EAL, a pool and every scenario's tables, built at the first input.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // One EAL for the process, without hugepages (the fuzzer runs anywhere); room for the
        // six scenarios' tables (rte_lpm alone takes 64 MB).
        let eal = EalBuilder::new("sluice-fuzz")
            .args(["-l", "0", "--no-huge", "-m", "1024", "--log-level=*:error"])
            .args(["--no-shconf", "--no-telemetry"])
            .start()
            .unwrap_or_else(|e| panic!("EAL: {e}"));
        // This EAL lives as long as the process and is never cleaned up; with no shared
        // configuration and no telemetry its runtime directory stays empty: remove it now.
        let _ = std::fs::remove_dir_all(eal.runtime_dir());
        let pool = Mempool::pktmbuf(&eal, "fuzz", 1023, DEFAULT_CACHE, DEFAULT_DATA_ROOM, None)
            .expect("a pool");
        let scenarios = Kind::ALL.iter().map(|&k| Scenario::new(&eal, k)).collect();
        World { pool, scenarios }
    })
}

/// The frames of an input: (port, bytes), at most a burst.
fn frames(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 && out.len() < MAX_BURST {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]])) % (MAX_FRAME + 1);
        let port = PORTS[usize::from(data[2]) % PORTS.len()];
        let rest = &data[3..];
        let (frame, next) = rest.split_at(len.min(rest.len()));
        out.push((port, frame));
        data = next;
    }
    out
}

pub fn l3fwd_stage(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let scenario = &world.scenarios[usize::from(pick) % world.scenarios.len()];
    let burst = frames(rest);
    if burst.is_empty() {
        return;
    }
    let mut runner = Runner::new(world.pool.clone());
    let mut stage = scenario.stage();
    let mut reference = Reference::new(scenario.config.clone());
    let run = runner
        .run(&mut stage, &burst)
        .expect("the pool holds a burst");
    assert_eq!(run.outcomes.len(), burst.len(), "one verdict per packet");
    for (i, ((port, frame), outcome)) in burst.iter().zip(&run.outcomes).enumerate() {
        let want = reference.forward(*port, frame);
        let got = match outcome.verdict {
            Verdict::Tx(p) => Fate::Tx(p, outcome.frame.clone()),
            Verdict::Drop(reason) => Fate::Drop(reason.name()),
            Verdict::Hold => Fate::Hold,
            Verdict::Next | Verdict::Handoff(_) => Fate::Drop("next"),
        };
        assert_eq!(
            got, want,
            "packet {i} ({:?}), in on port {port}",
            scenario.config.table
        );
    }
    let (mut sent, mut requested) = (run.sent, reference.take_sent());
    sent.sort();
    requested.sort();
    assert_eq!(sent, requested, "requests for neighbours");
    assert_eq!(runner.counts().held as usize, reference.held().0);
    runner.stop(&mut stage);
}
