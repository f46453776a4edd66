//! `sluice-l3fwd`: DPDK l3fwd's command line and rule files on the Sluice engine, and a router
//! real hosts can use (ARP, ping, neighbour resolution, live route changes). The app is its
//! options, its route tables, a [`Router`] and the engine's `Responder` and `L3Forward`
//! stages on every lane; the forwarding itself is the engine's.

use clap::Parser;
use sluice::app::options::{self, Portmask};
use sluice::app::{
    self, usage, App, ControlSocket, Outcome, Pools, PortSetup, Ports, QueueConfig, QueuePlan,
};
use sluice::net::ethernet::Address;
use sluice::pipeline::{Mode, Pipeline, Settings};
use sluice::stage::neighbour::HOLD_TOTAL;
use sluice::stage::router::{L3Forward, NextHopMac, Responder, Router, RouterPort};
use sluice::stage::table::{
    Acl, AclAction, AclRule, ExactMatch, Fib, Fib6, FlowKey4, FlowKey6, Lpm, Lpm6, RouteTable,
};
use sluice::stage::Node;
use sluice::worker::IdlePolicy;
use sluice::Eal;
use sluice_l3fwd::control::Control;
use sluice_l3fwd::neighbours;
use sluice_l3fwd::rules::{self, Exact, Route};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error>;

/// Routes IPv4 and IPv6 between ports as DPDK's l3fwd does, checking headers as RFC 1812 asks.
///
/// l3fwd's options come first, then Sluice's own (from --stats-period on).
#[derive(Parser, Debug)]
#[command(after_help = "example (no NIC needed):
  sluice-l3fwd -l 0 --vdev net_pcap0,rx_pcap=in.pcap,infinite_rx=1 \\
               --vdev net_null0,no-rx=1 -- -p 0x3 --config \"(0,0,0),(1,0,0)\"")]
struct Options {
    /// Hexadecimal mask of the ports to use (0x3: ports 0 and 1)
    #[arg(short = 'p', value_name = "PORTMASK", value_parser = options::portmask)]
    portmask: Option<Portmask>,
    /// Promiscuous mode
    #[arg(short = 'P')]
    promiscuous: bool,
    /// Which lcore polls which RX queue, e.g. "(0,0,1),(1,0,1)" (default: queue 0 of every
    /// port on the first lcore)
    #[arg(long, value_name = "(PORT,QUEUE,LCORE)...", value_parser = options::config)]
    // Fully qualified: one value that is a list, not a list of values.
    config: Option<::std::vec::Vec<QueueConfig>>,
    /// lpm (rte_lpm/rte_lpm6), em (exact match of the 5-tuple on rte_hash), fib
    /// (rte_fib/rte_fib6) or acl (rte_acl: rules on prefixes, port ranges and protocol)
    /// [default: lpm]
    #[arg(long, value_name = "METHOD", value_parser = lookup)]
    lookup: Option<Lookup>,
    /// --lookup lpm
    #[arg(short = 'L')]
    lpm: bool,
    /// --lookup em
    #[arg(short = 'E')]
    exact_match: bool,
    /// IPv4 rules in l3fwd's format: R<prefix>/<depth> <port> for lpm and fib,
    /// R<dst> <src> <dport> <sport> <proto> <port> for em (default: l3fwd's built-in table,
    /// 198.18.P.0/24 to port P). For acl (required, as in l3fwd) @ lines drop and R lines
    /// route, first match wins: @<src/len> <dst/len> <sport lo> : <sport hi> <dport lo> :
    /// <dport hi> <proto/mask>, R<same fields> <port>
    #[arg(long = "rule_ipv4", value_name = "FILE")]
    rule_ipv4: Option<PathBuf>,
    /// IPv6 rules, same formats (default: 2001:200:0:P::/64 to port P)
    #[arg(long = "rule_ipv6", value_name = "FILE")]
    rule_ipv6: Option<PathBuf>,
    /// The ACL's classifier: scalar, sse, avx2, neon, altivec, avx512x16 or avx512x32
    /// (default: the best this CPU runs)
    #[arg(long, value_name = "ALGORITHM", value_parser = acl_algorithm)]
    alg: Option<String>,
    /// Destination MAC of packets leaving port X (default 02:00:00:00:00:X, unless port X
    /// has an --addr); repeatable
    #[arg(long, value_name = "X,MAC", value_parser = options::eth_dest)]
    eth_dest: Vec<(u16, Address)>,
    /// RX descriptors per queue
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = options::descriptors)]
    rx_queue_size: u16,
    /// TX descriptors per queue
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = options::descriptors)]
    tx_queue_size: u16,
    /// Largest frame to receive, 64 to 9600 (default: the port's MTU)
    #[arg(long, value_name = "LEN", value_parser = clap::value_parser!(u32).range(64..=9600))]
    max_pkt_len: Option<u32>,
    /// One mbuf pool for all ports, on the main lcore's node
    #[arg(long)]
    no_numa: bool,
    /// One mbuf pool per port
    #[arg(long)]
    per_port_pool: bool,
    /// Accepted for compatibility: Sluice always forwards both families
    #[arg(long)]
    ipv6: bool,
    /// Accepted for compatibility: Sluice parses headers in software
    #[arg(long)]
    parse_ptype: bool,
    /// Accepted for compatibility: Sluice sizes tables from the rules
    #[arg(long, value_name = "N")]
    hash_entry_num: Option<u32>,
    /// rtc or poll: each lcore polls, routes and transmits; pipeline: each RX lcore hands
    /// bursts over a ring to a second lcore (taken from the EAL's lcores not in --config)
    /// that routes and sends
    #[arg(long, value_name = "MODE", default_value = "rtc", value_parser = options::mode)]
    mode: Mode,
    /// One line of rates every S seconds (0: off)
    #[arg(long, value_name = "S", default_value_t = 0)]
    stats_period: u32,
    /// An address of the router on PORT (repeatable; IPv4 or IPv6): the router answers ARP,
    /// neighbour solicitations and ping for it, and resolves next hops on that port by ARP
    /// and neighbour discovery instead of using a fixed destination MAC
    #[arg(long, value_name = "PORT,IP/LEN", value_parser = options::addr)]
    addr: Vec<(u16, IpAddr, u8)>,
    /// ICMP error answers per second and lcore: time exceeded for packets whose TTL or hop
    /// limit runs out, destination unreachable for packets without a route or whose next hop
    /// never answers (from the --addr of the port they came in by; 0: none, they are dropped
    /// as ttl_exceeded, no_route and no_neighbour); and as many again of answers to what the
    /// router does not serve: port unreachable for UDP, a reset for TCP, protocol unreachable
    /// for other transports (else consumed as local)
    #[arg(long, value_name = "N", default_value_t = 100)]
    icmp_rate: u32,
    /// Static neighbours, one "IP MAC" per line (# comments)
    #[arg(long, value_name = "FILE")]
    neighbours: Option<PathBuf>,
    /// A Unix socket taking one command per line: route add PREFIX/LEN PORT, route del
    /// PREFIX/LEN, routes, neighbours, stats (needs --lookup lpm)
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Forward packets from or to martian addresses (0/8, 127/8, 169.254/16, 224/4, 240/4;
    /// ::, ::1, fe80::/10, ff00::/8) and directed broadcasts to the --addr subnets; by
    /// default they are dropped as martian (RFC 1812 5.3.7 lets the operator switch the
    /// check off)
    #[arg(long)]
    forward_martians: bool,
    /// A route to a port not in -p is an error (default: skipped with a warning, as l3fwd
    /// does, so its shipped files load with any -p)
    #[arg(long)]
    strict_routes: bool,
    /// adaptive, or off (poll flat out; benchmarks)
    #[arg(long, value_name = "POLICY", default_value = "adaptive", value_parser = options::idle)]
    idle: IdlePolicy,
}

/// Which table routes a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Lpm,
    ExactMatch,
    Fib,
    Acl,
}

fn lookup(text: &str) -> Result<Lookup, String> {
    match text {
        "lpm" => Ok(Lookup::Lpm),
        "em" => Ok(Lookup::ExactMatch),
        "fib" => Ok(Lookup::Fib),
        "acl" => Ok(Lookup::Acl),
        _ => Err("expected lpm, em, fib or acl".into()),
    }
}

fn acl_algorithm(text: &str) -> Result<String, String> {
    match sluice::stage::table::acl_algorithm(text) {
        Some(_) => Ok(text.to_owned()),
        None => Err(format!(
            "unknown --alg '{text}': expected one of {}",
            sluice::stage::table::ACL_ALGORITHMS
        )),
    }
}

impl Options {
    fn mask(&self) -> u32 {
        self.portmask.map_or(0, |m| m.0)
    }

    fn lookup(&self) -> Lookup {
        match (self.lpm, self.exact_match) {
            (true, _) => Lookup::Lpm,
            (_, true) => Lookup::ExactMatch,
            _ => self.lookup.unwrap_or(Lookup::Lpm),
        }
    }

    /// What the options say together, checked before the EAL starts.
    fn check(&self) -> Result<Portmask, BoxError> {
        let mask = self
            .portmask
            .ok_or_else(|| usage("missing -p PORTMASK (for example -p 0x3 for ports 0 and 1)"))?;
        let chosen = [
            self.lpm.then_some(Lookup::Lpm),
            self.exact_match.then_some(Lookup::ExactMatch),
            self.lookup,
        ];
        let mut chosen: Vec<Lookup> = chosen.into_iter().flatten().collect();
        chosen.dedup();
        if chosen.len() > 1 {
            return Err(usage(
                "only one lookup method at a time: give one of --lookup, -L, -E",
            ));
        }
        for q in self.config.iter().flatten() {
            if !mask.contains(q.port) {
                return Err(usage(format!(
                    "--config names port {} ({},{},{}), which -p {mask} does not enable",
                    q.port, q.port, q.queue, q.lcore
                )));
            }
        }
        for (port, ..) in &self.addr {
            if !mask.contains(*port) {
                return Err(usage(format!(
                    "--addr names port {port}, which -p {mask} does not enable"
                )));
            }
        }
        let lookup = self.lookup();
        if lookup == Lookup::Acl && (self.rule_ipv4.is_none() || self.rule_ipv6.is_none()) {
            return Err(usage(
                "--lookup acl needs --rule_ipv4=FILE and --rule_ipv6=FILE (an ACL has no built-in rules), \
                 e.g. a line R0.0.0.0/0 198.18.1.0/24 0 : 65535 0 : 65535 0/0 1",
            ));
        }
        if self.alg.is_some() && lookup != Lookup::Acl {
            return Err(usage(
                "--alg chooses the ACL's classifier: it needs --lookup acl",
            ));
        }
        if self.control.is_some() && lookup != Lookup::Lpm {
            return Err(usage(
                "--control changes routes live, which needs --lookup lpm (rte_lpm with RCU)",
            ));
        }
        Ok(mask)
    }
}

fn main() -> ExitCode {
    app::main("sluice-l3fwd", run)
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
        if port < 32 && options.mask() & (1 << port) != 0 {
            kept.push(rule);
        } else if options.strict_routes && line > 0 {
            return Err(format!(
                "{file}:{line}: port {port} is not enabled in -p {:#x}: enable it or remove the line",
                options.mask()
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
            options.mask(), skipped
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
    match options.lookup() {
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
                    portmask: options.mask(),
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
                .alg
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
fn run(mut app: App, options: Options) -> Outcome {
    let mask = options.check()?;
    let eal = app.start_eal()?;
    options::check_ports(mask, &eal.port_ids())?;
    let ports = mask.ports();
    let plan = QueuePlan::new(
        &eal,
        &ports,
        options.config.as_deref().unwrap_or_default(),
        options.mode,
    )?;
    let setup = PortSetup {
        rx_descriptors: options.rx_queue_size,
        tx_descriptors: options.tx_queue_size,
        promiscuous: options.promiscuous,
        mtu: options.max_pkt_len.map(|len| (len - 18) as u16),
        pools: if options.per_port_pool {
            Pools::PerPort
        } else if options.no_numa {
            Pools::One
        } else {
            Pools::PerNode
        },
        // In router mode each lane may hold packets for neighbours being resolved.
        held: if options.addr.is_empty() {
            0
        } else {
            (HOLD_TOTAL * plan.lanes_count()) as u32
        },
    };
    let mut started = Ports::start(&eal, &plan.port_plans(), &setup)?;

    // What the router knows of each port: its MAC, its addresses, how next hops are found.
    let mut router_ports = Vec::new();
    for &id in &ports {
        let mac = started.mac(id)?;
        let addresses = |v6: bool| {
            options
                .addr
                .iter()
                .filter(move |(p, ip, _)| *p == id && ip.is_ipv6() == v6)
        };
        let v4: Vec<(Ipv4Addr, u8)> = addresses(false)
            .filter_map(|(_, ip, len)| match ip {
                IpAddr::V4(a) => Some((*a, *len)),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v6: Vec<(Ipv6Addr, u8)> = addresses(true)
            .filter_map(|(_, ip, len)| match ip {
                IpAddr::V6(a) => Some((*a, *len)),
                IpAddr::V4(_) => None,
            })
            .collect();
        let next_hop = match options.eth_dest.iter().rev().find(|(p, _)| *p == id) {
            Some((_, mac)) => NextHopMac::Fixed(*mac),
            None if !v4.is_empty() || !v6.is_empty() => NextHopMac::Resolve,
            None => NextHopMac::Fixed(Address([2, 0, 0, 0, 0, id as u8])),
        };
        let extra = format!(
            ", next hop {}{}",
            match next_hop {
                NextHopMac::Fixed(m) => format!("MAC {m}"),
                NextHopMac::Resolve => "resolved by ARP".into(),
            },
            options
                .addr
                .iter()
                .filter(|(p, ..)| *p == id)
                .map(|(_, ip, len)| format!(", address {ip}/{len}"))
                .collect::<String>()
        );
        println!("{}", started.describe(id, &extra)?);
        router_ports.push(RouterPort {
            id,
            mac,
            next_hop,
            v4,
            v6,
        });
    }
    let router = Arc::new(Router::new(router_ports));
    if let Some(path) = &options.neighbours {
        load_neighbours(path, &router)?;
    }

    let tables = build_tables(&eal, &options, &router)?;
    let control = tables.control.map(Arc::new);
    let _socket = match (&options.control, &control) {
        (Some(path), Some(control)) => {
            let control = control.clone();
            Some(ControlSocket::listen(path, move |line| {
                control.reply(line)
            })?)
        }
        (Some(_), None) => unreachable!("--control needs lpm, checked with the options"),
        (None, _) => None,
    };
    if let Some(control) = &control {
        let control = control.clone();
        app::register_telemetry(
            "sluice-l3fwd",
            &[(
                "/l3fwd/control",
                "sluice-l3fwd control: route add PREFIX/LEN PORT, route del PREFIX/LEN, routes, neighbours, stats",
                "",
            )],
            move |line: &str| control.reply(line),
        );
    }

    // Each lane: its RX queues, a TX queue on every port, and its own instances of the stages.
    let mut pipeline = Pipeline::new(Settings {
        mode: options.mode,
        idle: options.idle,
        report_period: Duration::from_secs(u64::from(options.stats_period)),
        ..Settings::default()
    });
    let responds = !options.addr.is_empty();
    let lanes = plan.lanes(&mut started, |_| -> Result<Vec<Box<dyn Node>>, BoxError> {
        let mut stages: Vec<Box<dyn Node>> = Vec::new();
        if responds {
            stages.push(Box::new(
                Responder::new(router.clone()).answer_closed_ports(options.icmp_rate),
            ));
        }
        let mut forward = L3Forward::new(
            router.clone(),
            Some(tables.v4.clone()),
            Some(tables.v6.clone()),
            matches!(options.lookup(), Lookup::ExactMatch | Lookup::Acl),
        )
        .answer_icmp_errors(options.icmp_rate);
        if options.forward_martians {
            forward = forward.forward_martians();
        }
        stages.push(Box::new(forward));
        Ok(stages)
    })?;
    for lane in lanes {
        pipeline.lane(lane);
    }
    drop(tables.v4);
    drop(tables.v6);
    app.forward(&eal, pipeline, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::app::Parsed;

    fn run(line: &str) -> Result<Options, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        match app::parse::<Options>("sluice-l3fwd", &args).map_err(|e| e.0)? {
            Parsed::Run { options, .. } => {
                options.check().map_err(|e| e.to_string())?;
                Ok(*options)
            }
            Parsed::Help(_) => panic!("help"),
        }
    }

    fn error(line: &str) -> String {
        run(line).unwrap_err()
    }

    #[test]
    fn l3fwd_command_lines_parse() {
        let o = run("-l 1 -- -p 0x3 -P --config=(0,0,1),(1,0,1) --lookup em --rule_ipv4=a.cfg --rule_ipv6 b.cfg --eth-dest=1,02:00:00:00:00:07 --rx-queue-size 512 --parse-ptype --ipv6 --max-pkt-len 1518 --hash-entry-num 16").unwrap();
        assert_eq!(o.mask(), 3);
        assert!(o.promiscuous);
        assert_eq!(o.lookup(), Lookup::ExactMatch);
        assert_eq!(
            o.config,
            Some(vec![
                QueueConfig {
                    port: 0,
                    queue: 0,
                    lcore: 1
                },
                QueueConfig {
                    port: 1,
                    queue: 0,
                    lcore: 1
                }
            ])
        );
        assert_eq!(o.rule_ipv4, Some("a.cfg".into()));
        assert_eq!(o.rule_ipv6, Some("b.cfg".into()));
        assert_eq!(o.eth_dest, vec![(1, "02:00:00:00:00:07".parse().unwrap())]);
        assert_eq!((o.rx_queue_size, o.tx_queue_size), (512, 1024));
        assert_eq!(o.max_pkt_len, Some(1518));
        assert_eq!(run("-- -p 3 -E").unwrap().lookup(), Lookup::ExactMatch);
        assert_eq!(run("-- -p 3 -L").unwrap().lookup(), Lookup::Lpm);
        assert_eq!(run("-- -p 3 --lookup=fib").unwrap().lookup(), Lookup::Fib);
        let acl = run("-- -p 3 --lookup acl --rule_ipv4 a --rule_ipv6 b --alg scalar").unwrap();
        assert_eq!(
            (acl.lookup(), acl.alg.as_deref()),
            (Lookup::Acl, Some("scalar"))
        );
        assert_eq!(
            run("-- -p 3 --mode poll").unwrap().mode,
            Mode::RunToCompletion
        );
        assert_eq!(
            run("-- -p 3 --mode pipeline").unwrap().mode,
            Mode::Pipelined
        );
        assert_eq!(
            run("-- -p 3 --config (0,0,0)(1,1,2)")
                .unwrap()
                .config
                .map(|c| c.len()),
            Some(2),
            "l3fwd takes triples without commas between them too"
        );
        let o =
            run("-- -p 3 --addr 0,10.0.1.1/24 --addr 1,2001:db8::1/64 --control /tmp/s").unwrap();
        assert_eq!(o.addr.len(), 2);
        assert_eq!(o.control, Some("/tmp/s".into()));
        assert_eq!(
            run("-- -p 3 -L -L --lookup lpm").unwrap().lookup(),
            Lookup::Lpm
        );
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        assert!(error("-- -P").contains("missing -p PORTMASK"));
        assert!(error("-- -p 3 --config (0,0)").contains("'(0,0)' is not three numbers"));
        assert!(error("-- -p 3 --config 0,0,1").contains("must start with '('"));
        assert!(error("-- -p 3 --config (0,0,1").contains("missing ')'"));
        assert!(error("-- -p 1 --config (1,0,0)")
            .contains("port 1 (1,0,0), which -p 0x1 does not enable"));
        assert!(error("-- -p 3 --config (0,0,1),(0,0,2)").contains("appears twice"));
        assert!(error("-- -p 3 --lookup hash").contains("expected lpm, em, fib or acl"));
        assert!(error("-- -p 3 --lookup acl --rule_ipv4 a").contains("needs --rule_ipv4"));
        assert!(error("-- -p 3 --alg sse").contains("needs --lookup acl"));
        assert!(error("-- -p 3 --lookup acl --alg fast").contains("unknown --alg 'fast'"));
        assert!(error("-- -p 3 -L -E").contains("one lookup method"));
        assert!(error("-- -p 3 --eth-dest 1,zz").contains("expected PORT,MAC"));
        assert!(error("-- -p 3 --addr 0,10.0.0.1/33").contains("0 to 32"));
        assert!(error("-- -p 3 --addr 4,10.0.0.1/24").contains("does not enable"));
        assert!(error("-- -p 3 --mode eventdev").contains("not supported"));
        assert!(error("-- -p 3 --lookup em --control /tmp/s").contains("needs --lookup lpm"));
        assert!(error("-- -p 3 --max-pkt-len 10").contains("--max-pkt-len '10'"));
        assert!(error("-- -p 3 --bogus").contains("unknown option '--bogus'"));
        assert!(error("-p 3").contains("go after `--`"));
    }
}
