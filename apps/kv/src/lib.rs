//! sluice-kv, the appliance on the engine (issue 14). So far its protocol: the messages of
//! docs/protocol.md as zero-copy views with parse and emit, and the handshake's cookie.

pub mod cookie;
pub mod protocol;
