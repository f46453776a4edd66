//! DPDK l3fwd's command line (22.11), plus Sluice's own long options.

use sluice::net::ethernet::Address;
use sluice::pipeline::Mode;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: sluice-l3fwd [EAL options] -- -p PORTMASK [-P] [--config (port,queue,lcore)[,...]]
                    [--lookup lpm|em|fib|acl] [-L|-E] [--rule_ipv4=FILE] [--rule_ipv6=FILE]
                    [--alg ALGORITHM]
                    [--eth-dest=X,MM:MM:MM:MM:MM:MM] [--rx-queue-size N] [--tx-queue-size N]
                    [--max-pkt-len LEN] [--no-numa] [--ipv6] [--parse-ptype] [--per-port-pool]
                    [--hash-entry-num N] [--mode rtc|pipeline] [--stats-period S]
                    [--addr PORT,IP/LEN]... [--icmp-rate N] [--neighbours FILE]
                    [--control PATH] [--forward-martians]

Routes IPv4 and IPv6 between ports as DPDK's l3fwd does, checking headers as RFC 1812 asks.

l3fwd's options:
  -p PORTMASK          hexadecimal mask of the ports to use (0x3: ports 0 and 1)
  -P                   promiscuous mode
  --config LIST        which lcore polls which RX queue, e.g. \"(0,0,1),(1,0,1)\";
                       default: queue 0 of every port on the first lcore
  --lookup METHOD      lpm (default; rte_lpm/rte_lpm6), em (exact match of the 5-tuple
                       on rte_hash), fib (rte_fib/rte_fib6) or acl (rte_acl: rules on
                       prefixes, port ranges and protocol); -L and -E are lpm and em
  --rule_ipv4=FILE     IPv4 rules, l3fwd's format: R<prefix>/<depth> <port> for lpm and
                       fib, R<dst> <src> <dport> <sport> <proto> <port> for em;
                       default: l3fwd's built-in table (198.18.P.0/24 to port P). For acl
                       (required, as in l3fwd): @ lines drop, R lines route, first match wins:
                       @<src/len> <dst/len> <sport lo> : <sport hi> <dport lo> : <dport hi> <proto/mask>
                       R<same fields> <port>
  --rule_ipv6=FILE     IPv6 rules, same formats (default: 2001:200:0:P::/64 to port P)
  --alg ALGORITHM      the ACL's classifier: scalar, sse, avx2, neon, altivec, avx512x16 or
                       avx512x32 (default: the best this CPU runs)
  --eth-dest=X,MAC     destination MAC of packets leaving port X
                       (default 02:00:00:00:00:X, unless port X has an --addr)
  --rx-queue-size N    RX descriptors per queue (default 1024)
  --tx-queue-size N    TX descriptors per queue (default 1024)
  --max-pkt-len LEN    largest frame to receive, 64 to 9600 (default: the port's MTU)
  --no-numa            one mbuf pool for all ports, on the main lcore's node
  --per-port-pool      one mbuf pool per port
  --ipv6, --parse-ptype, --hash-entry-num N
                       accepted for compatibility: Sluice always forwards both families,
                       parses headers in software, and sizes tables from the rules
  --mode MODE          rtc or poll (default): each lcore polls, routes and transmits;
                       pipeline: each RX lcore hands bursts over a ring to a second lcore
                       (taken from the EAL's lcores not in --config) that routes and sends

Sluice's options:
  --stats-period S     one line of rates every S seconds (default 0: off)
  --addr PORT,IP/LEN   an address of the router on PORT (repeatable; IPv4 or IPv6): the
                       router answers ARP, neighbour solicitations and ping for it, and
                       resolves next hops on that port by ARP and neighbour discovery
                       instead of using a fixed destination MAC
  --icmp-rate N        ICMP time exceeded answers per second and lcore, for packets whose
                       TTL or hop limit runs out (from the --addr of the port they came in
                       by; default 100, 0: none, they are dropped as ttl_exceeded)
  --neighbours FILE    static neighbours, one \"IP MAC\" per line (# comments)
  --control PATH       a Unix socket taking one command per line: route add PREFIX/LEN PORT,
                       route del PREFIX/LEN, routes, neighbours, stats (needs --lookup lpm)
  --forward-martians   forward packets from or to martian addresses (0/8, 127/8,
                       169.254/16, 224/4, 240/4; ::, ::1, fe80::/10, ff00::/8) and directed
                       broadcasts to the --addr subnets; by default they are dropped as
                       martian (RFC 1812 §5.3.7 lets the operator switch the check off)
  --strict-routes      a route to a port not in -p is an error (default: skipped with a
                       warning, as l3fwd does, so its shipped files load with any -p)
  --idle POLICY        adaptive (default) or off (poll flat out; benchmarks)
  -h, --help           this text

EAL options (before --) are DPDK's: -l LCORES, --vdev DEVICE, -m MB, --no-huge, -a PCI, ...
Sluice adds --no-pci unless a PCI device is named. SIGINT or SIGTERM stops forwarding and
prints the final account: received = sent + dropped, by reason.

example (no NIC needed):
  sluice-l3fwd -l 0 --vdev net_pcap0,rx_pcap=in.pcap,infinite_rx=1 \\
               --vdev net_null0,no-rx=1 -- -p 0x3 --config \"(0,0,0),(1,0,0)\"";

/// Which table routes a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Lpm,
    ExactMatch,
    Fib,
    Acl,
}

/// One `(port,queue,lcore)` of `--config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub port: u16,
    pub queue: u16,
    pub lcore: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub portmask: u32,
    pub promiscuous: bool,
    pub config: Vec<QueueConfig>,
    pub lookup: Lookup,
    pub acl_algorithm: Option<String>,
    pub rule_ipv4: Option<PathBuf>,
    pub rule_ipv6: Option<PathBuf>,
    pub eth_dest: Vec<(u16, Address)>,
    pub rx_queue_size: u16,
    pub tx_queue_size: u16,
    pub max_pkt_len: Option<u32>,
    pub no_numa: bool,
    pub per_port_pool: bool,
    pub mode: Mode,
    pub stats_period_s: u32,
    pub addrs: Vec<(u16, IpAddr, u8)>,
    pub icmp_rate: u32,
    pub neighbours: Option<PathBuf>,
    pub control: Option<PathBuf>,
    pub strict_routes: bool,
    pub idle: bool,
    pub forward_martians: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Run {
        eal: Vec<String>,
        options: Box<Options>,
    },
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
    UsageError(format!("{} (see sluice-l3fwd --help)", text.into()))
}

const MAX_PORTS: u32 = 32;

pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let (eal, app) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), &args[i + 1..]),
        None if args.iter().any(|a| a == "-p") => {
            return Err(usage(
                "l3fwd options go after `--`: sluice-l3fwd [EAL options] -- -p PORTMASK",
            ))
        }
        None => (args.to_vec(), &[][..]),
    };
    Ok(Command::Run {
        eal,
        options: Box::new(parse_options(app)?),
    })
}

fn parse_options(args: &[String]) -> Result<Options, UsageError> {
    let mut portmask = None;
    let mut lookup = None;
    let mut o = Options {
        portmask: 0,
        promiscuous: false,
        config: Vec::new(),
        lookup: Lookup::Lpm,
        acl_algorithm: None,
        rule_ipv4: None,
        rule_ipv6: None,
        eth_dest: Vec::new(),
        rx_queue_size: 1024,
        tx_queue_size: 1024,
        max_pkt_len: None,
        no_numa: false,
        per_port_pool: false,
        mode: Mode::RunToCompletion,
        stats_period_s: 0,
        addrs: Vec::new(),
        icmp_rate: 100,
        neighbours: None,
        control: None,
        strict_routes: false,
        idle: true,
        forward_martians: false,
    };
    let mut set_lookup = |l: Lookup| {
        if lookup.is_some_and(|old| old != l) {
            return Err(usage(
                "only one lookup method at a time: give one of --lookup, -L, -E",
            ));
        }
        lookup = Some(l);
        Ok(())
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
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
            "-P" => o.promiscuous = true,
            "-L" => set_lookup(Lookup::Lpm)?,
            "-E" => set_lookup(Lookup::ExactMatch)?,
            "--lookup" => set_lookup(match value("lpm, em, fib or acl")?.as_str() {
                "lpm" => Lookup::Lpm,
                "em" => Lookup::ExactMatch,
                "fib" => Lookup::Fib,
                "acl" => Lookup::Acl,
                other => {
                    return Err(usage(format!(
                        "unknown --lookup '{other}': expected lpm, em, fib or acl"
                    )))
                }
            })?,
            "--alg" => {
                let name = value("an ACL algorithm")?;
                if sluice::stage::table::acl_algorithm(&name).is_none() {
                    return Err(usage(format!(
                        "unknown --alg '{name}': expected one of {}",
                        sluice::stage::table::ACL_ALGORITHMS
                    )));
                }
                o.acl_algorithm = Some(name);
            }
            "--config" => o.config = parse_config(&value("(port,queue,lcore) triples")?)?,
            "--rule_ipv4" => o.rule_ipv4 = Some(value("a rule file")?.into()),
            "--rule_ipv6" => o.rule_ipv6 = Some(value("a rule file")?.into()),
            "--eth-dest" => o.eth_dest.push(parse_eth_dest(&value("X,MM:MM:MM:MM:MM:MM")?)?),
            "--rx-queue-size" => o.rx_queue_size = parse_ring_size(&value("a number")?, flag)?,
            "--tx-queue-size" => o.tx_queue_size = parse_ring_size(&value("a number")?, flag)?,
            "--max-pkt-len" => {
                let text = value("a length")?;
                o.max_pkt_len = match text.parse::<u32>() {
                    Ok(n) if (64..=9600).contains(&n) => Some(n),
                    _ => {
                        return Err(usage(format!(
                            "invalid --max-pkt-len '{text}': expected 64 to 9600"
                        )))
                    }
                }
            }
            "--no-numa" => o.no_numa = true,
            "--per-port-pool" => o.per_port_pool = true,
            "--ipv6" | "--parse-ptype" => {}
            "--hash-entry-num" => {
                let text = value("a number")?;
                if text.parse::<u32>().is_err() {
                    return Err(usage(format!(
                        "invalid --hash-entry-num '{text}': expected a number"
                    )));
                }
            }
            "--mode" => {
                o.mode = match value("rtc or pipeline")?.as_str() {
                    "poll" | "rtc" | "run-to-completion" => Mode::RunToCompletion,
                    "pipeline" | "pipelined" => Mode::Pipelined,
                    "eventdev" => {
                        return Err(usage(
                            "--mode eventdev is not supported: Sluice polls (rtc) or pipelines over rings (pipeline)",
                        ))
                    }
                    other => {
                        return Err(usage(format!(
                            "unknown --mode '{other}': expected rtc (or poll) or pipeline"
                        )))
                    }
                }
            }
            "--stats-period" => {
                let text = value("seconds")?;
                o.stats_period_s = text.parse().map_err(|_| {
                    usage(format!("invalid --stats-period '{text}': expected seconds (0 = off)"))
                })?
            }
            "--addr" => o.addrs.push(parse_addr(&value("PORT,IP/LEN")?)?),
            "--icmp-rate" => {
                let text = value("answers per second")?;
                o.icmp_rate = text.parse().map_err(|_| {
                    usage(format!(
                        "invalid --icmp-rate '{text}': expected answers per second (0 = none)"
                    ))
                })?
            }
            "--neighbours" => o.neighbours = Some(value("a file")?.into()),
            "--control" => o.control = Some(value("a socket path")?.into()),
            "--strict-routes" => o.strict_routes = true,
            "--forward-martians" => o.forward_martians = true,
            "--idle" => {
                o.idle = match value("adaptive or off")?.as_str() {
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
    o.lookup = lookup.unwrap_or(Lookup::Lpm);
    o.portmask = portmask
        .ok_or_else(|| usage("missing -p PORTMASK (for example -p 0x3 for ports 0 and 1)"))?;
    for q in &o.config {
        if o.portmask & (1 << q.port) == 0 {
            return Err(usage(format!(
                "--config names port {} ({},{},{}), which -p {:#x} does not enable",
                q.port, q.port, q.queue, q.lcore, o.portmask
            )));
        }
    }
    for (port, ..) in &o.addrs {
        if o.portmask & (1 << port) == 0 {
            return Err(usage(format!(
                "--addr names port {port}, which -p {:#x} does not enable",
                o.portmask
            )));
        }
    }
    if o.lookup == Lookup::Acl && (o.rule_ipv4.is_none() || o.rule_ipv6.is_none()) {
        return Err(usage(
            "--lookup acl needs --rule_ipv4=FILE and --rule_ipv6=FILE (an ACL has no built-in rules), \
             e.g. a line R0.0.0.0/0 198.18.1.0/24 0 : 65535 0 : 65535 0/0 1",
        ));
    }
    if o.acl_algorithm.is_some() && o.lookup != Lookup::Acl {
        return Err(usage(
            "--alg chooses the ACL's classifier: it needs --lookup acl",
        ));
    }
    if o.control.is_some() && o.lookup != Lookup::Lpm {
        return Err(usage(
            "--control changes routes live, which needs --lookup lpm (rte_lpm with RCU)",
        ));
    }
    Ok(o)
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

fn parse_ring_size(text: &str, flag: &str) -> Result<u16, UsageError> {
    match text.parse::<u16>() {
        Ok(n) if n >= 64 => Ok(n),
        _ => Err(usage(format!(
            "invalid {flag} '{text}': expected a number of descriptors from 64 to 65535"
        ))),
    }
}

/// `(0,0,1),(1,0,1)`: l3fwd also accepts the triples without commas between them.
fn parse_config(text: &str) -> Result<Vec<QueueConfig>, UsageError> {
    let bad = |why: &str| {
        usage(format!(
            "malformed --config '{text}': {why}; expected (port,queue,lcore) triples such as \"(0,0,1),(1,0,1)\""
        ))
    };
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ']);
        if rest.is_empty() {
            break;
        }
        let inner = rest
            .strip_prefix('(')
            .ok_or_else(|| bad("a triple must start with '('"))?;
        let (triple, after) = inner.split_once(')').ok_or_else(|| bad("missing ')'"))?;
        let numbers: Vec<&str> = triple.split(',').map(str::trim).collect();
        let [port, queue, lcore] = numbers[..] else {
            return Err(bad(&format!("'({triple})' is not three numbers")));
        };
        let num = |s: &str, max: u64, what: &str| match s.parse::<u64>() {
            Ok(v) if v <= max => Ok(v),
            _ => Err(bad(&format!("{what} '{s}' is not a number up to {max}"))),
        };
        let q = QueueConfig {
            port: num(port, u64::from(MAX_PORTS) - 1, "port")? as u16,
            queue: num(queue, 255, "queue")? as u16,
            lcore: num(lcore, 1023, "lcore")? as u32,
        };
        if out
            .iter()
            .any(|o: &QueueConfig| o.port == q.port && o.queue == q.queue)
        {
            return Err(bad(&format!(
                "queue {} of port {} appears twice",
                q.queue, q.port
            )));
        }
        out.push(q);
        rest = after;
    }
    if out.is_empty() {
        return Err(bad("no triple"));
    }
    Ok(out)
}

fn parse_eth_dest(text: &str) -> Result<(u16, Address), UsageError> {
    let bad = || {
        usage(format!(
            "malformed --eth-dest '{text}': expected PORT,MAC such as 0,02:00:00:00:00:01"
        ))
    };
    let (port, mac) = text.split_once(',').ok_or_else(bad)?;
    let port: u16 = port.trim().parse().map_err(|_| bad())?;
    if u32::from(port) >= MAX_PORTS {
        return Err(bad());
    }
    let mac = mac.trim().parse().map_err(|_| bad())?;
    Ok((port, mac))
}

fn parse_addr(text: &str) -> Result<(u16, IpAddr, u8), UsageError> {
    let bad = |why: &str| {
        usage(format!(
            "malformed --addr '{text}': {why}; expected PORT,IP/LEN such as 0,10.0.1.1/24 or 1,2001:db8:1::1/64"
        ))
    };
    let (port, net) = text.split_once(',').ok_or_else(|| bad("no port"))?;
    let port: u16 = port.trim().parse().map_err(|_| bad("bad port"))?;
    let (ip, len) = net.split_once('/').ok_or_else(|| bad("no prefix length"))?;
    let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(len) if len <= max => Ok((port, ip, len)),
        _ => Err(bad(&format!("prefix length must be 0 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<Options, UsageError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        match parse(&args)? {
            Command::Run { options, .. } => Ok(*options),
            Command::Help => panic!("help"),
        }
    }

    fn error(line: &str) -> String {
        run(line).unwrap_err().0
    }

    #[test]
    fn l3fwd_command_lines_parse() {
        let o = run("-l 1 -- -p 0x3 -P --config=(0,0,1),(1,0,1) --lookup em --rule_ipv4=a.cfg --rule_ipv6 b.cfg --eth-dest=1,02:00:00:00:00:07 --rx-queue-size 512 --parse-ptype --ipv6 --max-pkt-len 1518").unwrap();
        assert_eq!(o.portmask, 3);
        assert!(o.promiscuous);
        assert_eq!(o.lookup, Lookup::ExactMatch);
        assert_eq!(
            o.config,
            vec![
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
            ]
        );
        assert_eq!(o.rule_ipv4, Some("a.cfg".into()));
        assert_eq!(o.rule_ipv6, Some("b.cfg".into()));
        assert_eq!(o.eth_dest, vec![(1, "02:00:00:00:00:07".parse().unwrap())]);
        assert_eq!((o.rx_queue_size, o.tx_queue_size), (512, 1024));
        assert_eq!(o.max_pkt_len, Some(1518));
        assert_eq!(run("-- -p 3 -E").unwrap().lookup, Lookup::ExactMatch);
        assert_eq!(run("-- -p 3 -L").unwrap().lookup, Lookup::Lpm);
        assert_eq!(run("-- -p 3 --lookup=fib").unwrap().lookup, Lookup::Fib);
        let acl = run("-- -p 3 --lookup acl --rule_ipv4 a --rule_ipv6 b --alg scalar").unwrap();
        assert_eq!(
            (acl.lookup, acl.acl_algorithm.as_deref()),
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
            run("-- -p 3 --config (0,0,0)(1,1,2)").unwrap().config.len(),
            2,
            "l3fwd takes triples without commas between them too"
        );
        let o =
            run("-- -p 3 --addr 0,10.0.1.1/24 --addr 1,2001:db8::1/64 --control /tmp/s").unwrap();
        assert_eq!(o.addrs.len(), 2);
        assert_eq!(o.control, Some("/tmp/s".into()));
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
        assert!(error("-- -p 3 --max-pkt-len 10").contains("64 to 9600"));
        assert!(error("-- -p 3 --bogus").contains("unknown option '--bogus'"));
        assert!(error("-p 3").contains("go after `--`"));
        assert_eq!(parse(&["--help".to_owned()]).unwrap(), Command::Help);
    }
}
