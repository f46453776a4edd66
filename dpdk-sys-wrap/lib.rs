//! The DPDK layer: bindings generated at build time from the installed DPDK (see `build.rs`),
//! the static-inline fast paths exported by `shim.c`, and the few per-packet accessors
//! written here in Rust so that they inline into the caller.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all, rustdoc::all, improper_ctypes)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// `rte_pktmbuf_mtod`: the address of the first data byte of `m`.
///
/// # Safety
/// `m` must point to a valid mbuf.
#[inline(always)]
pub unsafe fn pktmbuf_mtod(m: *const rte_mbuf) -> *mut u8 {
    // SAFETY: the caller guarantees `m` is valid; data_off is within the buffer by DPDK's invariant.
    unsafe { ((*m).buf_addr as *mut u8).add((*m).data_off as usize) }
}

/// `rte_rdtsc`: the CPU's time-stamp counter, read inline (the C version is also one instruction).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: rte_get_tsc_cycles is a plain counter read.
    unsafe {
        rte_get_tsc_cycles()
    }
}

/// `rte_pause`: the spin-wait hint.
#[inline(always)]
pub fn pause() {
    core::hint::spin_loop();
}
