//! sluice-impair: a bump in the wire between two ports, each direction impaired as netem
//! would (delay and jitter, loss models, duplication, reordering, corruption, rate), at
//! DPDK speed. Impairments change live, without losing what is held, on the control socket
//! (`set a-to-b loss 1%`, `show`) and through telemetry (`/impair/set,a-to-b loss 1%`,
//! `/impair/show`).

use clap::Parser;
use sluice::app::{self, options, usage, App, ControlSocket, Outcome, PortPlan, PortSetup, Ports};
use sluice::pipeline::{Lane, Messenger, Pipeline, Settings};
use sluice::stage::impair::{Change, Impair, Impairment};
use sluice::worker::IdlePolicy;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Forwards between two ports as l2fwd does (no MAC rewriting), impairing each direction
/// with netem's syntax (see `man tc-netem`).
#[derive(Parser)]
#[command(after_help = "example (memif ports to a traffic generator):
  sluice-impair -l 1 --vdev net_memif0,socket=/tmp/a.sock --vdev net_memif1,socket=/tmp/b.sock \\
      -- --a-to-b \"delay 10ms 1ms distribution normal loss 0.1%\" --b-to-a \"delay 10ms\"
live changes:  --control /run/impair.sock, then: echo 'set a-to-b loss 1%' | nc -U /run/impair.sock
               or dpdk-telemetry.py, then /impair/set,a-to-b loss 1%")]
struct Options {
    /// A pair of ports, A,B (repeatable: each pair is impaired alike, a-to-b from its A)
    #[arg(long, value_name = "A,B", default_value = "0,1", value_parser = pair)]
    ports: Vec<(u16, u16)>,
    /// What happens to packets from A to B, in netem's words: [limit N] [delay TIME [JITTER
    /// [CORR]] [distribution uniform|normal|pareto|paretonormal]] [loss random P [CORR] |
    /// loss gemodel p [r [1-h [1-k]]] | loss state p13 [...]] [duplicate P] [reorder P [gap
    /// N]] [corrupt P] [rate RATE [overhead BYTES]] [slot MIN [MAX] [packets N] [bytes N]]
    /// [seed N]
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
    /// A Unix socket taking one command per line: set a-to-b|b-to-a NETEM..., show
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
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
    let pairs = options.ports.clone();
    let mut all: Vec<u16> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    all.sort_unstable();
    if let Some(twice) = all.windows(2).find(|w| w[0] == w[1]) {
        return Err(usage(format!(
            "port {} is in two --ports pairs: each port belongs to one pair",
            twice[0]
        )));
    }
    let eal = app.start_eal()?;
    for &port in &all {
        if !eal.port_ids().contains(&port) {
            return Err(usage(format!(
                "no port {port} (the EAL found {}): give a --vdev or PCI device for each port of --ports",
                options::describe_ports(&eal.port_ids())
            )));
        }
    }
    let plans: Vec<PortPlan> = all.iter().map(|&p| PortPlan::new(p)).collect();
    let per_pair = 2 * (options.a_to_b.limit + options.b_to_a.limit);
    let mut ports = Ports::start(
        &eal,
        &plans,
        &PortSetup {
            promiscuous: true,
            // Room for every packet the directions may hold, and their duplicates.
            held: (per_pair * pairs.len()) as u32,
            ..PortSetup::default()
        },
    )?;
    let mut directions = Vec::new();
    for &(a, b) in &pairs {
        for (port, peer, imp) in [(a, b, &options.a_to_b), (b, a, &options.b_to_a)] {
            println!(
                "{}",
                ports.describe(port, &format!(", to port {peer}: {imp}"))?
            );
            directions.push((port, peer, imp.clone()));
        }
    }
    let stage = Impair::new(directions, options.seed);
    let mut pipeline = Pipeline::new(Settings {
        idle: options.idle,
        report_period: Duration::from_secs(u64::from(options.stats_period)),
        ..Settings::default()
    });
    let lcore = eal.main_lcore();
    println!("lcore {lcore}: RX ports {all:?}, impair, TX");
    let (mut rx, mut tx) = (Vec::new(), Vec::new());
    for &port in &all {
        rx.push(ports.rx(port, 0)?);
        tx.push(ports.tx(port, 0)?);
    }
    pipeline.lane(Lane {
        rx,
        tx,
        stages: vec![Box::new(stage)],
        lcore,
        stage_lcore: None,
    });
    let control = Arc::new(Control {
        pairs,
        current: Mutex::new([options.a_to_b, options.b_to_a]),
        messenger: pipeline.messenger(),
    });
    let reply = move |line: &str| control.reply(line);
    let _socket = options
        .control
        .as_deref()
        .map(|path| ControlSocket::listen(path, reply.clone()))
        .transpose()?;
    app::register_telemetry(
        "sluice-impair",
        &[
            (
                "/impair/set",
                "sluice-impair: a-to-b|b-to-a NETEM... (the direction's new impairment)",
                "set",
            ),
            (
                "/impair/show",
                "sluice-impair: each direction's impairment",
                "show",
            ),
        ],
        reply,
    );
    app.forward(&eal, pipeline, ports)
}

/// The live commands, from the control socket and telemetry alike.
struct Control {
    /// The pairs of ports A and B: a-to-b is what arrives on A.
    pairs: Vec<(u16, u16)>,
    /// Each direction's impairment as last set.
    current: Mutex<[Impairment; 2]>,
    messenger: Messenger,
}

impl Control {
    /// `set a-to-b|b-to-a NETEM...` or `show`; the reply ends in `ok` or is `error: WHAT`.
    fn reply(&self, line: &str) -> String {
        let (command, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let mut current = self
            .current
            .lock()
            .expect("never poisoned: no panics inside");
        match command {
            "set" => match direction(rest) {
                Ok((index, netem)) => match Impairment::parse(netem) {
                    Ok(impairment) => {
                        current[index] = impairment.clone();
                        for &(a, b) in &self.pairs {
                            self.messenger.send(
                                "impair",
                                Change {
                                    rx: if index == 0 { a } else { b },
                                    impairment: impairment.clone(),
                                },
                            );
                        }
                        format!("{} {}\nok", DIRECTIONS[index], current[index])
                    }
                    Err(e) => format!("error: {e}"),
                },
                Err(e) => format!("error: {e}"),
            },
            "show" => format!("a-to-b {}\nb-to-a {}\nok", current[0], current[1]),
            other => format!("error: unknown command '{other}': expected set or show"),
        }
    }
}

const DIRECTIONS: [&str; 2] = ["a-to-b", "b-to-a"];

/// `a-to-b NETEM...` or `b-to-a NETEM...`: the direction's index and its words.
fn direction(params: &str) -> Result<(usize, &str), String> {
    let (direction, netem) = params.trim().split_once(' ').unwrap_or((params.trim(), ""));
    let index = DIRECTIONS
        .iter()
        .position(|d| *d == direction)
        .ok_or_else(|| format!("unknown direction '{direction}': expected a-to-b or b-to-a"))?;
    Ok((index, netem))
}

fn main() -> std::process::ExitCode {
    app::main("sluice-impair", run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_commands_set_show_and_name_their_mistakes() {
        let pipeline = Pipeline::new(Settings::default());
        let control = Control {
            pairs: vec![(0, 1)],
            current: Mutex::new([Impairment::default(), Impairment::default()]),
            messenger: pipeline.messenger(),
        };
        assert_eq!(
            control.reply("set b-to-a delay 1ms loss 1%"),
            "b-to-a delay 1ms loss random 1% 0%\nok"
        );
        assert_eq!(
            control.reply("show"),
            "a-to-b no impairment\nb-to-a delay 1ms loss random 1% 0%\nok"
        );
        for (line, says) in [
            ("set sideways loss 1%", "unknown direction 'sideways'"),
            ("set a-to-b loss 1000%", "is not a percentage"),
            ("frob", "unknown command 'frob': expected set or show"),
        ] {
            let reply = control.reply(line);
            assert!(
                reply.starts_with("error: ") && reply.contains(says),
                "{reply}"
            );
        }
    }
}
