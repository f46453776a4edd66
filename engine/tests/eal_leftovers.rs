//! A primary process that chose its own --file-prefix, without --huge-unlink (as for
//! dpdk-dumpcap, which attaches to it), leaves nothing behind at a clean exit: DPDK keeps its
//! hugepage files and its runtime directory for secondaries; the engine removes them once the
//! EAL is cleaned up.

use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::{EalBuilder, Mempool};
use std::path::Path;

fn hugepage_files(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/hugepages")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{prefix}map_")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_primary_with_its_own_prefix_leaves_no_files() {
    if std::env::var(sluice::eal::EXTRA_ARGS_ENV).is_ok_and(|a| a.contains("--no-huge")) {
        eprintln!("skipped: no hugepages on this machine, so no hugepage files to leave");
        return;
    }
    let prefix = format!("sluice-leftovers-{}", std::process::id());
    let runtime_dir = Path::new("/var/run/dpdk").join(&prefix);
    let eal = EalBuilder::new("sluice-test")
        .lcores("0")
        .memory_mb(64)
        .args([
            format!("--file-prefix={prefix}"),
            "--log-level=*:warning".into(),
        ])
        .start()
        .unwrap_or_else(|e| panic!("EAL: {e}"));
    let pool = Mempool::pktmbuf(
        &eal,
        "leftovers",
        1023,
        DEFAULT_CACHE,
        DEFAULT_DATA_ROOM,
        None,
    )
    .unwrap();
    assert!(eal.multi_process());
    assert!(
        !hugepage_files(&prefix).is_empty(),
        "DPDK keeps hugepage files"
    );
    assert!(runtime_dir.is_dir(), "and a runtime directory");
    drop(pool);
    drop(eal);
    assert_eq!(hugepage_files(&prefix), Vec::<String>::new());
    assert!(!runtime_dir.exists(), "{} is left", runtime_dir.display());
}
