//! The CPU's time-stamp counter, for pacing and timestamps on the fast path: one instruction
//! to read, and [`crate::Eal::tsc_hz`] ticks per second (constant and synchronised across
//! cores on the CPUs DPDK supports).

/// The time-stamp counter now.
#[inline(always)]
pub fn tsc() -> u64 {
    dpdk_sys::rdtsc()
}
