//! sluice-pktgen's command line, parsed by clap ([`Cli`]) and resolved into what a run needs
//! ([`Options`]): where the packets come from, and the checks the options need together.

use crate::spec::{self, KeyDist, Rate, StreamText};
use clap::Parser;
use sluice::net::ethernet::Address;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

/// Sends streams of packets on DPDK ports, receives them back, and measures rate, loss,
/// duplicates, reordering and one-way latency.
///
/// Every packet carries a signature (stream, sequence number, TSC timestamp) after its L4
/// header; checksums are right in every packet. Frame sizes count the 4-byte FCS, as RFC 2544
/// does: a 64-byte frame is 60 bytes of data. A RANGE is a value, START-END (incrementing by
/// one), START-END/STEP, or START-END/random (uniform, seeded); each varying field moves on
/// with every packet of its stream.
#[derive(Parser, Debug)]
#[command(after_help = "SIGINT or SIGTERM stops sending; the summary follows after the drain.")]
pub struct Cli {
    /// Ports to send on, e.g. 0 or 0,2
    #[arg(long, value_name = "LIST", default_value = "0", value_parser = ports, help_heading = "Ports")]
    tx_port: PortList,
    /// Ports to receive on (default: the TX ports); none: transmit only
    #[arg(long, value_name = "LIST|none", value_parser = ports_or_none, help_heading = "Ports")]
    rx_port: Option<PortList>,
    /// TX queues per TX port; with more, each packet takes the queue RSS would give its flow
    /// (Toeplitz hash, default key), so a multi-queue receiver sees a NIC's spread
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64), help_heading = "Ports")]
    tx_queues: u16,
    /// RX queues per RX port, spread by RSS
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64), help_heading = "Ports")]
    rx_queues: u16,
    /// Most packets per TX burst
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=sluice::MAX_BURST as i64), help_heading = "Ports")]
    burst: u16,
    /// Wait this long for the links to come up, in seconds
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds, help_heading = "Ports")]
    link_wait: Duration,

    /// udp, tcp or icmp (echo request; ICMPv6 over IPv6) [default: udp]
    #[arg(long, value_name = "P", help_heading = STREAM)]
    proto: Option<String>,
    /// TCP flags, e.g. syn or syn,ack [default: ack]
    #[arg(long, value_name = "FLAGS", help_heading = STREAM)]
    tcp_flags: Option<String>,
    /// IPv6 with its default addresses (also implied by IPv6 addresses)
    #[arg(long, help_heading = STREAM)]
    ipv6: bool,
    /// Source MAC RANGE (default: the TX port's MAC)
    #[arg(long, value_name = "RANGE", help_heading = STREAM)]
    src_mac: Option<String>,
    /// Destination MAC RANGE [default: 02:00:00:00:00:01]
    #[arg(long, value_name = "RANGE", help_heading = STREAM)]
    dst_mac: Option<String>,
    /// An 802.1Q tag
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u16).range(0..=4095), help_heading = STREAM)]
    vlan: Option<u16>,
    /// Source address RANGE [default: 198.18.0.1; IPv6: 2001:200::1]
    #[arg(long, value_name = "RANGE", help_heading = STREAM)]
    src_ip: Option<String>,
    /// Destination address RANGE [default: 198.18.1.1; IPv6: 2001:200:0:1::1]: l3fwd's
    /// default tables route both to port 1
    #[arg(long, value_name = "RANGE", help_heading = STREAM)]
    dst_ip: Option<String>,
    /// Source port RANGE [default: 1024]
    #[arg(long, value_name = "RANGE", help_heading = STREAM)]
    src_port: Option<String>,
    /// Destination port RANGE [default: 9]
    #[arg(long, value_name = "RANGE", help_heading = STREAM)]
    dst_port: Option<String>,
    /// TTL or hop limit [default: 64]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..), help_heading = STREAM)]
    ttl: Option<u8>,
    /// 64 (default), a list 64,128,512, a range 64-1518/64, or imix (7:4:1 of 64, 594 and
    /// 1518 bytes)
    #[arg(long, value_name = "SIZES", help_heading = STREAM)]
    size: Option<String>,
    /// Seed of the random field values and of --malformed
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = STREAM)]
    seed: u64,
    /// Streams from a TOML file: [[stream]] tables with the keys name, port, protocol,
    /// tcp_flags, ipv6, src_mac, dst_mac, vlan, src_ip, dst_ip, src_port, dst_port, ttl, size
    /// (see docs/pktgen.md); a port's streams take turns, packet by packet
    #[arg(long, value_name = "FILE", help_heading = STREAM)]
    streams: Option<PathBuf>,

    /// Send the frames of a pcap file, in order (instead of streams)
    #[arg(long, value_name = "FILE", help_heading = "pcap replay")]
    pcap: Option<PathBuf>,
    /// Send the file N times (0: until stopped)
    #[arg(
        long = "loop",
        value_name = "N",
        default_value_t = 1,
        help_heading = "pcap replay"
    )]
    loops: u64,
    /// fast: as fast as --rate allows; file: the file's own inter-frame gaps
    #[arg(long, value_name = "T", default_value = "fast", value_parser = ["fast", "file"], help_heading = "pcap replay")]
    pcap_timing: String,

    /// Per TX port: 1mpps, 250kpps, 5000pps, 10gbps, 500mbps (on the wire: frame + 20 bytes
    /// of preamble and gap), 50% of the link, or max
    #[arg(long, value_name = "RATE", default_value = "max", value_parser = Rate::parse, help_heading = "Rate and length")]
    rate: Rate,
    /// Stop sending after this long, in seconds (default: until SIGINT, --count or the end of
    /// the pcap)
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Rate and length")]
    duration: Option<Duration>,
    /// Stop after N packets on each TX port
    #[arg(long, value_name = "N", help_heading = "Rate and length")]
    count: Option<u64>,
    /// After sending stops, go on receiving this long, in seconds
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = seconds, help_heading = "Rate and length")]
    drain: Duration,

    /// Spoil PCT percent of the packets, at random (seeded by --seed), the kinds taking
    /// turns: bad_checksum, truncated, bad_length, bad_version, martian, ttl_expired, random
    /// (see docs/pktgen.md); they are counted apart, not as loss
    #[arg(long, value_name = "PCT", default_value = "0", value_parser = percent, help_heading = "Hostile traffic")]
    malformed: f64,

    /// No live table (one line per second otherwise)
    #[arg(long, help_heading = "Output")]
    quiet: bool,
    /// Every figure of the run, as JSON
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    json: Option<PathBuf>,

    /// For each --size, binary-search the highest rate with no loss (RFC 2544 26.1)
    #[arg(long, help_heading = RFC2544)]
    rfc2544: bool,
    /// Length of each trial, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds, help_heading = RFC2544)]
    trial: Duration,
    /// Loss in percent that still counts as none
    #[arg(long, value_name = "P", default_value = "0", value_parser = percent, help_heading = RFC2544)]
    loss_tolerance: f64,
    /// Stop when the search interval is below P percent of the top rate
    #[arg(long, value_name = "P", default_value = "1", value_parser = percent, help_heading = RFC2544)]
    resolution: f64,

    /// stream (packets of streams or a pcap) or kv (clients of a sluice-kv appliance: sessions,
    /// then requests at --rate a second, from the first --tx-port)
    #[arg(long, value_name = "W", default_value = "stream", value_parser = ["stream", "kv"], help_heading = KV)]
    workload: String,
    /// The appliance, IPv4:PORT or IPv4 (port 7000); its MAC is asked by ARP unless --dst-mac
    /// gives it. Clients are --src-ip (default 10.1.0.1) and the next addresses, one per
    /// session up to 65,536, then the next --src-port (default 1024)
    #[arg(long, value_name = "ADDR", value_parser = server, help_heading = KV)]
    server: Option<SocketAddrV4>,
    /// Sessions to open (handshakes first); requests go to them as they become free (one on
    /// its way per session, as the protocol allows)
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=16_000_000), help_heading = KV)]
    sessions: u32,
    /// HELLOs a second while the sessions open
    #[arg(long, value_name = "PPS", default_value = "100000", value_parser = positive, help_heading = KV)]
    handshake_rate: f64,
    /// Requests at exponential intervals (Poisson arrivals) instead of evenly spaced
    #[arg(long, help_heading = KV)]
    poisson: bool,
    /// The share of requests that are GETs; the rest are PUTs
    #[arg(long, value_name = "X", default_value = "0.9", value_parser = share, help_heading = KV)]
    get_ratio: f64,
    /// Keys, named k0, k1, ...
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..), help_heading = KV)]
    keys: u64,
    /// uniform or zipf:THETA (THETA from 0 to 5, such as zipf:0.99)
    #[arg(long, value_name = "D", default_value = "uniform", value_parser = KeyDist::parse, help_heading = KV)]
    key_dist: KeyDist,
    /// Bytes of each PUT's value
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u16).range(0..=1024), help_heading = KV)]
    value_size: u16,
    /// A request not answered within this long is a timeout, in seconds
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds, help_heading = KV)]
    timeout: Duration,
    /// A handshake flood beside the requests, hello:RATE: HELLOs a second from spoofed
    /// sources, random addresses and ports in 198.18.0.0/15 (RFC 2544's benchmarking range), as
    /// an attacker without a cookie sends them (a bare RATE means the same). 0: none
    #[arg(long, value_name = "hello:RATE", default_value = "0", value_parser = flood, help_heading = KV)]
    flood: f64,
}

/// The spoofed HELLOs' sources (`--flood`): RFC 2544's benchmarking range.
pub const FLOOD_SOURCES: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);

/// Whether `ip` is one of [`FLOOD_SOURCES`].
pub fn is_flood_source(ip: Ipv4Addr) -> bool {
    let (net, len) = FLOOD_SOURCES;
    u32::from(ip) >> (32 - len) == u32::from(net) >> (32 - len)
}

/// `--flood`: hello:RATE, or RATE alone (HELLOs are the one kind of flood).
fn flood(text: &str) -> Result<f64, String> {
    let rate = text.strip_prefix("hello:").unwrap_or(text);
    match rate.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!(
            "expected hello:RATE, HELLOs a second such as hello:500000 (or 0 for none), not '{text}'"
        )),
    }
}

const KV: &str = "sluice-kv workload (--workload kv)";

fn server(text: &str) -> Result<SocketAddrV4, String> {
    text.parse::<SocketAddrV4>()
        .or_else(|_| {
            text.parse::<Ipv4Addr>()
                .map(|ip| SocketAddrV4::new(ip, sluice_kv::protocol::DEFAULT_PORT))
        })
        .map_err(|_| format!("expected an IPv4 address with an optional port, such as 10.0.0.1:7000, not '{text}'"))
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("expected a number above 0, not '{text}'")),
    }
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "expected a share from 0 to 1, such as 0.9, not '{text}'"
        )),
    }
}

/// What `--workload kv` runs.
#[derive(Clone, Debug)]
pub struct KvWorkload {
    pub server: SocketAddrV4,
    pub server_mac: Option<Address>,
    pub client_ip: Ipv4Addr,
    pub client_port: u16,
    pub sessions: u32,
    pub handshake_rate: f64,
    pub rate: f64,
    pub poisson: bool,
    pub get_ratio: f64,
    pub keys: u64,
    pub key_dist: KeyDist,
    pub value_size: usize,
    pub timeout: Duration,
    /// Spoofed HELLOs a second during the requests (0: none).
    pub flood: f64,
}

const STREAM: &str = "A stream from the command line (for several, use --streams)";
const RFC2544: &str = "Zero-loss throughput (RFC 2544 section 26.1)";

/// A list of port ids (empty: none).
#[derive(Clone, Debug)]
pub struct PortList(Vec<u16>);

fn ports(text: &str) -> Result<PortList, String> {
    let list: Result<Vec<u16>, _> = text.split(',').map(|p| p.trim().parse::<u16>()).collect();
    match list {
        Ok(v) if !v.is_empty() => Ok(PortList(v)),
        _ => Err("expected port ids such as 0 or 0,1".into()),
    }
}

fn ports_or_none(text: &str) -> Result<PortList, String> {
    if text == "none" {
        return Ok(PortList(Vec::new()));
    }
    ports(text).map_err(|e| format!("{e}, or none"))
}

fn seconds(text: &str) -> Result<Duration, String> {
    let t = text.trim().trim_end_matches('s');
    match t.parse::<f64>() {
        Ok(s) if s >= 0.0 && s.is_finite() && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err("expected seconds, such as 5 or 0.5".into()),
    }
}

fn percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..100.0).contains(&p) => Ok(p),
        _ => Err("expected a percentage from 0 up to 100".into()),
    }
}

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
    /// `--workload kv`: clients of a sluice-kv appliance instead of streams.
    pub kv: Option<KvWorkload>,
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

impl Cli {
    /// The options that describe a stream on the command line, by name, as given.
    fn stream_options(&self) -> Vec<&'static str> {
        let given = [
            (self.proto.is_some(), "--proto"),
            (self.tcp_flags.is_some(), "--tcp-flags"),
            (self.ipv6, "--ipv6"),
            (self.src_mac.is_some(), "--src-mac"),
            (self.dst_mac.is_some(), "--dst-mac"),
            (self.vlan.is_some(), "--vlan"),
            (self.src_ip.is_some(), "--src-ip"),
            (self.dst_ip.is_some(), "--dst-ip"),
            (self.src_port.is_some(), "--src-port"),
            (self.dst_port.is_some(), "--dst-port"),
            (self.ttl.is_some(), "--ttl"),
            (self.size.is_some(), "--size"),
        ];
        given
            .into_iter()
            .filter_map(|(given, name)| given.then_some(name))
            .collect()
    }

    /// `--workload kv`'s options, checked together.
    fn kv_workload(&self) -> Result<KvWorkload, String> {
        let server = self
            .server
            .ok_or("--workload kv needs --server, the appliance's address")?;
        let rate = match self.rate {
            Rate::Pps(pps) => pps,
            Rate::Unlimited => {
                return Err("--workload kv needs --rate in requests a second, such as 100kpps (open loop: the rate is kept whatever the answers)".into())
            }
            _ => return Err("--workload kv takes --rate in requests a second (pps, kpps, mpps), not bits or a share of the link".into()),
        };
        for (given, name) in [
            (self.pcap.is_some(), "--pcap"),
            (self.streams.is_some(), "--streams"),
            (self.rfc2544, "--rfc2544"),
            (self.malformed > 0.0, "--malformed"),
        ] {
            if given {
                return Err(format!("{name} is for --workload stream, not kv"));
            }
        }
        let single = |text: &Option<String>, name: &str| -> Result<Option<String>, String> {
            match text {
                Some(t) if t.contains(['-', ',', '/']) => Err(format!(
                    "{name} is one value for --workload kv (the clients count up from it), not '{t}'"
                )),
                t => Ok(t.clone()),
            }
        };
        let client_ip = match single(&self.src_ip, "--src-ip")? {
            Some(ip) => ip
                .parse()
                .map_err(|_| format!("--src-ip '{ip}' is not an IPv4 address"))?,
            None => Ipv4Addr::new(10, 1, 0, 1),
        };
        let client_port = match single(&self.src_port, "--src-port")? {
            Some(p) => p
                .parse()
                .map_err(|_| format!("--src-port '{p}' is not a port"))?,
            None => 1024,
        };
        let server_mac = match single(&self.dst_mac, "--dst-mac")? {
            Some(m) => Some(
                m.parse::<Address>()
                    .map_err(|_| format!("--dst-mac '{m}' is not a MAC address"))?,
            ),
            None => None,
        };
        let (flood_net, flood_len) = FLOOD_SOURCES;
        let last_client =
            Ipv4Addr::from(u32::from(client_ip).wrapping_add(self.sessions.min(65_536) - 1));
        if self.flood > 0.0 && (is_flood_source(client_ip) || is_flood_source(last_client)) {
            return Err(format!(
                "--flood sends from {flood_net}/{flood_len}, which the clients from --src-ip {client_ip} reach: give another --src-ip"
            ));
        }
        let ports_needed = u32::from(client_port) + (self.sessions - 1) / 65_536;
        if ports_needed > 65_535 {
            return Err(format!(
                "{} sessions from --src-port {client_port} run past port 65535: give a lower --src-port",
                self.sessions
            ));
        }
        Ok(KvWorkload {
            server,
            server_mac,
            client_ip,
            client_port,
            sessions: self.sessions,
            handshake_rate: self.handshake_rate,
            rate,
            poisson: self.poisson,
            get_ratio: self.get_ratio,
            keys: self.keys,
            key_dist: self.key_dist,
            value_size: usize::from(self.value_size),
            timeout: self.timeout,
            flood: self.flood,
        })
    }

    /// What the options say together: where packets come from, and whether they agree.
    pub fn resolve(self) -> Result<Options, String> {
        let kv = match self.workload.as_str() {
            "kv" => Some(self.kv_workload()?),
            _ => {
                if self.server.is_some() {
                    return Err("--server is for --workload kv".into());
                }
                None
            }
        };
        let stream_options = self.stream_options();
        let tx_ports = self.tx_port.0.clone();
        let rx_ports = self
            .rx_port
            .as_ref()
            .map_or(tx_ports.clone(), |p| p.0.clone());
        let file_timing = self.pcap_timing == "file";
        let source = match (self.pcap, self.streams) {
            (Some(_), Some(_)) => {
                return Err("--pcap and --streams both say what to send: give one".into())
            }
            (Some(path), None) => {
                if let Some(f) = stream_options.first() {
                    return Err(format!(
                        "{f} describes a stream, but --pcap sends the file's frames as they are"
                    ));
                }
                if self.rfc2544 {
                    return Err("--rfc2544 searches with generated streams, not --pcap".into());
                }
                Source::Pcap {
                    path,
                    loops: self.loops,
                    file_timing,
                }
            }
            (None, file) => {
                if let (Some(_), Some(f)) = (&file, stream_options.first()) {
                    return Err(format!("{f} describes a stream on the command line, but --streams gives them from the file: put it in the file"));
                }
                let cli = StreamText {
                    protocol: self.proto,
                    tcp_flags: self.tcp_flags,
                    ipv6: self.ipv6.then_some(true),
                    src_mac: self.src_mac,
                    dst_mac: self.dst_mac,
                    vlan: self.vlan,
                    src_ip: self.src_ip,
                    dst_ip: self.dst_ip,
                    src_port: self.src_port,
                    dst_port: self.dst_port,
                    ttl: self.ttl,
                    size: self.size.map(spec::SizeText::Text),
                    ..StreamText::default()
                };
                Source::Streams {
                    cli: Box::new(cli),
                    file,
                    seed: self.seed,
                }
            }
        };
        if file_timing && self.rate != Rate::Unlimited {
            return Err("--pcap-timing file and --rate both set the pace: give one".into());
        }
        if self.rfc2544 && self.malformed > 0.0 {
            return Err("--rfc2544 measures a forwarder's rate, which spoiled packets would not count in: drop --malformed".into());
        }
        if self.rfc2544 && rx_ports.is_empty() {
            return Err(
                "--rfc2544 needs a receiving port to count loss: drop --rx-port none".into(),
            );
        }
        Ok(Options {
            kv,
            tx_ports,
            rx_ports,
            tx_queues: self.tx_queues,
            rx_queues: self.rx_queues,
            burst: usize::from(self.burst),
            link_wait: self.link_wait,
            source,
            rate: self.rate,
            duration: self.duration,
            count: self.count,
            drain: self.drain,
            quiet: self.quiet,
            json: self.json,
            rfc2544: self.rfc2544.then_some(Search {
                trial: self.trial,
                tolerance_pct: self.loss_tolerance,
                resolution_pct: self.resolution,
            }),
            malformed: self.malformed,
            seed: self.seed,
        })
    }
}
