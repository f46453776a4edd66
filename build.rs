//! Generates the DPDK bindings against the DPDK installed on this machine and compiles the
//! C shim with DPDK's own cflags. Nothing is hard-coded: pkg-config says where DPDK is.

use std::env;
use std::path::PathBuf;
use std::process::exit;

const INSTALL_HINT: &str =
    "install the packages with `apt-get install libdpdk-dev pkg-config clang libclang-dev`, or run scripts/setup.sh";

/// One clear line instead of a build-script backtrace.
fn fail(what: &str) -> ! {
    eprintln!("error: {what}; {INSTALL_HINT}");
    exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=dpdk-sys-wrap/wrapper.h");
    println!("cargo:rerun-if-changed=dpdk-sys-wrap/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(_) => {}
        Err(e) => fail(&format!(
            "DPDK (pkg-config package libdpdk, 22.11 or newer) was not found: {}",
            e.to_string()
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no detail")
        )),
    };

    // DPDK's cflags carry more than include paths (`-include rte_config.h`, `-march=...`);
    // both clang (bindgen) and cc must see the same ones, or struct layouts may differ.
    let cflags = dpdk_cflags();

    let mut shim = cc::Build::new();
    // The interrupt-handle setters the shim uses are still experimental in 22.11.
    shim.file("dpdk-sys-wrap/shim.c")
        .opt_level(3)
        .define("ALLOW_EXPERIMENTAL_API", None);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("sluice_shim");

    if !libclang_available() {
        fail("libclang (needed by bindgen to read DPDK's headers) was not found");
    }
    let bindings = bindgen::Builder::default()
        .header("dpdk-sys-wrap/wrapper.h")
        .clang_args(&cflags)
        .allowlist_function("rte_.*|sluice_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|RING_F_.*|SOCKET_ID_ANY|rte_eth_fp_ops")
        // Packed structs with aligned members that rustc rejects (E0588): keep them opaque.
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_.*")
        .opaque_type("rte_flow_item_l2tpv2.*")
        .opaque_type("rte_flow_item_gtp.*")
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .generate_comments(false)
        .layout_tests(true)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen could not read DPDK's headers: {e}")));

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}

/// `pkg-config --cflags libdpdk`: the crate's `Library` keeps only include paths and defines.
fn dpdk_cflags() -> Vec<String> {
    let output = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|_| fail("pkg-config could not be run"));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// bindgen panics deep inside clang-sys when libclang is missing; ask first.
fn libclang_available() -> bool {
    std::panic::catch_unwind(bindgen::clang_version).is_ok()
}
