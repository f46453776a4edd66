//! sluice-pktgen's command line: EAL options, `--`, then ours.

use crate::spec::{self, Rate, StreamText};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: sluice-pktgen [EAL options] -- [--tx-port LIST] [--rx-port LIST|none] [stream options]
                     [--streams FILE.toml | --pcap FILE] [--rate RATE] [--duration SECS]
                     [--count N] [--json FILE] [--rfc2544 ...]

Sends streams of packets on DPDK ports, receives them back, and measures rate, loss,
duplicates, reordering and one-way latency. Every packet carries a signature (stream, sequence
number, TSC timestamp) after its L4 header; checksums are right in every packet. Frame sizes
count the 4-byte FCS, as RFC 2544 does: a 64-byte frame is 60 bytes of data.

Ports:
  --tx-port LIST       ports to send on, e.g. 0 or 0,2 (default 0)
  --rx-port LIST|none  ports to receive on (default: the TX ports); none: transmit only
  --tx-queues N        TX queues per TX port (default 1); with more, each packet takes the
                       queue that RSS would give its flow (Toeplitz hash, default key), so a
                       multi-queue receiver sees a NIC's spread
  --rx-queues N        RX queues per RX port, spread by RSS (default 1)
  --burst N            most packets per TX burst, 1 to 64 (default 32)
  --link-wait SECS     wait this long for the links to come up (default 10)

A stream from the command line (for several, use --streams):
  --proto P            udp (default), tcp or icmp (echo request; ICMPv6 over IPv6)
  --tcp-flags FLAGS    e.g. syn or syn,ack (default ack)
  --ipv6               IPv6 with its default addresses (also implied by IPv6 addresses)
  --src-mac RANGE      default: the TX port's MAC
  --dst-mac RANGE      default 02:00:00:00:00:01
  --vlan ID            an 802.1Q tag
  --src-ip RANGE       default 198.18.0.1 (IPv6: 2001:200::1)
  --dst-ip RANGE       default 198.18.1.1 (IPv6: 2001:200:0:1::1): l3fwd's default tables
                       route both to port 1
  --src-port RANGE     default 1024
  --dst-port RANGE     default 9
  --ttl N              TTL or hop limit (default 64)
  --size SIZES         64 (default), a list 64,128,512, a range 64-1518/64, or imix
                       (7:4:1 of 64, 594 and 1518 bytes)
  --seed N             seed of the random field values (default 1)
  A RANGE is a value, START-END (incrementing by one), START-END/STEP, or START-END/random
  (uniform, seeded). Each varying field moves on with every packet of its stream.
  --streams FILE       streams from a TOML file: [[stream]] tables with the keys name, port,
                       protocol, tcp_flags, ipv6, src_mac, dst_mac, vlan, src_ip, dst_ip,
                       src_port, dst_port, ttl, size (see the README); a port's streams take
                       turns, packet by packet

pcap replay (instead of streams):
  --pcap FILE          send the frames of a pcap file, in order
  --loop N             send the file N times (default 1; 0: until stopped)
  --pcap-timing T      fast (default: as fast as --rate allows) or file (the file's own
                       inter-frame gaps)

Rate and length:
  --rate RATE          per TX port: 1mpps, 250kpps, 5000pps, 10gbps, 500mbps (on the wire:
                       frame + 20 bytes of preamble and gap), 50% of the link, or max (default)
  --duration SECS      stop sending after this long (default: until SIGINT, --count or the
                       end of the pcap)
  --count N            stop after N packets on each TX port
  --drain SECS         after sending stops, go on receiving this long (default 0.5)

Hostile traffic:
  --malformed PCT      spoil PCT percent of the packets, at random (seeded by --seed), the
                       kinds taking turns: bad_checksum, truncated, bad_length, bad_version,
                       martian, ttl_expired, random (see the README for what each is and
                       how a router drops it); they are counted apart, not as loss

Output:
  --quiet              no live table (one line per second otherwise)
  --json FILE          every figure of the run, as JSON

Zero-loss throughput (RFC 2544 section 26.1):
  --rfc2544            for each --size, binary-search the highest rate with no loss
  --trial SECS         length of each trial (default 2)
  --loss-tolerance P   loss in percent that still counts as none (default 0)
  --resolution P       stop when the search interval is below P percent of the top rate
                       (default 1)

SIGINT or SIGTERM stops sending; the summary follows after the drain.
";

#[derive(Clone, Debug)]
pub enum Source {
    /// Streams from the command line or a TOML file.
    Streams {
        cli: Box<StreamText>,
        file: Option<PathBuf>,
        seed: u64,
    },
    Pcap {
        path: PathBuf,
        loops: u64,
        file_timing: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Options {
    pub tx_ports: Vec<u16>,
    pub rx_ports: Vec<u16>,
    pub tx_queues: u16,
    pub rx_queues: u16,
    pub burst: usize,
    pub link_wait: Duration,
    pub source: Source,
    pub rate: Rate,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub drain: Duration,
    pub quiet: bool,
    pub json: Option<PathBuf>,
    pub rfc2544: Option<Search>,
    /// Percent of packets sent spoiled (0: none).
    pub malformed: f64,
    /// Seeds the choice of packets to spoil.
    pub seed: u64,
}

/// RFC 2544 search settings.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub trial: Duration,
    pub tolerance_pct: f64,
    pub resolution_pct: f64,
}

pub enum Command {
    Help,
    Run {
        eal: Vec<String>,
        options: Box<Options>,
    },
}

fn ports(text: &str, flag: &str) -> Result<Vec<u16>, String> {
    let list: Result<Vec<u16>, _> = text.split(',').map(|p| p.trim().parse::<u16>()).collect();
    match list {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "{flag} '{text}': expected port ids such as 0 or 0,1"
        )),
    }
}

fn seconds(text: &str, flag: &str) -> Result<Duration, String> {
    let t = text.trim().trim_end_matches('s');
    match t.parse::<f64>() {
        Ok(s) if s >= 0.0 && s.is_finite() && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{flag} '{text}': expected seconds, such as 5 or 0.5"
        )),
    }
}

fn number<T: std::str::FromStr>(text: &str, flag: &str, what: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{flag} '{text}': expected {what}"))
}

fn percent(text: &str, flag: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{flag} '{text}': expected a percentage from 0 up to 100"
        )),
    }
}

/// Parses everything after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let (eal, ours) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), &args[i + 1..]),
        None if args.iter().any(|a| a == "-h" || a == "--help") => return Ok(Command::Help),
        None => (args.to_vec(), &args[args.len()..]),
    };
    let mut cli = StreamText::default();
    let mut tx_ports = None;
    let mut rx_ports = None;
    let (mut tx_queues, mut rx_queues, mut burst) = (1u16, 1u16, 32usize);
    let mut link_wait = Duration::from_secs(10);
    let (mut streams_file, mut pcap, mut loops, mut file_timing) = (None, None, 1u64, false);
    let mut seed = 1u64;
    let mut rate = Rate::Unlimited;
    let (mut duration, mut count) = (None, None);
    let mut drain = Duration::from_millis(500);
    let (mut quiet, mut json) = (false, None);
    let mut malformed = 0.0;
    let (mut rfc2544, mut trial, mut tolerance, mut resolution) =
        (false, Duration::from_secs(2), 0.0, 1.0);
    let mut stream_flags = Vec::new();
    let mut i = 0;
    while i < ours.len() {
        let (flag, inline) = match ours[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (ours[i].as_str(), None),
        };
        let takes_value = !matches!(flag, "-h" | "--help" | "--ipv6" | "--quiet" | "--rfc2544");
        if takes_value && !STREAM_VALUE_FLAGS.contains(&flag) && !OTHER_VALUE_FLAGS.contains(&flag)
        {
            return Err(format!("unknown option '{flag}' (see --help)"));
        }
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    ours.get(i)
                        .cloned()
                        .ok_or_else(|| format!("{flag} needs a value (see --help)"))?
                }
            }
        } else {
            String::new()
        };
        i += 1;
        let v = value.as_str();
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--tx-port" => tx_ports = Some(ports(v, flag)?),
            "--rx-port" if v == "none" => rx_ports = Some(Vec::new()),
            "--rx-port" => rx_ports = Some(ports(v, flag)?),
            "--tx-queues" | "--rx-queues" => {
                let n: u16 = number(v, flag, "a number of queues from 1 to 64")?;
                if !(1..=64).contains(&n) {
                    return Err(format!("{flag} {n}: expected 1 to 64 queues"));
                }
                if flag == "--tx-queues" {
                    tx_queues = n
                } else {
                    rx_queues = n
                }
            }
            "--burst" => {
                burst = number(v, flag, "1 to 64")?;
                if !(1..=sluice::MAX_BURST).contains(&burst) {
                    return Err(format!(
                        "--burst {burst}: expected 1 to {}",
                        sluice::MAX_BURST
                    ));
                }
            }
            "--link-wait" => link_wait = seconds(v, flag)?,
            "--proto" => cli.protocol = Some(v.to_owned()),
            "--tcp-flags" => cli.tcp_flags = Some(v.to_owned()),
            "--ipv6" => cli.ipv6 = Some(true),
            "--src-mac" => cli.src_mac = Some(v.to_owned()),
            "--dst-mac" => cli.dst_mac = Some(v.to_owned()),
            "--vlan" => cli.vlan = Some(number(v, flag, "a VLAN id from 0 to 4095")?),
            "--src-ip" => cli.src_ip = Some(v.to_owned()),
            "--dst-ip" => cli.dst_ip = Some(v.to_owned()),
            "--src-port" => cli.src_port = Some(v.to_owned()),
            "--dst-port" => cli.dst_port = Some(v.to_owned()),
            "--ttl" => cli.ttl = Some(number(v, flag, "a TTL from 1 to 255")?),
            "--size" => cli.size = Some(spec::SizeText::Text(v.to_owned())),
            "--seed" => seed = number(v, flag, "a number")?,
            "--streams" => streams_file = Some(PathBuf::from(v)),
            "--pcap" => pcap = Some(PathBuf::from(v)),
            "--loop" => loops = number(v, flag, "a number of passes (0: until stopped)")?,
            "--pcap-timing" => {
                file_timing = match v {
                    "file" => true,
                    "fast" => false,
                    _ => return Err(format!("--pcap-timing '{v}': expected file or fast")),
                }
            }
            "--rate" => rate = Rate::parse(v)?,
            "--duration" => duration = Some(seconds(v, flag)?),
            "--count" => count = Some(number(v, flag, "a number of packets")?),
            "--drain" => drain = seconds(v, flag)?,
            "--quiet" => quiet = true,
            "--json" => json = Some(PathBuf::from(v)),
            "--rfc2544" => rfc2544 = true,
            "--trial" => trial = seconds(v, flag)?,
            "--loss-tolerance" => tolerance = percent(v, flag)?,
            "--resolution" => resolution = percent(v, flag)?,
            "--malformed" => malformed = percent(v, flag)?,
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
        if STREAM_VALUE_FLAGS.contains(&flag) || flag == "--ipv6" {
            stream_flags.push(flag.to_owned());
        }
    }
    let tx_ports = tx_ports.unwrap_or(vec![0]);
    let rx_ports = rx_ports.unwrap_or_else(|| tx_ports.clone());
    let source = match (pcap, streams_file) {
        (Some(_), Some(_)) => {
            return Err("--pcap and --streams both say what to send: give one".into())
        }
        (Some(path), None) => {
            if let Some(f) = stream_flags.first() {
                return Err(format!(
                    "{f} describes a stream, but --pcap sends the file's frames as they are"
                ));
            }
            if rfc2544 {
                return Err("--rfc2544 searches with generated streams, not --pcap".into());
            }
            Source::Pcap {
                path,
                loops,
                file_timing,
            }
        }
        (None, file) => {
            if let (Some(_), Some(f)) = (&file, stream_flags.iter().find(|f| *f != "--seed")) {
                return Err(format!("{f} describes a stream on the command line, but --streams gives them from the file: put it in the file"));
            }
            Source::Streams {
                cli: Box::new(cli),
                file,
                seed,
            }
        }
    };
    if file_timing && rate != Rate::Unlimited {
        return Err("--pcap-timing file and --rate both set the pace: give one".into());
    }
    if rfc2544 && malformed > 0.0 {
        return Err("--rfc2544 measures a forwarder's rate, which spoiled packets would not count in: drop --malformed".into());
    }
    if rfc2544 && rx_ports.is_empty() {
        return Err("--rfc2544 needs a receiving port to count loss: drop --rx-port none".into());
    }
    Ok(Command::Run {
        eal,
        options: Box::new(Options {
            tx_ports,
            rx_ports,
            tx_queues,
            rx_queues,
            burst,
            link_wait,
            source,
            rate,
            duration,
            count,
            drain,
            quiet,
            json,
            rfc2544: rfc2544.then_some(Search {
                trial,
                tolerance_pct: tolerance,
                resolution_pct: resolution,
            }),
            malformed,
            seed,
        }),
    })
}

/// The options that describe a stream and take a value (`--ipv6` describes one too).
const STREAM_VALUE_FLAGS: &[&str] = &[
    "--proto",
    "--tcp-flags",
    "--src-mac",
    "--dst-mac",
    "--vlan",
    "--src-ip",
    "--dst-ip",
    "--src-port",
    "--dst-port",
    "--ttl",
    "--size",
    "--seed",
];

/// The other options that take a value.
const OTHER_VALUE_FLAGS: &[&str] = &[
    "--tx-port",
    "--rx-port",
    "--tx-queues",
    "--rx-queues",
    "--burst",
    "--link-wait",
    "--streams",
    "--pcap",
    "--loop",
    "--pcap-timing",
    "--rate",
    "--duration",
    "--count",
    "--drain",
    "--json",
    "--trial",
    "--loss-tolerance",
    "--resolution",
    "--malformed",
];
