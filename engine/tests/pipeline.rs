//! The pipeline's accounting on real `net_ring` ports, in both modes: every packet sent in is
//! transmitted or dropped with its reason, order is kept per queue, and afterwards every mbuf
//! is back in its pool. (A net_ring port loops TX queue q back to its RX queue q.)

mod common;

use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::pipeline::{Lane, Mode, Pipeline, Settings};
use sluice::stage::{Action, Stage};
use sluice::stats::DropReason;
use sluice::worker::StopFlag;
use sluice::{Burst, Mbuf, Mempool, Port, PortConfig};
use std::time::{Duration, Instant};

const PER_QUEUE: u32 = 1000;
const QUEUES: u16 = 2;
/// Junk already waiting in port 1's TX queue 0, so that it fills up during the run.
const PREFILL: u32 = 900;

/// Drops packets whose sequence number is a multiple of 7; sends the rest out of port 1.
struct DropEvery7th;

fn seq(m: &Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[14..18].try_into().unwrap())
}

impl Stage for DropEvery7th {
    fn name(&self) -> &str {
        "drop_every_7th"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]) {
        for (m, a) in packets.iter().zip(actions) {
            *a = if seq(m).is_multiple_of(7) {
                Action::drop(DropReason::Filtered)
            } else {
                Action::tx(1)
            };
        }
    }
}

fn packet(pool: &Mempool, queue: u16, seq: u32) -> Mbuf {
    let mut m = pool.alloc().unwrap();
    let mut bytes = vec![0u8; 64];
    bytes[12] = 0x88;
    bytes[13] = 0xb5; // local experimental EtherType
    bytes[14..18].copy_from_slice(&seq.to_be_bytes());
    bytes[18] = queue as u8;
    assert!(m.extend_from_slice(&bytes));
    m
}

fn send_all(tx: &mut sluice::TxQueue, pool: &Mempool, queue: u16, seqs: impl Iterator<Item = u32>) {
    let mut burst = Burst::new();
    for s in seqs {
        burst.push(packet(pool, queue, s)).ok().unwrap();
        if burst.spare() == 0 {
            assert_eq!(tx.send(&mut burst), 64, "injection ring full");
        }
    }
    let n = burst.len();
    assert_eq!(tx.send(&mut burst), n);
}

fn accounting_holds(mode: Mode) {
    let eal = common::start_eal_on("0,1", &["net_ring0", "net_ring1"]);
    let pool = Mempool::pktmbuf(&eal, "pipeline", 8191, 64, DEFAULT_DATA_ROOM, None).unwrap();
    let config = PortConfig {
        rx_queues: QUEUES,
        tx_queues: QUEUES,
        ..PortConfig::default()
    };
    let (_in_port, in_rx, mut injectors) = Port::start(&eal, 0, &config, &pool).unwrap();
    let (_out_port, mut out_rx, mut out_tx) = Port::start(&eal, 1, &config, &pool).unwrap();

    for (q, tx) in injectors.iter_mut().enumerate() {
        let q = q as u16;
        send_all(
            tx,
            &pool,
            q,
            (0..PER_QUEUE).map(|i| i * u32::from(QUEUES) + u32::from(q)),
        );
    }
    send_all(&mut out_tx[0], &pool, 9, 1_000_000..1_000_000 + PREFILL);

    let settings = Settings {
        mode,
        report_period: Duration::from_millis(10),
        ..Settings::default()
    };
    let mut pipeline = Pipeline::new(settings);
    for (lane, (rx, tx)) in in_rx.into_iter().zip(out_tx.drain(..)).enumerate() {
        let lane = lane as u32;
        pipeline.lane(Lane {
            rx: vec![rx],
            tx: vec![tx],
            stages: vec![Box::new(DropEvery7th)],
            lcore: lane,
            stage_lcore: Some(1 - lane),
        });
    }
    let stop = StopFlag::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let total_in = u64::from(PER_QUEUE) * u64::from(QUEUES);
    let outcome = pipeline
        .run(&eal, &stop, |stats, _| {
            if stats.totals().rx == total_in || Instant::now() > deadline {
                stop.stop();
            }
        })
        .unwrap();

    let totals = outcome.stats.totals();
    assert_eq!(totals.rx, total_in);
    assert_eq!(totals.rx, totals.tx + totals.dropped(), "{totals:?}");
    let filtered = (0..total_in).filter(|s| s % 7 == 0).count() as u64;
    assert_eq!(totals.drops_for(DropReason::Filtered), filtered);
    assert!(
        totals.drops_for(DropReason::TxFull) > 0,
        "queue 0 must have overflowed: {totals:?}"
    );
    assert_eq!(
        totals.dropped(),
        filtered + totals.drops_for(DropReason::TxFull)
    );
    assert_eq!(outcome.stats.port(0).rx, total_in);
    assert_eq!(outcome.stats.port(1).tx, totals.tx);

    // Read back what left by port 1: the prefill, then each queue's survivors in order.
    let mut out_count = 0u64;
    for (q, rx) in out_rx.iter_mut().enumerate() {
        let mut last = None;
        let mut burst = Burst::new();
        while rx.recv(&mut burst) > 0 {
            for m in burst.as_slice() {
                let s = seq(m);
                if s >= 1_000_000 {
                    assert_eq!(q, 0);
                    continue;
                }
                assert_ne!(s % 7, 0, "a dropped packet came out");
                assert_eq!(s % u32::from(QUEUES), q as u32, "packet of another queue");
                assert!(
                    last.is_none_or(|l| s > l),
                    "out of order: {s} after {last:?}"
                );
                last = Some(s);
                out_count += 1;
            }
            burst.clear();
        }
    }
    assert_eq!(out_count, totals.tx);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}

#[test]
fn run_to_completion_accounts_for_every_packet() {
    accounting_holds(Mode::RunToCompletion);
}

#[test]
fn pipelined_accounts_for_every_packet() {
    accounting_holds(Mode::Pipelined);
}
