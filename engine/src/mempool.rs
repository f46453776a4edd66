//! pktmbuf pools. A [`Mempool`] is a cheap, shareable handle (DPDK's mempool is thread-safe);
//! the pool is freed when the last handle goes, and only if every mbuf has come back.

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::{Burst, Mbuf};
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

/// Data room of a default mbuf: 2048 bytes of packet plus DPDK's headroom, as l2fwd/l3fwd use.
pub const DEFAULT_DATA_ROOM: u16 = (2048 + dpdk_sys::RTE_PKTMBUF_HEADROOM) as u16;
/// Per-lcore cache of a default pool (DPDK's examples use 256).
pub const DEFAULT_CACHE: u32 = 256;

struct PoolInner {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    /// The length of the frame every mbuf holds, for a prefilled pool.
    filled: Option<u16>,
    eal: Eal,
}

// SAFETY: rte_mempool's get/put are thread-safe (per-lcore caches, a lock-free ring behind them).
unsafe impl Send for PoolInner {}
// SAFETY: as above; shared references only call thread-safe functions.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if self.in_use() == 0 {
            // SAFETY: no mbuf of this pool is outstanding and no handle is left.
            unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
        } else {
            // An mbuf still out would be freed into released memory: keep the pool, and the
            // EAL under it, alive for the rest of the process instead.
            eprintln!(
                "sluice: mempool {} dropped with {} mbufs still in use; leaving it allocated",
                self.name,
                self.in_use()
            );
            std::mem::forget(self.eal.clone());
        }
    }
}

impl PoolInner {
    fn in_use(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }
}

/// A pool of packet mbufs on one NUMA socket.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl Mempool {
    /// Creates a pool of `count` mbufs with `data_room` bytes each (headroom included) on
    /// `socket` (`None`: any socket). Pool names are global to the process, so each must differ.
    pub fn pktmbuf(
        eal: &Eal,
        name: &str,
        count: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Mempool, Error> {
        let cname = CString::new(name)
            .map_err(|_| Error::Config(format!("mempool name {name:?} contains a NUL byte")))?;
        let socket_id = socket.map_or(dpdk_sys::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: the EAL is started (we hold a handle) and cname is a valid C string.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, socket_id)
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::from_rte_errno(format!(
                "cannot create mempool {name} ({count} mbufs of {data_room} bytes)"
            ))
        })?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                raw,
                name: name.to_owned(),
                filled: None,
                eal: eal.clone(),
            }),
        })
    }

    /// As [`Mempool::pktmbuf`], with `frame` written into every mbuf's data area, and its
    /// mbufs allocated holding it: of its length, with what they were last sent with in it.
    /// Mempools never touch packet data, and mbufs come back from a TX queue as they were
    /// sent: a generator that sends one frame from this pool, rewriting the same fields in each
    /// packet, need not write the rest, nor reset and append to each mbuf.
    pub fn pktmbuf_prefilled(
        eal: &Eal,
        name: &str,
        count: u32,
        cache: u32,
        socket: Option<u32>,
        frame: &[u8],
    ) -> Result<Mempool, Error> {
        let len = u16::try_from(frame.len()).ok();
        let room = len
            .and_then(|len| len.checked_add(dpdk_sys::RTE_PKTMBUF_HEADROOM as u16))
            .ok_or_else(|| {
                Error::Config(format!(
                    "a frame of {} bytes is too long for an mbuf",
                    frame.len()
                ))
            })?;
        let pool = Mempool::pktmbuf(eal, name, count, cache, room.max(DEFAULT_DATA_ROOM), socket)?;

        unsafe extern "C" fn fill(
            _pool: *mut dpdk_sys::rte_mempool,
            frame: *mut std::ffi::c_void,
            mbuf: *mut std::ffi::c_void,
            _index: std::ffi::c_uint,
        ) {
            // SAFETY: `frame` is the slice passed below, alive for the call; `mbuf` is an
            // initialised pktmbuf whose buffer holds the headroom plus at least frame.len()
            // bytes (the pool's data room was sized for it).
            unsafe {
                let frame = &*frame.cast::<&[u8]>();
                let mbuf = mbuf.cast::<dpdk_sys::rte_mbuf>();
                let data = (*mbuf)
                    .buf_addr
                    .cast::<u8>()
                    .add(dpdk_sys::RTE_PKTMBUF_HEADROOM as usize);
                std::ptr::copy_nonoverlapping(frame.as_ptr(), data, frame.len());
            }
        }
        let mut arg = frame;
        // SAFETY: the pool is fully populated and not yet shared; `fill` only writes inside
        // each mbuf's buffer; `arg` outlives the call.
        unsafe { dpdk_sys::rte_mempool_obj_iter(pool.as_ptr(), Some(fill), (&raw mut arg).cast()) };
        let mut pool = pool;
        Arc::get_mut(&mut pool.inner)
            .expect("not shared yet")
            .filled = len;
        Ok(pool)
    }

    /// Whether this pool's mbufs come holding a frame ([`Mempool::pktmbuf_prefilled`]).
    pub fn is_prefilled(&self) -> bool {
        self.inner.filled.is_some()
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many mbufs the pool holds in all.
    pub fn capacity(&self) -> u32 {
        // SAFETY: raw is a live pool; `size` is set at creation and never changes.
        unsafe { (*self.inner.raw.as_ptr()).size }
    }

    /// Mbufs taken from the pool and not yet returned (per-lcore caches count as returned).
    pub fn in_use(&self) -> u32 {
        self.inner.in_use()
    }

    /// Mbufs ready to be allocated.
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// One mbuf, as [`Mempool::alloc_into`] gives them, or None when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        let mut one = Burst::new();
        self.alloc_into(&mut one, 1).then(|| one.pop()).flatten()
    }

    /// Fills `burst` up to `n` mbufs in one bulk allocation; all or nothing. They are empty,
    /// or, from a prefilled pool, hold its frame. Returns false (and leaves `burst` as it was)
    /// when the pool has too few.
    pub fn alloc_into(&self, burst: &mut Burst, n: usize) -> bool {
        let n = n.min(burst.spare());
        let (slots, _) = burst.spare_raw();
        let raw = self.inner.raw.as_ptr();
        // SAFETY: slots has room for `n` pointers; on success each is a fresh mbuf we own. A
        // prefilled pool's data room holds the frame's length after the headroom.
        let rc = unsafe {
            match self.inner.filled {
                None => dpdk_sys::sluice_pktmbuf_alloc_bulk(raw, slots, n as u32),
                Some(len) => dpdk_sys::sluice_pktmbuf_alloc_bulk_filled(raw, slots, n as u32, len),
            }
        };
        if rc != 0 {
            return false;
        }
        // SAFETY: the first n spare slots now hold owned mbufs.
        unsafe { burst.assume_filled(n) };
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.inner.raw.as_ptr()
    }
}
