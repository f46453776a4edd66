//! `sluice-l3fwd`: DPDK l3fwd's command line and rule files on the Sluice engine, and a router
//! real hosts can use (ARP, ping, neighbour resolution, live route changes). The app turns
//! its command line into route tables, a [`Router`] and a pipeline of the engine's
//! `Responder` and `L3Forward` stages; the forwarding itself is the engine's.

mod args;

use args::{Command, Lookup, Options, QueueConfig};
use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::net::ethernet::Address;
use sluice::pipeline::{Lane, Mode, Pipeline, Settings};
use sluice::stage::router::{L3Forward, NextHopMac, Responder, Router, RouterPort};
use sluice::stage::table::{
    Acl, AclAction, AclRule, ExactMatch, Fib, Fib6, FlowKey4, FlowKey6, Lpm, Lpm6, RouteTable,
};
use sluice::stage::Node;
use sluice::stats::{MbufUse, RateReport};
use sluice::worker::{IdlePolicy, StopFlag};
use sluice::{Eal, EalBuilder, Mempool, Port, PortConfig, RxQueue, TxQueue, MAX_BURST};
use sluice_l3fwd::control::{self, Control};
use sluice_l3fwd::neighbours;
use sluice_l3fwd::rules::{self, Exact, Route};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (options, eal_args) = match args::parse(&argv[1..]) {
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run { eal, options }) => (options, eal),
        Err(e) => {
            eprintln!("sluice-l3fwd: error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options, eal_args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sluice-l3fwd: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the routes whose port is enabled; the others are l3fwd's "unused ports", skipped
/// with a warning, or an error naming the line under `--strict-routes`.
fn enabled_only<T>(
    rules: Vec<T>,
    port_and_line: impl Fn(&T) -> (u16, usize),
    file: &str,
    options: &Options,
) -> Result<Vec<T>, BoxError> {
    let (mut kept, mut skipped) = (Vec::new(), Vec::new());
    for rule in rules {
        let (port, line) = port_and_line(&rule);
        if port < 32 && options.portmask & (1 << port) != 0 {
            kept.push(rule);
        } else if options.strict_routes && line > 0 {
            return Err(format!(
                "{file}:{line}: port {port} is not enabled in -p {:#x}: enable it or remove the line",
                options.portmask
            )
            .into());
        } else if line > 0 {
            // Built-in rules (line 0) name 16 ports: skipping those is expected, not news.
            skipped.push(port);
        }
    }
    if !skipped.is_empty() {
        skipped.sort_unstable();
        skipped.dedup();
        eprintln!(
            "sluice-l3fwd: warning: {file}: rules to ports not in -p {:#x} skipped, as l3fwd does (ports {:?}; --strict-routes makes this an error)",
            options.portmask, skipped
        );
    }
    Ok(kept)
}

/// How messages name a rule file, or the built-in rules.
fn rule_source(path: &Option<std::path::PathBuf>) -> String {
    path.as_ref()
        .map_or("built-in rules".to_owned(), |p| p.display().to_string())
}

/// The IPv4 and IPv6 tables, and for `--control` the live-changeable LPM with its routes.
struct Tables {
    v4: Arc<dyn RouteTable<FlowKey4>>,
    v6: Arc<dyn RouteTable<FlowKey6>>,
    control: Option<Control>,
}

/// The IPv4 and IPv6 routes of the rule files (or the built-in ones).
type Routes = (Vec<Route<Ipv4Addr>>, Vec<Route<Ipv6Addr>>);

fn load_routes(options: &Options) -> Result<Routes, BoxError> {
    let v4 = match &options.rule_ipv4 {
        Some(p) => rules::parse_lpm_v4(&rules::read(p)?, &p.display().to_string())?,
        None => rules::default_lpm_v4(),
    };
    let v6 = match &options.rule_ipv6 {
        Some(p) => rules::parse_lpm_v6(&rules::read(p)?, &p.display().to_string())?,
        None => rules::default_lpm_v6(),
    };
    Ok((
        enabled_only(
            v4,
            |r| (r.port, r.line),
            &rule_source(&options.rule_ipv4),
            options,
        )?,
        enabled_only(
            v6,
            |r| (r.port, r.line),
            &rule_source(&options.rule_ipv6),
            options,
        )?,
    ))
}

fn build_tables(eal: &Eal, options: &Options, router: &Arc<Router>) -> Result<Tables, BoxError> {
    let node = Some(eal.lcore_socket(eal.main_lcore()));
    match options.lookup {
        Lookup::Lpm => {
            let (v4, v6) = load_routes(options)?;
            let lpm = Arc::new(Lpm::new(eal, (v4.len() as u32 + 1024).max(1 << 16), node)?);
            let mut book = BTreeMap::new();
            for r in &v4 {
                lpm.add(r.prefix, r.depth, r.port)?;
                book.insert((r.prefix, r.depth), r.port);
            }
            let mut lpm6 = Lpm6::new(eal, (v6.len() as u32 + 1024).max(1 << 16), node)?;
            for r in &v6 {
                lpm6.add(r.prefix, r.depth, r.port)?;
            }
            println!("LPM: {} IPv4 and {} IPv6 routes", v4.len(), v6.len());
            Ok(Tables {
                v4: lpm.clone(),
                v6: Arc::new(lpm6),
                control: Some(Control {
                    lpm,
                    routes: Mutex::new(book),
                    routes_v6: v6.iter().map(|r| (r.prefix, r.depth, r.port)).collect(),
                    portmask: options.portmask,
                    router: router.clone(),
                }),
            })
        }
        Lookup::Fib => {
            let (v4, v6) = load_routes(options)?;
            let mut fib = Fib::new(eal, (v4.len() as u32 + 1024).max(1 << 16), node)?;
            for r in &v4 {
                fib.add(r.prefix, r.depth, r.port)?;
            }
            let mut fib6 = Fib6::new(eal, (v6.len() as u32 + 1024).max(1 << 16), node)?;
            for r in &v6 {
                fib6.add(r.prefix, r.depth, r.port)?;
            }
            println!("FIB: {} IPv4 and {} IPv6 routes", v4.len(), v6.len());
            Ok(Tables {
                v4: Arc::new(fib),
                v6: Arc::new(fib6),
                control: None,
            })
        }
        Lookup::ExactMatch => {
            let v4 = match &options.rule_ipv4 {
                Some(p) => rules::parse_em_v4(&rules::read(p)?, &p.display().to_string())?,
                None => rules::default_em_v4(),
            };
            let v6 = match &options.rule_ipv6 {
                Some(p) => rules::parse_em_v6(&rules::read(p)?, &p.display().to_string())?,
                None => rules::default_em_v6(),
            };
            let v4 = enabled_only(
                v4,
                |r: &Exact<FlowKey4>| (r.port, r.line),
                &rule_source(&options.rule_ipv4),
                options,
            )?;
            let v6 = enabled_only(
                v6,
                |r: &Exact<FlowKey6>| (r.port, r.line),
                &rule_source(&options.rule_ipv6),
                options,
            )?;
            let mut em4 = ExactMatch::new(eal, (v4.len() as u32 * 2).max(1024), node)?;
            for r in &v4 {
                em4.add(&r.key, r.port)?;
            }
            let mut em6 = ExactMatch::new(eal, (v6.len() as u32 * 2).max(1024), node)?;
            for r in &v6 {
                em6.add(&r.key, r.port)?;
            }
            println!("exact match: {} IPv4 and {} IPv6 rules", v4.len(), v6.len());
            Ok(Tables {
                v4: Arc::new(em4),
                v6: Arc::new(em6),
                control: None,
            })
        }
        Lookup::Acl => {
            let (Some(p4), Some(p6)) = (&options.rule_ipv4, &options.rule_ipv6) else {
                unreachable!("the command line requires both rule files for acl");
            };
            let (f4, f6) = (p4.display().to_string(), p6.display().to_string());
            let v4 = rules::parse_acl_v4(&rules::read(p4)?, &f4)?;
            let v6 = rules::parse_acl_v6(&rules::read(p6)?, &f6)?;
            let routes_to = |action: AclAction| match action {
                AclAction::Forward(port) => port,
                AclAction::Deny => 0, // denying rules name no port: always kept
            };
            let v4 = enabled_only(v4, |r| (routes_to(r.rule.action), r.line), &f4, options)?;
            let v6 = enabled_only(v6, |r| (routes_to(r.rule.action), r.line), &f6, options)?;
            let algorithm = options
                .acl_algorithm
                .as_deref()
                .and_then(sluice::stage::table::acl_algorithm);
            let rules4: Vec<_> = v4.iter().map(|r| r.rule).collect();
            let rules6: Vec<_> = v6.iter().map(|r| r.rule).collect();
            let acl4 = Acl::<FlowKey4>::new(eal, &rules4, algorithm, node)?;
            let acl6 = Acl::<FlowKey6>::new(eal, &rules6, algorithm, node)?;
            println!(
                "ACL: {} IPv4 rules ({} deny) and {} IPv6 rules ({} deny)",
                rules4.len(),
                denying(&rules4),
                rules6.len(),
                denying(&rules6)
            );
            Ok(Tables {
                v4: Arc::new(acl4),
                v6: Arc::new(acl6),
                control: None,
            })
        }
    }
}

fn denying<A>(rules: &[AclRule<A>]) -> usize {
    rules.iter().filter(|r| r.action == AclAction::Deny).count()
}

/// Static neighbours from a file (see [`neighbours::parse`]).
fn load_neighbours(path: &std::path::Path, router: &Router) -> Result<(), BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the neighbour file: {e}", path.display()))?;
    for (ip, mac) in neighbours::parse(&text, &path.display().to_string())? {
        router.neighbours.set_static(ip, mac);
    }
    Ok(())
}

/// Forwards until SIGINT/SIGTERM; returns whether the final account balanced.
fn run(options: &Options, eal_args: Vec<String>) -> Result<bool, BoxError> {
    let stop = StopFlag::new();
    stop.on_signals()?;
    let eal = EalBuilder::new("sluice-l3fwd").args(eal_args).start()?;

    let available = eal.port_ids();
    let ports: Vec<u16> = (0..32u16)
        .filter(|p| options.portmask & (1 << p) != 0)
        .collect();
    if let Some(missing) = ports.iter().find(|p| !available.contains(p)) {
        return Err(format!(
            "port {missing} in -p {:#x} does not exist: DPDK found ports {available:?} (add devices with -a or --vdev)",
            options.portmask
        )
        .into());
    }

    // Which lcore polls which queue: --config, or queue 0 of every port on the first lcore.
    let lcores = eal.lcores();
    let config: Vec<QueueConfig> = if options.config.is_empty() {
        ports
            .iter()
            .map(|&port| QueueConfig {
                port,
                queue: 0,
                lcore: lcores[0],
            })
            .collect()
    } else {
        options.config.clone()
    };
    for q in &config {
        if !lcores.contains(&q.lcore) {
            return Err(format!(
                "--config ({},{},{}) names lcore {}, which the EAL does not have: lcores are {lcores:?} (-l)",
                q.port, q.queue, q.lcore, q.lcore
            )
            .into());
        }
    }
    for &port in &ports {
        let mut queues: Vec<u16> = config
            .iter()
            .filter(|q| q.port == port)
            .map(|q| q.queue)
            .collect();
        queues.sort_unstable();
        // A port no entry polls only transmits, as in l3fwd: it gets TX queues alone.
        if queues.iter().enumerate().any(|(i, q)| usize::from(*q) != i) {
            return Err(format!(
                "port {port}'s RX queues in --config are {queues:?}: they must be 0, 1, ... without gaps"
            )
            .into());
        }
    }
    let mut rx_lcores: Vec<u32> = config.iter().map(|q| q.lcore).collect();
    rx_lcores.sort_unstable();
    rx_lcores.dedup();
    // Pipelined, each RX lcore hands its bursts to a stage lcore of its own.
    let stage_lcores: Vec<u32> = match options.mode {
        Mode::RunToCompletion => rx_lcores.clone(),
        Mode::Pipelined => {
            let spare: Vec<u32> = lcores
                .iter()
                .copied()
                .filter(|l| !rx_lcores.contains(l))
                .collect();
            if spare.len() < rx_lcores.len() {
                return Err(format!(
                    "pipeline mode needs a stage lcore for each of the {} RX lcores {rx_lcores:?}, but only {spare:?} are free: give more lcores with -l",
                    rx_lcores.len()
                )
                .into());
            }
            spare[..rx_lcores.len()].to_vec()
        }
    };

    // Mbuf pools: per NUMA node (default), one (--no-numa), or per port (--per-port-pool).
    let main_node = eal.lcore_socket(eal.main_lcore());
    let mut infos = Vec::new();
    for &p in &ports {
        infos.push(sluice::port::info(p)?);
    }
    let rx_queues_of = |port: u16| config.iter().filter(|q| q.port == port).count() as u16;
    let tx_queues = stage_lcores.len() as u16;
    let mbufs_per_port = |port: u16| {
        u32::from(rx_queues_of(port)) * u32::from(options.rx_queue_size)
            + u32::from(tx_queues) * u32::from(options.tx_queue_size)
            + stage_lcores.len() as u32 * MAX_BURST as u32
    };
    let pool_key = |i: usize| -> u32 {
        if options.per_port_pool {
            u32::from(ports[i])
        } else if options.no_numa {
            0
        } else {
            infos[i].socket.unwrap_or(main_node)
        }
    };
    let mut pools: Vec<(u32, Mempool)> = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        let key = pool_key(i);
        if pools.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let sharing: u32 = (0..ports.len())
            .filter(|&j| pool_key(j) == key)
            .map(|j| mbufs_per_port(ports[j]))
            .sum();
        let size = (sharing + lcores.len() as u32 * DEFAULT_CACHE).max(8192);
        let node = if options.no_numa {
            main_node
        } else {
            info.socket.unwrap_or(main_node)
        };
        let name = format!("l3fwd_pool_{key}");
        pools.push((
            key,
            Mempool::pktmbuf(
                &eal,
                &name,
                size,
                DEFAULT_CACHE,
                DEFAULT_DATA_ROOM,
                Some(node),
            )?,
        ));
    }

    // Ports: their queues, and what the router knows of them.
    let mut started: Vec<(Port, Vec<RxQueue>, Vec<TxQueue>)> = Vec::new();
    let mut router_ports = Vec::new();
    for (i, &id) in ports.iter().enumerate() {
        let pool = &pools
            .iter()
            .find(|(k, _)| *k == pool_key(i))
            .expect("pool")
            .1;
        let config = PortConfig {
            rx_queues: rx_queues_of(id),
            tx_queues,
            rx_descriptors: options.rx_queue_size,
            tx_descriptors: options.tx_queue_size,
            promiscuous: options.promiscuous,
            rss: (rx_queues_of(id) > 1).then(Default::default),
            mtu: options.max_pkt_len.map(|len| (len - 18) as u16),
        };
        let (port, rx, tx) = Port::start(&eal, id, &config, pool)?;
        let mac = port.mac()?;
        let v4: Vec<(Ipv4Addr, u8)> = options
            .addrs
            .iter()
            .filter_map(|(p, ip, len)| match ip {
                IpAddr::V4(a) if *p == id => Some((*a, *len)),
                _ => None,
            })
            .collect();
        let v6: Vec<(Ipv6Addr, u8)> = options
            .addrs
            .iter()
            .filter_map(|(p, ip, len)| match ip {
                IpAddr::V6(a) if *p == id => Some((*a, *len)),
                _ => None,
            })
            .collect();
        let next_hop = match options.eth_dest.iter().rev().find(|(p, _)| *p == id) {
            Some((_, mac)) => NextHopMac::Fixed(*mac),
            None if !v4.is_empty() || !v6.is_empty() => NextHopMac::Resolve,
            None => NextHopMac::Fixed(Address([2, 0, 0, 0, 0, id as u8])),
        };
        let link = port.link()?;
        println!(
            "port {id}: {}, MAC {mac}, {} RX / {tx_queues} TX queues, link {}, next hop {}{}",
            infos[i].driver,
            rx.len(),
            if link.up {
                format!("up at {} Mbps", link.speed_mbps)
            } else {
                "down".into()
            },
            match next_hop {
                NextHopMac::Fixed(m) => format!("MAC {m}"),
                NextHopMac::Resolve => "resolved by ARP".into(),
            },
            options
                .addrs
                .iter()
                .filter(|(p, ..)| *p == id)
                .map(|(_, ip, len)| format!(", address {ip}/{len}"))
                .collect::<String>()
        );
        if let Some(note) = port.rss().and_then(|r| r.note.clone()) {
            println!("  {note}");
        }
        router_ports.push(RouterPort {
            id,
            mac,
            next_hop,
            v4,
            v6,
        });
        started.push((port, rx, tx));
    }
    let router = Arc::new(Router::new(router_ports));
    if let Some(path) = &options.neighbours {
        load_neighbours(path, &router)?;
    }

    let tables = build_tables(&eal, options, &router)?;
    let control = tables.control.map(Arc::new);
    if let Some(path) = &options.control {
        let control = control
            .clone()
            .expect("--control needs lpm, checked with the options");
        control::serve(control, path)
            .map_err(|e| format!("cannot listen on control socket {}: {e}", path.display()))?;
        println!("control socket: {}", path.display());
    }
    if let Some(control) = &control {
        let control = control.clone();
        if let Err(e) = sluice::stats::telemetry::register_command(
            "/l3fwd/control",
            "sluice-l3fwd control: route add PREFIX/LEN PORT, route del PREFIX/LEN, routes, neighbours, stats",
            move |params| control.reply(params),
        ) {
            eprintln!("sluice-l3fwd: warning: no telemetry control command: {e}");
        }
    }

    // Lanes: one per RX lcore, with its RX queues and a TX queue on every port.
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
    let responds = !options.addrs.is_empty();
    for (lane_index, (&lcore, &stage_lcore)) in rx_lcores.iter().zip(&stage_lcores).enumerate() {
        let mut rx = Vec::new();
        for q in config.iter().filter(|q| q.lcore == lcore) {
            let slot = ports
                .iter()
                .position(|p| *p == q.port)
                .expect("enabled port");
            let queues = &mut started[slot].1;
            let at = queues
                .iter()
                .position(|r| r.queue_id() == q.queue)
                .expect("configured queue");
            rx.push(queues.remove(at));
            println!(
                "lcore {lcore}: RX port {} queue {}{}",
                q.port,
                q.queue,
                if options.mode == Mode::Pipelined {
                    format!(" -> lcore {stage_lcore}: route and TX")
                } else {
                    String::new()
                }
            );
        }
        let tx: Vec<TxQueue> = started
            .iter_mut()
            .map(|(_, _, queues)| {
                let at = queues
                    .iter()
                    .position(|t| usize::from(t.queue_id()) == lane_index)
                    .expect("a TX queue per lane");
                queues.remove(at)
            })
            .collect();
        let mut stages: Vec<Box<dyn Node>> = Vec::new();
        if responds {
            stages.push(Box::new(Responder::new(router.clone())));
        }
        let mut forward = L3Forward::new(
            router.clone(),
            Some(tables.v4.clone()),
            Some(tables.v6.clone()),
            matches!(options.lookup, Lookup::ExactMatch | Lookup::Acl),
        )
        .answer_time_exceeded(options.icmp_rate);
        if options.forward_martians {
            forward = forward.forward_martians();
        }
        stages.push(Box::new(forward));
        pipeline.lane(Lane {
            rx,
            tx,
            stages,
            lcore,
            stage_lcore: (options.mode == Mode::Pipelined).then_some(stage_lcore),
        });
    }
    drop(tables.v4);
    drop(tables.v6);

    let period = Duration::from_secs(u64::from(options.stats_period_s));
    let mut report = RateReport::default();
    let outcome = pipeline.run(&eal, &stop, |stats, since_start| {
        println!("{}", report.line(stats, since_start, period));
    })?;
    println!(
        "\nstopping: {:.2} s of forwarding",
        outcome.elapsed.as_secs_f64()
    );
    if let Some(path) = &options.control {
        let _ = std::fs::remove_file(path);
    }
    drop(started);
    let mbufs = MbufUse {
        in_use: pools.iter().map(|(_, p)| p.in_use()).sum(),
        capacity: pools.iter().map(|(_, p)| p.capacity()).sum(),
    };
    let (account, balanced) = outcome.stats.final_account(outcome.elapsed, mbufs);
    println!("{account}");
    Ok(balanced)
}
