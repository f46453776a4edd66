//! Zero-copy header views over byte slices, in the style of smoltcp's `wire`: a view wraps a
//! buffer, its checked constructor returns [`Truncated`] rather than panicking, each field has
//! one accessor, and a `Repr` parses and emits the header. Pure Rust: no DPDK here.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vlan;

use std::fmt;

/// The buffer is shorter than the header it should hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("packet truncated")
    }
}

impl std::error::Error for Truncated {}
