//! A lock-free single-producer single-consumer ring.
//!
//! `channel::<T>(capacity)` gives a [`Producer`] and a [`Consumer`]: each is `Send` but not
//! `Sync` or `Clone`, so one thread pushes and one pops. Head and tail sit on cache lines of
//! their own, and each side keeps a cached copy of the other's index, touching the shared line
//! only when the cached one says the ring looks full (or empty). Burst operations move as many
//! items as fit with one index publication per burst. Dropping the ring drops what is left.
//!
//! Pure Rust (no DPDK), so Miri and loom can check it: see the README's "Checking the ring".

#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

// Head and tail each on a cache line pair of their own (128 bytes on x86, where adjacent-line
// prefetch pulls lines in pairs), so that producer and consumer do not share one.
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// One slot; under loom, a tracked cell. Transparent, so that the slots of a ring are a
/// plain array of `T` for bulk copies.
#[repr(transparent)]
struct Slot<T> {
    #[cfg(not(loom))]
    cell: std::cell::UnsafeCell<MaybeUninit<T>>,
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    fn new() -> Slot<T> {
        Slot {
            #[cfg(not(loom))]
            cell: std::cell::UnsafeCell::new(MaybeUninit::uninit()),
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// # Safety
    /// The caller must own the slot (it lies in its side's half of the ring) and it must be empty.
    unsafe fn write(&self, value: T) {
        #[cfg(not(loom))]
        // SAFETY: the caller owns this empty slot; no one else reads or writes it.
        unsafe {
            (*self.cell.get()).write(value);
        }
        #[cfg(loom)]
        // SAFETY: as above.
        self.cell.with_mut(|p| unsafe {
            (*p).write(value);
        });
    }

    /// # Safety
    /// The caller must own the slot and it must hold a value, which it takes.
    unsafe fn take(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: the caller owns this full slot; the value is moved out exactly once.
        unsafe {
            (*self.cell.get()).assume_init_read()
        }
        #[cfg(loom)]
        // SAFETY: as above.
        self.cell.with(|p| unsafe { (*p).assume_init_read() })
    }
}

/// The slots as a plain `*mut T` (they are transparent `UnsafeCell<MaybeUninit<T>>`s, so
/// writing through the pointer is allowed).
#[cfg(not(loom))]
fn slots_ptr<T>(slots: &[Slot<T>]) -> *mut T {
    std::cell::UnsafeCell::raw_get(
        slots
            .as_ptr()
            .cast::<std::cell::UnsafeCell<MaybeUninit<T>>>(),
    )
    .cast::<T>()
}

struct Shared<T> {
    /// Items pushed so far (wrapping); written by the producer only.
    head: CachePadded<AtomicUsize>,
    /// Items popped so far (wrapping); written by the consumer only.
    tail: CachePadded<AtomicUsize>,
    /// Set when the producer is dropped: nothing more will come.
    closed: AtomicBool,
    mask: usize,
    slots: Box<[Slot<T>]>,
}

// SAFETY: slots are handed between the two threads by the head/tail protocol (release on
// publish, acquire on observe); each slot is accessed by one side at a time.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both halves are gone (this is the last Arc), so no one else touches the slots.
        let head = self.head.load(Ordering::Acquire);
        let mut tail = self.tail.load(Ordering::Acquire);
        while tail != head {
            // SAFETY: slots between tail and head hold values nobody popped.
            drop(unsafe { self.slots[tail & self.mask].take() });
            tail = tail.wrapping_add(1);
        }
    }
}

/// The pushing half.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
    _not_sync: PhantomData<Cell<()>>,
}

/// The popping half.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: a half may move to another thread with its items; !Sync (Cell) keeps it on one.
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Consumer<T> {}

/// A ring of `capacity` slots, which must be a power of two.
///
/// # Panics
/// If `capacity` is zero or not a power of two: a programming error, not an input.
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(
        capacity.is_power_of_two(),
        "ring capacity must be a power of two, not {capacity}"
    );
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        closed: AtomicBool::new(false),
        mask: capacity - 1,
        slots: (0..capacity).map(|_| Slot::new()).collect(),
    });
    (
        Producer {
            shared: shared.clone(),
            head: 0,
            cached_tail: 0,
            _not_sync: PhantomData,
        },
        Consumer {
            shared,
            tail: 0,
            cached_head: 0,
            _not_sync: PhantomData,
        },
    )
}

impl<T> Producer<T> {
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Free slots, refreshing the cached tail only when the cache says fewer than `wanted`.
    #[inline]
    fn free(&mut self, wanted: usize) -> usize {
        let capacity = self.capacity();
        let mut free = capacity - self.head.wrapping_sub(self.cached_tail);
        if free < wanted {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            free = capacity - self.head.wrapping_sub(self.cached_tail);
        }
        free
    }

    /// Pushes up to `n` items made by `next(i)` (called once per slot filled, `i` from 0, in
    /// order); returns how many went in. One publication for the whole burst.
    #[inline]
    pub fn push_with(&mut self, n: usize, mut next: impl FnMut(usize) -> T) -> usize {
        let k = n.min(self.free(n));
        for i in 0..k {
            let slot = &self.shared.slots[self.head.wrapping_add(i) & self.shared.mask];
            // SAFETY: slots from head to head+free are empty and the producer's alone. Should
            // `next` panic, the items written are simply never published (leaked, not dropped twice).
            unsafe { slot.write(next(i)) };
        }
        self.head = self.head.wrapping_add(k);
        self.shared.head.store(self.head, Ordering::Release);
        k
    }

    /// Pushes one item, or gives it back when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.free(1) == 0 {
            return Err(value);
        }
        let mut value = Some(value);
        self.push_with(1, |_| value.take().expect("called once"));
        Ok(())
    }

    /// Copies as many of `items` as fit, from the front; returns how many. A bulk copy in
    /// at most two pieces (before and after the wrap), as rte_ring does.
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        #[cfg(loom)]
        return self.push_with(items.len(), |i| items[i]);
        #[cfg(not(loom))]
        {
            let k = items.len().min(self.free(items.len()));
            let start = self.head & self.shared.mask;
            let first = k.min(self.capacity() - start);
            let base = slots_ptr(&self.shared.slots);
            // SAFETY: the k slots from head are empty and the producer's; [start, start+first)
            // and [0, k-first) lie within the array; T: Copy needs no drop bookkeeping.
            // Element loops rather than copy_nonoverlapping: they vectorise, where a copy of
            // variable length becomes a memcpy call that costs more than a short burst.
            unsafe {
                for (i, item) in items[..first].iter().enumerate() {
                    base.add(start + i).write(*item);
                }
                for (i, item) in items[first..k].iter().enumerate() {
                    base.add(i).write(*item);
                }
            }
            self.head = self.head.wrapping_add(k);
            self.shared.head.store(self.head, Ordering::Release);
            k
        }
    }
}

impl<T> Producer<T> {
    /// Moves up to `n` items from `src` into the ring, from the front, in one bulk copy (at
    /// most two pieces); returns how many moved.
    ///
    /// # Safety
    /// `src` must point to `n` initialised items; the first of them (as many as returned)
    /// belong to the ring afterwards and must not be used or dropped by the caller.
    pub(crate) unsafe fn push_moved(&mut self, src: *const T, n: usize) -> usize {
        #[cfg(loom)]
        // SAFETY: item i of `src` is initialised and moves into the ring exactly once.
        return self.push_with(n, |i| unsafe { src.add(i).read() });
        #[cfg(not(loom))]
        {
            let k = n.min(self.free(n));
            let start = self.head & self.shared.mask;
            let first = k.min(self.capacity() - start);
            let base = slots_ptr(&self.shared.slots);
            // SAFETY: the k slots from head are empty and the producer's; the ranges lie
            // within the array and within `src` (the caller's promise); a bitwise move passes
            // ownership. Element loops, as in push_slice: a copy of variable length would be
            // a memcpy call, dearer than a burst's worth of moves.
            unsafe {
                for i in 0..first {
                    base.add(start + i).write(src.add(i).read());
                }
                for i in first..k {
                    base.add(i - first).write(src.add(i).read());
                }
            }
            self.head = self.head.wrapping_add(k);
            self.shared.head.store(self.head, Ordering::Release);
            k
        }
    }
}

/// Whether a ring is empty, asked from any thread (the pipeline's drain on stop asks it of
/// every ring).
#[derive(Clone)]
pub struct Probe(std::sync::Arc<dyn Fn() -> bool + Send + Sync>);

impl Probe {
    pub fn is_empty(&self) -> bool {
        (self.0)()
    }
}

impl<T: Send + 'static> Producer<T> {
    /// A probe of this ring.
    pub fn probe(&self) -> Probe {
        let shared = self.shared.clone();
        Probe(std::sync::Arc::new(move || {
            shared.head.load(Ordering::Acquire) == shared.tail.load(Ordering::Acquire)
        }))
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: a consumer that sees `closed` also sees every item published before it.
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl<T> Consumer<T> {
    /// True once the producer is gone: what is in the ring now is all there will be.
    pub fn producer_gone(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Items waiting, refreshing the cached head only when the cache says fewer than `wanted`.
    #[inline]
    fn available(&mut self, wanted: usize) -> usize {
        let mut available = self.cached_head.wrapping_sub(self.tail);
        if available < wanted {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            available = self.cached_head.wrapping_sub(self.tail);
        }
        available
    }

    /// Items waiting now.
    pub fn len(&mut self) -> usize {
        self.available(usize::MAX)
    }

    pub fn is_empty(&mut self) -> bool {
        self.available(1) == 0
    }

    /// Pops up to `n` items, oldest first, handing each to `sink`; returns how many.
    #[inline]
    pub fn pop_with(&mut self, n: usize, mut sink: impl FnMut(T)) -> usize {
        let k = n.min(self.available(n));
        let shared = &*self.shared;
        let guard = TailGuard {
            tail_index: &shared.tail,
            tail: &mut self.tail,
        };
        for _ in 0..k {
            let slot = &shared.slots[*guard.tail & shared.mask];
            // SAFETY: slots from tail to head hold published values and are the consumer's;
            // the tail moves past the slot before the value reaches `sink`.
            let value = unsafe { slot.take() };
            *guard.tail = guard.tail.wrapping_add(1);
            sink(value);
        }
        k
    }

    /// Pops the oldest item.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let mut out = None;
        self.pop_with(1, |v| out = Some(v));
        out
    }

    /// Copies up to `out.len()` items into `out`, oldest first; returns how many. A bulk copy
    /// in at most two pieces.
    #[inline]
    pub fn pop_into(&mut self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        #[cfg(loom)]
        {
            let mut i = 0;
            return self.pop_with(out.len(), |v| {
                out[i] = v;
                i += 1;
            });
        }
        #[cfg(not(loom))]
        {
            let k = out.len().min(self.available(out.len()));
            let start = self.tail & self.shared.mask;
            let first = k.min(self.capacity() - start);
            let base = slots_ptr(&self.shared.slots);
            // SAFETY: the k slots from tail hold published values and are the consumer's; the
            // ranges lie within the array and within `out`.
            unsafe {
                for (i, slot) in out[..first].iter_mut().enumerate() {
                    *slot = base.add(start + i).read();
                }
                for (i, slot) in out[first..k].iter_mut().enumerate() {
                    *slot = base.add(i).read();
                }
            }
            self.tail = self.tail.wrapping_add(k);
            self.shared.tail.store(self.tail, Ordering::Release);
            k
        }
    }
}

impl<T> Consumer<T> {
    /// Moves up to `n` items out of the ring into `dst`, oldest first, in one bulk copy;
    /// returns how many.
    ///
    /// # Safety
    /// `dst` must have room for `n` items, treated as uninitialised; the items written (as
    /// many as returned) belong to the caller afterwards.
    pub(crate) unsafe fn pop_moved(&mut self, dst: *mut T, n: usize) -> usize {
        #[cfg(loom)]
        {
            let mut i = 0;
            return self.pop_with(n, |v| {
                // SAFETY: `dst` has room for n items; each is written once.
                unsafe { dst.add(i).write(v) };
                i += 1;
            });
        }
        #[cfg(not(loom))]
        {
            let k = n.min(self.available(n));
            let start = self.tail & self.shared.mask;
            let first = k.min(self.capacity() - start);
            let base = slots_ptr(&self.shared.slots);
            // SAFETY: the k slots from tail hold published values and are the consumer's; the
            // ranges lie within the array and within `dst`; the tail moves past them, so the
            // ring never reads them again.
            unsafe {
                for i in 0..first {
                    dst.add(i).write(base.add(start + i).read());
                }
                for i in first..k {
                    dst.add(i).write(base.add(i - first).read());
                }
            }
            self.tail = self.tail.wrapping_add(k);
            self.shared.tail.store(self.tail, Ordering::Release);
            k
        }
    }
}

/// Stores the local tail into the shared index when dropped: at the end of a pop, or during
/// unwinding from a panicking sink.
struct TailGuard<'a> {
    tail_index: &'a AtomicUsize,
    tail: &'a mut usize,
}

impl Drop for TailGuard<'_> {
    fn drop(&mut self) {
        self.tail_index.store(*self.tail, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn push_pop_in_order_and_full_empty() {
        let (mut p, mut c) = channel::<u32>(4);
        assert_eq!(p.capacity(), 4);
        assert!(c.is_empty());
        for i in 0..4 {
            assert_eq!(p.push(i), Ok(()));
        }
        assert_eq!(p.push(9), Err(9));
        assert_eq!(c.len(), 4);
        for i in 0..4 {
            assert_eq!(c.pop(), Some(i));
        }
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn bursts_move_as_many_as_fit_across_the_wrap() {
        let (mut p, mut c) = channel::<u64>(8);
        let mut out = [0u64; 8];
        let mut next = 0u64;
        let mut expected = 0u64;
        for round in 0..100 {
            let items: Vec<u64> = (next..next + 5).collect();
            let pushed = p.push_slice(&items);
            next += pushed as u64;
            let popped = c.pop_into(&mut out[..(round % 7) + 1]);
            for v in &out[..popped] {
                assert_eq!(*v, expected);
                expected += 1;
            }
        }
        while let Some(v) = c.pop() {
            assert_eq!(v, expected);
            expected += 1;
        }
        assert_eq!(expected, next);
    }

    #[test]
    fn burst_into_a_full_ring_moves_nothing() {
        let (mut p, mut c) = channel::<u8>(2);
        assert_eq!(p.push_slice(&[1, 2, 3]), 2);
        assert_eq!(p.push_slice(&[4]), 0);
        let mut out = [0u8; 4];
        assert_eq!(c.pop_into(&mut out), 2);
        assert_eq!(&out[..2], &[1, 2]);
        assert_eq!(c.pop_into(&mut out), 0);
    }

    #[test]
    fn non_copy_items_move_and_leftovers_drop_with_the_ring() {
        let token = Rc::new(());
        {
            let (mut p, mut c) = channel::<Rc<()>>(8);
            let mut source: Vec<Rc<()>> = (0..6).map(|_| token.clone()).collect();
            let moved = p.push_with(source.len(), |_| source.pop().expect("six"));
            assert_eq!(moved, 6);
            assert_eq!(Rc::strong_count(&token), 7);
            let mut got = Vec::new();
            assert_eq!(c.pop_with(2, |v| got.push(v)), 2);
            drop(got);
            assert_eq!(Rc::strong_count(&token), 5);
        }
        // The four left in the ring were dropped with it.
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn a_panicking_sink_never_gets_an_item_twice() {
        let token = std::sync::Arc::new(());
        let (mut p, mut c) = channel::<std::sync::Arc<()>>(4);
        for _ in 0..4 {
            p.push(token.clone()).unwrap();
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut seen = 0;
            c.pop_with(4, |v| {
                seen += 1;
                drop(v);
                if seen == 2 {
                    panic!("sink failure on purpose");
                }
            });
        }));
        assert!(result.is_err());
        assert_eq!(c.len(), 2);
        drop((p, c));
        assert_eq!(std::sync::Arc::strong_count(&token), 1);
    }

    #[test]
    fn two_threads_pass_a_million_items_in_order() {
        let (mut p, mut c) = channel::<u64>(64);
        const N: u64 = 1_000_000;
        let producer = std::thread::spawn(move || {
            let mut next = 0;
            while next < N {
                let burst: Vec<u64> = (next..(next + 32).min(N)).collect();
                next += p.push_slice(&burst) as u64;
            }
        });
        let mut expected = 0;
        let mut out = [0u64; 32];
        while expected < N {
            let n = c.pop_into(&mut out);
            for v in &out[..n] {
                assert_eq!(*v, expected);
                expected += 1;
            }
        }
        producer.join().unwrap();
    }

    #[test]
    fn the_consumer_learns_when_the_producer_is_gone() {
        let (mut p, mut c) = channel::<u8>(4);
        p.push(1).unwrap();
        assert!(!c.producer_gone());
        drop(p);
        assert!(c.producer_gone());
        assert_eq!(c.pop(), Some(1));
        assert!(c.is_empty());
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn capacity_must_be_a_power_of_two() {
        let _ = channel::<u8>(6);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn push_pop_across_threads() {
        loom::model(|| {
            let (mut p, mut c) = channel::<usize>(2);
            let t = loom::thread::spawn(move || {
                for i in 0..3 {
                    while p.push(i).is_err() {
                        loom::thread::yield_now();
                    }
                }
            });
            let mut next = 0;
            while next < 3 {
                match c.pop() {
                    Some(v) => {
                        assert_eq!(v, next);
                        next += 1;
                    }
                    None => loom::thread::yield_now(),
                }
            }
            t.join().unwrap();
        });
    }

    #[test]
    fn bursts_across_threads_and_drop_leftovers() {
        loom::model(|| {
            let (mut p, mut c) = channel::<loom::sync::Arc<usize>>(4);
            let t = loom::thread::spawn(move || {
                let mut sent = 0;
                while sent < 3 {
                    sent += p.push_with(3 - sent, |i| loom::sync::Arc::new(sent + i));
                    loom::thread::yield_now();
                }
            });
            let mut got = Vec::new();
            c.pop_with(2, |v| got.push(*v));
            t.join().unwrap();
            for (i, v) in got.iter().enumerate() {
                assert_eq!(*v, i);
            }
            // Whatever is left drops with the consumer.
        });
    }
}
