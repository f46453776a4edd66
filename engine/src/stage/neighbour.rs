//! Neighbours of the router: the IP → MAC table every worker shares, and each worker's
//! resolver, which holds packets for neighbours not yet resolved (as Linux's `unres_qlen`),
//! asks for them again when no answer comes (ARP, RFC 826; neighbour discovery, RFC 4861
//! §7.2), and probes entries that have gone stale without dropping traffic to them.
//!
//! An entry is reachable for [`REACHABLE`] after it was last confirmed (an ARP packet or
//! neighbour advertisement from it), then stale: still used, while a probe goes to it, and
//! forgotten if [`MAX_TRIES`] probes go unanswered. Entries given in a file never go stale.

use super::Held;
use crate::net::ethernet::Address;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry is taken as reachable after it was last confirmed (RFC 4861's
/// REACHABLE_TIME, Linux's base_reachable_time).
pub const REACHABLE: Duration = Duration::from_secs(30);
/// The wait between two requests for one neighbour (RFC 4861's RETRANS_TIMER).
pub const RETRY: Duration = Duration::from_secs(1);
/// Requests for a neighbour before it is given up (RFC 4861's MAX_MULTICAST_SOLICIT).
pub const MAX_TRIES: u8 = 3;
/// Packets held for one neighbour while it is resolved (Linux's unres_qlen is 3 by default
/// for IPv6 and 101 for IPv4 in bytes terms; a few are enough for a first ping or SYN).
pub const HOLD_PER_NEIGHBOUR: usize = 3;
/// Packets a worker holds for all its unresolved neighbours together.
pub const HOLD_TOTAL: usize = 256;

/// One neighbour's MAC, and when it was last confirmed (None: given statically, never stale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mac: Address,
    pub confirmed: Option<Instant>,
}

/// IP → MAC entries, learned by ARP or neighbour discovery or set statically; shared by every
/// worker, which reads a copy of it refreshed when its version changes.
#[derive(Default, Debug)]
pub struct Neighbours {
    /// Bumped on every change, so that workers refresh their copy only then.
    version: AtomicU64,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Neighbours {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `ip` at `mac`, confirmed now; returns whether its MAC changed or is new. A static
    /// entry is left as it is.
    pub fn learn(&self, ip: IpAddr, mac: Address) -> bool {
        let mut entries = self.entries();
        let old = entries.get(&ip).copied();
        if old.is_some_and(|e| e.confirmed.is_none()) {
            return false;
        }
        entries.insert(
            ip,
            Entry {
                mac,
                confirmed: Some(Instant::now()),
            },
        );
        self.version.fetch_add(1, Ordering::Release);
        old.map(|e| e.mac) != Some(mac)
    }

    /// Records `ip` at `mac` for good (a static entry: never stale, never forgotten).
    pub fn set_static(&self, ip: IpAddr, mac: Address) {
        self.entries().insert(
            ip,
            Entry {
                mac,
                confirmed: None,
            },
        );
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Forgets `ip` if it was last confirmed at `confirmed` (so that an answer that came in
    /// the meantime keeps it).
    fn forget(&self, ip: IpAddr, confirmed: Option<Instant>) {
        let mut entries = self.entries();
        if entries
            .get(&ip)
            .is_some_and(|e| e.confirmed.is_some() && e.confirmed == confirmed)
        {
            entries.remove(&ip);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    pub fn get(&self, ip: &IpAddr) -> Option<Address> {
        self.entries().get(ip).map(|e| e.mac)
    }

    /// Every entry, sorted.
    pub fn list(&self) -> Vec<(IpAddr, Address)> {
        let mut all: Vec<_> = self.entries().iter().map(|(ip, e)| (*ip, e.mac)).collect();
        all.sort();
        all
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> HashMap<IpAddr, Entry> {
        self.entries().clone()
    }
}

/// What to do with a packet to a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send it to this MAC.
    Mac(Address),
    /// Hold it until the neighbour is resolved.
    Hold,
    /// Drop it: the worker holds all it may.
    Full,
}

/// A request to send for a neighbour: broadcast (or to the solicited-node group) when the MAC
/// is not known, unicast to the old MAC when probing a stale entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub ip: IpAddr,
    pub port: u16,
    pub unicast: Option<Address>,
}

/// A neighbour being resolved or probed.
struct Pending {
    port: u16,
    held: VecDeque<Held>,
    tries: u8,
    next_try: Instant,
    /// Probing a stale entry: the confirmation it had, and its MAC.
    stale: Option<(Option<Instant>, Address)>,
}

/// One worker's view of the neighbours: its copy of the table, the packets it holds for
/// neighbours being resolved, and the requests it has out.
#[derive(Default)]
pub struct Resolver {
    entries: HashMap<IpAddr, Entry>,
    seen: u64,
    pending: HashMap<IpAddr, Pending>,
    held: usize,
    /// Requests to send, taken by [`Resolver::requests`].
    requests: Vec<Request>,
    /// Where the packets given [`Lookup::Hold`] go, in the order they were given it.
    holding: VecDeque<IpAddr>,
}

impl Resolver {
    /// Refreshes the copy of `table` if it changed; returns whether it did.
    pub fn refresh(&mut self, table: &Neighbours) -> bool {
        let version = table.version();
        if version == self.seen {
            return false;
        }
        self.seen = version;
        self.entries = table.snapshot();
        true
    }

    /// What to do with a packet to `ip` leaving by `port`, at `now`.
    pub fn lookup(&mut self, ip: IpAddr, port: u16, now: Instant) -> Lookup {
        if let Some(entry) = self.entries.get(&ip).copied() {
            let stale = entry
                .confirmed
                .is_some_and(|at| now.duration_since(at) >= REACHABLE);
            if stale && !self.pending.contains_key(&ip) {
                self.pending.insert(
                    ip,
                    Pending {
                        port,
                        held: VecDeque::new(),
                        tries: 1,
                        next_try: now + RETRY,
                        stale: Some((entry.confirmed, entry.mac)),
                    },
                );
                self.requests.push(Request {
                    ip,
                    port,
                    unicast: Some(entry.mac),
                });
            }
            return Lookup::Mac(entry.mac);
        }
        if self.held >= HOLD_TOTAL {
            return Lookup::Full;
        }
        let pending = self.pending.entry(ip).or_insert_with(|| {
            self.requests.push(Request {
                ip,
                port,
                unicast: None,
            });
            Pending {
                port,
                held: VecDeque::new(),
                tries: 1,
                next_try: now + RETRY,
                stale: None,
            }
        });
        // A stale probe whose entry was forgotten meanwhile: resolve it afresh.
        pending.stale = None;
        Lookup::Hold
    }

    /// Says that the next packet [`Resolver::hold`] takes is for `ip` (packets given
    /// [`Lookup::Hold`] are taken in burst order, which may not be the order of the lookups).
    pub fn expect_hold(&mut self, ip: IpAddr) {
        self.holding.push_back(ip);
    }

    /// Takes a packet given [`Lookup::Hold`] (in the order of [`Resolver::expect_hold`]);
    /// returns the packet it pushes out when the neighbour's queue is full (the oldest, as
    /// Linux drops them).
    pub fn hold(&mut self, packet: Held) -> Option<Held> {
        let ip = self
            .holding
            .pop_front()
            .expect("a hold for each Lookup::Hold");
        let Some(pending) = self.pending.get_mut(&ip) else {
            return Some(packet);
        };
        pending.held.push_back(packet);
        self.held += 1;
        if pending.held.len() > HOLD_PER_NEIGHBOUR {
            self.held -= 1;
            return pending.held.pop_front();
        }
        None
    }

    /// The requests to send now.
    pub fn requests(&mut self) -> std::vec::Drain<'_, Request> {
        self.requests.drain(..)
    }

    /// Whether anything waits on time (held packets, requests out).
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Settles what time or the table decided: packets to neighbours now known go to
    /// `settled` with their MAC and port; requests that went unanswered are sent again or,
    /// after [`MAX_TRIES`], given up, their packets to `settled` with None (and a stale entry
    /// forgotten).
    pub fn settle(
        &mut self,
        table: &Neighbours,
        now: Instant,
        mut settled: impl FnMut(Held, Option<(Address, u16)>),
    ) {
        self.refresh(table);
        let entries = &self.entries;
        let mut requests = Vec::new();
        let mut released = 0;
        self.pending.retain(|ip, p| {
            if let Some(entry) = entries.get(ip) {
                let answered = match p.stale {
                    None => true,
                    Some((confirmed, _)) => entry.confirmed != confirmed,
                };
                if answered {
                    for packet in p.held.drain(..) {
                        released += 1;
                        settled(packet, Some((entry.mac, p.port)));
                    }
                    return false;
                }
            }
            if now < p.next_try {
                return true;
            }
            if p.tries >= MAX_TRIES {
                if let Some((confirmed, _)) = p.stale {
                    table.forget(*ip, confirmed);
                }
                for packet in p.held.drain(..) {
                    released += 1;
                    settled(packet, None);
                }
                return false;
            }
            p.tries += 1;
            p.next_try = now + RETRY;
            requests.push(Request {
                ip: *ip,
                port: p.port,
                unicast: p.stale.map(|(_, mac)| mac),
            });
            true
        });
        self.held -= released;
        self.requests.extend(requests);
    }

    /// Every packet still held, for a stop.
    pub fn drain(&mut self) -> impl Iterator<Item = Held> + '_ {
        self.held = 0;
        self.pending.drain().flat_map(|(_, p)| p.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 2));
    const MAC: Address = Address([2, 0, 0, 0, 0, 0x22]);

    fn requests(r: &mut Resolver) -> Vec<Request> {
        r.requests().collect()
    }

    /// Settles with no packet held; returns the requests it made.
    fn settle(r: &mut Resolver, table: &Neighbours, now: Instant) -> Vec<Request> {
        r.settle(table, now, |_, _| panic!("nothing is held"));
        requests(r)
    }

    #[test]
    fn an_unknown_neighbour_is_asked_for_three_times_a_second_apart_then_given_up() {
        let (table, mut r, t0) = (Neighbours::default(), Resolver::default(), Instant::now());
        assert_eq!(r.lookup(IP, 1, t0), Lookup::Hold);
        let broadcast = Request {
            ip: IP,
            port: 1,
            unicast: None,
        };
        assert_eq!(requests(&mut r), [broadcast]);
        // More packets to it wait with the first: no second request.
        assert_eq!(r.lookup(IP, 1, t0), Lookup::Hold);
        assert!(requests(&mut r).is_empty());
        assert!(settle(&mut r, &table, t0 + RETRY / 2).is_empty());
        assert_eq!(settle(&mut r, &table, t0 + RETRY), [broadcast]);
        assert_eq!(settle(&mut r, &table, t0 + 2 * RETRY), [broadcast]);
        assert!(r.busy());
        assert!(settle(&mut r, &table, t0 + 3 * RETRY).is_empty());
        assert!(!r.busy(), "given up after {MAX_TRIES} requests");
        // The next packet starts over.
        assert_eq!(r.lookup(IP, 1, t0 + 4 * RETRY), Lookup::Hold);
        assert_eq!(requests(&mut r), [broadcast]);
    }

    #[test]
    fn an_answer_ends_the_resolution() {
        let (table, mut r, t0) = (Neighbours::default(), Resolver::default(), Instant::now());
        assert_eq!(r.lookup(IP, 1, t0), Lookup::Hold);
        requests(&mut r);
        assert!(table.learn(IP, MAC));
        assert!(settle(&mut r, &table, t0).is_empty());
        assert!(!r.busy());
        assert_eq!(r.lookup(IP, 1, t0), Lookup::Mac(MAC));
    }

    #[test]
    fn a_stale_entry_is_probed_unicast_and_used_meanwhile() {
        let (table, mut r) = (Neighbours::default(), Resolver::default());
        table.learn(IP, MAC);
        r.refresh(&table);
        let stale = Instant::now() + REACHABLE;
        // Traffic goes on to the old MAC while a unicast probe asks whether it still holds.
        assert_eq!(r.lookup(IP, 1, stale), Lookup::Mac(MAC));
        let probe = Request {
            ip: IP,
            port: 1,
            unicast: Some(MAC),
        };
        assert_eq!(requests(&mut r), [probe]);
        assert_eq!(r.lookup(IP, 1, stale), Lookup::Mac(MAC));
        assert!(requests(&mut r).is_empty(), "one probe at a time");
        // Answered: reachable again, nothing more asked.
        table.learn(IP, MAC);
        assert!(settle(&mut r, &table, stale + RETRY).is_empty());
        assert!(!r.busy());
    }

    #[test]
    fn a_stale_entry_that_never_answers_is_forgotten() {
        let (table, mut r) = (Neighbours::default(), Resolver::default());
        table.learn(IP, MAC);
        r.refresh(&table);
        let stale = Instant::now() + REACHABLE;
        assert_eq!(r.lookup(IP, 1, stale), Lookup::Mac(MAC));
        requests(&mut r);
        for k in 1..MAX_TRIES {
            assert_eq!(
                settle(&mut r, &table, stale + RETRY * u32::from(k)).len(),
                1
            );
        }
        settle(&mut r, &table, stale + RETRY * u32::from(MAX_TRIES));
        assert_eq!(table.get(&IP), None, "forgotten");
        r.refresh(&table);
        assert_eq!(
            r.lookup(IP, 1, stale + RETRY * 4),
            Lookup::Hold,
            "resolved afresh"
        );
    }

    #[test]
    fn static_entries_never_go_stale() {
        let (table, mut r) = (Neighbours::default(), Resolver::default());
        table.set_static(IP, MAC);
        assert!(!table.learn(IP, Address([2, 0, 0, 0, 0, 0x99])), "kept");
        r.refresh(&table);
        let much_later = Instant::now() + 100 * REACHABLE;
        assert_eq!(r.lookup(IP, 1, much_later), Lookup::Mac(MAC));
        assert!(requests(&mut r).is_empty());
    }
}
