//! Static neighbours (`--neighbours FILE`): one `IP MAC` per line, IPv4 or IPv6, with `#`
//! comments and blank lines.

use sluice::net::ethernet::Address;
use std::net::IpAddr;

/// The entries of a neighbour file's `text`; a bad line fails with `file:line:` and what was
/// expected.
pub fn parse(text: &str, file: &str) -> Result<Vec<(IpAddr, Address)>, String> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            format!(
                "{file}:{}: expected IP MAC such as 10.0.2.2 02:00:00:00:00:02, found '{line}'",
                i + 1
            )
        };
        let (ip, mac) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let mac: Address = mac.trim().parse().map_err(|_| bad())?;
        entries.push((ip, mac));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_comments_parse_and_a_bad_line_is_named() {
        let text = "# static\n10.0.2.2 02:00:00:00:00:02\n\n2001:db8::2   02:00:00:00:00:03\n";
        let entries = parse(text, "n.txt").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0, "2001:db8::2".parse::<IpAddr>().unwrap());
        let e = parse(
            "10.0.2.2 02:00:00:00:00:02\n10.0.2.300 02:00:00:00:00:02\n",
            "n.txt",
        )
        .unwrap_err();
        assert!(e.starts_with("n.txt:2: expected IP MAC"), "{e}");
        assert!(parse("10.0.2.2\n", "n").unwrap_err().contains("n:1:"));
    }
}
