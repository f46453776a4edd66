//! `sluice-l2fwd`: DPDK l2fwd's command line on the Sluice engine. Every packet received on
//! a port leaves by its paired port, MACs rewritten unless `--no-mac-updating`. The app is its
//! options, how it pairs ports and groups them on lcores, and the engine's `L2Forward` stage.

use clap::Parser;
use sluice::app::options::{self, Portmask};
use sluice::app::{self, usage, App, Outcome, PortPlan, PortSetup, Ports};
use sluice::pipeline::{Lane, Mode, Pipeline, Settings};
use sluice::stage::L2Forward;
use sluice::topology::Work;
use sluice::worker::IdlePolicy;
use std::process::ExitCode;
use std::time::Duration;

/// Forwards every packet received on a port out of its paired port, as DPDK's l2fwd does.
#[derive(Parser, Debug)]
#[command(after_help = "example (no NIC needed):
  sluice-l2fwd -l 0 --vdev net_pcap0,rx_pcap=in.pcap,infinite_rx=1 \\
               --vdev net_null0,no-rx=1 -- -p 0x3 -q 2 -T 1")]
struct Options {
    /// Hexadecimal mask of the ports to use (0x3: ports 0 and 1)
    #[arg(short = 'p', value_name = "PORTMASK", value_parser = options::portmask)]
    portmask: Option<Portmask>,
    /// Enable promiscuous mode
    #[arg(short = 'P')]
    promiscuous: bool,
    /// RX ports polled per lcore
    #[arg(short = 'q', value_name = "NQ", default_value_t = 1, value_parser = ports_per_lcore)]
    rx_ports_per_lcore: u32,
    /// Statistics every PERIOD seconds (0: off)
    #[arg(short = 'T', value_name = "PERIOD", default_value_t = 10, value_parser = period)]
    stats_period: u32,
    /// Rewrite MACs (the default): source = the TX port's MAC, destination =
    /// 02:00:00:00:00:TX_PORT
    #[arg(long, overrides_with = "no_mac_updating")]
    mac_updating: bool,
    /// Forward frames unchanged
    #[arg(long, overrides_with = "mac_updating")]
    no_mac_updating: bool,
    /// Pair ports explicitly, e.g. "(0,1)(2,3)" (default: consecutive ports of the mask)
    #[arg(long, value_name = "PAIRS", value_parser = options::portmap)]
    // Fully qualified: one value that is a list, not a list of values.
    portmap: Option<::std::vec::Vec<(u16, u16)>>,
    /// rtc: each lcore polls its ports, forwards and transmits; pipeline: per group of -q
    /// ports, one lcore polls and hands bursts over a ring to a second lcore that forwards
    /// and transmits
    #[arg(long, value_name = "MODE", default_value = "rtc", value_parser = options::mode)]
    mode: Mode,
    /// adaptive: idle lcores pause, then sleep between polls; off: poll flat out (benchmarks)
    #[arg(long, value_name = "POLICY", default_value = "adaptive", value_parser = options::idle)]
    idle: IdlePolicy,
    /// Print the topology, each port's NUMA node, and which lcore does what and why; then exit
    #[arg(long)]
    print_placement: bool,
}

/// l2fwd's limit on -q (MAX_RX_QUEUE_PER_LCORE).
const MAX_PORTS_PER_LCORE: u32 = 16;
/// l2fwd's limit on -T (MAX_TIMER_PERIOD).
const MAX_TIMER_PERIOD: u32 = 86400;

fn ports_per_lcore(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..MAX_PORTS_PER_LCORE).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of ports per lcore from 1 to {}",
            MAX_PORTS_PER_LCORE - 1
        )),
    }
}

fn period(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n < MAX_TIMER_PERIOD => Ok(n),
        _ => Err(format!(
            "expected seconds from 0 (off) to {}",
            MAX_TIMER_PERIOD - 1
        )),
    }
}

fn main() -> ExitCode {
    app::main("sluice-l2fwd", run)
}

/// Forwards until SIGINT/SIGTERM; returns whether the final account balanced.
fn run(mut app: App, options: Options) -> Outcome {
    let mask = options
        .portmask
        .ok_or_else(|| usage("missing -p PORTMASK (for example -p 0x3 for ports 0 and 1)"))?;
    let eal = app.start_eal()?;
    let routes = pair_ports(mask, options.portmap.as_deref(), &eal.port_ids())?;
    let mac_updating = !options.no_mac_updating;
    println!(
        "MAC updating {}",
        if mac_updating { "enabled" } else { "disabled" }
    );

    // As l2fwd: every lcore, main included, takes up to -q RX ports, in port order. Pipelined,
    // each such group needs a second lcore for its stage.
    let lcores = eal.lcores().len();
    let per_group = options.rx_ports_per_lcore as usize;
    let groups = routes.len().div_ceil(per_group);
    let pipelined = options.mode == Mode::Pipelined;
    let lcores_per_group = if pipelined { 2 } else { 1 };
    if groups * lcores_per_group > lcores {
        let raise = routes.len().div_ceil((lcores / lcores_per_group).max(1));
        return Err(format!(
            "{} ports at -q {per_group} need {} lcores{}, but the EAL has {lcores} (-l): give more lcores with -l{}",
            routes.len(),
            groups * lcores_per_group,
            if pipelined { " in pipeline mode" } else { "" },
            if lcores >= lcores_per_group {
                format!(", or raise -q to {raise}")
            } else {
                String::new()
            }
        )
        .into());
    }

    // Which lcore serves each group of -q ports (and, pipelined, runs its stage).
    let mut infos = Vec::new();
    for &(port, _) in &routes {
        infos.push((port, sluice::port::info(port)?));
    }
    let node_of = |port: u16| {
        infos
            .iter()
            .find(|(p, _)| *p == port)
            .and_then(|i| i.1.socket)
    };
    let mut work = Vec::new();
    for group in routes.chunks(per_group) {
        let names: Vec<String> = group.iter().map(|r| r.0.to_string()).collect();
        let node = node_of(group[0].0);
        work.push(Work {
            label: format!("RX port(s) {}", names.join(",")),
            node,
        });
        if pipelined {
            work.push(Work {
                label: format!("stage and TX for port(s) {}", names.join(",")),
                node,
            });
        }
    }
    let (topology, plan) = app::place(&eal, &work)?;
    if options.print_placement {
        println!("topology: {}", topology.describe());
        for (port, info) in &infos {
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

    let setup = PortSetup {
        promiscuous: options.promiscuous,
        ..PortSetup::default()
    };
    let plans: Vec<PortPlan> = routes.iter().map(|&(rx, _)| PortPlan::new(rx)).collect();
    let mut ports = Ports::start(&eal, &plans, &setup)?;
    for &(port, _) in &routes {
        println!("{}", ports.describe(port, "")?);
    }

    let mut pipeline = Pipeline::new(Settings {
        mode: options.mode,
        idle: options.idle,
        report_period: Duration::from_secs(u64::from(options.stats_period)),
        ..Settings::default()
    });
    let mut placed = plan.lcores.iter().copied();
    for group in routes.chunks(per_group) {
        let lcore = placed.next().expect("a plan entry per group");
        let stage_lcore = pipelined.then(|| placed.next().expect("a stage lcore"));
        let (mut rx, mut tx, mut forward) = (Vec::new(), Vec::new(), Vec::new());
        for &(rx_port, tx_port) in group {
            rx.push(ports.rx(rx_port, 0)?);
            tx.push(ports.tx(tx_port, 0)?);
            let mac = if mac_updating {
                Some(ports.mac(tx_port)?)
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
        pipeline.lane(Lane {
            rx,
            tx,
            stages: vec![Box::new(L2Forward::new(&forward))],
            lcore,
            stage_lcore,
        });
    }
    app.forward(&eal, pipeline, ports)
}

/// Where each enabled port forwards to: `(rx_port, tx_port)` for every port in use, in port
/// order. `present` lists the ports the EAL found.
fn pair_ports(
    mask: Portmask,
    portmap: Option<&[(u16, u16)]>,
    present: &[u16],
) -> Result<Vec<(u16, u16)>, String> {
    options::check_ports(mask, present)?;
    let mut routes = Vec::new();
    match portmap {
        Some(pairs) => {
            let mut used = 0u32;
            for &(a, b) in pairs {
                for p in [a, b] {
                    if !mask.contains(p) {
                        return Err(format!(
                            "--portmap uses port {p}, which portmask {mask} does not enable: add it to -p"
                        ));
                    }
                }
                let pair_bits = (1u32 << a) | (1u32 << b);
                if used & pair_bits != 0 {
                    let p = if used & (1 << a) != 0 { a } else { b };
                    return Err(format!(
                        "--portmap uses port {p} in more than one pair: each port forwards to one partner"
                    ));
                }
                used |= pair_bits;
                routes.push((a, b));
                if a != b {
                    routes.push((b, a));
                }
            }
        }
        None => {
            let ports = mask.ports();
            if !ports.len().is_multiple_of(2) {
                // DPDK's l2fwd silently loops the last port back to itself; we ask for it.
                let suggestion: String = ports
                    .chunks(2)
                    .map(|p| format!("({},{})", p[0], p.get(1).unwrap_or(&p[0])))
                    .collect();
                return Err(format!(
                    "portmask {mask} selects {} ports ({}), which do not pair up: enable an even number of ports, or pair them with --portmap, e.g. --portmap \"{suggestion}\"",
                    ports.len(),
                    options::describe_ports(&ports),
                ));
            }
            for pair in ports.chunks(2) {
                routes.push((pair[0], pair[1]));
                routes.push((pair[1], pair[0]));
            }
        }
    }
    routes.sort_unstable();
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::app::Parsed;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn options(text: &str) -> Options {
        match app::parse::<Options>("sluice-l2fwd", &args(text)).unwrap() {
            Parsed::Run { options, .. } => *options,
            Parsed::Help(_) => panic!("help"),
        }
    }

    fn error(text: &str) -> String {
        app::parse::<Options>("sluice-l2fwd", &args(text))
            .unwrap_err()
            .0
    }

    fn pairs(text: &str, present: &[u16]) -> Result<Vec<(u16, u16)>, String> {
        let o = options(text);
        pair_ports(o.portmask.unwrap(), o.portmap.as_deref(), present)
    }

    #[test]
    fn defaults_match_dpdk_l2fwd() {
        let o = options("-l 0 --vdev net_null0 -- -p 3");
        assert_eq!(
            (
                o.rx_ports_per_lcore,
                o.stats_period,
                o.no_mac_updating,
                o.promiscuous,
                o.mode,
                o.idle
            ),
            (
                1,
                10,
                false,
                false,
                Mode::RunToCompletion,
                IdlePolicy::default()
            )
        );
    }

    #[test]
    fn l2fwd_command_lines_parse() {
        let o = options("-- -pf -q3 -T0 -P --no-mac-updating --mode pipeline --idle off");
        assert_eq!(o.portmask, Some(Portmask(0xf)));
        assert_eq!((o.rx_ports_per_lcore, o.stats_period), (3, 0));
        assert!(o.promiscuous && o.no_mac_updating);
        assert_eq!((o.mode, o.idle), (Mode::Pipelined, IdlePolicy::Off));
        assert!(!options("-- -p 3 --no-mac-updating --mac-updating").no_mac_updating);
        assert_eq!(
            options("-- -p 0XF --portmap=(0,1)(2,3)").portmap,
            Some(vec![(0, 1), (2, 3)])
        );
        assert_eq!(options("-- -p 3 --mode=rtc").mode, Mode::RunToCompletion);
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        assert!(error("-- -p 0x0").contains("selects no port"));
        assert!(error("-- -p zz").contains("expected hexadecimal"));
        assert!(error("-- -p 3 -q 0").contains("from 1 to 15"));
        assert!(error("-- -p 3 -q 16").contains("from 1 to 15"));
        assert!(error("-- -p 3 -T 86400").contains("seconds"));
        assert!(error("-- -p 3 -T -1").contains("seconds"));
        assert!(error("-- -p").contains("-p needs a value"));
        assert!(error("-- -p 3 --mode fast").contains("expected rtc"));
        assert!(error("-- -p 3 --idle maybe").contains("expected adaptive or off"));
        assert!(error("-- -p 3 --frobnicate").contains("unknown option '--frobnicate'"));
        assert!(error("-l 0 -p 3").contains("after `--`"));
        assert!(error("-- -p 3 --portmap (0,1").contains("malformed --portmap"));
    }

    #[test]
    fn consecutive_ports_pair_up() {
        assert_eq!(
            pairs("-- -p 0xf", &[0, 1, 2, 3]).unwrap(),
            vec![(0, 1), (1, 0), (2, 3), (3, 2)]
        );
        assert_eq!(
            pairs("-- -p 0xa", &[0, 1, 2, 3]).unwrap(),
            vec![(1, 3), (3, 1)]
        );
        let e = pairs("-- -p 0x7", &[0, 1, 2]).unwrap_err();
        assert!(
            e.contains("selects 3 ports") && e.contains("--portmap"),
            "{e}"
        );
        let e = pairs("-- -p 0x5", &[0, 1]).unwrap_err();
        assert!(
            e.contains("port 2 in portmask 0x5 does not exist") && e.contains("ports 0, 1"),
            "{e}"
        );
    }

    #[test]
    fn portmap_pairs_and_checks() {
        assert_eq!(
            pairs("-- -p 0x7 --portmap (0,2)(1,1)", &[0, 1, 2]).unwrap(),
            vec![(0, 2), (1, 1), (2, 0)]
        );
        let e = pairs("-- -p 0x3 --portmap (0,2)", &[0, 1, 2]).unwrap_err();
        assert!(
            e.contains("port 2, which portmask 0x3 does not enable"),
            "{e}"
        );
        let e = pairs("-- -p 0x7 --portmap (0,1)(1,2)", &[0, 1, 2]).unwrap_err();
        assert!(e.contains("port 1 in more than one pair"), "{e}");
    }
}
