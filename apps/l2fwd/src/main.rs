//! `sluice-l2fwd`: DPDK l2fwd's command line on the Sluice engine. Every packet received on
//! a port leaves by its paired port, MACs rewritten unless `--no-mac-updating`.

mod args;

use args::{Command, Options};
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::net::ethernet::{Address, Frame};
use sluice::stats::{counters, CounterWriter, Counters, DropReason, Snapshot};
use sluice::worker::{self, StopFlag};
use sluice::{Burst, EalBuilder, Mempool, Port, PortConfig, RxQueue, TxQueue, MAX_BURST};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets asked of an RX queue per poll (DPDK l2fwd's MAX_PKT_BURST).
const BURST: usize = 32;
/// How often a TX queue that took part of a burst is offered the rest before it is dropped.
const TX_RETRIES: u32 = 4;
const DESCRIPTORS: u16 = 1024;

/// One direction of forwarding: everything from `rx` goes out of `tx`. Owned by one lcore.
struct Route {
    rx: RxQueue,
    tx: TxQueue,
    /// Source and destination MAC to write, when MAC updating is on.
    rewrite: Option<(Address, Address)>,
    counters: CounterWriter,
}

impl Route {
    /// One poll: receive a burst, rewrite it, send it; returns how many packets came in.
    #[inline]
    fn poll(&mut self, burst: &mut Burst) -> usize {
        // Ask for at most BURST (the Burst holds up to MAX_BURST).
        debug_assert!(burst.is_empty());
        let n = self.rx.recv_up_to(burst, BURST);
        if n == 0 {
            return 0;
        }
        self.counters.rx(n as u64);
        if let Some((src, dst)) = self.rewrite {
            let short = burst.retain_mut(|m| match Frame::new_checked(m.data_mut()) {
                Ok(mut frame) => {
                    frame.set_src_addr(src);
                    frame.set_dst_addr(dst);
                    true
                }
                Err(_) => false,
            });
            self.counters.drop(DropReason::Truncated, short as u64);
        }
        let sent = self.tx.send_bounded(burst, TX_RETRIES);
        self.counters.tx(sent as u64);
        let unsent = burst.clear();
        self.counters.drop(DropReason::TxFull, unsent as u64);
        n
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (options, eal_args) = match args::parse(&argv[1..]) {
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run { eal, options }) => (options, eal),
        Err(e) => {
            eprintln!("sluice-l2fwd: error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options, eal_args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sluice-l2fwd: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Forwards until SIGINT/SIGTERM; returns whether the final account balanced.
fn run(options: &Options, eal_args: Vec<String>) -> Result<bool, Box<dyn std::error::Error>> {
    let stop = StopFlag::new();
    stop.on_signals()?;
    let eal = EalBuilder::new("sluice-l2fwd").args(eal_args).start()?;
    let routes = args::pair_ports(options, &eal.port_ids())?;
    println!(
        "MAC updating {}",
        if options.mac_updating {
            "enabled"
        } else {
            "disabled"
        }
    );

    // Every lcore, main included, takes up to -q RX ports, in port order (as l2fwd does).
    let lcores = eal.lcores();
    let per_lcore = options.rx_ports_per_lcore as usize;
    let lcores_needed = routes.len().div_ceil(per_lcore);
    if lcores_needed > lcores.len() {
        return Err(format!(
            "{} ports at -q {per_lcore} need {lcores_needed} lcores, but the EAL has {} (-l): give more lcores with -l, or raise -q to {}",
            routes.len(),
            lcores.len(),
            routes.len().div_ceil(lcores.len())
        )
        .into());
    }

    let ports_used = routes.len() as u32;
    let mbufs = (ports_used * (2 * u32::from(DESCRIPTORS) + MAX_BURST as u32)
        + lcores_needed as u32 * DEFAULT_CACHE)
        .max(8192);
    let pool = Mempool::pktmbuf(
        &eal,
        "l2fwd_pool",
        mbufs,
        DEFAULT_CACHE,
        DEFAULT_DATA_ROOM,
        None,
    )?;
    let config = PortConfig {
        promiscuous: options.promiscuous,
        rx_descriptors: DESCRIPTORS,
        tx_descriptors: DESCRIPTORS,
        ..PortConfig::default()
    };
    let mut ports = Vec::new();
    let mut queues = Vec::new();
    for &(port_id, _) in &routes {
        let (port, rx, tx) = Port::start(&eal, port_id, &config, &pool)?;
        let info = sluice::port::info(port_id)?;
        let link = port.link()?;
        println!(
            "port {port_id}: {}, MAC {}, link {}",
            info.driver,
            port.mac()?,
            if link.up {
                format!("up at {} Mbps", link.speed_mbps)
            } else {
                "down".to_owned()
            }
        );
        queues.push((rx.into_iter().next(), tx.into_iter().next()));
        ports.push(port);
    }
    let index_of = |id: u16| {
        routes
            .iter()
            .position(|&(p, _)| p == id)
            .expect("routed port")
    };

    // Build each direction's route; `shared[i]` reads the counters of route i.
    let mut shared: Vec<Arc<Counters>> = Vec::new();
    let mut built = Vec::new();
    for &(rx_port, tx_port) in &routes {
        let rx = queues[index_of(rx_port)]
            .0
            .take()
            .expect("one RX queue per port");
        let tx = queues[index_of(tx_port)]
            .1
            .take()
            .expect("each port is one route's TX");
        let rewrite = if options.mac_updating {
            Some((
                ports[index_of(tx_port)].mac()?,
                Address([2, 0, 0, 0, 0, tx_port as u8]),
            ))
        } else {
            None
        };
        let (writer, reader) = counters();
        shared.push(reader);
        built.push(Route {
            rx,
            tx,
            rewrite,
            counters: writer,
        });
    }

    // Deal routes to lcores: the first -q to the main lcore, the next -q to the next, ...
    let mut per_lcore_routes: Vec<Vec<Route>> = Vec::new();
    let mut it = built.into_iter().peekable();
    while it.peek().is_some() {
        per_lcore_routes.push(it.by_ref().take(per_lcore).collect());
    }
    for (lcore, routes_here) in lcores.iter().zip(&per_lcore_routes) {
        for r in routes_here {
            println!(
                "lcore {lcore}: RX port {} TX port {}",
                r.rx.port_id(),
                r.tx.port_id()
            );
        }
    }
    let mut per_lcore_routes = per_lcore_routes.into_iter();
    let main_routes = per_lcore_routes.next().unwrap_or_default();
    let mut workers = Vec::new();
    for (lcore, routes_here) in lcores[1..].iter().zip(per_lcore_routes) {
        let stop = stop.clone();
        workers.push(worker::launch(&eal, *lcore, move || {
            forward(routes_here, &stop, None)
        })?);
    }

    let started = Instant::now();
    let report = Report {
        period: Duration::from_secs(u64::from(options.stats_period_s)),
        routes: routes.clone(),
        shared: shared.clone(),
    };
    forward(main_routes, &stop, Some(&report));
    let elapsed = started.elapsed();
    println!("\nstopping: {:.2} s of forwarding", elapsed.as_secs_f64());
    for w in workers {
        w.join()?;
    }
    // Queues went with their routes; the last handles close the ports and release their mbufs.
    drop(ports);
    let in_use = pool.in_use();
    Ok(final_account(
        &routes,
        &shared,
        elapsed,
        in_use,
        pool.capacity(),
    ))
}

/// Periodic statistics printed by the main lcore between its polls.
struct Report {
    period: Duration,
    routes: Vec<(u16, u16)>,
    shared: Vec<Arc<Counters>>,
}

impl Report {
    /// Per port: RX counted by the route leaving it; TX and drops by the route entering it.
    fn per_port(&self) -> Vec<(u16, Snapshot)> {
        self.routes
            .iter()
            .map(|&(port, _)| {
                let from = self.shared[self
                    .routes
                    .iter()
                    .position(|&(rx, _)| rx == port)
                    .expect("route")]
                .snapshot();
                let into = self
                    .routes
                    .iter()
                    .zip(&self.shared)
                    .filter(|((_, tx), _)| *tx == port)
                    .map(|(_, c)| c.snapshot())
                    .sum::<Snapshot>();
                (
                    port,
                    Snapshot {
                        rx: from.rx,
                        ..into
                    },
                )
            })
            .collect()
    }

    fn print_line(
        &self,
        since_start: Duration,
        previous: &mut Vec<(u16, Snapshot)>,
        over: Duration,
    ) {
        let now = self.per_port();
        let secs = over.as_secs_f64().max(1e-9);
        let mut line = format!("[{:7.1}s]", since_start.as_secs_f64());
        for (i, (port, s)) in now.iter().enumerate() {
            let before = previous.get(i).map(|p| p.1).unwrap_or_default();
            line.push_str(&format!(
                "  port {port}: rx {:.3} Mpps tx {:.3} Mpps drop {}",
                (s.rx - before.rx) as f64 / secs / 1e6,
                (s.tx - before.tx) as f64 / secs / 1e6,
                s.dropped() - before.dropped()
            ));
        }
        println!("{line}");
        *previous = now;
    }
}

/// The poll loop of one lcore; the main lcore also prints the periodic report.
fn forward(mut routes: Vec<Route>, stop: &StopFlag, report: Option<&Report>) {
    let mut burst = Burst::new();
    let started = Instant::now();
    let mut last_report = started;
    let mut previous = Vec::new();
    // Checking the clock costs more than a poll: look only every so many rounds.
    let mut rounds: u32 = 0;
    while !stop.is_stopped() {
        for route in &mut routes {
            route.poll(&mut burst);
        }
        rounds = rounds.wrapping_add(1);
        if let Some(report) = report {
            if rounds.is_multiple_of(1024) {
                let now = Instant::now();
                if !report.period.is_zero() && now - last_report >= report.period {
                    report.print_line(now - started, &mut previous, now - last_report);
                    last_report = now;
                }
                if routes.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// Prints the final account; true when every packet received was sent or dropped for a
/// counted reason and every mbuf is back in its pool.
fn final_account(
    routes: &[(u16, u16)],
    shared: &[Arc<Counters>],
    elapsed: Duration,
    in_use: u32,
    capacity: u32,
) -> bool {
    let report = Report {
        period: Duration::ZERO,
        routes: routes.to_vec(),
        shared: shared.to_vec(),
    };
    println!("final account:");
    for (port, s) in report.per_port() {
        println!(
            "  port {port}: rx {} tx {} dropped {} ({})",
            s.rx,
            s.tx,
            s.dropped(),
            s.drops_by_reason()
        );
    }
    let total: Snapshot = shared.iter().map(|c| c.snapshot()).sum();
    let balanced = total.rx == total.tx + total.dropped();
    println!(
        "  total: rx {} = tx {} + dropped {} ({}){}",
        total.rx,
        total.tx,
        total.dropped(),
        total.drops_by_reason(),
        if balanced { "" } else { "  MISMATCH" }
    );
    println!(
        "  forwarding rate: {:.3} Mpps over {:.2} s",
        total.tx as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
        elapsed.as_secs_f64()
    );
    println!("  mbufs in use: {in_use} of {capacity}");
    balanced && in_use == 0
}
