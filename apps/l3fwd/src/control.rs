//! Live control of a running router: the same line commands over a Unix socket
//! (`--control PATH`) and as the rte_telemetry command `/l3fwd/control,COMMAND`.
//!
//! ```text
//! route add 10.1.0.0/16 1    add or replace an IPv4 route (rte_lpm, RCU-protected)
//! route del 10.1.0.0/16      delete it
//! routes                     every route, IPv4 and IPv6
//! neighbours                 the neighbour table
//! stats                      totals and drops by reason
//! ```
//! Each reply is zero or more lines, then `ok` or `error: WHAT`.

use sluice::stage::router::Router;
use sluice::stage::table::Lpm;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// What the commands act on.
pub struct Control {
    pub lpm: Arc<Lpm>,
    /// The IPv4 routes in the LPM (rte_lpm cannot list its own).
    pub routes: Mutex<BTreeMap<(Ipv4Addr, u8), u16>>,
    /// IPv6 routes, fixed at start.
    pub routes_v6: Vec<(Ipv6Addr, u8, u16)>,
    pub portmask: u32,
    pub router: Arc<Router>,
}

/// One command, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `route add PREFIX/LEN PORT` (the prefix masked to its length).
    RouteAdd {
        prefix: Ipv4Addr,
        depth: u8,
        port: u16,
    },
    /// `route del PREFIX/LEN`.
    RouteDel {
        prefix: Ipv4Addr,
        depth: u8,
    },
    Routes,
    Neighbours,
    Stats,
}

/// The command as a user would type it: [`Request::parse`] reads it back.
impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::RouteAdd {
                prefix,
                depth,
                port,
            } => write!(f, "route add {prefix}/{depth} {port}"),
            Request::RouteDel { prefix, depth } => write!(f, "route del {prefix}/{depth}"),
            Request::Routes => f.write_str("routes"),
            Request::Neighbours => f.write_str("neighbours"),
            Request::Stats => f.write_str("stats"),
        }
    }
}

fn mask(prefix: Ipv4Addr, depth: u8) -> Ipv4Addr {
    let bits = u32::MAX.checked_shl(32 - u32::from(depth)).unwrap_or(0);
    Ipv4Addr::from(u32::from(prefix) & bits)
}

fn parse_prefix(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("'{text}' is not an IPv4 prefix such as 10.1.0.0/16");
    let (ip, len) = text.split_once('/').ok_or_else(bad)?;
    if ip.parse::<Ipv6Addr>().is_ok() {
        return Err(
            "IPv6 routes are fixed at start: rte_lpm6 has no RCU support in DPDK 22.11, so it cannot change under readers".into(),
        );
    }
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let depth: u8 = len.parse().ok().filter(|d| *d <= 32).ok_or_else(bad)?;
    Ok((mask(ip, depth), depth))
}

impl Request {
    /// Parses one line; the error says what was expected.
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["route", "add", prefix, port] => {
                let (prefix, depth) = parse_prefix(prefix)?;
                let port = port
                    .parse()
                    .map_err(|_| format!("'{port}' is not a port number"))?;
                Ok(Request::RouteAdd {
                    prefix,
                    depth,
                    port,
                })
            }
            ["route", "del", prefix] => {
                let (prefix, depth) = parse_prefix(prefix)?;
                Ok(Request::RouteDel { prefix, depth })
            }
            ["routes"] => Ok(Request::Routes),
            ["neighbours"] | ["neighbors"] => Ok(Request::Neighbours),
            ["stats"] => Ok(Request::Stats),
            _ => Err(format!(
                "unknown command '{}': expected route add PREFIX/LEN PORT, route del PREFIX/LEN, routes, neighbours or stats",
                line.trim()
            )),
        }
    }
}

impl Control {
    /// Runs one command; the reply's lines (without the final `ok`), or the error.
    pub fn execute(&self, line: &str) -> Result<String, String> {
        match Request::parse(line)? {
            Request::RouteAdd {
                prefix,
                depth,
                port,
            } => {
                if port >= 32 || self.portmask & (1 << port) == 0 {
                    return Err(format!(
                        "port {port} is not enabled (-p {:#x})",
                        self.portmask
                    ));
                }
                let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
                self.lpm
                    .add(prefix, depth, port)
                    .map_err(|e| e.to_string())?;
                routes.insert((prefix, depth), port);
                Ok(String::new())
            }
            Request::RouteDel { prefix, depth } => {
                let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
                if routes.remove(&(prefix, depth)).is_none() || !self.lpm.delete(prefix, depth) {
                    return Err(format!("no route to {prefix}/{depth}"));
                }
                Ok(String::new())
            }
            Request::Routes => {
                let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
                let mut text = String::new();
                for ((prefix, depth), port) in routes.iter() {
                    text.push_str(&format!("{prefix}/{depth} {port}\n"));
                }
                for (prefix, depth, port) in &self.routes_v6 {
                    text.push_str(&format!("{prefix}/{depth} {port}\n"));
                }
                Ok(text)
            }
            Request::Neighbours => Ok(self
                .router
                .neighbours
                .list()
                .iter()
                .map(|(ip, mac)| format!("{ip} {mac}\n"))
                .collect()),
            Request::Stats => match sluice::stats::telemetry::current_stats() {
                Some(stats) => {
                    let t = stats.totals();
                    let mut text = format!(
                        "rx {} tx {} dropped {} ({})\n",
                        t.rx,
                        t.tx,
                        t.dropped(),
                        t.drops_by_reason()
                    );
                    for port in stats.ports() {
                        let p = stats.port(port);
                        text.push_str(&format!(
                            "port {port}: rx {} tx {} dropped {}\n",
                            p.rx,
                            p.tx,
                            p.dropped()
                        ));
                    }
                    Ok(text)
                }
                None => Err("not forwarding yet".into()),
            },
        }
    }

    /// The reply as sent: the lines, then `ok` or `error: ...`.
    pub fn reply(&self, line: &str) -> String {
        match self.execute(line) {
            Ok(text) => format!("{text}ok\n"),
            Err(e) => format!("error: {e}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_mistakes_say_what_was_expected() {
        assert_eq!(
            Request::parse("route add 10.1.2.3/16 1"),
            Ok(Request::RouteAdd {
                prefix: Ipv4Addr::new(10, 1, 0, 0),
                depth: 16,
                port: 1
            })
        );
        assert_eq!(
            Request::parse(" route  del 0.0.0.0/0 "),
            Ok(Request::RouteDel {
                prefix: Ipv4Addr::UNSPECIFIED,
                depth: 0
            })
        );
        assert_eq!(Request::parse("neighbors"), Ok(Request::Neighbours));
        let add = Request::parse("route add 10.1.0.0/16 3").unwrap();
        assert_eq!(Request::parse(&add.to_string()), Ok(add));
        assert!(Request::parse("route add 10.0.0.0/33 1")
            .unwrap_err()
            .contains("not an IPv4 prefix"));
        assert!(Request::parse("route add ::/0 1")
            .unwrap_err()
            .contains("IPv6 routes are fixed"));
        assert!(Request::parse("route add 10.0.0.0/8 x")
            .unwrap_err()
            .contains("not a port"));
        assert!(Request::parse("")
            .unwrap_err()
            .starts_with("unknown command"));
    }
}
