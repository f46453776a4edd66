//! The CPU's time-stamp counter, for pacing and timestamps on the fast path: one instruction
//! to read, and [`tsc_hz`] ticks per second (constant and synchronised across cores on the
//! CPUs DPDK supports).

use std::sync::OnceLock;
use std::time::Duration;

/// The time-stamp counter now.
#[inline(always)]
pub fn tsc() -> u64 {
    dpdk_sys::rdtsc()
}

/// The TSC's rate as measured across the EAL's start ([`Mark::measure`]).
static MEASURED_HZ: OnceLock<u64> = OnceLock::new();

/// TSC ticks per second: the rate measured while the EAL started, or DPDK's before that
/// (zero before the EAL starts). DPDK rounds the rate it measures to a multiple of 10 MHz
/// where the CPU does not say it (AMD's among them): 2,600,000,000 for a TSC the kernel
/// calibrated at 2,596.128 MHz, which would make every delay, rate and latency 0.15% off.
pub fn tsc_hz() -> u64 {
    match MEASURED_HZ.get() {
        Some(&hz) => hz,
        // SAFETY: a plain read of the EAL's TSC rate (zero before the EAL starts).
        None => unsafe { dpdk_sys::rte_get_tsc_hz() },
    }
}

/// A TSC reading with the kernel's raw monotonic clock (which no NTP adjustment slews) read
/// beside it: the start of a measurement of the TSC's rate.
pub(crate) struct Mark {
    tsc: u64,
    nanos: u128,
}

/// Long enough that the clocks' reading error (well under a microsecond) is under 10 ppm.
const MEASURE_FOR: Duration = Duration::from_millis(100);
/// A reading of the clock between two TSC reads took less than this (about 4 µs at any
/// rate DPDK runs on): nothing came between.
const TIGHT_READ_TICKS: u64 = 10_000;

impl Mark {
    pub(crate) fn now() -> Mark {
        // The TSC halfway through reading the clock, read again if something (a pause of the
        // machine) came between: the reading is then off by half of it.
        let mut tries = 0;
        loop {
            let before = tsc();
            let nanos = monotonic_raw_nanos();
            let after = tsc();
            tries += 1;
            if after.saturating_sub(before) < TIGHT_READ_TICKS || tries == 100 {
                return Mark {
                    tsc: before + (after.saturating_sub(before)) / 2,
                    nanos,
                };
            }
        }
    }

    /// Sets [`tsc_hz`] from the ticks and nanoseconds since the mark, waiting out the rest of
    /// 100 ms if less has passed (the EAL's start usually takes longer). Once per process.
    pub(crate) fn measure(&self) {
        let elapsed = Duration::from_nanos((monotonic_raw_nanos() - self.nanos) as u64);
        if let Some(rest) = MEASURE_FOR.checked_sub(elapsed) {
            std::thread::sleep(rest);
        }
        let end = Mark::now();
        let ticks = u128::from(end.tsc.saturating_sub(self.tsc));
        let nanos = end.nanos.saturating_sub(self.nanos).max(1);
        let hz = (ticks * 1_000_000_000 + nanos / 2) / nanos;
        if hz > 0 {
            let _ = MEASURED_HZ.set(hz as u64);
        }
    }
}

fn monotonic_raw_nanos() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write; CLOCK_MONOTONIC_RAW exists on
    // every Linux DPDK runs on.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}
