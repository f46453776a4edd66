//! One worker's sessions: a slab of slots made as sessions come (up to the limit, never moved),
//! found from the id alone. A session's id names its slot, so that a lookup is one read of
//! memory that a burst can ask for ahead ([`Sessions::prefetch`]), where a hash table's
//! probe is a chain of dependent reads.
//!
//! An id is made from 64 random bits: its quotient by the worker count keeps its high bits
//! and takes the slot's index in its low bits, and its remainder names the worker. The slot
//! holds the whole id, so an id made up by a client finds nothing unless it is the id.

use std::net::SocketAddr;

use crate::protocol::NONCE_LEN;

pub struct Session {
    pub client: SocketAddr,
    pub nonce: [u8; NONCE_LEN],
    /// The last request id executed (0: none yet) and its response.
    pub last_id: u64,
    pub kept: Vec<u8>,
    /// When the last valid request came, in the caller's seconds.
    pub active: u64,
}

struct Slot {
    /// The id of the session in the slot; 0 (no session's) when free.
    id: u64,
    session: Session,
}

pub struct Sessions {
    slots: Vec<Slot>,
    /// Slots freed, to be taken before new ones are made.
    free: Vec<u32>,
    len: usize,
    max: usize,
    /// The low bits of an id's quotient that hold its slot.
    slot_mask: u64,
    worker: u16,
    workers: u64,
}

impl Sessions {
    /// Room for `max` sessions of worker `worker` of `workers`. The memory is reserved now
    /// and used as sessions come: a table that grew under a flood of handshakes would stop
    /// the worker while it moved every session.
    pub fn new(max: usize, worker: u16, workers: u16) -> Sessions {
        let max = max.min(u32::MAX as usize);
        Sessions {
            slots: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            len: 0,
            max,
            slot_mask: (max.max(2) as u64).next_power_of_two() - 1,
            worker,
            workers: u64::from(workers.max(1)),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.max
    }

    fn slot_of(&self, id: u64) -> usize {
        ((id / self.workers) & self.slot_mask) as usize
    }

    pub fn get(&self, id: u64) -> Option<&Session> {
        let slot = self.slots.get(self.slot_of(id))?;
        (slot.id == id && id != 0).then_some(&slot.session)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Session> {
        let at = self.slot_of(id);
        let slot = self.slots.get_mut(at)?;
        (slot.id == id && id != 0).then_some(&mut slot.session)
    }

    /// Asks for the line of `id`'s slot (see [`sluice::cache`]).
    pub fn prefetch(&self, id: u64) {
        if let Some(slot) = self.slots.get(self.slot_of(id)) {
            sluice::cache::prefetch(slot);
        }
    }

    /// Opens `session` in a free slot under a new id made from `random` (called until an id
    /// fits); None when the table is full.
    pub fn insert(&mut self, session: Session, mut random: impl FnMut() -> u64) -> Option<u64> {
        if self.is_full() {
            return None;
        }
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize].session = session;
                at as usize
            }
            None => {
                self.slots.push(Slot { id: 0, session });
                self.slots.len() - 1
            }
        };
        let id = loop {
            let quotient = ((random() / self.workers) & !self.slot_mask) | at as u64;
            let id = quotient
                .checked_mul(self.workers)
                .and_then(|x| x.checked_add(u64::from(self.worker)));
            if let Some(id @ 1..) = id {
                break id;
            }
        };
        self.slots[at].id = id;
        self.len += 1;
        Some(id)
    }

    /// Ends `id`'s session and gives it back.
    pub fn remove(&mut self, id: u64) -> Option<Session> {
        let at = self.slot_of(id);
        let slot = self.slots.get_mut(at)?;
        if slot.id != id || id == 0 {
            return None;
        }
        slot.id = 0;
        self.free.push(at as u32);
        self.len -= 1;
        // The slot keeps a husk (no memory of its own) until it is taken again.
        let husk = Session {
            client: slot.session.client,
            nonce: [0; NONCE_LEN],
            last_id: 0,
            kept: Vec::new(),
            active: 0,
        };
        Some(std::mem::replace(&mut slot.session, husk))
    }

    /// Every open session with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.slots
            .iter()
            .filter(|s| s.id != 0)
            .map(|s| (s.id, &s.session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn session(port: u16) -> Session {
        Session {
            client: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
            nonce: [0; NONCE_LEN],
            last_id: 0,
            kept: Vec::new(),
            active: 0,
        }
    }

    /// Random enough for the table: a counter through a multiplier.
    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0u64;
        move || {
            n += 1;
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    }

    #[test]
    fn ids_find_their_sessions_and_name_their_worker() {
        for (worker, workers) in [(0, 1), (1, 2), (2, 3)] {
            let mut table = Sessions::new(100, worker, workers);
            let mut random = counter();
            let ids: Vec<u64> = (0..100)
                .map(|i| table.insert(session(i), &mut random).expect("room"))
                .collect();
            assert!(table.is_full());
            assert_eq!(table.insert(session(999), &mut random), None);
            for (i, &id) in ids.iter().enumerate() {
                assert_ne!(id, 0);
                assert_eq!(id % u64::from(workers), u64::from(worker));
                assert_eq!(table.get(id).expect("open").client.port(), i as u16);
                // Another id for the same slot finds nothing.
                assert!(table.get(id ^ (1 << 40)).is_none());
            }
            assert_eq!(table.iter().count(), 100);
        }
    }

    #[test]
    fn a_removed_session_is_gone_and_its_slot_serves_the_next() {
        let mut table = Sessions::new(2, 0, 1);
        let mut random = counter();
        let a = table.insert(session(1), &mut random).unwrap();
        let b = table.insert(session(2), &mut random).unwrap();
        assert_eq!(table.remove(a).map(|s| s.client.port()), Some(1));
        assert!(table.get(a).is_none());
        assert!(table.remove(a).is_none());
        let c = table.insert(session(3), &mut random).unwrap();
        assert_ne!(c, a);
        assert_eq!(table.get(c).unwrap().client.port(), 3);
        assert_eq!(table.get(b).unwrap().client.port(), 2);
        assert_eq!(table.len(), 2);
        assert!(table.get(0).is_none());
    }
}
