//! `sluice-pktgen`: a traffic generator and receiver on the Sluice engine. Streams built from
//! templates (or a pcap file) leave by TX queues at a paced rate; what comes back is counted
//! per stream (loss, duplicates, reordering) with its one-way latency. One lcore does both, in
//! one poll loop, so that a generator and a device under test can each own a core.

mod args;
mod generator;
mod kv;
mod receiver;
mod report;

use sluice_pktgen::malformed::{self, Spoiler};
use sluice_pktgen::{replay, spec};

use args::{Options, Source};
use generator::{FlowFields, StreamGen};
use receiver::{Counts, Receiver};
use replay::Replay;
use report::{Live, Pace, PortFigures, TrialResult};
use sluice::app::{self, App, Pools, PortPlan, PortSetup, Ports};
use sluice::mempool::DEFAULT_CACHE;
use sluice::net::ethernet::Address;
use sluice::rss::{self, Toeplitz};
use sluice::worker::StopFlag;
use sluice::{Burst, Eal, Mbuf, Mempool, Port, RxQueue, TxQueue, MAX_BURST};
use spec::{Rate, Stream, FCS_LEN};
use std::process::ExitCode;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    app::main("sluice-pktgen", |app, cli: args::Cli| {
        let options = cli.resolve().map_err(app::usage)?;
        run(app, &options)
    })
}

/// What one TX port sends.
enum Packets {
    Streams {
        gens: Vec<StreamGen>,
        /// The stream whose turn is next.
        turn: usize,
    },
    Replay(Replay),
}

/// One TX queue and the packets waiting for it, with the stream and length of each.
struct TxLane {
    queue: TxQueue,
    pending: Burst,
    meta: [(u16, u16); MAX_BURST],
}

/// One TX port: its queues, what it sends and how fast.
struct TxPort {
    id: u16,
    lanes: Vec<TxLane>,
    packets: Packets,
    /// Toeplitz and redirection table, with several queues.
    rss: Option<(Toeplitz, Vec<u16>)>,
    link_bps: Option<f64>,
    mac: Address,
    /// Where its packets' mbufs come from.
    pool: Mempool,
    /// With --malformed: which packets leave spoiled, and how many did.
    spoiler: Option<Spoiler>,
}

/// The stream id a spoiled packet of malformed kind `k` is counted under: none of a stream's.
const MALFORMED: u16 = u16::MAX - malformed::Kind::ALL.len() as u16;

struct RxPort {
    id: u16,
    queues: Vec<RxQueue>,
}

/// What a trial sends, and for how long.
#[derive(Clone, Copy, Debug)]
struct Plan {
    rate: Rate,
    duration: Option<Duration>,
    count: Option<u64>,
    live: bool,
}

/// The ports and everything a run needs.
struct Bench<'a> {
    eal: &'a Eal,
    tx: Vec<TxPort>,
    rx: Vec<RxPort>,
    streams: Vec<Stream>,
    stop: &'a StopFlag,
    options: &'a Options,
}

fn run(mut app: App, options: &Options) -> app::Outcome {
    if let Some(workload) = &options.kv {
        return run_kv(app, options, workload);
    }
    // Pcap files and streams are checked before the EAL starts: bad input fails fast.
    let streams = match &options.source {
        Source::Streams {
            cli, file: None, ..
        } => vec![cli
            .resolve(0, options.tx_ports[0])
            .map_err(|e| e.replace("stream 'stream0': ", ""))?],
        Source::Streams {
            file: Some(path), ..
        } => spec::load_streams(path, options.tx_ports[0])?,
        Source::Pcap { .. } => Vec::new(),
    };
    for s in &streams {
        if !options.tx_ports.contains(&s.port) {
            return Err(format!(
                "stream '{}' sends on port {}, which is not a TX port ({:?}): add it to --tx-port",
                s.name, s.port, options.tx_ports
            )
            .into());
        }
        // Templates are checked here too, with any MAC: the port's is not known yet.
        StreamGen::new(0, s, Default::default(), 0)?;
    }
    let mut replay = match &options.source {
        Source::Pcap { path, loops, .. } => Some(Replay::load(
            path,
            *loops,
            usize::from(spec::MAX_FRAME - FCS_LEN),
        )?),
        Source::Streams { .. } => None,
    };

    let eal = app.start_eal()?;
    let stop = app.stop_flag().clone();
    let mut all_ports: Vec<u16> = options
        .tx_ports
        .iter()
        .chain(&options.rx_ports)
        .copied()
        .collect();
    all_ports.sort_unstable();
    all_ports.dedup();
    let plans: Vec<PortPlan> = all_ports
        .iter()
        .map(|&id| PortPlan {
            id,
            rx_queues: if options.rx_ports.contains(&id) {
                options.rx_queues
            } else {
                1
            },
            tx_queues: if options.tx_ports.contains(&id) {
                options.tx_queues
            } else {
                1
            },
        })
        .collect();
    let setup = PortSetup {
        promiscuous: true,
        pools: Pools::One,
        ..PortSetup::default()
    };
    let mut ports = Ports::start(&eal, &plans, &setup)?;
    let pool = ports.pools().remove(0);
    let descriptors = u32::from(setup.tx_descriptors);

    let (mut tx, mut rx) = (Vec::new(), Vec::new());
    for plan in &plans {
        let id = plan.id;
        let sends = options.tx_ports.contains(&id);
        let receives = options.rx_ports.contains(&id);
        let mac = ports.mac(id)?;
        if sends {
            let mut packets = match replay.take() {
                Some(r) => Packets::Replay(r),
                None if matches!(options.source, Source::Pcap { .. }) => {
                    return Err("--pcap replays on one TX port: give one --tx-port".into())
                }
                None => {
                    let gens = generators(&streams, id, mac, &options.source)?;
                    if gens.is_empty() {
                        println!("  (no stream sends on port {id})");
                    }
                    Packets::Streams { gens, turn: 0 }
                }
            };
            // One stream of one size: its mbufs come from a pool prefilled with the frame
            // (not when some are spoiled: a prefilled mbuf is taken to hold the template).
            let tx_pool = match &mut packets {
                Packets::Streams { gens, .. } if gens.len() == 1 && options.malformed == 0.0 => {
                    match gens[0].single_template().map(<[u8]>::to_vec) {
                        Some(frame) => {
                            let count = (u32::from(options.tx_queues)
                                * (descriptors + MAX_BURST as u32)
                                + DEFAULT_CACHE * 2)
                                .max(4096);
                            Mempool::pktmbuf_prefilled(
                                &eal,
                                &format!("pktgen_tx{id}"),
                                count,
                                DEFAULT_CACHE,
                                Some(eal.lcore_socket(eal.main_lcore())),
                                &frame,
                            )?
                        }
                        None => pool.clone(),
                    }
                }
                _ => pool.clone(),
            };
            let rss = (options.tx_queues > 1).then(|| {
                (
                    Toeplitz::new(&rss::DEFAULT_KEY).expect("the default key is long enough"),
                    rss::round_robin_reta(128, options.tx_queues),
                )
            });
            let mut lanes = Vec::new();
            for queue in 0..options.tx_queues {
                lanes.push(TxLane {
                    queue: ports.tx(id, queue)?,
                    pending: Burst::new(),
                    meta: [(0, 0); MAX_BURST],
                });
            }
            tx.push(TxPort {
                id,
                lanes,
                packets,
                rss,
                link_bps: None,
                mac,
                pool: tx_pool,
                spoiler: (options.malformed > 0.0)
                    .then(|| Spoiler::new(options.malformed, options.seed ^ u64::from(id))),
            });
        }
        if receives {
            let mut queues = Vec::new();
            for queue in 0..options.rx_queues {
                queues.push(ports.rx(id, queue)?);
            }
            rx.push(RxPort { id, queues });
        }
    }
    let started: Vec<&Port> = all_ports
        .iter()
        .map(|&id| ports.port(id))
        .collect::<Result<_, _>>()?;
    // Before the wait: a memif peer starts once it sees its server's ports.
    for &id in &all_ports {
        println!("{}", ports.describe(id, "")?);
    }
    wait_for_links(&started, options.link_wait, &stop)?;
    drop(started);
    for t in &mut tx {
        let link = ports.port(t.id)?.link()?;
        t.link_bps = (link.speed_mbps > 0).then_some(f64::from(link.speed_mbps) * 1e6);
    }

    let mut bench = Bench {
        eal: &eal,
        tx,
        rx,
        streams,
        stop: &stop,
        options,
    };
    let json = match options.rfc2544 {
        Some(search) => report::rfc2544_json(&rfc2544(&mut bench, search)?),
        None => {
            let plan = Plan {
                rate: options.rate,
                duration: options.duration,
                count: options.count,
                live: !options.quiet,
            };
            let result = trial(&mut bench, plan)?;
            println!("{}", report::summary(&result, &bench.streams));
            report::trial_json(&result, &bench.streams)
        }
    };
    // The prefilled pools, beside the ports' own.
    let mut prefilled: Vec<Mempool> = Vec::new();
    for t in &bench.tx {
        if t.pool.name() != pool.name() && prefilled.iter().all(|p| p.name() != t.pool.name()) {
            prefilled.push(t.pool.clone());
        }
    }
    drop(bench);
    drop(pool);
    let mbufs = ports.close();
    let in_use = mbufs.in_use + prefilled.iter().map(Mempool::in_use).sum::<u32>();
    let capacity = mbufs.capacity + prefilled.iter().map(Mempool::capacity).sum::<u32>();
    println!("mbufs in use: {in_use} of {capacity}");
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&json).expect("values serialise");
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(in_use == 0)
}

/// `--workload kv`: the clients of a sluice-kv appliance, on the first TX port.
fn run_kv(mut app: App, options: &Options, workload: &args::KvWorkload) -> app::Outcome {
    let eal = app.start_eal()?;
    let stop = app.stop_flag().clone();
    let id = options.tx_ports[0];
    let setup = PortSetup {
        promiscuous: true,
        pools: Pools::One,
        ..PortSetup::default()
    };
    let mut ports = Ports::start(&eal, &[PortPlan::new(id)], &setup)?;
    println!("{}", ports.describe(id, "")?);
    wait_for_links(&[ports.port(id)?], options.link_wait, &stop)?;
    let pool = ports.pools().remove(0);
    let mac = ports.mac(id)?;
    let (mut rx, mut tx) = (ports.rx(id, 0)?, ports.tx(id, 0)?);
    let link = kv::Link {
        rx: &mut rx,
        tx: &mut tx,
        pool: &pool,
        mac,
        burst: options.burst,
        tsc_hz: eal.tsc_hz(),
    };
    let json = kv::run(
        link,
        workload,
        options.duration,
        options.count,
        options.drain,
        options.seed,
        &stop,
    )?;
    drop((rx, tx, pool));
    let mbufs = ports.close();
    println!("mbufs in use: {} of {}", mbufs.in_use, mbufs.capacity);
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&json).expect("values serialise");
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(mbufs.in_use == 0)
}

fn wait_for_links(ports: &[&Port], wait: Duration, stop: &StopFlag) -> Result<(), BoxError> {
    let deadline = Instant::now() + wait;
    for port in ports {
        loop {
            if port.link()?.up {
                break;
            }
            if Instant::now() >= deadline || stop.is_stopped() {
                return Err(format!(
                    "port {}'s link is still down after {:.1} s (a memif peer not connected?): start the peer or raise --link-wait",
                    port.id(),
                    wait.as_secs_f64()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// The queue RSS would give a flow, as a NIC with `reta` and the default key hashes it.
fn queue_for(rss: &(Toeplitz, Vec<u16>), flow: FlowFields, ipv6: bool) -> usize {
    // The hash input as NICs lay it out (addresses, then ports), on the stack: this runs
    // per packet.
    let mut input = [0u8; rss::MAX_INPUT];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        input[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if ipv6 {
        put(&flow.src.to_be_bytes());
        put(&flow.dst.to_be_bytes());
    } else {
        put(&(flow.src as u32).to_be_bytes());
        put(&(flow.dst as u32).to_be_bytes());
    }
    if let Some((sport, dport)) = flow.ports {
        put(&sport.to_be_bytes());
        put(&dport.to_be_bytes());
    }
    usize::from(rss::queue_for(rss.0.hash(&input[..len]), &rss.1))
}

/// Writes the next packet of `packets` into `m`; returns its stream (u16::MAX for replayed
/// frames) and frame size, or None when the source has nothing more.
#[inline(always)]
fn write_packet(
    packets: &mut Packets,
    m: &mut Mbuf,
    tsc: u64,
    prefilled: bool,
) -> Option<(u16, u16)> {
    match packets {
        Packets::Streams { gens, turn } => {
            let g = if gens.len() == 1 {
                gens.first_mut()?
            } else {
                let i = *turn;
                *turn = if i + 1 == gens.len() { 0 } else { i + 1 };
                gens.get_mut(i)?
            };
            Some((g.id, g.write_next(m, tsc, prefilled)?))
        }
        Packets::Replay(r) => {
            if r.done() || !m.extend_from_slice(r.take()) {
                return None;
            }
            Some((u16::MAX, m.len() as u16 + FCS_LEN))
        }
    }
}

/// Spoils `m` if `spoiler` picks it: its kind (as an index) and new frame size.
fn spoil(spoiler: &mut Spoiler, m: &mut Mbuf) -> Option<(u16, u16)> {
    let (kind, len) = spoiler.maybe_spoil(m.data_mut())?;
    m.truncate(len);
    let index = malformed::Kind::ALL.iter().position(|k| *k == kind)?;
    Some((index as u16, len as u16 + FCS_LEN))
}

/// The flow of the packet `stream` last wrote.
fn last_flow(packets: &Packets, stream: u16) -> Option<FlowFields> {
    match packets {
        Packets::Streams { gens, .. } => gens
            .iter()
            .find(|g| g.id == stream)
            .map(StreamGen::last_flow),
        Packets::Replay(_) => None,
    }
}

impl TxPort {
    /// Builds up to `n` packets stamped with `tsc` into the lanes' pending bursts; returns
    /// how many, fewer when the pool runs dry or the source ends.
    fn build(&mut self, n: usize, tsc: u64, ipv6_streams: &[bool]) -> usize {
        if self.lanes.len() == 1 {
            return self.build_in_place(n, tsc);
        }
        let mut fresh = Burst::new();
        if !self.pool.alloc_into(&mut fresh, n) {
            return 0;
        }
        let prefilled = self.pool.is_prefilled();
        let mut built = 0;
        for mut m in fresh.drain() {
            let Some((mut stream, mut len)) =
                write_packet(&mut self.packets, &mut m, tsc, prefilled)
            else {
                break;
            };
            if let Some((kind, new_len)) = self.spoiler.as_mut().and_then(|s| spoil(s, &mut m)) {
                (stream, len) = (MALFORMED + kind, new_len);
            }
            let lane = match (&self.rss, last_flow(&self.packets, stream)) {
                (Some(rss), Some(flow)) => queue_for(rss, flow, ipv6_streams[usize::from(stream)]),
                _ => 0,
            };
            let lane = &mut self.lanes[lane];
            let at = lane.pending.len();
            if lane.pending.push(m).is_err() {
                break;
            }
            lane.meta[at] = (stream, len);
            built += 1;
        }
        built
    }

    /// With one queue: allocates straight into its pending burst and writes the packets
    /// where they are.
    fn build_in_place(&mut self, n: usize, tsc: u64) -> usize {
        let lane = &mut self.lanes[0];
        let start = lane.pending.len();
        let n = n.min(lane.pending.spare());
        if !self.pool.alloc_into(&mut lane.pending, n) {
            return 0;
        }
        let prefilled = self.pool.is_prefilled();
        let mut built = 0;
        let (fresh, meta) = (
            &mut lane.pending.as_mut_slice()[start..],
            &mut lane.meta[start..],
        );
        match &mut self.packets {
            // One stream: its generator taken once, not per packet.
            Packets::Streams { gens, .. } if gens.len() == 1 => {
                built = gens[0].write_burst(fresh, meta, tsc, prefilled);
            }
            packets => {
                for (m, meta) in fresh.iter_mut().zip(meta) {
                    let Some(written) = write_packet(packets, m, tsc, prefilled) else {
                        break;
                    };
                    *meta = written;
                    built += 1;
                }
            }
        }
        // Mbufs the source had nothing for go back.
        for _ in built..n {
            drop(lane.pending.pop());
        }
        if let Some(spoiler) = &mut self.spoiler {
            let (fresh, meta) = (
                &mut lane.pending.as_mut_slice()[start..start + built],
                &mut lane.meta[start..start + built],
            );
            for (m, meta) in fresh.iter_mut().zip(meta) {
                if let Some((kind, len)) = spoil(spoiler, m) {
                    *meta = (MALFORMED + kind, len);
                }
            }
        }
        built
    }

    /// Offers every lane's pending packets to its queue; counts what left.
    fn flush(&mut self, sent: &mut Counts, per_stream: &mut [Counts]) -> bool {
        let mut all_sent = true;
        for lane in &mut self.lanes {
            if lane.pending.is_empty() {
                continue;
            }
            let n = lane.queue.send(&mut lane.pending);
            // Counted per run of one stream, in registers: a counter in memory bumped per
            // packet is a dependency chain through the store buffer.
            let mut run = (u16::MAX, Counts::default());
            for &(stream, len) in &lane.meta[..n] {
                let kind = stream.checked_sub(MALFORMED).map(usize::from);
                if let (Some(spoiler), Some(kind)) = (&mut self.spoiler, kind) {
                    if let Some(sent) = spoiler.sent.get_mut(kind) {
                        *sent += 1;
                    }
                }
                if stream != run.0 {
                    add_to(per_stream, run);
                    run = (stream, Counts::default());
                }
                run.1.packets += 1;
                run.1.bytes += u64::from(len);
            }
            add_to(per_stream, run);
            sent.packets += n as u64;
            sent.bytes += lane.meta[..n]
                .iter()
                .map(|&(_, len)| u64::from(len))
                .sum::<u64>();
            lane.meta.copy_within(n.., 0);
            all_sent &= lane.pending.is_empty();
        }
        all_sent
    }

    fn mean_frame(&self, streams: &[Stream]) -> f64 {
        match &self.packets {
            Packets::Streams { gens, .. } if !gens.is_empty() => {
                gens.iter()
                    .map(|g| streams[usize::from(g.id)].sizes.mean())
                    .sum::<f64>()
                    / gens.len() as f64
            }
            Packets::Streams { .. } => 64.0,
            Packets::Replay(r) => r.mean_frame(),
        }
    }

    /// Frees what never left (at the end of a trial).
    fn discard_pending(&mut self) {
        for lane in &mut self.lanes {
            lane.pending.clear();
        }
    }
}

/// How long a paced packet may wait for the rest of its burst.
const HOLD: Duration = Duration::from_micros(10);

/// How many bursts a paced port that fell behind may send back to back to catch up; the
/// rest of its debt is forgiven (a stalled peer must not be met with a flood).
const CATCH_UP: u64 = 8;

/// Sends per `plan` and receives until the drain is over; returns every count.
fn trial(bench: &mut Bench, plan: Plan) -> Result<TrialResult, BoxError> {
    let hz = bench.eal.tsc_hz();
    let burst = bench.options.burst;
    let file_timing = matches!(
        bench.options.source,
        Source::Pcap {
            file_timing: true,
            ..
        }
    );
    let ipv6_streams: Vec<bool> = bench.streams.iter().map(|s| s.ipv6).collect();
    // Packets per second per TX port, from the rate and the port's mean frame.
    let mut pps = Vec::new();
    for t in &bench.tx {
        pps.push(plan.rate.pps(t.mean_frame(&bench.streams), t.link_bps)?);
    }
    let mut receiver = Receiver::new(bench.streams.len(), hz);
    let mut sent: Vec<Counts> = vec![Counts::default(); bench.tx.len()];
    let mut stream_tx = vec![Counts::default(); bench.streams.len()];
    let mut built = vec![0u64; bench.tx.len()];
    let mut rx_counts: Vec<Vec<Counts>> = bench
        .rx
        .iter()
        .map(|p| vec![Counts::default(); p.queues.len()])
        .collect();
    let mut live = plan.live.then(|| {
        Live::new(
            &bench.tx.iter().map(|t| t.id).collect::<Vec<_>>(),
            &bench.rx.iter().map(|r| r.id).collect::<Vec<_>>(),
        )
    });
    // Pacing: packets due = ticks since the start × pps / hz, less what was forgiven: a port
    // that fell far behind (the device pushed back) catches up by at most CATCH_UP bursts.
    let start = Instant::now();
    let start_tsc = sluice::clock::tsc();
    let mut forgiven = vec![0u64; bench.tx.len()];
    let mut device_full = vec![0u64; bench.tx.len()];
    let mut sending = true;
    // Deadlines in TSC ticks: reading the clock through the vDSO every round costs more.
    let ticks = |d: Duration| (d.as_secs_f64() * hz as f64) as u64;
    let deadline = plan.duration.map(|d| start_tsc + ticks(d));
    let (drain, short_drain) = (ticks(bench.options.drain), ticks(Duration::from_millis(50)));
    let hold = ticks(HOLD);
    let mut tx_end: Option<(Instant, u64)> = None;
    let mut next_report = start_tsc + hz;
    let mut burst_in = Burst::new();
    loop {
        let now_tsc = sluice::clock::tsc();
        if sending {
            let mut all_done = true;
            for (i, t) in bench.tx.iter_mut().enumerate() {
                let flushed = t.flush(&mut sent[i], &mut stream_tx);
                let limit = plan.count.map_or(u64::MAX, |c| c.saturating_sub(built[i]));
                let exhausted = match &t.packets {
                    Packets::Replay(r) => r.done(),
                    Packets::Streams { gens, .. } => gens.is_empty(),
                };
                if limit == 0 || exhausted {
                    all_done &= flushed;
                    continue;
                }
                all_done = false;
                if !flushed {
                    device_full[i] += 1;
                    continue; // the device is full: no new packets until it takes these
                }
                let mut n = (burst as u64).min(limit);
                if file_timing {
                    if let Packets::Replay(r) = &t.packets {
                        let elapsed_ns = ((u128::from(now_tsc - start_tsc) * 1_000_000_000)
                            / u128::from(hz)) as u64;
                        if r.next_due_ns() > elapsed_ns {
                            continue;
                        }
                        n = 1;
                    }
                } else if let Some(rate) = pps[i] {
                    let ticks = (now_tsc - start_tsc) as f64;
                    let due = (ticks * rate / hz as f64) as u64 - forgiven[i];
                    let mut owed = due.saturating_sub(built[i]);
                    if owed > CATCH_UP * burst as u64 {
                        forgiven[i] += owed - CATCH_UP * burst as u64;
                        owed = CATCH_UP * burst as u64;
                    }
                    // Packets leave in full bursts while the rate fills them quickly; a partial
                    // burst goes once its first packet has waited HOLD (devices pay per burst,
                    // memif a system call to wake its peer).
                    if owed < burst as u64 {
                        let first_due = start_tsc
                            + ((built[i] + forgiven[i] + 1) as f64 * hz as f64 / rate) as u64;
                        if owed == 0 || now_tsc.saturating_sub(first_due) < hold {
                            continue;
                        }
                    }
                    n = n.min(owed);
                }
                if n > 0 {
                    built[i] += t.build(n as usize, now_tsc, &ipv6_streams) as u64;
                    t.flush(&mut sent[i], &mut stream_tx);
                }
            }
            let timed_out = deadline.is_some_and(|d| now_tsc >= d);
            if all_done || timed_out || bench.stop.is_stopped() {
                sending = false;
                tx_end = Some((Instant::now(), sluice::clock::tsc()));
                for t in &mut bench.tx {
                    t.discard_pending();
                }
            }
        }
        for (p, port) in bench.rx.iter_mut().enumerate() {
            for (q, queue) in port.queues.iter_mut().enumerate() {
                let n = queue.recv(&mut burst_in);
                if n == 0 {
                    continue;
                }
                let now = sluice::clock::tsc();
                let c = &mut rx_counts[p][q];
                for m in burst_in.as_slice() {
                    let len = m.len() as u64 + u64::from(FCS_LEN);
                    c.packets += 1;
                    c.bytes += len;
                    receiver.frame(m.data(), len, now);
                }
                burst_in.clear();
            }
        }
        if now_tsc >= next_report {
            next_report += hz;
            if let Some(live) = &mut live {
                let now = Instant::now();
                let tx_totals: Vec<Counts> = sent.clone();
                let rx_totals: Vec<Counts> = rx_counts.iter().map(|q| sum(q)).collect();
                let lost = (!bench.rx.is_empty()).then(|| {
                    stream_tx.iter().map(|c| c.packets).sum::<u64>() as i64
                        - receiver.streams.iter().map(|s| s.unique()).sum::<u64>() as i64
                });
                println!(
                    "{}",
                    live.line(
                        now - start,
                        &tx_totals,
                        &rx_totals,
                        lost,
                        &receiver.take_interval()
                    )
                );
            }
        }
        if let Some((_, end)) = tx_end {
            let since = sluice::clock::tsc() - end;
            if since >= drain || (bench.stop.is_stopped() && since >= short_drain) {
                break;
            }
        }
    }
    let tx_elapsed = tx_end.expect("sending ended").0.duration_since(start);
    Ok(TrialResult {
        tx_elapsed,
        tx: bench
            .tx
            .iter()
            .zip(&sent)
            .map(|(t, c)| PortFigures {
                port: t.id,
                counts: *c,
                queues: Vec::new(),
            })
            .collect(),
        pace: pps
            .iter()
            .zip(&device_full)
            .map(|(&asked_pps, &device_full)| Pace {
                asked_pps,
                device_full,
            })
            .collect(),
        rx: bench
            .rx
            .iter()
            .zip(&rx_counts)
            .map(|(r, q)| PortFigures {
                port: r.id,
                counts: sum(q),
                queues: q.clone(),
            })
            .collect(),
        stream_tx,
        receiver,
        malformed: bench.tx.iter().filter_map(|t| t.spoiler.as_ref()).fold(
            [0; malformed::Kind::ALL.len()],
            |mut all, s| {
                for (a, n) in all.iter_mut().zip(s.sent) {
                    *a += n;
                }
                all
            },
        ),
    })
}

/// Adds a run of one stream's packets to its counts (none for replayed frames).
fn add_to(per_stream: &mut [Counts], (stream, run): (u16, Counts)) {
    if let Some(s) = per_stream.get_mut(usize::from(stream)) {
        s.packets += run.packets;
        s.bytes += run.bytes;
    }
}

fn sum(counts: &[Counts]) -> Counts {
    counts.iter().fold(Counts::default(), |a, c| Counts {
        packets: a.packets + c.packets,
        bytes: a.bytes + c.bytes,
    })
}

/// One frame size's search: the highest rate with loss within tolerance.
pub struct SearchResult {
    pub size: u16,
    /// Zero-loss rate in packets per second, and the trial that showed it.
    pub ndr_pps: f64,
    pub at_ndr: Option<TrialResult>,
    pub trials: Vec<(f64, f64, f64)>,
}

/// RFC 2544 §26.1: per frame size, a trial as fast as the ports go; if it loses packets,
/// a binary search between zero and the rate it reached.
fn rfc2544(bench: &mut Bench, search: args::Search) -> Result<Vec<SearchResult>, BoxError> {
    let sizes: Vec<u16> = {
        let mut all: Vec<u16> = bench
            .streams
            .iter()
            .flat_map(|s| s.sizes.sequence().to_vec())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let original = bench.streams.clone();
    let mut results = Vec::new();
    println!("RFC 2544 zero-loss search: sizes {sizes:?}, {:.1} s trials, loss tolerance {}%, resolution {}%",
        search.trial.as_secs_f64(), search.tolerance_pct, search.resolution_pct);
    for &size in &sizes {
        // Every stream at this one size.
        bench.streams = original
            .iter()
            .map(|s| Stream {
                sizes: spec::Sizes::Cycle(vec![size]),
                ..s.clone()
            })
            .collect();
        rebuild(bench)?;
        let mut trials = Vec::new();
        let mut run_at =
            |bench: &mut Bench, rate: Rate| -> Result<(bool, f64, TrialResult), BoxError> {
                let result = trial(
                    bench,
                    Plan {
                        rate,
                        duration: Some(search.trial),
                        count: None,
                        live: false,
                    },
                )?;
                let (tx, lost) = result.totals_tx_lost();
                let loss_pct = if tx == 0 {
                    100.0
                } else {
                    lost as f64 * 100.0 / tx as f64
                };
                let achieved = tx as f64 / result.tx_elapsed.as_secs_f64() / bench.tx.len() as f64;
                let ok = tx > 0 && loss_pct <= search.tolerance_pct;
                println!(
                    "  {size} bytes: trial at {} -> {:.3} Mpps sent, loss {:.4}% {}",
                    match rate {
                        Rate::Pps(p) => format!("{:.3} Mpps", p / 1e6),
                        _ => "max".into(),
                    },
                    achieved / 1e6,
                    loss_pct,
                    if ok { "pass" } else { "fail" }
                );
                trials.push((
                    match rate {
                        Rate::Pps(p) => p,
                        _ => achieved,
                    },
                    achieved,
                    loss_pct,
                ));
                rebuild(bench)?;
                Ok((ok, achieved, result))
            };
        let (ok, top, first) = run_at(bench, Rate::Unlimited)?;
        let (ndr, at_ndr) = if ok {
            (top, Some(first))
        } else {
            let (mut lo, mut hi, mut best) = (0.0f64, top, None);
            while hi - lo > top * search.resolution_pct / 100.0 && !bench.stop.is_stopped() {
                let mid = (lo + hi) / 2.0;
                let (ok, achieved, result) = run_at(bench, Rate::Pps(mid))?;
                if ok {
                    // What passed is the rate sent, when pacing fell a little short of the one
                    // asked. One no faster than a rate already shown means that the ports go
                    // no faster: the search then comes down to it.
                    let reached = mid.min(achieved);
                    if reached > lo {
                        (lo, best) = (reached, Some(result));
                    } else {
                        hi = mid;
                    }
                } else {
                    hi = mid;
                }
            }
            (if best.is_some() { lo } else { 0.0 }, best)
        };
        println!("  {size} bytes: zero-loss rate {:.3} Mpps", ndr / 1e6);
        results.push(SearchResult {
            size,
            ndr_pps: ndr,
            at_ndr,
            trials,
        });
        if bench.stop.is_stopped() {
            break;
        }
    }
    println!("{}", report::rfc2544_table(&results));
    Ok(results)
}

/// Generators (sequence numbers from zero) for the streams that send on `port`; stream ids
/// are indices into `streams`.
fn generators(
    streams: &[Stream],
    port: u16,
    mac: Address,
    source: &Source,
) -> Result<Vec<StreamGen>, String> {
    let seed = match source {
        Source::Streams { seed, .. } => *seed,
        Source::Pcap { .. } => 0,
    };
    streams
        .iter()
        .enumerate()
        .filter(|(_, s)| s.port == port)
        .map(|(i, s)| StreamGen::new(i as u16, s, mac, seed))
        .collect()
}

/// Fresh stream generators (sequence numbers from zero) for the next trial.
fn rebuild(bench: &mut Bench) -> Result<(), BoxError> {
    for t in &mut bench.tx {
        if let Packets::Streams { gens, turn } = &mut t.packets {
            *gens = generators(&bench.streams, t.id, t.mac, &bench.options.source)?;
            *turn = 0;
        }
    }
    // Let stragglers of the last trial arrive and go before the next one counts.
    std::thread::sleep(Duration::from_millis(50));
    for port in &mut bench.rx {
        for q in &mut port.queues {
            let mut b = Burst::new();
            while q.recv(&mut b) > 0 {
                b.clear();
            }
        }
    }
    Ok(())
}
