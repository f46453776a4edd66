//! Helpers for the engine's DPDK tests. Each test starts the EAL, so each runs in its own
//! process: cargo nextest does that (scripts/test.sh uses it).

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use sluice::{Eal, EalBuilder};

/// Starts the EAL with the test rules: one lcore, a small memory budget, no PCI (added by
/// the builder), in-memory runtime files, and the given virtual devices.
pub fn start_eal(vdevs: &[&str]) -> Eal {
    start_eal_on("0", vdevs)
}

/// As [`start_eal`], on the lcores given in `-l` syntax.
pub fn start_eal_on(lcores: &str, vdevs: &[&str]) -> Eal {
    let mut builder = EalBuilder::new("sluice-test")
        .lcores(lcores)
        .memory_mb(64)
        .arg("--log-level=*:warning");
    for vdev in vdevs {
        builder = builder.vdev(*vdev);
    }
    builder.start().unwrap_or_else(|e| panic!("EAL: {e}"))
}
