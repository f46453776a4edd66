//! The receive side: per stream, packets and bytes, loss, duplicates, reordering and
//! one-way latency (TSC stamped at send, read at receive: one clock, one process).

use hdrhistogram::Histogram;
use sluice_pktgen::signature::{self, Inspected};

/// How far behind the newest sequence number duplicates can still be told from late
/// packets (a bitmap of this many bits per stream).
const WINDOW: u64 = 1 << 16;

/// One stream's receive accounting.
pub struct StreamRx {
    pub packets: u64,
    pub bytes: u64,
    pub duplicates: u64,
    /// Packets that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Packets that arrived ahead of sequence numbers not yet seen: each starts a run of
    /// loss (then, with nothing reordered, lost / gaps is the mean loss burst) or overtook
    /// packets still on their way (then, with nothing lost, gaps counts the packets that
    /// jumped ahead).
    pub gaps: u64,
    /// Highest sequence number seen plus one (0: none yet).
    next: u64,
    seen: Vec<u64>,
    /// Latency in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Default for StreamRx {
    fn default() -> Self {
        StreamRx {
            packets: 0,
            bytes: 0,
            duplicates: 0,
            reordered: 0,
            gaps: 0,
            next: 0,
            seen: vec![0; (WINDOW / 64) as usize],
            latency: new_histogram(),
        }
    }
}

/// Latencies from 1 ns to a minute, to 3 significant digits. Fixed bounds: an auto-resizing
/// histogram would allocate on the fast path (and its saturating record does not resize).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

impl StreamRx {
    fn mark(&mut self, seq: u64) -> bool {
        let (word, bit) = (((seq % WINDOW) / 64) as usize, seq % 64);
        let was = self.seen[word] & (1 << bit) != 0;
        self.seen[word] |= 1 << bit;
        was
    }

    fn clear(&mut self, seq: u64) {
        let (word, bit) = (((seq % WINDOW) / 64) as usize, seq % 64);
        self.seen[word] &= !(1 << bit);
    }

    /// Records one packet; returns whether it was a duplicate.
    fn record(&mut self, seq: u64) -> bool {
        if seq >= self.next {
            if seq > self.next {
                self.gaps += 1;
            }
            // New ground: forget what the window slides past.
            let from = self.next.max(seq.saturating_sub(WINDOW - 1));
            if seq - from >= WINDOW {
                self.seen.fill(0);
            } else {
                for s in from..seq {
                    self.clear(s);
                }
            }
            self.mark(seq);
            self.next = seq + 1;
            false
        } else if self.next - seq > WINDOW {
            // Too old to tell: late, and counted as such.
            self.reordered += 1;
            false
        } else if self.mark(seq) {
            self.duplicates += 1;
            true
        } else {
            self.reordered += 1;
            false
        }
    }

    /// Packets received once each.
    pub fn unique(&self) -> u64 {
        self.packets - self.duplicates
    }
}

/// Everything the receiver counts for one RX queue or port.
#[derive(Clone, Copy, Default, Debug)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
}

/// The receive side of a run.
pub struct Receiver {
    pub streams: Vec<StreamRx>,
    /// Packets without our signature, or naming a stream we do not send.
    pub foreign: u64,
    /// IP packets with a wrong checksum: not counted in any stream (so lost to it).
    pub corrupted: u64,
    /// Every stream's latency as it stood at the last [`Receiver::take_interval`]: the
    /// interval's is the difference, so no packet is recorded twice.
    at_last_interval: Histogram<u64>,
    /// TSC ticks to nanoseconds, as 32.32 fixed point.
    ns_per_tick: u64,
}

impl Receiver {
    pub fn new(streams: usize, tsc_hz: u64) -> Receiver {
        Receiver {
            streams: (0..streams).map(|_| StreamRx::default()).collect(),
            foreign: 0,
            corrupted: 0,
            at_last_interval: new_histogram(),
            ns_per_tick: ((1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1))) as u64,
        }
    }

    /// Accounts for one received frame of `len` bytes (FCS included) at TSC `now`.
    #[inline]
    pub fn frame(&mut self, data: &[u8], len: u64, now: u64) {
        let sig = match signature::inspect(data) {
            Inspected::Signed(sig) => sig,
            Inspected::Corrupted => {
                self.corrupted += 1;
                return;
            }
            Inspected::Foreign => {
                self.foreign += 1;
                return;
            }
        };
        let Some(stream) = self.streams.get_mut(usize::from(sig.stream)) else {
            self.foreign += 1;
            return;
        };
        stream.packets += 1;
        stream.bytes += len;
        if stream.record(sig.seq) {
            return; // a duplicate's latency says nothing
        }
        let ns = (u128::from(now.saturating_sub(sig.tsc)) * u128::from(self.ns_per_tick)) >> 32;
        let ns = (ns as u64).max(1);
        stream.latency.saturating_record(ns);
    }

    /// The latency of the packets received since the last call.
    pub fn take_interval(&mut self) -> Histogram<u64> {
        let now = self.total_latency();
        let mut interval = now.clone();
        interval
            .subtract(&self.at_last_interval)
            .expect("counts only grow, with the same settings");
        self.at_last_interval = now;
        interval
    }

    /// Latency over every stream.
    pub fn total_latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for s in &self.streams {
            all.add(&s.latency).expect("same settings");
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_duplicates_and_reorders_are_told_apart() {
        let mut s = StreamRx::default();
        // 0..1000 with every 100th missing and each 10th pair swapped, plus one duplicate.
        let mut order: Vec<u64> = (0..1000).filter(|k| k % 100 != 99).collect();
        for pair in order.chunks_mut(10) {
            pair.swap(0, 1);
        }
        order.push(500);
        for &k in &order {
            s.packets += 1;
            s.record(k);
        }
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 99, "one per swapped pair");
        assert_eq!(s.unique(), 990);
    }

    #[test]
    fn gaps_count_runs_of_loss_and_packets_that_jumped_ahead() {
        let mut lossy = StreamRx::default();
        for k in (0..100).filter(|k| ![10, 11, 12, 50].contains(k)) {
            lossy.record(k);
        }
        assert_eq!((lossy.gaps, lossy.reordered), (2, 0), "two runs of loss");
        let mut reordered = StreamRx::default();
        for k in [0, 1, 3, 2, 4, 6, 5, 7, 9, 8] {
            reordered.record(k);
        }
        assert_eq!(
            (reordered.gaps, reordered.reordered),
            (3, 3),
            "three jumped ahead"
        );
    }

    #[test]
    fn an_interval_holds_only_what_came_since_the_last() {
        let mut rx = Receiver::new(1, 1_000_000_000);
        rx.streams[0].latency.record(1_000).unwrap();
        assert_eq!(rx.take_interval().len(), 1);
        rx.streams[0].latency.record(5_000).unwrap();
        rx.streams[0].latency.record(5_000).unwrap();
        let second = rx.take_interval();
        assert_eq!((second.len(), second.min()), (2, 5_000));
        assert!(rx.take_interval().is_empty());
    }

    #[test]
    fn the_window_slides_over_big_gaps() {
        let mut s = StreamRx::default();
        s.record(5);
        s.record(5 + 3 * WINDOW);
        assert!(!s.record(6 + 2 * WINDOW + 10), "late, not a duplicate");
        assert!(s.record(5 + 3 * WINDOW));
        assert_eq!((s.duplicates, s.reordered), (1, 1));
    }
}
