//! Wiring of RX queues, stages, rings and TX queues, and the poll loops that run them.
//!
//! A [`Lane`] is one chain of work: the RX queues it polls, the stages every burst goes
//! through, and the TX queues (at most one per port) its packets leave by. In
//! [`Mode::RunToCompletion`] one lcore does RX → stages → TX for the lane; in
//! [`Mode::Pipelined`] the lane's RX lcore hands bursts over an SPSC ring to its stage lcore,
//! which runs the stages and transmits. Several lanes may share an lcore.
//!
//! Every packet received is counted, and so is every packet sent or dropped (by reason), on
//! counter blocks that each have one writer. On stop, RX ends first and stage workers drain
//! their rings, so that afterwards received = sent + dropped exactly.

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::{Burst, Mbuf, MAX_BURST};
use crate::port::{RxQueue, TxQueue};
use crate::ring::{self, Consumer, Producer};
use crate::stage::{Action, Stage, Verdict};
use crate::stats::{
    counters, loop_counters, CounterWriter, DropReason, LcoreStats, LoopCounterWriter, QueueStats,
    StageStats, Stats,
};
use crate::worker::{self, IdlePolicy, StopFlag};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a lane's work is spread over lcores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One lcore polls, runs the stages and transmits.
    RunToCompletion,
    /// An RX lcore hands bursts over a ring to a stage lcore, which transmits.
    Pipelined,
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Mode, Error> {
        match s {
            "rtc" | "run-to-completion" => Ok(Mode::RunToCompletion),
            "pipeline" | "pipelined" => Ok(Mode::Pipelined),
            other => Err(Error::Config(format!(
                "unknown mode '{other}': expected rtc (run to completion) or pipeline"
            ))),
        }
    }
}

/// Pipeline-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    /// Packets asked of an RX queue per poll (1..=64).
    pub burst: usize,
    /// Further offers of the rest of a burst to a TX queue that took only part of it.
    pub tx_retries: u32,
    /// Slots of each RX → stage ring (a power of two; pipelined mode).
    pub ring_capacity: usize,
    pub idle: IdlePolicy,
    /// How often the main lcore calls the report callback (zero: never).
    pub report_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::RunToCompletion,
            burst: 32,
            tx_retries: 4,
            ring_capacity: 1024,
            idle: IdlePolicy::default(),
            report_period: Duration::ZERO,
        }
    }
}

/// One chain of work; see the module documentation.
pub struct Lane {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
    pub stages: Vec<Box<dyn Stage>>,
    /// The lcore that polls the RX queues (and, run to completion, does everything).
    pub lcore: u32,
    /// Pipelined mode: the lcore that runs the stages and transmits.
    pub stage_lcore: Option<u32>,
}

/// A pipeline, built lane by lane, then run.
pub struct Pipeline {
    settings: Settings,
    lanes: Vec<Lane>,
}

/// What a finished run leaves: its counters and how long it forwarded.
pub struct Outcome {
    pub stats: Arc<Stats>,
    pub elapsed: Duration,
}

impl Pipeline {
    pub fn new(settings: Settings) -> Pipeline {
        Pipeline {
            settings,
            lanes: Vec::new(),
        }
    }

    pub fn lane(&mut self, lane: Lane) -> &mut Pipeline {
        self.lanes.push(lane);
        self
    }

    fn validate(&self, eal: &Eal) -> Result<(), Error> {
        let s = &self.settings;
        if s.burst == 0 || s.burst > MAX_BURST {
            return Err(Error::Config(format!(
                "burst size {} is out of range: use 1 to {MAX_BURST}",
                s.burst
            )));
        }
        if !s.ring_capacity.is_power_of_two() {
            return Err(Error::Config(format!(
                "ring capacity {} is not a power of two: use e.g. 1024",
                s.ring_capacity
            )));
        }
        let lcores = eal.lcores();
        for (i, lane) in self.lanes.iter().enumerate() {
            let used = std::iter::once(lane.lcore).chain(lane.stage_lcore);
            for lcore in used {
                if !lcores.contains(&lcore) {
                    return Err(Error::Config(format!(
                        "lane {i} wants lcore {lcore}, which the EAL does not have (-l): lcores are {lcores:?}"
                    )));
                }
            }
            if s.mode == Mode::Pipelined && lane.stage_lcore.is_none() {
                return Err(Error::Config(format!(
                    "lane {i} has no stage lcore: pipelined mode needs an RX lcore and a stage lcore per lane"
                )));
            }
            let mut ports: Vec<u16> = lane.tx.iter().map(TxQueue::port_id).collect();
            ports.sort_unstable();
            if ports.windows(2).any(|w| w[0] == w[1]) {
                return Err(Error::Config(format!(
                    "lane {i} has two TX queues of one port: a lane sends by one queue per port"
                )));
            }
        }
        Ok(())
    }

    /// Runs until `stop` is set, calling `report(stats, since_start)` on the main lcore every
    /// `report_period`; returns once every worker has finished and every ring is drained.
    pub fn run(
        self,
        eal: &Eal,
        stop: &StopFlag,
        mut report: impl FnMut(&Stats, Duration),
    ) -> Result<Outcome, Error> {
        self.validate(eal)?;
        let settings = self.settings;
        let mut stats = Stats::default();
        let mut tasks: Vec<(u32, Task)> = Vec::new();
        for (index, lane) in self.lanes.into_iter().enumerate() {
            let stage_lcore = match settings.mode {
                Mode::RunToCompletion => lane.lcore,
                Mode::Pipelined => lane.stage_lcore.expect("validated"),
            };
            let mut rx = Vec::new();
            for queue in lane.rx {
                let (writer, reader) = counters();
                stats.rx_queues.push(QueueStats {
                    port: queue.port_id(),
                    queue: queue.queue_id(),
                    lcore: lane.lcore,
                    counters: reader,
                });
                rx.push((queue, writer));
            }
            let chain = Chain::new(
                index,
                lane.stages,
                lane.tx,
                stage_lcore,
                &settings,
                &mut stats,
            );
            match settings.mode {
                Mode::RunToCompletion => tasks.push((lane.lcore, Task::Complete { rx, chain })),
                Mode::Pipelined => {
                    let (producer, consumer) = ring::channel(settings.ring_capacity);
                    tasks.push((lane.lcore, Task::Rx { rx, ring: producer }));
                    tasks.push((
                        stage_lcore,
                        Task::Stages {
                            ring: consumer,
                            chain,
                        },
                    ));
                }
            }
        }
        let main = eal.main_lcore();
        let mut per_lcore: Vec<(u32, Vec<Task>)> = Vec::new();
        for (lcore, task) in tasks {
            match per_lcore.iter_mut().find(|(l, _)| *l == lcore) {
                Some((_, list)) => list.push(task),
                None => per_lcore.push((lcore, vec![task])),
            }
        }
        let main_tasks = per_lcore
            .iter()
            .position(|(l, _)| *l == main)
            .map(|i| per_lcore.remove(i).1)
            .unwrap_or_default();
        let mut loop_stats = Vec::new();
        let mut loop_counters_for = |lcore: u32| {
            let (writer, reader) = loop_counters();
            loop_stats.push(LcoreStats {
                lcore,
                counters: reader,
            });
            writer
        };
        let main_counters = loop_counters_for(main);
        let mut launches = Vec::new();
        for (lcore, list) in per_lcore {
            launches.push((lcore, list, loop_counters_for(lcore)));
        }
        stats.lcores = loop_stats;
        let stats = Arc::new(stats);
        crate::stats::telemetry::publish_stats(stats.clone());
        crate::stats::telemetry::publish_placement(placement_text(&stats));
        let mut workers = Vec::new();
        for (lcore, list, counters) in launches {
            let stop = stop.clone();
            let settings = settings.clone();
            workers.push(worker::launch(eal, lcore, move || {
                poll_loop(list, &stop, &settings, counters, &mut |_| {})
            })?);
        }

        let started = Instant::now();
        let mut last_report = started;
        let period = settings.report_period;
        poll_loop(main_tasks, stop, &settings, main_counters, &mut |now| {
            if !period.is_zero() && now - last_report >= period {
                last_report = now;
                report(&stats, now - started);
            }
        });
        let elapsed = started.elapsed();
        let mut failed = None;
        for w in workers {
            if let Err(e) = w.join() {
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(Outcome { stats, elapsed }),
        }
    }
}

/// Which lcore polls which queue and runs which stage, a line each.
fn placement_text(stats: &Stats) -> String {
    let mut lines = Vec::new();
    for q in &stats.rx_queues {
        lines.push(format!(
            "lcore {}: RX port {} queue {}",
            q.lcore, q.port, q.queue
        ));
    }
    for s in &stats.stages {
        lines.push(format!(
            "lcore {}: stage {} (lane {})",
            s.lcore, s.name, s.lane
        ));
    }
    for q in &stats.tx_queues {
        lines.push(format!(
            "lcore {}: TX port {} queue {}",
            q.lcore, q.port, q.queue
        ));
    }
    lines.join("\n")
}

/// The stages of a lane and the TX queues they send by; run on one lcore.
struct Chain {
    stages: Vec<(Box<dyn Stage>, CounterWriter)>,
    /// Indexed by port id.
    tx: Vec<Option<TxOut>>,
    /// Port ids with a TX queue here, to flush without scanning the table.
    tx_ports: Vec<u16>,
    lane: CounterWriter,
    tx_retries: u32,
    actions: [Action; MAX_BURST],
}

struct TxOut {
    queue: TxQueue,
    counters: CounterWriter,
    pending: Burst,
}

impl Chain {
    fn new(
        lane: usize,
        stages: Vec<Box<dyn Stage>>,
        tx: Vec<TxQueue>,
        lcore: u32,
        settings: &Settings,
        stats: &mut Stats,
    ) -> Chain {
        let stages = stages
            .into_iter()
            .map(|stage| {
                let (writer, reader) = counters();
                stats.stages.push(StageStats {
                    lane,
                    name: stage.name().to_owned(),
                    lcore,
                    counters: reader,
                });
                (stage, writer)
            })
            .collect();
        let size = tx
            .iter()
            .map(|q| usize::from(q.port_id()) + 1)
            .max()
            .unwrap_or(0);
        let mut table: Vec<Option<TxOut>> = (0..size).map(|_| None).collect();
        let mut tx_ports = Vec::new();
        for queue in tx {
            let (writer, reader) = counters();
            stats.tx_queues.push(QueueStats {
                port: queue.port_id(),
                queue: queue.queue_id(),
                lcore,
                counters: reader,
            });
            let port = queue.port_id();
            tx_ports.push(port);
            table[usize::from(port)] = Some(TxOut {
                queue,
                counters: writer,
                pending: Burst::new(),
            });
        }
        let (lane_writer, lane_reader) = counters();
        stats.lanes.push(lane_reader);
        Chain {
            stages,
            tx: table,
            tx_ports,
            lane: lane_writer,
            tx_retries: settings.tx_retries,
            actions: [Action::NEXT; MAX_BURST],
        }
    }

    /// Takes every packet of `burst` through the stages to a TX queue or a counted drop.
    fn run(&mut self, burst: &mut Burst) {
        let mut dropped = Burst::new();
        for (stage, counters) in &mut self.stages {
            let n = burst.len();
            if n == 0 {
                break;
            }
            counters.rx(n as u64);
            let actions = &mut self.actions[..n];
            actions.fill(Action::NEXT);
            stage.process(burst.as_mut_slice(), actions);
            // Most bursts get one verdict for every packet (all of a queue to one port): then
            // the burst moves as a whole, with no per-packet sorting.
            if let Some(action) = Action::uniform(actions) {
                match action.verdict() {
                    Verdict::Next => continue,
                    Verdict::Tx(port) => {
                        if let Some(Some(out)) = self.tx.get_mut(usize::from(port)) {
                            out.transmit(burst, self.tx_retries);
                            break;
                        }
                    }
                    Verdict::Drop(reason) => {
                        counters.drop(reason, burst.clear() as u64);
                        break;
                    }
                }
            }
            let mut next = Burst::new();
            for (m, action) in burst.drain().zip(actions.iter()) {
                let rejected = match action.verdict() {
                    Verdict::Next => next.push(m).err(),
                    Verdict::Tx(port) => match self.tx.get_mut(usize::from(port)) {
                        Some(Some(out)) => out.pending.push(m).err(),
                        _ => {
                            self.lane.drop(DropReason::NoOutput, 1);
                            Some(m)
                        }
                    },
                    Verdict::Drop(reason) => {
                        counters.drop(reason, 1);
                        Some(m)
                    }
                };
                // Pushes cannot fail (a burst's packets fit any burst): this is the drop path.
                if let Some(m) = rejected {
                    if let Err(m) = dropped.push(m) {
                        drop(m);
                    }
                }
            }
            std::mem::swap(burst, &mut next);
        }
        // Whatever is still here went past the last stage without an output.
        let unrouted = burst.clear();
        if unrouted > 0 {
            self.lane.drop(DropReason::NoOutput, unrouted as u64);
        }
        dropped.clear();
        for &port in &self.tx_ports {
            let out = self.tx[usize::from(port)].as_mut().expect("listed port");
            if !out.pending.is_empty() {
                let mut pending = std::mem::take(&mut out.pending);
                out.transmit(&mut pending, self.tx_retries);
                out.pending = pending;
            }
        }
    }
}

impl TxOut {
    /// Sends `burst` with bounded retries; what the queue would not take is dropped as `tx_full`.
    #[inline]
    fn transmit(&mut self, burst: &mut Burst, retries: u32) {
        let sent = self.queue.send_bounded(burst, retries);
        self.counters.tx(sent as u64);
        let unsent = burst.clear();
        if unsent > 0 {
            self.counters.drop(DropReason::TxFull, unsent as u64);
        }
    }
}

/// What one lcore does for one lane.
enum Task {
    /// Run to completion: poll, stages, transmit.
    Complete {
        rx: Vec<(RxQueue, CounterWriter)>,
        chain: Chain,
    },
    /// Pipelined, RX side: poll and hand bursts to the ring.
    Rx {
        rx: Vec<(RxQueue, CounterWriter)>,
        ring: Producer<Mbuf>,
    },
    /// Pipelined, stage side: take bursts off the ring, stages, transmit.
    Stages { ring: Consumer<Mbuf>, chain: Chain },
}

impl Task {
    /// One round of work; returns how many packets it moved.
    #[inline]
    fn poll(&mut self, burst: &mut Burst, size: usize) -> usize {
        match self {
            Task::Complete { rx, chain } => {
                let mut moved = 0;
                for (queue, counters) in rx {
                    let n = queue.recv_up_to(burst, size);
                    if n > 0 {
                        counters.rx(n as u64);
                        chain.run(burst);
                        moved += n;
                    }
                }
                moved
            }
            Task::Rx { rx, ring } => {
                let mut moved = 0;
                for (queue, counters) in rx {
                    let n = queue.recv_up_to(burst, size);
                    if n == 0 {
                        continue;
                    }
                    counters.rx(n as u64);
                    let mut packets = burst.drain();
                    ring.push_with(n, |_| packets.next().expect("n packets"));
                    // What did not fit is freed when `packets` drops: count it.
                    let full = packets.len();
                    drop(packets);
                    if full > 0 {
                        counters.drop(DropReason::RingFull, full as u64);
                    }
                    moved += n;
                }
                moved
            }
            Task::Stages { ring, chain } => {
                let n = ring.pop_with(size, |m| {
                    if let Err(m) = burst.push(m) {
                        drop(m);
                    }
                });
                if n > 0 {
                    chain.run(burst);
                }
                n
            }
        }
    }
}

/// The poll loop of one lcore. `tick(now)` runs every so many rounds (the main lcore reports
/// from it). On stop: RX tasks end at once; stage tasks go on until their rings are drained
/// and their producers gone.
fn poll_loop(
    mut tasks: Vec<Task>,
    stop: &StopFlag,
    settings: &Settings,
    mut counters: LoopCounterWriter,
    tick: &mut dyn FnMut(Instant),
) {
    let mut burst = Burst::new();
    // An lcore with nothing to poll (a main lcore kept free) only reports: let it sleep.
    let idle = if tasks.is_empty() {
        IdlePolicy::NOTHING_TO_POLL
    } else {
        settings.idle
    };
    worker::poll_until_stopped(stop, idle, &mut counters, tick, || {
        tasks
            .iter_mut()
            .map(|task| task.poll(&mut burst, settings.burst))
            .sum()
    });
    // Drop the RX side (RX tasks, and run-to-completion tasks, whose queues stop with
    // them), closing each ring's producer; then drain the stage side.
    tasks.retain(|t| matches!(t, Task::Stages { .. }));
    loop {
        let mut pending = false;
        for task in &mut tasks {
            task.poll(&mut burst, settings.burst);
            if let Task::Stages { ring, .. } = task {
                pending |= !(ring.producer_gone() && ring.is_empty());
            }
        }
        if !pending {
            break;
        }
        std::hint::spin_loop();
    }
}
