//! Stages: the steps a burst goes through between RX and TX, as nodes in VPP.
//!
//! A stage sees a whole burst and decides, for each packet, one [`Action`]: go on to the next
//! stage, leave by a port, be dropped for a counted reason, be held by the stage, or be handed
//! to the same stage on another worker. It may rewrite packets in place. The pipeline does the
//! moving; stages are safe Rust.
//!
//! There are two ways to write one. [`Stage`] is a burst in and a verdict per packet out.
//! [`Node`] adds the worker's services through a [`Context`]: holding packets and releasing
//! them later, originating packets from the worker's pool, timers, handoff to other workers,
//! control messages, and counters of its own. Every `Stage` is a `Node` that uses none of
//! them; the pipeline runs `Node`s.

pub mod guard;
mod icmp_error;
pub mod impair;
pub mod neighbour;
pub mod offline;
pub mod router;
pub mod table;
mod tcp_reset;

use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::net::ethernet::{Address, AddressPair, Frame};
use crate::stats::{Counter, CounterMap, CounterWriter, DropReason, KeyedCounts, Reason};
use std::any::Any;
use std::time::Duration;

/// What becomes of one packet after a stage, as a compact code (like VPP's next index):
/// filling and comparing a burst's actions are then plain integer operations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Action(u32);

/// An [`Action`] taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On to the next stage (after the last one: dropped as `no_output`).
    Next,
    /// Out of this port, by the TX queue the worker owns for it.
    Tx(u16),
    /// Dropped and counted under the reason.
    Drop(Reason),
    /// Kept by the stage: it receives the packet in [`Node::hold`], counted as held until it
    /// releases it through its [`Context`].
    Hold,
    /// To the same stage on worker `n` (see [`Context::workers`]), whose [`Node::handed`]
    /// takes it from there.
    Handoff(u16),
}

const KIND_SHIFT: u32 = 16;
const KIND_TX: u32 = 1 << KIND_SHIFT;
const KIND_DROP: u32 = 2 << KIND_SHIFT;
const KIND_HOLD: u32 = 3 << KIND_SHIFT;
const KIND_HANDOFF: u32 = 4 << KIND_SHIFT;

impl Action {
    /// On to the next stage.
    pub const NEXT: Action = Action(0);
    /// Kept by the stage ([`Verdict::Hold`]).
    pub const HOLD: Action = Action(KIND_HOLD);

    /// Out of `port`.
    pub const fn tx(port: u16) -> Action {
        Action(KIND_TX | port as u32)
    }

    /// Dropped for `reason`.
    #[inline]
    pub fn drop(reason: impl Into<Reason>) -> Action {
        Action(KIND_DROP | u32::from(reason.into().code()))
    }

    /// To the same stage on worker `worker`.
    pub const fn handoff(worker: u16) -> Action {
        Action(KIND_HANDOFF | worker as u32)
    }

    /// The one action all of `actions` share, if they do. Branch-free over the slice (an OR of
    /// XORs, which vectorises): it runs on every burst.
    #[inline]
    pub fn uniform(actions: &[Action]) -> Option<Action> {
        let first = *actions.first()?;
        let differ = actions.iter().fold(0, |acc, a| acc | (a.0 ^ first.0));
        (differ == 0).then_some(first)
    }

    #[inline]
    pub fn verdict(self) -> Verdict {
        let low = (self.0 & 0xffff) as u16;
        match self.0 & !0xffff {
            0 => Verdict::Next,
            KIND_TX => Verdict::Tx(low),
            KIND_DROP => Verdict::Drop(Reason::from_code(low)),
            KIND_HOLD => Verdict::Hold,
            _ => Verdict::Handoff(low),
        }
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.verdict().fmt(f)
    }
}

/// One step of the pipeline that needs nothing but the burst. Each worker has its own
/// instance, so `&mut self` state is per-worker and needs no locking.
pub trait Stage: Send {
    /// Names the stage in statistics.
    fn name(&self) -> &str;

    /// Decides an action for every packet: `actions[i]` is for `packets[i]` and starts as
    /// [`Action::NEXT`].
    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]);
}

/// One step of the pipeline with the worker's services (see [`Context`]). As for [`Stage`],
/// each worker has its own instance. Only `name` and `process` are required; the other
/// methods are called for the services a node uses.
pub trait Node: Send {
    fn name(&self) -> &str;

    /// As [`Stage::process`], with the worker's services at hand.
    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>);

    /// Takes a packet `process` (or `handed`) gave [`Action::HOLD`], in burst order. The node
    /// owns it now, and must release it through the context (to a port, or to a drop) at
    /// some time; until then it is counted as held. Nodes that never hold need not implement
    /// this (the default drops it as `no_output`).
    fn hold(&mut self, packet: Held, ctx: &mut Context<'_>) {
        ctx.release_drop(packet, DropReason::NoOutput);
    }

    /// A timer the node set ([`Context::timer_at`]) is due; `token` is the one it gave.
    fn timer(&mut self, token: u64, ctx: &mut Context<'_>) {
        let _ = (token, ctx);
    }

    /// Packets other workers' instances handed to this one ([`Action::handoff`]), as a burst
    /// to decide on like any other (by default, as [`Node::process`] decides).
    fn handed(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        self.process(packets, actions, ctx)
    }

    /// Whether other workers may hand packets to this node (the pipeline then builds the
    /// rings between the workers that run it).
    fn takes_handoff(&self) -> bool {
        false
    }

    /// A control message sent to this node's name ([`Messenger::send`](crate::pipeline::Messenger)).
    fn message(&mut self, message: &(dyn Any + Send + Sync), ctx: &mut Context<'_>) {
        let _ = (message, ctx);
    }

    /// The pipeline is stopping: release or drop every packet still held. Nothing more will
    /// arrive.
    fn stop(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }
}

impl<S: Stage> Node for S {
    fn name(&self) -> &str {
        Stage::name(self)
    }

    #[inline]
    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], _ctx: &mut Context<'_>) {
        Stage::process(self, packets, actions)
    }
}

/// A packet a node holds. It leaves only through the node's [`Context`]
/// ([`Context::release`], [`Context::release_drop`]), which counts it out of the held; one
/// that is simply dropped is freed but stays counted as held, and the final account shows it.
pub struct Held(Mbuf);

impl Held {
    pub(crate) fn new(packet: Mbuf) -> Held {
        Held(packet)
    }

    pub fn packet(&self) -> &Mbuf {
        &self.0
    }

    pub fn packet_mut(&mut self) -> &mut Mbuf {
        &mut self.0
    }
}

/// What a node's worker provides, lent to the node for each call.
pub struct Context<'a> {
    pub(crate) services: &'a mut Services,
    pub(crate) stage: usize,
    pub(crate) counters: &'a mut CounterWriter,
    pub(crate) keyed: &'a KeyedCounts,
}

/// A worker's services behind [`Context`]: its pool, its TX queues' outboxes, its timers.
pub(crate) struct Services {
    pub(crate) pool: Option<Mempool>,
    /// Per port id: packets sent through the context, for the TX queue the worker owns.
    pub(crate) outbox: Vec<Option<Vec<Mbuf>>>,
    /// Packets sent through the context to a port this worker has no TX queue for.
    pub(crate) no_output: u64,
    /// Whether a packet went through the context since the last flush (most bursts send
    /// none, and skip the flush).
    pub(crate) queued: bool,
    pub(crate) timers: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize, u64)>>,
    pub(crate) tsc_hz: u64,
    pub(crate) worker: usize,
    pub(crate) workers: usize,
    /// The time [`Context::now`] gives while set (the offline runner's timers); the TSC
    /// otherwise.
    pub(crate) clock: Option<u64>,
}

impl Services {
    /// Services with no outbox yet (the pipeline gives each TX port of the lane one).
    pub(crate) fn new(pool: Option<Mempool>, worker: usize, workers: usize) -> Services {
        Services {
            pool,
            outbox: Vec::new(),
            no_output: 0,
            queued: false,
            timers: std::collections::BinaryHeap::new(),
            tsc_hz: crate::clock::tsc_hz().max(1),
            worker,
            workers,
            clock: None,
        }
    }

    /// The earliest timer's deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.peek().map(|t| t.0 .0)
    }
}

impl Context<'_> {
    /// The TSC now.
    pub fn now(&self) -> u64 {
        self.services.clock.unwrap_or_else(dpdk_sys::rdtsc)
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        self.services.tsc_hz
    }

    /// The TSC `after` from now.
    pub fn after(&self, after: Duration) -> u64 {
        self.now()
            .saturating_add((after.as_secs_f64() * self.services.tsc_hz as f64) as u64)
    }

    /// This worker's index, from 0 to [`Context::workers`] (each lane of the pipeline is one).
    pub fn worker(&self) -> usize {
        self.services.worker
    }

    pub fn workers(&self) -> usize {
        self.services.workers
    }

    /// A fresh packet from the worker's pool (None when it is empty), to fill and send with
    /// [`Context::send`].
    pub fn alloc(&mut self) -> Option<Mbuf> {
        self.services.pool.as_ref()?.alloc()
    }

    /// Sends a packet the node made out of `port`, counted as originated by it. With no TX
    /// queue for the port here, it is dropped as `no_output`.
    pub fn send(&mut self, port: u16, packet: Mbuf) {
        self.counters.originated(1);
        self.queue(port, packet);
    }

    /// Sends a held packet out of `port`.
    pub fn release(&mut self, packet: Held, port: u16) {
        self.counters.released(1);
        self.queue(port, packet.0);
    }

    /// Drops a held packet, counted under `reason`.
    pub fn release_drop(&mut self, packet: Held, reason: impl Into<Reason>) {
        self.counters.released(1);
        self.counters.drop(reason, 1);
        drop(packet);
    }

    fn queue(&mut self, port: u16, packet: Mbuf) {
        self.services.queued = true;
        match self.services.outbox.get_mut(usize::from(port)) {
            // The pipeline sends the outbox after this call, a burst at a time.
            Some(Some(outbox)) => outbox.push(packet),
            _ => {
                self.services.no_output += 1;
                drop(packet);
            }
        }
    }

    /// Calls [`Node::timer`] with `token` once the TSC reaches `deadline` (checked every poll
    /// of the worker's loop).
    pub fn timer_at(&mut self, deadline: u64, token: u64) {
        self.services
            .timers
            .push(std::cmp::Reverse((deadline, self.stage, token)));
    }

    /// As [`Context::timer_at`], `after` from now.
    pub fn timer_after(&mut self, after: Duration, token: u64) {
        let deadline = self.after(after);
        self.timer_at(deadline, token);
    }

    /// Adds `n` to a counter of the node's own.
    #[inline]
    pub fn count(&mut self, counter: Counter, n: u64) {
        self.counters.count(counter, n);
    }

    /// Adds `n` to `key` in a keyed counter of the node's own (at most
    /// [`MAX_KEYS`](crate::stats::MAX_KEYS) keys; the rest count as `other`).
    pub fn count_key(&mut self, map: CounterMap, key: u64, n: u64) {
        self.keyed.add(map, key, n);
    }
}

/// l2fwd's forwarding: a packet that arrived on port P leaves by `partner[P]`; with MAC
/// updating its source MAC becomes that port's and its destination 02:00:00:00:00:TX_PORT.
pub struct L2Forward {
    /// Indexed by RX port id.
    routes: Vec<Option<L2Route>>,
}

#[derive(Clone, Copy)]
struct L2Route {
    tx: u16,
    /// The MACs to write, when MAC updating is on.
    rewrite: Option<AddressPair>,
}

impl L2Forward {
    /// `routes`: (RX port, TX port, MAC of the TX port if MACs are to be rewritten).
    pub fn new(routes: &[(u16, u16, Option<Address>)]) -> L2Forward {
        let size = routes
            .iter()
            .map(|r| usize::from(r.0) + 1)
            .max()
            .unwrap_or(0);
        let mut table = vec![None; size];
        for &(rx, tx, mac) in routes {
            let rewrite = mac.map(|src| AddressPair::new(Address([2, 0, 0, 0, 0, tx as u8]), src));
            table[usize::from(rx)] = Some(L2Route { tx, rewrite });
        }
        L2Forward { routes: table }
    }
}

impl Stage for L2Forward {
    fn name(&self) -> &str {
        "l2fwd"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]) {
        // A poll's burst comes from one port: look the route up once per run of packets
        // from the same port, not once per packet.
        let mut start = 0;
        while start < packets.len() {
            let port = packets[start].port();
            let run = packets[start..]
                .iter()
                .take_while(|m| m.port() == port)
                .count();
            let (group, verdicts) = (
                &mut packets[start..start + run],
                &mut actions[start..start + run],
            );
            start += run;
            let Some(Some(route)) = self.routes.get(usize::from(port)) else {
                verdicts.fill(Action::drop(DropReason::NoOutput));
                continue;
            };
            let Some(addresses) = route.rewrite else {
                verdicts.fill(Action::tx(route.tx));
                continue;
            };
            for (m, verdict) in group.iter_mut().zip(verdicts) {
                *verdict = match Frame::new_checked(m.data_mut()) {
                    Ok(mut frame) => {
                        frame.set_addresses(&addresses);
                        Action::tx(route.tx)
                    }
                    Err(_) => Action::drop(DropReason::Truncated),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_encode_and_decode() {
        assert_eq!(Action::NEXT.verdict(), Verdict::Next);
        assert_eq!(Action::tx(0).verdict(), Verdict::Tx(0));
        assert_eq!(Action::tx(u16::MAX).verdict(), Verdict::Tx(u16::MAX));
        for reason in DropReason::ALL {
            assert_eq!(Action::drop(reason).verdict(), Verdict::Drop(reason.into()));
        }
        assert_eq!(Action::HOLD.verdict(), Verdict::Hold);
        assert_eq!(Action::handoff(3).verdict(), Verdict::Handoff(3));
        let own = Reason::named("a_reason_of_the_test");
        assert_eq!(Action::drop(own).verdict(), Verdict::Drop(own));
        for reason in DropReason::ALL {
            assert_eq!(Reason::from(reason).name(), reason.name());
        }
        assert_ne!(Action::tx(1), Action::tx(2));
        assert_ne!(Action::tx(0), Action::NEXT);
        assert_eq!(format!("{:?}", Action::tx(3)), "Tx(3)");
        assert_eq!(Action::uniform(&[Action::tx(1); 5]), Some(Action::tx(1)));
        assert_eq!(
            Action::uniform(&[Action::tx(1), Action::tx(1), Action::tx(2)]),
            None
        );
        assert_eq!(Action::uniform(&[]), None);
    }
}
