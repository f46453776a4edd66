//! Lanes from an explicit `(port,queue,lcore)` list, as DPDK's l3fwd takes with `--config`:
//! one lane per RX lcore, polling its queues and sending on a TX queue of its own on every
//! port.

use super::ports::{PortPlan, Ports};
use crate::eal::Eal;
use crate::pipeline::{Lane, Mode};
use crate::stage::Node;

/// One `(port,queue,lcore)`: lcore polls RX queue `queue` of `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub port: u16,
    pub queue: u16,
    pub lcore: u32,
}

/// l3fwd's `--config "(0,0,1),(1,0,1)"`, with or without commas between the triples.
pub fn parse(text: &str) -> Result<Vec<QueueConfig>, String> {
    let bad = |why: &str| {
        format!(
            "malformed --config '{text}': {why}; expected (port,queue,lcore) triples such as \"(0,0,1),(1,0,1)\""
        )
    };
    let mut out: Vec<QueueConfig> = Vec::new();
    let mut rest = text.trim();
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if rest.is_empty() {
            break;
        }
        let inner = rest
            .strip_prefix('(')
            .ok_or_else(|| bad("a triple must start with '('"))?;
        let (triple, after) = inner.split_once(')').ok_or_else(|| bad("missing ')'"))?;
        let numbers: Vec<&str> = triple.split(',').map(str::trim).collect();
        let [port, queue, lcore] = numbers[..] else {
            return Err(bad(&format!("'({triple})' is not three numbers")));
        };
        let number = |s: &str, max: u64, what: &str| match s.parse::<u64>() {
            Ok(v) if v <= max => Ok(v),
            _ => Err(bad(&format!("{what} '{s}' is not a number up to {max}"))),
        };
        let q = QueueConfig {
            port: number(port, u64::from(super::options::MAX_PORTS) - 1, "port")? as u16,
            queue: number(queue, 255, "queue")? as u16,
            lcore: number(lcore, 1023, "lcore")? as u32,
        };
        if out.iter().any(|o| o.port == q.port && o.queue == q.queue) {
            return Err(bad(&format!(
                "queue {} of port {} appears twice",
                q.queue, q.port
            )));
        }
        out.push(q);
        rest = after;
    }
    if out.is_empty() {
        return Err(bad("no triple"));
    }
    Ok(out)
}

/// Which lcore polls which queue and, pipelined, which lcore runs each RX lcore's stages.
#[derive(Clone, Debug)]
pub struct QueuePlan {
    ports: Vec<u16>,
    config: Vec<QueueConfig>,
    /// The lcores that poll, in order: lane `i` is `rx_lcores[i]`'s.
    rx_lcores: Vec<u32>,
    /// Pipelined: the stage lcore of each lane.
    stage_lcores: Option<Vec<u32>>,
}

impl QueuePlan {
    /// Checks `config` against the EAL's lcores and `ports` (an empty `config` polls queue 0
    /// of every port on the first lcore). A port no triple names only transmits, as in
    /// l3fwd. Pipelined, each RX lcore takes a stage lcore from those that poll nothing.
    pub fn new(
        eal: &Eal,
        ports: &[u16],
        config: &[QueueConfig],
        mode: Mode,
    ) -> Result<QueuePlan, String> {
        let lcores = eal.lcores();
        let config: Vec<QueueConfig> = if config.is_empty() {
            ports
                .iter()
                .map(|&port| QueueConfig {
                    port,
                    queue: 0,
                    lcore: lcores[0],
                })
                .collect()
        } else {
            config.to_vec()
        };
        for q in &config {
            if !ports.contains(&q.port) {
                return Err(format!(
                    "--config ({},{},{}) names port {}, which is not enabled",
                    q.port, q.queue, q.lcore, q.port
                ));
            }
            if !lcores.contains(&q.lcore) {
                return Err(format!(
                    "--config ({},{},{}) names lcore {}, which the EAL does not have: lcores are {lcores:?} (-l)",
                    q.port, q.queue, q.lcore, q.lcore
                ));
            }
        }
        for &port in ports {
            let mut queues: Vec<u16> = config
                .iter()
                .filter(|q| q.port == port)
                .map(|q| q.queue)
                .collect();
            queues.sort_unstable();
            if queues.iter().enumerate().any(|(i, q)| usize::from(*q) != i) {
                return Err(format!(
                    "port {port}'s RX queues in --config are {queues:?}: they must be 0, 1, ... without gaps"
                ));
            }
        }
        let mut rx_lcores: Vec<u32> = config.iter().map(|q| q.lcore).collect();
        rx_lcores.sort_unstable();
        rx_lcores.dedup();
        let stage_lcores = match mode {
            Mode::RunToCompletion => None,
            Mode::Pipelined => {
                let spare: Vec<u32> = lcores
                    .iter()
                    .copied()
                    .filter(|l| !rx_lcores.contains(l))
                    .collect();
                if spare.len() < rx_lcores.len() {
                    return Err(format!(
                        "pipeline mode needs a stage lcore for each of the {} RX lcores {rx_lcores:?}, but only {spare:?} are free: give more lcores with -l",
                        rx_lcores.len()
                    ));
                }
                Some(spare[..rx_lcores.len()].to_vec())
            }
        };
        Ok(QueuePlan {
            ports: ports.to_vec(),
            config,
            rx_lcores,
            stage_lcores,
        })
    }

    /// How many lanes (one per RX lcore), and so TX queues per port.
    pub fn lanes_count(&self) -> usize {
        self.rx_lcores.len()
    }

    /// The ports to start: the RX queues the plan polls, a TX queue per lane.
    pub fn port_plans(&self) -> Vec<PortPlan> {
        self.ports
            .iter()
            .map(|&id| PortPlan {
                id,
                rx_queues: self.config.iter().filter(|q| q.port == id).count() as u16,
                tx_queues: self.lanes_count() as u16,
            })
            .collect()
    }

    /// The lanes, taking their queues from `ports`; `stages(lane)` builds each lane's stages
    /// (each lane is a worker with instances of its own). Prints which lcore does what.
    pub fn lanes<E: From<crate::Error>>(
        &self,
        ports: &mut Ports,
        mut stages: impl FnMut(usize) -> Result<Vec<Box<dyn Node>>, E>,
    ) -> Result<Vec<Lane>, E> {
        let mut lanes = Vec::new();
        for (index, &lcore) in self.rx_lcores.iter().enumerate() {
            let stage_lcore = self.stage_lcores.as_ref().map(|s| s[index]);
            let mut rx = Vec::new();
            for q in self.config.iter().filter(|q| q.lcore == lcore) {
                rx.push(ports.rx(q.port, q.queue)?);
                println!(
                    "lcore {lcore}: RX port {} queue {}{}",
                    q.port,
                    q.queue,
                    stage_lcore.map_or(String::new(), |s| format!(" -> lcore {s}: stages and TX"))
                );
            }
            let mut tx = Vec::new();
            for &port in &self.ports {
                tx.push(ports.tx(port, index as u16)?);
            }
            lanes.push(Lane {
                rx,
                tx,
                stages: stages(index)?,
                lcore,
                stage_lcore,
            });
        }
        Ok(lanes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_triples() {
        assert_eq!(
            parse("(0,0,1),(1,0,1)").unwrap(),
            vec![
                QueueConfig {
                    port: 0,
                    queue: 0,
                    lcore: 1
                },
                QueueConfig {
                    port: 1,
                    queue: 0,
                    lcore: 1
                }
            ]
        );
        assert_eq!(parse("(0,0,0)(1,1,2)").unwrap().len(), 2);
        for (bad, why) in [
            ("(0,0)", "'(0,0)' is not three numbers"),
            ("0,0,1", "must start with '('"),
            ("(0,0,1", "missing ')'"),
            ("(0,0,1),(0,0,2)", "appears twice"),
            ("(32,0,1)", "port '32'"),
            ("", "no triple"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains(why) && e.contains("malformed --config"),
                "{bad}: {e}"
            );
        }
    }
}
