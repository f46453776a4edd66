//! Counters and drop reasons. Each [`Counters`] block has a single writer, the worker that
//! owns its [`CounterWriter`], so the fast path updates it with plain relaxed stores (no
//! locked instructions) on a cache line of its own; anyone may read a [`Snapshot`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

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
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::TxFull,
        DropReason::RingFull,
        DropReason::Truncated,
        DropReason::NoOutput,
        DropReason::Filtered,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            DropReason::TxFull => "tx_full",
            DropReason::RingFull => "ring_full",
            DropReason::Truncated => "truncated",
            DropReason::NoOutput => "no_output",
            DropReason::Filtered => "filtered",
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

    #[test]
    fn counters_sit_on_their_own_cache_line() {
        assert_eq!(std::mem::align_of::<Counters>(), 64);
    }
}
