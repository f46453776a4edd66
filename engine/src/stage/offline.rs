//! Stages outside a pipeline: frames given as bytes go through a stage as one burst, and each
//! comes back with its verdict and its bytes afterwards. For tests, fuzzing, and tools that
//! replay captures through a stage; the mbufs are real, from a pool of the caller's.

use super::{Action, Stage, Verdict};
use crate::mbuf::MAX_BURST;
use crate::mempool::Mempool;

/// Runs bursts of byte frames through stages.
pub struct Runner {
    pool: Mempool,
}

/// What became of one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The frame as the stage left it (rewritten in place, or turned into an answer).
    pub frame: Vec<u8>,
}

impl Runner {
    /// Frames are copied into mbufs of `pool`, which must hold the largest of them.
    pub fn new(pool: Mempool) -> Runner {
        Runner { pool }
    }

    /// `frames`, each with the port it arrived on, through `stage` as one burst (at most
    /// [`MAX_BURST`] frames); None if the pool cannot hold them.
    pub fn run(&self, stage: &mut dyn Stage, frames: &[(u16, &[u8])]) -> Option<Vec<Outcome>> {
        assert!(frames.len() <= MAX_BURST, "one burst at a time");
        let mut packets = Vec::with_capacity(frames.len());
        for &(port, bytes) in frames {
            let mut m = self.pool.alloc()?;
            if !m.extend_from_slice(bytes) {
                return None;
            }
            m.set_port(port);
            packets.push(m);
        }
        let mut actions = vec![Action::NEXT; packets.len()];
        stage.process(&mut packets, &mut actions);
        Some(
            packets
                .iter()
                .zip(&actions)
                .map(|(m, action)| Outcome {
                    verdict: action.verdict(),
                    frame: m.data().to_vec(),
                })
                .collect(),
        )
    }
}
