//! The parts of `sluice-l3fwd` that read outside input, as a library so that they are tested
//! and fuzzed (`fuzz/`) on their own: l3fwd's rule files, the neighbour file and the control
//! socket's commands.

pub mod control;
pub mod neighbours;
pub mod rules;
