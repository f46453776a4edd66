//! Value parsers for the options DPDK's apps share, for clap's `value_parser`: each error says
//! what was expected, and quotes the value when it names the option itself.

use crate::net::ethernet::Address;
use crate::pipeline::Mode;
use crate::worker::IdlePolicy;
use std::net::IpAddr;

pub use super::queues::parse as config;

/// Port ids a portmask can name: DPDK's apps take 32-bit masks.
pub const MAX_PORTS: u16 = 32;

/// `-p PORTMASK`: the ports an app uses, as a bit mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Portmask(pub u32);

impl Portmask {
    pub fn contains(self, port: u16) -> bool {
        port < MAX_PORTS && self.0 & (1 << port) != 0
    }

    /// The ports of the mask, in order.
    pub fn ports(self) -> Vec<u16> {
        (0..MAX_PORTS).filter(|&p| self.contains(p)).collect()
    }
}

impl std::fmt::Display for Portmask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Hexadecimal, with or without `0x`, as DPDK's apps read `-p`.
pub fn portmask(text: &str) -> Result<Portmask, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    match u64::from_str_radix(digits, 16) {
        Ok(0) => Err(format!("portmask '{text}' selects no port")),
        Ok(mask) if mask >> MAX_PORTS == 0 => Ok(Portmask(mask as u32)),
        Ok(_) => Err(format!(
            "portmask '{text}' names ports beyond {}",
            MAX_PORTS - 1
        )),
        Err(_) => Err("expected hexadecimal such as 0x3".into()),
    }
}

/// Checks that every port of `mask` exists; `present` are the EAL's ports.
pub fn check_ports(mask: Portmask, present: &[u16]) -> Result<(), String> {
    match mask.ports().into_iter().find(|p| !present.contains(p)) {
        Some(missing) => Err(format!(
            "port {missing} in portmask {mask} does not exist: the EAL found {}; add a --vdev or fix -p",
            describe_ports(present)
        )),
        None => Ok(()),
    }
}

/// "no ports", "port 0", "ports 0, 1".
pub fn describe_ports(ports: &[u16]) -> String {
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

/// l2fwd's `--portmap "(0,1)(2,3)"`, with optional spaces or commas between pairs.
pub fn portmap(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let bad = |why: &str| {
        format!(
            "malformed --portmap '{text}': {why}; expected pairs of port numbers such as \"(0,1)(2,3)\""
        )
    };
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('(')
            .ok_or_else(|| bad("a pair must start with '('"))?;
        let close = inner
            .find(')')
            .ok_or_else(|| bad("a pair is missing its ')'"))?;
        let fields: Vec<&str> = inner[..close].split(',').map(str::trim).collect();
        let [a, b] = fields[..] else {
            return Err(bad("each pair holds exactly two ports"));
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|n| *n < MAX_PORTS)
                .ok_or_else(|| bad(&format!("'{p}' is not a port number below {MAX_PORTS}")))
        };
        pairs.push((port(a)?, port(b)?));
        rest = inner[close + 1..].trim_start_matches([' ', ',']);
    }
    if pairs.is_empty() {
        return Err(bad("no pair given"));
    }
    Ok(pairs)
}

/// `--mode`: rtc (also poll, l3fwd's name) or pipeline.
pub fn mode(text: &str) -> Result<Mode, String> {
    match text {
        "rtc" | "poll" | "run-to-completion" => Ok(Mode::RunToCompletion),
        "pipeline" | "pipelined" => Ok(Mode::Pipelined),
        "eventdev" => Err(
            "--mode eventdev is not supported: Sluice polls (rtc) or pipelines over rings (pipeline)"
                .into(),
        ),
        _ => Err("expected rtc (run to completion; or poll) or pipeline".into()),
    }
}

/// `--idle`: adaptive (pause, then sleep, when there is no traffic) or off (poll flat out).
pub fn idle(text: &str) -> Result<IdlePolicy, String> {
    match text {
        "adaptive" | "on" => Ok(IdlePolicy::default()),
        "off" => Ok(IdlePolicy::Off),
        _ => Err("expected adaptive or off".into()),
    }
}

/// l3fwd's `--eth-dest=PORT,MAC`.
pub fn eth_dest(text: &str) -> Result<(u16, Address), String> {
    let bad =
        || format!("malformed --eth-dest '{text}': expected PORT,MAC such as 0,02:00:00:00:00:01");
    let (port, mac) = text.split_once(',').ok_or_else(bad)?;
    let port: u16 = port.trim().parse().map_err(|_| bad())?;
    if port >= MAX_PORTS {
        return Err(bad());
    }
    Ok((port, mac.trim().parse().map_err(|_| bad())?))
}

/// `--addr PORT,IP/LEN`: an address of the app on a port, IPv4 or IPv6.
pub fn addr(text: &str) -> Result<(u16, IpAddr, u8), String> {
    let bad = |why: &str| {
        format!(
            "malformed --addr '{text}': {why}; expected PORT,IP/LEN such as 0,10.0.1.1/24 or 1,2001:db8:1::1/64"
        )
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

/// RX or TX descriptors per queue.
pub fn descriptors(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(n) if n >= 64 => Ok(n),
        _ => Err("expected a number of descriptors from 64 to 65535".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portmasks() {
        assert_eq!(portmask("0x3"), Ok(Portmask(3)));
        assert_eq!(portmask("F"), Ok(Portmask(0xf)));
        assert_eq!(portmask("0XF").unwrap().ports(), vec![0, 1, 2, 3]);
        assert!(portmask("0x0").unwrap_err().contains("selects no port"));
        assert!(portmask("zz").unwrap_err().contains("expected hexadecimal"));
        assert!(portmask("1ffffffff").unwrap_err().contains("beyond 31"));
        let e = check_ports(Portmask(5), &[0, 1]).unwrap_err();
        assert!(
            e.contains("port 2 in portmask 0x5 does not exist") && e.contains("ports 0, 1"),
            "{e}"
        );
        assert!(check_ports(Portmask(3), &[0, 1, 2]).is_ok());
    }

    #[test]
    fn portmaps() {
        for bad in [
            "", "(0,1", "0,1", "(0)", "(0,1,2)", "(a,b)", "(0,32)", "(0,1)x", "(-1,0)",
        ] {
            let e = portmap(bad).unwrap_err();
            assert!(
                e.contains("malformed --portmap") && e.contains("(0,1)(2,3)"),
                "{bad}: {e}"
            );
        }
        assert_eq!(portmap(" (0, 1) , (2,3) ").unwrap(), vec![(0, 1), (2, 3)]);
    }

    #[test]
    fn modes_idle_and_sizes() {
        assert_eq!(mode("poll"), Ok(Mode::RunToCompletion));
        assert_eq!(mode("pipeline"), Ok(Mode::Pipelined));
        assert!(mode("eventdev").unwrap_err().contains("not supported"));
        assert!(mode("fast").unwrap_err().contains("expected rtc"));
        assert_eq!(idle("off"), Ok(IdlePolicy::Off));
        assert!(idle("maybe").is_err());
        assert_eq!(descriptors("512"), Ok(512));
        assert!(descriptors("10").is_err());
    }

    #[test]
    fn addresses_and_macs() {
        assert_eq!(
            eth_dest("1,02:00:00:00:00:07"),
            Ok((1, "02:00:00:00:00:07".parse().unwrap()))
        );
        assert!(eth_dest("1,zz").unwrap_err().contains("expected PORT,MAC"));
        assert!(eth_dest("40,02:00:00:00:00:07").is_err());
        assert_eq!(
            addr("0,10.0.1.1/24"),
            Ok((0, "10.0.1.1".parse().unwrap(), 24))
        );
        assert!(addr("0,10.0.0.1/33").unwrap_err().contains("0 to 32"));
        assert!(addr("1,2001:db8::1/129").unwrap_err().contains("0 to 128"));
    }
}
