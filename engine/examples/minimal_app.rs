//! The smallest whole app on Sluice, to copy: port 0 to port 1 through a stage of its own that
//! drops TCP under a reason of its own and counts UDP by destination port. Ctrl-C stops it:
//!   cargo run --release --example minimal_app -- -l 0 --vdev net_pcap0,rx_pcap=in.pcap \
//!       --vdev net_pcap1,tx_pcap=out.pcap

use clap::Parser;
use sluice::app::{self, App, Outcome, PortPlan, PortSetup, Ports};
use sluice::net::ethernet::{EtherType, Frame};
use sluice::net::{ipv4, ipv6, udp};
use sluice::pipeline::{Lane, Pipeline, Settings};
use sluice::stage::{Action, Context, Node};
use sluice::stats::{CounterMap, Reason};
use sluice::Mbuf;

/// Forwards port 0 to port 1, dropping TCP and counting UDP by destination port.
#[derive(Parser)]
struct Options {}

struct Filter {
    tcp_blocked: Reason,
    udp_by_port: CounterMap,
}

/// The IP protocol of an IPv4 or IPv6 frame, and its UDP destination port if it has one.
fn classify(data: &[u8]) -> Option<(u8, Option<u16>)> {
    let frame = Frame::new_checked(data).ok()?;
    let udp_port = |l4: &[u8]| udp::ports(l4).map(|(_, dst)| dst);
    match frame.ethertype() {
        EtherType::IPV4 => {
            let ip = ipv4::Packet::new_checked(frame.payload()).ok()?;
            Some((ip.protocol(), udp_port(ip.payload())))
        }
        EtherType::IPV6 => {
            let ip = ipv6::Packet::new_checked(frame.payload()).ok()?;
            Some((ip.next_header(), udp_port(ip.payload())))
        }
        _ => None,
    }
}

impl Node for Filter {
    fn name(&self) -> &str {
        "filter"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action], ctx: &mut Context<'_>) {
        for (m, action) in packets.iter().zip(actions.iter_mut()) {
            *action = match classify(m.data()) {
                Some((6, _)) => Action::drop(self.tcp_blocked),
                Some((17, Some(port))) => {
                    ctx.count_key(self.udp_by_port, port.into(), 1);
                    Action::tx(1)
                }
                _ => Action::tx(1),
            };
        }
    }
}

fn run(mut app: App, _: Options) -> Outcome {
    let eal = app.start_eal()?;
    let plans = [PortPlan::new(0), PortPlan::new(1)];
    let mut ports = Ports::start(&eal, &plans, &PortSetup::default())?;
    let mut pipeline = Pipeline::new(Settings::default());
    pipeline.lane(Lane {
        rx: vec![ports.rx(0, 0)?],
        tx: vec![ports.tx(1, 0)?],
        stages: vec![Box::new(Filter {
            tcp_blocked: Reason::named("tcp_blocked"),
            udp_by_port: CounterMap::named("udp_dst_port"),
        })],
        lcore: eal.main_lcore(),
        stage_lcore: None,
    });
    app.forward(&eal, pipeline, ports)
}

fn main() -> std::process::ExitCode {
    app::main("minimal_app", run)
}
