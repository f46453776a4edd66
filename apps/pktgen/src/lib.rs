//! The parts of `sluice-pktgen` that read outside input, as a library so that they are tested
//! and fuzzed (`fuzz/`) on their own: field ranges, sizes, rates and stream files (`spec`),
//! pcap files to replay (`replay`), and received frames (`signature`); and the spoiling of
//! packets (`malformed`).

pub mod malformed;
pub mod replay;
pub mod signature;
pub mod spec;
