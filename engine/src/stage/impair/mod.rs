//! netem's impairments as a stage, for any app: per RX port, packets are lost by a model,
//! corrupted, duplicated, delayed with jitter, reordered and paced to a rate, then leave by
//! the port paired with it. Delayed packets are held by the stage (the engine counts them as
//! held) in departure order, and a timer on the worker releases each when its time comes;
//! nothing is copied but duplicates. With the same seed, the same packets get the same fate.
//!
//! Every decision is counted: drops as `impair_loss` and `impair_limit` (the queue held
//! `limit` packets already), and `impair_delayed`, `impair_duplicated`, `impair_corrupted`
//! and `impair_reordered`. On stop, what is still held leaves as if its time had come.

pub mod netem;

pub use netem::{Distribution, Impairment, Loss, Slot, SlotDelay};

use super::{Action, Context, Held, Node};
use crate::mbuf::Mbuf;
use crate::stats::{Counter, Reason};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// SplitMix64: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }

    /// Pareto with shape 3, shifted to mean 0 and scaled to unit spread.
    fn pareto(&mut self) -> f64 {
        const ALPHA: f64 = 3.0;
        let x = (1.0 - self.unit()).powf(-1.0 / ALPHA);
        x - ALPHA / (ALPHA - 1.0)
    }
}

/// netem's correlated uniform: each value leans on the one before by `c`.
struct Correlated {
    last: f64,
    c: f64,
}

impl Correlated {
    fn next(&mut self, rng: &mut Rng) -> f64 {
        let value = (1.0 - self.c) * rng.unit() + self.c * self.last;
        self.last = value;
        value
    }
}

/// A loss model's state.
enum LossState {
    None,
    Random(Correlated),
    GilbertElliott { bad: bool },
    State(u8),
}

/// One RX port's impairment and its state.
struct Direction {
    out: u16,
    /// The impairment does nothing: packets go straight out.
    passthrough: bool,
    imp: Impairment,
    rng: Rng,
    loss: LossState,
    delay_corr: Correlated,
    /// With a rate: when the link is free again (TSC).
    link_free: u64,
    /// Packets since the last one reordered (netem's counter).
    since_reorder: u32,
    held: usize,
    /// Held packets whose departures come in arrival order (a fixed delay, a rate): most of
    /// them, taken in O(1). The others wait in [`Impair`]'s heap.
    in_order: VecDeque<Queued>,
    /// The TSC rate the delays below are in (0 until the first packet).
    tsc_hz: u64,
    delay_ticks: u64,
    jitter_ticks: f64,
    /// With slots: when the current slot opens (TSC; 0 before the first), and what it may
    /// still take.
    slot_next: u64,
    slot_packets: i64,
    slot_bytes: i64,
}

impl Direction {
    fn new(out: u16, imp: Impairment, seed: u64) -> Direction {
        let loss = match imp.loss {
            None => LossState::None,
            Some(Loss::Random { correlation, .. }) => LossState::Random(Correlated {
                last: 0.0,
                c: correlation,
            }),
            Some(Loss::GilbertElliott { .. }) => LossState::GilbertElliott { bad: false },
            Some(Loss::State { .. }) => LossState::State(1),
        };
        let idle = Impairment {
            limit: imp.limit,
            seed: imp.seed,
            ..Impairment::default()
        };
        Direction {
            out,
            passthrough: imp == idle,
            rng: Rng(imp.seed.unwrap_or(seed)),
            loss,
            delay_corr: Correlated {
                last: 0.0,
                c: imp.delay_correlation,
            },
            link_free: 0,
            since_reorder: 0,
            held: 0,
            in_order: VecDeque::with_capacity(imp.limit.min(1 << 20)),
            tsc_hz: 0,
            delay_ticks: 0,
            jitter_ticks: 0.0,
            slot_next: 0,
            slot_packets: 0,
            slot_bytes: 0,
            imp,
        }
    }

    /// Whether the loss model drops the next packet (netem's loss_gilb_ell and loss_4state).
    fn lose(&mut self) -> bool {
        let rng = &mut self.rng;
        match (&mut self.loss, self.imp.loss) {
            (LossState::None, _) => false,
            (LossState::Random(corr), Some(Loss::Random { p, .. })) => {
                p > 0.0 && corr.next(rng) < p
            }
            (
                LossState::GilbertElliott { bad },
                Some(Loss::GilbertElliott {
                    p,
                    r,
                    h_loss,
                    k_loss,
                }),
            ) => {
                if *bad {
                    if rng.chance(r) {
                        *bad = false;
                    }
                    rng.chance(h_loss)
                } else {
                    if rng.chance(p) {
                        *bad = true;
                    }
                    rng.chance(k_loss)
                }
            }
            (
                LossState::State(state),
                Some(Loss::State {
                    p13,
                    p31,
                    p32,
                    p23,
                    p14,
                }),
            ) => {
                let u = rng.unit();
                match *state {
                    1 => {
                        if u < p14 {
                            *state = 4;
                            true
                        } else if u < p14 + p13 {
                            *state = 3;
                            true
                        } else {
                            false
                        }
                    }
                    2 => {
                        if u < p23 {
                            *state = 3;
                            true
                        } else {
                            false
                        }
                    }
                    3 => {
                        if u < p32 {
                            *state = 2;
                            false
                        } else if u < p32 + p31 {
                            *state = 1;
                            false
                        } else {
                            true
                        }
                    }
                    _ => {
                        *state = 1;
                        false
                    }
                }
            }
            _ => false,
        }
    }

    /// Converts the delays to TSC ticks at `tsc_hz`, once.
    #[inline]
    fn calibrate(&mut self, tsc_hz: u64) {
        if self.tsc_hz != tsc_hz {
            self.tsc_hz = tsc_hz;
            self.delay_ticks = ticks(self.imp.delay, tsc_hz);
            self.jitter_ticks = self.imp.jitter.as_secs_f64() * tsc_hz as f64;
        }
    }

    /// The delay of the next packet, in TSC ticks: the latency plus a jitter drawn from the
    /// distribution (never below zero).
    #[inline]
    fn delay(&mut self) -> u64 {
        if self.jitter_ticks == 0.0 {
            return self.delay_ticks;
        }
        let offset = self.jitter_ticks
            * sample(
                &mut self.rng,
                Some(&mut self.delay_corr),
                self.imp.distribution,
            );
        (self.delay_ticks as f64 + offset).max(0.0) as u64
    }

    /// Whether a packet held until `at` may leave by `now` as far as the slots go (always,
    /// without slots); if it may, it is counted against the slot. netem's rules: a packet due
    /// after the slot opened (the link was idle) waits for a new one, drawn from `now`; a slot
    /// that runs out of packets or bytes closes and the next is drawn.
    fn slot_allows(&mut self, at: u64, len: usize, now: u64, tsc_hz: u64) -> bool {
        let Some(slot) = self.imp.slot else {
            return true;
        };
        if self.slot_next < at {
            self.open_slot(slot, now, tsc_hz);
        }
        if self.slot_next > now {
            return false;
        }
        self.slot_packets -= 1;
        self.slot_bytes -= len as i64;
        if self.slot_packets <= 0 || self.slot_bytes <= 0 {
            self.open_slot(slot, now, tsc_hz);
        }
        true
    }

    fn open_slot(&mut self, slot: Slot, now: u64, tsc_hz: u64) {
        let wait = match slot.delay {
            SlotDelay::Between { min, max } => {
                let spread = (max - min).as_secs_f64() * self.rng.unit();
                ((min.as_secs_f64() + spread) * tsc_hz as f64) as u64
            }
            SlotDelay::Distributed {
                distribution,
                delay,
                jitter,
            } => {
                let offset = jitter.as_secs_f64() * sample(&mut self.rng, None, distribution);
                ((delay.as_secs_f64() + offset).max(0.0) * tsc_hz as f64) as u64
            }
        };
        self.slot_next = now.saturating_add(wait);
        // netem's limits when none is given.
        let unlimited = i64::from(i32::MAX);
        self.slot_packets = slot.packets.map_or(unlimited, i64::from);
        self.slot_bytes = slot.bytes.map_or(unlimited, i64::from);
    }
}

/// `d` in TSC ticks at `tsc_hz`.
fn ticks(d: Duration, tsc_hz: u64) -> u64 {
    (d.as_nanos() * u128::from(tsc_hz) / 1_000_000_000) as u64
}

/// A jitter of unit spread drawn from `distribution` (correlated for uniform, when given).
fn sample(rng: &mut Rng, correlated: Option<&mut Correlated>, distribution: Distribution) -> f64 {
    match distribution {
        Distribution::Uniform => {
            let u = match correlated {
                Some(c) => c.next(rng),
                None => rng.unit(),
            };
            2.0 * u - 1.0
        }
        Distribution::Normal => rng.normal(),
        Distribution::Pareto => rng.pareto(),
        Distribution::ParetoNormal => 0.25 * rng.normal() + 0.75 * rng.pareto(),
    }
}

/// A packet waiting for its time: one received and held, or a duplicate the stage made.
enum Waiting {
    Held(Held),
    Copy(Mbuf),
}

struct Queued {
    at: u64,
    seq: u64,
    direction: usize,
    packet: Waiting,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// The earliest departure first (BinaryHeap is a max-heap), in arrival order on ties.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Impair {
    /// By RX port id.
    directions: Vec<Option<Direction>>,
    /// Held packets that leave out of arrival order (jitter, slots), by departure.
    queue: BinaryHeap<Queued>,
    /// Departure times of the packets `process` gave HOLD, in burst order, for `hold`.
    expected: VecDeque<(u64, usize)>,
    seq: u64,
    /// The deadline of the earliest timer set and not yet fired.
    armed: Option<u64>,
    lost: Reason,
    over_limit: Reason,
    delayed: Counter,
    duplicated: Counter,
    corrupted: Counter,
    reordered: Counter,
}

impl Impair {
    /// Impairs what arrives on each `(rx, tx, impairment)`'s RX port and sends it by TX.
    /// Directions without a seed take `seed + their index`.
    pub fn new(directions: Vec<(u16, u16, Impairment)>, seed: u64) -> Impair {
        let size = directions
            .iter()
            .map(|(rx, ..)| usize::from(*rx) + 1)
            .max()
            .unwrap_or(0);
        let mut table: Vec<Option<Direction>> = (0..size).map(|_| None).collect();
        for (i, (rx, tx, imp)) in directions.into_iter().enumerate() {
            table[usize::from(rx)] = Some(Direction::new(tx, imp, seed.wrapping_add(i as u64)));
        }
        Impair {
            directions: table,
            queue: BinaryHeap::new(),
            expected: VecDeque::new(),
            seq: 0,
            armed: None,
            lost: Reason::named("impair_loss"),
            over_limit: Reason::named("impair_limit"),
            delayed: Counter::named("impair_delayed"),
            duplicated: Counter::named("impair_duplicated"),
            corrupted: Counter::named("impair_corrupted"),
            reordered: Counter::named("impair_reordered"),
        }
    }

    /// Replaces the impairment of RX port `rx` (its held packets keep their times).
    pub fn set(&mut self, rx: u16, imp: Impairment) -> bool {
        match self.directions.get_mut(usize::from(rx)) {
            Some(Some(d)) => {
                let seed = d.rng.next_u64();
                let old = std::mem::replace(d, Direction::new(d.out, imp, seed));
                d.held = old.held;
                d.in_order = old.in_order;
                true
            }
            _ => false,
        }
    }

    fn enqueue(&mut self, at: u64, direction: usize, packet: Waiting, ctx: &mut Context<'_>) {
        self.seq += 1;
        let queued = Queued {
            at,
            seq: self.seq,
            direction,
            packet,
        };
        let d = self.directions[direction]
            .as_mut()
            .expect("a direction's packet");
        if d.in_order.back().is_none_or(|last| last.at <= at) {
            d.in_order.push_back(queued);
        } else {
            self.queue.push(queued);
        }
        if self.armed.is_none_or(|armed| at < armed) {
            self.armed = Some(at);
            ctx.timer_at(at, at);
        }
    }

    /// Where the next departure waits: the heap (None) or a direction's packets in order,
    /// and when it leaves; the earliest, in arrival order on ties.
    fn next_departure(&self) -> Option<(Option<usize>, u64)> {
        let mut next = self.queue.peek().map(|q| (None, (q.at, q.seq)));
        for (i, d) in self.directions.iter().enumerate() {
            let Some(first) = d.as_ref().and_then(|d| d.in_order.front()) else {
                continue;
            };
            if next.is_none_or(|(_, when)| (first.at, first.seq) < when) {
                next = Some((Some(i), (first.at, first.seq)));
            }
        }
        next.map(|(from, (at, _))| (from, at))
    }

    /// Sends what is due by `now` (everything with `u64::MAX`), as far as the slots let it:
    /// a packet waiting for a slot goes back in the queue for the slot's opening, keeping
    /// its place among packets of the same time.
    fn release(&mut self, now: u64, ctx: &mut Context<'_>) {
        let hz = ctx.tsc_hz();
        while let Some((from, at)) = self.next_departure() {
            if at > now {
                break;
            }
            let mut q = match from {
                None => self.queue.pop(),
                Some(i) => self.directions[i]
                    .as_mut()
                    .and_then(|d| d.in_order.pop_front()),
            }
            .expect("the next departure");
            let Some(d) = self.directions[q.direction].as_mut() else {
                continue;
            };
            let len = match &q.packet {
                Waiting::Held(packet) => packet.packet().len(),
                Waiting::Copy(packet) => packet.len(),
            };
            if now != u64::MAX && !d.slot_allows(q.at, len, now, hz) {
                q.at = d.slot_next;
                self.queue.push(q);
                continue;
            }
            match q.packet {
                Waiting::Held(packet) => {
                    d.held -= 1;
                    ctx.release(packet, d.out);
                }
                Waiting::Copy(packet) => ctx.send(d.out, packet),
            }
        }
    }
}

impl Node for Impair {
    fn name(&self) -> &str {
        "impair"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        let (now, hz) = (ctx.now(), ctx.tsc_hz());
        for (m, action) in packets.iter_mut().zip(actions.iter_mut()) {
            let rx = usize::from(m.port());
            let Some(d) = self.directions.get_mut(rx).and_then(Option::as_mut) else {
                continue;
            };
            if d.passthrough {
                *action = Action::tx(d.out);
                continue;
            }
            d.calibrate(hz);
            if d.lose() {
                *action = Action::drop(self.lost);
                continue;
            }
            if d.rng.chance(d.imp.corrupt) {
                let data = m.data_mut();
                if data.len() > crate::net::ethernet::HEADER_LEN {
                    let span = data.len() - crate::net::ethernet::HEADER_LEN;
                    let bit = d.rng.next_u64() as usize % (span * 8);
                    data[crate::net::ethernet::HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
                    ctx.count(self.corrupted, 1);
                }
            }
            // netem's reorder: every gap-th packet (or any, without a gap) may skip the delay.
            let candidate = d.imp.reorder > 0.0
                && (d.imp.reorder_gap == 0 || d.since_reorder + 1 >= d.imp.reorder_gap);
            let skip_delay = candidate && d.rng.chance(d.imp.reorder);
            let mut at = if skip_delay {
                d.since_reorder = 0;
                ctx.count(self.reordered, 1);
                now
            } else {
                d.since_reorder += 1;
                now + d.delay()
            };
            if let Some((bits, overhead)) = d.imp.rate {
                let wire = (m.len() as u64 + u64::from(overhead)) * 8;
                at = at.max(d.link_free) + wire * hz / bits;
            }
            // With slots every packet waits for one, in the queue.
            let at_once = at <= now && d.imp.slot.is_none();
            if !at_once && d.held >= d.imp.limit {
                // Dropped before it takes any time on the link, as netem does.
                *action = Action::drop(self.over_limit);
                continue;
            }
            if d.imp.rate.is_some() {
                d.link_free = at;
            }
            let duplicate = d.rng.chance(d.imp.duplicate);
            let out = d.out;
            if duplicate {
                if let Some(mut copy) = ctx.alloc() {
                    if copy.extend_from_slice(m.data()) {
                        ctx.count(self.duplicated, 1);
                        if at_once {
                            ctx.send(out, copy);
                        } else {
                            self.enqueue(at, rx, Waiting::Copy(copy), ctx);
                        }
                    }
                }
            }
            *action = if at_once {
                Action::tx(out)
            } else {
                let d = self.directions[rx].as_mut().expect("looked up");
                d.held += 1;
                ctx.count(self.delayed, 1);
                self.expected.push_back((at, rx));
                Action::HOLD
            };
        }
    }

    fn hold(&mut self, packet: Held, ctx: &mut Context<'_>) {
        let (at, direction) = self
            .expected
            .pop_front()
            .expect("a departure time for each held packet");
        self.enqueue(at, direction, Waiting::Held(packet), ctx);
    }

    /// A timer's token is its deadline. One that an earlier departure overtook releases what
    /// is due and arms nothing: re-arming from every such timer would grow the timer heap by
    /// one for each packet that came in ahead of the armed one (with jitter, most of them).
    fn timer(&mut self, deadline: u64, ctx: &mut Context<'_>) {
        self.release(ctx.now(), ctx);
        if self.armed != Some(deadline) {
            return;
        }
        self.armed = None;
        if let Some((_, next)) = self.next_departure() {
            self.armed = Some(next);
            ctx.timer_at(next, next);
        }
    }

    /// A [`Change`] sent through the pipeline's messenger takes effect from the next burst.
    fn message(&mut self, message: &(dyn std::any::Any + Send + Sync), _ctx: &mut Context<'_>) {
        if let Some(change) = message.downcast_ref::<Change>() {
            self.set(change.rx, change.impairment.clone());
        }
    }

    fn stop(&mut self, ctx: &mut Context<'_>) {
        self.release(u64::MAX, ctx);
    }
}

/// A new impairment for the packets arriving on port `rx`, sent to the running stage with
/// `messenger.send("impair", change)`; held packets keep their times.
#[derive(Clone, Debug)]
pub struct Change {
    pub rx: u16,
    pub impairment: Impairment,
}
