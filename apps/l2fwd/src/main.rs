//! `sluice-l2fwd`: DPDK l2fwd's command line on the Sluice engine. Every packet received on
//! a port leaves by its paired port, MACs rewritten unless `--no-mac-updating`. The app only
//! turns its command line into a pipeline: ports, lanes, and the engine's `L2Forward` stage.

mod args;

use args::{Command, Options};
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::pipeline::{Lane, Mode, Pipeline, Settings};
use sluice::stage::L2Forward;
use sluice::stats::{MbufUse, RateReport};
use sluice::topology::{self, Lcore, Topology, Work};
use sluice::worker::{IdlePolicy, StopFlag};
use sluice::{EalBuilder, Mempool, Port, PortConfig, RxQueue, TxQueue, MAX_BURST};
use std::process::ExitCode;
use std::time::Duration;

const DESCRIPTORS: u16 = 1024;

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

    // As l2fwd: every lcore, main included, takes up to -q RX ports, in port order. Pipelined,
    // each such group needs a second lcore for its stage.
    let lcores = eal.lcores();
    let per_group = options.rx_ports_per_lcore as usize;
    let groups = routes.len().div_ceil(per_group);
    let lcores_per_group = if options.mode == Mode::Pipelined {
        2
    } else {
        1
    };
    if groups * lcores_per_group > lcores.len() {
        let raise = routes
            .len()
            .div_ceil((lcores.len() / lcores_per_group).max(1));
        return Err(format!(
            "{} ports at -q {per_group} need {} lcores{}, but the EAL has {} (-l): give more lcores with -l{}",
            routes.len(),
            groups * lcores_per_group,
            if lcores_per_group == 2 { " in pipeline mode" } else { "" },
            lcores.len(),
            if lcores.len() >= lcores_per_group {
                format!(", or raise -q to {raise}")
            } else {
                String::new()
            }
        )
        .into());
    }

    // One pool per NUMA node the ports are on, so that packets stay in their node's memory;
    // a port of no known node (a virtual device) uses the main lcore's.
    let mut port_info = Vec::new();
    for &(port_id, _) in &routes {
        port_info.push(sluice::port::info(port_id)?);
    }
    let main_node = eal.lcore_socket(eal.main_lcore());
    let node_of = |info: &sluice::port::PortInfo| info.socket.unwrap_or(main_node);
    let mbufs = (2 * u32::from(DESCRIPTORS) + MAX_BURST as u32) * routes.len() as u32
        + (groups * lcores_per_group) as u32 * DEFAULT_CACHE;
    let mut pools: Vec<(u32, Mempool)> = Vec::new();
    for info in &port_info {
        let node = node_of(info);
        if !pools.iter().any(|(n, _)| *n == node) {
            let name = format!("l2fwd_pool_{node}");
            let pool = Mempool::pktmbuf(
                &eal,
                &name,
                mbufs.max(8192),
                DEFAULT_CACHE,
                DEFAULT_DATA_ROOM,
                Some(node),
            )?;
            pools.push((node, pool));
        }
    }

    // Which lcore serves each group of -q ports (and, pipelined, runs its stage).
    let topology = Topology::detect().unwrap_or_else(|e| {
        eprintln!("sluice-l2fwd: warning: {e}; placing without topology");
        Topology { pus: Vec::new() }
    });
    let mut work = Vec::new();
    for group in routes.chunks(per_group) {
        let ports: Vec<String> = group.iter().map(|r| r.0.to_string()).collect();
        let node = port_info[routes.iter().position(|r| r == &group[0]).expect("route")].socket;
        work.push(Work {
            label: format!("RX port(s) {}", ports.join(",")),
            node,
        });
        if options.mode == Mode::Pipelined {
            work.push(Work {
                label: format!("stage and TX for port(s) {}", ports.join(",")),
                node,
            });
        }
    }
    let lcore_list: Vec<Lcore> = lcores
        .iter()
        .map(|&id| Lcore {
            id,
            cpu: eal.lcore_cpu(id),
        })
        .collect();
    let plan = topology::plan(&topology, &lcore_list, &work)?;
    if options.print_placement {
        println!("topology: {}", topology.describe());
        for (info, &(port, _)) in port_info.iter().zip(&routes) {
            let node = info
                .socket
                .map_or("unknown (virtual device)".to_owned(), |n| n.to_string());
            println!("port {port}: {}, NUMA node {node}", info.driver);
        }
        println!("placement:");
        for line in &plan.explanation {
            println!("  {line}");
        }
        return Ok(true);
    }

    let config = PortConfig {
        promiscuous: options.promiscuous,
        rx_descriptors: DESCRIPTORS,
        tx_descriptors: DESCRIPTORS,
        ..PortConfig::default()
    };
    let mut ports: Vec<(Port, Option<RxQueue>, Option<TxQueue>)> = Vec::new();
    for (info, &(port_id, _)) in port_info.iter().zip(&routes) {
        let pool = &pools
            .iter()
            .find(|(n, _)| *n == node_of(info))
            .expect("pool per node")
            .1;
        let (port, rx, tx) = Port::start(&eal, port_id, &config, pool)?;
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
        ports.push((port, rx.into_iter().next(), tx.into_iter().next()));
    }
    // `ports` follows `routes`' order: a port's slot is its route's index.
    let slot = |id: u16| {
        routes
            .iter()
            .position(|&(p, _)| p == id)
            .expect("routed port")
    };

    let mut pipeline = Pipeline::new(Settings {
        mode: options.mode,
        idle: if options.idle {
            IdlePolicy::default()
        } else {
            IdlePolicy::Off
        },
        report_period: Duration::from_secs(u64::from(options.stats_period_s)),
        ..Settings::default()
    });
    let mut placed = plan.lcores.iter().copied();
    for group_routes in routes.chunks(per_group) {
        let lcore = placed.next().expect("a plan entry per group");
        let stage_lcore =
            (options.mode == Mode::Pipelined).then(|| placed.next().expect("a stage lcore"));
        let mut lane = Lane {
            rx: vec![],
            tx: vec![],
            stages: vec![],
            lcore,
            stage_lcore,
        };
        let mut forward = Vec::new();
        for &(rx_port, tx_port) in group_routes {
            lane.rx.push(
                ports[slot(rx_port)]
                    .1
                    .take()
                    .expect("one RX queue per port"),
            );
            lane.tx.push(
                ports[slot(tx_port)]
                    .2
                    .take()
                    .expect("each port is one route's TX"),
            );
            let mac = if options.mac_updating {
                Some(ports[slot(tx_port)].0.mac()?)
            } else {
                None
            };
            forward.push((rx_port, tx_port, mac));
            match stage_lcore {
                Some(s) => {
                    println!("lcore {lcore}: RX port {rx_port} -> lcore {s}: TX port {tx_port}")
                }
                None => println!("lcore {lcore}: RX port {rx_port} TX port {tx_port}"),
            }
        }
        lane.stages.push(Box::new(L2Forward::new(&forward)));
        pipeline.lane(lane);
    }

    let period = Duration::from_secs(u64::from(options.stats_period_s));
    let mut report = RateReport::default();
    let outcome = pipeline.run(&eal, &stop, |stats, since_start| {
        println!("{}", report.line(stats, since_start, period));
    })?;
    println!(
        "\nstopping: {:.2} s of forwarding",
        outcome.elapsed.as_secs_f64()
    );
    // The queues went with the pipeline; the last handles close the ports and free their mbufs.
    drop(ports);
    let mbufs = MbufUse {
        in_use: pools.iter().map(|(_, p)| p.in_use()).sum(),
        capacity: pools.iter().map(|(_, p)| p.capacity()).sum(),
    };
    let (account, balanced) = outcome.stats.final_account(outcome.elapsed, mbufs);
    println!("{account}");
    Ok(balanced)
}
