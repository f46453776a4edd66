//! Sluice: a kernel-bypass packet engine on DPDK.
//!
//! The EAL starts once per process ([`eal`]); pktmbuf pools ([`mempool`]) feed ports
//! ([`port`]) whose RX and TX queues are each owned by one worker ([`worker`]); packets move
//! as owned [`mbuf::Mbuf`]s in [`mbuf::Burst`]s and are read and rewritten in place through
//! the zero-copy header views of [`net`]. Counters and drop reasons are in [`stats`].
//!
//! FFI lives in this crate's thin wrappers; everything built on them is safe Rust.

pub mod app;
pub mod cache;
pub mod clock;
pub mod eal;
pub mod error;
pub mod hugemem;
pub mod mbuf;
pub mod mempool;
pub mod meter;
pub mod net;
pub mod pipeline;
pub mod port;
pub mod ring;
pub mod rss;
pub mod stage;
pub mod stats;
pub mod topology;
pub mod worker;

pub use eal::{Eal, EalBuilder};
pub use error::Error;
pub use mbuf::{Burst, Mbuf, MAX_BURST};
pub use mempool::Mempool;
pub use port::{Port, PortConfig, RxQueue, TxQueue};
