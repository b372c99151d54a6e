//! CBOR codec for ws-messaging (ciborium), wire-compatible with cbor-x (work in progress).
#![deny(missing_docs)]

/// The codec (not implemented yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cbor;
