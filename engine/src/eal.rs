//! The EAL: DPDK's runtime, started once per process.
//!
//! [`EalBuilder`] keeps the project's rules whatever the user passes: `--no-pci` unless a PCI
//! device is named (a test never touches the machine's NIC), and `--in-memory` with a
//! per-process `--file-prefix` unless the user chose their own. Before starting it checks
//! hugepages, and when they are short it says what is free, what was asked and the command
//! that fixes it.
//!
//! A primary process that keeps runtime files (a `--file-prefix` of the user's, for memif or
//! dpdk-dumpcap) leaves nothing behind at a clean exit: after `rte_eal_cleanup` it removes its
//! hugepage files (`PREFIXmap_*`, which DPDK keeps for secondaries unless `--huge-unlink`) and
//! its runtime directory (`/var/run/dpdk/PREFIX`, which DPDK never removes).

use crate::error::Error;
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static STARTED: AtomicBool = AtomicBool::new(false);

/// Extra EAL arguments for every Sluice process, from the environment: scripts/setup.sh
/// sets `--no-huge` here on machines where it could not reserve hugepages.
pub const EXTRA_ARGS_ENV: &str = "SLUICE_EAL_ARGS";

/// Options that name PCI devices: with any of them the user wants the PCI bus scanned.
const PCI_OPTIONS: &[&str] = &[
    "-a",
    "--allow",
    "-b",
    "--block",
    "-w",
    "--pci-whitelist",
    "--pci-blacklist",
];
/// Options that choose how DPDK keeps its runtime files; with any of them we add nothing.
const RUNTIME_FILE_OPTIONS: &[&str] = &["--in-memory", "--file-prefix", "--proc-type"];

/// Builds the EAL's argument list; see the module documentation for what it adds.
#[derive(Clone, Debug)]
pub struct EalBuilder {
    args: Vec<String>,
}

impl EalBuilder {
    /// `program` becomes argv[0], the name DPDK logs under.
    pub fn new(program: &str) -> EalBuilder {
        EalBuilder {
            args: vec![program.to_owned()],
        }
    }

    /// Adds EAL arguments as the user wrote them (the part of a command line before `--`).
    pub fn args<I, S>(mut self, args: I) -> EalBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn arg(self, arg: impl Into<String>) -> EalBuilder {
        self.args([arg.into()])
    }

    /// A virtual device, e.g. `net_ring0` or `net_pcap0,rx_pcap=in.pcap`.
    pub fn vdev(self, spec: impl Into<String>) -> EalBuilder {
        self.args(["--vdev".to_owned(), spec.into()])
    }

    /// The lcores to run on, in the EAL's `-l` syntax (`0`, `0-3`, `1,3`).
    pub fn lcores(self, list: &str) -> EalBuilder {
        self.args(["-l", list])
    }

    /// Hugepage memory to preallocate, in MiB (`-m`).
    pub fn memory_mb(self, mb: u32) -> EalBuilder {
        self.args(["-m".to_owned(), mb.to_string()])
    }

    /// The arguments `start` passes to `rte_eal_init`, rules applied.
    pub fn effective_args(&self) -> Vec<String> {
        apply_rules(&self.args, std::env::var(EXTRA_ARGS_ENV).ok().as_deref())
    }
    /// Starts the EAL. Fails with [`Error::EalAlreadyStarted`] on a second start in the same
    /// process, and with [`Error::Hugepages`] when hugepages are short.
    pub fn start(self) -> Result<Eal, Error> {
        let args = self.effective_args();
        let no_huge = args.iter().any(|a| a == "--no-huge");
        let wanted_mb = requested_memory_mb(&args);
        if !no_huge {
            if let Some(why) = hugepage_shortfall(wanted_mb) {
                return Err(Error::Hugepages(why));
            }
        }
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(Error::EalAlreadyStarted);
        }
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| {
                CString::new(a.as_str())
                    .map_err(|_| Error::Config(format!("EAL argument {a:?} contains a NUL byte")))
            })
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let mark = crate::clock::Mark::now();
        // SAFETY: argv is a NULL-terminated array of valid C strings that outlive the call
        // (rte_eal_init may reorder the pointers, never the strings).
        let ret = unsafe { dpdk_sys::rte_eal_init(cargs.len() as i32, argv.as_mut_ptr()) };
        if ret < 0 {
            let err = Error::from_rte_errno("the DPDK EAL did not start");
            if !no_huge {
                if let Some(why) = hugepage_shortfall(wanted_mb) {
                    return Err(Error::Hugepages(why));
                }
            }
            return Err(match err {
                Error::Dpdk { errno, .. } => Error::Config(format!(
                    "the DPDK EAL did not start ({}; its log above says which argument or resource); EAL arguments were: {}",
                    crate::error::strerror(errno),
                    args[1..].join(" ")
                )),
                other => other,
            });
        }
        // The TSC's rate, over the EAL's start (which takes 100 ms or more).
        mark.measure();
        // dpdk-dumpcap captures through pdump, which needs the multi-process channel that
        // --in-memory does without; so pdump is there for processes given a --file-prefix.
        let multi_process = !args.iter().any(|a| a == "--in-memory");
        if multi_process {
            // SAFETY: the EAL is started; pdump registers its multi-process handler.
            unsafe { dpdk_sys::rte_pdump_init() };
        }
        // SAFETY: the EAL is started.
        let primary = unsafe { dpdk_sys::rte_eal_process_type() } == dpdk_sys::RTE_PROC_PRIMARY;
        let leftovers = primary.then(|| {
            // SAFETY: the EAL is started; the result is a NUL-terminated path it owns.
            let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
            Leftovers {
                runtime_dir: PathBuf::from(dir.to_string_lossy().into_owned()),
                hugepage_files: (multi_process && !no_huge).then(|| HugepageFiles::of(&args)),
            }
        });
        Ok(Eal {
            _guard: Arc::new(EalInner {
                leftovers,
                pdump: multi_process,
            }),
            multi_process,
        })
    }
}

/// The project's rules applied to `user` arguments plus `extra` (whitespace-separated).
fn apply_rules(user: &[String], extra: Option<&str>) -> Vec<String> {
    let mut args = user.to_vec();
    args.extend(extra.unwrap_or("").split_whitespace().map(str::to_owned));
    let names = |set: &[&str]| {
        args.iter().any(|a| {
            set.iter()
                .any(|o| a == o || (o.starts_with("--") && a.starts_with(&format!("{o}="))))
        })
    };
    let add_no_pci = !names(PCI_OPTIONS) && !names(&["--no-pci"]);
    let add_runtime_files = !names(RUNTIME_FILE_OPTIONS);
    // --no-huge means legacy memory, which the EAL refuses with --in-memory; it creates no
    // hugepage files, so a private prefix is all it needs.
    let add_in_memory = add_runtime_files && !names(&["--no-huge"]);
    if add_no_pci {
        args.push("--no-pci".into());
    }
    if add_in_memory {
        args.push("--in-memory".into());
    }
    if add_runtime_files {
        args.push(format!("--file-prefix={}", own_file_prefix()));
    }
    args
}

/// The runtime-file prefix Sluice picks when the user picks none: unique per process, so
/// processes never share (or fight over) a runtime directory or telemetry socket.
fn own_file_prefix() -> String {
    format!("sluice-{}", std::process::id())
}

/// Memory the arguments ask for, in MiB: `-m N` or the sum of `--socket-mem a,b`.
fn requested_memory_mb(args: &[String]) -> Option<u64> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "-m" | "--socket-mem" => it.next().map(String::as_str),
            other => other
                .strip_prefix("--socket-mem=")
                .or_else(|| other.strip_prefix("-m").filter(|v| !v.is_empty())),
        };
        if let Some(v) = value {
            return v
                .split(',')
                .map(|part| part.trim().parse::<u64>().ok())
                .sum::<Option<u64>>();
        }
    }
    None
}

fn hugepage_shortfall(wanted_mb: Option<u64>) -> Option<String> {
    let status = hugepages::System::default().status().ok()?;
    status.explain_shortfall(wanted_mb)
}

/// The files a primary process's EAL leaves behind after `rte_eal_cleanup`.
struct Leftovers {
    /// `/var/run/dpdk/PREFIX` (config, fbarrays, sockets), or the per-process one of
    /// `--in-memory`, with its telemetry socket.
    runtime_dir: PathBuf,
    /// Without `--in-memory` or `--no-huge`: the hugepage files, which stay unless
    /// `--huge-unlink` removed them at start.
    hugepage_files: Option<HugepageFiles>,
}

/// Where DPDK keeps a prefix's hugepage files: `DIR/PREFIXmap_N` (or `_S_N`) in every
/// hugetlbfs mount, or in `--huge-dir`.
#[derive(Debug, PartialEq, Eq)]
struct HugepageFiles {
    prefix: String,
    dirs: Vec<PathBuf>,
}

impl HugepageFiles {
    /// From the EAL arguments: `--file-prefix` (default `rte`) and `--huge-dir`.
    fn of(args: &[String]) -> HugepageFiles {
        let prefix = option_value(args, "--file-prefix")
            .unwrap_or("rte")
            .to_owned();
        let dirs = match option_value(args, "--huge-dir") {
            Some(dir) => vec![PathBuf::from(dir)],
            None => hugetlbfs_mounts(),
        };
        HugepageFiles { prefix, dirs }
    }

    /// Whether DPDK named `name` for this prefix: the prefix, `map_`, then digits and `_`.
    fn names(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("map_"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
    }

    fn remove(&self) {
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_str().is_some_and(|n| self.names(n)) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The value of EAL option `name`, as `name VALUE` or `name=VALUE` (the last one given).
fn option_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            found = it.next().map(String::as_str);
        } else if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            found = Some(v);
        }
    }
    found
}

/// The mount points of hugetlbfs, where DPDK puts hugepage files by default.
fn hugetlbfs_mounts() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, dir, kind) = (fields.next(), fields.next()?, fields.next()?);
            (kind == "hugetlbfs").then(|| PathBuf::from(dir))
        })
        .collect()
}

struct EalInner {
    /// What to remove after cleanup (a primary process's files).
    leftovers: Option<Leftovers>,
    /// rte_pdump_init ran (multi-process mode), so cleanup must undo it.
    pdump: bool,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        if self.pdump {
            // SAFETY: rte_pdump_init ran at start, and the EAL (whose memory pdump uses) is
            // still up; nothing captures once the ports are gone.
            unsafe { dpdk_sys::rte_pdump_uninit() };
        }
        // SAFETY: the EAL is up; the barrier waits for its interrupt thread (see the shim for
        // why: a memif server port's stale interrupt source, read after cleanup, crashed it).
        unsafe { dpdk_sys::sluice_interrupt_thread_barrier(1000) };
        // SAFETY: the last handle is gone, so no pool, port or queue of this EAL is left
        // (each holds a handle); rte_eal_cleanup releases hugepages and runtime files.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
        if let Some(leftovers) = &self.leftovers {
            // A primary owns its prefix: once it is gone, nothing under the prefix is in use
            // (secondaries that were attached keep their mappings of unlinked files).
            if let Some(files) = &leftovers.hugepage_files {
                files.remove();
            }
            let _ = std::fs::remove_dir_all(&leftovers.runtime_dir);
        }
    }
}

/// A handle on the started EAL. Pools and ports hold one, so the EAL is cleaned up only when
/// the last of them is gone.
#[derive(Clone)]
pub struct Eal {
    _guard: Arc<EalInner>,
    multi_process: bool,
}

impl Eal {
    /// Whether other processes can attach (no --in-memory): then dpdk-dumpcap can capture
    /// from this one, and dpdk-proc-info can read it.
    pub fn multi_process(&self) -> bool {
        self.multi_process
    }

    /// Where the EAL keeps its runtime files (`/var/run/dpdk/PREFIX` for root), removed when
    /// the last handle goes.
    pub fn runtime_dir(&self) -> PathBuf {
        // SAFETY: the EAL is started; the result is a NUL-terminated path it owns.
        let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
        PathBuf::from(dir.to_string_lossy().into_owned())
    }

    /// The main lcore: the thread that started the EAL.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: the EAL is started.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// Every enabled lcore, main first, in the EAL's order.
    pub fn lcores(&self) -> Vec<u32> {
        let mut lcores = vec![self.main_lcore()];
        let mut id = u32::MAX;
        loop {
            // SAFETY: the EAL is started; with skip_main=1, wrap=0 this walks the workers.
            id = unsafe { dpdk_sys::rte_get_next_lcore(id, 1, 0) };
            if id >= dpdk_sys::RTE_MAX_LCORE {
                return lcores;
            }
            lcores.push(id);
        }
    }

    /// The CPU an lcore runs on.
    pub fn lcore_cpu(&self, lcore: u32) -> u32 {
        // SAFETY: the EAL is started.
        unsafe { dpdk_sys::rte_lcore_to_cpu_id(lcore as i32) as u32 }
    }

    /// The NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: the EAL is started; out-of-range ids return SOCKET_ID_ANY's cast.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// TSC ticks per second, as measured while the EAL started ([`crate::clock::tsc_hz`]).
    pub fn tsc_hz(&self) -> u64 {
        crate::clock::tsc_hz()
    }

    /// The ids of every Ethernet port the EAL found (virtual devices included).
    pub fn port_ids(&self) -> Vec<u16> {
        let mut ids = Vec::new();
        let mut next = 0u64;
        loop {
            // SAFETY: the EAL is started; this is RTE_ETH_FOREACH_DEV (ports with no owner),
            // which returns RTE_MAX_ETHPORTS past the last port.
            next = unsafe { dpdk_sys::rte_eth_find_next_owned_by(next as u16, 0) };
            if next >= u64::from(dpdk_sys::RTE_MAX_ETHPORTS) {
                return ids;
            }
            ids.push(next as u16);
            next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effective(args: &[&str]) -> Vec<String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        apply_rules(&args, None)
    }

    #[test]
    fn extra_arguments_from_the_environment_are_appended() {
        let args = apply_rules(&["t".to_owned()], Some(" --no-huge  -m 64 "));
        assert_eq!(&args[1..4], ["--no-huge", "-m", "64"]);
    }

    #[test]
    fn adds_no_pci_and_in_memory_by_default() {
        let args = effective(&["-l", "0"]);
        assert!(args.contains(&"--no-pci".to_owned()));
        assert!(args.contains(&"--in-memory".to_owned()));
        assert!(args.iter().any(|a| a.starts_with("--file-prefix=sluice-")));
    }

    #[test]
    fn no_huge_gets_a_private_prefix_but_not_in_memory() {
        let args = effective(&["--no-huge"]);
        assert!(!args.contains(&"--in-memory".to_owned()));
        assert!(args.iter().any(|a| a.starts_with("--file-prefix=sluice-")));
        let args = apply_rules(&["t".to_owned()], Some("--no-huge"));
        assert!(!args.contains(&"--in-memory".to_owned()));
    }

    #[test]
    fn named_pci_devices_keep_the_pci_bus() {
        for named in [
            &["-a", "0000:01:00.0"][..],
            &["--allow=0000:01:00.0"],
            &["-b", "0000:00:03.0"],
        ] {
            let args = effective(named);
            assert!(!args.contains(&"--no-pci".to_owned()), "{named:?}");
        }
    }

    #[test]
    fn user_runtime_file_choice_is_kept() {
        let args = effective(&["--file-prefix", "memif1", "--huge-unlink"]);
        assert!(!args.contains(&"--in-memory".to_owned()));
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--file-prefix"))
                .count(),
            1
        );
        let args = effective(&["--in-memory"]);
        assert_eq!(args.iter().filter(|a| *a == "--in-memory").count(), 1);
    }

    #[test]
    fn hugepage_files_are_those_dpdk_names_for_the_prefix() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let files = HugepageFiles::of(&s(&["--file-prefix", "gen", "--huge-dir=/mnt/huge"]));
        assert_eq!(files.prefix, "gen");
        assert_eq!(files.dirs, [PathBuf::from("/mnt/huge")]);
        assert!(files.names("genmap_0") && files.names("genmap_12") && files.names("genmap_0_3"));
        assert!(!files.names("gen-2map_0") && !files.names("genmap_") && !files.names("other"));
        assert_eq!(HugepageFiles::of(&s(&["-l", "0"])).prefix, "rte");
        assert_eq!(
            option_value(
                &s(&["--file-prefix=a", "--file-prefix", "b"]),
                "--file-prefix"
            ),
            Some("b")
        );
    }

    #[test]
    fn requested_memory_is_read_from_m_and_socket_mem() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(requested_memory_mb(&s(&["-m", "128"])), Some(128));
        assert_eq!(requested_memory_mb(&s(&["-m256"])), Some(256));
        assert_eq!(
            requested_memory_mb(&s(&["--socket-mem", "64,64"])),
            Some(128)
        );
        assert_eq!(requested_memory_mb(&s(&["--socket-mem=512"])), Some(512));
        assert_eq!(requested_memory_mb(&s(&["-l", "0"])), None);
    }
}
