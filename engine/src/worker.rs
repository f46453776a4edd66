//! Workers: closures launched on the EAL's lcores, the poll loop they run with its adaptive
//! idle policy and per-lcore counters, and the stop flag that ends it.

use crate::eal::Eal;
use crate::error::Error;
use crate::stats::{LoopCounterWriter, LoopSnapshot};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tells poll loops to finish. SIGINT and SIGTERM set it once [`StopFlag::on_signals`] ran.
#[derive(Clone, Default, Debug)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Sets the flag on SIGINT and SIGTERM (the handler only stores to the flag).
    pub fn on_signals(&self) -> std::io::Result<()> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, self.0.clone())?;
        }
        Ok(())
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What an lcore does when its queues are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Poll flat out (benchmarks; lowest latency).
    Off,
    /// Poll again at once for `spin_polls` empty rounds, then with a pause hint between polls
    /// until the queues have been empty for `pause_for`, then sleep `sleep` between polls.
    Adaptive {
        spin_polls: u32,
        pause_for: Duration,
        sleep: Duration,
    },
}

impl Default for IdlePolicy {
    /// Idle for 10 ms, then poll every 500 µs: an idle engine costs about 1% of a core.
    fn default() -> Self {
        IdlePolicy::Adaptive {
            spin_polls: 1024,
            pause_for: Duration::from_millis(10),
            sleep: Duration::from_micros(500),
        }
    }
}

impl IdlePolicy {
    /// For an lcore with nothing to poll: sleep between rounds at once.
    pub const NOTHING_TO_POLL: IdlePolicy = IdlePolicy::Adaptive {
        spin_polls: 0,
        pause_for: Duration::ZERO,
        sleep: Duration::from_millis(1),
    };
}

/// Sleeps, pauses or spins between empty rounds as the policy says.
struct Idler {
    policy: IdlePolicy,
    empty_rounds: u32,
    idle_since: Option<Instant>,
}

impl Idler {
    /// After a round that moved `moved` packets; returns whether it slept.
    #[inline]
    fn after(&mut self, moved: usize) -> bool {
        let IdlePolicy::Adaptive {
            spin_polls,
            pause_for,
            sleep,
        } = self.policy
        else {
            return false;
        };
        if moved > 0 {
            self.empty_rounds = 0;
            self.idle_since = None;
            return false;
        }
        if self.empty_rounds < spin_polls {
            self.empty_rounds += 1;
            return false;
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < pause_for {
            dpdk_sys::pause();
            false
        } else {
            std::thread::sleep(sleep);
            true
        }
    }
}

/// The poll loop: runs `round` (one poll of everything this lcore owns, returning the
/// packets moved) until `stop` is set, idling between empty rounds as `idle` says. Every 256
/// rounds, or when idle (reading the clock costs more than an empty poll), it publishes its
/// counts to `counters` and calls `tick(now)`. With `clock_work`, it reads the TSC after
/// each round, so that the counts split the lcore's cycles into rounds that moved packets
/// and the rest (empty polls and sleeps): a read a round, which a forwarder's benchmark would
/// notice, so apps ask for it.
pub fn poll_until_stopped(
    stop: &StopFlag,
    idle: IdlePolicy,
    clock_work: bool,
    counters: &mut LoopCounterWriter,
    tick: &mut dyn FnMut(Instant),
    mut round: impl FnMut() -> usize,
) {
    let mut idler = Idler {
        policy: idle,
        empty_rounds: 0,
        idle_since: None,
    };
    let mut counted = LoopSnapshot::default();
    let mut last = crate::clock::tsc();
    while !stop.is_stopped() {
        let moved = round() as u64;
        let slept = idler.after(moved as usize);
        if clock_work {
            // The round and any sleep after it: a round that moved packets does not sleep.
            let now = crate::clock::tsc();
            let cycles = now.saturating_sub(last);
            last = now;
            counted.cycles += cycles;
            if moved == 0 {
                counted.idle_cycles += cycles;
            }
        }
        counted.rounds += 1;
        counted.busy_rounds += u64::from(moved > 0);
        counted.packets += moved;
        counted.sleeps += u64::from(slept);
        if counted.rounds.is_multiple_of(256) || idler.idle_since.is_some() {
            counters.add(&std::mem::take(&mut counted));
            tick(Instant::now());
        }
    }
    counters.add(&counted);
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs on the lcore: unboxes the job, runs it, and keeps a panic from unwinding into C.
extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `launch` passed a Box<Job> leaked with Box::into_raw; we are its only user.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// A closure running on a worker lcore.
pub struct Worker<R> {
    lcore: u32,
    result: Arc<Mutex<Option<R>>>,
}

/// Launches `work` on worker lcore `lcore` (not the main lcore, which is the caller's thread).
pub fn launch<F, R>(_eal: &Eal, lcore: u32, work: F) -> Result<Worker<R>, Error>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let job: Job = Box::new(move || {
        let value = work();
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    });
    let arg = Box::into_raw(Box::new(job));
    // SAFETY: the EAL is started (we hold a handle); the trampoline takes ownership of arg.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore) };
    if ret != 0 {
        // SAFETY: the launch failed, so the trampoline never got arg: reclaim it.
        drop(unsafe { Box::from_raw(arg) });
        return Err(Error::from_ret(
            format!("cannot launch a worker on lcore {lcore} (is it a worker lcore, and idle?)"),
            ret,
        ));
    }
    Ok(Worker { lcore, result })
}

impl<R> Worker<R> {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the closure to return; Err if it panicked.
    pub fn join(self) -> Result<R, Error> {
        // SAFETY: waits for the lcore we launched on; no preconditions beyond a started EAL.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        self.result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::Config(format!("the worker on lcore {} panicked", self.lcore)))
    }
}
