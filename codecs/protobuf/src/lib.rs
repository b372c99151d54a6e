//! Protocol Buffers codec for ws-messaging (prost), wire-compatible with protobufjs (work in progress).
#![deny(missing_docs)]

/// The codec (not implemented yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;
