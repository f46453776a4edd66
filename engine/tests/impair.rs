//! The impairment stage on real mbufs through the offline runner: each of netem's models
//! against what its parameters imply, the same seed giving the same fates, delays released
//! by the timer, the limit, duplicates and corruption counted, a rate spacing packets, and
//! slots releasing them in batches.
//! (The figures through pktgen over memif belong to sluice-impair's tests, still to come.)

mod common;

use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::stage::impair::{Impair, Impairment};
use sluice::stage::offline::Runner;
use sluice::stage::Verdict;
use sluice::stats::{Counter, Reason};
use sluice::Mempool;

fn frame(n: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&n.to_be_bytes());
    f
}

/// Sends `count` frames in on port 0 through `stage`, 32 at a time; the verdicts.
fn run(runner: &mut Runner, stage: &mut Impair, count: u32) -> Vec<Verdict> {
    let frames: Vec<Vec<u8>> = (0..count).map(frame).collect();
    let mut verdicts = Vec::new();
    for chunk in frames.chunks(32) {
        let burst: Vec<(u16, &[u8])> = chunk.iter().map(|f| (0, f.as_slice())).collect();
        let out = runner.run(stage, &burst).expect("room in the pool");
        verdicts.extend(out.outcomes.iter().map(|o| o.verdict));
    }
    verdicts
}

fn stage(spec: &str) -> Impair {
    Impair::new(vec![(0, 1, Impairment::parse(spec).unwrap())], 1)
}

#[test]
fn netem_models_give_what_their_parameters_imply() {
    let eal = common::start_eal(&[]);
    let pool = Mempool::pktmbuf(&eal, "impair", 4095, 32, DEFAULT_DATA_ROOM, None).unwrap();
    let mut runner = Runner::new(pool);
    let hz = eal.tsc_hz();

    // Random loss of 1% over 200,000 packets: within 0.1% (4.5 standard deviations).
    let mut s = stage("loss random 1% seed 42");
    let verdicts = run(&mut runner, &mut s, 200_000);
    let lost = verdicts
        .iter()
        .filter(|v| **v == Verdict::Drop(Reason::named("impair_loss")))
        .count();
    let share = lost as f64 / 200_000.0;
    assert!((share - 0.01).abs() < 0.001, "lost {share}");
    // The same seed: the same fates.
    let mut again = stage("loss random 1% seed 42");
    assert_eq!(run(&mut runner, &mut again, 200_000), verdicts);

    // Gilbert-Elliott with every packet lost in the bad state and none in the good: bursts
    // last 1/r packets on average, and a 1% p gives p/(p+r) of packets lost.
    let mut s = stage("loss gemodel 1% 25% 100% 0% seed 3");
    let verdicts = run(&mut runner, &mut s, 200_000);
    let (mut bursts, mut lost, mut in_burst) = (0, 0, false);
    for v in &verdicts {
        let l = matches!(v, Verdict::Drop(_));
        lost += usize::from(l);
        bursts += usize::from(l && !in_burst);
        in_burst = l;
    }
    let mean_burst = lost as f64 / bursts as f64;
    assert!((mean_burst - 4.0).abs() < 0.4, "mean burst {mean_burst}");
    let share = lost as f64 / 200_000.0;
    assert!((share - 0.01 / 0.26).abs() < 0.005, "lost {share}");

    // Delay: every packet held, then released by the timer, all of them, in order.
    let mut s = stage("delay 1ms limit 100");
    let verdicts = run(&mut runner, &mut s, 64);
    assert!(verdicts.iter().all(|v| *v == Verdict::Hold));
    assert_eq!(runner.counts().held, 64);
    let sent = runner.timers(&mut s, u64::MAX);
    assert_eq!(sent.len(), 64);
    assert!(sent
        .iter()
        .enumerate()
        .all(|(i, (port, f))| *port == 1 && f[..] == frame(i as u32)[..]));
    assert_eq!(runner.counts().held, 0);

    // The limit: beyond 10 held, dropped as impair_limit.
    let mut s = stage("delay 1s limit 10");
    let verdicts = run(&mut runner, &mut s, 32);
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Hold).count(), 10);
    assert_eq!(runner.counts().drops_for(Reason::named("impair_limit")), 22);
    runner.stop(&mut s);

    // Duplicates and corruption: counted, each copy equal to its original, each corrupted
    // frame one bit away from its original, past the Ethernet header.
    let mut s = stage("duplicate 10% corrupt 100% seed 9");
    let frames = 1000;
    let out: Vec<_> = (0..frames)
        .collect::<Vec<u32>>()
        .chunks(32)
        .flat_map(|c| {
            let burst: Vec<Vec<u8>> = c.iter().map(|&n| frame(n)).collect();
            let refs: Vec<(u16, &[u8])> = burst.iter().map(|f| (0, f.as_slice())).collect();
            let run = runner.run(&mut s, &refs).unwrap();
            assert!(run.outcomes.iter().all(|o| o.verdict == Verdict::Tx(1)));
            run.outcomes
                .into_iter()
                .map(|o| o.frame)
                .chain(run.sent.into_iter().map(|(_, f)| f))
                .collect::<Vec<_>>()
        })
        .collect();
    let duplicated = runner.counts().count(Counter::named("impair_duplicated"));
    assert_eq!(out.len() as u64, u64::from(frames) + duplicated);
    assert!((60..=140).contains(&duplicated), "{duplicated} duplicated");
    for f in &out {
        let n = u32::from_be_bytes(f[14..18].try_into().unwrap()) as usize;
        let original = frame(n as u32 % frames);
        let flipped: u32 = f
            .iter()
            .zip(&original)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        // A flip may land in the sequence number itself; then compare against any frame.
        assert!(
            flipped == 1
                || (0..frames).any(|k| f
                    .iter()
                    .zip(&frame(k))
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum::<u32>()
                    == 1)
        );
        assert_eq!(f[..14], original[..14], "the Ethernet header is left alone");
    }

    // A rate of 1 Mbit/s spaces 64-byte frames 512 us apart, over 33 ms for 64 of them: any
    // 10 ms within that lets about 19 out. (Counted from after the run, so that a test
    // descheduled while queueing them still sees a full window.)
    let mut s = stage("rate 1mbit");
    run(&mut runner, &mut s, 64);
    let queued = sluice::clock::tsc();
    runner.timers(&mut s, queued);
    let out = runner.timers(&mut s, queued + hz / 100);
    assert!(
        (18..=21).contains(&out.len()),
        "{} sent in 10 ms",
        out.len()
    );
    runner.stop(&mut s);
    assert_eq!(runner.counts().held, 0, "nothing held after stop");

    // Packets over the limit take no time on the link: of 64 offered at once to 1 Mbit/s
    // with room for 10, the 10 leave 512 us apart, by 5.1 ms, and the next packet 512 us
    // later (had the 54 dropped taken their time, it would leave after 33 ms).
    let mut s = stage("rate 1mbit limit 10");
    let verdicts = run(&mut runner, &mut s, 64);
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Hold).count(), 10);
    let queued = sluice::clock::tsc();
    assert_eq!(runner.timers(&mut s, queued + hz / 100).len(), 10);
    run(&mut runner, &mut s, 1);
    let next = sluice::clock::tsc();
    assert_eq!(
        runner.timers(&mut s, next + hz / 100).len(),
        1,
        "not behind the dropped"
    );

    // Slots: what waits leaves in slots 10 ms apart, 8 packets each (or 2 frames of 64 bytes
    // with a 128-byte budget), the first slot 10 ms after the packets are looked at, in order.
    for (spec, per_slot) in [("slot 10ms packets 8", 8), ("slot 10ms bytes 128", 2)] {
        let mut s = stage(spec);
        let verdicts = run(&mut runner, &mut s, 20);
        assert!(verdicts.iter().all(|v| *v == Verdict::Hold), "{spec}");
        let start = sluice::clock::tsc();
        assert!(
            runner.timers(&mut s, start).is_empty(),
            "{spec}: no slot yet"
        );
        let mut sent = Vec::new();
        for slot in 1..=3 {
            let out = runner.timers(&mut s, start + slot * hz / 100);
            assert_eq!(
                out.len(),
                per_slot.min(20 - sent.len()),
                "{spec}: slot {slot}"
            );
            sent.extend(out);
        }
        sent.extend(runner.stop(&mut s));
        assert_eq!(sent.len(), 20, "{spec}: every packet leaves");
        assert!(sent
            .iter()
            .enumerate()
            .all(|(i, (port, f))| *port == 1 && f[..] == frame(i as u32)[..]));
    }
}
