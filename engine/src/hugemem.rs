//! Arrays in hugepage memory on a chosen NUMA node (DPDK's `rte_malloc`), for an app's large
//! tables: made once at start, they cost a TLB entry per 2 MB instead of per 4 KB, and sit on
//! the node of the lcore that uses them.

use crate::error::Error;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// `len` values of `T` in hugepage memory, freed when dropped.
pub struct HugeArray<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the array owns its elements as a Box<[T]> would; the memory is plain process memory.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: shared access is only through &[T].
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `value` on NUMA node `node` (None: any). The EAL must be started.
    /// Fails, saying how much was asked, when the EAL's hugepages cannot hold it.
    pub fn filled(len: usize, value: T, node: Option<u32>) -> Result<HugeArray<T>, Error> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            Error::Config(format!(
                "an array of {len} elements does not fit the address space"
            ))
        })?;
        if bytes == 0 {
            return Ok(HugeArray {
                ptr: NonNull::dangling(),
                len,
            });
        }
        let socket = node.map_or(dpdk_sys::SOCKET_ID_ANY, |n| n as i32);
        let align = std::mem::align_of::<T>().max(64);
        // SAFETY: asks the EAL (started, as documented) for `bytes` bytes aligned for T.
        let raw =
            unsafe { dpdk_sys::rte_malloc_socket(std::ptr::null(), bytes, align as u32, socket) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or_else(|| {
            Error::Config(format!(
                "no {} MiB of hugepage memory free{}: reserve more hugepages (scripts/setup.sh) or ask for less",
                bytes.div_ceil(1 << 20),
                node.map_or(String::new(), |n| format!(" on NUMA node {n}"))
            ))
        })?;
        for i in 0..len {
            // SAFETY: `ptr` holds `len` elements of T, aligned; each is written once, before
            // any is read.
            unsafe { ptr.as_ptr().add(i).write(value) };
        }
        Ok(HugeArray { ptr, len })
    }
}

impl<T> Deref for HugeArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements (or a dangling pointer with len 0, or zero-sized T).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        if self.len == 0 || std::mem::size_of::<T>() == 0 {
            return;
        }
        // SAFETY: T is Copy where made (no drop glue to run); the pointer came from
        // rte_malloc_socket and is freed once.
        unsafe { dpdk_sys::rte_free(self.ptr.as_ptr().cast()) };
    }
}
