//! pktgen measures sluice-impair: pktgen (the memif server, lcore 0) sends through
//! sluice-impair (lcore 1) from its port 0 to its port 1, and what pktgen measures agrees with
//! what sluice-impair was asked and counted. Tolerances are stated where a figure is
//! statistical; counts are exact whenever nothing but the impairment dropped a packet (a full
//! TX queue, on a machine busy elsewhere, may drop a few: then the bounds say how far).

mod common;

use common::memif::*;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Packets a run must at least carry for its counts to be worth checking.
const ENOUGH: u64 = 50_000;

/// One run through sluice-impair: pktgen's output and JSON, and sluice-impair's account.
struct Impaired {
    out: String,
    account: String,
    json: Value,
}

impl Impaired {
    /// A figure of sluice-impair's final account (0 if it has none).
    fn count(&self, name: &str) -> u64 {
        final_figure(&self.account, name)
    }

    /// What pktgen's one stream measured.
    fn stream(&self, field: &str) -> u64 {
        self.json["streams"][0][field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field} in pktgen's JSON:\n{}", self.out))
    }

    fn tx(&self) -> u64 {
        let tx = self.stream("tx_packets");
        assert!(tx > ENOUGH, "sent only {tx}:\n{}", self.out);
        tx
    }

    fn total(&self, field: &str) -> u64 {
        self.json["total"][field].as_u64().unwrap()
    }

    fn latency_us(&self, at: &str) -> f64 {
        self.json["total"]["latency_us"][at].as_f64().unwrap()
    }

    /// Drops for reasons other than the impairment's own (a full TX queue).
    fn other_drops(&self) -> u64 {
        drops_by_reason(&self.account)
            .iter()
            .filter(|(reason, _)| !reason.starts_with("impair_"))
            .map(|(_, n)| n)
            .sum()
    }

    fn show(&self) -> String {
        format!("{}\n{}", self.out, self.account)
    }
}

/// Runs pktgen (`pktgen` options) through sluice-impair with `netem` from A to B, with a
/// control socket at `control` if given; `during` runs beside them.
fn impaired(
    tag: &str,
    netem: &str,
    pktgen: &[&str],
    control: Option<&Path>,
    during: impl FnOnce() + Send,
) -> Impaired {
    let dir = tempfile::tempdir().unwrap();
    let (s0, s1) = (dir.path().join("i0.sock"), dir.path().join("i1.sock"));
    let (ours, theirs) = (format!("impair-{tag}"), format!("pktgen-{tag}"));
    let _dirs = [runtime_dir(&ours), runtime_dir(&theirs)];
    let mut impair_args = memif_eal(1, &ours, "client", &[&s0, &s1]);
    impair_args[3] = "512".into(); // -m: room for what the limits hold
    impair_args.extend(strings(&["--", "--a-to-b", netem]));
    if let Some(path) = control {
        impair_args.extend(["--control".into(), path.display().to_string()]);
    }
    let json_path = dir.path().join("run.json");
    let mut args = memif_eal(0, &theirs, "server", &[&s0, &s1]);
    args.extend(strings(&[
        "--",
        "--tx-port",
        "0",
        "--rx-port",
        "1",
        "--size",
        "64",
    ]));
    args.extend(strings(pktgen));
    args.extend(["--json".into(), json_path.display().to_string()]);
    let (out, account) = std::thread::scope(|scope| {
        scope.spawn(during);
        let (out, impair) = with_client(&args, 2, || {
            spawn(&workspace_bin("sluice-impair"), &impair_args, &[])
        });
        (out, impair.stop())
    });
    assert!(account.contains("mbufs in use: 0"), "{account}");
    Impaired {
        json: json(&json_path),
        out,
        account,
    }
}

fn nothing() {}

/// Why a run failed its check, and whether it shows a pause of the machine that could
/// explain it.
struct Failure {
    why: String,
    paused: bool,
}

/// Runs `check` until it passes, up to three times: a failure without a pause fails at once,
/// and three paused runs in a row fail too. For checks that a pause of either process on a
/// shared machine (100 ms was seen in CI) can spoil, judged on runs that show none.
fn unless_paused(check: impl Fn() -> Result<(), Failure>) {
    let mut paused = Vec::new();
    while let Err(failure) = check() {
        assert!(failure.paused, "{}", failure.why);
        println!("paused, running again");
        paused.push(failure.why);
        assert!(
            paused.len() < 3,
            "three runs in a row paused:\n{}",
            paused.join("\n")
        );
    }
}

/// Random loss of 1% over 5 million packets measures 1% within 0.05 percentage points (the
/// model's own spread over 5M packets is 0.0045 points: the tolerance is for the accounting,
/// which must be exact).
#[test]
fn random_loss_of_one_percent_over_five_million_packets_measures_one_percent() {
    let run = impaired(
        "loss",
        "loss random 1% seed 11",
        &["--rate", "2mpps", "--count", "5000000"],
        None,
        nothing,
    );
    let (tx, lost) = (run.tx(), run.stream("lost"));
    assert_eq!(tx, 5_000_000, "{}", run.show());
    let others = run.other_drops();
    assert_eq!(lost, run.count("impair_loss") + others, "{}", run.show());
    let share = (lost - others) as f64 / tx as f64;
    println!("loss measured by pktgen: {:.4}% of {tx}", share * 100.0);
    assert!((share - 0.01).abs() < 0.0005, "{}", run.show());
}

/// Gilbert-Elliott with every packet lost in the bad state and none in the good: pktgen sees
/// runs of loss 1/r = 4 packets long on average, and p/(p+r) = 3.85% of packets lost (1M
/// packets: about 9,600 runs; the mean's standard error is 0.035, the share's 0.06 points).
#[test]
fn gilbert_elliott_loss_comes_in_the_bursts_its_parameters_imply() {
    let run = impaired(
        "gemodel",
        "loss gemodel 1% 25% 100% 0% seed 3",
        &["--rate", "1mpps", "--count", "1000000"],
        None,
        nothing,
    );
    let (tx, lost, runs) = (run.tx(), run.stream("lost"), run.stream("gaps"));
    assert_eq!(
        lost,
        run.count("impair_loss") + run.other_drops(),
        "{}",
        run.show()
    );
    let mean = lost as f64 / runs as f64;
    let share = lost as f64 / tx as f64;
    println!(
        "{runs} runs of loss, {mean:.2} packets each; {:.3}% lost",
        share * 100.0
    );
    assert!((mean - 4.0).abs() < 0.25, "{}", run.show());
    assert!((share - 0.01 / 0.26).abs() < 0.003, "{}", run.show());
}

/// 1 ms of delay with 100 us of normal jitter: the latency pktgen measures is the path's own
/// (measured first, with no impairment) plus the model's. Its median is 1 ms more, within 2%,
/// and each half of its spread, p50 - p10 and p90 - p50, the model's 1.2816 x 100 = 128.2 us
/// within 5%. A shared machine's pauses only ever add latency: they lift the upper quantiles
/// (p90 - p50 came out 2 to 16 us wide of the model on a machine whose cores pause 2% to 5%
/// of the time, p50 - p10 0 to 3.4), so the upper half is bounded from below only.
/// A packet that was overtaken also leaves a few microseconds late (2 to 5 at this delay).
/// A pause of 20 ms or more (a packet that late) delays enough packets to move the median
/// too, and so do many shorter ones: in a fresh-clone run of scripts/test.sh a run with p99 at
/// 7.8 ms (the model's is 1.23 ms) and 628 packets dropped on a full ring put p50 - p10 at
/// 137 us. A run that shows either, or a p99 2 ms above the model's, is run again.
#[test]
fn delay_with_normal_jitter_gives_the_latency_distribution_of_the_model() {
    let pace = ["--rate", "100kpps", "--duration", "3"];
    unless_paused(|| {
        let path = impaired("path", "", &pace, None, nothing);
        let run = impaired(
            "jitter",
            "delay 1ms 100us distribution normal seed 4",
            &pace,
            None,
            nothing,
        );
        let (p10, p50, p90) = (
            run.latency_us("p10"),
            run.latency_us("p50"),
            run.latency_us("p90"),
        );
        let base = path.latency_us("p50");
        println!("path p50 {base:.1} us; impaired p10 {p10:.1} p50 {p50:.1} p90 {p90:.1} us");
        let half = 1.2816 * 100.0;
        let model_p99 = base + 1000.0 + 2.3263 * 100.0;
        let why = if (p50 - base - 1000.0).abs() >= 20.0 {
            format!("median {p50} us, path {base} us")
        } else if ((p50 - p10) - half).abs() >= 0.05 * half {
            format!("p50 - p10 = {} us", p50 - p10)
        } else if p90 - p50 <= 0.95 * half {
            format!("p90 - p50 = {} us", p90 - p50)
        } else {
            return Ok(());
        };
        Err(Failure {
            why: format!("{why}:\n{}\npath:\n{}", run.show(), path.show()),
            paused: [(&path, base), (&run, model_p99)].iter().any(|(r, p99)| {
                r.latency_us("max") > 20_000.0
                    || r.latency_us("p99") > p99 + 2000.0
                    || r.other_drops() > 0
            }),
        })
    });
}

/// Duplicates and reordering with a gap: pktgen counts every duplicate sluice-impair made,
/// and every packet that skipped the delay arrives ahead of the packets it overtook (one gap
/// each: at 200 kpps, 2,000 packets are on their way during the 10 ms delay). Only a pause of
/// 10 ms in pktgen's sending (a busy machine) lets one skip the delay and overtake nothing:
/// one in 10,000 is allowed for. A run with more such has a packet 20 ms late (pktgen, paused,
/// received late what was on its way), and is run again.
#[test]
fn duplicates_and_reordering_are_counted_by_pktgen_as_sluice_impair_made_them() {
    unless_paused(|| {
        let run = impaired(
            "reorder",
            "delay 10ms reorder 25% gap 5 duplicate 1% seed 8 limit 10000",
            &["--rate", "200kpps", "--duration", "3"],
            None,
            nothing,
        );
        run.tx();
        let (made, reordered) = (
            run.count("impair_duplicated"),
            run.count("impair_reordered"),
        );
        let (duplicates, gaps) = (run.stream("duplicates"), run.stream("gaps"));
        let others = run.other_drops();
        println!(
            "duplicated {made}, pktgen saw {duplicates}; reordered {reordered}, pktgen saw {gaps} jump ahead"
        );
        assert!(made > 1000 && reordered > 10_000, "{}", run.show());
        // Each drop of a full queue takes an original (a loss, and perhaps a gap) or a copy.
        assert!(
            duplicates <= made && made - duplicates <= others,
            "{}",
            run.show()
        );
        assert!(gaps <= reordered + others, "{}", run.show());
        assert_eq!(
            run.stream("lost") + (made - duplicates),
            others,
            "{}",
            run.show()
        );
        if gaps + reordered / 10_000 >= reordered {
            return Ok(());
        }
        Err(Failure {
            why: format!(
                "{} reordered packets overtook nothing:\n{}",
                reordered - gaps,
                run.show()
            ),
            paused: run.latency_us("max") > 20_000.0,
        })
    });
}

/// Corruption: pktgen checks every checksum it receives, and tells exactly the packets that
/// sluice-impair flipped a bit in (a flip in the IPv4 version or header length makes a frame
/// that is no longer IPv4: pktgen counts it as foreign).
#[test]
fn corrupted_packets_are_told_by_their_checksums() {
    let run = impaired(
        "corrupt",
        "corrupt 1% seed 6",
        &["--rate", "200kpps", "--duration", "3"],
        None,
        nothing,
    );
    run.tx();
    let corrupted = run.count("impair_corrupted");
    let (told, foreign) = (run.total("corrupted_rx"), run.total("foreign_rx"));
    println!("corrupted {corrupted}; pktgen told {told}, and {foreign} foreign");
    assert!(corrupted > 3000, "{}", run.show());
    assert!(told + foreign <= corrupted, "{}", run.show());
    assert!(
        corrupted - (told + foreign) <= run.other_drops(),
        "{}",
        run.show()
    );
    assert_eq!(
        run.stream("lost"),
        told + foreign + run.other_drops(),
        "{}",
        run.show()
    );
}

/// A rate of 100 Mbit/s with Ethernet's 24 bytes of overhead a frame (FCS, preamble, gap):
/// 64-byte frames leave at 1e8 / (84 x 8) = 148.8 kpps from 200 kpps offered, within 1%. What
/// the queue holds at the end (its limit: it is full while more is offered than passes)
/// arrives after the sending and is left out. 8 s, not 4: the shaping starts with the first
/// packet to arrive, pktgen's seconds with the first sent, and once, in a full test run, the
/// first second passed 45 ms less (1.06% of 4 s).
///
/// What the shaper let out is what pktgen received plus what found pktgen's ring full
/// (`tx_full`): after a pause of sluice-impair, what fell due meanwhile leaves at once, as in
/// netem, and a few hundred such packets overflow the ring in most runs here. The queue
/// (40,000 packets, 269 ms at this rate) keeps the shaper busy through a pause of pktgen
/// shorter than that; a 67 ms queue once ran dry in CI, when pktgen stopped for about 100 ms,
/// and the run measured the machine, not the shaper. pktgen does not make up what it could
/// not send, so a pause long enough to drain this queue shows as an offer 3.4% short (269 ms
/// of 8 s): a run off the rate with such a shortfall is run again.
#[test]
fn a_rate_of_100_megabits_passes_64_byte_frames_at_148_8_kpps() {
    const LIMIT: u64 = 40_000;
    const ASKED_MPPS: f64 = 0.2;
    let expected = 1e8 / (84.0 * 8.0) / 1e6;
    unless_paused(|| {
        let run = impaired(
            "rate",
            &format!("rate 100mbit overhead 24 limit {LIMIT}"),
            &["--rate", "200kpps", "--duration", "8", "--drain", "1"],
            None,
            nothing,
        );
        let offered = run.json["tx"][0]["mpps"].as_f64().unwrap();
        let seconds = run.json["seconds"].as_f64().unwrap();
        let received = run.json["rx"][0]["packets"].as_u64().unwrap();
        let let_out = received + run.count("tx_full") - LIMIT;
        let passed = let_out as f64 / seconds / 1e6;
        println!("offered {offered:.4} Mpps, passed {passed:.5} Mpps over {seconds:.3} s");
        if (passed / expected - 1.0).abs() < 0.01 {
            return Ok(());
        }
        Err(Failure {
            why: format!("{passed} Mpps, not {expected}:\n{}", run.show()),
            paused: offered < ASKED_MPPS * 0.966,
        })
    });
}

/// The same seed twice: sluice-impair decides the same fates (its counts), and pktgen sees the
/// same packets lost and duplicated.
#[test]
fn the_same_seed_gives_the_same_fates_twice() {
    let netem = "loss 5% duplicate 2% seed 21";
    let pace = ["--rate", "200kpps", "--count", "200000"];
    let runs = [
        impaired("seed-a", netem, &pace, None, nothing),
        impaired("seed-b", netem, &pace, None, nothing),
    ];
    let fates = |r: &Impaired| (r.count("impair_loss"), r.count("impair_duplicated"));
    assert_eq!(fates(&runs[0]), fates(&runs[1]));
    if runs.iter().all(|r| r.other_drops() == 0) {
        let seen = |r: &Impaired| (r.stream("lost"), r.stream("duplicates"), r.stream("gaps"));
        assert_eq!(seen(&runs[0]), seen(&runs[1]));
    }
}

/// A live change on the control socket, mid-run, from 1 ms of delay to 1 ms and every packet
/// lost: what pktgen gets back is an unbroken run of the first packets sent (none after the
/// change gets through, none held at the change is lost), and every loss is the model's.
#[test]
fn a_live_change_takes_effect_at_once_and_loses_nothing_held() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("impair.sock");
    let reply = std::sync::Mutex::new(String::new());
    let run = impaired(
        "live",
        "delay 1ms limit 10000",
        &["--rate", "200kpps", "--duration", "4"],
        Some(&control),
        || *reply.lock().unwrap() = change_midway(&control),
    );
    let reply = reply.into_inner().unwrap();
    assert!(
        reply.starts_with("a-to-b delay 1ms loss random 100% 0%\nok"),
        "{reply}"
    );
    let (tx, lost) = (run.tx(), run.stream("lost"));
    assert!(lost > 0 && lost < tx, "{}", run.show());
    assert_eq!(
        (run.stream("gaps"), run.stream("reordered")),
        (0, 0),
        "{}",
        run.show()
    );
    assert_eq!(
        lost,
        run.count("impair_loss") + run.other_drops(),
        "{}",
        run.show()
    );
}

/// Waits for the control socket, lets traffic flow for 1.5 s, then asks for every packet to
/// be lost; returns the reply.
fn change_midway(control: &PathBuf) -> String {
    let mut waited = Duration::ZERO;
    while !control.exists() && waited < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let stream = UnixStream::connect(control).expect("the control socket");
    (&stream)
        .write_all(b"set a-to-b delay 1ms loss 100%\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    while !reply.ends_with("ok\n") && !reply.starts_with("error") {
        if reader.read_line(&mut reply).unwrap() == 0 {
            break;
        }
    }
    reply
}

/// 1 ms of delay, 2% random loss and 1% duplicates: pktgen's loss and duplicates account for
/// every packet sluice-impair dropped or made, the model's loss rate holds (within 0.5
/// points over 800,000 packets), and no packet took less than the delay.
#[test]
fn pktgen_measures_what_sluice_impair_was_asked() {
    let run = impaired(
        "netem",
        // A limit far above the 200 packets in flight: a descheduled lcore must not lose any.
        "delay 1ms loss random 2% duplicate 1% seed 5 limit 100000",
        &["--rate", "200kpps", "--duration", "4"],
        None,
        nothing,
    );
    let tx = run.tx();
    let (lost, duplicates) = (run.stream("lost"), run.stream("duplicates"));
    // A full TX queue may drop an original or a duplicate; a dropped duplicate is not a loss
    // to pktgen, so: lost + duplicates that did not arrive = every drop.
    let made = run.count("impair_duplicated");
    let dropped: u64 = drops_by_reason(&run.account).values().sum();
    assert!(duplicates <= made, "{}", run.show());
    assert_eq!(lost + (made - duplicates), dropped, "{}", run.show());
    let share = run.count("impair_loss") as f64 / tx as f64;
    assert!((share - 0.02).abs() < 0.005, "lost {share} of {tx}");
    let min = run.latency_us("min");
    assert!(
        min >= 1000.0,
        "a packet took {min} us, under the 1 ms delay"
    );
}

/// 10 ms of delay at pktgen's 5 Mpps (as much of it as the machine gives) holds every packet
/// in flight, 50,000 at 5 Mpps, and loses none for want of room: nothing over the limit, and
/// every packet pktgen did not get back was dropped for a counted reason. What is held is
/// read from the report lines, one a second; a line taken just after a pause of
/// sluice-impair, which lets out at once all that fell due meanwhile, shows little held (3,136
/// was seen), so the run lasts 3 s for two lines.
#[test]
fn ten_milliseconds_of_delay_hold_every_packet_in_flight() {
    let run = impaired(
        "delay",
        "delay 10ms limit 60000",
        &["--rate", "5mpps", "--duration", "3"],
        None,
        nothing,
    );
    let tx = run.tx();
    let drops = drops_by_reason(&run.account);
    assert!(!drops.contains_key("impair_limit"), "{}", run.show());
    assert_eq!(
        run.total("lost"),
        drops.values().sum::<u64>(),
        "{}",
        run.show()
    );
    let most_held = run
        .account
        .lines()
        .filter_map(|l| {
            l.split("held ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    println!("sent {tx} in 3 s, most held at once {most_held}");
    if tx >= 13_500_000 {
        // 4.5 Mpps or more for 10 ms: 45,000 packets in flight.
        assert!(most_held >= 45_000, "{}", run.show());
    }
    let min = run.latency_us("min");
    assert!(
        min >= 10_000.0,
        "a packet took {min} us, under the 10 ms delay"
    );
}
