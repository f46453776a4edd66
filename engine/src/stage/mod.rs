//! Stages: the steps a burst goes through between RX and TX, as nodes in VPP.
//!
//! A stage sees a whole burst and decides, for each packet, one [`Action`]: go on to the next
//! stage, leave by a port, or be dropped for a counted reason. It may rewrite packets in place.
//! The pipeline does the moving; stages are safe Rust.

pub mod offline;
pub mod router;
pub mod table;
mod time_exceeded;

use crate::mbuf::Mbuf;
use crate::net::ethernet::{Address, AddressPair, Frame};
use crate::stats::DropReason;

/// What becomes of one packet after a stage, as a compact code (like VPP's next index):
/// filling and comparing a burst's actions are then plain integer operations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Action(u32);

/// An [`Action`] taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On to the next stage (after the last one: dropped as `no_output`).
    Next,
    /// Out of this port, by the TX queue the worker owns for it.
    Tx(u16),
    /// Dropped and counted under the reason.
    Drop(DropReason),
}

const KIND_SHIFT: u32 = 16;
const KIND_TX: u32 = 1 << KIND_SHIFT;
const KIND_DROP: u32 = 2 << KIND_SHIFT;

impl Action {
    /// On to the next stage.
    pub const NEXT: Action = Action(0);

    /// Out of `port`.
    pub const fn tx(port: u16) -> Action {
        Action(KIND_TX | port as u32)
    }

    /// Dropped for `reason`.
    pub const fn drop(reason: DropReason) -> Action {
        Action(KIND_DROP | reason as u32)
    }

    /// The one action all of `actions` share, if they do. Branch-free over the slice (an OR of
    /// XORs, which vectorises): it runs on every burst.
    #[inline]
    pub fn uniform(actions: &[Action]) -> Option<Action> {
        let first = *actions.first()?;
        let differ = actions.iter().fold(0, |acc, a| acc | (a.0 ^ first.0));
        (differ == 0).then_some(first)
    }

    pub fn verdict(self) -> Verdict {
        match self.0 & !0xffff {
            0 => Verdict::Next,
            KIND_TX => Verdict::Tx(self.0 as u16),
            _ => Verdict::Drop(DropReason::ALL[(self.0 & 0xffff) as usize]),
        }
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.verdict().fmt(f)
    }
}

/// One step of the pipeline. Each worker has its own instance, so `&mut self` state is
/// per-worker and needs no locking.
pub trait Stage: Send {
    /// Names the stage in statistics.
    fn name(&self) -> &str;

    /// Decides an action for every packet: `actions[i]` is for `packets[i]` and starts as
    /// [`Action::NEXT`].
    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]);
}

/// l2fwd's forwarding: a packet that arrived on port P leaves by `partner[P]`; with MAC
/// updating its source MAC becomes that port's and its destination 02:00:00:00:00:TX_PORT.
pub struct L2Forward {
    /// Indexed by RX port id.
    routes: Vec<Option<L2Route>>,
}

#[derive(Clone, Copy)]
struct L2Route {
    tx: u16,
    /// The MACs to write, when MAC updating is on.
    rewrite: Option<AddressPair>,
}

impl L2Forward {
    /// `routes`: (RX port, TX port, MAC of the TX port if MACs are to be rewritten).
    pub fn new(routes: &[(u16, u16, Option<Address>)]) -> L2Forward {
        let size = routes
            .iter()
            .map(|r| usize::from(r.0) + 1)
            .max()
            .unwrap_or(0);
        let mut table = vec![None; size];
        for &(rx, tx, mac) in routes {
            let rewrite = mac.map(|src| AddressPair::new(Address([2, 0, 0, 0, 0, tx as u8]), src));
            table[usize::from(rx)] = Some(L2Route { tx, rewrite });
        }
        L2Forward { routes: table }
    }
}

impl Stage for L2Forward {
    fn name(&self) -> &str {
        "l2fwd"
    }

    fn process(&mut self, packets: &mut [Mbuf], actions: &mut [Action]) {
        // A poll's burst comes from one port: look the route up once per run of packets
        // from the same port, not once per packet.
        let mut start = 0;
        while start < packets.len() {
            let port = packets[start].port();
            let run = packets[start..]
                .iter()
                .take_while(|m| m.port() == port)
                .count();
            let (group, verdicts) = (
                &mut packets[start..start + run],
                &mut actions[start..start + run],
            );
            start += run;
            let Some(Some(route)) = self.routes.get(usize::from(port)) else {
                verdicts.fill(Action::drop(DropReason::NoOutput));
                continue;
            };
            let Some(addresses) = route.rewrite else {
                verdicts.fill(Action::tx(route.tx));
                continue;
            };
            for (m, verdict) in group.iter_mut().zip(verdicts) {
                *verdict = match Frame::new_checked(m.data_mut()) {
                    Ok(mut frame) => {
                        frame.set_addresses(&addresses);
                        Action::tx(route.tx)
                    }
                    Err(_) => Action::drop(DropReason::Truncated),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_encode_and_decode() {
        assert_eq!(Action::NEXT.verdict(), Verdict::Next);
        assert_eq!(Action::tx(0).verdict(), Verdict::Tx(0));
        assert_eq!(Action::tx(u16::MAX).verdict(), Verdict::Tx(u16::MAX));
        for reason in DropReason::ALL {
            assert_eq!(Action::drop(reason).verdict(), Verdict::Drop(reason));
        }
        assert_ne!(Action::tx(1), Action::tx(2));
        assert_ne!(Action::tx(0), Action::NEXT);
        assert_eq!(format!("{:?}", Action::tx(3)), "Tx(3)");
        assert_eq!(Action::uniform(&[Action::tx(1); 5]), Some(Action::tx(1)));
        assert_eq!(
            Action::uniform(&[Action::tx(1), Action::tx(1), Action::tx(2)]),
            None
        );
        assert_eq!(Action::uniform(&[]), None);
    }
}
