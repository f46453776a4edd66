//! The one way to build an app on the engine.
//!
//! [`main`] splits the command line at `--` (EAL options before, the app's after), parses the
//! app's options with clap, installs SIGINT/SIGTERM, and turns the outcome into an exit
//! status: 0 when the final account balanced, 1 when it did not or the run failed, 2 for a
//! command-line mistake. Every error is one line, `NAME: error: ...`, saying what was expected.
//!
//! Inside, an app starts the EAL ([`App::start_eal`]), starts its ports with their queues and
//! per-NUMA-node pools ([`Ports`]), builds a [`Pipeline`] of lanes — from an explicit
//! `(port,queue,lcore)` list with [`QueuePlan`], or from a placement plan ([`place`]) — and
//! hands it to [`App::forward`], which runs it with the periodic report and prints the final
//! account. `engine/examples/minimal_app.rs` is the shortest whole app.

mod control;
pub mod options;
mod ports;
mod queues;

pub use control::{register_telemetry, ControlSocket};
pub use ports::{Pools, PortPlan, PortSetup, Ports};
pub use queues::{QueueConfig, QueuePlan};

use crate::eal::{Eal, EalBuilder};
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::stats::RateReport;
use crate::topology::{self, Lcore, Plan, Topology, Work};
use crate::worker::StopFlag;
use clap::error::{ContextKind, ErrorKind};
use clap::CommandFactory;
use std::error::Error as StdError;
use std::fmt;
use std::process::ExitCode;

/// What an app's run returns: whether its account balanced, or why it failed.
pub type Outcome = Result<bool, Box<dyn StdError>>;

/// A mistake in the command line (or in what its options say together): exit status 2, and
/// the line points at `--help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Usage {}

/// Shorthand for a [`Usage`] error in a `?` chain.
pub fn usage(text: impl Into<String>) -> Box<dyn StdError> {
    Box::new(Usage(text.into()))
}

/// A running app: its name, its EAL arguments and its stop flag (set by SIGINT/SIGTERM).
pub struct App {
    name: &'static str,
    eal_args: Vec<String>,
    stop: StopFlag,
}

impl App {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Set by SIGINT or SIGTERM; every loop of the app stops on it.
    pub fn stop_flag(&self) -> &StopFlag {
        &self.stop
    }

    /// Starts the EAL with the arguments before `--` (once: see [`EalBuilder`]).
    pub fn start_eal(&mut self) -> Result<Eal, Error> {
        EalBuilder::new(self.name)
            .args(std::mem::take(&mut self.eal_args))
            .start()
    }

    /// Runs `pipeline` until stopped, a rate line every `report_period` of its settings, then
    /// closes `ports` (freeing what their queues hold) and prints the final account; returns
    /// whether it balanced with every mbuf back in its pool.
    pub fn forward(&self, eal: &Eal, pipeline: Pipeline, ports: Ports) -> Outcome {
        let period = pipeline.settings().report_period;
        let mut report = RateReport::default();
        let outcome = pipeline.run(eal, &self.stop, |stats, since_start| {
            println!("{}", report.line(stats, since_start, period));
        })?;
        println!(
            "\nstopping: {:.2} s of forwarding",
            outcome.elapsed.as_secs_f64()
        );
        let mbufs = ports.close();
        let (account, balanced) = outcome.stats.final_account(outcome.elapsed, mbufs);
        println!("{account}");
        Ok(balanced)
    }
}

/// An app's `main`: parses the command line into `O`, runs `run` and returns the exit status
/// (see the module documentation).
pub fn main<O: clap::Parser>(name: &'static str, run: impl FnOnce(App, O) -> Outcome) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (eal_args, options) = match parse::<O>(name, &args) {
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run { eal, options }) => (eal, options),
        Err(e) => return fail(name, &e),
    };
    let app = App {
        name,
        eal_args,
        stop: StopFlag::new(),
    };
    if let Err(e) = app.stop.on_signals() {
        eprintln!("{name}: error: cannot install the SIGINT/SIGTERM handlers: {e}");
        return ExitCode::FAILURE;
    }
    match run(app, *options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => match e.downcast_ref::<Usage>() {
            Some(usage) => fail(name, usage),
            None => {
                eprintln!("{name}: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn fail(name: &str, e: &Usage) -> ExitCode {
    eprintln!("{name}: error: {e} (see {name} --help)");
    ExitCode::from(2)
}

/// What a command line asks for.
#[derive(Debug)]
pub enum Parsed<O> {
    /// `-h` or `--help` anywhere: the help text.
    Help(String),
    Run {
        /// The EAL's arguments, as given before `--`.
        eal: Vec<String>,
        options: Box<O>,
    },
}

/// Splits `args` (without the program name) at `--` and parses the app's part into `O`.
pub fn parse<O: clap::Parser>(name: &'static str, args: &[String]) -> Result<Parsed<O>, Usage> {
    let mut command = command::<O>(name);
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Parsed::Help(help(&mut command)));
    }
    let (eal, ours) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), &args[i + 1..]),
        None => {
            if let Some(option) = args.iter().find(|a| names_option(&command, a)) {
                return Err(Usage(format!(
                    "{option} is one of {name}'s options, which go after `--`: {name} [EAL options] -- [{name} options]"
                )));
            }
            (args.to_vec(), &[][..])
        }
    };
    let argv = std::iter::once(name.to_owned()).chain(ours.iter().cloned());
    let matches = command
        .try_get_matches_from_mut(argv)
        .map_err(|e| Usage(one_line(&e)))?;
    let options = O::from_arg_matches(&matches).map_err(|e| Usage(one_line(&e)))?;
    Ok(Parsed::Run {
        eal,
        options: Box::new(options),
    })
}

/// The app's clap command, with the conventions of DPDK's apps: the last of a repeated
/// option wins (as with getopt), and `-T -1` is a value for `-T`, not an option.
fn command<O: CommandFactory>(name: &'static str) -> clap::Command {
    let mut command = O::command()
        .name(name)
        .bin_name(name)
        .args_override_self(true)
        .allow_negative_numbers(true)
        // -h and --help are ours (anywhere, EAL side included), and give the whole text.
        .disable_help_flag(true);
    if let Some(about) = command.get_long_about().cloned() {
        command = command.about(about);
    }
    let options = command
        .clone()
        .render_usage()
        .to_string()
        .split_once(name)
        .map_or(String::new(), |(_, rest)| rest.trim().to_owned());
    command.override_usage(format!("{name} [EAL options] -- {options}"))
}

fn help(command: &mut clap::Command) -> String {
    format!(
        "{}\n\n{EAL_HELP}\n",
        command.render_help().to_string().trim_end()
    )
}

const EAL_HELP: &str = "\
EAL options (before --) are DPDK's: -l LCORES, --vdev DEVICE, -m MB, --no-huge, -a PCI, ...
Sluice adds --no-pci unless a PCI device is named, and --in-memory unless --file-prefix is
given. SIGINT or SIGTERM stops the run and prints the final account. -h or --help, anywhere:
this text.";

/// Whether `arg` is one of the app's options (given before `--` by mistake). The EAL has no
/// option of the apps' names but `-h`, which asks for help anyway.
fn names_option(command: &clap::Command, arg: &str) -> bool {
    let flag = arg.split('=').next().unwrap_or(arg);
    command.get_arguments().any(|a| {
        a.get_long().is_some_and(|l| flag == format!("--{l}"))
            || a.get_short().is_some_and(|s| flag == format!("-{s}"))
    })
}

/// A clap error as one line saying what was expected.
fn one_line(e: &clap::Error) -> String {
    let context = |kind| e.get(kind).map(ToString::to_string);
    // "-p <PORTMASK>" names the option as "-p".
    let option = context(ContextKind::InvalidArg)
        .map(|a| a.split([' ', '=']).next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let value = context(ContextKind::InvalidValue).unwrap_or_default();
    match e.kind() {
        ErrorKind::UnknownArgument => format!("unknown option '{option}'"),
        ErrorKind::InvalidValue if value.is_empty() => format!("{option} needs a value"),
        ErrorKind::InvalidValue => match context(ContextKind::ValidValue) {
            Some(valid) => format!("invalid {option} '{value}': expected one of {valid}"),
            None => format!("invalid {option} '{value}'"),
        },
        ErrorKind::ValueValidation => {
            let why = e.source().map(ToString::to_string).unwrap_or_default();
            // clap's own range check says "10 is not in 64..=9600".
            let why = match why.split_once(" is not in ") {
                Some((_, range)) => match range.split_once("..=") {
                    Some((low, high)) => format!("expected {low} to {high}"),
                    None => format!("expected {range}"),
                },
                None => why,
            };
            // A parser's message that quotes the value says all; otherwise name option and value.
            if why.contains(&format!("'{value}'")) {
                why
            } else {
                format!("invalid {option} '{value}': {why}")
            }
        }
        ErrorKind::MissingRequiredArgument => format!("missing {option}"),
        ErrorKind::ArgumentConflict => format!(
            "{option} cannot be used with {}",
            context(ContextKind::PriorArg).unwrap_or_default()
        ),
        _ => e
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    }
}

/// Which lcore does each piece of `work`, by the machine's topology (hwloc): the lcores of
/// the EAL's `-l`, each on the NUMA node of its work's port where one is. Returns the
/// topology too, for an app that prints the plan (its explanation says why).
pub fn place(eal: &Eal, work: &[Work]) -> Result<(Topology, Plan), Error> {
    let topology = Topology::detect().unwrap_or_else(|e| {
        eprintln!("warning: {e}; placing without topology");
        Topology { pus: Vec::new() }
    });
    let lcores: Vec<Lcore> = eal
        .lcores()
        .into_iter()
        .map(|id| Lcore {
            id,
            cpu: eal.lcore_cpu(id),
        })
        .collect();
    let plan = topology::plan(&topology, &lcores, work)?;
    Ok((topology, plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// An app's options as the apps write them.
    #[derive(Parser, Debug, PartialEq)]
    struct Options {
        /// hexadecimal mask of the ports to use
        #[arg(short = 'p', value_parser = options::portmask)]
        portmask: Option<options::Portmask>,
        #[arg(short = 'P')]
        promiscuous: bool,
        #[arg(short = 'q', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=15))]
        queues: u32,
        #[arg(long, value_parser = options::idle, default_value = "adaptive")]
        idle: crate::worker::IdlePolicy,
        #[arg(long = "rule_ipv4")]
        rule_ipv4: Option<String>,
        #[arg(long)]
        addr: Vec<String>,
        #[arg(short = 'T', default_value_t = 10)]
        period: i64,
    }

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn run(text: &str) -> (Vec<String>, Options) {
        match parse::<Options>("app", &args(text)).unwrap() {
            Parsed::Run { eal, options } => (eal, *options),
            Parsed::Help(_) => panic!("help"),
        }
    }

    fn error(text: &str) -> String {
        parse::<Options>("app", &args(text)).unwrap_err().0
    }

    #[test]
    fn eal_and_app_arguments_split_at_the_double_dash() {
        let (eal, o) = run("-l 0 --vdev net_null0 -- -p 0x3 -P -q2 --rule_ipv4=a.cfg");
        assert_eq!(eal, args("-l 0 --vdev net_null0"));
        assert_eq!(o.portmask, Some(options::Portmask(3)));
        assert!(o.promiscuous);
        assert_eq!(o.queues, 2);
        assert_eq!(o.rule_ipv4.as_deref(), Some("a.cfg"));
        let (eal, o) = run("-l 0");
        assert_eq!((eal, o.portmask), (args("-l 0"), None));
    }

    #[test]
    fn dpdk_conventions_hold() {
        // Values attached or apart, the last repeat wins, negative numbers are values.
        assert_eq!(run("-- -pf -p 3").1.portmask, Some(options::Portmask(3)));
        assert_eq!(run("-- -T -1").1.period, -1);
        assert_eq!(
            run("-- --addr a --addr=b").1.addr,
            vec!["a".to_owned(), "b".to_owned()]
        );
    }

    #[test]
    fn mistakes_are_one_line_saying_what_was_expected() {
        assert_eq!(error("-- --frobnicate"), "unknown option '--frobnicate'");
        assert_eq!(error("-- -x"), "unknown option '-x'");
        assert_eq!(
            error("-- -p zz"),
            "invalid -p 'zz': expected hexadecimal such as 0x3"
        );
        assert_eq!(error("-- -q 0"), "invalid -q '0': expected 1 to 15");
        assert_eq!(error("-- -p"), "-p needs a value");
        assert!(error("-- --idle maybe").contains("expected adaptive or off"));
        assert!(error("-l 0 -p 3").contains("go after `--`"));
        for text in ["-- --frobnicate", "-- -p zz", "-- -q 0", "-- -p"] {
            assert!(!error(text).contains('\n'), "{text}");
        }
    }

    #[test]
    fn help_anywhere_lists_the_options_and_the_eal() {
        for text in ["-h", "-l 0 -- --help", "-- -p 3 -h"] {
            let Parsed::Help(help) = parse::<Options>("app", &args(text)).unwrap() else {
                panic!("{text}: no help");
            };
            assert!(help.contains("app [EAL options] -- "), "{help}");
            assert!(help.contains("hexadecimal mask of the ports"), "{help}");
            assert!(help.contains("--rule_ipv4"), "{help}");
            assert!(help.contains("EAL options (before --)"), "{help}");
        }
    }
}
