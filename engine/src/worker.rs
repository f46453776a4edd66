//! Workers: closures launched on the EAL's lcores, and the stop flag that ends their loops.

use crate::eal::Eal;
use crate::error::Error;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
