//! sluice-kv, the appliance on the engine: the messages of docs/protocol.md as zero-copy views
//! with parse and emit, the handshake's cookie, one worker's store and server state machine,
//! the stage that serves them on a worker, and the client over kernel sockets that
//! `sluice-kv-cli` uses.

pub mod client;
pub mod cookie;
pub mod protocol;
pub mod server;
mod sessions;
pub mod stage;
pub mod store;
