//! sluice-kv: the key-value appliance of docs/protocol.md on one port, with the router's
//! responder for ARP, neighbour discovery and ping. A live line of its own each period, and
//! `stats`, `sessions` and `flush` on a control socket and through telemetry.

use clap::Parser;
use sluice::app::{self, options, usage, App, ControlSocket, Outcome, PortPlan, PortSetup, Ports};
use sluice::pipeline::Messenger;
use sluice::pipeline::{Lane, Pipeline, Settings};
use sluice::stage::guard::{Guard, GuardConfig};
use sluice::stage::router::{NextHopMac, Responder, Router, RouterPort};
use sluice::worker::{IdlePolicy, StopFlag};
use sluice_kv::protocol::DEFAULT_PORT;
use sluice_kv::server::{Limits, Server, Shard};
use sluice_kv::stage::{
    current_epoch, epoch_secret, guard_classifier, Flush, KvStage, Listener, Published,
};
use sluice_kv::store::Store;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Serves the sluice-kv protocol (docs/protocol.md) over UDP on one port, IPv4 and IPv6,
/// answering ARP, neighbour solicitations and ping for its addresses.
#[derive(Parser)]
#[command(after_help = "example, on a veth end whose peer has 10.0.1.2/24:
  sluice-kv -l 0 --vdev net_af_packet0,iface=veth0 -- --port 0 --addr 10.0.1.1/24
  sluice-kv-cli --server 10.0.1.1 put colour blue")]
struct Options {
    /// The port to serve on
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// An address of the service, IP/LEN (repeatable; IPv4 or IPv6)
    #[arg(long, value_name = "IP/LEN", required = true, value_parser = address)]
    addr: Vec<(IpAddr, u8)>,
    /// The service's UDP port
    #[arg(long, default_value_t = DEFAULT_PORT)]
    udp_port: u16,
    /// Memory for the store, in bytes with an optional K, M or G, shared by the workers (each
    /// slot holds a key of up to 250 bytes and a value of up to 1,024)
    #[arg(long, default_value = "64M", value_parser = memory)]
    memory: usize,
    /// Where the store lives: hugepages (the EAL's, on each worker's NUMA node) or heap (the
    /// process's own pages)
    #[arg(long, value_name = "WHERE", default_value = "hugepages")]
    store: StoreMemory,
    /// The most sessions open at once (up to 16,000,000; each worker reserves room for its
    /// share at start, about 250 bytes a session)
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=16_000_000))]
    sessions_max: u32,
    /// Seconds without a request after which a session ends
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..))]
    idle_timeout: u16,
    /// Packets a second one source may send (the guard's token bucket per source)
    #[arg(long, value_name = "PPS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    guard_rate: u64,
    /// Packets one source may send at once
    #[arg(long, value_name = "PACKETS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    guard_burst: u64,
    /// Sources the guard tracks at once (the least recently seen make room)
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    guard_sources: usize,
    /// The most of the lcore's packets that handshakes may be, from 0 to 1
    #[arg(long, value_name = "SHARE", default_value_t = 0.05, value_parser = share)]
    handshake_share: f64,
    /// Answers per second and lcore to what the service's addresses do not serve, as a host
    /// gives them: ICMP port unreachable for UDP to a port other than --udp-port, a reset for
    /// TCP, protocol unreachable for other transports (0: none, they are dropped as local)
    #[arg(long, value_name = "N", default_value_t = 100)]
    icmp_rate: u32,
    /// Seconds between report lines (0: none)
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    stats_period: u32,
    /// adaptive (sleep when idle) or off (poll flat out)
    #[arg(long, value_name = "POLICY", default_value = "adaptive", value_parser = options::idle)]
    idle: IdlePolicy,
    /// A Unix socket taking one command per line: stats, sessions, flush
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StoreMemory {
    Hugepages,
    Heap,
}

fn address(text: &str) -> Result<(IpAddr, u8), String> {
    options::addr(&format!("0,{text}"))
        .map(|(_, ip, len)| (ip, len))
        .map_err(|_| format!("expected IP/LEN such as 10.0.1.1/24 or fd00:1::1/64, not '{text}'"))
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "expected a share from 0 to 1, such as 0.05, not '{text}'"
        )),
    }
}

fn memory(text: &str) -> Result<usize, String> {
    let bad = || format!("expected bytes with an optional K, M or G, such as 64M, not '{text}'");
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let n: usize = digits.parse().map_err(|_| bad())?;
    let scale: usize = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|&b| b > 0).ok_or_else(bad)
}

/// 16 random bytes from the kernel.
fn random_key() -> std::io::Result<[u8; 16]> {
    let mut key = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

fn run(mut app: App, options: Options) -> Outcome {
    let eal = app.start_eal()?;
    if !eal.port_ids().contains(&options.port) {
        return Err(usage(format!(
            "no port {} (the EAL found {}): give a --vdev or a PCI device",
            options.port,
            options::describe_ports(&eal.port_ids())
        )));
    }
    // A worker on each of the EAL's lcores, each with its own RX and TX queue (RSS spreads
    // clients over them), sessions and part of the keys.
    let lcores = eal.lcores();
    let workers = lcores.len() as u16;
    let device = sluice::port::info(options.port)?;
    if device.max_rx_queues < workers || device.max_tx_queues < workers {
        return Err(usage(format!(
            "port {} ({}) has {} RX and {} TX queues, and sluice-kv runs a worker with a queue pair on each lcore ({workers}): give fewer lcores with -l, or a device with more queues (net_af_packet: qpairs={workers})",
            options.port, device.driver, device.max_rx_queues, device.max_tx_queues
        )));
    }
    let plan = PortPlan {
        id: options.port,
        rx_queues: workers,
        tx_queues: workers,
    };
    let mut ports = Ports::start(&eal, &[plan], &PortSetup::default())?;
    let mac = ports.mac(options.port)?;
    let addrs: Vec<IpAddr> = options.addr.iter().map(|(ip, _)| *ip).collect();
    let router = Arc::new(Router::new(vec![RouterPort {
        id: options.port,
        mac,
        next_hop: NextHopMac::Resolve,
        v4: options
            .addr
            .iter()
            .filter_map(|(ip, len)| match ip {
                IpAddr::V4(a) => Some((*a, *len)),
                IpAddr::V6(_) => None,
            })
            .collect(),
        v6: options
            .addr
            .iter()
            .filter_map(|(ip, len)| match ip {
                IpAddr::V6(a) => Some((*a, *len)),
                IpAddr::V4(_) => None,
            })
            .collect(),
    }]));
    let per_worker = |total: usize| total.div_ceil(usize::from(workers));
    let capacity = Store::capacity_for(per_worker(options.memory));
    let extra = format!(
        ", serving UDP port {} on {}; {workers} worker(s), each with a store of {capacity} entries in {} bytes and at most {} sessions; idle timeout {} s",
        options.udp_port,
        options.addr.iter().map(|(ip, len)| format!("{ip}/{len}")).collect::<Vec<_>>().join(", "),
        per_worker(options.memory),
        per_worker(options.sessions_max as usize),
        options.idle_timeout
    );
    println!("{}", ports.describe(options.port, &extra)?);
    let secret_key = random_key()?;
    let epoch = current_epoch();
    let shard_key = random_key()?;
    let mut pipeline = Pipeline::new(Settings {
        idle: options.idle,
        report_period: Duration::from_secs(u64::from(options.stats_period)),
        // A request costs a microsecond; a TSC read a poll is nothing beside it.
        clock_work: true,
        ..Settings::default()
    });
    let mut published = Vec::new();
    for (worker, &lcore) in (0..workers).zip(&lcores) {
        let server = Server::sharded(
            epoch,
            epoch_secret(&secret_key, epoch),
            random_key()?,
            match options.store {
                StoreMemory::Hugepages => {
                    Store::in_hugepages(capacity, random_key()?, Some(eal.lcore_socket(lcore)))?
                }
                StoreMemory::Heap => Store::new(capacity, random_key()?),
            },
            Limits {
                sessions_max: per_worker(options.sessions_max as usize),
                idle_timeout_secs: options.idle_timeout,
                ..Limits::default()
            },
            Shard {
                worker,
                workers,
                key: shard_key,
            },
        );
        let stage = KvStage::new(
            server,
            secret_key,
            vec![Listener {
                port: options.port,
                mac,
                addrs: addrs.clone(),
            }],
            options.udp_port,
        );
        let guard = Guard::new(
            GuardConfig {
                source_rate: options.guard_rate,
                source_burst: options.guard_burst,
                sources: options.guard_sources,
                handshake_share: options.handshake_share,
                ..GuardConfig::default()
            },
            guard_classifier(options.udp_port),
        )?;
        published.push(stage.published());
        println!(
            "lcore {lcore}: RX port {} queue {worker}, kv and responder",
            options.port
        );
        pipeline.lane(Lane {
            rx: vec![ports.rx(options.port, worker)?],
            tx: vec![ports.tx(options.port, worker)?],
            stages: vec![
                Box::new(guard),
                Box::new(stage),
                Box::new(Responder::new(router.clone()).answer_closed_ports(options.icmp_rate)),
            ],
            lcore,
            stage_lcore: None,
        });
    }
    let published = Arc::new(published);
    let control = Arc::new(Control {
        published: published.clone(),
        messenger: pipeline.messenger(),
        sessions_max: options.sessions_max as usize,
        idle_timeout: options.idle_timeout,
    });
    let reply = move |line: &str| control.reply(line);
    let _socket = options
        .control
        .as_deref()
        .map(|path| ControlSocket::listen(path, reply.clone()))
        .transpose()?;
    app::register_telemetry(
        "sluice-kv",
        &[
            (
                "/kv/stats",
                "sluice-kv: sessions, keys and requests by type",
                "stats",
            ),
            (
                "/kv/sessions",
                "sluice-kv: sessions open, opened, closed and expired",
                "sessions",
            ),
            ("/kv/flush", "sluice-kv: empty the store", "flush"),
        ],
        reply,
    );
    let live = (options.stats_period > 0).then(|| {
        let period = Duration::from_secs(u64::from(options.stats_period));
        let stop = app.stop_flag().clone();
        std::thread::spawn(move || live_lines(&published, period, &stop))
    });
    let balanced = app.forward(&eal, pipeline, ports);
    if let Some(live) = live {
        let _ = live.join();
    }
    balanced
}

/// The live commands, from the control socket and telemetry alike.
struct Control {
    /// Each worker's.
    published: Arc<Vec<Arc<Mutex<Published>>>>,
    messenger: Messenger,
    sessions_max: usize,
    idle_timeout: u16,
}

impl Control {
    fn published(&self) -> Published {
        read_all(&self.published)
    }

    /// `stats`, `sessions` or `flush`: lines, then `ok`; or `error: WHAT`.
    fn reply(&self, line: &str) -> String {
        match line.trim() {
            "stats" => format!("{}ok", self.stats()),
            "sessions" => {
                let p = self.published();
                format!(
                    "sessions {} of {} (idle timeout {} s); opened {}, closed {}, expired {}\nok",
                    p.sessions,
                    self.sessions_max,
                    self.idle_timeout,
                    p.counters.welcomes,
                    p.counters.closed,
                    p.counters.expired
                )
            }
            "flush" => {
                self.messenger.send("kv", Flush);
                "flush sent: the store empties from the worker's next burst\nok".to_owned()
            }
            other => format!("error: unknown command '{other}': expected stats, sessions or flush"),
        }
    }

    /// The stage's figures, a second old at most: one `name value` line each.
    fn stats(&self) -> String {
        let p = self.published();
        let c = p.counters;
        [
            ("sessions", p.sessions as u64),
            ("keys", p.keys as u64),
            ("capacity", p.capacity as u64),
            ("get", c.gets),
            ("put", c.puts),
            ("del", c.dels),
            ("bad_op", c.bad_ops),
            ("truncated", c.truncated),
            ("replayed", c.replayed),
            ("retry", c.retries),
            ("welcome", c.welcomes),
            ("closed", c.closed),
            ("expired", c.expired),
            ("evicted", c.evictions),
            ("handoffs", c.handoffs),
            ("errors", c.errors.iter().sum()),
        ]
        .iter()
        .map(|(name, n)| format!("{name} {n}\n"))
        .collect()
    }
}

/// A line each `period` from what the stage publishes (once a second): requests a second by
/// type, sessions open, handshakes a second, evictions and errors, until stopped.
fn live_lines(published: &[Arc<Mutex<Published>>], period: Duration, stop: &StopFlag) {
    let read = || read_all(published);
    let mut last = read();
    while !stop.is_stopped() {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        let (Some(then), Some(at)) = (last.at, now.at) else {
            last = now;
            continue;
        };
        let elapsed = at.duration_since(then).as_secs_f64();
        if elapsed + 0.05 < period.as_secs_f64() {
            continue;
        }
        let (a, b) = (&last.counters, &now.counters);
        let rate = |from: u64, to: u64| (to - from) as f64 / elapsed;
        println!(
            "kv: get {:.0}/s put {:.0}/s del {:.0}/s, sessions {}, handshakes {:.0}/s, keys {} of {}, handoffs {:.0}/s, evicted {}, errors {}",
            rate(a.gets, b.gets),
            rate(a.puts, b.puts),
            rate(a.dels, b.dels),
            now.sessions,
            rate(a.welcomes, b.welcomes),
            now.keys,
            now.capacity,
            rate(a.handoffs, b.handoffs),
            b.evictions - a.evictions,
            b.errors.iter().sum::<u64>() - a.errors.iter().sum::<u64>(),
        );
        last = now;
    }
}

/// Every worker's figures, summed.
fn read_all(published: &[Arc<Mutex<Published>>]) -> Published {
    Published::sum(
        published
            .iter()
            .map(|p| *p.lock().unwrap_or_else(|e| e.into_inner())),
    )
}

fn main() -> std::process::ExitCode {
    app::main("sluice-kv", run)
}
