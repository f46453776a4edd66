//! Cache hints for stages that look a burst's packets up in tables too large for the cache:
//! ask for every packet's lines first, then use them, so that the misses overlap (as MICA
//! and DPDK's bulk lookups do) instead of coming one after another.

/// Asks the CPU to bring the cache line holding the start of `value` closer; a hint only,
/// that never faults and changes nothing a program can observe but time.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching a reference's address reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
