//! Owned packet buffers. An [`Mbuf`] frees itself on drop; a [`Burst`] holds up to
//! [`MAX_BURST`] of them and frees what it still holds in one bulk call. Data is borrowed
//! from the buffer in place: nothing on the fast path copies a packet.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// The most mbufs a burst can hold.
pub const MAX_BURST: usize = 64;

/// One packet buffer, owned: exactly one `Mbuf` exists per mbuf taken from a pool.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: an mbuf has one owner at a time and may be freed from any thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as self lives.
        unsafe { self.raw.as_ref() }
    }

    /// The packet's length over all segments.
    pub fn len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segments in the chain (1 for a packet in one buffer).
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The port the packet arrived on.
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The bytes of the first segment: the whole packet unless it is chained.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let len = self.raw().data_len as usize;
        // SAFETY: mtod..mtod+data_len is initialised packet data inside the buffer we own.
        unsafe { std::slice::from_raw_parts(self.mtod(), len) }
    }

    /// The first segment's bytes, writable in place.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.raw().data_len as usize;
        // SAFETY: as in `data`, and &mut self makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.mtod(), len) }
    }

    /// The start of the data, which is never null: telling the compiler so spares a null test
    /// wherever a slice of it becomes an Option or a Result.
    #[inline(always)]
    fn mtod(&self) -> *mut u8 {
        // SAFETY: the mbuf is valid while we own it.
        let data = unsafe { dpdk_sys::pktmbuf_mtod(self.raw.as_ptr()) };
        // SAFETY: every mbuf of a pool has a buffer (rte_pktmbuf_init sets buf_addr).
        unsafe { std::hint::assert_unchecked(!data.is_null()) };
        data
    }

    /// Grows the packet by `len` bytes at its end and returns them, or None when the last
    /// segment has no room left.
    #[inline]
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // One segment (every fresh mbuf): rte_pktmbuf_append's work, inline, as generators
        // append to every packet they build.
        // SAFETY: we own the mbuf, and &mut self makes the access exclusive.
        let m = unsafe { self.raw.as_mut() };
        if m.nb_segs == 1 {
            let tail = usize::from(m.data_off) + usize::from(m.data_len);
            if tail + usize::from(len) > usize::from(m.buf_len) {
                return None;
            }
            m.data_len += len;
            m.pkt_len += u32::from(len);
            // SAFETY: tail..tail+len lies inside the buffer (checked above) and is now ours.
            return Some(unsafe {
                std::slice::from_raw_parts_mut(m.buf_addr.cast::<u8>().add(tail), usize::from(len))
            });
        }
        // SAFETY: we own the mbuf; rte_pktmbuf_append checks the tailroom.
        let tail = unsafe { dpdk_sys::sluice_pktmbuf_append(self.raw.as_ptr(), len) };
        // SAFETY: a non-null result points at `len` bytes of tailroom now part of the packet.
        NonNull::new(tail).map(|t| unsafe {
            std::slice::from_raw_parts_mut(t.as_ptr().cast::<u8>(), len as usize)
        })
    }

    /// Shortens a one-segment packet to `len` bytes (no-op if it is not longer).
    pub fn truncate(&mut self, len: usize) {
        // SAFETY: we own the mbuf, and &mut self makes the access exclusive.
        let m = unsafe { self.raw.as_mut() };
        if m.nb_segs == 1 && len < usize::from(m.data_len) {
            m.data_len = len as u16;
            m.pkt_len = len as u32;
        }
    }

    /// Makes a one-segment packet exactly `len` bytes long, growing it with zeros or
    /// shortening it; false (and unchanged) if it is chained or the buffer is too small.
    pub fn resize(&mut self, len: usize) -> bool {
        let have = self.len();
        if self.segments() != 1 {
            return false;
        }
        if len > have {
            let Ok(more) = u16::try_from(len - have) else {
                return false;
            };
            return match self.append(more) {
                Some(room) => {
                    room.fill(0);
                    true
                }
                None => false,
            };
        }
        self.truncate(len);
        true
    }

    /// Sets the port the packet is taken to have arrived on (for packets built, not received).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: we own the mbuf, and &mut self makes the access exclusive.
        unsafe { self.raw.as_mut() }.port = port;
    }

    /// Appends a copy of `bytes` (for building packets, not for the fast path).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        let Ok(len) = u16::try_from(bytes.len()) else {
            return false;
        };
        match self.append(len) {
            Some(room) => {
                room.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nothing uses it after this.
        unsafe { dpdk_sys::sluice_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// Up to [`MAX_BURST`] owned mbufs, the unit of work on the fast path.
pub struct Burst {
    len: usize,
    slots: [MaybeUninit<Mbuf>; MAX_BURST],
}

impl Default for Burst {
    fn default() -> Self {
        Burst::new()
    }
}

impl Burst {
    pub fn new() -> Burst {
        Burst {
            len: 0,
            slots: [const { MaybeUninit::uninit() }; MAX_BURST],
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn spare(&self) -> usize {
        MAX_BURST - self.len
    }

    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first len slots are initialised; MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Adds one mbuf, or gives it back when the burst is full.
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(mbuf);
        }
        self.slots[self.len].write(mbuf);
        self.len += 1;
        Ok(())
    }

    /// Takes the last mbuf out.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot len was initialised and is now outside the live range.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// Frees every mbuf held, in one bulk call; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            self.len = 0;
            // SAFETY: the n first slots held owned mbufs; len is already 0 so none is used again.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr().cast(), n as u32) };
        }
        n
    }

    /// Keeps the mbufs for which `keep` returns true, in order, and frees the others in one
    /// bulk call; returns how many were freed (for the caller to count under a drop reason).
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) -> usize {
        let mut rejected = Burst::new();
        let mut kept = 0;
        let len = std::mem::take(&mut self.len); // should `keep` panic, leak rather than double-free
        for i in 0..len {
            // SAFETY: slot i is initialised and, with len at 0, owned by this loop alone; it is
            // moved exactly once, into a kept position (kept <= i) or into `rejected`.
            let mut m = unsafe { self.slots[i].assume_init_read() };
            if keep(&mut m) {
                self.slots[kept].write(m);
                kept += 1;
            } else if let Err(m) = rejected.push(m) {
                drop(m);
            }
        }
        self.len = kept;
        rejected.clear()
    }

    /// Moves every mbuf out, in order; any the iterator does not hand out are freed in bulk
    /// when it is dropped.
    pub fn drain(&mut self) -> Drain<'_> {
        let end = std::mem::take(&mut self.len);
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// The spare slots as raw pointers for a PMD or pool to fill, and their number.
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        let spare = self.spare();
        // SAFETY: len <= MAX_BURST, so the offset stays within (or one past) the array.
        let ptr = unsafe { self.slots.as_mut_ptr().add(self.len) }.cast();
        (ptr, spare)
    }

    /// Marks `n` more slots as filled.
    ///
    /// # Safety
    /// The `n` slots after the current length must hold valid mbufs that the burst now owns.
    pub(crate) unsafe fn assume_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len += n;
    }

    /// The live mbufs as raw pointers, for a PMD to take from the front.
    pub(crate) fn live_raw(&mut self) -> *mut *mut dpdk_sys::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// Moves as many mbufs as the ring takes into it, from the front, in one bulk copy; the
    /// rest stay. Returns how many went.
    pub(crate) fn push_to(&mut self, ring: &mut crate::ring::Producer<Mbuf>) -> usize {
        // SAFETY: the first len slots hold owned mbufs; those the ring took are forgotten
        // here, and the rest move to the front.
        unsafe {
            let k = ring.push_moved(self.slots.as_ptr().cast::<Mbuf>(), self.len);
            self.forget_front(k);
            k
        }
    }

    /// Moves up to `max` mbufs (at most the room left) out of the ring onto the end, in one
    /// bulk copy; returns how many came.
    pub(crate) fn pop_from(&mut self, ring: &mut crate::ring::Consumer<Mbuf>, max: usize) -> usize {
        let (spare, room) = self.spare_raw();
        // SAFETY: the spare slots have room for `room` mbufs; those the ring moved in are owned
        // by the burst from here on.
        unsafe {
            let k = ring.pop_moved(spare.cast::<Mbuf>(), max.min(room));
            self.assume_filled(k);
            k
        }
    }

    /// Forgets the first `n` mbufs (someone else, a TX queue, owns them now) and moves the
    /// rest to the front.
    ///
    /// # Safety
    /// Ownership of the first `n` mbufs must have passed elsewhere.
    pub(crate) unsafe fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let base = self.slots.as_mut_ptr();
        // SAFETY: both ranges lie within the array; ptr::copy handles the overlap, and the
        // moved-from tail is outside the new live range so nothing is dropped twice.
        unsafe { std::ptr::copy(base.add(n), base, self.len - n) };
        self.len -= n;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The mbufs of a burst, moved out one by one (see [`Burst::drain`]).
pub struct Drain<'a> {
    burst: &'a mut Burst,
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: slots next..end are initialised and owned by the drain (the burst's len is 0).
        let m = unsafe { self.burst.slots[self.next].assume_init_read() };
        self.next += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.end - self.next, Some(self.end - self.next))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.end - self.next;
        if rest > 0 {
            // SAFETY: the slots not handed out are still owned here, and nothing reads them again.
            unsafe {
                let first = self.burst.slots.as_mut_ptr().add(self.next);
                dpdk_sys::rte_pktmbuf_free_bulk(first.cast(), rest as u32);
            }
        }
    }
}
