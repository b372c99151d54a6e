//! MessagePack codec for ws-messaging (rmp-serde), wire-compatible with msgpack-lite (work in progress).
#![deny(missing_docs)]

/// The codec (not implemented yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;
