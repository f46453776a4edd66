//! The guard stage on real rte_meter buckets (through the offline runner, with real mbufs):
//! a source beyond its burst is limited, handshakes beyond their floor are dropped while
//! established packets pass, and a table too small for the sources evicts, counted.

mod common;

use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::stage::guard::{Class, Guard, GuardConfig};
use sluice::stage::offline::Runner;
use sluice::stage::Verdict;
use sluice::stats::{Counter, Reason};
use sluice::Mempool;
use std::net::{IpAddr, Ipv4Addr};

/// Test frames: byte 0 is the class (0 established, 1 handshake), bytes 1..5 the source.
fn frame(class: u8, source: u32) -> Vec<u8> {
    let mut f = vec![class];
    f.extend_from_slice(&source.to_be_bytes());
    f.resize(60, 0);
    f
}

fn classify(data: &[u8]) -> Option<(IpAddr, Class)> {
    let source = IpAddr::V4(Ipv4Addr::from(u32::from_be_bytes(
        data[1..5].try_into().ok()?,
    )));
    let class = if data[0] == 1 {
        Class::Handshake
    } else {
        Class::Established
    };
    Some((source, class))
}

/// Runs `frames` through `guard` a burst of 32 at a time; how many passed.
fn passed(runner: &mut Runner, guard: &mut Guard, frames: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for burst in frames.chunks(32) {
        let burst: Vec<(u16, &[u8])> = burst.iter().map(|f| (0, f.as_slice())).collect();
        let run = runner.run(guard, &burst).expect("room in the pool");
        n += run
            .outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Next)
            .count();
    }
    n
}

#[test]
fn the_guard_limits_sources_and_handshakes_and_lets_sessions_through() {
    let eal = common::start_eal(&[]);
    let pool = Mempool::pktmbuf(&eal, "guard", 1023, 32, DEFAULT_DATA_ROOM, None).unwrap();
    let mut runner = Runner::new(pool);

    // One source: its burst of 20 passes, the rest of 200 at once is beyond its rate.
    let config = GuardConfig {
        source_rate: 100,
        source_burst: 20,
        sources: 16,
        handshake_share: 0.05,
        handshake_floor: 1_000_000,
    };
    let mut guard = Guard::new(config, Box::new(classify)).unwrap();
    let one: Vec<_> = (0..200).map(|_| frame(0, 7)).collect();
    let through = passed(&mut runner, &mut guard, &one);
    assert!((20..=22).contains(&through), "{through} passed");
    assert_eq!(
        runner.counts().drops_for(Reason::named("guard_rate")),
        200 - through as u64
    );

    // Handshakes from many sources: the window lets through the floor of 10 or 5% of what
    // it saw so far, whichever is more: 12 of 256; established packets from the same
    // sources all pass.
    let config = GuardConfig {
        source_rate: 1_000_000,
        source_burst: 1_000,
        sources: 1024,
        handshake_share: 0.05,
        handshake_floor: 10,
    };
    let mut guard = Guard::new(config, Box::new(classify)).unwrap();
    let flood: Vec<_> = (0..256).map(|s| frame(1, s)).collect();
    assert_eq!(passed(&mut runner, &mut guard, &flood), 12);
    let sessions: Vec<_> = (0..256).map(|s| frame(0, s)).collect();
    assert_eq!(passed(&mut runner, &mut guard, &sessions), 256);

    // More sources than entries: the table keeps its size and counts what it evicts.
    let config = GuardConfig {
        sources: 8,
        ..config
    };
    let mut guard = Guard::new(config, Box::new(classify)).unwrap();
    let many: Vec<_> = (0..100).map(|s| frame(0, 1000 + s)).collect();
    assert_eq!(passed(&mut runner, &mut guard, &many), 100);
    let evicted = runner.counts().count(Counter::named("guard_evicted"));
    assert!(evicted >= 100 - 8, "{evicted} evicted");

    // Unclaimed frames (a classifier's None) pass untouched.
    let mut guard = Guard::new(GuardConfig::default(), Box::new(|_: &[u8]| None)).unwrap();
    assert_eq!(passed(&mut runner, &mut guard, &flood), 256);
}
