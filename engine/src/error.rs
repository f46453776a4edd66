//! The engine's errors: each says what went wrong and, where there is one, the fix.

use std::ffi::CStr;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The EAL was already started in this process (it can start only once).
    EalAlreadyStarted,
    /// Too few hugepages for what was asked; the text says what is free and how to reserve more.
    Hugepages(String),
    /// A request the engine or device cannot satisfy; the text names the fix.
    Config(String),
    /// A DPDK call failed with `errno` (a positive errno or rte_errno value).
    Dpdk { what: String, errno: i32 },
}

impl Error {
    /// A DPDK call failed with a negative errno return (the ethdev convention).
    pub(crate) fn from_ret(what: impl Into<String>, ret: i32) -> Error {
        Error::Dpdk {
            what: what.into(),
            errno: ret.abs(),
        }
    }

    /// A DPDK call failed and left its reason in rte_errno.
    pub(crate) fn from_rte_errno(what: impl Into<String>) -> Error {
        Error::Dpdk {
            what: what.into(),
            // SAFETY: reads this thread's rte_errno; no preconditions.
            errno: unsafe { dpdk_sys::sluice_errno() },
        }
    }
}

/// DPDK's text for an errno, covering its own codes (E_RTE_*) as well as the system's.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EalAlreadyStarted => f.write_str(
                "the DPDK EAL is already started in this process and can start only once; run each DPDK test in its own process (cargo nextest does)",
            ),
            Error::Hugepages(text) | Error::Config(text) => f.write_str(text),
            Error::Dpdk { what, errno } => write!(f, "{what}: {} (errno {errno})", strerror(*errno)),
        }
    }
}

impl std::error::Error for Error {}
