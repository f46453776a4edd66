//! What to send, as users write it: value ranges for the fields that vary, frame sizes,
//! rates, and streams (from the command line or a TOML file).

use serde::Deserialize;
use sluice::net::ethernet::Address;
use sluice::net::tcp;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// How a ranged field moves from one packet to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Increment,
    /// Uniformly random over the range's values, from a seeded generator.
    Random,
}

/// The values a field takes: `start`, `start + step`, ... up to `end`, then again from
/// `start` (or those values in random order). Held as u128 so one type covers ports, IPv4,
/// IPv6 and MAC addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRange {
    pub start: u128,
    pub end: u128,
    pub step: u128,
    pub order: Order,
}

impl FieldRange {
    pub fn fixed(value: u128) -> FieldRange {
        FieldRange {
            start: value,
            end: value,
            step: 1,
            order: Order::Increment,
        }
    }

    /// How many distinct values the field takes.
    pub fn count(&self) -> u128 {
        (self.end - self.start) / self.step + 1
    }

    /// Parses `V`, `A-B`, `A-B/STEP` or `A-B/random`, where values are read by `value`.
    fn parse_with(
        text: &str,
        what: &str,
        example: &str,
        value: impl Fn(&str) -> Option<u128>,
    ) -> Result<FieldRange, String> {
        let bad = |why: String| format!("bad {what} '{text}': {why}; expected e.g. {example}");
        let (span, step) = match text.split_once('/') {
            Some((span, step)) => (span, Some(step)),
            None => (text, None),
        };
        let (start, end) = match split_range(span) {
            Some((a, b)) => (a, Some(b)),
            None => (span, None),
        };
        let read =
            |s: &str| value(s.trim()).ok_or_else(|| bad(format!("'{}' is not one", s.trim())));
        let start = read(start)?;
        let end = match end {
            Some(e) => read(e)?,
            None => start,
        };
        if start > end {
            return Err(bad("the range starts after it ends".into()));
        }
        let (step, order) = match step.map(str::trim) {
            None => (1, Order::Increment),
            Some("random") | Some("rand") => (1, Order::Random),
            Some(s) => match s.parse::<u128>() {
                Ok(n) if n > 0 => (n, Order::Increment),
                _ => {
                    return Err(bad(format!(
                        "step '{s}' is not a positive number or 'random'"
                    )))
                }
            },
        };
        Ok(FieldRange {
            start,
            end,
            step,
            order,
        })
    }

    pub fn parse_port(text: &str) -> Result<FieldRange, String> {
        Self::parse_with(
            text,
            "port range",
            "9, 1024-65535 or 1024-2047/random",
            |s| s.parse::<u16>().ok().map(u128::from),
        )
    }

    pub fn parse_mac(text: &str) -> Result<FieldRange, String> {
        Self::parse_with(
            text,
            "MAC range",
            "02:00:00:00:00:01 or 02:00:00:00:00:01-02:00:00:00:00:ff",
            |s| s.parse::<Address>().ok().map(|a| mac_to_u128(&a)),
        )
    }

    /// An IPv4 or IPv6 range; both ends of one family.
    pub fn parse_ip(text: &str) -> Result<(FieldRange, bool), String> {
        let v6 = text.contains(':');
        let range = Self::parse_with(
            text,
            "IP range",
            "198.18.1.1, 198.18.1.1-198.18.1.254/random or 2001:200:0:1::1-2001:200:0:1::ff",
            |s| match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) if !v6 => Some(u128::from(u32::from(a))),
                Ok(IpAddr::V6(a)) if v6 => Some(u128::from(a)),
                _ => None,
            },
        )?;
        Ok((range, v6))
    }
}

/// Splits `A-B` where A and B may themselves hold no '-' (true of ports, IPs and MACs).
fn split_range(span: &str) -> Option<(&str, &str)> {
    span.split_once('-')
}

pub fn mac_to_u128(a: &Address) -> u128 {
    a.0.iter().fold(0u128, |acc, &b| acc << 8 | u128::from(b))
}

pub fn u128_to_mac(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// Frame sizes, counted as RFC 2544 and hardware generators count them: from the first byte
/// of the destination MAC to the last of the 4-byte FCS, which the device appends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// One size, a list, or a range with a step: taken in turn, packet by packet.
    Cycle(Vec<u16>),
    /// 7:4:1 of 64, 594 and 1518 bytes, interleaved.
    Imix,
}

/// The simple IMIX, spread out so that the big frames do not come in clumps.
const IMIX: [u16; 12] = [64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 64, 594];

/// Smallest frame an Ethernet device sends, and the largest one mbuf of the default pools
/// holds (2048 data bytes, plus the FCS).
pub const MIN_FRAME: u16 = 64;
pub const MAX_FRAME: u16 = 2048 + 4;
pub const FCS_LEN: u16 = 4;

impl Sizes {
    pub fn parse(text: &str) -> Result<Sizes, String> {
        let bad = |why: String| {
            format!(
                "bad frame size '{text}': {why}; expected e.g. 64, 64,128,256, 64-1518/64 or imix"
            )
        };
        let text = text.trim();
        if text.eq_ignore_ascii_case("imix") {
            return Ok(Sizes::Imix);
        }
        let number = |s: &str| -> Result<u16, String> {
            let n: u16 = s
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{}' is not a number", s.trim())))?;
            if !(MIN_FRAME..=MAX_FRAME).contains(&n) {
                return Err(bad(format!(
                    "{n} is outside {MIN_FRAME} to {MAX_FRAME} bytes (frame sizes include the 4-byte FCS)"
                )));
            }
            Ok(n)
        };
        if text.contains(',') {
            return text
                .split(',')
                .map(number)
                .collect::<Result<_, _>>()
                .map(Sizes::Cycle);
        }
        let (span, step) = match text.split_once('/') {
            Some((span, step)) => (span, Some(step)),
            None => (text, None),
        };
        let Some((a, b)) = span.split_once('-') else {
            if step.is_some() {
                return Err(bad("a step needs a range".into()));
            }
            return Ok(Sizes::Cycle(vec![number(text)?]));
        };
        let (a, b) = (number(a)?, number(b)?);
        if a > b {
            return Err(bad("the range starts after it ends".into()));
        }
        let step: u16 = match step {
            None => 1,
            Some(s) => match s.trim().parse() {
                Ok(n) if n > 0 => n,
                _ => return Err(bad(format!("step '{}' is not a positive number", s.trim()))),
            },
        };
        Ok(Sizes::Cycle((a..=b).step_by(usize::from(step)).collect()))
    }

    /// The sizes in the order they are sent (one period).
    pub fn sequence(&self) -> &[u16] {
        match self {
            Sizes::Cycle(v) => v,
            Sizes::Imix => &IMIX,
        }
    }

    /// Average frame size over a period.
    pub fn mean(&self) -> f64 {
        let s = self.sequence();
        s.iter().map(|&n| f64::from(n)).sum::<f64>() / s.len() as f64
    }
}

/// How fast to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    Unlimited,
    Pps(f64),
    /// Bits per second on the wire: each frame plus its 20 bytes of preamble and
    /// inter-frame gap, as line rate is counted.
    Bps(f64),
    /// Percent of the TX port's link speed, counted as `Bps`.
    Percent(f64),
}

/// Preamble, start delimiter and inter-frame gap: what a frame costs on the wire beyond itself.
pub const WIRE_OVERHEAD: f64 = 20.0;

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || {
            format!(
                "bad rate '{text}': expected e.g. 1mpps, 250kpps, 5000pps, 10gbps, 500mbps, 50% or max"
            )
        };
        if t == "max" || t == "unlimited" {
            return Ok(Rate::Unlimited);
        }
        type Unit = (&'static str, f64, fn(f64) -> Rate);
        let units: [Unit; 9] = [
            ("%", 1.0, Rate::Percent),
            ("mpps", 1e6, Rate::Pps),
            ("kpps", 1e3, Rate::Pps),
            ("pps", 1.0, Rate::Pps),
            ("gbps", 1e9, Rate::Bps),
            ("mbps", 1e6, Rate::Bps),
            ("kbps", 1e3, Rate::Bps),
            ("bps", 1.0, Rate::Bps),
            ("", 1.0, Rate::Pps),
        ];
        for (suffix, scale, make) in units {
            if let Some(number) = t.strip_suffix(suffix) {
                let v: f64 = number.trim().parse().map_err(|_| bad())?;
                if !(v > 0.0 && v.is_finite()) || (suffix == "%" && v > 100.0) {
                    return Err(bad());
                }
                return Ok(make(v * scale));
            }
        }
        Err(bad())
    }

    /// Packets per second, for frames of `mean_frame` bytes on a link of `link_bps`;
    /// None for unlimited.
    pub fn pps(&self, mean_frame: f64, link_bps: Option<f64>) -> Result<Option<f64>, String> {
        let wire_bits = (mean_frame + WIRE_OVERHEAD) * 8.0;
        Ok(match *self {
            Rate::Unlimited => None,
            Rate::Pps(p) => Some(p),
            Rate::Bps(b) => Some(b / wire_bits),
            Rate::Percent(pct) => match link_bps {
                Some(link) if link > 0.0 => Some(link * pct / 100.0 / wire_bits),
                _ => {
                    return Err(format!(
                        "--rate {pct}% needs the TX port's link speed, which it does not report: give the rate in pps or bps"
                    ))
                }
            },
        })
    }
}

/// The transport of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp {
        flags: u8,
    },
    /// ICMP echo request (ICMPv6 echo request over IPv6).
    Icmp,
}

impl Protocol {
    pub fn parse(name: &str, tcp_flags: Option<&str>) -> Result<Protocol, String> {
        let flags = match tcp_flags {
            Some(f) => parse_tcp_flags(f)?,
            None => tcp::flags::ACK,
        };
        match name.to_ascii_lowercase().as_str() {
            "udp" => Ok(Protocol::Udp),
            "tcp" => Ok(Protocol::Tcp { flags }),
            "icmp" | "icmpv6" | "ping" => Ok(Protocol::Icmp),
            other => Err(format!(
                "unknown protocol '{other}': expected udp, tcp or icmp"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp { .. } => "tcp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// `syn,ack` style flags (also `+` or `|` between names).
pub fn parse_tcp_flags(text: &str) -> Result<u8, String> {
    let mut flags = 0;
    for name in text
        .split([',', '+', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let found = tcp::flags::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("unknown TCP flag '{name}': expected some of fin, syn, rst, psh, ack, urg joined by commas")
            })?;
        flags |= found.1;
    }
    Ok(flags)
}

/// One stream: a packet template and the fields that vary in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub name: String,
    /// The port it leaves by.
    pub port: u16,
    pub protocol: Protocol,
    pub ipv6: bool,
    /// None: the TX port's own MAC.
    pub src_mac: Option<FieldRange>,
    pub dst_mac: FieldRange,
    pub vlan: Option<u16>,
    pub src_ip: FieldRange,
    pub dst_ip: FieldRange,
    pub src_port: FieldRange,
    pub dst_port: FieldRange,
    pub ttl: u8,
    pub sizes: Sizes,
}

/// Where our defaults send: RFC 2544's benchmarking range (RFC 5180's for IPv6), into the
/// subnets l3fwd's default tables route to port 1.
pub const DEFAULT_SRC_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const DEFAULT_DST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const DEFAULT_SRC_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x200, 0, 0, 0, 0, 0, 1);
pub const DEFAULT_DST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x200, 0, 1, 0, 0, 0, 1);
pub const DEFAULT_DST_MAC: Address = Address([0x02, 0, 0, 0, 0, 0x01]);

/// A stream as written in a TOML file or on the command line: text fields, checked by
/// [`StreamText::resolve`]. Unknown keys are refused by name.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamText {
    pub name: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub tcp_flags: Option<String>,
    pub src_mac: Option<String>,
    pub dst_mac: Option<String>,
    pub vlan: Option<u16>,
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    pub src_port: Option<String>,
    pub dst_port: Option<String>,
    pub ttl: Option<u8>,
    pub size: Option<SizeText>,
    /// IPv6 defaults when no address is given.
    pub ipv6: Option<bool>,
}

/// A size in TOML: a number (`size = 64`) or text (`size = "imix"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeText {
    Number(u16),
    Text(String),
}

/// A TOML file of streams: `[[stream]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamFile {
    stream: Vec<StreamText>,
}

impl StreamText {
    /// Checks every field; `index` and `default_port` fill what is not given.
    pub fn resolve(&self, index: usize, default_port: u16) -> Result<Stream, String> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("stream{index}"));
        let in_stream = |e: String| format!("stream '{name}': {e}");
        let protocol = Protocol::parse(
            self.protocol.as_deref().unwrap_or("udp"),
            self.tcp_flags.as_deref(),
        )
        .map_err(in_stream)?;
        if self.tcp_flags.is_some() && !matches!(protocol, Protocol::Tcp { .. }) {
            return Err(in_stream(
                "tcp flags are given for a stream that is not TCP".into(),
            ));
        }
        let ip = |text: &Option<String>, v4: Ipv4Addr, v6: Ipv6Addr, v6_default: bool| match text {
            Some(t) => FieldRange::parse_ip(t).map_err(in_stream),
            None if v6_default => Ok((FieldRange::fixed(u128::from(v6)), true)),
            None => Ok((FieldRange::fixed(u128::from(u32::from(v4))), false)),
        };
        // The family: what the addresses say, else `ipv6`.
        let wants_v6 = self.ipv6.unwrap_or_else(|| {
            [&self.src_ip, &self.dst_ip]
                .iter()
                .any(|t| t.as_ref().is_some_and(|t| t.contains(':')))
        });
        let (src_ip, src_v6) = ip(&self.src_ip, DEFAULT_SRC_V4, DEFAULT_SRC_V6, wants_v6)?;
        let (dst_ip, dst_v6) = ip(&self.dst_ip, DEFAULT_DST_V4, DEFAULT_DST_V6, wants_v6)?;
        if src_v6 != dst_v6 || src_v6 != wants_v6 {
            return Err(in_stream(
                "source and destination addresses must be of one family (both IPv4 or both IPv6, as ipv6 says)".into(),
            ));
        }
        let port_range = |t: &Option<String>, default: u16| match t {
            Some(t) => FieldRange::parse_port(t).map_err(in_stream),
            None => Ok(FieldRange::fixed(u128::from(default))),
        };
        if let Some(vlan) = self.vlan {
            if vlan > 4095 {
                return Err(in_stream(format!("VLAN id {vlan} is above 4095")));
            }
        }
        let sizes = match &self.size {
            None => Sizes::Cycle(vec![MIN_FRAME]),
            Some(SizeText::Number(n)) => Sizes::parse(&n.to_string()).map_err(in_stream)?,
            Some(SizeText::Text(t)) => Sizes::parse(t).map_err(in_stream)?,
        };
        Ok(Stream {
            port: self.port.unwrap_or(default_port),
            protocol,
            ipv6: wants_v6,
            src_mac: self
                .src_mac
                .as_deref()
                .map(FieldRange::parse_mac)
                .transpose()
                .map_err(in_stream)?,
            dst_mac: match &self.dst_mac {
                Some(t) => FieldRange::parse_mac(t).map_err(in_stream)?,
                None => FieldRange::fixed(mac_to_u128(&DEFAULT_DST_MAC)),
            },
            vlan: self.vlan,
            src_ip,
            dst_ip,
            src_port: port_range(&self.src_port, 1024)?,
            dst_port: port_range(&self.dst_port, 9)?,
            ttl: self.ttl.unwrap_or(64),
            sizes,
            name,
        })
    }
}

/// Reads the streams of a TOML file.
pub fn load_streams(path: &Path, default_port: u16) -> Result<Vec<Stream>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the stream file: {e}", path.display()))?;
    parse_streams(&text, &path.display().to_string(), default_port)
}

/// The streams of a stream file's `text` (`name` names it in errors, with the line).
pub fn parse_streams(text: &str, name: &str, default_port: u16) -> Result<Vec<Stream>, String> {
    let file: StreamFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(":{}", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        format!("{name}{at}: {}", e.message())
    })?;
    if file.stream.is_empty() {
        return Err(format!("{name}: no [[stream]] tables"));
    }
    file.stream
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.resolve(i, default_port)
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect()
}

/// `--key-dist` of the kv workload: how requests pick their keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDist {
    Uniform,
    /// Zipf with exponent theta: key k (from 0) drawn with weight 1/(k+1)^theta.
    Zipf(f64),
}

impl KeyDist {
    pub fn parse(text: &str) -> Result<KeyDist, String> {
        let bad = || format!("expected uniform or zipf:THETA with THETA from 0 to 5, not '{text}'");
        match text.split_once(':') {
            None if text == "uniform" => Ok(KeyDist::Uniform),
            Some(("zipf", theta)) => match theta.parse::<f64>() {
                Ok(t) if (0.0..=5.0).contains(&t) => Ok(KeyDist::Zipf(t)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_count() {
        let r = FieldRange::parse_port("1024-1031/2").unwrap();
        assert_eq!((r.start, r.end, r.step, r.count()), (1024, 1031, 2, 4));
        let (ip, v6) = FieldRange::parse_ip("198.18.1.1-198.18.1.3").unwrap();
        assert!(!v6);
        assert_eq!(ip.end, u128::from(u32::from(Ipv4Addr::new(198, 18, 1, 3))));
        let random = FieldRange::parse_port("10-19/random").unwrap();
        assert_eq!(random.order, Order::Random);
        assert_eq!(random.count(), 10);
        assert!(FieldRange::parse_port("20-10")
            .unwrap_err()
            .contains("starts after it ends"));
        assert!(FieldRange::parse_port("70000").is_err());
        assert!(FieldRange::parse_ip("10.0.0.1-2001::1").is_err());
        let mac = FieldRange::parse_mac("02:00:00:00:00:01-02:00:00:00:00:03").unwrap();
        assert_eq!(u128_to_mac(mac.end), [2, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(Sizes::parse("64").unwrap().sequence(), [64]);
        assert_eq!(Sizes::parse("64,128").unwrap().sequence(), [64, 128]);
        assert_eq!(
            Sizes::parse("64-256/64").unwrap().sequence(),
            [64, 128, 192, 256]
        );
        let imix = Sizes::parse("IMIX").unwrap();
        let count = |n| imix.sequence().iter().filter(|&&s| s == n).count();
        assert_eq!((count(64), count(594), count(1518)), (7, 4, 1));
        assert!(Sizes::parse("60").unwrap_err().contains("outside 64"));
        assert!(Sizes::parse("128-64").unwrap_err().contains("starts after"));
    }

    #[test]
    fn rates_parse_and_convert() {
        assert_eq!(Rate::parse("1mpps").unwrap(), Rate::Pps(1e6));
        assert_eq!(Rate::parse("100000").unwrap(), Rate::Pps(1e5));
        assert_eq!(Rate::parse("50%").unwrap(), Rate::Percent(50.0));
        assert_eq!(Rate::parse("max").unwrap(), Rate::Unlimited);
        // 10 Gbps of 64-byte frames is 14.88 Mpps, as every NIC datasheet says.
        let pps = Rate::parse("10gbps")
            .unwrap()
            .pps(64.0, None)
            .unwrap()
            .unwrap();
        assert!((pps - 14_880_952.0).abs() < 1.0);
        assert!(Rate::Percent(10.0).pps(64.0, None).is_err());
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("120%").is_err());
    }

    #[test]
    fn toml_streams_resolve_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "[[stream]]\nname = \"a\"\nprotocol = \"tcp\"\ntcp_flags = \"syn\"\ndst_ip = \"198.18.1.1-198.18.1.9\"\nsize = 128\n\n[[stream]]\nipv6 = true\nsize = \"imix\"\n",
        )
        .unwrap();
        let streams = load_streams(&path, 0).unwrap();
        assert_eq!(
            streams[0].protocol,
            Protocol::Tcp {
                flags: tcp::flags::SYN
            }
        );
        assert_eq!(streams[0].dst_ip.count(), 9);
        assert!(streams[1].ipv6);
        assert_eq!(streams[1].name, "stream1");
        std::fs::write(&path, "[[stream]]\nprotocol = \"udp\"\ncolour = \"red\"\n").unwrap();
        let e = load_streams(&path, 0).unwrap_err();
        assert!(e.contains("s.toml:3") && e.contains("colour"), "{e}");
    }
}
