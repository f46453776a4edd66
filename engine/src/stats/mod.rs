//! Counters and drop reasons, the periodic report and the final account, and (in
//! [`telemetry`]) the same numbers for rte_telemetry clients.
//!
//! Each [`Counters`] block has a single writer, the worker that owns its [`CounterWriter`], so
//! the fast path updates it with plain relaxed stores (no locked instructions) on a cache line
//! of its own; anyone may read a [`Snapshot`].

pub mod telemetry;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Why a packet was dropped. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The TX queue kept refusing it after the bounded retries.
    TxFull,
    /// The ring to the stage worker was full (pipelined mode).
    RingFull,
    /// Shorter than the headers the stage must read or write.
    Truncated,
    /// The stages chose no output for it, or one this worker has no TX queue for.
    NoOutput,
    /// A stage's own rule dropped it (a filter, a policer, a test stage).
    Filtered,
    /// No route to its destination.
    NoRoute,
    /// Its TTL or hop limit would reach zero here.
    TtlExceeded,
    /// Its IPv4 header checksum is wrong.
    BadChecksum,
    /// A malformed IP header: wrong version, IHL under 5, lengths that do not fit the frame.
    BadHeader,
    /// A frame the router does not handle (an EtherType other than IPv4, IPv6 and ARP; a VLAN
    /// tag; ARP without addresses to answer for).
    Unsupported,
    /// Addressed to the router itself and consumed there (ARP learned or ignored, a protocol
    /// it does not answer).
    Local,
    /// The next hop's MAC address is not known yet and a request for it is already out.
    NoNeighbour,
    /// A source or destination address no router forwards (RFC 1812 §5.3.7, RFC 3927 §7,
    /// RFC 4291 §2.5 and §2.7): loopback, "this network", multicast, class E, link-local,
    /// unspecified; or a directed broadcast to a subnet of the router's own (RFC 2644).
    Martian,
}

impl DropReason {
    pub const ALL: [DropReason; 13] = [
        DropReason::TxFull,
        DropReason::RingFull,
        DropReason::Truncated,
        DropReason::NoOutput,
        DropReason::Filtered,
        DropReason::NoRoute,
        DropReason::TtlExceeded,
        DropReason::BadChecksum,
        DropReason::BadHeader,
        DropReason::Unsupported,
        DropReason::Local,
        DropReason::NoNeighbour,
        DropReason::Martian,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            DropReason::TxFull => "tx_full",
            DropReason::RingFull => "ring_full",
            DropReason::Truncated => "truncated",
            DropReason::NoOutput => "no_output",
            DropReason::Filtered => "filtered",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadHeader => "bad_header",
            DropReason::Unsupported => "unsupported",
            DropReason::Local => "local",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::Martian => "martian",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Packet counters for one flow of work (a port, a queue, a worker), one writer.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct Counters {
    rx: AtomicU64,
    tx: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

/// The one handle that may write a [`Counters`]: not `Clone`, so there is one writer.
#[derive(Debug)]
pub struct CounterWriter(Arc<Counters>);

/// A new counter block: its writer, and a shared handle to read it.
pub fn counters() -> (CounterWriter, Arc<Counters>) {
    let shared = Arc::new(Counters::default());
    (CounterWriter(shared.clone()), shared)
}

#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    // Single writer: a load and a store, not a locked read-modify-write.
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

impl CounterWriter {
    #[inline]
    pub fn rx(&mut self, n: u64) {
        bump(&self.0.rx, n);
    }

    #[inline]
    pub fn tx(&mut self, n: u64) {
        bump(&self.0.tx, n);
    }

    #[inline]
    pub fn drop(&mut self, reason: DropReason, n: u64) {
        bump(&self.0.drops[reason.index()], n);
    }
}

/// Counters of one lcore's poll loop, one writer: rounds, rounds that moved packets, the
/// packets, and the sleeps of the idle policy.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct LoopCounters {
    rounds: AtomicU64,
    busy_rounds: AtomicU64,
    packets: AtomicU64,
    sleeps: AtomicU64,
}

/// The one handle that may write a [`LoopCounters`].
#[derive(Debug)]
pub struct LoopCounterWriter(Arc<LoopCounters>);

/// A new poll-loop counter block: its writer, and a shared handle to read it.
pub fn loop_counters() -> (LoopCounterWriter, Arc<LoopCounters>) {
    let shared = Arc::new(LoopCounters::default());
    (LoopCounterWriter(shared.clone()), shared)
}

impl LoopCounterWriter {
    /// Adds what the loop counted since it last published (it keeps counts in registers and
    /// publishes now and then, not every round).
    #[inline]
    pub fn add(&mut self, delta: &LoopSnapshot) {
        bump(&self.0.rounds, delta.rounds);
        bump(&self.0.busy_rounds, delta.busy_rounds);
        bump(&self.0.packets, delta.packets);
        bump(&self.0.sleeps, delta.sleeps);
    }
}

/// [`LoopCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopSnapshot {
    pub rounds: u64,
    pub busy_rounds: u64,
    pub packets: u64,
    pub sleeps: u64,
}

impl LoopCounters {
    pub fn snapshot(&self) -> LoopSnapshot {
        LoopSnapshot {
            rounds: self.rounds.load(Relaxed),
            busy_rounds: self.busy_rounds.load(Relaxed),
            packets: self.packets.load(Relaxed),
            sleeps: self.sleeps.load(Relaxed),
        }
    }
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            rx: self.rx.load(Relaxed),
            tx: self.tx.load(Relaxed),
            drops: std::array::from_fn(|i| self.drops[i].load(Relaxed)),
        }
    }
}

/// Counter values at one moment; snapshots add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub rx: u64,
    pub tx: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Snapshot {
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// `tx_full 2, truncated 3`: the reasons with drops, or `none`.
    pub fn drops_by_reason(&self) -> String {
        let listed: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| self.drops_for(**r) > 0)
            .map(|r| format!("{} {}", r.name(), self.drops_for(*r)))
            .collect();
        if listed.is_empty() {
            "none".to_owned()
        } else {
            listed.join(", ")
        }
    }
}

impl std::ops::Add for Snapshot {
    type Output = Snapshot;

    fn add(self, other: Snapshot) -> Snapshot {
        Snapshot {
            rx: self.rx + other.rx,
            tx: self.tx + other.tx,
            drops: std::array::from_fn(|i| self.drops[i] + other.drops[i]),
        }
    }
}

impl std::iter::Sum for Snapshot {
    fn sum<I: Iterator<Item = Snapshot>>(iter: I) -> Snapshot {
        iter.fold(Snapshot::default(), |a, b| a + b)
    }
}

/// Counters of one queue.
#[derive(Clone, Debug)]
pub struct QueueStats {
    pub port: u16,
    pub queue: u16,
    pub lcore: u32,
    pub counters: Arc<Counters>,
}

/// Counters of one stage of one lane: `rx` is packets in, drops are its verdicts.
#[derive(Clone, Debug)]
pub struct StageStats {
    pub lane: usize,
    pub name: String,
    pub lcore: u32,
    pub counters: Arc<Counters>,
}

/// Every counter of a pipeline, readable while it runs and after.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// `rx` counts what was received; drops here are `ring_full`.
    pub rx_queues: Vec<QueueStats>,
    /// `tx` counts what was sent; drops here are `tx_full`.
    pub tx_queues: Vec<QueueStats>,
    pub stages: Vec<StageStats>,
    /// Per lane: packets no stage gave an output (`no_output`).
    pub lanes: Vec<Arc<Counters>>,
    /// Per lcore: its poll loop.
    pub lcores: Vec<LcoreStats>,
}

/// The poll loop of one lcore.
#[derive(Clone, Debug)]
pub struct LcoreStats {
    pub lcore: u32,
    pub counters: Arc<LoopCounters>,
}

impl Stats {
    /// Everything added up: after a stop, `rx == tx + dropped()`.
    pub fn totals(&self) -> Snapshot {
        let rx: Snapshot = self.rx_queues.iter().map(|q| q.counters.snapshot()).sum();
        let tx: Snapshot = self.tx_queues.iter().map(|q| q.counters.snapshot()).sum();
        let stages: Snapshot = self.stages.iter().map(|s| s.counters.snapshot()).sum();
        let lanes: Snapshot = self.lanes.iter().map(|l| l.snapshot()).sum();
        Snapshot {
            rx: rx.rx,
            tx: tx.tx,
            drops: (rx + tx + stages + lanes).drops,
        }
    }

    /// One port: packets received on it, sent by it, and dropped at its TX queues.
    pub fn port(&self, port: u16) -> Snapshot {
        let rx: Snapshot = self
            .rx_queues
            .iter()
            .filter(|q| q.port == port)
            .map(|q| q.counters.snapshot())
            .sum();
        let tx: Snapshot = self
            .tx_queues
            .iter()
            .filter(|q| q.port == port)
            .map(|q| q.counters.snapshot())
            .sum();
        Snapshot { rx: rx.rx, ..tx }
    }

    /// Ports with a queue in the pipeline, in order.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .rx_queues
            .iter()
            .chain(&self.tx_queues)
            .map(|q| q.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// The report lines of a running pipeline: one per period, each port's rates and drops.
#[derive(Default)]
pub struct RateReport {
    previous: Vec<(u16, Snapshot)>,
}

impl RateReport {
    /// `[   10.0s]  port 0: rx 14.200 Mpps tx 0.000 Mpps drop 0  port 1: ...` for the
    /// `period` since the previous line.
    pub fn line(&mut self, stats: &Stats, since_start: Duration, period: Duration) -> String {
        let now: Vec<(u16, Snapshot)> = stats
            .ports()
            .into_iter()
            .map(|p| (p, stats.port(p)))
            .collect();
        let secs = period.as_secs_f64().max(1e-9);
        let mut line = format!("[{:7.1}s]", since_start.as_secs_f64());
        for (port, s) in &now {
            let before = self
                .previous
                .iter()
                .find(|(p, _)| p == port)
                .map(|p| p.1)
                .unwrap_or_default();
            let _ = write!(
                line,
                "  port {port}: rx {:.3} Mpps tx {:.3} Mpps drop {}",
                (s.rx - before.rx) as f64 / secs / 1e6,
                (s.tx - before.tx) as f64 / secs / 1e6,
                s.dropped() - before.dropped()
            );
        }
        self.previous = now;
        line
    }
}

/// Where the mbufs are when the account is drawn up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MbufUse {
    pub in_use: u32,
    pub capacity: u32,
}

impl Stats {
    /// The final account, and whether it balances: every packet received was sent or dropped
    /// for a counted reason, and every mbuf is back in its pool.
    pub fn final_account(&self, elapsed: Duration, mbufs: MbufUse) -> (String, bool) {
        let mut text = String::from("final account:\n");
        for port in self.ports() {
            let s = self.port(port);
            let _ = writeln!(
                text,
                "  port {port}: rx {} tx {} dropped {} ({})",
                s.rx,
                s.tx,
                s.dropped(),
                s.drops_by_reason()
            );
        }
        for stage in &self.stages {
            let s = stage.counters.snapshot();
            if s.dropped() > 0 {
                let _ = writeln!(
                    text,
                    "  stage {} (lane {}): in {} dropped {} ({})",
                    stage.name,
                    stage.lane,
                    s.rx,
                    s.dropped(),
                    s.drops_by_reason()
                );
            }
        }
        for l in &self.lcores {
            let s = l.counters.snapshot();
            let _ = writeln!(
                text,
                "  lcore {}: {} polls, {:.1}% with packets, {} packets, {} idle sleeps",
                l.lcore,
                s.rounds,
                100.0 * s.busy_rounds as f64 / s.rounds.max(1) as f64,
                s.packets,
                s.sleeps
            );
        }
        let total = self.totals();
        let balanced = total.rx == total.tx + total.dropped();
        let _ = writeln!(
            text,
            "  total: rx {} = tx {} + dropped {} ({}){}",
            total.rx,
            total.tx,
            total.dropped(),
            total.drops_by_reason(),
            if balanced { "" } else { "  MISMATCH" }
        );
        let _ = writeln!(
            text,
            "  forwarding rate: {:.3} Mpps over {:.2} s",
            total.tx as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
            elapsed.as_secs_f64()
        );
        let _ = write!(
            text,
            "  mbufs in use: {} of {}",
            mbufs.in_use, mbufs.capacity
        );
        (text, balanced && mbufs.in_use == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_counts_and_snapshots_add_up() {
        let (mut w, shared) = counters();
        w.rx(10);
        w.tx(7);
        w.drop(DropReason::TxFull, 2);
        w.drop(DropReason::Truncated, 1);
        let s = shared.snapshot();
        assert_eq!((s.rx, s.tx, s.dropped()), (10, 7, 3));
        assert_eq!(s.rx, s.tx + s.dropped());
        assert_eq!(s.drops_by_reason(), "tx_full 2, truncated 1");
        assert_eq!(Snapshot::default().drops_by_reason(), "none");
        let total: Snapshot = [s, s].into_iter().sum();
        assert_eq!((total.rx, total.drops_for(DropReason::TxFull)), (20, 4));
    }

    fn stats_with(rx: (u16, u64), tx: (u16, u64), stage_drops: u64) -> Stats {
        let (mut rx_w, rx_r) = counters();
        rx_w.rx(rx.1);
        let (mut tx_w, tx_r) = counters();
        tx_w.tx(tx.1);
        let (mut stage_w, stage_r) = counters();
        stage_w.rx(rx.1);
        stage_w.drop(DropReason::Truncated, stage_drops);
        let queue = |port, counters| QueueStats {
            port,
            queue: 0,
            lcore: 0,
            counters,
        };
        Stats {
            rx_queues: vec![queue(rx.0, rx_r)],
            tx_queues: vec![queue(tx.0, tx_r)],
            stages: vec![StageStats {
                lane: 0,
                name: "s".into(),
                lcore: 0,
                counters: stage_r,
            }],
            lanes: vec![],
            lcores: vec![],
        }
    }

    #[test]
    fn final_account_balances_and_names_the_stage_drops() {
        let stats = stats_with((0, 10), (1, 8), 2);
        let (text, ok) = stats.final_account(
            Duration::from_secs(2),
            MbufUse {
                in_use: 0,
                capacity: 100,
            },
        );
        assert!(ok, "{text}");
        assert!(
            text.contains("port 0: rx 10 tx 0 dropped 0 (none)"),
            "{text}"
        );
        assert!(
            text.contains("port 1: rx 0 tx 8 dropped 0 (none)"),
            "{text}"
        );
        assert!(
            text.contains("stage s (lane 0): in 10 dropped 2 (truncated 2)"),
            "{text}"
        );
        assert!(
            text.contains("total: rx 10 = tx 8 + dropped 2 (truncated 2)\n"),
            "{text}"
        );
        assert!(text.contains("mbufs in use: 0 of 100"), "{text}");
        let (_, ok) = stats.final_account(
            Duration::from_secs(2),
            MbufUse {
                in_use: 1,
                capacity: 100,
            },
        );
        assert!(!ok, "a missing mbuf fails the account");
        let (text, ok) = stats_with((0, 10), (1, 9), 2)
            .final_account(Duration::from_secs(1), MbufUse::default());
        assert!(!ok && text.contains("MISMATCH"), "{text}");
    }

    #[test]
    fn rate_lines_are_per_period() {
        let stats = stats_with((0, 2_000_000), (1, 2_000_000), 0);
        let mut report = RateReport::default();
        let line = report.line(&stats, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(
            line,
            "[    1.0s]  port 0: rx 2.000 Mpps tx 0.000 Mpps drop 0  port 1: rx 0.000 Mpps tx 2.000 Mpps drop 0"
        );
        let line = report.line(&stats, Duration::from_secs(2), Duration::from_secs(1));
        assert!(line.contains("port 0: rx 0.000 Mpps"), "{line}");
    }

    #[test]
    fn loop_counters_count_busy_rounds_and_sleeps() {
        let (mut w, shared) = loop_counters();
        w.add(&LoopSnapshot {
            rounds: 2,
            busy_rounds: 1,
            packets: 32,
            sleeps: 0,
        });
        w.add(&LoopSnapshot {
            rounds: 1,
            busy_rounds: 0,
            packets: 0,
            sleeps: 1,
        });
        let s = shared.snapshot();
        assert_eq!(
            s,
            LoopSnapshot {
                rounds: 3,
                busy_rounds: 1,
                packets: 32,
                sleeps: 1
            }
        );
        let stats = Stats {
            lcores: vec![LcoreStats {
                lcore: 2,
                counters: shared,
            }],
            ..Stats::default()
        };
        let (text, _) = stats.final_account(Duration::from_secs(1), MbufUse::default());
        assert!(
            text.contains("lcore 2: 3 polls, 33.3% with packets, 32 packets, 1 idle sleeps"),
            "{text}"
        );
    }

    #[test]
    fn counters_sit_on_their_own_cache_line() {
        assert_eq!(std::mem::align_of::<Counters>(), 64);
        assert_eq!(std::mem::align_of::<LoopCounters>(), 64);
    }
}
