//! netem's command line (`man tc-netem`), read into an [`Impairment`]:
//!
//! ```text
//! [limit PACKETS] [delay TIME [JITTER [CORRELATION]] [distribution uniform|normal|pareto|paretonormal]]
//! [loss random PERCENT [CORRELATION] | loss gemodel p [r [1-h [1-k]]] | loss state p13 [p31 [p32 [p23 [p14]]]]]
//! [duplicate PERCENT] [reorder PERCENT [gap DISTANCE]] [corrupt PERCENT]
//! [rate RATE [overhead BYTES]]
//! [slot MIN [MAX] | slot distribution uniform|normal|pareto|paretonormal DELAY JITTER]
//!   [packets N] [bytes N]
//! [seed N]
//! ```
//!
//! `loss PERCENT` is short for `loss random PERCENT`. Times take `s`, `ms`, `us` or `ns`
//! (bare numbers are microseconds, as tc reads them); rates take `bit`, `kbit`, `mbit`,
//! `gbit` or `bps` (bytes), with SI multiples; percentages may omit the `%`. Every mistake is
//! one line naming the word and what was expected.

use std::time::Duration;

/// The delay's jitter distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    Normal,
    Pareto,
    ParetoNormal,
}

/// netem's loss models. Probabilities are from 0 to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Independent losses, with a correlation to the previous decision.
    Random { p: f64, correlation: f64 },
    /// Gilbert-Elliott: p (good to bad), r (bad to good), 1-h (loss in bad), 1-k (loss in good).
    GilbertElliott {
        p: f64,
        r: f64,
        h_loss: f64,
        k_loss: f64,
    },
    /// The 4-state Markov model of netem (Salsano et al.).
    State {
        p13: f64,
        p31: f64,
        p32: f64,
        p23: f64,
        p14: f64,
    },
}

/// netem's slots: held packets leave in bursts, one slot at a time (a Wi-Fi or DOCSIS
/// medium's transmit opportunities). A slot opens after a delay drawn from `delay`, takes up
/// to `packets` packets and `bytes` bytes (the first to run out closes it), and the next one
/// is drawn when it closes, or when a packet finds no slot open.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot {
    pub delay: SlotDelay,
    pub packets: Option<u32>,
    pub bytes: Option<u32>,
}

/// How long until the next slot opens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SlotDelay {
    /// Uniform from `min` to `max` (`slot MIN [MAX]`).
    Between { min: Duration, max: Duration },
    /// `delay` with a `jitter` of the distribution (`slot distribution DIST DELAY JITTER`).
    Distributed {
        distribution: Distribution,
        delay: Duration,
        jitter: Duration,
    },
}

/// One direction's impairments, as netem has them.
#[derive(Clone, Debug, PartialEq)]
pub struct Impairment {
    /// Packets held at once (netem's default is 1000); beyond it, dropped as `impair_limit`.
    pub limit: usize,
    pub delay: Duration,
    pub jitter: Duration,
    pub delay_correlation: f64,
    pub distribution: Distribution,
    pub loss: Option<Loss>,
    pub duplicate: f64,
    pub reorder: f64,
    pub reorder_gap: u32,
    pub corrupt: f64,
    /// Bits a second, and bytes each packet costs on the wire beyond its frame.
    pub rate: Option<(u64, u32)>,
    pub slot: Option<Slot>,
    pub seed: Option<u64>,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            limit: 1000,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            delay_correlation: 0.0,
            distribution: Distribution::Uniform,
            loss: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_gap: 0,
            corrupt: 0.0,
            rate: None,
            slot: None,
            seed: None,
        }
    }
}

fn pct(p: f64) -> String {
    let parts = (p * PARTS as f64).round() as u64;
    let (whole, fraction) = (parts / (PARTS / 100), parts % (PARTS / 100));
    if fraction == 0 {
        format!("{whole}%")
    } else {
        format!(
            "{whole}.{}%",
            format!("{fraction:07}").trim_end_matches('0')
        )
    }
}

fn span(d: Duration) -> String {
    match d.as_nanos() {
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

/// netem's words for the impairment (`no impairment` for none), which read back the same.
impl std::fmt::Display for Impairment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words = Vec::new();
        if self.limit != Impairment::default().limit {
            words.push(format!("limit {}", self.limit));
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            let mut d = format!("delay {}", span(self.delay));
            if !self.jitter.is_zero() {
                d += &format!(" {}", span(self.jitter));
                if self.delay_correlation > 0.0 {
                    d += &format!(" {}", pct(self.delay_correlation));
                }
                d += &format!(" distribution {}", self.distribution.name());
            }
            words.push(d);
        }
        match self.loss {
            None => {}
            Some(Loss::Random { p, correlation }) => {
                words.push(format!("loss random {} {}", pct(p), pct(correlation)))
            }
            Some(Loss::GilbertElliott {
                p,
                r,
                h_loss,
                k_loss,
            }) => words.push(format!(
                "loss gemodel {} {} {} {}",
                pct(p),
                pct(r),
                pct(h_loss),
                pct(k_loss)
            )),
            Some(Loss::State {
                p13,
                p31,
                p32,
                p23,
                p14,
            }) => words.push(format!(
                "loss state {} {} {} {} {}",
                pct(p13),
                pct(p31),
                pct(p32),
                pct(p23),
                pct(p14)
            )),
        }
        for (word, p) in [("duplicate", self.duplicate), ("corrupt", self.corrupt)] {
            if p > 0.0 {
                words.push(format!("{word} {}", pct(p)));
            }
        }
        if self.reorder > 0.0 {
            words.push(format!(
                "reorder {} gap {}",
                pct(self.reorder),
                self.reorder_gap
            ));
        }
        if let Some((bits, overhead)) = self.rate {
            words.push(format!("rate {bits}bit overhead {overhead}"));
        }
        if let Some(slot) = self.slot {
            let mut w = match slot.delay {
                SlotDelay::Between { min, max } => format!("slot {} {}", span(min), span(max)),
                SlotDelay::Distributed {
                    distribution,
                    delay,
                    jitter,
                } => format!(
                    "slot distribution {} {} {}",
                    distribution.name(),
                    span(delay),
                    span(jitter)
                ),
            };
            for (word, limit) in [("packets", slot.packets), ("bytes", slot.bytes)] {
                if let Some(n) = limit {
                    w += &format!(" {word} {n}");
                }
            }
            words.push(w);
        }
        if let Some(seed) = self.seed {
            words.push(format!("seed {seed}"));
        }
        if words.is_empty() {
            f.write_str("no impairment")
        } else {
            f.write_str(&words.join(" "))
        }
    }
}

/// The words of a command line, one at a time.
struct Words<'a> {
    words: std::iter::Peekable<std::str::SplitWhitespace<'a>>,
}

impl<'a> Words<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        self.words
            .next()
            .ok_or_else(|| format!("the command ends where {what} was expected"))
    }

    /// The next word, if it is a number (an optional argument).
    fn next_number(&mut self) -> Option<&'a str> {
        let word = *self.words.peek()?;
        word.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            .then(|| self.words.next())
            .flatten()
    }
}

/// Probabilities are kept to a part in a billion (1e-7 %), read and printed as exact
/// decimals, so that what is printed reads back the same.
const PARTS: u64 = 1_000_000_000;

/// A percentage (`0.1%` or `0.1`) as a probability from 0 to 1, to a part in a billion.
pub fn percent(word: &str) -> Result<f64, String> {
    let bad = || format!("'{word}' is not a percentage from 0 to 100 (such as 0.1%)");
    let number = word.strip_suffix('%').unwrap_or(word);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || whole.len() > 3
    {
        return Err(bad());
    }
    // Percent digits beyond the seventh decimal are below a part in a billion: dropped.
    let kept = &fraction[..fraction.len().min(7)];
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction: u64 = if kept.is_empty() {
        0
    } else {
        kept.parse().map_err(|_| bad())?
    };
    let parts = whole * (PARTS / 100) + fraction * 10u64.pow(7 - kept.len() as u32);
    if parts > PARTS {
        return Err(bad());
    }
    Ok(parts as f64 / PARTS as f64)
}

/// The longest delay or jitter taken.
pub const MAX_TIME: Duration = Duration::from_secs(3600);

/// A time (`10ms`, `1.5s`, `100us`, `500ns`; a bare number is microseconds), to the
/// nanosecond, read with integers so that what is printed reads back the same; at most an
/// hour.
pub fn time(word: &str) -> Result<Duration, String> {
    let bad = || format!("'{word}' is not a time (such as 10ms, 100us or 1.5s)");
    let split = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(word.len());
    let (number, unit) = word.split_at(split);
    let ns_per_unit: u128 = match unit {
        "s" | "sec" | "secs" => 1_000_000_000,
        "ms" | "msec" | "msecs" => 1_000_000,
        "" | "us" | "usec" | "usecs" => 1_000,
        "ns" | "nsec" | "nsecs" => 1,
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    let digits = |d: &str| -> Result<u128, String> {
        if d.is_empty() {
            Ok(0)
        } else if d.len() > 30 {
            Err(bad())
        } else {
            d.parse::<u128>().map_err(|_| bad())
        }
    };
    // Fraction digits beyond the nanosecond are dropped.
    let kept = &fraction[..fraction.len().min(9)];
    let ns = digits(whole)?
        .checked_mul(ns_per_unit)
        .and_then(|n| {
            n.checked_add(digits(kept).ok()? * ns_per_unit / 10u128.pow(kept.len() as u32))
        })
        .ok_or_else(bad)?;
    if ns > MAX_TIME.as_nanos() {
        return Err(format!("'{word}' is longer than the hour a delay may be"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// A rate in bits a second (`1gbit`, `100mbit`, `10kbit`, `1000bit`, `125mbps` for bytes).
pub fn rate(word: &str) -> Result<u64, String> {
    let bad = || format!("'{word}' is not a rate (such as 1gbit, 100mbit or 10mbps)");
    let split = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = word.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_lowercase();
    let (scale, unit) = match unit.chars().next() {
        Some('k') => (1e3, &unit[1..]),
        Some('m') => (1e6, &unit[1..]),
        Some('g') => (1e9, &unit[1..]),
        Some('t') => (1e12, &unit[1..]),
        _ => (1.0, &unit[..]),
    };
    let bits = match unit {
        "bit" => n * scale,
        "bps" => n * scale * 8.0,
        _ => return Err(bad()),
    };
    // Up to 10 Tbit/s: integers that an f64 holds exactly, so that what is printed reads
    // back the same.
    if (1.0..=1e13).contains(&bits) {
        Ok(bits as u64)
    } else {
        Err(format!("'{word}' is not a rate from 1bit to 10tbit"))
    }
}

impl Impairment {
    /// Reads netem's syntax.
    pub fn parse(text: &str) -> Result<Impairment, String> {
        let mut words = Words {
            words: text.split_whitespace().peekable(),
        };
        let mut imp = Impairment::default();
        while let Some(word) = words.words.next() {
            match word {
                "limit" => {
                    let n = words.next("a number of packets after limit")?;
                    imp.limit = n
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("limit '{n}' is not a number of packets above 0"))?;
                }
                "delay" | "latency" => {
                    imp.delay = time(words.next("a time after delay")?)?;
                    if let Some(j) = words.next_number() {
                        imp.jitter = time(j)?;
                        if let Some(c) = words.next_number() {
                            imp.delay_correlation = percent(c)?;
                        }
                    }
                }
                "distribution" => imp.distribution = distribution(&mut words)?,
                "loss" | "drop" => imp.loss = Some(loss(&mut words)?),
                "duplicate" => imp.duplicate = percent(words.next("a percentage after duplicate")?)?,
                "reorder" => {
                    imp.reorder = percent(words.next("a percentage after reorder")?)?;
                    // A correlation may follow, as in netem; it is read and not used.
                    if words.next_number().is_some_and(|c| percent(c).is_err()) {
                        return Err("reorder's correlation is not a percentage".into());
                    }
                    if words.words.peek() == Some(&"gap") {
                        words.words.next();
                        let gap = words.next("a distance after gap")?;
                        imp.reorder_gap = gap
                            .parse()
                            .map_err(|_| format!("gap '{gap}' is not a number of packets"))?;
                    }
                }
                "corrupt" => imp.corrupt = percent(words.next("a percentage after corrupt")?)?,
                "rate" => {
                    let bits = rate(words.next("a rate after rate")?)?;
                    let mut overhead = 0;
                    if words.words.peek() == Some(&"overhead") {
                        words.words.next();
                        let o = words.next("a number of bytes after overhead")?;
                        overhead = o
                            .parse()
                            .map_err(|_| format!("overhead '{o}' is not a number of bytes"))?;
                    }
                    imp.rate = Some((bits, overhead));
                }
                "slot" => imp.slot = Some(slot(&mut words)?),
                "seed" => {
                    let s = words.next("a number after seed")?;
                    imp.seed = Some(s.parse().map_err(|_| format!("seed '{s}' is not a number"))?);
                }
                other => {
                    return Err(format!(
                        "unknown word '{other}': expected limit, delay, distribution, loss, duplicate, reorder, corrupt, rate, slot or seed"
                    ))
                }
            }
        }
        if imp.reorder > 0.0 && imp.delay.is_zero() {
            return Err("reorder needs a delay (the packets not reordered are the ones delayed), as in netem".into());
        }
        if let Some((bits, overhead)) = imp.rate {
            // At the rate, frames of 64 bytes leave this often; the delay holds that many.
            let wire_bits = (64 + u64::from(overhead)) * 8;
            let in_flight = (imp.delay + imp.jitter).as_secs_f64() * bits as f64 / wire_bits as f64;
            if in_flight > imp.limit as f64 {
                return Err(format!(
                    "limit {} is too small for {} of delay at {bits} bit/s: up to {} packets of 64 bytes are held; give limit {} or more",
                    imp.limit,
                    span(imp.delay + imp.jitter),
                    in_flight.ceil(),
                    in_flight.ceil()
                ));
            }
        }
        Ok(imp)
    }
}

impl Distribution {
    fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::ParetoNormal => "paretonormal",
        }
    }
}

fn distribution(words: &mut Words<'_>) -> Result<Distribution, String> {
    Ok(match words.next("a distribution")? {
        "uniform" => Distribution::Uniform,
        "normal" => Distribution::Normal,
        "pareto" => Distribution::Pareto,
        "paretonormal" => Distribution::ParetoNormal,
        other => {
            return Err(format!(
                "unknown distribution '{other}': expected uniform, normal, pareto or paretonormal"
            ))
        }
    })
}

/// `slot MIN [MAX] [packets N] [bytes N]` or `slot distribution DIST DELAY JITTER [...]`, as
/// tc reads them (MAX defaults to MIN).
fn slot(words: &mut Words<'_>) -> Result<Slot, String> {
    let delay = if words.words.peek() == Some(&"distribution") {
        words.words.next();
        let distribution = distribution(words)?;
        let delay = time(words.next("the slot's delay after its distribution")?)?;
        let jitter = time(words.next("the slot's jitter after its delay")?)?;
        SlotDelay::Distributed {
            distribution,
            delay,
            jitter,
        }
    } else {
        let min = time(words.next("a time or distribution after slot")?)?;
        let max = words.next_number().map_or(Ok(min), time)?;
        if max < min {
            return Err(format!(
                "slot {} {}: the longest time comes second",
                span(min),
                span(max)
            ));
        }
        SlotDelay::Between { min, max }
    };
    let mut slot = Slot {
        delay,
        packets: None,
        bytes: None,
    };
    while let Some(&word @ ("packets" | "bytes")) = words.words.peek() {
        words.words.next();
        let n = words.next(&format!("a number after {word}"))?;
        let n = n
            .parse()
            .ok()
            .filter(|&n: &u32| n > 0)
            .ok_or_else(|| format!("slot {word} '{n}' is not a number above 0"))?;
        if word == "packets" {
            slot.packets = Some(n);
        } else {
            slot.bytes = Some(n);
        }
    }
    Ok(slot)
}

/// An optional percentage, or `default`.
fn optional(words: &mut Words<'_>, default: f64) -> Result<f64, String> {
    words.next_number().map_or(Ok(default), percent)
}

fn loss(words: &mut Words<'_>) -> Result<Loss, String> {
    let first = words.next("random, gemodel, state or a percentage after loss")?;
    Ok(match first {
        "random" => {
            let p = percent(words.next("a percentage after loss random")?)?;
            Loss::Random {
                p,
                correlation: optional(words, 0.0)?,
            }
        }
        "gemodel" | "gilbert-elliott" => {
            let p = percent(words.next("p after loss gemodel")?)?;
            // netem's defaults: r = 1 - p, 1-h = 100%, 1-k = 0%.
            let r = optional(words, 1.0 - p)?;
            Loss::GilbertElliott {
                p,
                r,
                h_loss: optional(words, 1.0)?,
                k_loss: optional(words, 0.0)?,
            }
        }
        "state" => {
            let p13 = percent(words.next("p13 after loss state")?)?;
            Loss::State {
                p13,
                p31: optional(words, 1.0 - p13)?,
                p32: optional(words, 0.0)?,
                p23: optional(words, 1.0)?,
                p14: optional(words, 0.0)?,
            }
        }
        number => Loss::Random {
            p: percent(number).map_err(|e| {
                if number.trim_end_matches('%').parse::<f64>().is_ok() {
                    e
                } else {
                    format!("loss '{number}': expected random, gemodel, state or a percentage")
                }
            })?,
            correlation: optional(words, 0.0)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_command_lines_read_as_netem_reads_them() {
        let imp = Impairment::parse(
            "delay 10ms 1ms 25% distribution normal loss 0.1% duplicate 1 reorder 25% gap 5 corrupt 0.1% rate 1gbit overhead 24 limit 50000 seed 7",
        )
        .unwrap();
        assert_eq!(imp.delay, Duration::from_millis(10));
        assert_eq!(imp.jitter, Duration::from_millis(1));
        assert!((imp.delay_correlation - 0.25).abs() < 1e-12);
        assert_eq!(imp.distribution, Distribution::Normal);
        assert_eq!(
            imp.loss,
            Some(Loss::Random {
                p: 0.001,
                correlation: 0.0
            })
        );
        assert!((imp.duplicate - 0.01).abs() < 1e-12);
        assert_eq!((imp.reorder, imp.reorder_gap), (0.25, 5));
        assert_eq!(imp.rate, Some((1_000_000_000, 24)));
        assert_eq!((imp.limit, imp.seed), (50_000, Some(7)));
        assert_eq!(
            Impairment::parse("loss gemodel 1% 10% 70% 0.1%")
                .unwrap()
                .loss,
            Some(Loss::GilbertElliott {
                p: 0.01,
                r: 0.1,
                h_loss: 0.7,
                k_loss: 0.001
            })
        );
        assert_eq!(
            Impairment::parse("loss state 1%").unwrap().loss,
            Some(Loss::State {
                p13: 0.01,
                p31: 0.99,
                p32: 0.0,
                p23: 1.0,
                p14: 0.0
            })
        );
        assert_eq!(
            Impairment::parse("delay 100").unwrap().delay,
            Duration::from_micros(100)
        );
        assert_eq!(
            Impairment::parse("rate 125mbps").unwrap().rate,
            Some((1_000_000_000, 0))
        );
        assert_eq!(Impairment::parse("").unwrap(), Impairment::default());
        assert_eq!(
            Impairment::parse("slot 2ms packets 8 delay 1ms")
                .unwrap()
                .slot,
            Some(Slot {
                delay: SlotDelay::Between {
                    min: Duration::from_millis(2),
                    max: Duration::from_millis(2)
                },
                packets: Some(8),
                bytes: None
            })
        );
        assert_eq!(
            Impairment::parse("slot distribution pareto 1ms 500us bytes 1500")
                .unwrap()
                .slot,
            Some(Slot {
                delay: SlotDelay::Distributed {
                    distribution: Distribution::Pareto,
                    delay: Duration::from_millis(1),
                    jitter: Duration::from_micros(500)
                },
                packets: None,
                bytes: Some(1500)
            })
        );
    }

    #[test]
    fn what_is_printed_reads_back_the_same() {
        for line in [
            "delay 10ms 1ms 25% distribution normal loss 0.1% duplicate 1 reorder 25% gap 5 corrupt 0.1% rate 1gbit overhead 24 limit 50000 seed 7",
            "loss gemodel 1% 10% 70% 0.1%",
            "loss state 1% 2% 3% 4% 5%",
            "delay 100us",
            "slot 800us 1ms packets 10 bytes 3000",
            "slot distribution normal 1ms 100us packets 4",
        ] {
            let imp = Impairment::parse(line).unwrap();
            assert_eq!(Impairment::parse(&imp.to_string()).unwrap(), imp, "{imp}");
        }
        assert_eq!(Impairment::default().to_string(), "no impairment");
    }

    #[test]
    fn tiny_probabilities_print_exactly() {
        for line in [
            "duplicate 0.0000001%",
            "loss 33.3333333%",
            "corrupt 100%",
            "reorder 0.5 delay 1ms",
        ] {
            let imp = Impairment::parse(line).unwrap();
            let printed = imp.to_string();
            assert_eq!(
                Impairment::parse(&printed).unwrap().to_string(),
                printed,
                "{line}"
            );
        }
        assert_eq!(percent("0.00000001%"), Ok(0.0), "below a part in a billion");
        assert_eq!(pct(percent("12.5%").unwrap()), "12.5%");
    }

    #[test]
    fn mistakes_name_the_word_and_what_was_expected() {
        for (line, says) in [
            ("jitter 1ms", "unknown word 'jitter': expected limit, delay"),
            (
                "loss 101%",
                "'101%' is not a percentage from 0 to 100",
            ),
            (
                "loss lots",
                "loss 'lots': expected random, gemodel, state or a percentage",
            ),
            (
                "delay 10ms rate 1gbit limit 1000",
                "limit 1000 is too small for 10ms of delay at 1000000000 bit/s: up to 19532 packets",
            ),
            ("loss random 2x", "'2x' is not a percentage from 0 to 100"),
            ("delay 10 parsecs", "unknown word 'parsecs'"),
            ("delay 10qs", "'10qs' is not a time"),
            ("delay 2h", "'2h' is not a time"),
            ("delay 7200s", "'7200s' is longer than the hour a delay may be"),
            ("delay 1.2.3ms", "'1.2.3ms' is not a time"),
            ("rate fast", "'fast' is not a rate"),
            ("rate 20tbit", "'20tbit' is not a rate from 1bit to 10tbit"),
            ("limit 0", "limit '0' is not a number of packets above 0"),
            ("distribution cauchy", "unknown distribution 'cauchy'"),
            ("slot 2ms 1ms", "slot 2ms 1ms: the longest time comes second"),
            ("slot 1ms packets 0", "slot packets '0' is not a number above 0"),
            ("slot distribution normal 1ms", "the slot's jitter after its delay"),
            ("slot", "a time or distribution after slot"),
            ("reorder 10%", "reorder needs a delay"),
            (
                "delay",
                "the command ends where a time after delay was expected",
            ),
        ] {
            let error = Impairment::parse(line).unwrap_err();
            assert!(error.contains(says), "{line}: {error}");
        }
    }
}
