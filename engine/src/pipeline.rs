//! Wiring of RX queues, stages, rings and TX queues, and the poll loops that run them.
//!
//! A [`Lane`] is one chain of work: the RX queues it polls, the stages every burst goes
//! through, and the TX queues (at most one per port) its packets leave by. In
//! [`Mode::RunToCompletion`] one lcore does RX → stages → TX for the lane; in
//! [`Mode::Pipelined`] the lane's RX lcore hands bursts over an SPSC ring to its stage lcore,
//! which runs the stages and transmits. Several lanes may share an lcore. Each lane is a
//! worker of its stages ([`Context::worker`](crate::stage::Context::worker)): its own
//! instances, timers, pool, and rings to the other lanes for the stages that take handoffs.
//!
//! Every packet received is counted, and so is every packet sent, dropped (by reason),
//! originated or held, on counter blocks that each have one writer. On stop, RX ends first;
//! the lanes go on draining their rings until every lcore has stopped receiving and nothing
//! moves anywhere; then each stage releases what it holds. Afterwards received + originated =
//! sent + dropped + held, exactly.

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::{Burst, Mbuf, MAX_BURST};
use crate::port::{RxQueue, TxQueue};
use crate::ring::{self, Consumer, Probe, Producer};
use crate::stage::{Action, Context, Held, Node, Services, Verdict};
use crate::stats::{
    counters, loop_counters, CounterWriter, DropReason, KeyedCounts, LcoreStats, LoopCounterWriter,
    QueueStats, StageStats, Stats,
};
use crate::worker::{self, IdlePolicy, StopFlag};
use crossbeam_channel::{Receiver, Sender};
use std::any::Any;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
        crate::app::options::mode(s).map_err(Error::Config)
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
    /// Slots of each RX → stage ring (a power of two; pipelined mode), and of each handoff
    /// ring between two lanes.
    pub ring_capacity: usize,
    pub idle: IdlePolicy,
    /// How often the main lcore calls the report callback (zero: never).
    pub report_period: Duration,
    /// Split each lcore's cycles into work and idle (a TSC read after every poll), for the
    /// report lines' and the final account's share of cycles at work.
    pub clock_work: bool,
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
            clock_work: false,
        }
    }
}

/// One chain of work; see the module documentation.
pub struct Lane {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
    /// Any [`Stage`](crate::stage::Stage) is a [`Node`]: `vec![Box::new(stage)]` takes both.
    pub stages: Vec<Box<dyn Node>>,
    /// The lcore that polls the RX queues (and, run to completion, does everything).
    pub lcore: u32,
    /// Pipelined mode: the lcore that runs the stages and transmits.
    pub stage_lcore: Option<u32>,
}

/// A control message for the nodes of one name, on every lane.
type Message = (String, Arc<dyn Any + Send + Sync>);

/// Sends control messages to the nodes of a running pipeline, from any thread (a control
/// socket, a telemetry command, a signal handler's thread). Each lane takes its messages
/// between bursts; nothing on the fast path waits for a lock.
#[derive(Clone)]
pub struct Messenger {
    lanes: Vec<Sender<Message>>,
}

impl Messenger {
    /// Sends `message` to every lane's node called `stage` ([`Node::message`]).
    pub fn send(&self, stage: &str, message: impl Any + Send + Sync) {
        let message: Arc<dyn Any + Send + Sync> = Arc::new(message);
        for lane in &self.lanes {
            // A lane that has finished no longer listens: nothing to deliver.
            let _ = lane.send((stage.to_owned(), message.clone()));
        }
    }
}

/// A pipeline, built lane by lane, then run.
pub struct Pipeline {
    settings: Settings,
    lanes: Vec<Lane>,
    inboxes: Vec<Receiver<Message>>,
    messenger: Messenger,
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
            inboxes: Vec::new(),
            messenger: Messenger { lanes: Vec::new() },
        }
    }

    pub fn lane(&mut self, lane: Lane) -> &mut Pipeline {
        let (sender, receiver) = crossbeam_channel::unbounded();
        self.messenger.lanes.push(sender);
        self.inboxes.push(receiver);
        self.lanes.push(lane);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A messenger to the nodes of the lanes added so far.
    pub fn messenger(&self) -> Messenger {
        self.messenger.clone()
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
        let Pipeline {
            settings,
            lanes,
            inboxes,
            ..
        } = self;
        let mut stats = Stats::default();
        let mut probes = Vec::new();
        let workers = lanes.len();
        let mut mesh = HandoffMesh::new(&lanes, settings.ring_capacity, &mut probes);
        let mut tasks: Vec<(u32, Task)> = Vec::new();
        for (index, (lane, inbox)) in lanes.into_iter().zip(inboxes).enumerate() {
            let stage_lcore = match settings.mode {
                Mode::RunToCompletion => lane.lcore,
                Mode::Pipelined => lane.stage_lcore.expect("validated"),
            };
            let pool = lane.rx.first().map(|q| q.pool().clone());
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
            let mut chain = Chain::new(
                index,
                lane.stages,
                lane.tx,
                stage_lcore,
                &settings,
                &mut stats,
                Services::new(pool, index, workers),
            );
            chain.messages = Some(inbox);
            mesh.attach(&mut chain);
            match settings.mode {
                Mode::RunToCompletion => tasks.push((lane.lcore, Task::Complete { rx, chain })),
                Mode::Pipelined => {
                    let (producer, consumer) = ring::channel(settings.ring_capacity);
                    probes.push(producer.probe());
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
        let drain = Arc::new(Drain::new(1 + launches.len(), probes));
        let mut workers = Vec::new();
        for (lcore, list, counters) in launches {
            let stop = stop.clone();
            let settings = settings.clone();
            let drain = drain.clone();
            workers.push(worker::launch(eal, lcore, move || {
                poll_loop(list, &stop, &settings, counters, &drain, &mut |_| {})
            })?);
        }

        let started = Instant::now();
        let mut last_report = started;
        let period = settings.report_period;
        poll_loop(
            main_tasks,
            stop,
            &settings,
            main_counters,
            &drain,
            &mut |now| {
                if !period.is_zero() && now - last_report >= period {
                    last_report = now;
                    report(&stats, now - started);
                }
            },
        );
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

/// The rings between lanes for the nodes that take handoffs: for each such node (by name)
/// and each pair of lanes that run it, one SPSC ring from the one to the other (a lane to
/// itself included).
struct HandoffMesh {
    /// (node name, from lane, to lane, producer or consumer still to hand out).
    producers: Vec<(String, usize, usize, Option<Producer<Mbuf>>)>,
    consumers: Vec<(String, usize, usize, Option<Consumer<Mbuf>>)>,
    lanes: usize,
}

impl HandoffMesh {
    fn new(lanes: &[Lane], capacity: usize, probes: &mut Vec<Probe>) -> HandoffMesh {
        let mut names: Vec<String> = lanes
            .iter()
            .flat_map(|l| &l.stages)
            .filter(|n| n.takes_handoff())
            .map(|n| n.name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        let runs = |lane: &Lane, name: &str| lane.stages.iter().any(|n| n.name() == name);
        let (mut producers, mut consumers) = (Vec::new(), Vec::new());
        for name in &names {
            for (from, a) in lanes.iter().enumerate() {
                for (to, b) in lanes.iter().enumerate() {
                    if runs(a, name) && runs(b, name) {
                        let (p, c) = ring::channel(capacity);
                        probes.push(p.probe());
                        producers.push((name.clone(), from, to, Some(p)));
                        consumers.push((name.clone(), from, to, Some(c)));
                    }
                }
            }
        }
        HandoffMesh {
            producers,
            consumers,
            lanes: lanes.len(),
        }
    }

    /// Gives `chain` its rings: out to every lane for each of its handoff nodes, and in.
    fn attach(&mut self, chain: &mut Chain) {
        let lane = chain.lane;
        for (node, n) in chain.nodes.iter().enumerate() {
            if !n.takes_handoff() {
                continue;
            }
            let mut outs: Vec<Option<Producer<Mbuf>>> = (0..self.lanes).map(|_| None).collect();
            for (name, from, to, p) in &mut self.producers {
                if name == n.name() && *from == lane {
                    outs[*to] = p.take();
                }
            }
            chain.handoff_out[node] = outs;
            for (name, _, to, c) in &mut self.consumers {
                if name == n.name() && *to == lane {
                    if let Some(c) = c.take() {
                        chain.handoff_in.push((node, c));
                    }
                }
            }
        }
    }
}

/// A node's own counter blocks.
struct NodeCounters {
    counters: CounterWriter,
    keyed: Arc<KeyedCounts>,
}

/// The stages of a lane and the TX queues they send by; run on one lcore.
struct Chain {
    lane: usize,
    nodes: Vec<Box<dyn Node>>,
    node_counters: Vec<NodeCounters>,
    /// Indexed by port id.
    tx: Vec<Option<TxOut>>,
    /// Port ids with a TX queue here, to flush without scanning the table.
    tx_ports: Vec<u16>,
    lane_counters: CounterWriter,
    tx_retries: u32,
    actions: [Action; MAX_BURST],
    services: Services,
    /// Per node, per lane: the ring to that lane's instance (handoff nodes only).
    handoff_out: Vec<Vec<Option<Producer<Mbuf>>>>,
    /// Rings from other lanes' instances, with the node they are for.
    handoff_in: Vec<(usize, Consumer<Mbuf>)>,
    messages: Option<Receiver<Message>>,
    /// Rounds since messages were last looked for.
    rounds: u32,
}

struct TxOut {
    queue: TxQueue,
    counters: CounterWriter,
    pending: Burst,
}

/// Looks for control messages once in this many rounds (a channel read is not free).
const MESSAGE_ROUNDS: u32 = 64;

impl Chain {
    fn new(
        lane: usize,
        nodes: Vec<Box<dyn Node>>,
        tx: Vec<TxQueue>,
        lcore: u32,
        settings: &Settings,
        stats: &mut Stats,
        mut services: Services,
    ) -> Chain {
        let node_counters = nodes
            .iter()
            .map(|node| {
                let (writer, reader) = counters();
                let keyed = Arc::new(KeyedCounts::default());
                stats.stages.push(StageStats {
                    lane,
                    name: node.name().to_owned(),
                    lcore,
                    counters: reader,
                    keyed: keyed.clone(),
                });
                NodeCounters {
                    counters: writer,
                    keyed,
                }
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
        services.outbox = {
            let mut outbox: Vec<Option<Vec<Mbuf>>> = (0..size).map(|_| None).collect();
            for &p in &tx_ports {
                outbox[usize::from(p)] = Some(Vec::with_capacity(MAX_BURST));
            }
            outbox
        };
        Chain {
            lane,
            handoff_out: nodes.iter().map(|_| Vec::new()).collect(),
            nodes,
            node_counters,
            tx: table,
            tx_ports,
            lane_counters: lane_writer,
            tx_retries: settings.tx_retries,
            actions: [Action::NEXT; MAX_BURST],
            services,
            handoff_in: Vec::new(),
            messages: None,
            rounds: 0,
        }
    }

    /// Takes every packet of `burst` through the stages from `first` on (the first of them
    /// by its [`Node::handed`] when `handed`) to a TX queue, a hold or a counted drop.
    fn run(&mut self, burst: &mut Burst, first: usize, handed: bool) {
        let mut dropped = Burst::new();
        // Whether packets were sorted one by one (some may wait in a TX queue's pending).
        let mut sorted = false;
        for i in first..self.nodes.len() {
            let n = burst.len();
            if n == 0 {
                break;
            }
            let Chain {
                nodes,
                node_counters,
                services,
                actions,
                tx,
                lane_counters,
                handoff_out,
                tx_retries,
                ..
            } = self;
            let node = &mut nodes[i];
            let NodeCounters { counters, keyed } = &mut node_counters[i];
            counters.rx(n as u64);
            let actions = &mut actions[..n];
            actions.fill(Action::NEXT);
            let mut ctx = Context {
                services,
                stage: i,
                counters,
                keyed,
            };
            if handed && i == first {
                node.handed(burst.as_mut_slice(), actions, &mut ctx);
            } else {
                node.process(burst.as_mut_slice(), actions, &mut ctx);
            }
            // Most bursts get one verdict for every packet (all of a queue to one port): then
            // the burst moves as a whole, with no per-packet sorting.
            if let Some(action) = Action::uniform(actions) {
                match action.verdict() {
                    Verdict::Next => continue,
                    Verdict::Tx(port) => {
                        if let Some(Some(out)) = tx.get_mut(usize::from(port)) {
                            out.transmit(burst, *tx_retries);
                            break;
                        }
                    }
                    Verdict::Drop(reason) => {
                        ctx.counters.drop(reason, burst.clear() as u64);
                        break;
                    }
                    Verdict::Handoff(to) => {
                        if let Some(Some(ring)) = handoff_out[i].get_mut(usize::from(to)) {
                            // The whole burst in one move; what does not fit is dropped.
                            burst.push_to(ring);
                            let full = burst.clear();
                            if full > 0 {
                                ctx.counters.drop(DropReason::HandoffFull, full as u64);
                            }
                            break;
                        }
                    }
                    Verdict::Hold => {}
                }
            }
            sorted = true;
            let mut next = Burst::new();
            for (m, action) in burst.drain().zip(actions.iter()) {
                let rejected = match action.verdict() {
                    Verdict::Next => next.push(m).err(),
                    Verdict::Tx(port) => match tx.get_mut(usize::from(port)) {
                        Some(Some(out)) => out.pending.push(m).err(),
                        _ => {
                            lane_counters.drop(DropReason::NoOutput, 1);
                            Some(m)
                        }
                    },
                    Verdict::Drop(reason) => {
                        ctx.counters.drop(reason, 1);
                        Some(m)
                    }
                    Verdict::Hold => {
                        ctx.counters.held(1);
                        node.hold(Held::new(m), &mut ctx);
                        None
                    }
                    Verdict::Handoff(to) => {
                        let ring = handoff_out[i]
                            .get_mut(usize::from(to))
                            .and_then(Option::as_mut);
                        match ring {
                            Some(ring) => match ring.push(m) {
                                Ok(()) => None,
                                Err(m) => {
                                    ctx.counters.drop(DropReason::HandoffFull, 1);
                                    Some(m)
                                }
                            },
                            None => {
                                ctx.counters.drop(DropReason::NoOutput, 1);
                                Some(m)
                            }
                        }
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
            self.lane_counters
                .drop(DropReason::NoOutput, unrouted as u64);
        }
        dropped.clear();
        if sorted || self.services.queued {
            self.flush();
        }
    }

    /// Sends what the stages left pending and what they sent through their context.
    fn flush(&mut self) {
        let Chain {
            tx,
            tx_ports,
            services,
            tx_retries,
            lane_counters,
            ..
        } = self;
        services.queued = false;
        if services.no_output > 0 {
            lane_counters.drop(
                DropReason::NoOutput,
                std::mem::take(&mut services.no_output),
            );
        }
        for &port in tx_ports.iter() {
            let out = tx[usize::from(port)].as_mut().expect("listed port");
            if let Some(Some(outbox)) = services.outbox.get_mut(usize::from(port)) {
                let mut from_stages = outbox.drain(..);
                loop {
                    while out.pending.spare() > 0 {
                        let Some(m) = from_stages.next() else { break };
                        let _ = out.pending.push(m);
                    }
                    if out.pending.spare() > 0 {
                        break;
                    }
                    let mut pending = std::mem::take(&mut out.pending);
                    out.transmit(&mut pending, *tx_retries);
                    out.pending = pending;
                }
            }
            if !out.pending.is_empty() {
                let mut pending = std::mem::take(&mut out.pending);
                out.transmit(&mut pending, *tx_retries);
                out.pending = pending;
            }
        }
    }

    /// Calls the node `stage` with the context (for timers, messages and stop).
    fn call(&mut self, stage: usize, f: impl FnOnce(&mut dyn Node, &mut Context<'_>)) {
        let NodeCounters { counters, keyed } = &mut self.node_counters[stage];
        let mut ctx = Context {
            services: &mut self.services,
            stage,
            counters,
            keyed,
        };
        f(self.nodes[stage].as_mut(), &mut ctx);
    }

    /// Timers that are due, packets handed over by other lanes, and control messages; returns
    /// the packets moved.
    #[inline]
    fn services(&mut self, burst: &mut Burst, size: usize) -> usize {
        let mut moved = 0;
        if let Some(deadline) = self.services.next_deadline() {
            let now = dpdk_sys::rdtsc();
            if now >= deadline {
                self.fire_timers(now);
            }
        }
        for k in 0..self.handoff_in.len() {
            let (node, ring) = &mut self.handoff_in[k];
            let node = *node;
            let n = burst.pop_from(ring, size);
            if n > 0 {
                self.run(burst, node, true);
                moved += n;
            }
        }
        self.rounds += 1;
        if self.rounds >= MESSAGE_ROUNDS {
            self.rounds = 0;
            self.deliver_messages();
        }
        moved
    }

    #[cold]
    fn fire_timers(&mut self, now: u64) {
        while let Some(&std::cmp::Reverse((deadline, stage, token))) = self.services.timers.peek() {
            if deadline > now {
                break;
            }
            self.services.timers.pop();
            self.call(stage, |node, ctx| node.timer(token, ctx));
        }
        self.flush();
    }

    #[cold]
    fn deliver_messages(&mut self) {
        let Some(inbox) = &self.messages else {
            return;
        };
        let pending: Vec<Message> = inbox.try_iter().collect();
        for (name, message) in pending {
            for stage in 0..self.nodes.len() {
                if self.nodes[stage].name() == name {
                    self.call(stage, |node, ctx| node.message(&*message, ctx));
                }
            }
        }
        self.flush();
    }

    /// The pipeline is stopping: every node releases what it holds.
    fn stop(&mut self) {
        self.deliver_messages();
        for stage in 0..self.nodes.len() {
            self.call(stage, |node, ctx| node.stop(ctx));
        }
        self.flush();
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
    /// One round of work; returns how many packets it moved. Draining (`receive` false), RX
    /// queues are left alone.
    #[inline]
    fn poll(&mut self, burst: &mut Burst, size: usize, receive: bool) -> usize {
        match self {
            Task::Complete { rx, chain } => {
                let mut moved = 0;
                if receive {
                    for (queue, counters) in rx {
                        let n = queue.recv_up_to(burst, size);
                        if n > 0 {
                            counters.rx(n as u64);
                            chain.run(burst, 0, false);
                            moved += n;
                        }
                    }
                }
                moved + chain.services(burst, size)
            }
            Task::Rx { rx, ring } => {
                if !receive {
                    return 0;
                }
                let mut moved = 0;
                for (queue, counters) in rx {
                    let n = queue.recv_up_to(burst, size);
                    if n == 0 {
                        continue;
                    }
                    counters.rx(n as u64);
                    burst.push_to(ring);
                    // What did not fit is dropped.
                    let full = burst.clear();
                    if full > 0 {
                        counters.drop(DropReason::RingFull, full as u64);
                    }
                    moved += n;
                }
                moved
            }
            Task::Stages { ring, chain } => {
                let n = burst.pop_from(ring, size);
                if n > 0 {
                    chain.run(burst, 0, false);
                }
                n + chain.services(burst, size)
            }
        }
    }

    fn chain(&mut self) -> Option<&mut Chain> {
        match self {
            Task::Complete { chain, .. } | Task::Stages { chain, .. } => Some(chain),
            Task::Rx { .. } => None,
        }
    }
}

/// The drain on stop, shared by every lcore of a pipeline: done once every lcore has stopped
/// receiving, every ring is empty, and no lcore moved a packet across a quiet interval.
struct Drain {
    lcores: usize,
    arrived: AtomicUsize,
    /// Rounds that moved packets while draining, all lcores together.
    activity: AtomicU64,
    /// Lcores in the middle of a round.
    busy: AtomicUsize,
    done: AtomicBool,
    rings: Vec<Probe>,
}

impl Drain {
    fn new(lcores: usize, rings: Vec<Probe>) -> Drain {
        Drain {
            lcores,
            arrived: AtomicUsize::new(0),
            activity: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            rings,
        }
    }

    fn quiet(&self) -> bool {
        self.arrived.load(Ordering::Acquire) == self.lcores
            && self.busy.load(Ordering::Acquire) == 0
            && self.rings.iter().all(Probe::is_empty)
    }

    /// Whether nothing moved anywhere across a short interval (the main lcore asks).
    fn settled(&self) -> bool {
        if !self.quiet() {
            return false;
        }
        let before = self.activity.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_micros(200));
        self.quiet() && self.activity.load(Ordering::Acquire) == before
    }
}

/// The poll loop of one lcore. `tick(now)` runs every so many rounds (the main lcore reports
/// from it). On stop: RX ends at once; the lcore goes on with its rings, timers and messages
/// until the whole pipeline has drained; then its nodes release what they hold.
fn poll_loop(
    mut tasks: Vec<Task>,
    stop: &StopFlag,
    settings: &Settings,
    mut counters: LoopCounterWriter,
    drain: &Drain,
    tick: &mut dyn FnMut(Instant),
) {
    let mut burst = Burst::new();
    // An lcore with nothing to poll (a main lcore kept free) only reports: let it sleep.
    let idle = if tasks.is_empty() {
        IdlePolicy::NOTHING_TO_POLL
    } else {
        settings.idle
    };
    worker::poll_until_stopped(stop, idle, settings.clock_work, &mut counters, tick, || {
        tasks
            .iter_mut()
            .map(|task| task.poll(&mut burst, settings.burst, true))
            .sum()
    });
    // The lcore whose arrival completes the count decides when the drain is done.
    let decides = drain.arrived.fetch_add(1, Ordering::AcqRel) + 1 == drain.lcores;
    loop {
        drain.busy.fetch_add(1, Ordering::AcqRel);
        let moved: usize = tasks
            .iter_mut()
            .map(|task| task.poll(&mut burst, settings.burst, false))
            .sum();
        if moved > 0 {
            drain.activity.fetch_add(1, Ordering::AcqRel);
        }
        drain.busy.fetch_sub(1, Ordering::AcqRel);
        if drain.done.load(Ordering::Acquire) {
            break;
        }
        if decides && drain.settled() {
            drain.done.store(true, Ordering::Release);
            break;
        }
        std::hint::spin_loop();
    }
    for task in &mut tasks {
        if let Some(chain) = task.chain() {
            chain.stop();
        }
    }
}
