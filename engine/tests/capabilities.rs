//! What a node can do beyond a verdict per packet, on real DPDK (`net_ring` ports, which loop
//! TX queue q back to RX queue q): hold packets and release them later, to a port or a drop;
//! originate packets; timers; handoff to another worker, with ring-full drops counted; and
//! reasons and counters of its own in the account. After each run every mbuf is back.

mod common;

use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::pipeline::{Lane, Mode, Pipeline, Settings};
use sluice::stage::{Action, Context, Held, Node};
use sluice::stats::{CounterMap, DropReason, Reason, Stats};
use sluice::worker::StopFlag;
use sluice::{Burst, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PACKETS: u32 = 1000;

fn packet(pool: &Mempool, queue: u16, seq: u32) -> Mbuf {
    let mut m = pool.alloc().unwrap();
    let mut bytes = vec![0u8; 64];
    bytes[12] = 0x88;
    bytes[13] = 0xb5; // local experimental EtherType
    bytes[14..18].copy_from_slice(&seq.to_be_bytes());
    bytes[18] = queue as u8;
    assert!(m.extend_from_slice(&bytes));
    m
}

fn seq(m: &Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[14..18].try_into().unwrap())
}

/// Puts `count` packets into `tx` (they come back on the RX queue of the same number).
fn inject(tx: &mut TxQueue, pool: &Mempool, count: u32) {
    let mut burst = Burst::new();
    for s in 0..count {
        let _ = burst.push(packet(pool, tx.queue_id(), s));
        if burst.spare() == 0 || s + 1 == count {
            let n = burst.len();
            assert_eq!(tx.send(&mut burst), n, "injection ring full");
        }
    }
}

/// Two net_ring ports of `queues` queues: packets come in on port 0 and leave by port 1.
struct Rig {
    eal: Eal,
    pool: Mempool,
    rx: Vec<RxQueue>,
    out_rx: Vec<RxQueue>,
    out_tx: Vec<TxQueue>,
    _ports: (Port, Port),
}

fn rig(queues: u16, per_queue: u32) -> Rig {
    let eal = common::start_eal_on("0,1", &["net_ring0", "net_ring1"]);
    let pool = Mempool::pktmbuf(&eal, "capabilities", 8191, 64, DEFAULT_DATA_ROOM, None).unwrap();
    let config = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        ..PortConfig::default()
    };
    let (in_port, rx, mut injectors) = Port::start(&eal, 0, &config, &pool).unwrap();
    let (out_port, out_rx, out_tx) = Port::start(&eal, 1, &config, &pool).unwrap();
    for tx in &mut injectors {
        inject(tx, &pool, per_queue);
    }
    Rig {
        eal,
        pool,
        rx,
        out_rx,
        out_tx,
        _ports: (in_port, out_port),
    }
}

/// Runs `pipeline` until `done(stats)` (or 30 s); returns the final stats.
fn run_until(eal: &Eal, pipeline: Pipeline, mut done: impl FnMut(&Stats) -> bool) -> Arc<Stats> {
    let stop = StopFlag::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    pipeline
        .run(eal, &stop, |stats, _| {
            if done(stats) || Instant::now() > deadline {
                stop.stop();
            }
        })
        .unwrap()
        .stats
}

fn settings() -> Settings {
    Settings {
        report_period: Duration::from_millis(5),
        ..Settings::default()
    }
}

/// Packets waiting on the RX queues of the out port (what the pipeline sent), drained.
fn received(queues: &mut [RxQueue]) -> Vec<Vec<u32>> {
    queues
        .iter_mut()
        .map(|q| {
            let mut seqs = Vec::new();
            let mut burst = Burst::new();
            while q.recv(&mut burst) > 0 {
                seqs.extend(burst.as_slice().iter().map(seq));
                burst.clear();
            }
            seqs
        })
        .collect()
}

/// Holds every packet; a timer 20 ms after the first releases the even ones to port 1 and
/// drops the odd ones under a reason of its own; a periodic timer ticks ten times.
struct Holder {
    held: Vec<Held>,
    armed: bool,
    too_late: Reason,
    ticks: u32,
    /// (deadline, fired at) of the release timer, in TSC ticks.
    release: Arc<Mutex<Option<(u64, u64)>>>,
}

const RELEASE: u64 = 1;
const TICK: u64 = 2;

impl Node for Holder {
    fn name(&self) -> &str {
        "holder"
    }

    fn process(&mut self, _: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        actions.fill(Action::HOLD);
        if !self.armed {
            self.armed = true;
            let deadline = ctx.after(Duration::from_millis(20));
            ctx.timer_at(deadline, RELEASE);
            *self.release.lock().unwrap() = Some((deadline, 0));
            ctx.timer_after(Duration::from_millis(1), TICK);
        }
    }

    fn hold(&mut self, packet: Held, _: &mut Context<'_>) {
        self.held.push(packet);
    }

    fn timer(&mut self, token: u64, ctx: &mut Context<'_>) {
        match token {
            RELEASE => {
                let now = ctx.now();
                if let Some(t) = self.release.lock().unwrap().as_mut() {
                    t.1 = now;
                }
                for packet in self.held.drain(..) {
                    if seq(packet.packet()).is_multiple_of(2) {
                        ctx.release(packet, 1);
                    } else {
                        ctx.release_drop(packet, self.too_late);
                    }
                }
            }
            _ => {
                self.ticks += 1;
                ctx.count_key(CounterMap::named("ticks"), 0, 1);
                if self.ticks < 10 {
                    ctx.timer_after(Duration::from_millis(1), TICK);
                }
            }
        }
    }
}

#[test]
fn held_packets_are_counted_until_released_to_a_port_or_a_drop() {
    let mut rig = rig(1, PACKETS);
    let release = Arc::new(Mutex::new(None));
    let mut pipeline = Pipeline::new(settings());
    pipeline.lane(Lane {
        rx: rig.rx.drain(..).collect(),
        tx: rig.out_tx.drain(..).collect(),
        stages: vec![Box::new(Holder {
            held: Vec::new(),
            armed: false,
            too_late: Reason::named("too_late"),
            ticks: 0,
            release: release.clone(),
        })],
        lcore: 1,
        stage_lcore: None,
    });
    let mut most_held = 0;
    let stats = run_until(&rig.eal, pipeline, |stats| {
        let t = stats.totals();
        most_held = most_held.max(t.held);
        t.tx + t.dropped() == u64::from(PACKETS)
    });
    let t = stats.totals();
    assert_eq!(t.rx, u64::from(PACKETS));
    assert_eq!(most_held, u64::from(PACKETS), "all were held at once");
    assert_eq!(t.held, 0);
    assert_eq!(t.tx, u64::from(PACKETS / 2));
    assert_eq!(
        t.drops_for(Reason::named("too_late")),
        u64::from(PACKETS / 2)
    );
    assert_eq!(t.rx, t.tx + t.dropped());

    // The timer fired at its deadline, not before (and well within a second after).
    let (deadline, fired) = release.lock().unwrap().unwrap();
    let hz = rig.eal.tsc_hz();
    assert!(fired >= deadline, "fired {} ticks early", deadline - fired);
    assert!(
        fired - deadline < hz,
        "fired {} s late",
        (fired - deadline) / hz
    );
    let (account, balanced) = stats.final_account(Duration::from_secs(1), Default::default());
    assert!(balanced, "{account}");
    assert!(account.contains("ticks: 0 10"), "{account}");
    assert!(account.contains("too_late 500"), "{account}");

    let out = received(&mut rig.out_rx);
    assert_eq!(out[0], (0..PACKETS).step_by(2).collect::<Vec<_>>());
    drop(rig.rx);
    assert_eq!(rig.pool.in_use(), 0, "mbufs leaked");
}

/// Forwards every packet and sends a copy of its own of each; a timer sends three more.
struct Echo {
    armed: bool,
}

impl Node for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        for (m, action) in packets.iter().zip(actions.iter_mut()) {
            let mut copy = ctx.alloc().expect("the worker's pool has room");
            assert!(copy.extend_from_slice(m.data()));
            ctx.send(1, copy);
            *action = Action::tx(1);
        }
        if !self.armed {
            self.armed = true;
            ctx.timer_after(Duration::from_millis(5), 0);
        }
    }

    fn timer(&mut self, _: u64, ctx: &mut Context<'_>) {
        for _ in 0..3 {
            let mut m = ctx.alloc().expect("the worker's pool has room");
            assert!(m.extend_from_slice(&[0xee; 64]));
            ctx.send(1, m);
        }
    }
}

#[test]
fn originated_packets_are_counted_and_sent() {
    let mut rig = rig(1, PACKETS);
    let mut pipeline = Pipeline::new(settings());
    pipeline.lane(Lane {
        rx: rig.rx.drain(..).collect(),
        tx: rig.out_tx.drain(..).collect(),
        stages: vec![Box::new(Echo { armed: false })],
        lcore: 0,
        stage_lcore: None,
    });
    let total_out = u64::from(2 * PACKETS + 3);
    let stats = run_until(&rig.eal, pipeline, |stats| {
        stats.totals().tx + stats.totals().dropped() == total_out
    });
    let t = stats.totals();
    assert_eq!(
        (t.rx, t.originated),
        (u64::from(PACKETS), u64::from(PACKETS) + 3)
    );
    assert_eq!(t.rx + t.originated, t.tx + t.dropped());
    assert_eq!(
        t.drops_for(DropReason::TxFull) + t.tx,
        total_out,
        "nothing lost but to a full TX queue"
    );
    let (account, balanced) = stats.final_account(Duration::from_secs(1), Default::default());
    assert!(balanced, "{account}");
    assert!(
        account.contains(&format!("+ originated {}", PACKETS + 3)),
        "{account}"
    );
    assert_eq!(
        received(&mut rig.out_rx)[0].len() as u64,
        t.tx,
        "what was counted sent is what arrived"
    );
    drop(rig.rx);
    assert_eq!(rig.pool.in_use(), 0, "mbufs leaked");
}

/// Hands every packet to the other worker, which sends it out and counts it by the queue it
/// came in on (byte 18 of the test's packets).
struct Swap {
    by_queue: CounterMap,
}

impl Node for Swap {
    fn name(&self) -> &str {
        "swap"
    }

    fn process(&mut self, _: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        let other = (ctx.worker() + 1) % ctx.workers();
        actions.fill(Action::handoff(other as u16));
    }

    fn handed(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        for m in packets.iter() {
            ctx.count_key(self.by_queue, u64::from(m.data()[18]), 1);
        }
        actions.fill(Action::tx(1));
    }

    fn takes_handoff(&self) -> bool {
        true
    }
}

/// Two lanes, RX queue q and TX queue q each, on lcores 0 and 1 (or both on 0), whose `Swap`
/// stages hand every packet to each other.
fn swapping(rig: &mut Rig, settings: Settings, lcores: [u32; 2]) -> Pipeline {
    let mut pipeline = Pipeline::new(settings);
    for (rx, (tx, lcore)) in rig.rx.drain(..).zip(rig.out_tx.drain(..).zip(lcores)) {
        pipeline.lane(Lane {
            rx: vec![rx],
            tx: vec![tx],
            stages: vec![Box::new(Swap {
                by_queue: CounterMap::named("from_queue"),
            })],
            lcore,
            stage_lcore: None,
        });
    }
    pipeline
}

#[test]
fn handoff_moves_each_packet_to_the_other_worker() {
    let mut rig = rig(2, PACKETS);
    let pipeline = swapping(&mut rig, settings(), [0, 1]);
    let total = u64::from(2 * PACKETS);
    let stats = run_until(&rig.eal, pipeline, |stats| {
        stats.totals().tx + stats.totals().dropped() == total
    });
    let t = stats.totals();
    assert_eq!(t.rx, total);
    assert_eq!(t.rx, t.tx + t.dropped());
    assert_eq!(t.drops_for(DropReason::HandoffFull), 0, "{t:?}");
    // What came in on queue 0 left by lane 1's TX queue, 1, and the other way round, in order.
    let out = received(&mut rig.out_rx);
    let sent: Vec<u32> = (0..PACKETS).collect();
    assert_eq!(out[1], sent);
    assert_eq!(out[0], sent);
    let (account, balanced) = stats.final_account(Duration::from_secs(1), Default::default());
    assert!(balanced, "{account}");
    assert!(
        account.contains("stage swap (lane 1): in 2000"),
        "{account}"
    );
    assert!(account.contains("from_queue: 0 1000"), "{account}");
    assert!(account.contains("from_queue: 1 1000"), "{account}");
    drop(rig.rx);
    assert_eq!(rig.pool.in_use(), 0, "mbufs leaked");
}

#[test]
fn a_full_handoff_ring_is_a_counted_drop() {
    let mut rig = rig(2, PACKETS);
    // Bursts of 32 into rings of 16 slots: every burst overflows its ring.
    let settings = Settings {
        ring_capacity: 16,
        mode: Mode::RunToCompletion,
        ..settings()
    };
    let pipeline = swapping(&mut rig, settings, [0, 0]);
    let total = u64::from(2 * PACKETS);
    let stats = run_until(&rig.eal, pipeline, |stats| {
        stats.totals().tx + stats.totals().dropped() == total
    });
    let t = stats.totals();
    assert_eq!(t.rx, total);
    let full = t.drops_for(DropReason::HandoffFull);
    assert!(full > 0, "{t:?}");
    assert_eq!(t.rx, t.tx + full, "{t:?}");
    let out = received(&mut rig.out_rx);
    assert_eq!((out[0].len() + out[1].len()) as u64, t.tx);
    drop(rig.rx);
    assert_eq!(rig.pool.in_use(), 0, "mbufs leaked");
}

/// Forwards while open; a control message closes it, after which it drops under `closed`.
struct Gate {
    open: bool,
    closed: Reason,
}

/// The message that closes every gate.
struct Close;

impl Node for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn process(&mut self, _: &mut [Mbuf], actions: &mut [Action], _: &mut Context<'_>) {
        actions.fill(if self.open {
            Action::tx(1)
        } else {
            Action::drop(self.closed)
        });
    }

    fn message(&mut self, message: &(dyn std::any::Any + Send + Sync), ctx: &mut Context<'_>) {
        if message.is::<Close>() {
            self.open = false;
            ctx.count(sluice::stats::Counter::named("closings"), 1);
        }
    }
}

#[test]
fn control_messages_reach_every_lane() {
    let mut rig = rig(2, 0);
    let mut pipeline = Pipeline::new(settings());
    for (rx, (tx, lcore)) in rig.rx.drain(..).zip(rig.out_tx.drain(..).zip([0, 1])) {
        pipeline.lane(Lane {
            rx: vec![rx],
            tx: vec![tx],
            stages: vec![Box::new(Gate {
                open: true,
                closed: Reason::named("closed"),
            })],
            lcore,
            stage_lcore: None,
        });
    }
    let messenger = pipeline.messenger();
    let mut rounds = 0;
    let stats = run_until(&rig.eal, pipeline, |stats| {
        rounds += 1;
        if rounds == 1 {
            messenger.send("gate", Close);
        }
        let closings: u64 = stats
            .stages
            .iter()
            .map(|s| {
                s.counters
                    .snapshot()
                    .count(sluice::stats::Counter::named("closings"))
            })
            .sum();
        closings == 2
    });
    let (account, balanced) = stats.final_account(Duration::from_secs(1), Default::default());
    assert!(balanced, "{account}");
    assert!(
        account.contains("stage gate (lane 0)") && account.contains("closings 1"),
        "{account}"
    );
    assert!(account.contains("stage gate (lane 1)"), "{account}");
}
