//! What a handoff costs (scripts/bench.sh handoff): net_null port 0 → a relay stage → port 1,
//! the stage sending each packet itself, or handing it to its instance on a second worker
//! (on the same lcore, or on another) which sends it. Rates every second; --idle off.

use clap::Parser;
use sluice::app::{self, App, Outcome, PortPlan, PortSetup, Ports};
use sluice::pipeline::{Lane, Pipeline, Settings};
use sluice::stage::{Action, Context, Node};
use sluice::worker::IdlePolicy;
use sluice::Mbuf;
use std::time::Duration;

/// Forwards port 0 to port 1 through a relay stage, handing every packet over or not.
#[derive(Parser)]
struct Options {
    /// off: no handoff; same: to a second worker on the same lcore; other: to a second worker
    /// on the main lcore
    #[arg(long, default_value = "off", value_parser = ["off", "same", "other"])]
    handoff: String,
}

struct Relay {
    handoff: bool,
}

impl Node for Relay {
    fn name(&self) -> &str {
        "relay"
    }

    fn process(&mut self, _: &mut [Mbuf], actions: &mut [Action], _: &mut Context<'_>) {
        actions.fill(if self.handoff {
            Action::handoff(1)
        } else {
            Action::tx(1)
        });
    }

    fn handed(&mut self, _: &mut [Mbuf], actions: &mut [Action], _: &mut Context<'_>) {
        actions.fill(Action::tx(1));
    }

    fn takes_handoff(&self) -> bool {
        self.handoff
    }
}

fn run(mut app: App, options: Options) -> Outcome {
    let eal = app.start_eal()?;
    let worker = *eal.lcores().last().expect("an lcore");
    let handoff = options.handoff != "off";
    let plans = [
        PortPlan::new(0),
        PortPlan {
            id: 1,
            rx_queues: 1,
            tx_queues: 2,
        },
    ];
    let mut ports = Ports::start(&eal, &plans, &PortSetup::default())?;
    let mut pipeline = Pipeline::new(Settings {
        idle: IdlePolicy::Off,
        report_period: Duration::from_secs(1),
        ..Settings::default()
    });
    pipeline.lane(Lane {
        rx: vec![ports.rx(0, 0)?],
        tx: vec![ports.tx(1, 0)?],
        stages: vec![Box::new(Relay { handoff })],
        lcore: worker,
        stage_lcore: None,
    });
    if handoff {
        pipeline.lane(Lane {
            rx: vec![],
            tx: vec![ports.tx(1, 1)?],
            stages: vec![Box::new(Relay { handoff })],
            lcore: if options.handoff == "same" {
                worker
            } else {
                eal.main_lcore()
            },
            stage_lcore: None,
        });
    }
    println!("tsc_hz {}", eal.tsc_hz());
    app.forward(&eal, pipeline, ports)
}

fn main() -> std::process::ExitCode {
    app::main("handoff", run)
}
