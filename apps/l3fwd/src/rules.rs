//! l3fwd's rule files: `R` route lines, `#` comments and blank lines. For LPM and FIB a
//! route is `R<prefix>/<depth> <port>`; for exact match, `R<dst> <src> <dst port> <src port>
//! <protocol> <port>`. Numbers are read as C's strtoul with base 0 reads them (decimal, 0x
//! hex), so the files DPDK ships load unchanged. Without a file, l3fwd's built-in tables.
//! ACL files add `@` lines (see [`parse_acl_v4`]).

use sluice::stage::table::{AclAction, AclRule, FlowKey4, FlowKey6};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// A line that does not parse: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for RuleError {}

/// A route to `prefix/depth` by `port`, from line `line` (0: built in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<A> {
    pub prefix: A,
    pub depth: u8,
    pub port: u16,
    pub line: usize,
}

/// An exact-match rule on the 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exact<K> {
    pub key: K,
    pub port: u16,
    pub line: usize,
}

/// Ports are a byte in l3fwd's files.
const MAX_PORT: u64 = u8::MAX as u64;

/// strtoul(text, .., 0): decimal, 0x hexadecimal or 0 octal.
fn c_number(text: &str) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    }
}

/// The rule lines of `text` that start with one of `leads` (`R` routes, `@` ACL rules), each
/// with its line number, its lead and the rest.
fn rule_lines<'a>(
    text: &'a str,
    file: &'a str,
    leads: &'static [char],
) -> impl Iterator<Item = Result<(usize, char, &'a str), RuleError>> + 'a {
    text.lines().enumerate().filter_map(move |(i, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        Some(match line.chars().next().filter(|c| leads.contains(c)) {
            Some(lead) => Ok((i + 1, lead, &line[1..])),
            None if leads.contains(&'@') => Err(RuleError {
                file: file.to_owned(),
                line: i + 1,
                message: format!(
                    "'{line}' is not a rule: ACL files have @ lines (rules that drop) and R lines (rules that route); comments start with #"
                ),
            }),
            None => Err(RuleError {
                file: file.to_owned(),
                line: i + 1,
                message: format!(
                    "'{line}' is not a route: route lines start with R (e.g. R198.18.0.0/24 0); comments start with #"
                ),
            }),
        })
    })
}

/// The `R` lines of `text`, each with its line number and without the `R`.
fn route_lines<'a>(
    text: &'a str,
    file: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str), RuleError>> + 'a {
    rule_lines(text, file, &['R']).map(|l| l.map(|(line, _, rest)| (line, rest)))
}

fn fields<'a, const N: usize>(
    rest: &'a str,
    file: &str,
    line: usize,
    form: &str,
) -> Result<[&'a str; N], RuleError> {
    lead_fields('R', rest, file, line, form)
}

fn lead_fields<'a, const N: usize>(
    lead: char,
    rest: &'a str,
    file: &str,
    line: usize,
    form: &str,
) -> Result<[&'a str; N], RuleError> {
    let parts: Vec<&str> = rest.split_whitespace().collect();
    parts.try_into().map_err(|parts: Vec<&str>| RuleError {
        file: file.to_owned(),
        line,
        message: format!(
            "expected {N} fields ({form}), found {}: '{lead}{}'",
            parts.len(),
            rest.trim()
        ),
    })
}

fn port(text: &str, file: &str, line: usize) -> Result<u16, RuleError> {
    match c_number(text) {
        Some(p) if p <= MAX_PORT => Ok(p as u16),
        _ => Err(RuleError {
            file: file.to_owned(),
            line,
            message: format!("bad output port '{text}': expected a port number from 0 to 255"),
        }),
    }
}

fn prefix<A: std::str::FromStr>(
    text: &str,
    max_depth: u8,
    family: &str,
    file: &str,
    line: usize,
) -> Result<(A, u8), RuleError> {
    let err = |message: String| RuleError {
        file: file.to_owned(),
        line,
        message,
    };
    let (addr, depth) = text.split_once('/').ok_or_else(|| {
        err(format!(
            "'{text}' has no prefix length: expected an {family} ADDRESS/DEPTH"
        ))
    })?;
    let addr = addr
        .parse()
        .map_err(|_| err(format!("'{addr}' is not an {family} address")))?;
    match c_number(depth) {
        Some(d) if d <= u64::from(max_depth) => Ok((addr, d as u8)),
        _ => Err(err(format!(
            "bad prefix length '{depth}': expected 0 to {max_depth}"
        ))),
    }
}

/// `R<prefix>/<depth> <port>` lines of one address family.
fn parse_lpm<A: std::str::FromStr>(
    text: &str,
    file: &str,
    family: &str,
    max_depth: u8,
) -> Result<Vec<Route<A>>, RuleError> {
    route_lines(text, file)
        .map(|l| {
            let (line, rest) = l?;
            let [net, out] = fields::<2>(rest, file, line, "PREFIX/DEPTH PORT")?;
            let (prefix, depth) = prefix(net, max_depth, family, file, line)?;
            Ok(Route {
                prefix,
                depth,
                port: port(out, file, line)?,
                line,
            })
        })
        .collect()
}

pub fn parse_lpm_v4(text: &str, file: &str) -> Result<Vec<Route<Ipv4Addr>>, RuleError> {
    parse_lpm(text, file, "IPv4", 32)
}

pub fn parse_lpm_v6(text: &str, file: &str) -> Result<Vec<Route<Ipv6Addr>>, RuleError> {
    parse_lpm(text, file, "IPv6", 128)
}

const EXACT_FORM: &str = "DST SRC DST_PORT SRC_PORT PROTOCOL PORT";

fn l4_fields(
    [dport, sport, proto]: [&str; 3],
    file: &str,
    line: usize,
) -> Result<(u16, u16, u8), RuleError> {
    let num = |text: &str, max: u64, what: &str| match c_number(text) {
        Some(v) if v <= max => Ok(v),
        _ => Err(RuleError {
            file: file.to_owned(),
            line,
            message: format!("bad {what} '{text}': expected 0 to {max}"),
        }),
    };
    Ok((
        num(dport, 65535, "destination port")? as u16,
        num(sport, 65535, "source port")? as u16,
        num(proto, 255, "protocol")? as u8,
    ))
}

fn address<A: std::str::FromStr>(
    text: &str,
    family: &str,
    file: &str,
    line: usize,
) -> Result<A, RuleError> {
    text.parse().map_err(|_| RuleError {
        file: file.to_owned(),
        line,
        message: format!("'{text}' is not an {family} address"),
    })
}

/// `R<dst> <src> <dport> <sport> <proto> <port>` lines of one address family, each key made
/// by `key(dst, src, dst_port, src_port, protocol)`.
fn parse_em<A: std::str::FromStr, K>(
    text: &str,
    file: &str,
    family: &str,
    key: impl Fn(A, A, u16, u16, u8) -> K,
) -> Result<Vec<Exact<K>>, RuleError> {
    route_lines(text, file)
        .map(|l| {
            let (line, rest) = l?;
            let [dst, src, dport, sport, proto, out] = fields::<6>(rest, file, line, EXACT_FORM)?;
            let (dport, sport, proto) = l4_fields([dport, sport, proto], file, line)?;
            let dst = address(dst, family, file, line)?;
            let src = address(src, family, file, line)?;
            Ok(Exact {
                key: key(dst, src, dport, sport, proto),
                port: port(out, file, line)?,
                line,
            })
        })
        .collect()
}

pub fn parse_em_v4(text: &str, file: &str) -> Result<Vec<Exact<FlowKey4>>, RuleError> {
    parse_em(text, file, "IPv4", FlowKey4::new)
}

pub fn parse_em_v6(text: &str, file: &str) -> Result<Vec<Exact<FlowKey6>>, RuleError> {
    parse_em(text, file, "IPv6", FlowKey6::new)
}

/// An ACL rule and the line it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclLine<A> {
    pub rule: AclRule<A>,
    pub line: usize,
}

const ACL_FORM: &str = "SRC/LEN DST/LEN SPORT_LOW : SPORT_HIGH DPORT_LOW : DPORT_HIGH PROTO/MASK";

/// l3fwd's ACL files: `@` lines drop what they match, `R` lines route it by their port;
/// both are `SRC/LEN DST/LEN SPORT_LOW : SPORT_HIGH DPORT_LOW : DPORT_HIGH PROTO/MASK`, an
/// `R` line followed by its port. The first matching line wins.
fn parse_acl<A: std::str::FromStr>(
    text: &str,
    file: &str,
    family: &str,
    max_depth: u8,
) -> Result<Vec<AclLine<A>>, RuleError> {
    let err = |line: usize, message: String| RuleError {
        file: file.to_owned(),
        line,
        message,
    };
    rule_lines(text, file, &['@', 'R'])
        .map(|l| {
            let (line, lead, rest) = l?;
            let (fields, action) = if lead == 'R' {
                let [f @ .., out] =
                    lead_fields::<10>(lead, rest, file, line, &format!("{ACL_FORM} PORT"))?;
                (f, AclAction::Forward(port(out, file, line)?))
            } else {
                (lead_fields::<9>(lead, rest, file, line, ACL_FORM)?, AclAction::Deny)
            };
            let [src, dst, slo, scolon, shi, dlo, dcolon, dhi, proto] = fields;
            let range = |low: &str, colon: &str, high: &str, what: &str| {
                let bound = |t: &str| c_number(t).filter(|&v| v <= 65535).map(|v| v as u16);
                match (bound(low), colon, bound(high)) {
                    (Some(l), ":", Some(h)) if l <= h => Ok((l, h)),
                    _ => Err(err(
                        line,
                        format!(
                            "bad {what} port range '{low} {colon} {high}': expected LOW : HIGH, 0 to 65535, LOW not above HIGH"
                        ),
                    )),
                }
            };
            let protocol = proto
                .split_once('/')
                .and_then(|(v, m)| {
                    let byte = |t: &str| c_number(t).filter(|&v| v <= 255).map(|v| v as u8);
                    Some((byte(v)?, byte(m)?))
                })
                .ok_or_else(|| {
                    err(
                        line,
                        format!("bad protocol '{proto}': expected VALUE/MASK such as 6/0xff (TCP) or 0/0 (any)"),
                    )
                })?;
            Ok(AclLine {
                rule: AclRule {
                    src: prefix(src, max_depth, family, file, line)?,
                    dst: prefix(dst, max_depth, family, file, line)?,
                    src_ports: range(slo, scolon, shi, "source")?,
                    dst_ports: range(dlo, dcolon, dhi, "destination")?,
                    protocol,
                    action,
                },
                line,
            })
        })
        .collect()
}

pub fn parse_acl_v4(text: &str, file: &str) -> Result<Vec<AclLine<Ipv4Addr>>, RuleError> {
    parse_acl(text, file, "IPv4", 32)
}

pub fn parse_acl_v6(text: &str, file: &str) -> Result<Vec<AclLine<Ipv6Addr>>, RuleError> {
    parse_acl(text, file, "IPv6", 128)
}

/// Reads a rule file, naming it in the error.
pub fn read(path: &Path) -> Result<String, RuleError> {
    std::fs::read_to_string(path).map_err(|e| RuleError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read the rule file: {e}"),
    })
}

/// l3fwd's built-in LPM table: 198.18.P.0/24 by port P, for P in 0..16.
pub fn default_lpm_v4() -> Vec<Route<Ipv4Addr>> {
    (0..16u8)
        .map(|p| Route {
            prefix: Ipv4Addr::new(198, 18, p, 0),
            depth: 24,
            port: u16::from(p),
            line: 0,
        })
        .collect()
}

/// l3fwd's built-in IPv6 LPM table: 2001:200:0:P::/64 by port P.
pub fn default_lpm_v6() -> Vec<Route<Ipv6Addr>> {
    (0..16u16)
        .map(|p| Route {
            prefix: Ipv6Addr::new(0x2001, 0x200, 0, p, 0, 0, 0, 0),
            depth: 64,
            port: p,
            line: 0,
        })
        .collect()
}

/// l3fwd's built-in exact-match table: 198.18.P.0 from 198.18.P.1, UDP 9 → 9, by port P.
pub fn default_em_v4() -> Vec<Exact<FlowKey4>> {
    (0..16u8)
        .map(|p| Exact {
            key: FlowKey4::new(
                Ipv4Addr::new(198, 18, p, 0),
                Ipv4Addr::new(198, 18, p, 1),
                9,
                9,
                17,
            ),
            port: u16::from(p),
            line: 0,
        })
        .collect()
}

/// l3fwd's built-in IPv6 exact-match table: 2001:200:0:P:: from 2001:200:0:P::1, UDP 9 → 9.
pub fn default_em_v6() -> Vec<Exact<FlowKey6>> {
    (0..16u16)
        .map(|p| Exact {
            key: FlowKey6::new(
                Ipv6Addr::new(0x2001, 0x200, 0, p, 0, 0, 0, 0),
                Ipv6Addr::new(0x2001, 0x200, 0, p, 0, 0, 0, 1),
                9,
                9,
                17,
            ),
            port: p,
            line: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "/usr/share/dpdk/examples/l3fwd";

    fn shipped(name: &str) -> String {
        std::fs::read_to_string(format!("{SHIPPED}/{name}")).unwrap_or_else(|e| {
            panic!("{SHIPPED}/{name} (package dpdk-doc; scripts/setup.sh installs it): {e}")
        })
    }

    #[test]
    fn shipped_files_load_and_equal_the_built_in_tables() {
        assert_eq!(
            parse_lpm_v4(&shipped("lpm_default_v4.cfg"), "v4").unwrap(),
            default_lpm_v4()
                .into_iter()
                .enumerate()
                .map(|(i, r)| Route { line: i + 2, ..r })
                .collect::<Vec<_>>()
        );
        let v6 = parse_lpm_v6(&shipped("lpm_default_v6.cfg"), "v6").unwrap();
        assert_eq!(v6.len(), 16);
        assert!(v6
            .iter()
            .zip(default_lpm_v6())
            .all(|(a, b)| (a.prefix, a.depth, a.port) == (b.prefix, b.depth, b.port)));
        let em4 = parse_em_v4(&shipped("em_default_v4.cfg"), "em4").unwrap();
        assert!(em4
            .iter()
            .zip(default_em_v4())
            .all(|(a, b)| (a.key, a.port) == (b.key, b.port)));
        assert_eq!(em4.len(), 16);
        let em6 = parse_em_v6(&shipped("em_default_v6.cfg"), "em6").unwrap();
        assert!(em6
            .iter()
            .zip(default_em_v6())
            .all(|(a, b)| (a.key, a.port) == (b.key, b.port)));
        assert_eq!(em6.len(), 16);
    }

    fn v4_error(text: &str) -> String {
        parse_lpm_v4(text, "r.cfg").unwrap_err().to_string()
    }

    #[test]
    fn bad_lines_name_file_line_and_what_was_expected() {
        let ok = "# routes\n\nR10.0.0.0/8 1\n";
        assert_eq!(parse_lpm_v4(ok, "r.cfg").unwrap().len(), 1);
        assert_eq!(
            v4_error("R10.0.0.0/8 1\nR10.0.0/8 1\n"),
            "r.cfg:2: '10.0.0' is not an IPv4 address"
        );
        assert_eq!(
            v4_error("R10.0.0.0/33 1"),
            "r.cfg:1: bad prefix length '33': expected 0 to 32"
        );
        assert_eq!(
            v4_error("R10.0.0.0 1"),
            "r.cfg:1: '10.0.0.0' has no prefix length: expected an IPv4 ADDRESS/DEPTH"
        );
        assert_eq!(
            v4_error("R10.0.0.0/8 256"),
            "r.cfg:1: bad output port '256': expected a port number from 0 to 255"
        );
        assert!(v4_error("junk here").starts_with("r.cfg:1: 'junk here' is not a route"));
        assert_eq!(
            v4_error("R10.0.0.0/8"),
            "r.cfg:1: expected 2 fields (PREFIX/DEPTH PORT), found 1: 'R10.0.0.0/8'"
        );
        assert_eq!(
            parse_lpm_v6("R2001:db8::/129 1", "r6.cfg")
                .unwrap_err()
                .to_string(),
            "r6.cfg:1: bad prefix length '129': expected 0 to 128"
        );
        assert_eq!(
            parse_em_v4("R1.1.1.1 2.2.2.2 9 70000 17 0", "em.cfg")
                .unwrap_err()
                .to_string(),
            "em.cfg:1: bad source port '70000': expected 0 to 65535"
        );
    }

    #[test]
    fn acl_lines_route_or_deny_in_file_order() {
        let text = "# ACL\n@0.0.0.0/0 10.1.0.0/16 0 : 65535 22 : 22 6/0xff\n\
                    R0.0.0.0/0 10.0.0.0/8 0 : 65535 0 : 65535 0/0 1\n";
        let rules = parse_acl_v4(text, "acl.cfg").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].line, 2);
        assert_eq!(rules[0].rule.action, AclAction::Deny);
        assert_eq!(rules[0].rule.dst, (Ipv4Addr::new(10, 1, 0, 0), 16));
        assert_eq!(rules[0].rule.dst_ports, (22, 22));
        assert_eq!(rules[0].rule.protocol, (6, 0xff));
        assert_eq!(rules[1].rule.action, AclAction::Forward(1));
        let v6 = parse_acl_v6("R::/0 2001:db8::/32 0 : 65535 0 : 65535 17/0xff 0", "a6").unwrap();
        assert_eq!(v6[0].rule.dst.1, 32);
        let error = |text: &str| parse_acl_v4(text, "acl.cfg").unwrap_err().to_string();
        assert_eq!(
            error("@0.0.0.0/0 10.0.0.0/8 0 : 65535 80 : 22 6/0xff"),
            "acl.cfg:1: bad destination port range '80 : 22': expected LOW : HIGH, 0 to 65535, LOW not above HIGH"
        );
        assert_eq!(
            error("@0.0.0.0/0 10.0.0.0/8 0 : 65535 0 : 65535 6"),
            "acl.cfg:1: bad protocol '6': expected VALUE/MASK such as 6/0xff (TCP) or 0/0 (any)"
        );
        assert!(error("R0.0.0.0/0 10.0.0.0/8 0 : 65535 0 : 65535 0/0")
            .starts_with("acl.cfg:1: expected 10 fields (SRC/LEN"));
        assert!(error("X1").starts_with("acl.cfg:1: 'X1' is not a rule: ACL files have @ lines"));
    }

    #[test]
    fn numbers_read_as_strtoul_base_zero() {
        assert_eq!(c_number("0x11"), Some(17));
        assert_eq!(c_number("017"), Some(15));
        assert_eq!(c_number("17"), Some(17));
        assert_eq!(c_number("0"), Some(0));
        assert_eq!(c_number("x"), None);
    }
}
