//! The machine's topology (NUMA nodes, cores, PUs, from hwloc) and the placement plan: which
//! lcore does which piece of fast-path work.
//!
//! The plan is a pure function of (topology, lcores, work) so that it can be tested on
//! synthetic topologies. Its rules: work goes to an lcore on its port's NUMA node; one PU per
//! core is used before any SMT sibling; the main lcore stays free of fast-path work when
//! there are enough other lcores; and every choice it could not make as wished is noted.

use crate::error::Error;
use hwlocality::object::types::ObjectType;
use std::collections::BTreeSet;
use std::fmt::Write;

/// One processing unit (hardware thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pu {
    /// The OS's CPU number (what `-l` and taskset use).
    pub cpu: u32,
    /// The core it belongs to (hwloc's logical index: unique across the machine).
    pub core: u32,
    pub node: u32,
    /// Its place among its core's PUs: 0 for the first, 1 for the SMT sibling, ...
    pub smt_rank: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub pus: Vec<Pu>,
}

fn hwloc_error(what: impl std::fmt::Display) -> Error {
    Error::Config(format!("hwloc: {what}"))
}

impl Topology {
    /// This machine, as hwloc sees it.
    pub fn detect() -> Result<Topology, Error> {
        let topology = hwlocality::Topology::new().map_err(hwloc_error)?;
        Ok(Topology::from_hwloc(&topology))
    }

    /// A made-up machine from hwloc's synthetic description, e.g.
    /// `"pack:2 numa:1 core:4 pu:2"` (2 packages, each 1 NUMA node of 4 cores of 2 PUs).
    pub fn synthetic(description: &str) -> Result<Topology, Error> {
        let topology = hwlocality::Topology::builder()
            .from_synthetic(description)
            .map_err(|e| hwloc_error(format!("bad synthetic topology '{description}': {e}")))?
            .build()
            .map_err(hwloc_error)?;
        Ok(Topology::from_hwloc(&topology))
    }

    fn from_hwloc(topology: &hwlocality::Topology) -> Topology {
        let mut pus = Vec::new();
        for pu in topology.objects_with_type(ObjectType::PU) {
            let cpu = pu.os_index().unwrap_or(pu.logical_index()) as u32;
            let core = pu
                .first_ancestor_with_type(ObjectType::Core)
                .map_or(cpu, |c| c.logical_index() as u32);
            let node = pu
                .nodeset()
                .and_then(|n| n.first_set())
                .map_or(0, |i| usize::from(i) as u32);
            let smt_rank = pus.iter().filter(|p: &&Pu| p.core == core).count() as u32;
            pus.push(Pu {
                cpu,
                core,
                node,
                smt_rank,
            });
        }
        Topology { pus }
    }

    pub fn pu(&self, cpu: u32) -> Option<&Pu> {
        self.pus.iter().find(|p| p.cpu == cpu)
    }

    pub fn nodes(&self) -> Vec<u32> {
        self.pus
            .iter()
            .map(|p| p.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// `2 NUMA nodes, 8 cores, 16 PUs; node 0: cpus 0-7, node 1: cpus 8-15`
    pub fn describe(&self) -> String {
        let cores = self
            .pus
            .iter()
            .map(|p| p.core)
            .collect::<BTreeSet<_>>()
            .len();
        let nodes = self.nodes();
        let mut text = format!(
            "{} NUMA node(s), {cores} core(s), {} PU(s)",
            nodes.len(),
            self.pus.len()
        );
        for node in nodes {
            let cpus: Vec<u32> = self
                .pus
                .iter()
                .filter(|p| p.node == node)
                .map(|p| p.cpu)
                .collect();
            let _ = write!(text, "; node {node}: cpus {}", ranges(&cpus));
        }
        text
    }
}

/// `0-3,8` for [0, 1, 2, 3, 8].
fn ranges(values: &[u32]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

/// One piece of fast-path work to place: polling a queue, or running a lane's stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// What it is, for the explanation (`RX port 0 queue 1`).
    pub label: String,
    /// The NUMA node it should run on (its port's); None: anywhere.
    pub node: Option<u32>,
}

/// An EAL lcore and the CPU it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lcore {
    pub id: u32,
    pub cpu: u32,
}

/// Where each piece of work runs, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `lcores[i]` runs `work[i]`.
    pub lcores: Vec<u32>,
    /// One line per assignment, then what could not be done as wished.
    pub explanation: Vec<String>,
}

/// Places `work` on `lcores` (the first of which is the main lcore) on `topology`.
pub fn plan(topology: &Topology, lcores: &[Lcore], work: &[Work]) -> Result<Plan, Error> {
    let Some(main) = lcores.first().copied() else {
        return Err(Error::Config("no lcores to place work on".into()));
    };
    let describe = |l: &Lcore| match topology.pu(l.cpu) {
        Some(pu) => format!(
            "lcore {} (cpu {}, core {}, node {})",
            l.id, l.cpu, pu.core, pu.node
        ),
        None => format!("lcore {} (cpu {})", l.id, l.cpu),
    };
    let node_of = |l: &Lcore| topology.pu(l.cpu).map_or(0, |p| p.node);
    let keep_main_free = work.len() < lcores.len();
    // Preference order: first PUs of cores before SMT siblings, then by core; the main
    // lcore last of all (or not at all when it can stay free).
    let mut candidates: Vec<Lcore> = lcores
        .iter()
        .copied()
        .filter(|l| !(keep_main_free && l.id == main.id))
        .collect();
    candidates.sort_by_key(|l| {
        let pu = topology.pu(l.cpu);
        (
            l.id == main.id,
            pu.map_or(0, |p| p.smt_rank),
            pu.map_or(l.cpu, |p| p.core),
            l.cpu,
        )
    });
    let mut explanation = Vec::new();
    let mut notes = Vec::new();
    if keep_main_free {
        notes.push(format!(
            "main {} kept free of fast-path work",
            describe(&main)
        ));
    } else if lcores.len() > 1 || !work.is_empty() {
        notes.push(format!(
            "main {} also does fast-path work: {} piece(s) of work for {} lcore(s)",
            describe(&main),
            work.len(),
            lcores.len()
        ));
    }
    let mut load = vec![0u32; candidates.len()];
    let mut chosen = Vec::with_capacity(work.len());
    for item in work {
        let wanted = item.node;
        let on_node = |i: usize| wanted.is_none_or(|n| node_of(&candidates[i]) == n);
        let free_here = (0..candidates.len()).find(|&i| load[i] == 0 && on_node(i));
        let pick = match free_here {
            Some(i) => i,
            None => {
                let free_elsewhere = (0..candidates.len()).find(|&i| load[i] == 0);
                match free_elsewhere {
                    Some(i) => {
                        notes.push(format!(
                            "{} wants node {}, which has no free lcore: placed on node {} (memory crosses NUMA nodes)",
                            item.label,
                            wanted.unwrap_or(0),
                            node_of(&candidates[i])
                        ));
                        i
                    }
                    None => {
                        let i = (0..candidates.len())
                            .filter(|&i| on_node(i))
                            .min_by_key(|&i| load[i])
                            .or_else(|| (0..candidates.len()).min_by_key(|&i| load[i]))
                            .expect("at least the main lcore");
                        notes.push(format!(
                            "{} shares lcore {} with other work: more work than lcores",
                            item.label, candidates[i].id
                        ));
                        i
                    }
                }
            }
        };
        load[pick] += 1;
        let lcore = candidates[pick];
        if topology.pu(lcore.cpu).is_some_and(|p| p.smt_rank > 0) {
            notes.push(format!(
                "{} runs on an SMT sibling (lcore {}): every core's first PU is taken",
                item.label, lcore.id
            ));
        }
        explanation.push(format!("{} -> {}", item.label, describe(&lcore)));
        chosen.push(lcore.id);
    }
    explanation.extend(notes);
    Ok(Plan {
        lcores: chosen,
        explanation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 packages x 1 NUMA node x 4 cores x 2 PUs: hwloc numbers PUs in order, so node 0 has
    /// cpus 0-7 (core 0: cpus 0,1; core 1: cpus 2,3; ...) and node 1 cpus 8-15.
    fn two_sockets() -> Topology {
        Topology::synthetic("pack:2 numa:1 core:4 pu:2").unwrap()
    }

    fn lcores(cpus: &[u32]) -> Vec<Lcore> {
        cpus.iter().map(|&c| Lcore { id: c, cpu: c }).collect()
    }

    fn work(items: &[(&str, Option<u32>)]) -> Vec<Work> {
        items
            .iter()
            .map(|(l, n)| Work {
                label: l.to_string(),
                node: *n,
            })
            .collect()
    }

    #[test]
    fn synthetic_topology_has_nodes_cores_and_smt_siblings() {
        let t = two_sockets();
        assert_eq!(t.pus.len(), 16);
        assert_eq!(t.nodes(), vec![0, 1]);
        assert_eq!(
            t.pu(0).unwrap(),
            &Pu {
                cpu: 0,
                core: 0,
                node: 0,
                smt_rank: 0
            }
        );
        assert_eq!(
            t.pu(1).unwrap(),
            &Pu {
                cpu: 1,
                core: 0,
                node: 0,
                smt_rank: 1
            }
        );
        assert_eq!(
            t.pu(9).unwrap(),
            &Pu {
                cpu: 9,
                core: 4,
                node: 1,
                smt_rank: 1
            }
        );
        assert_eq!(
            t.describe(),
            "2 NUMA node(s), 8 core(s), 16 PU(s); node 0: cpus 0-7; node 1: cpus 8-15"
        );
    }

    #[test]
    fn bad_synthetic_description_is_an_error() {
        let e = Topology::synthetic("pack:two").unwrap_err();
        assert!(e.to_string().contains("bad synthetic topology"), "{e}");
    }

    #[test]
    fn this_machine_is_detected() {
        let t = Topology::detect().unwrap();
        assert!(!t.pus.is_empty());
        assert!(!t.nodes().is_empty());
    }

    #[test]
    fn work_goes_to_its_ports_node_one_pu_per_core_first_main_kept_free() {
        let t = two_sockets();
        let all: Vec<u32> = (0..16).collect();
        let items = work(&[
            ("RX port 0 queue 0", Some(0)),
            ("RX port 0 queue 1", Some(0)),
            ("RX port 1 queue 0", Some(1)),
            ("RX port 1 queue 1", Some(1)),
        ]);
        let p = plan(&t, &lcores(&all), &items).unwrap();
        // Node 0: first PUs of cores 1 and 2 (cpu 0 is main, kept free); node 1: cores 4, 5.
        assert_eq!(p.lcores, vec![2, 4, 8, 10]);
        assert!(
            p.explanation
                .iter()
                .any(|l| l.contains("main lcore 0") && l.contains("kept free")),
            "{p:?}"
        );
        assert_eq!(
            p.explanation[2],
            "RX port 1 queue 0 -> lcore 8 (cpu 8, core 4, node 1)"
        );
    }

    #[test]
    fn smt_siblings_only_when_every_core_is_taken() {
        let t = two_sockets();
        let node0: Vec<u32> = (0..8).collect();
        let items: Vec<Work> = (0..5)
            .map(|q| Work {
                label: format!("q{q}"),
                node: Some(0),
            })
            .collect();
        let p = plan(&t, &lcores(&node0), &items).unwrap();
        // Cores 1-3 (cpus 2, 4, 6), then the main core's sibling (cpu 1), then core 1's (cpu 3).
        assert_eq!(p.lcores, vec![2, 4, 6, 1, 3]);
        assert!(
            p.explanation
                .iter()
                .any(|l| l.contains("q3 runs on an SMT sibling (lcore 1)")),
            "{p:?}"
        );
    }

    #[test]
    fn a_port_on_node_1_without_lcores_there_is_placed_across_and_said_so() {
        let t = two_sockets();
        let p = plan(
            &t,
            &lcores(&[0, 2, 4]),
            &work(&[("RX port 1 queue 0", Some(1))]),
        )
        .unwrap();
        assert_eq!(p.lcores, vec![2]);
        assert!(
            p.explanation
                .iter()
                .any(|l| l.contains("wants node 1, which has no free lcore")),
            "{p:?}"
        );
    }

    #[test]
    fn one_lcore_does_everything_and_says_so() {
        let t = Topology::synthetic("pack:1 numa:1 core:2 pu:1").unwrap();
        let items = work(&[("RX port 0 queue 0", None), ("stage lane 0", None)]);
        let p = plan(&t, &lcores(&[0]), &items).unwrap();
        assert_eq!(p.lcores, vec![0, 0]);
        assert!(
            p.explanation
                .iter()
                .any(|l| l.contains("main lcore 0") && l.contains("also does")),
            "{p:?}"
        );
        assert!(
            p.explanation
                .iter()
                .any(|l| l.contains("stage lane 0 shares lcore 0")),
            "{p:?}"
        );
    }

    #[test]
    fn main_lcore_works_only_when_lcores_run_short() {
        let t = Topology::synthetic("pack:1 numa:1 core:2 pu:1").unwrap();
        let p = plan(&t, &lcores(&[0, 1]), &work(&[("a", None), ("b", None)])).unwrap();
        assert_eq!(p.lcores, vec![1, 0]);
        let p = plan(&t, &lcores(&[0, 1]), &work(&[("a", None)])).unwrap();
        assert_eq!(p.lcores, vec![1]);
    }

    #[test]
    fn no_lcores_is_an_error() {
        assert!(plan(&two_sockets(), &[], &[]).is_err());
    }
}
