//! What a run prints: a live line per second, the final summary, the RFC 2544 table, and
//! the same figures as JSON for scripts.

use crate::receiver::{Counts, Receiver};
use crate::spec::Stream;
use crate::SearchResult;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sluice_pktgen::malformed::Kind;
use std::fmt::Write;
use std::time::Duration;

/// One port's counts over a trial (per queue on the receive side).
pub struct PortFigures {
    pub port: u16,
    pub counts: Counts,
    pub queues: Vec<Counts>,
}

/// How a paced TX port kept to its rate.
pub struct Pace {
    /// The rate asked for; None: unlimited.
    pub asked_pps: Option<f64>,
    /// Rounds on which the port's queue was full and the device took fewer packets than given.
    pub device_full: u64,
}

/// A paced port that sent less than this share of its rate says why in the summary.
const SHORT_OF_PACE: f64 = 0.98;

/// Everything a trial counted.
pub struct TrialResult {
    /// From the first packet to the end of sending.
    pub tx_elapsed: Duration,
    pub tx: Vec<PortFigures>,
    /// Per TX port, as `tx`.
    pub pace: Vec<Pace>,
    pub rx: Vec<PortFigures>,
    pub stream_tx: Vec<Counts>,
    pub receiver: Receiver,
    /// Spoiled packets sent (`--malformed`), per kind, in `malformed::Kind::ALL`'s order.
    pub malformed: [u64; Kind::ALL.len()],
}

impl TrialResult {
    /// Packets sent by the streams, and how many of them never came back.
    pub fn totals_tx_lost(&self) -> (u64, u64) {
        let tx: u64 = self.stream_tx.iter().map(|c| c.packets).sum();
        let back: u64 = self.receiver.streams.iter().map(|s| s.unique()).sum();
        (tx, tx.saturating_sub(back))
    }
}

fn mpps(packets: u64, d: Duration) -> f64 {
    packets as f64 / d.as_secs_f64().max(1e-9) / 1e6
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64().max(1e-9) / 1e9
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy)]
struct Percentiles {
    min: f64,
    p10: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

fn latency(h: &Histogram<u64>) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    let us = |ns: u64| ns as f64 / 1e3;
    let at = |q: f64| us(h.value_at_quantile(q));
    Some(Percentiles {
        min: us(h.min()),
        p10: at(0.1),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        max: us(h.max()),
        mean: h.mean() / 1e3,
    })
}

fn latency_json(h: &Histogram<u64>) -> Value {
    match latency(h) {
        Some(l) => json!({
            "samples": h.len(), "min": l.min, "p10": l.p10, "p50": l.p50, "p90": l.p90,
            "p99": l.p99, "p99_9": l.p999, "max": l.max, "mean": l.mean,
        }),
        None => Value::Null,
    }
}

fn latency_text(h: &Histogram<u64>) -> String {
    match latency(h) {
        Some(l) => format!(
            "latency us: min {:.1} p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
            l.min, l.p50, l.p90, l.p99, l.p999, l.max
        ),
        None => "latency: no samples".into(),
    }
}

/// The live table: one line per second.
pub struct Live {
    tx_ports: Vec<u16>,
    rx_ports: Vec<u16>,
    last_tx: Vec<Counts>,
    last_rx: Vec<Counts>,
    last: Duration,
    header_printed: bool,
}

impl Live {
    pub fn new(tx_ports: &[u16], rx_ports: &[u16]) -> Live {
        Live {
            tx_ports: tx_ports.to_vec(),
            rx_ports: rx_ports.to_vec(),
            last_tx: vec![Counts::default(); tx_ports.len()],
            last_rx: vec![Counts::default(); rx_ports.len()],
            last: Duration::ZERO,
            header_printed: false,
        }
    }

    pub fn line(
        &mut self,
        at: Duration,
        tx: &[Counts],
        rx: &[Counts],
        lost: Option<i64>,
        interval: &Histogram<u64>,
    ) -> String {
        let d = at - self.last;
        self.last = at;
        let mut out = String::new();
        if !self.header_printed {
            self.header_printed = true;
            out.push_str(
                "  time | port  tx Mpps  tx Gbps  rx Mpps  rx Gbps | not back  p50 us  p99 us\n",
            );
        }
        let mut ports: Vec<u16> = self
            .tx_ports
            .iter()
            .chain(&self.rx_ports)
            .copied()
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let (p50, p99) = match latency(interval) {
            Some(l) => (format!("{:.1}", l.p50), format!("{:.1}", l.p99)),
            None => ("-".into(), "-".into()),
        };
        for (row, port) in ports.iter().enumerate() {
            let rate = |list: &[u16], now: &[Counts], last: &mut [Counts]| {
                list.iter().position(|p| p == port).map(|i| {
                    let (p, b) = (
                        now[i].packets - last[i].packets,
                        now[i].bytes - last[i].bytes,
                    );
                    last[i] = now[i];
                    (mpps(p, d), gbps(b, d))
                })
            };
            let t = rate(&self.tx_ports, tx, &mut self.last_tx);
            let r = rate(&self.rx_ports, rx, &mut self.last_rx);
            let cell = |v: Option<(f64, f64)>| match v {
                Some((m, g)) => format!("{m:>8.3} {g:>8.3}"),
                None => format!("{:>8} {:>8}", "-", "-"),
            };
            let time = if row == 0 {
                format!("{:>5.0}s", at.as_secs_f64())
            } else {
                " ".repeat(6)
            };
            let tail = if row == 0 {
                let lost = lost.map_or("-".into(), |l| l.to_string());
                format!(" | {lost:>8} {p50:>7} {p99:>7}")
            } else {
                " |".into()
            };
            let _ = write!(out, "{time} | {port:>4} {} {}{tail}", cell(t), cell(r));
            if row + 1 < ports.len() {
                out.push('\n');
            }
        }
        out
    }
}

/// The final summary.
pub fn summary(r: &TrialResult, streams: &[Stream]) -> String {
    let d = r.tx_elapsed;
    let mut out = format!("\nsummary: {:.3} s of sending\n", d.as_secs_f64());
    let line = |p: &PortFigures, way: &str| {
        let c = p.counts;
        format!(
            "  port {} {way}: {} packets, {} bytes, {:.3} Mpps, {:.3} Gbps\n",
            p.port,
            c.packets,
            c.bytes,
            mpps(c.packets, d),
            gbps(c.bytes, d)
        )
    };
    for (p, pace) in r.tx.iter().zip(&r.pace) {
        out.push_str(&line(p, "tx"));
        if let Some(note) = short_of_pace(p, pace, d) {
            let _ = writeln!(out, "    {note}");
        }
    }
    let spoiled: u64 = r.malformed.iter().sum();
    if spoiled > 0 {
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .zip(r.malformed)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let _ = writeln!(
            out,
            "  malformed sent: {spoiled} ({}); not counted in the streams",
            kinds.join(", ")
        );
    }
    for p in &r.rx {
        out.push_str(&line(p, "rx"));
        if p.queues.len() > 1 {
            for (q, c) in p.queues.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "    queue {q}: {} packets, {} bytes",
                    c.packets, c.bytes
                );
            }
        }
    }
    if !r.rx.is_empty() {
        for (i, s) in streams.iter().enumerate() {
            let (tx, rx) = (r.stream_tx[i], &r.receiver.streams[i]);
            let lost = tx.packets.saturating_sub(rx.unique());
            let _ = writeln!(
                out,
                "  stream '{}': tx {} rx {} lost {} ({:.4}%) duplicates {} reordered {}\n    {}",
                s.name,
                tx.packets,
                rx.packets,
                lost,
                percent(lost, tx.packets),
                rx.duplicates,
                rx.reordered,
                latency_text(&rx.latency)
            );
        }
        let (tx, lost) = r.totals_tx_lost();
        let _ = writeln!(
            out,
            "  total: tx {tx} lost {lost} ({:.4}%); {}",
            percent(lost, tx),
            latency_text(&r.receiver.total_latency())
        );
        let _ = write!(
            out,
            "  received without our signature: {}; with a wrong checksum (lost to their streams): {}",
            r.receiver.foreign, r.receiver.corrupted
        );
    }
    out
}

/// Why a paced port sent less than it was asked to, if it did: either its device pushed back,
/// or this lcore could not build, send and receive packets that fast (a generator that
/// cannot keep up must say so, or its figures pass for the device's).
fn short_of_pace(p: &PortFigures, pace: &Pace, d: Duration) -> Option<String> {
    let asked = pace.asked_pps?;
    let sent = mpps(p.counts.packets, d) * 1e6;
    if sent >= asked * SHORT_OF_PACE {
        return None;
    }
    let why = if pace.device_full > 0 {
        format!(
            "the device pushed back ({} rounds with its queue full)",
            pace.device_full
        )
    } else {
        "the device never pushed back: this lcore could not build, send and receive that fast"
            .to_string()
    };
    Some(format!(
        "short of the {:.3} Mpps asked by {:.1}%: {why}",
        asked / 1e6,
        (1.0 - sent / asked) * 100.0
    ))
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn port_json(p: &PortFigures, d: Duration) -> Value {
    json!({
        "port": p.port, "packets": p.counts.packets, "bytes": p.counts.bytes,
        "mpps": mpps(p.counts.packets, d), "gbps": gbps(p.counts.bytes, d),
        "queues": p.queues.iter().enumerate().map(|(q, c)| json!({
            "queue": q, "packets": c.packets, "bytes": c.bytes,
            "mpps": mpps(c.packets, d), "gbps": gbps(c.bytes, d),
        })).collect::<Vec<_>>(),
    })
}

pub fn trial_json(r: &TrialResult, streams: &[Stream]) -> Value {
    let d = r.tx_elapsed;
    let (tx, lost) = r.totals_tx_lost();
    json!({
        "seconds": d.as_secs_f64(),
        "tx": r.tx.iter().zip(&r.pace).map(|(p, pace)| {
            let mut port = port_json(p, d);
            port["asked_mpps"] = json!(pace.asked_pps.map(|pps| pps / 1e6));
            port["device_full"] = json!(pace.device_full);
            port
        }).collect::<Vec<_>>(),
        "rx": r.rx.iter().map(|p| port_json(p, d)).collect::<Vec<_>>(),
        "streams": streams.iter().enumerate().map(|(i, s)| {
            let (t, rx) = (r.stream_tx[i], &r.receiver.streams[i]);
            let lost = t.packets.saturating_sub(rx.unique());
            json!({
                "name": s.name, "port": s.port, "tx_packets": t.packets, "tx_bytes": t.bytes,
                "rx_packets": rx.packets, "rx_bytes": rx.bytes, "lost": lost,
                "loss_pct": percent(lost, t.packets), "duplicates": rx.duplicates,
                "reordered": rx.reordered, "gaps": rx.gaps,
                "latency_us": latency_json(&rx.latency),
            })
        }).collect::<Vec<_>>(),
        "total": {
            "tx_packets": tx, "lost": lost, "loss_pct": percent(lost, tx),
            "latency_us": latency_json(&r.receiver.total_latency()),
            "foreign_rx": r.receiver.foreign,
            "corrupted_rx": r.receiver.corrupted,
        },
        "malformed": Kind::ALL.iter().zip(r.malformed)
            .map(|(k, n)| (k.name().to_owned(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// The zero-loss rate on the wire (L1: frames plus preamble and gap), in Gbps.
fn line_gbps(r: &SearchResult) -> f64 {
    r.ndr_pps * (f64::from(r.size) + crate::spec::WIRE_OVERHEAD) * 8.0 / 1e9
}

pub fn rfc2544_table(results: &[SearchResult]) -> String {
    let mut out = String::from(
        "\n| frame bytes | zero-loss Mpps | zero-loss Gbps (L1) | trials | p50 us | p99 us |\n| --- | --- | --- | --- | --- | --- |",
    );
    for r in results {
        let lat = r
            .at_ndr
            .as_ref()
            .and_then(|t| latency(&t.receiver.total_latency()));
        let _ = write!(
            out,
            "\n| {} | {:.3} | {:.3} | {} | {} | {} |",
            r.size,
            r.ndr_pps / 1e6,
            line_gbps(r),
            r.trials.len(),
            lat.map_or("-".into(), |l| format!("{:.1}", l.p50)),
            lat.map_or("-".into(), |l| format!("{:.1}", l.p99)),
        );
    }
    out
}

pub fn rfc2544_json(results: &[SearchResult]) -> Value {
    json!({
        "rfc2544": results.iter().map(|r| json!({
            "frame_size": r.size,
            "zero_loss_mpps": r.ndr_pps / 1e6,
            "zero_loss_gbps_l1": line_gbps(r),
            "latency_us": r.at_ndr.as_ref().map_or(Value::Null, |t| latency_json(&t.receiver.total_latency())),
            "trials": r.trials.iter().map(|(asked, sent, loss)| json!({
                "asked_pps": asked, "sent_pps": sent, "loss_pct": loss,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(packets: u64) -> PortFigures {
        PortFigures {
            port: 0,
            counts: Counts {
                packets,
                bytes: packets * 64,
            },
            queues: Vec::new(),
        }
    }

    #[test]
    fn a_paced_port_that_fell_short_says_why() {
        let second = Duration::from_secs(1);
        let pace = |asked: f64, device_full| Pace {
            asked_pps: Some(asked),
            device_full,
        };
        assert_eq!(short_of_pace(&port(990_000), &pace(1e6, 0), second), None);
        assert_eq!(
            short_of_pace(&port(500_000), &pace(1e6, 0), second).as_deref(),
            Some("short of the 1.000 Mpps asked by 50.0%: the device never pushed back: this lcore could not build, send and receive that fast")
        );
        assert_eq!(
            short_of_pace(&port(900_000), &pace(1e6, 7), second).as_deref(),
            Some("short of the 1.000 Mpps asked by 10.0%: the device pushed back (7 rounds with its queue full)")
        );
        let unlimited = Pace {
            asked_pps: None,
            device_full: 0,
        };
        assert_eq!(short_of_pace(&port(1), &unlimited, second), None);
    }
}
