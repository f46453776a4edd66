//! sluice-impair's mistakes on the command line: each is one line naming what was expected,
//! with exit status 2, before any DPDK work.

use std::process::Command;

fn mistake(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-impair"))
        .args(["-l", "0", "--no-pci", "--"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn each_mistake_is_one_line_saying_what_was_expected() {
    for (args, says) in [
        (
            &["--a-to-b", "delay 10ms jitter 2ms"][..],
            "unknown word 'jitter': expected limit, delay",
        ),
        (
            &["--a-to-b", "loss 120%"],
            "'120%' is not a percentage from 0 to 100",
        ),
        (
            &["--b-to-a", "delay 100ms rate 10gbit"],
            "limit 1000 is too small for 100ms of delay",
        ),
        (
            &["--a-to-b", "slot 2ms 1ms"],
            "the longest time comes second",
        ),
        (&["--ports", "1,1"], "the two ports must differ"),
        (&["--ports", "0"], "expected two port numbers A,B"),
        (
            &["--ports", "0,1", "--ports", "1,2"],
            "port 1 is in two --ports pairs",
        ),
    ] {
        let error = mistake(args);
        assert!(
            error.starts_with("sluice-impair: error: ") && error.contains(says),
            "{args:?}: {error}"
        );
    }
}
