//! Counters and drop reasons, the periodic report and the final account, and (in
//! [`telemetry`]) the same numbers for rte_telemetry clients.
//!
//! Each [`Counters`] block has a single writer, the worker that owns its [`CounterWriter`], so
//! the fast path updates it with plain relaxed stores (no locked instructions) on a cache line
//! of its own; anyone may read a [`Snapshot`].

pub mod telemetry;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The engine's own drop reasons, the first codes of [`Reason`]. Stages add theirs by name
/// ([`Reason::named`]): the router's `no_route` or `ttl_exceeded`, an app's `tcp_blocked`.
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
    /// The ring to the worker it was handed to was full.
    HandoffFull,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::TxFull,
        DropReason::RingFull,
        DropReason::Truncated,
        DropReason::NoOutput,
        DropReason::Filtered,
        DropReason::HandoffFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::TxFull => "tx_full",
            DropReason::RingFull => "ring_full",
            DropReason::Truncated => "truncated",
            DropReason::NoOutput => "no_output",
            DropReason::Filtered => "filtered",
            DropReason::HandoffFull => "handoff_full",
        }
    }
}

/// The most drop reasons a process can name (the engine's and every stage's).
pub const MAX_REASONS: usize = 64;
/// The most counters of their own the stages of a process can name.
pub const MAX_COUNTERS: usize = 16;

/// Names in registration order, for [`Reason`] and [`Counter`]: a handle is its index.
struct Names {
    names: Mutex<Vec<&'static str>>,
    limit: usize,
    what: &'static str,
}

impl Names {
    /// The index of `name`, registered now if it is new.
    fn index(&self, name: &str, initial: &[&'static str]) -> u16 {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.is_empty() {
            names.extend_from_slice(initial);
        }
        if let Some(i) = names.iter().position(|n| *n == name) {
            return i as u16;
        }
        assert!(
            names.len() < self.limit,
            "more than {} {} named: {name} is one too many",
            self.limit,
            self.what
        );
        // Names are few and live as long as the process: leaking them is their registry.
        names.push(Box::leak(name.to_owned().into_boxed_str()));
        (names.len() - 1) as u16
    }

    fn name(&self, index: u16, initial: &[&'static str]) -> &'static str {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .get(usize::from(index))
            .or_else(|| initial.get(usize::from(index)))
            .copied()
            .unwrap_or("unnamed")
    }

    fn count(&self, initial: &[&'static str]) -> usize {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.len().max(initial.len())
    }
}

static REASONS: Names = Names {
    names: Mutex::new(Vec::new()),
    limit: MAX_REASONS,
    what: "drop reasons",
};
static COUNTERS: Names = Names {
    names: Mutex::new(Vec::new()),
    limit: MAX_COUNTERS,
    what: "counters",
};

const ENGINE_REASONS: [&str; 6] = [
    "tx_full",
    "ring_full",
    "truncated",
    "no_output",
    "filtered",
    "handoff_full",
];

/// Why a packet was dropped: one of the engine's [`DropReason`]s or a reason a stage named.
/// Every drop is counted under exactly one. A reason is a small code, so an
/// [`Action`](crate::stage::Action) carries it and counting it is an index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reason(u16);

impl Reason {
    /// The reason called `name`, the same for every stage that names it (registered at the
    /// first call; at most [`MAX_REASONS`] in all). Name reasons when a stage is built, not
    /// per packet: this takes a lock.
    pub fn named(name: &str) -> Reason {
        Reason(REASONS.index(name, &ENGINE_REASONS))
    }

    pub fn name(self) -> &'static str {
        REASONS.name(self.0, &ENGINE_REASONS)
    }

    /// Every reason named so far, the engine's first.
    pub fn all() -> Vec<Reason> {
        (0..REASONS.count(&ENGINE_REASONS) as u16)
            .map(Reason)
            .collect()
    }

    pub(crate) fn code(self) -> u16 {
        self.0
    }

    pub(crate) fn from_code(code: u16) -> Reason {
        Reason(code)
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl From<DropReason> for Reason {
    fn from(reason: DropReason) -> Reason {
        // The engine's reasons are the first names of the registry, in this order.
        Reason(reason as u16)
    }
}

impl std::fmt::Debug for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A count a stage keeps of its own (packets of a kind, requests served), shown beside the
/// engine's counters in the final account, the periodic report and telemetry. Named like
/// [`Reason`]s, at most [`MAX_COUNTERS`] in all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Counter(u16);

impl Counter {
    pub fn named(name: &str) -> Counter {
        Counter(COUNTERS.index(name, &[]))
    }

    pub fn name(self) -> &'static str {
        COUNTERS.name(self.0, &[])
    }

    pub fn all() -> Vec<Counter> {
        (0..COUNTERS.count(&[]) as u16).map(Counter).collect()
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Packet counters for one flow of work (a port, a queue, a worker, a stage), one writer:
/// packets in and out, drops by reason, and for stages, packets originated and held, and
/// counters of their own.
#[repr(align(64))]
#[derive(Debug)]
pub struct Counters {
    rx: AtomicU64,
    tx: AtomicU64,
    originated: AtomicU64,
    /// Packets held so far, and released so far: the difference is held now.
    held: AtomicU64,
    released: AtomicU64,
    drops: [AtomicU64; MAX_REASONS],
    own: [AtomicU64; MAX_COUNTERS],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            originated: AtomicU64::new(0),
            held: AtomicU64::new(0),
            released: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            own: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
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
    pub fn drop(&mut self, reason: impl Into<Reason>, n: u64) {
        bump(&self.0.drops[reason.into().index()], n);
    }

    #[inline]
    pub fn originated(&mut self, n: u64) {
        bump(&self.0.originated, n);
    }

    #[inline]
    pub fn held(&mut self, n: u64) {
        bump(&self.0.held, n);
    }

    #[inline]
    pub fn released(&mut self, n: u64) {
        bump(&self.0.released, n);
    }

    #[inline]
    pub fn count(&mut self, counter: Counter, n: u64) {
        bump(&self.0.own[counter.index()], n);
    }
}

/// A family of counts a stage keeps by key (packets per destination port, requests per
/// client), shown beside its other counters. Named like [`Counter`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CounterMap(u16);

static COUNTER_MAPS: Names = Names {
    names: Mutex::new(Vec::new()),
    limit: 256,
    what: "counter maps",
};

impl CounterMap {
    pub fn named(name: &str) -> CounterMap {
        CounterMap(COUNTER_MAPS.index(name, &[]))
    }

    pub fn name(self) -> &'static str {
        COUNTER_MAPS.name(self.0, &[])
    }
}

/// Keys a stage instance counts by, in all its maps: beyond these, counts go to the map's
/// `other` (so a flood of keys costs no memory).
pub const MAX_KEYS: usize = 256;

/// One stage instance's keyed counts: a fixed table (open addressing) of (map, key) slots,
/// one writer, read by anyone.
#[derive(Debug)]
pub struct KeyedCounts {
    /// `map << 48 | key` plus one; zero: a free slot.
    slots: Box<[(AtomicU64, AtomicU64)]>,
    /// Per map index (up to 256), counts that found no slot.
    other: Box<[AtomicU64]>,
}

impl Default for KeyedCounts {
    fn default() -> Self {
        KeyedCounts {
            slots: (0..MAX_KEYS * 2)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            other: (0..256).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl KeyedCounts {
    /// Adds `n` to `key` of `map` (keys are taken to 48 bits). Single writer.
    pub(crate) fn add(&self, map: CounterMap, key: u64, n: u64) {
        let tag = (u64::from(map.0) << 48 | (key & 0xffff_ffff_ffff)) + 1;
        let mask = self.slots.len() - 1;
        let mut at = (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask;
        // At most half the slots are ever used: a probe always ends.
        for _ in 0..self.slots.len() {
            let (slot_tag, count) = &self.slots[at];
            match slot_tag.load(Relaxed) {
                t if t == tag => return bump(count, n),
                0 if self.used() < MAX_KEYS => {
                    bump(count, n);
                    slot_tag.store(tag, Relaxed);
                    return;
                }
                0 => break,
                _ => at = (at + 1) & mask,
            }
        }
        bump(&self.other[usize::from(map.0)], n);
    }

    fn used(&self) -> usize {
        // Counted on the slow path only (a new key): keys are few.
        self.slots
            .iter()
            .filter(|(t, _)| t.load(Relaxed) != 0)
            .count()
    }

    /// Every map's counts, key by key in order: `name: key count, ...`.
    pub fn text(&self) -> Vec<String> {
        let mut entries: Vec<(u16, u64, u64)> = self
            .slots
            .iter()
            .filter_map(|(t, c)| {
                let t = t.load(Relaxed).checked_sub(1)?;
                Some(((t >> 48) as u16, t & 0xffff_ffff_ffff, c.load(Relaxed)))
            })
            .collect();
        entries.sort_unstable();
        let mut maps: Vec<u16> = entries.iter().map(|e| e.0).collect();
        maps.extend((0..256u16).filter(|&m| self.other[usize::from(m)].load(Relaxed) > 0));
        maps.sort_unstable();
        maps.dedup();
        maps.into_iter()
            .map(|map| {
                let mut parts: Vec<String> = entries
                    .iter()
                    .filter(|e| e.0 == map)
                    .map(|e| format!("{} {}", e.1, e.2))
                    .collect();
                let other = self.other[usize::from(map)].load(Relaxed);
                if other > 0 {
                    parts.push(format!("other {other}"));
                }
                format!("{}: {}", CounterMap(map).name(), parts.join(", "))
            })
            .collect()
    }
}

/// Counters of one lcore's poll loop, one writer: rounds, rounds that moved packets, the
/// packets, the sleeps of the idle policy, and (when the pipeline clocks them) TSC cycles
/// in all and idle.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct LoopCounters {
    rounds: AtomicU64,
    busy_rounds: AtomicU64,
    packets: AtomicU64,
    sleeps: AtomicU64,
    cycles: AtomicU64,
    idle_cycles: AtomicU64,
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
        bump(&self.0.cycles, delta.cycles);
        bump(&self.0.idle_cycles, delta.idle_cycles);
    }
}

/// [`LoopCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopSnapshot {
    pub rounds: u64,
    pub busy_rounds: u64,
    pub packets: u64,
    pub sleeps: u64,
    /// TSC cycles the loop ran.
    pub cycles: u64,
    /// Of those, the cycles of polls that moved nothing, and of sleeps.
    pub idle_cycles: u64,
}

impl LoopSnapshot {
    /// The share of the lcore's cycles spent on packets, from 0 to 1 (None before any).
    pub fn work_share(&self) -> Option<f64> {
        (self.cycles > 0)
            .then(|| 1.0 - self.idle_cycles.min(self.cycles) as f64 / self.cycles as f64)
    }
}

impl LoopCounters {
    pub fn snapshot(&self) -> LoopSnapshot {
        LoopSnapshot {
            rounds: self.rounds.load(Relaxed),
            busy_rounds: self.busy_rounds.load(Relaxed),
            packets: self.packets.load(Relaxed),
            sleeps: self.sleeps.load(Relaxed),
            cycles: self.cycles.load(Relaxed),
            idle_cycles: self.idle_cycles.load(Relaxed),
        }
    }
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        let (held, released) = (self.held.load(Relaxed), self.released.load(Relaxed));
        Snapshot {
            rx: self.rx.load(Relaxed),
            tx: self.tx.load(Relaxed),
            originated: self.originated.load(Relaxed),
            held: held.saturating_sub(released),
            drops: std::array::from_fn(|i| self.drops[i].load(Relaxed)),
            own: std::array::from_fn(|i| self.own[i].load(Relaxed)),
        }
    }
}

/// Counter values at one moment; snapshots add up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub rx: u64,
    pub tx: u64,
    /// Packets stages made (requests, replies, keepalives).
    pub originated: u64,
    /// Packets stages hold now (waiting for a neighbour, a deadline).
    pub held: u64,
    pub drops: [u64; MAX_REASONS],
    /// Counters of the stages' own, by [`Counter`].
    pub own: [u64; MAX_COUNTERS],
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            rx: 0,
            tx: 0,
            originated: 0,
            held: 0,
            drops: [0; MAX_REASONS],
            own: [0; MAX_COUNTERS],
        }
    }
}

impl Snapshot {
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub fn drops_for(&self, reason: impl Into<Reason>) -> u64 {
        self.drops[reason.into().index()]
    }

    pub fn count(&self, counter: Counter) -> u64 {
        self.own[counter.index()]
    }

    /// `tx_full 2, truncated 3`: the reasons with drops, or `none`.
    pub fn drops_by_reason(&self) -> String {
        let listed: Vec<String> = Reason::all()
            .into_iter()
            .filter(|r| self.drops_for(*r) > 0)
            .map(|r| format!("{} {}", r.name(), self.drops_for(r)))
            .collect();
        if listed.is_empty() {
            "none".to_owned()
        } else {
            listed.join(", ")
        }
    }

    /// `udp 12, tcp 3`: the stages' own counters that counted, or None.
    pub fn own_counts(&self) -> Option<String> {
        let listed: Vec<String> = Counter::all()
            .into_iter()
            .filter(|c| self.count(*c) > 0)
            .map(|c| format!("{} {}", c.name(), self.count(c)))
            .collect();
        (!listed.is_empty()).then(|| listed.join(", "))
    }
}

impl std::ops::Add for Snapshot {
    type Output = Snapshot;

    fn add(self, other: Snapshot) -> Snapshot {
        Snapshot {
            rx: self.rx + other.rx,
            tx: self.tx + other.tx,
            originated: self.originated + other.originated,
            held: self.held + other.held,
            drops: std::array::from_fn(|i| self.drops[i] + other.drops[i]),
            own: std::array::from_fn(|i| self.own[i] + other.own[i]),
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

/// Counters of one stage of one lane: `rx` is packets in, drops are its verdicts; what it
/// originated and holds; its own counters, and its keyed ones.
#[derive(Clone, Debug)]
pub struct StageStats {
    pub lane: usize,
    pub name: String,
    pub lcore: u32,
    pub counters: Arc<Counters>,
    pub keyed: Arc<KeyedCounts>,
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
    /// Everything added up: after a stop, `rx + originated == tx + dropped() + held`.
    pub fn totals(&self) -> Snapshot {
        let rx: Snapshot = self.rx_queues.iter().map(|q| q.counters.snapshot()).sum();
        let tx: Snapshot = self.tx_queues.iter().map(|q| q.counters.snapshot()).sum();
        let stages: Snapshot = self.stages.iter().map(|s| s.counters.snapshot()).sum();
        let lanes: Snapshot = self.lanes.iter().map(|l| l.snapshot()).sum();
        Snapshot {
            rx: rx.rx,
            tx: tx.tx,
            originated: stages.originated,
            held: stages.held,
            drops: (rx + tx + stages + lanes).drops,
            own: stages.own,
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

/// The report lines of a running pipeline: one per period, each port's rates and drops, and
/// each lcore's share of cycles at work.
#[derive(Default)]
pub struct RateReport {
    previous: Vec<(u16, Snapshot)>,
    previous_lcores: Vec<LoopSnapshot>,
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
        let totals = stats.totals();
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
        if totals.held > 0 {
            let _ = write!(line, "  held {}", totals.held);
        }
        if let Some(own) = totals.own_counts() {
            let _ = write!(line, "  ({own})");
        }
        self.previous = now;
        let lcores: Vec<LoopSnapshot> =
            stats.lcores.iter().map(|l| l.counters.snapshot()).collect();
        for (i, (l, s)) in stats.lcores.iter().zip(&lcores).enumerate() {
            let before = self.previous_lcores.get(i).copied().unwrap_or_default();
            let period = LoopSnapshot {
                cycles: s.cycles - before.cycles,
                idle_cycles: s.idle_cycles - before.idle_cycles,
                ..LoopSnapshot::default()
            };
            if let Some(share) = period.work_share() {
                let _ = write!(line, "  lcore {}: {:.0}% at work", l.lcore, 100.0 * share);
            }
        }
        self.previous_lcores = lcores;
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
            let keyed = stage.keyed.text();
            let own = s.own_counts();
            if s.dropped() == 0
                && s.originated == 0
                && s.held == 0
                && own.is_none()
                && keyed.is_empty()
            {
                continue;
            }
            let _ = write!(
                text,
                "  stage {} (lane {}): in {} dropped {} ({})",
                stage.name,
                stage.lane,
                s.rx,
                s.dropped(),
                s.drops_by_reason()
            );
            if s.originated > 0 {
                let _ = write!(text, ", originated {}", s.originated);
            }
            if s.held > 0 {
                let _ = write!(text, ", held {}", s.held);
            }
            if let Some(own) = own {
                let _ = write!(text, "; {own}");
            }
            for line in keyed {
                let _ = write!(text, "; {line}");
            }
            text.push('\n');
        }
        for l in &self.lcores {
            let s = l.counters.snapshot();
            let _ = write!(
                text,
                "  lcore {}: {} polls, {:.1}% with packets, {} packets, {} idle sleeps",
                l.lcore,
                s.rounds,
                100.0 * s.busy_rounds as f64 / s.rounds.max(1) as f64,
                s.packets,
                s.sleeps
            );
            match s.work_share() {
                Some(share) => {
                    let _ = writeln!(text, ", {:.1}% of cycles at work", 100.0 * share);
                }
                None => text.push('\n'),
            }
        }
        let total = self.totals();
        let balanced = total.rx + total.originated == total.tx + total.dropped() + total.held;
        // Originated and held packets are shown when there are any: the plain form is the one
        // scripts read for forwarders.
        let (originated, held) = (total.originated > 0, total.held > 0);
        let _ = writeln!(
            text,
            "  total: rx {}{} = tx {}{} + dropped {} ({}){}",
            total.rx,
            if originated || held {
                format!(" + originated {}", total.originated)
            } else {
                String::new()
            },
            total.tx,
            if originated || held {
                format!(" + held {}", total.held)
            } else {
                String::new()
            },
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
                keyed: Arc::new(KeyedCounts::default()),
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
            cycles: 300,
            idle_cycles: 100,
        });
        w.add(&LoopSnapshot {
            rounds: 1,
            busy_rounds: 0,
            packets: 0,
            sleeps: 1,
            cycles: 100,
            idle_cycles: 100,
        });
        let s = shared.snapshot();
        assert_eq!(
            s,
            LoopSnapshot {
                rounds: 3,
                busy_rounds: 1,
                packets: 32,
                sleeps: 1,
                cycles: 400,
                idle_cycles: 200,
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
            text.contains(
                "lcore 2: 3 polls, 33.3% with packets, 32 packets, 1 idle sleeps, 50.0% of cycles at work"
            ),
            "{text}"
        );
    }

    #[test]
    fn counters_sit_on_their_own_cache_line() {
        assert_eq!(std::mem::align_of::<Counters>(), 64);
        assert_eq!(std::mem::align_of::<LoopCounters>(), 64);
    }
}
