//! DPDK l2fwd's command line: `[EAL options] -- -p PORTMASK [-P] [-q NQ] [-T PERIOD]
//! [--[no-]mac-updating] [--portmap "(a,b)(c,d)"]`.

use sluice::pipeline::Mode;
use std::fmt;

pub const USAGE: &str = "\
usage: sluice-l2fwd [EAL options] -- -p PORTMASK [-P] [-q NQ] [-T PERIOD]
                    [--[no-]mac-updating] [--portmap \"(a,b)(c,d)\"]

Forwards every packet received on a port out of its paired port, as DPDK's l2fwd does.

  -p PORTMASK        hexadecimal mask of the ports to use (0x3: ports 0 and 1)
  -P                 enable promiscuous mode
  -q NQ              RX ports polled per lcore (default 1, at most 15)
  -T PERIOD          statistics every PERIOD seconds (default 10, 0 = off, < 86400)
  --mac-updating     rewrite MACs (the default): source = TX port's MAC,
                     destination = 02:00:00:00:00:TX_PORT
  --no-mac-updating  forward frames unchanged
  --portmap PAIRS    pair ports explicitly, e.g. \"(0,1)(2,3)\";
                     default: consecutive ports in the mask pair up
  --mode MODE        rtc (default): each lcore polls its ports, forwards and transmits;
                     pipeline: per group of -q ports, one lcore polls and hands bursts
                     over a ring to a second lcore that forwards and transmits
  --idle POLICY      adaptive (default): idle lcores pause, then sleep between polls;
                     off: poll flat out (benchmarks)
  --print-placement  print the topology and which lcore does what, and why; then exit
  -h, --help         this text

EAL options (before --) are DPDK's: -l LCORES, --vdev DEVICE, -m MB, --no-huge, -a PCI, ...
Sluice adds --no-pci unless a PCI device is named, and --in-memory unless --file-prefix is
given. SIGINT or SIGTERM stops forwarding and prints the final account.

example (no NIC needed):
  sluice-l2fwd -l 0 --vdev net_pcap0,rx_pcap=in.pcap,infinite_rx=1 \\
               --vdev net_null0,no-rx=1 -- -p 0x3 -q 2 -T 1";

const MAX_QUEUES_PER_LCORE: u32 = 16;
const MAX_TIMER_PERIOD: u32 = 86400;
const MAX_PORTS: u32 = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub portmask: u32,
    pub promiscuous: bool,
    pub rx_ports_per_lcore: u32,
    pub stats_period_s: u32,
    pub mac_updating: bool,
    pub portmap: Option<Vec<(u16, u16)>>,
    pub mode: Mode,
    pub idle: bool,
    pub print_placement: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Run { eal: Vec<String>, options: Options },
}

/// A command-line mistake, with the fix in its text.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(text: impl Into<String>) -> UsageError {
    UsageError(format!("{} (see sluice-l2fwd --help)", text.into()))
}

/// Splits `args` (without the program name) at `--` and parses l2fwd's part.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let (eal, app) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), &args[i + 1..]),
        None if args.iter().any(|a| a == "-p" || a.starts_with("--portmap")) => {
            return Err(usage(
                "l2fwd options go after `--`: sluice-l2fwd [EAL options] -- -p PORTMASK",
            ))
        }
        None => (args.to_vec(), &[][..]),
    };
    Ok(Command::Run {
        eal,
        options: parse_options(app)?,
    })
}

fn parse_options(args: &[String]) -> Result<Options, UsageError> {
    let mut portmask = None;
    let mut options = Options {
        portmask: 0,
        promiscuous: false,
        rx_ports_per_lcore: 1,
        stats_period_s: 10,
        mac_updating: true,
        portmap: None,
        mode: Mode::RunToCompletion,
        idle: true,
        print_placement: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // Short options take their value attached (-p3) or as the next argument (-p 3);
        // long ones as --opt=value or --opt value, as getopt_long does.
        let (flag, attached) = split_flag(arg);
        let mut value = |what: &str| -> Result<String, UsageError> {
            match attached {
                Some(v) => Ok(v.to_owned()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{flag} needs {what}"))),
            }
        };
        match flag {
            "-p" => portmask = Some(parse_portmask(&value("a hexadecimal port mask")?)?),
            "-P" => options.promiscuous = true,
            "-q" => {
                options.rx_ports_per_lcore = parse_queues(&value("a number of ports per lcore")?)?
            }
            "-T" => options.stats_period_s = parse_period(&value("a period in seconds")?)?,
            "--mac-updating" => options.mac_updating = true,
            "--no-mac-updating" => options.mac_updating = false,
            "--portmap" => {
                options.portmap = Some(parse_portmap(&value("port pairs such as \"(0,1)\"")?)?)
            }
            "--print-placement" => options.print_placement = true,
            "--mode" => {
                options.mode = value("rtc or pipeline")?
                    .parse()
                    .map_err(|e: sluice::Error| usage(e.to_string()))?
            }
            "--idle" => {
                options.idle = match value("adaptive or off")?.as_str() {
                    "adaptive" | "on" => true,
                    "off" => false,
                    other => {
                        return Err(usage(format!(
                            "unknown --idle '{other}': expected adaptive or off"
                        )))
                    }
                }
            }
            other => return Err(usage(format!("unknown option '{other}'"))),
        }
    }
    options.portmask = portmask
        .ok_or_else(|| usage("missing -p PORTMASK (for example -p 0x3 for ports 0 and 1)"))?;
    Ok(options)
}

fn split_flag(arg: &str) -> (&str, Option<&str>) {
    if let Some(long) = arg.strip_prefix("--") {
        return match long.split_once('=') {
            Some((name, v)) => (&arg[..2 + name.len()], Some(v)),
            None => (arg, None),
        };
    }
    if arg.len() > 2 && arg.starts_with('-') && arg.is_char_boundary(2) {
        return (&arg[..2], Some(&arg[2..]));
    }
    (arg, None)
}

fn parse_portmask(text: &str) -> Result<u32, UsageError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    match u64::from_str_radix(digits, 16) {
        Ok(0) => Err(usage(format!("portmask '{text}' selects no port"))),
        Ok(mask) if mask >> MAX_PORTS == 0 => Ok(mask as u32),
        Ok(_) => Err(usage(format!(
            "portmask '{text}' names ports beyond {}",
            MAX_PORTS - 1
        ))),
        Err(_) => Err(usage(format!(
            "invalid portmask '{text}': expected hexadecimal such as 0x3"
        ))),
    }
}

fn parse_queues(text: &str) -> Result<u32, UsageError> {
    match text.parse::<u32>() {
        Ok(n) if (1..MAX_QUEUES_PER_LCORE).contains(&n) => Ok(n),
        _ => Err(usage(format!(
            "invalid -q '{text}': expected a number of ports per lcore from 1 to {}",
            MAX_QUEUES_PER_LCORE - 1
        ))),
    }
}

fn parse_period(text: &str) -> Result<u32, UsageError> {
    match text.parse::<u32>() {
        Ok(n) if n < MAX_TIMER_PERIOD => Ok(n),
        _ => Err(usage(format!(
            "invalid -T '{text}': expected seconds from 0 (off) to {}",
            MAX_TIMER_PERIOD - 1
        ))),
    }
}

/// `(0,1)(2,3)`, with optional spaces or commas between pairs.
pub fn parse_portmap(text: &str) -> Result<Vec<(u16, u16)>, UsageError> {
    let bad = |why: &str| {
        usage(format!(
            "malformed --portmap '{text}': {why}; expected pairs of port numbers such as \"(0,1)(2,3)\""
        ))
    };
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let inner_start = rest
            .strip_prefix('(')
            .ok_or_else(|| bad("a pair must start with '('"))?;
        let close = inner_start
            .find(')')
            .ok_or_else(|| bad("a pair is missing its ')'"))?;
        let fields: Vec<&str> = inner_start[..close].split(',').map(str::trim).collect();
        let [a, b] = fields[..] else {
            return Err(bad("each pair holds exactly two ports"));
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|n| u32::from(*n) < MAX_PORTS)
                .ok_or_else(|| bad(&format!("'{p}' is not a port number below {MAX_PORTS}")))
        };
        pairs.push((port(a)?, port(b)?));
        rest = inner_start[close + 1..].trim_start_matches([' ', ',']);
    }
    if pairs.is_empty() {
        return Err(bad("no pair given"));
    }
    Ok(pairs)
}

/// Where each enabled port forwards to: `(rx_port, tx_port)` for every port in use, in port
/// order. `present` lists the ports the EAL found.
pub fn pair_ports(options: &Options, present: &[u16]) -> Result<Vec<(u16, u16)>, UsageError> {
    let in_mask = |p: u16| options.portmask & (1 << p) != 0;
    for bit in 0..MAX_PORTS as u16 {
        if in_mask(bit) && !present.contains(&bit) {
            return Err(UsageError(format!(
                "port {bit} in portmask {:#x} does not exist: the EAL found {}; add a --vdev or fix -p",
                options.portmask,
                describe_ports(present)
            )));
        }
    }
    let mut routes = Vec::new();
    match &options.portmap {
        Some(pairs) => {
            let mut used = 0u32;
            for &(a, b) in pairs {
                for p in [a, b] {
                    if !in_mask(p) {
                        return Err(UsageError(format!(
                            "--portmap uses port {p}, which portmask {:#x} does not enable: add it to -p",
                            options.portmask
                        )));
                    }
                }
                let pair_bits = (1u32 << a) | (1u32 << b);
                if used & pair_bits != 0 {
                    let p = if used & (1 << a) != 0 { a } else { b };
                    return Err(UsageError(format!(
                        "--portmap uses port {p} in more than one pair: each port forwards to one partner"
                    )));
                }
                used |= pair_bits;
                routes.push((a, b));
                if a != b {
                    routes.push((b, a));
                }
            }
        }
        None => {
            let ports: Vec<u16> = present.iter().copied().filter(|&p| in_mask(p)).collect();
            if !ports.len().is_multiple_of(2) {
                // DPDK's l2fwd silently loops the last port back to itself; we ask for it.
                let suggestion: String = ports
                    .chunks(2)
                    .map(|p| format!("({},{})", p[0], p.get(1).unwrap_or(&p[0])))
                    .collect();
                return Err(UsageError(format!(
                    "portmask {:#x} selects {} ports ({}), which do not pair up: enable an even number of ports, or pair them with --portmap, e.g. --portmap \"{suggestion}\"",
                    options.portmask,
                    ports.len(),
                    describe_ports(&ports),
                )));
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

fn describe_ports(ports: &[u16]) -> String {
    match ports {
        [] => "no ports".to_owned(),
        [one] => format!("port {one}"),
        many => format!(
            "ports {}",
            many.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn options(text: &str) -> Options {
        match parse(&args(text)).unwrap() {
            Command::Run { options, .. } => options,
            Command::Help => panic!("help"),
        }
    }

    fn error(text: &str) -> String {
        parse(&args(text)).unwrap_err().0
    }

    #[test]
    fn splits_eal_and_l2fwd_arguments() {
        let Command::Run { eal, options } = parse(&args(
            "-l 0 --vdev net_null0 -- -p 0x3 -q 2 -T 1 -P --no-mac-updating",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(eal, args("-l 0 --vdev net_null0"));
        assert_eq!(
            options,
            Options {
                portmask: 3,
                promiscuous: true,
                rx_ports_per_lcore: 2,
                stats_period_s: 1,
                mac_updating: false,
                portmap: None,
                mode: Mode::RunToCompletion,
                idle: true,
                print_placement: false,
            }
        );
    }

    #[test]
    fn defaults_match_dpdk_l2fwd() {
        let o = options("-- -p 3");
        assert_eq!(
            (
                o.rx_ports_per_lcore,
                o.stats_period_s,
                o.mac_updating,
                o.promiscuous
            ),
            (1, 10, true, false)
        );
    }

    #[test]
    fn values_attached_or_separate() {
        assert_eq!(options("-- -pf -q3 -T0").portmask, 0xf);
        assert_eq!(
            options("-- -p 0XF --portmap=(0,1)(2,3)").portmap,
            Some(vec![(0, 1), (2, 3)])
        );
        assert_eq!(
            options("-- -p f --portmap (0,1)").portmap,
            Some(vec![(0, 1)])
        );
        assert!(!options("-- -p 3 --no-mac-updating").mac_updating);
        assert!(options("-- -p 3 --no-mac-updating --mac-updating").mac_updating);
    }

    #[test]
    fn mode_and_idle() {
        let o = options("-- -p 3 --mode pipeline --idle off");
        assert_eq!((o.mode, o.idle), (Mode::Pipelined, false));
        assert_eq!(options("-- -p 3 --mode=rtc").mode, Mode::RunToCompletion);
        assert!(
            error("-- -p 3 --mode fast").contains("expected rtc (run to completion) or pipeline")
        );
        assert!(error("-- -p 3 --idle maybe").contains("expected adaptive or off"));
    }

    #[test]
    fn help_anywhere() {
        assert_eq!(parse(&args("-l 0 -- --help")).unwrap(), Command::Help);
        assert_eq!(parse(&args("-h")).unwrap(), Command::Help);
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        assert!(error("-- -p 0x0").contains("selects no port"));
        assert!(error("-- -p zz").contains("expected hexadecimal"));
        assert!(error("-- -p 1ffffffff").contains("beyond 31"));
        assert!(error("-- -p 3 -q 0").contains("from 1 to 15"));
        assert!(error("-- -p 3 -q 16").contains("from 1 to 15"));
        assert!(error("-- -p 3 -T 86400").contains("seconds"));
        assert!(error("-- -p 3 -T -1").contains("seconds"));
        assert!(error("-- -q 2").contains("missing -p"));
        assert!(error("-- -p").contains("-p needs"));
        assert!(error("-- -p 3 --frobnicate").contains("unknown option '--frobnicate'"));
        assert!(error("-l 0 -p 3").contains("after `--`"));
    }

    #[test]
    fn malformed_portmaps() {
        for bad in [
            "", "(0,1", "0,1", "(0)", "(0,1,2)", "(a,b)", "(0,32)", "(0,1)x", "(-1,0)",
        ] {
            let e = parse_portmap(bad).unwrap_err().0;
            assert!(
                e.contains("malformed --portmap") && e.contains("(0,1)(2,3)"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            parse_portmap(" (0, 1) , (2,3) ").unwrap(),
            vec![(0, 1), (2, 3)]
        );
    }

    #[test]
    fn consecutive_ports_pair_up() {
        let o = options("-- -p 0xf");
        assert_eq!(
            pair_ports(&o, &[0, 1, 2, 3]).unwrap(),
            vec![(0, 1), (1, 0), (2, 3), (3, 2)]
        );
        let o = options("-- -p 0xa");
        assert_eq!(pair_ports(&o, &[0, 1, 2, 3]).unwrap(), vec![(1, 3), (3, 1)]);
    }

    #[test]
    fn odd_port_count_without_portmap_is_refused() {
        let e = pair_ports(&options("-- -p 0x7"), &[0, 1, 2]).unwrap_err().0;
        assert!(
            e.contains("selects 3 ports") && e.contains("--portmap"),
            "{e}"
        );
    }

    #[test]
    fn unknown_port_in_mask_is_named() {
        let e = pair_ports(&options("-- -p 0x5"), &[0, 1]).unwrap_err().0;
        assert!(
            e.contains("port 2 in portmask 0x5 does not exist") && e.contains("ports 0, 1"),
            "{e}"
        );
    }

    #[test]
    fn portmap_pairs_and_checks() {
        let o = options("-- -p 0x7 --portmap (0,2)(1,1)");
        assert_eq!(
            pair_ports(&o, &[0, 1, 2]).unwrap(),
            vec![(0, 2), (1, 1), (2, 0)]
        );
        let e = pair_ports(&options("-- -p 0x3 --portmap (0,2)"), &[0, 1, 2])
            .unwrap_err()
            .0;
        assert!(
            e.contains("port 2, which portmask 0x3 does not enable"),
            "{e}"
        );
        let e = pair_ports(&options("-- -p 0x7 --portmap (0,1)(1,2)"), &[0, 1, 2])
            .unwrap_err()
            .0;
        assert!(e.contains("port 1 in more than one pair"), "{e}");
    }
}
