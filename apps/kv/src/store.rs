//! One worker's part of the key-value store: a fixed number of slots made at start, each big
//! enough for the largest key and value, found through an open-addressing index (linear
//! probing, deletion by backward shift, so no tombstones), and evicted by CLOCK when full.
//! Nothing is allocated after [`Store::new`] or [`Store::in_hugepages`] (the appliance's: on
//! the worker's NUMA node, 2 MB pages, so that a lookup in a store of gigabytes does not
//! also miss the TLB). Keys are hashed with SipHash-1-3 under a key of the store's own, so
//! that a client cannot aim its keys at one probe chain.

use crate::protocol::{MAX_KEY_LEN, MAX_VALUE_LEN};
use siphasher::sip::SipHasher13;
use sluice::hugemem::HugeArray;
use std::hash::Hasher;
use std::ops::{Deref, DerefMut};

/// The bytes a slot takes, besides its bookkeeping.
pub const SLOT_BYTES: usize = MAX_KEY_LEN + MAX_VALUE_LEN;

/// An index entry with no slot.
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    used: bool,
    /// CLOCK's bit: set by every access, cleared as the hand passes.
    referenced: bool,
    key_len: u8,
    value_len: u16,
    hash: u64,
    bytes: [u8; SLOT_BYTES],
}

impl Slot {
    const FREE: Slot = Slot {
        used: false,
        referenced: false,
        key_len: 0,
        value_len: 0,
        hash: 0,
        bytes: [0; SLOT_BYTES],
    };

    fn key(&self) -> &[u8] {
        &self.bytes[..usize::from(self.key_len)]
    }

    fn value(&self) -> &[u8] {
        let start = usize::from(self.key_len);
        &self.bytes[start..start + usize::from(self.value_len)]
    }
}

/// What [`Store::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// Stored; `evicted` says whether another key made room for it.
    Stored { evicted: bool },
    /// The key or value breaks the protocol's limits, or the store has no slot at all.
    NoRoom,
}

/// Where a table of the store lives.
enum Table<T> {
    Heap(Box<[T]>),
    Hugepages(HugeArray<T>),
}

impl<T: Copy> Table<T> {
    fn heap(len: usize, value: T) -> Table<T> {
        Table::Heap(vec![value; len].into_boxed_slice())
    }

    fn hugepages(len: usize, value: T, node: Option<u32>) -> Result<Table<T>, sluice::Error> {
        HugeArray::filled(len, value, node).map(Table::Hugepages)
    }
}

impl<T> Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Table::Heap(t) => t,
            Table::Hugepages(t) => t,
        }
    }
}

impl<T> DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Table::Heap(t) => t,
            Table::Hugepages(t) => t,
        }
    }
}

pub struct Store {
    slots: Table<Slot>,
    /// Slot numbers, at the position their hash points to or after it.
    index: Table<u32>,
    mask: usize,
    /// Slots never used yet, taken before CLOCK evicts.
    fresh: usize,
    hand: usize,
    len: usize,
    hash_key: [u8; 16],
}

impl Store {
    /// A store of `capacity` slots in the process heap, hashing under `hash_key` (random,
    /// per store).
    pub fn new(capacity: usize, hash_key: [u8; 16]) -> Store {
        let capacity = capacity.min(EMPTY as usize - 1);
        let index_len = Self::index_len(capacity);
        Store::with(
            Table::heap(capacity, Slot::FREE),
            Table::heap(index_len, EMPTY),
            hash_key,
        )
    }

    /// As [`Store::new`], in the EAL's hugepages on NUMA node `node` (None: any).
    pub fn in_hugepages(
        capacity: usize,
        hash_key: [u8; 16],
        node: Option<u32>,
    ) -> Result<Store, sluice::Error> {
        let capacity = capacity.min(EMPTY as usize - 1);
        let index_len = Self::index_len(capacity);
        Ok(Store::with(
            Table::hugepages(capacity, Slot::FREE, node)?,
            Table::hugepages(index_len, EMPTY, node)?,
            hash_key,
        ))
    }

    /// At most half full: probe chains stay short.
    fn index_len(capacity: usize) -> usize {
        (capacity * 2).next_power_of_two().max(2)
    }

    fn with(slots: Table<Slot>, index: Table<u32>, hash_key: [u8; 16]) -> Store {
        Store {
            mask: index.len() - 1,
            slots,
            index,
            fresh: 0,
            hand: 0,
            len: 0,
            hash_key,
        }
    }

    /// The slots a store of `bytes` of memory holds.
    pub fn capacity_for(bytes: usize) -> usize {
        bytes / (std::mem::size_of::<Slot>() + 2 * std::mem::size_of::<u32>())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Forgets every key (the slots and index stay, so nothing is allocated again).
    pub fn clear(&mut self) {
        self.index.fill(EMPTY);
        self.slots.iter_mut().for_each(|s| s.used = false);
        self.fresh = 0;
        self.hand = 0;
        self.len = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.hash_key);
        h.write(key);
        h.finish()
    }

    /// The index position holding `key`, if it is stored.
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        let mut at = hash as usize & self.mask;
        loop {
            let slot = self.index[at];
            if slot == EMPTY {
                return None;
            }
            let s = &self.slots[slot as usize];
            if s.hash == hash && s.key() == key {
                return Some(at);
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Asks for the index line where `key`'s search starts, ahead of a [`Store::get`] or
    /// [`Store::put`] of it (see [`sluice::cache`]).
    pub fn prefetch(&self, key: &[u8]) {
        sluice::cache::prefetch(&self.index[self.hash(key) as usize & self.mask]);
    }

    pub fn get(&mut self, key: &[u8]) -> Option<&[u8]> {
        let at = self.find(key, self.hash(key))?;
        let slot = &mut self.slots[self.index[at] as usize];
        slot.referenced = true;
        Some(slot.value())
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Put {
        if key.is_empty() || key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
            return Put::NoRoom;
        }
        let hash = self.hash(key);
        if let Some(at) = self.find(key, hash) {
            let slot = &mut self.slots[self.index[at] as usize];
            write(slot, key, value, hash);
            return Put::Stored { evicted: false };
        }
        let Some((slot, evicted)) = self.take_slot() else {
            return Put::NoRoom;
        };
        write(&mut self.slots[slot], key, value, hash);
        let mut at = hash as usize & self.mask;
        while self.index[at] != EMPTY {
            at = (at + 1) & self.mask;
        }
        self.index[at] = slot as u32;
        self.len += 1;
        Put::Stored { evicted }
    }

    /// Removes `key`; returns whether it was there.
    pub fn del(&mut self, key: &[u8]) -> bool {
        let Some(at) = self.find(key, self.hash(key)) else {
            return false;
        };
        let slot = self.index[at] as usize;
        self.unindex(at);
        self.slots[slot].used = false;
        self.len -= 1;
        true
    }

    /// A slot for a new key: a fresh one, one freed by DEL, or CLOCK's victim (evicted).
    fn take_slot(&mut self) -> Option<(usize, bool)> {
        if self.fresh < self.slots.len() {
            self.fresh += 1;
            return Some((self.fresh - 1, false));
        }
        let n = self.slots.len();
        // Two sweeps at most: the first clears every referenced bit it passes.
        for _ in 0..2 * n {
            let at = self.hand;
            self.hand = (self.hand + 1) % n;
            let slot = &mut self.slots[at];
            if !slot.used {
                return Some((at, false));
            }
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let hash = slot.hash;
            if let Some(position) = self.position_of(at, hash) {
                self.unindex(position);
            }
            self.slots[at].used = false;
            self.len -= 1;
            return Some((at, true));
        }
        None
    }

    /// The index position that holds slot number `slot`, whose key hashes to `hash`.
    fn position_of(&self, slot: usize, hash: u64) -> Option<usize> {
        let mut at = hash as usize & self.mask;
        loop {
            match self.index[at] {
                EMPTY => return None,
                s if s as usize == slot => return Some(at),
                _ => at = (at + 1) & self.mask,
            }
        }
    }

    /// Empties index position `at`, shifting back the entries after it whose probe would no
    /// longer reach them.
    fn unindex(&mut self, mut at: usize) {
        let mut next = at;
        loop {
            next = (next + 1) & self.mask;
            let slot = self.index[next];
            if slot == EMPTY {
                self.index[at] = EMPTY;
                return;
            }
            let home = self.slots[slot as usize].hash as usize & self.mask;
            // The entry at `next` may move to `at` unless its home lies in (at, next].
            let stays = if at <= next {
                at < home && home <= next
            } else {
                at < home || home <= next
            };
            if !stays {
                self.index[at] = slot;
                at = next;
            }
        }
    }
}

fn write(slot: &mut Slot, key: &[u8], value: &[u8], hash: u64) {
    slot.used = true;
    slot.referenced = true;
    slot.hash = hash;
    slot.key_len = key.len() as u8;
    slot.value_len = value.len() as u16;
    slot.bytes[..key.len()].copy_from_slice(key);
    slot.bytes[key.len()..key.len() + value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn put_get_del_and_overwrite() {
        let mut store = Store::new(4, [1; 16]);
        assert_eq!(store.put(b"a", b"1"), Put::Stored { evicted: false });
        assert_eq!(store.put(b"a", b"22"), Put::Stored { evicted: false });
        assert_eq!(store.get(b"a"), Some(&b"22"[..]));
        assert_eq!(store.get(b"b"), None);
        assert!(store.del(b"a"));
        assert!(!store.del(b"a"));
        assert_eq!(store.get(b"a"), None);
        assert!(store.is_empty());
        store.put(b"x", b"1");
        store.clear();
        assert_eq!(store.len(), 0);
        assert_eq!(store.get(b"x"), None);
        let long_key = [0u8; MAX_KEY_LEN + 1];
        assert_eq!(store.put(&long_key, b""), Put::NoRoom);
        assert_eq!(store.put(b"", b"v"), Put::NoRoom);
        assert_eq!(
            store.put(b"k", &[0; MAX_VALUE_LEN]),
            Put::Stored { evicted: false }
        );
    }

    #[test]
    fn a_full_store_evicts_what_was_not_used_lately() {
        let mut store = Store::new(3, [2; 16]);
        for k in [b"a", b"b", b"c"] {
            store.put(k, b"v");
        }
        // Every bit is set; the first sweep clears them, then "a" goes. Then "b" is read,
        // so "c" goes next.
        assert_eq!(store.put(b"d", b"v"), Put::Stored { evicted: true });
        assert_eq!(store.get(b"a"), None);
        assert!(store.get(b"b").is_some());
        assert_eq!(store.put(b"e", b"v"), Put::Stored { evicted: true });
        assert_eq!(store.get(b"c"), None);
        assert_eq!(store.len(), 3);
    }

    /// Random operations on a small store against a map: what the store holds is what the
    /// map holds (less what was evicted), and the index always finds every stored key.
    #[test]
    fn random_operations_agree_with_a_map() {
        let mut store = Store::new(64, [3; 16]);
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("key{}", x % 100).into_bytes();
            match (x >> 32) % 3 {
                0 => {
                    let value = (x >> 40).to_be_bytes().to_vec();
                    if let Put::Stored { evicted: true } = store.put(&key, &value) {
                        model.retain(|k, _| store.find(k, store.hash(k)).is_some());
                    }
                    model.insert(key, value);
                }
                1 => assert_eq!(store.del(&key), model.remove(&key).is_some()),
                _ => assert_eq!(store.get(&key), model.get(&key).map(Vec::as_slice)),
            }
            assert_eq!(store.len(), model.len());
        }
    }
}
