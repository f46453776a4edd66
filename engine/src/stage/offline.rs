//! Stages outside a pipeline: frames given as bytes go through a stage (any [`Node`]) as one
//! burst, and each comes back with its verdict and its bytes afterwards, beside whatever the
//! stage sent through its context. For tests, fuzzing, and tools that replay captures through
//! a stage; the mbufs are real, from a pool of the caller's.

use super::{Action, Context, Held, Node, Services, Verdict};
use crate::mbuf::MAX_BURST;
use crate::mempool::Mempool;
use crate::stats::{counters, CounterWriter, Counters, KeyedCounts, Snapshot};
use std::sync::Arc;

/// Runs bursts of byte frames through stages, as one worker of a pipeline would.
pub struct Runner {
    services: Services,
    counters: CounterWriter,
    shared: Arc<Counters>,
    keyed: KeyedCounts,
    /// Last, so that the mbufs the services hold go back before the pool's handle does.
    pool: Mempool,
}

/// What became of one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The frame as the stage left it (rewritten in place, or turned into an answer; for a
    /// held packet, as it was handed to the stage).
    pub frame: Vec<u8>,
}

/// What a call into a stage did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Per frame given, in order.
    pub outcomes: Vec<Outcome>,
    /// What the stage sent through its context (packets it made or released), with the port.
    pub sent: Vec<(u16, Vec<u8>)>,
}

/// Ports a stage run here may send by (every port DPDK can have).
const PORTS: u16 = dpdk_sys::RTE_MAX_ETHPORTS as u16;

impl Runner {
    /// Frames are copied into mbufs of `pool`, which must hold the largest of them; a stage
    /// that makes packets takes them from it too.
    pub fn new(pool: Mempool) -> Runner {
        let mut services = Services::new(Some(pool.clone()), 0, 1);
        services.outbox = (0..PORTS).map(|_| Some(Vec::new())).collect();
        let (counters, shared) = counters();
        Runner {
            services,
            counters,
            shared,
            keyed: KeyedCounts::default(),
            pool,
        }
    }

    fn context(&mut self) -> Context<'_> {
        Context {
            services: &mut self.services,
            stage: 0,
            counters: &mut self.counters,
            keyed: &self.keyed,
        }
    }

    /// `frames`, each with the port it arrived on, through `node` as one burst (at most
    /// [`MAX_BURST`] frames); None if the pool cannot hold them.
    pub fn run(&mut self, node: &mut dyn Node, frames: &[(u16, &[u8])]) -> Option<Run> {
        assert!(frames.len() <= MAX_BURST, "one burst at a time");
        let mut packets = Vec::with_capacity(frames.len());
        for &(port, bytes) in frames {
            let mut m = self.pool.alloc()?;
            if !m.extend_from_slice(bytes) {
                return None;
            }
            m.set_port(port);
            packets.push(m);
        }
        let mut actions = vec![Action::NEXT; packets.len()];
        self.counters.rx(packets.len() as u64);
        node.process(&mut packets, &mut actions, &mut self.context());
        let outcomes = packets
            .iter()
            .zip(&actions)
            .map(|(m, action)| Outcome {
                verdict: action.verdict(),
                frame: m.data().to_vec(),
            })
            .collect();
        for (m, action) in packets.into_iter().zip(&actions) {
            match action.verdict() {
                Verdict::Hold => {
                    self.counters.held(1);
                    node.hold(Held::new(m), &mut self.context());
                }
                Verdict::Drop(reason) => self.counters.drop(reason, 1),
                _ => {}
            }
        }
        Some(Run {
            outcomes,
            sent: self.take_sent(),
        })
    }

    /// Fires the node's timers that are due by `now` (a TSC value; `u64::MAX` fires them
    /// all), each seeing `now` as the time, so that what a timer does is the same however
    /// long the caller took; returns what the node sent.
    pub fn timers(&mut self, node: &mut dyn Node, now: u64) -> Vec<(u16, Vec<u8>)> {
        self.services.clock = Some(now);
        while let Some(&std::cmp::Reverse((deadline, _, token))) = self.services.timers.peek() {
            if deadline > now {
                break;
            }
            self.services.timers.pop();
            node.timer(token, &mut self.context());
        }
        self.services.clock = None;
        self.take_sent()
    }

    /// Tells the node the run is over; returns what it sent as it released what it held.
    pub fn stop(&mut self, node: &mut dyn Node) -> Vec<(u16, Vec<u8>)> {
        node.stop(&mut self.context());
        self.take_sent()
    }

    /// What the node counted (held now, originated, drops by reason, its own counters).
    pub fn counts(&self) -> Snapshot {
        self.shared.snapshot()
    }

    fn take_sent(&mut self) -> Vec<(u16, Vec<u8>)> {
        let mut sent = Vec::new();
        for (port, outbox) in self.services.outbox.iter_mut().enumerate() {
            for m in outbox.iter_mut().flat_map(|o| o.drain(..)) {
                sent.push((port as u16, m.data().to_vec()));
            }
        }
        sent
    }
}
