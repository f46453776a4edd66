//! `sluice-hugepages`: see, reserve, release and mount hugepages.

use hugepages::{Error, PageSize, Status, System};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: sluice-hugepages <command> [options]

commands:
  status                                  pages per NUMA node and size (total, free, reserved),
                                          and the hugetlbfs mounts
  reserve --pages N [--size 2M|1G] [--node K]
                                          set the number of hugepages (system-wide, or on node K)
                                          to N; prints what the kernel actually gave
  release [--size 2M|1G] [--node K]       give hugepages back (sets the count to 0)
  mount [--dir PATH] [--size 2M|1G]       mount hugetlbfs at PATH (default /dev/hugepages)
                                          unless it is mounted there already

reserve, release and mount change the system and need root.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-hugepages: error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    pages: Option<u64>,
    size: PageSize,
    node: Option<u32>,
    dir: PathBuf,
}

fn parse_options(args: &[String]) -> Result<Options, Error> {
    let mut opts = Options {
        pages: None,
        size: PageSize::SIZE_2M,
        node: None,
        dir: PathBuf::from("/dev/hugepages"),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{flag} needs a value ({what}); see --help")))
        };
        match flag.as_str() {
            "--pages" | "-n" => {
                let v = value("a page count")?;
                opts.pages = Some(v.parse().map_err(|_| {
                    Error::Usage(format!("--pages takes a whole number of pages, not '{v}'"))
                })?);
            }
            "--size" | "-s" => opts.size = PageSize::parse(&value("2M or 1G")?)?,
            "--node" => {
                let v = value("a NUMA node number")?;
                opts.node = Some(v.parse().map_err(|_| {
                    Error::Usage(format!("--node takes a NUMA node number, not '{v}'"))
                })?);
            }
            "--dir" => opts.dir = PathBuf::from(value("a directory")?),
            other => {
                return Err(Error::Usage(format!(
                    "unknown option '{other}'; see sluice-hugepages --help"
                )))
            }
        }
    }
    Ok(opts)
}

fn run(args: &[String]) -> Result<(), Error> {
    let system = System::default();
    let Some(command) = args.first() else {
        print_status(&system.status()?);
        return Ok(());
    };
    if command == "--help" || command == "-h" || command == "help" {
        println!("{USAGE}");
        return Ok(());
    }
    let opts = parse_options(&args[1..])?;
    match command.as_str() {
        "status" => print_status(&system.status()?),
        "reserve" => {
            let pages = opts.pages.ok_or_else(|| {
                Error::Usage("reserve needs --pages N (for example `reserve --pages 1024`)".into())
            })?;
            let got = system.set_pages(pages, opts.size, opts.node)?;
            let where_ = opts
                .node
                .map_or("system-wide".to_owned(), |n| format!("on node {n}"));
            println!(
                "{} pages reserved {where_}: {got} (asked {pages})",
                opts.size
            );
            if got < pages {
                return Err(Error::Usage(format!(
                    "the kernel gave only {got} of {pages} {} pages: memory is fragmented or short; try fewer pages, or reserve at boot (hugepages= on the kernel command line)",
                    opts.size
                )));
            }
        }
        "release" => {
            system.set_pages(0, opts.size, opts.node)?;
            println!("{} pages released", opts.size);
        }
        "mount" => {
            if system.mount(&opts.dir, opts.size)? {
                println!(
                    "mounted hugetlbfs ({}) on {}",
                    opts.size,
                    opts.dir.display()
                );
            } else {
                println!("hugetlbfs is already mounted on {}", opts.dir.display());
            }
        }
        other => {
            return Err(Error::Usage(format!(
                "unknown command '{other}': expected status, reserve, release or mount (see --help)"
            )))
        }
    }
    Ok(())
}

fn print_status(status: &Status) {
    if status.sizes.is_empty() {
        println!("this kernel reports no hugepages (no /sys/kernel/mm/hugepages)");
    }
    println!(
        "{:<8} {:>6} {:>8} {:>8} {:>9} {:>8}",
        "node", "size", "total", "free", "reserved", "surplus"
    );
    for n in &status.nodes {
        println!(
            "{:<8} {:>6} {:>8} {:>8} {:>9} {:>8}",
            n.node,
            n.size.to_string(),
            n.total,
            n.free,
            "-",
            n.surplus
        );
    }
    for s in &status.sizes {
        println!(
            "{:<8} {:>6} {:>8} {:>8} {:>9} {:>8}",
            "all",
            s.size.to_string(),
            s.total,
            s.free,
            s.reserved,
            s.surplus
        );
    }
    println!("available to new mappings: {} MB", status.available_mb());
    if status.mounts.is_empty() {
        println!("hugetlbfs mounts: none (run `sluice-hugepages mount` as root)");
    }
    for m in &status.mounts {
        let size = m.size.map_or("default size".to_owned(), |s| s.to_string());
        println!("hugetlbfs mount: {} ({size})", m.path.display());
    }
}
