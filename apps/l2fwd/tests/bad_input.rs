//! Bad command lines: each exits non-zero with one line that says what is wrong and how to
//! fix it, never a panic or a backtrace.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-l2fwd");

/// Runs l2fwd and returns its one error line (the last line of stderr; EAL logs may precede it).
fn error_line(args: &str) -> String {
    let out = Command::new(BIN)
        .args(args.split_whitespace())
        .env("RUST_BACKTRACE", "1")
        .env_remove("SLUICE_EAL_ARGS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args}: exited 0\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{args}:\n{stderr}"
    );
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("sluice-l2fwd: error:"))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "{args}: expected one error line in\n{stderr}"
    );
    assert_eq!(
        stderr.lines().last(),
        Some(ours[0]),
        "{args}: the error must come last"
    );
    ours[0].to_owned()
}

const EAL: &str = "-l 0 -m 128 --log-level=*:warning";

#[test]
fn unknown_port_in_the_mask() {
    let e = error_line(&format!(
        "{EAL} --vdev net_null0,no-rx=1 --vdev net_null1,no-rx=1 -- -p 0x5"
    ));
    assert!(e.contains("port 2 in portmask 0x5 does not exist"), "{e}");
    assert!(e.contains("add a --vdev or fix -p"), "{e}");
}

#[test]
fn odd_number_of_ports_without_portmap() {
    let vdevs = "--vdev net_null0,no-rx=1 --vdev net_null1,no-rx=1 --vdev net_null2,no-rx=1";
    let e = error_line(&format!("{EAL} {vdevs} -- -p 0x7"));
    assert!(
        e.contains("selects 3 ports") && e.contains("do not pair up"),
        "{e}"
    );
    assert!(e.contains("--portmap"), "{e}");
}

#[test]
fn malformed_portmap() {
    for map in ["(0,1", "(0;1)", "(0,1,2)", "0,1"] {
        let e = error_line(&format!(
            "{EAL} --vdev net_null0 --vdev net_null1 -- -p 0x3 --portmap {map}"
        ));
        assert!(
            e.contains("malformed --portmap") && e.contains("(0,1)(2,3)"),
            "{map}: {e}"
        );
    }
}

#[test]
fn bad_option_values() {
    assert!(error_line("-- -p 0x3 -q 0").contains("-q"));
    assert!(error_line("-- -p nothex").contains("hexadecimal"));
    assert!(error_line("-- -p 0x3 --frobnicate").contains("unknown option"));
    assert!(error_line(&format!("{EAL} -- -q 1")).contains("missing -p"));
}

#[test]
fn too_few_lcores_for_the_ports() {
    let e = error_line(&format!(
        "{EAL} --vdev net_null0,no-rx=1 --vdev net_null1,no-rx=1 -- -p 0x3 -q 1"
    ));
    assert!(
        e.contains("need 2 lcores") && e.contains("raise -q to 2"),
        "{e}"
    );
}

#[test]
fn not_enough_hugepages_and_no_no_huge() {
    // Far more than any test machine reserves: the EAL cannot have it.
    let e = error_line("-l 0 -m 900000 --vdev net_null0 --vdev net_null1 -- -p 0x3 -q 2");
    assert!(e.contains("not enough hugepages"), "{e}");
    assert!(e.contains("asked for 900000 MB"), "{e}");
    assert!(
        e.contains("sluice-hugepages reserve --pages") && e.contains("--no-huge"),
        "{e}"
    );
}
