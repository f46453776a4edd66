//! Hugepages as the kernel reports them (sysfs and /proc/mounts): per NUMA node and page size,
//! total, free and reserved pages; and the changes an administrator makes (reserve, release,
//! mount). The engine uses [`Status::explain_shortfall`] to say why the EAL found too little.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What `explain_shortfall` suggests reserving at least: room for the apps' default pools.
pub const DEFAULT_RESERVE_MB: u64 = 1024;

/// A hugepage size, in kibibytes as sysfs names them (`hugepages-2048kB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageSize {
    pub kib: u64,
}

impl PageSize {
    pub const SIZE_2M: PageSize = PageSize { kib: 2048 };
    pub const SIZE_1G: PageSize = PageSize { kib: 1024 * 1024 };

    pub fn bytes(self) -> u64 {
        self.kib * 1024
    }

    /// Pages of this size needed to hold `megabytes` MiB (rounded up).
    pub fn pages_for_mb(self, megabytes: u64) -> u64 {
        (megabytes * 1024).div_ceil(self.kib)
    }

    /// Parses `2M`, `2MB`, `1G`, `1GB`, `2048kB`, `2048K`.
    pub fn parse(text: &str) -> Result<PageSize, Error> {
        let lower = text.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix('b').unwrap_or(&lower);
        let (digits, unit_kib) = match lower.char_indices().last() {
            Some((i, 'k')) => (&lower[..i], 1),
            Some((i, 'm')) => (&lower[..i], 1024),
            Some((i, 'g')) => (&lower[..i], 1024 * 1024),
            _ => (lower, 0),
        };
        match (digits.parse::<u64>(), unit_kib) {
            (Ok(n), unit) if n > 0 && unit > 0 => Ok(PageSize { kib: n * unit }),
            _ => Err(Error::Usage(format!(
                "bad page size '{text}': expected a size such as 2M or 1G"
            ))),
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kib.is_multiple_of(1024 * 1024) {
            write!(f, "{}G", self.kib / (1024 * 1024))
        } else if self.kib.is_multiple_of(1024) {
            write!(f, "{}M", self.kib / 1024)
        } else {
            write!(f, "{}K", self.kib)
        }
    }
}

/// Pages of one size on one NUMA node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePages {
    pub node: u32,
    pub size: PageSize,
    pub total: u64,
    pub free: u64,
    pub surplus: u64,
}

/// Pages of one size for the whole system; `reserved` (promised to a mapping, not yet
/// faulted in) is only reported system-wide by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizePages {
    pub size: PageSize,
    pub total: u64,
    pub free: u64,
    pub reserved: u64,
    pub surplus: u64,
}

impl SizePages {
    /// Free pages that a new mapping can still take.
    pub fn available(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }
}

/// A hugetlbfs mount point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub path: PathBuf,
    pub size: Option<PageSize>,
}

/// Everything `sluice-hugepages status` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub sizes: Vec<SizePages>,
    pub nodes: Vec<NodePages>,
    pub mounts: Vec<Mount>,
}

#[derive(Debug)]
pub enum Error {
    /// The command line or request is wrong; the text says how to fix it.
    Usage(String),
    /// Changing hugepages needs root.
    NotRoot(String),
    Io {
        what: String,
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::NotRoot(m) => f.write_str(m),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Where the kernel's files are: `/` on a real system, a directory of fixtures in tests.
#[derive(Clone, Debug)]
pub struct System {
    root: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System::at("/")
    }
}

impl System {
    pub fn at(root: impl Into<PathBuf>) -> System {
        System { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Reads hugepage counts and hugetlbfs mounts. A kernel without hugetlb support gives an
    /// empty status, not an error.
    pub fn status(&self) -> Result<Status, Error> {
        let mut status = Status::default();
        for (size, dir) in size_dirs(&self.path("/sys/kernel/mm/hugepages"))? {
            status.sizes.push(SizePages {
                size,
                total: read_count(&dir.join("nr_hugepages"))?,
                free: read_count(&dir.join("free_hugepages"))?,
                reserved: read_count(&dir.join("resv_hugepages"))?,
                surplus: read_count(&dir.join("surplus_hugepages"))?,
            });
        }
        for (node, node_dir) in node_dirs(&self.path("/sys/devices/system/node"))? {
            for (size, dir) in size_dirs(&node_dir.join("hugepages"))? {
                status.nodes.push(NodePages {
                    node,
                    size,
                    total: read_count(&dir.join("nr_hugepages"))?,
                    free: read_count(&dir.join("free_hugepages"))?,
                    surplus: read_count(&dir.join("surplus_hugepages"))?,
                });
            }
        }
        let mounts = self.path("/proc/mounts");
        let text = fs::read_to_string(&mounts).map_err(io_error(mounts.display().to_string()))?;
        status.mounts = parse_mounts(&text);
        Ok(status)
    }

    /// Sets the number of `size` pages (on `node`, or system-wide) to `pages`, and returns how
    /// many the kernel actually has now: it gives fewer when memory is fragmented.
    pub fn set_pages(&self, pages: u64, size: PageSize, node: Option<u32>) -> Result<u64, Error> {
        require_root("changing hugepages")?;
        let dir = match node {
            Some(n) => self.path(&format!(
                "/sys/devices/system/node/node{n}/hugepages/hugepages-{}kB",
                size.kib
            )),
            None => self.path(&format!(
                "/sys/kernel/mm/hugepages/hugepages-{}kB",
                size.kib
            )),
        };
        if !dir.is_dir() {
            let where_ = node.map_or(String::new(), |n| format!(" on NUMA node {n}"));
            return Err(Error::Usage(format!(
                "this system has no {size} hugepages{where_}: check `sluice-hugepages status` for the sizes and nodes it has"
            )));
        }
        let file = dir.join("nr_hugepages");
        fs::write(&file, format!("{pages}\n"))
            .map_err(io_error(format!("cannot write {}", file.display())))?;
        read_count(&file)
    }

    /// Mounts hugetlbfs for `size` pages at `dir` unless one is mounted there already.
    /// Returns false when nothing had to be done.
    pub fn mount(&self, dir: &Path, size: PageSize) -> Result<bool, Error> {
        if self.status()?.mounts.iter().any(|m| m.path == dir) {
            return Ok(false);
        }
        require_root("mounting hugetlbfs")?;
        fs::create_dir_all(dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
        let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in mount arguments");
        let target = c(&dir.to_string_lossy());
        let options = c(&format!("pagesize={}", size));
        let fstype = c("hugetlbfs");
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(Error::Io {
                what: format!("cannot mount hugetlbfs on {}", dir.display()),
                source: io::Error::last_os_error(),
            });
        }
        Ok(true)
    }
}

fn require_root(what: &str) -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Error::NotRoot(format!(
            "{what} needs root: run it again with sudo (for example `sudo sluice-hugepages reserve --pages 1024`)"
        )))
    }
}

impl Status {
    /// Free pages of every size added up, in MiB.
    pub fn available_mb(&self) -> u64 {
        self.sizes
            .iter()
            .map(|s| s.available() * s.size.kib / 1024)
            .sum()
    }

    /// Why an EAL start that wanted `wanted_mb` MiB (None: whatever it needs) may have failed
    /// for want of hugepages, with the command that fixes it; None if hugepages look sufficient.
    pub fn explain_shortfall(&self, wanted_mb: Option<u64>) -> Option<String> {
        let available = self.available_mb();
        let wanted = wanted_mb.unwrap_or(1);
        let usable_mount = self.mounts.iter().any(|m| {
            m.size.is_none()
                || self
                    .sizes
                    .iter()
                    .any(|s| Some(s.size) == m.size && s.available() > 0)
        });
        if available >= wanted && usable_mount {
            return None;
        }
        let size =
            if self.sizes.iter().any(|s| s.size == PageSize::SIZE_2M) || self.sizes.is_empty() {
                PageSize::SIZE_2M
            } else {
                self.sizes[0].size
            };
        let have = if self.sizes.is_empty() {
            "this kernel reports no hugepages at all".to_owned()
        } else {
            self.sizes
                .iter()
                .map(|s| format!("{} of {} {} pages free", s.available(), s.total, s.size))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let asked = wanted_mb.map_or("hugepage memory".to_owned(), |mb| format!("{mb} MB"));
        // `reserve --pages` sets the total: keep the pages others hold and add what was asked
        // (at least DEFAULT_RESERVE_MB, enough for the apps' default pools).
        let held_by_others = self
            .sizes
            .iter()
            .find(|s| s.size == size)
            .map_or(0, |s| s.total - s.available().min(s.total));
        let needed = held_by_others + size.pages_for_mb(wanted.max(DEFAULT_RESERVE_MB));
        let mut fix = format!("sluice-hugepages reserve --pages {needed} --size {size}");
        if !usable_mount {
            fix.push_str(" && sluice-hugepages mount");
        }
        Some(format!(
            "not enough hugepages: asked for {asked}, {have} ({available} MB available); fix: `{fix}` as root, or pass --no-huge to run without hugepages"
        ))
    }
}

fn size_dirs(dir: &Path) -> Result<Vec<(PageSize, PathBuf)>, Error> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io_error(dir.display().to_string())(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(kib) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse().ok())
        {
            found.push((PageSize { kib }, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn node_dirs(dir: &Path) -> Result<Vec<(u32, PathBuf)>, Error> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io_error(dir.display().to_string())(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(n) = name
            .to_string_lossy()
            .strip_prefix("node")
            .and_then(|s| s.parse().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn read_count(path: &Path) -> Result<u64, Error> {
    let text =
        fs::read_to_string(path).map_err(io_error(format!("cannot read {}", path.display())))?;
    text.trim().parse().map_err(|_| Error::Io {
        what: format!("{} holds '{}', not a count", path.display(), text.trim()),
        source: io::Error::from(io::ErrorKind::InvalidData),
    })
}

/// hugetlbfs lines of /proc/mounts, with the page size from their `pagesize=` option.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, path, fstype, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            if fstype != "hugetlbfs" {
                return None;
            }
            let size = options
                .split(',')
                .find_map(|o| o.strip_prefix("pagesize="))
                .and_then(|s| PageSize::parse(s).ok());
            Some(Mount {
                path: PathBuf::from(unescape_mount_path(path)),
                size,
            })
        })
        .collect()
}

/// /proc/mounts writes spaces and tabs in paths as octal escapes (`\040`).
fn unescape_mount_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, value: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, value).unwrap();
    }

    /// A two-node machine with 2M and 1G pages, as sysfs lays it out.
    fn fixture(free_2m: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (size, total, free, resv) in [("2048", 1024, free_2m, 10), ("1048576", 2, 2, 0)] {
            let d = format!("sys/kernel/mm/hugepages/hugepages-{size}kB");
            write(r, &format!("{d}/nr_hugepages"), &format!("{total}\n"));
            write(r, &format!("{d}/free_hugepages"), &format!("{free}\n"));
            write(r, &format!("{d}/resv_hugepages"), &format!("{resv}\n"));
            write(r, &format!("{d}/surplus_hugepages"), "0\n");
        }
        for node in 0..2 {
            let d = format!("sys/devices/system/node/node{node}/hugepages/hugepages-2048kB");
            write(r, &format!("{d}/nr_hugepages"), "512\n");
            write(
                r,
                &format!("{d}/free_hugepages"),
                &format!("{}\n", free_2m / 2),
            );
            write(r, &format!("{d}/surplus_hugepages"), "0\n");
        }
        write(
            r,
            "proc/mounts",
            "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\nnone /mnt/huge\\0401g hugetlbfs rw,pagesize=1024M 0 0\n",
        );
        dir
    }

    #[test]
    fn page_size_parses_and_prints() {
        assert_eq!(PageSize::parse("2M").unwrap(), PageSize::SIZE_2M);
        assert_eq!(PageSize::parse("2MB").unwrap(), PageSize::SIZE_2M);
        assert_eq!(PageSize::parse("2048kB").unwrap(), PageSize::SIZE_2M);
        assert_eq!(PageSize::parse("1G").unwrap(), PageSize::SIZE_1G);
        assert_eq!(PageSize::parse("1024M").unwrap(), PageSize::SIZE_1G);
        assert!(PageSize::parse("2").is_err());
        assert!(PageSize::parse("0M").is_err());
        assert!(PageSize::parse("twoM").is_err());
        assert_eq!(PageSize::SIZE_1G.to_string(), "1G");
        assert_eq!(PageSize::SIZE_2M.to_string(), "2M");
        assert_eq!(PageSize { kib: 64 }.to_string(), "64K");
    }

    #[test]
    fn pages_for_mb_rounds_up() {
        assert_eq!(PageSize::SIZE_2M.pages_for_mb(512), 256);
        assert_eq!(PageSize::SIZE_2M.pages_for_mb(513), 257);
        assert_eq!(PageSize::SIZE_1G.pages_for_mb(1), 1);
        assert_eq!(PageSize::SIZE_1G.pages_for_mb(2048), 2);
        assert_eq!(PageSize::SIZE_2M.bytes(), 2 * 1024 * 1024);
    }

    #[test]
    fn status_reads_sizes_nodes_and_mounts() {
        let dir = fixture(600);
        let status = System::at(dir.path()).status().unwrap();
        assert_eq!(status.sizes.len(), 2);
        let two_m = &status.sizes[0];
        assert_eq!(
            (two_m.size, two_m.total, two_m.free, two_m.reserved),
            (PageSize::SIZE_2M, 1024, 600, 10)
        );
        assert_eq!(two_m.available(), 590);
        assert_eq!(status.nodes.len(), 2);
        assert_eq!(status.nodes[1].node, 1);
        assert_eq!(status.nodes[1].free, 300);
        // 590 free 2M pages and 2 free 1G pages.
        assert_eq!(status.available_mb(), 590 * 2 + 2048);
        assert_eq!(
            status.mounts,
            vec![
                Mount {
                    path: "/dev/hugepages".into(),
                    size: Some(PageSize::SIZE_2M)
                },
                Mount {
                    path: "/mnt/huge 1g".into(),
                    size: Some(PageSize::SIZE_1G)
                },
            ]
        );
    }

    #[test]
    fn missing_hugetlb_support_is_an_empty_status() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/mounts", "");
        let status = System::at(dir.path()).status().unwrap();
        assert_eq!(status, Status::default());
        let why = status.explain_shortfall(None).unwrap();
        assert!(why.contains("no hugepages at all"), "{why}");
        assert!(why.contains("--no-huge"), "{why}");
    }

    #[test]
    fn shortfall_names_what_is_free_what_was_asked_and_the_fix() {
        let dir = fixture(10);
        let status = System::at(dir.path()).status().unwrap();
        // 0 free 2M pages (10 free, 10 reserved) + 2 free 1G pages = 2048 MB.
        assert_eq!(status.explain_shortfall(Some(1024)), None);
        let why = status.explain_shortfall(Some(4096)).unwrap();
        assert!(why.contains("asked for 4096 MB"), "{why}");
        assert!(why.contains("0 of 1024 2M pages free"), "{why}");
        // 1024 pages held by others plus 4096 MB of 2M pages.
        assert!(why.contains("reserve --pages 3072 --size 2M"), "{why}");
    }

    #[test]
    fn shortfall_without_a_mount_says_to_mount() {
        let dir = fixture(600);
        write(dir.path(), "proc/mounts", "sysfs /sys sysfs rw 0 0\n");
        let why = System::at(dir.path())
            .status()
            .unwrap()
            .explain_shortfall(Some(64))
            .unwrap();
        assert!(why.contains("sluice-hugepages mount"), "{why}");
    }
}
