//! The DPDK layer: bindings generated at build time from the installed DPDK (see `build.rs`),
//! the static-inline fast paths exported by `shim.c`, and the few per-packet accessors
//! written here in Rust so that they inline into the caller.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all, rustdoc::all, improper_ctypes)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// `rte_eth_rx_burst`, as DPDK 22.11's inline does it: the PMD's burst function from
/// `rte_eth_fp_ops`, then the queue's RX callbacks (pdump's capture hooks in there) if any.
///
/// # Safety
/// `port_id` < RTE_MAX_ETHPORTS and `queue_id` a set-up RX queue of it, polled by this thread
/// alone; `rx_pkts` has room for `nb_pkts` pointers.
#[inline(always)]
pub unsafe fn eth_rx_burst(
    port_id: u16,
    queue_id: u16,
    rx_pkts: *mut *mut rte_mbuf,
    nb_pkts: u16,
) -> u16 {
    // SAFETY: the caller's contract; fp_ops entries are valid for every port id (a dummy
    // burst function for stopped ports) and `data`/`clbk` have an entry per queue.
    unsafe {
        let ops = &*(&raw const rte_eth_fp_ops)
            .cast::<rte_eth_fp_ops>()
            .add(usize::from(port_id));
        let queue = *ops.rxq.data.add(usize::from(queue_id));
        let Some(burst) = ops.rx_pkt_burst else {
            return 0;
        };
        let mut nb_rx = burst(queue, rx_pkts, nb_pkts);
        let callbacks =
            core::sync::atomic::AtomicPtr::from_ptr(ops.rxq.clbk.add(usize::from(queue_id)))
                .load(core::sync::atomic::Ordering::Relaxed);
        if !callbacks.is_null() {
            nb_rx =
                rte_eth_call_rx_callbacks(port_id, queue_id, rx_pkts, nb_rx, nb_pkts, callbacks);
        }
        nb_rx
    }
}

/// `rte_eth_tx_burst`, as DPDK 22.11's inline does it: the queue's TX callbacks if any, then
/// the PMD's burst function. The PMD owns the first `n` mbufs it returns.
///
/// # Safety
/// As [`eth_rx_burst`], for a TX queue; `tx_pkts` holds `nb_pkts` owned mbufs.
#[inline(always)]
pub unsafe fn eth_tx_burst(
    port_id: u16,
    queue_id: u16,
    tx_pkts: *mut *mut rte_mbuf,
    mut nb_pkts: u16,
) -> u16 {
    // SAFETY: as in eth_rx_burst.
    unsafe {
        let ops = &*(&raw const rte_eth_fp_ops)
            .cast::<rte_eth_fp_ops>()
            .add(usize::from(port_id));
        let queue = *ops.txq.data.add(usize::from(queue_id));
        let callbacks =
            core::sync::atomic::AtomicPtr::from_ptr(ops.txq.clbk.add(usize::from(queue_id)))
                .load(core::sync::atomic::Ordering::Relaxed);
        if !callbacks.is_null() {
            nb_pkts = rte_eth_call_tx_callbacks(port_id, queue_id, tx_pkts, nb_pkts, callbacks);
        }
        match ops.tx_pkt_burst {
            Some(burst) => burst(queue, tx_pkts, nb_pkts),
            None => 0,
        }
    }
}

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
