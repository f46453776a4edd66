//! Stages: the steps a burst goes through between RX and TX, as nodes in VPP.
//!
//! A stage sees a whole burst and decides, for each packet, one [`Action`]: go on to the next
//! stage, leave by a port, or be dropped for a counted reason. It may rewrite packets in place.
//! The pipeline does the moving; stages are safe Rust.

use crate::mbuf::Mbuf;
use crate::net::ethernet::{Address, Frame};
use crate::stats::DropReason;

/// What becomes of one packet after a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// On to the next stage (after the last one: dropped as `no_output`).
    Next,
    /// Out of this port, by the TX queue the worker owns for it.
    Tx(u16),
    /// Dropped and counted under the reason.
    Drop(DropReason),
}

/// One step of the pipeline. Each worker has its own instance, so `&mut self` state is
/// per-worker and needs no locking.
pub trait Stage: Send {
    /// Names the stage in statistics.
    fn name(&self) -> &str;

    /// Decides an action for every packet: `actions[i]` is for `packets[i]` and starts as
    /// [`Action::Next`].
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
    /// (source, destination) MACs to write, when MAC updating is on.
    rewrite: Option<(Address, Address)>,
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
            let rewrite = mac.map(|src| (src, Address([2, 0, 0, 0, 0, tx as u8])));
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
        for (m, action) in packets.iter_mut().zip(actions.iter_mut()) {
            let Some(Some(route)) = self.routes.get(usize::from(m.port())) else {
                *action = Action::Drop(DropReason::NoOutput);
                continue;
            };
            *action = match route.rewrite {
                None => Action::Tx(route.tx),
                Some((src, dst)) => match Frame::new_checked(m.data_mut()) {
                    Ok(mut frame) => {
                        frame.set_src_addr(src);
                        frame.set_dst_addr(dst);
                        Action::Tx(route.tx)
                    }
                    Err(_) => Action::Drop(DropReason::Truncated),
                },
            };
        }
    }
}
