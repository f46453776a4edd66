//! The configurations `L3Forward` is held to the reference router in: each lookup (LPM, FIB,
//! exact match, ACL) with fixed next-hop MACs, LPM as a router for real hosts (addresses,
//! neighbours, time exceeded answers), and LPM with the martian check off. Each builds the
//! engine's tables and the reference's view of the same routes.

use super::{AclRule, Config, NextHop, Port, Table, Tuple};
use sluice::net::ethernet::Address;
use sluice::stage::router::{L3Forward, NextHopMac, Router, RouterPort};
use sluice::stage::table::{
    Acl, AclAction, AclRule as EngineAcl, ExactMatch, Fib, Fib6, FlowKey4, FlowKey6, Lpm, Lpm6,
    RouteTable,
};
use sluice::Eal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Lpm,
    Fib,
    Exact,
    Acl,
    /// LPM, ports with addresses resolving next hops, time exceeded answered.
    Router,
    /// LPM with `forward_martians`.
    MartiansForwarded,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Lpm,
        Kind::Fib,
        Kind::Exact,
        Kind::Acl,
        Kind::Router,
        Kind::MartiansForwarded,
    ];
}

/// The port ids of the scenarios; routes also name port 7, which has no exit.
pub const PORTS: [u16; 3] = [0, 1, 2];

pub fn port_mac(id: u16) -> [u8; 6] {
    [0x02, 0x5c, 0, 0, 0, id as u8]
}

pub fn fixed_next_hop(id: u16) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x10, id as u8]
}

fn v4(a: &str) -> Ipv4Addr {
    a.parse().unwrap()
}

fn v6(a: &str) -> Ipv6Addr {
    a.parse().unwrap()
}

/// Addresses the frames are drawn from: routed ones, ones no route covers, martians, and the
/// router's own subnets and their broadcast addresses.
pub fn addresses_v4() -> Vec<Ipv4Addr> {
    [
        "198.18.1.7",
        "198.18.5.9",
        "10.1.2.3",
        "10.9.9.9",
        "172.16.1.1",
        "8.8.8.8",
        "203.0.113.5",
        "10.0.1.2",
        "10.0.1.9",
        "10.0.1.255",
        "198.18.0.255",
        "198.18.0.7",
        "127.0.0.1",
        "0.0.0.1",
        "224.0.0.5",
        "255.255.255.255",
        "169.254.3.3",
        "240.1.1.1",
        "169.1.1.1",
        "0.0.0.0",
    ]
    .iter()
    .map(|a| v4(a))
    .collect()
}

pub fn addresses_v6() -> Vec<Ipv6Addr> {
    [
        "2001:db8::1",
        "2001:db8:5::9",
        "2001:db8:1::2",
        "2001:db8:1::9",
        "fd00::1",
        "2606:4700::1",
        "::1",
        "::",
        "fe80::1",
        "ff02::1",
        "ff0e::5",
        "2001:db8:0:0::7",
    ]
    .iter()
    .map(|a| v6(a))
    .collect()
}

/// The ordinary unicast addresses of [`addresses_v4`]: what most packets carry.
pub fn ordinary_v4() -> Vec<Ipv4Addr> {
    [
        "198.18.1.7",
        "198.18.5.9",
        "10.1.2.3",
        "10.9.9.9",
        "172.16.1.1",
        "8.8.8.8",
        "10.0.1.2",
    ]
    .iter()
    .map(|a| v4(a))
    .collect()
}

pub fn ordinary_v6() -> Vec<Ipv6Addr> {
    [
        "2001:db8::1",
        "2001:db8:5::9",
        "2001:db8:1::2",
        "fd00::1",
        "2606:4700::1",
    ]
    .iter()
    .map(|a| v6(a))
    .collect()
}

fn prefixes_v4(default: bool) -> Vec<(Ipv4Addr, u8, u16)> {
    let mut routes = vec![
        (v4("198.18.0.0"), 16, 1),
        (v4("198.18.5.0"), 24, 0),
        (v4("10.0.0.0"), 8, 1),
        (v4("10.1.2.3"), 32, 2),
        (v4("172.16.0.0"), 12, 7),
    ];
    if default {
        routes.push((Ipv4Addr::UNSPECIFIED, 0, 2));
    }
    routes
}

fn prefixes_v6(default: bool) -> Vec<(Ipv6Addr, u8, u16)> {
    let mut routes = vec![
        (v6("2001:db8::"), 32, 1),
        (v6("2001:db8:5::"), 48, 0),
        (v6("fd00::"), 8, 7),
    ];
    if default {
        routes.push((Ipv6Addr::UNSPECIFIED, 0, 2));
    }
    routes
}

/// Exact-match rules over the tuples the frames are drawn from (see `tuples_v4`).
fn exact_v4() -> Vec<(Tuple<Ipv4Addr>, u16)> {
    vec![
        ((v4("198.18.1.7"), v4("10.9.9.9"), 9, 1024, 17), 1),
        ((v4("10.1.2.3"), v4("198.18.5.9"), 80, 40000, 6), 2),
        ((v4("8.8.8.8"), v4("10.1.2.3"), 0, 0, 1), 0),
        ((v4("172.16.1.1"), v4("10.9.9.9"), 9, 1024, 17), 7),
    ]
}

fn exact_v6() -> Vec<(Tuple<Ipv6Addr>, u16)> {
    vec![
        ((v6("2001:db8::1"), v6("2606:4700::1"), 9, 1024, 17), 1),
        ((v6("fd00::1"), v6("2001:db8::1"), 80, 40000, 6), 0),
    ]
}

/// Ports the frames' UDP and TCP headers carry, so that exact-match and ACL rules match.
pub const L4_PORTS: [u16; 5] = [9, 1024, 80, 40000, 22];

fn acl_v4() -> Vec<AclRule<Ipv4Addr>> {
    let any = (Ipv4Addr::UNSPECIFIED, 0);
    vec![
        AclRule {
            src: any,
            dst: (v4("198.18.0.0"), 16),
            src_ports: (0, 65535),
            dst_ports: (22, 22),
            protocol: (6, 0xff),
            port: None,
        },
        AclRule {
            src: (v4("10.0.0.0"), 8),
            dst: (v4("198.18.0.0"), 16),
            src_ports: (1024, 65535),
            dst_ports: (0, 65535),
            protocol: (0, 0),
            port: Some(2),
        },
        AclRule {
            src: any,
            dst: (v4("198.18.0.0"), 16),
            src_ports: (0, 65535),
            dst_ports: (0, 65535),
            protocol: (17, 0xff),
            port: Some(1),
        },
        AclRule {
            src: any,
            dst: (v4("10.0.0.0"), 8),
            src_ports: (0, 65535),
            dst_ports: (0, 1023),
            protocol: (0, 0),
            port: Some(0),
        },
    ]
}

fn acl_v6() -> Vec<AclRule<Ipv6Addr>> {
    let any = (Ipv6Addr::UNSPECIFIED, 0);
    vec![
        AclRule {
            src: any,
            dst: (v6("2001:db8::"), 32),
            src_ports: (0, 65535),
            dst_ports: (22, 22),
            protocol: (6, 0xff),
            port: None,
        },
        AclRule {
            src: any,
            dst: (v6("2001:db8::"), 32),
            src_ports: (0, 65535),
            dst_ports: (0, 65535),
            protocol: (0, 0),
            port: Some(1),
        },
    ]
}

fn engine_acl<A: Copy>(rules: &[AclRule<A>]) -> Vec<EngineAcl<A>> {
    rules
        .iter()
        .map(|r| EngineAcl {
            src: r.src,
            dst: r.dst,
            src_ports: r.src_ports,
            dst_ports: r.dst_ports,
            protocol: r.protocol,
            action: r.port.map_or(AclAction::Deny, AclAction::Forward),
        })
        .collect()
}

/// One configuration: a fresh engine stage on demand (each holds its own neighbour requests),
/// and the reference's configuration of the same router.
pub struct Scenario {
    pub router: Arc<Router>,
    v4: Arc<dyn RouteTable<FlowKey4>>,
    v6: Arc<dyn RouteTable<FlowKey6>>,
    pub kind: Kind,
    pub config: Config,
}

impl Scenario {
    pub fn new(eal: &Eal, kind: Kind) -> Scenario {
        let router_mode = kind == Kind::Router;
        let mut ports: Vec<Port> = PORTS
            .iter()
            .map(|&id| Port {
                id,
                mac: port_mac(id),
                next_hop: NextHop::Fixed(fixed_next_hop(id)),
                v4: Vec::new(),
                v6: Vec::new(),
            })
            .collect();
        let mut neighbours = Vec::new();
        if router_mode {
            ports[0].v4 = vec![(v4("198.18.0.1"), 24)];
            ports[0].v6 = vec![(v6("2001:db8::ffff"), 64)];
            ports[1].v4 = vec![(v4("10.0.1.1"), 24), (v4("10.200.0.1"), 31)];
            ports[1].v6 = vec![(v6("2001:db8:1::1"), 64)];
            for p in &mut ports[..2] {
                p.next_hop = NextHop::Resolve;
            }
            let mac = |n: u8| [0x02, 0, 0, 0, 0x20, n];
            neighbours = vec![
                (IpAddr::V4(v4("10.0.1.2")), mac(1)),
                (IpAddr::V4(v4("10.1.2.3")), mac(2)),
                (IpAddr::V4(v4("198.18.5.9")), mac(3)),
                (IpAddr::V6(v6("2001:db8::1")), mac(4)),
                (IpAddr::V6(v6("2001:db8:5::9")), mac(5)),
            ];
        }
        let default = matches!(kind, Kind::Fib | Kind::Router);
        let table = match kind {
            Kind::Exact => Table::Exact {
                v4: exact_v4(),
                v6: exact_v6(),
            },
            Kind::Acl => Table::Acl {
                v4: acl_v4(),
                v6: acl_v6(),
            },
            _ => Table::Prefixes {
                v4: prefixes_v4(default),
                v6: prefixes_v6(default),
            },
        };
        let (v4, v6) = engine_tables(eal, kind, &table);
        let engine_ports = ports
            .iter()
            .map(|p| RouterPort {
                id: p.id,
                mac: Address(p.mac),
                next_hop: match p.next_hop {
                    NextHop::Fixed(mac) => NextHopMac::Fixed(Address(mac)),
                    NextHop::Resolve => NextHopMac::Resolve,
                },
                v4: p.v4.clone(),
                v6: p.v6.clone(),
            })
            .collect();
        let router = Arc::new(Router::new(engine_ports));
        for (ip, mac) in &neighbours {
            router.neighbours.set_static(*ip, Address(*mac));
        }
        Scenario {
            router,
            v4,
            v6,
            kind,
            config: Config {
                ports,
                neighbours,
                table,
                martians: kind != Kind::MartiansForwarded,
                icmp_errors: router_mode,
            },
        }
    }

    /// A new `L3Forward` for this scenario.
    pub fn stage(&self) -> L3Forward {
        let with_ports = matches!(self.kind, Kind::Exact | Kind::Acl);
        let stage = L3Forward::new(
            self.router.clone(),
            Some(self.v4.clone()),
            Some(self.v6.clone()),
            with_ports,
        )
        .answer_icmp_errors(u32::MAX);
        if self.config.martians {
            stage
        } else {
            stage.forward_martians()
        }
    }
}

type Tables = (Arc<dyn RouteTable<FlowKey4>>, Arc<dyn RouteTable<FlowKey6>>);

fn engine_tables(eal: &Eal, kind: Kind, table: &Table) -> Tables {
    match table {
        Table::Prefixes { v4, v6 } if kind == Kind::Fib => {
            let mut fib = Fib::new(eal, 64, None).unwrap();
            for (p, l, port) in v4 {
                fib.add(*p, *l, *port).unwrap();
            }
            let mut fib6 = Fib6::new(eal, 64, None).unwrap();
            for (p, l, port) in v6 {
                fib6.add(*p, *l, *port).unwrap();
            }
            (Arc::new(fib), Arc::new(fib6))
        }
        Table::Prefixes { v4, v6 } => {
            let lpm = Lpm::new(eal, 64, None).unwrap();
            for (p, l, port) in v4 {
                lpm.add(*p, *l, *port).unwrap();
            }
            let mut lpm6 = Lpm6::new(eal, 64, None).unwrap();
            for (p, l, port) in v6 {
                lpm6.add(*p, *l, *port).unwrap();
            }
            (Arc::new(lpm), Arc::new(lpm6))
        }
        Table::Exact { v4, v6 } => {
            let mut em4 = ExactMatch::new(eal, 64, None).unwrap();
            for ((d, s, dp, sp, proto), port) in v4 {
                em4.add(&FlowKey4::new(*d, *s, *dp, *sp, *proto), *port)
                    .unwrap();
            }
            let mut em6 = ExactMatch::new(eal, 64, None).unwrap();
            for ((d, s, dp, sp, proto), port) in v6 {
                em6.add(&FlowKey6::new(*d, *s, *dp, *sp, *proto), *port)
                    .unwrap();
            }
            (Arc::new(em4), Arc::new(em6))
        }
        Table::Acl { v4, v6 } => (
            Arc::new(Acl::<FlowKey4>::new(eal, &engine_acl(v4), None, None).unwrap()),
            Arc::new(Acl::<FlowKey6>::new(eal, &engine_acl(v6), None, None).unwrap()),
        ),
    }
}
