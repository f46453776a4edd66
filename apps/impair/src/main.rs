//! sluice-impair: a bump in the wire between two ports, each direction impaired as netem
//! would (delay and jitter, loss models, duplication, reordering, corruption, rate), at
//! DPDK speed. Impairments change live through telemetry: `/impair/set a-to-b loss 1%`.

use clap::Parser;
use sluice::app::{self, options, usage, App, Outcome, PortPlan, PortSetup, Ports};
use sluice::pipeline::{Lane, Pipeline, Settings};
use sluice::stage::impair::{Change, Impair, Impairment};
use sluice::worker::IdlePolicy;
use std::time::Duration;

/// Forwards between two ports as l2fwd does (no MAC rewriting), impairing each direction
/// with netem's syntax (see `man tc-netem`).
#[derive(Parser)]
#[command(after_help = "example (memif ports to a traffic generator):
  sluice-impair -l 1 --vdev net_memif0,socket=/tmp/a.sock --vdev net_memif1,socket=/tmp/b.sock \\
      -- --a-to-b \"delay 10ms 1ms distribution normal loss 0.1%\" --b-to-a \"delay 10ms\"
live changes:  dpdk-telemetry.py, then /impair/set,a-to-b loss 1%")]
struct Options {
    /// The two ports, A,B
    #[arg(long, value_name = "A,B", default_value = "0,1", value_parser = pair)]
    ports: (u16, u16),
    /// What happens to packets from A to B, in netem's words: [limit N] [delay TIME [JITTER
    /// [CORR]] [distribution uniform|normal|pareto|paretonormal]] [loss random P [CORR] |
    /// loss gemodel p [r [1-h [1-k]]] | loss state p13 [...]] [duplicate P] [reorder P [gap
    /// N]] [corrupt P] [rate RATE [overhead BYTES]] [seed N]
    #[arg(long, value_name = "NETEM", default_value = "", value_parser = Impairment::parse)]
    a_to_b: Impairment,
    /// What happens to packets from B to A, likewise
    #[arg(long, value_name = "NETEM", default_value = "", value_parser = Impairment::parse)]
    b_to_a: Impairment,
    /// The seed of directions without one of their own
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between report lines (0: none)
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    stats_period: u32,
    /// adaptive (sleep when idle) or off (poll flat out: timers are then most precise)
    #[arg(long, value_name = "POLICY", default_value = "off", value_parser = options::idle)]
    idle: IdlePolicy,
}

fn pair(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("expected two port numbers A,B such as 0,1, not '{text}'");
    let (a, b) = text.split_once(',').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == b {
        return Err(format!("the two ports must differ, not {a} and {b}"));
    }
    Ok((a, b))
}

fn run(mut app: App, options: Options) -> Outcome {
    let eal = app.start_eal()?;
    let (a, b) = options.ports;
    for port in [a, b] {
        if !eal.port_ids().contains(&port) {
            return Err(usage(format!(
                "no port {port} (the EAL found {}): give two --vdev or PCI devices",
                options::describe_ports(&eal.port_ids())
            )));
        }
    }
    let mut ports = Ports::start(
        &eal,
        &[PortPlan::new(a), PortPlan::new(b)],
        &PortSetup {
            promiscuous: true,
            // Room for every packet the two directions may hold, and their duplicates.
            held: (2 * (options.a_to_b.limit + options.b_to_a.limit)) as u32,
            ..PortSetup::default()
        },
    )?;
    for (port, peer, imp) in [(a, b, &options.a_to_b), (b, a, &options.b_to_a)] {
        println!(
            "{}",
            ports.describe(port, &format!(", to port {peer}: {imp}"))?
        );
    }
    let stage = Impair::new(
        vec![
            (a, b, options.a_to_b.clone()),
            (b, a, options.b_to_a.clone()),
        ],
        options.seed,
    );
    let mut pipeline = Pipeline::new(Settings {
        idle: options.idle,
        report_period: Duration::from_secs(u64::from(options.stats_period)),
        ..Settings::default()
    });
    let lcore = eal.main_lcore();
    println!("lcore {lcore}: RX ports {a} and {b}, impair, TX");
    pipeline.lane(Lane {
        rx: vec![ports.rx(a, 0)?, ports.rx(b, 0)?],
        tx: vec![ports.tx(a, 0)?, ports.tx(b, 0)?],
        stages: vec![Box::new(stage)],
        lcore,
        stage_lcore: None,
    });
    let messenger = pipeline.messenger();
    if let Err(e) = sluice::stats::telemetry::register_command(
        "/impair/set",
        "sluice-impair: a-to-b|b-to-a NETEM... (the direction's new impairment)",
        move |params| match change(params, a, b) {
            Ok(change) => {
                let text = change.impairment.to_string();
                messenger.send("impair", change);
                format!("ok: {text}")
            }
            Err(e) => format!("error: {e}"),
        },
    ) {
        eprintln!("sluice-impair: warning: no telemetry command for live changes: {e}");
    }
    app.forward(&eal, pipeline, ports)
}

/// `a-to-b NETEM...` or `b-to-a NETEM...` as a change for the stage.
fn change(params: &str, a: u16, b: u16) -> Result<Change, String> {
    let (direction, netem) = params.trim().split_once(' ').unwrap_or((params.trim(), ""));
    let rx = match direction {
        "a-to-b" => a,
        "b-to-a" => b,
        other => {
            return Err(format!(
                "unknown direction '{other}': expected a-to-b or b-to-a"
            ))
        }
    };
    Ok(Change {
        rx,
        impairment: Impairment::parse(netem)?,
    })
}

fn main() -> std::process::ExitCode {
    app::main("sluice-impair", run)
}
