//! sluice-hugepages as a user runs it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-hugepages");

#[test]
fn status_prints_sizes_and_mounts() {
    let out = Command::new(BIN).arg("status").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("available to new mappings:"), "{text}");
    assert!(text.contains("hugetlbfs"), "{text}");
}

#[test]
fn reserve_without_root_says_to_use_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // As root, drop to nobody for this one command; otherwise we are already unprivileged.
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let out = cmd.args(["reserve", "--pages", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_are_one_line() {
    for args in [
        &["reserve"][..],
        &["reserve", "--pages", "x"],
        &["reserve", "--pages", "1", "--size", "3Q"],
        &["frob"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("sluice-hugepages: error:"), "{stderr}");
    }
}
