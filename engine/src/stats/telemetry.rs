//! The engine's numbers as rte_telemetry commands, so that `dpdk-telemetry.py` (and any
//! client of DPDK's telemetry socket) reads them from a running app:
//!
//! - `/sluice/stats`: totals, drops by reason, per port rx/tx/dropped, and per lcore its polls;
//! - `/sluice/placement`: which lcore polls which queue and runs which stage.
//!
//! Telemetry callbacks are plain C functions without a context pointer, so what they report
//! is published here, process-wide, by the pipeline that runs.

use super::{Counter, Reason, Snapshot, Stats};
use std::ffi::{c_char, c_int, CString};
use std::sync::{Arc, Mutex, Once};

struct Published {
    stats: Option<Arc<Stats>>,
    placement: String,
}

static PUBLISHED: Mutex<Published> = Mutex::new(Published {
    stats: None,
    placement: String::new(),
});
static REGISTER: Once = Once::new();

fn published() -> std::sync::MutexGuard<'static, Published> {
    PUBLISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes `stats` what `/sluice/stats` reports.
pub fn publish_stats(stats: Arc<Stats>) {
    register();
    published().stats = Some(stats);
}

/// Makes `text` what `/sluice/placement` reports.
pub fn publish_placement(text: String) {
    register();
    published().placement = text;
}

fn register() {
    REGISTER.call_once(|| {
        let commands: [(&str, dpdk_sys::telemetry_cb, &str); 2] = [
            (
                "/sluice/stats",
                Some(stats_command),
                "Sluice packet counters: totals, drops by reason, per port",
            ),
            (
                "/sluice/placement",
                Some(placement_command),
                "Sluice placement: lcores, queues and stages",
            ),
        ];
        for (name, callback, help) in commands {
            let (name, help) = (
                CString::new(name).expect("no NUL"),
                CString::new(help).expect("no NUL"),
            );
            // SAFETY: valid C strings (telemetry copies them) and a callback valid for the
            // process's life. Without telemetry (--no-telemetry) this fails harmlessly.
            unsafe { dpdk_sys::rte_telemetry_register_cmd(name.as_ptr(), callback, help.as_ptr()) };
        }
    });
}

/// Adds `name: value` to a telemetry dict.
///
/// # Safety
/// `d` must be a started dict.
unsafe fn add_u64(d: *mut dpdk_sys::rte_tel_data, name: &str, value: u64) {
    let name = CString::new(name).expect("no NUL");
    // SAFETY: the caller's dict; telemetry copies the name.
    unsafe { dpdk_sys::rte_tel_data_add_dict_u64(d, name.as_ptr(), value) };
}

/// # Safety
/// `d` must be a started dict.
unsafe fn add_snapshot(d: *mut dpdk_sys::rte_tel_data, s: &Snapshot) {
    // SAFETY: passed through from the caller.
    unsafe {
        add_u64(d, "rx", s.rx);
        add_u64(d, "tx", s.tx);
        add_u64(d, "dropped", s.dropped());
        for reason in Reason::all() {
            add_u64(d, reason.name(), s.drops_for(reason));
        }
        if s.originated > 0 || s.held > 0 {
            add_u64(d, "originated", s.originated);
            add_u64(d, "held", s.held);
        }
        for counter in Counter::all() {
            add_u64(d, counter.name(), s.count(counter));
        }
    }
}

extern "C" fn stats_command(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    let Some(stats) = published().stats.clone() else {
        return -libc::ENODATA;
    };
    // SAFETY: telemetry hands us a fresh rte_tel_data to fill; containers we allocate are
    // handed over to it (keep = 0) and freed with it.
    unsafe {
        dpdk_sys::rte_tel_data_start_dict(d);
        add_snapshot(d, &stats.totals());
        for port in stats.ports() {
            let c = dpdk_sys::rte_tel_data_alloc();
            if c.is_null() {
                return -libc::ENOMEM;
            }
            dpdk_sys::rte_tel_data_start_dict(c);
            add_snapshot(c, &stats.port(port));
            let name = CString::new(format!("port{port}")).expect("no NUL");
            dpdk_sys::rte_tel_data_add_dict_container(d, name.as_ptr(), c, 0);
        }
        for l in &stats.lcores {
            let c = dpdk_sys::rte_tel_data_alloc();
            if c.is_null() {
                return -libc::ENOMEM;
            }
            let s = l.counters.snapshot();
            dpdk_sys::rte_tel_data_start_dict(c);
            add_u64(c, "polls", s.rounds);
            add_u64(c, "busy_polls", s.busy_rounds);
            add_u64(c, "packets", s.packets);
            add_u64(c, "idle_sleeps", s.sleeps);
            add_u64(c, "cycles", s.cycles);
            add_u64(c, "idle_cycles", s.idle_cycles);
            let name = CString::new(format!("lcore{}", l.lcore)).expect("no NUL");
            dpdk_sys::rte_tel_data_add_dict_container(d, name.as_ptr(), c, 0);
        }
    }
    0
}

extern "C" fn placement_command(
    _cmd: *const c_char,
    _params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    let text = published().placement.clone();
    // Telemetry strings are short (RTE_TEL_MAX_STRING_LEN): one entry per line.
    // SAFETY: as in stats_command.
    unsafe {
        dpdk_sys::rte_tel_data_start_dict(d);
        for (i, line) in text.lines().enumerate() {
            let name = CString::new(format!("{i}")).expect("no NUL");
            let value = CString::new(line.replace('\0', "")).expect("NULs removed");
            dpdk_sys::rte_tel_data_add_dict_string(d, name.as_ptr(), value.as_ptr());
        }
    }
    0
}

/// The counters of the pipeline running now (or that ran last), if any.
pub fn current_stats() -> Option<Arc<Stats>> {
    published().stats.clone()
}

type Handler = Box<dyn Fn(&str) -> String + Send + Sync>;

/// Commands an app registered, by name.
static APP_COMMANDS: Mutex<Vec<(String, Handler)>> = Mutex::new(Vec::new());

/// Registers `name` (such as `/l3fwd/control`) as a telemetry command whose reply is
/// `handler(parameters)`, one dict entry per line. Fails if telemetry is off or the name is
/// taken.
pub fn register_command(
    name: &str,
    help: &str,
    handler: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Result<(), crate::Error> {
    let (c_name, c_help) = (
        CString::new(name).map_err(|_| crate::Error::Config("NUL in a command name".into()))?,
        CString::new(help).map_err(|_| crate::Error::Config("NUL in a command help".into()))?,
    );
    APP_COMMANDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((name.to_owned(), Box::new(handler)));
    // SAFETY: valid C strings (telemetry copies them) and a callback valid for the process.
    let ret = unsafe {
        dpdk_sys::rte_telemetry_register_cmd(c_name.as_ptr(), Some(app_command), c_help.as_ptr())
    };
    if ret != 0 {
        return Err(crate::Error::from_ret(
            format!("registering telemetry command {name}"),
            ret,
        ));
    }
    Ok(())
}

extern "C" fn app_command(
    cmd: *const c_char,
    params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    // SAFETY: telemetry passes NUL-terminated strings (params may be null).
    let (cmd, params) = unsafe {
        (
            std::ffi::CStr::from_ptr(cmd).to_string_lossy().into_owned(),
            if params.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(params)
                    .to_string_lossy()
                    .into_owned()
            },
        )
    };
    let reply = {
        let commands = APP_COMMANDS.lock().unwrap_or_else(|e| e.into_inner());
        match commands.iter().find(|(name, _)| *name == cmd) {
            Some((_, handler)) => handler(&params),
            None => return -libc::ENOENT,
        }
    };
    // SAFETY: as in stats_command.
    unsafe {
        dpdk_sys::rte_tel_data_start_dict(d);
        for (i, line) in reply.lines().enumerate() {
            let name = CString::new(format!("{i}")).expect("no NUL");
            let value = CString::new(line.replace('\0', "")).expect("NULs removed");
            dpdk_sys::rte_tel_data_add_dict_string(d, name.as_ptr(), value.as_ptr());
        }
    }
    0
}
