//! A DDoS guard to put in front of a service, per worker as Gatekeeper does per lcore.
//!
//! The app's classifier says, for each packet the guard should see, its source and whether it
//! belongs to something established (a session) or opens something new (a handshake).
//! Then:
//! - every source has a token bucket (DPDK's rte_meter srTCM, one token a packet) in a
//!   bounded table; a source beyond its rate is dropped as `guard_rate`. A new source takes
//!   the least recently seen of two candidate entries (counted as `guard_evicted`), so a
//!   flood of spoofed sources costs memory it cannot grow;
//! - handshakes may take at most a share of the packets the worker saw in the last 100 ms,
//!   or in this 100 ms so far (and a floor, so that they go through on a quiet worker);
//!   beyond it they are dropped as `guard_handshakes`. Established packets are never charged to that share, so a
//!   handshake flood cannot crowd them out.
//!
//! Packets the classifier does not claim go on untouched.

use super::{Action, Context, Node};
use crate::cache;
use crate::error::Error;
use crate::mbuf::{Mbuf, MAX_BURST};
use crate::meter::{Meter, Profile};
use crate::stats::{Counter, Reason};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

/// What a packet is to the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Part of something the service already accepted.
    Established,
    /// Asks for something new (and costs the service more per packet).
    Handshake,
}

/// The app's view of a frame: its source and class, or None to let it pass unguarded.
pub type Classifier = Box<dyn Fn(&[u8]) -> Option<(IpAddr, Class)> + Send>;

/// The guard's limits.
#[derive(Clone, Copy, Debug)]
pub struct GuardConfig {
    /// Packets a second one source may send, and in one burst.
    pub source_rate: u64,
    pub source_burst: u64,
    /// Sources tracked at once (the table's entries, made at start).
    pub sources: usize,
    /// The share of the worker's packets handshakes may be, from 0 to 1.
    pub handshake_share: f64,
    /// Handshakes allowed in each 100 ms whatever the traffic.
    pub handshake_floor: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            source_rate: 10_000,
            source_burst: 1_000,
            sources: 65_536,
            handshake_share: 0.05,
            handshake_floor: 100,
        }
    }
}

struct Entry {
    source: Option<IpAddr>,
    seen: u64,
    meter: Meter,
}

pub struct Guard {
    classify: Classifier,
    config: GuardConfig,
    profile: Profile,
    table: Box<[Entry]>,
    mask: usize,
    hasher: std::collections::hash_map::RandomState,
    /// The current 100 ms window: its end (TSC), packets seen, handshakes let through, and
    /// the handshakes it allows.
    window_end: u64,
    seen: u64,
    handshakes: u64,
    budget: u64,
    rate: Reason,
    handshake_cap: Reason,
    evicted: Counter,
    /// A burst's claimed packets between the two passes of [`Guard::check`], kept here so that
    /// a burst writes only its own entries (filling all 32 cost a one-packet burst about 55
    /// instructions).
    claimed: Box<[Option<Claim>; MAX_BURST]>,
}

/// A packet the classifier claimed: its source, class and candidate entries.
type Claim = (IpAddr, Class, [usize; 2]);

impl Guard {
    pub fn new(config: GuardConfig, classify: Classifier) -> Result<Guard, Error> {
        if !(0.0..=1.0).contains(&config.handshake_share) {
            return Err(Error::Config(format!(
                "the handshakes' share must be from 0 to 1, not {}",
                config.handshake_share
            )));
        }
        let mut profile = Profile::new(config.source_rate, config.source_burst)?;
        let size = config.sources.max(2).next_power_of_two();
        let table = (0..size)
            .map(|_| Entry {
                source: None,
                seen: 0,
                meter: Meter::new(&mut profile),
            })
            .collect();
        Ok(Guard {
            classify,
            config,
            profile,
            table,
            mask: size - 1,
            hasher: std::collections::hash_map::RandomState::new(),
            window_end: 0,
            seen: 0,
            handshakes: 0,
            budget: config.handshake_floor,
            rate: Reason::named("guard_rate"),
            handshake_cap: Reason::named("guard_handshakes"),
            evicted: Counter::named("guard_evicted"),
            claimed: Box::new([None; MAX_BURST]),
        })
    }

    /// Where `source` may be in the table: its two candidate entries.
    fn candidates(&self, source: IpAddr) -> [usize; 2] {
        let mut h = self.hasher.build_hasher();
        std::hash::Hash::hash(&source, &mut h);
        let hash = h.finish();
        [hash as usize & self.mask, (hash >> 32) as usize & self.mask]
    }

    /// The entry of `source`, whose candidates are `[a, b]`: its own, or the older of the two,
    /// taken over.
    fn entry(
        &mut self,
        source: IpAddr,
        [a, b]: [usize; 2],
        now: u64,
        ctx: &mut Context<'_>,
    ) -> usize {
        for at in [a, b] {
            if self.table[at].source == Some(source) {
                return at;
            }
        }
        let at = if self.table[a].seen <= self.table[b].seen {
            a
        } else {
            b
        };
        if self.table[at].source.is_some() {
            ctx.count(self.evicted, 1);
        }
        let entry = &mut self.table[at];
        entry.source = Some(source);
        entry.meter = Meter::new(&mut self.profile);
        entry.seen = now;
        at
    }

    /// Checks the claimed packets of a burst of at most [`MAX_BURST`]. The sources' entries
    /// are asked for first, all of them, and used after: a table of many sources is larger
    /// than the cache, and the misses of a burst then overlap.
    fn check(&mut self, packets: &[Mbuf], actions: &mut [Action], now: u64, ctx: &mut Context<'_>) {
        for (i, m) in packets.iter().enumerate() {
            let claim = (self.classify)(m.data()).map(|(source, class)| {
                let candidates = self.candidates(source);
                for at in candidates {
                    cache::prefetch(&self.table[at]);
                }
                (source, class, candidates)
            });
            self.claimed[i] = claim;
        }
        for (i, action) in actions.iter_mut().enumerate().take(packets.len()) {
            let Some((source, class, candidates)) = self.claimed[i] else {
                continue;
            };
            self.seen += 1;
            let at = self.entry(source, candidates, now, ctx);
            let entry = &mut self.table[at];
            entry.seen = now;
            if !entry.meter.conform(&mut self.profile, now, 1) {
                *action = Action::drop(self.rate);
                continue;
            }
            if class == Class::Handshake {
                // The last window's share, or this one's so far: a burst of handshakes
                // after quiet is not cut to the floor, and handshakes stay within the share.
                let now_share = (self.config.handshake_share * self.seen as f64) as u64;
                if self.handshakes >= self.budget.max(now_share) {
                    *action = Action::drop(self.handshake_cap);
                    continue;
                }
                self.handshakes += 1;
            }
        }
    }
}

impl Node for Guard {
    fn name(&self) -> &str {
        "guard"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        let now = ctx.now();
        if now >= self.window_end {
            let share = (self.config.handshake_share * self.seen as f64) as u64;
            self.budget = share.max(self.config.handshake_floor);
            self.seen = 0;
            self.handshakes = 0;
            self.window_end = now + ctx.tsc_hz() / 10;
        }
        for (packets, actions) in packets.chunks(MAX_BURST).zip(actions.chunks_mut(MAX_BURST)) {
            self.check(packets, actions, now, ctx);
        }
    }
}
