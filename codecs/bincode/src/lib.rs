//! bincode codec for ws-messaging: the fastest Rust-to-Rust wire format (work in progress).
#![deny(missing_docs)]

/// The codec (not implemented yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;
