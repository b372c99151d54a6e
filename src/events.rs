//! Local events, observable with [`Endpoint::events`](crate::Endpoint::events).

use bytes::Bytes;

/// Something that happened to a connection, on this side.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LocalEvent {
    /// The WebSocket opened (client side, before auth).
    Open,
    /// Auth accepted: the server's reply, still encoded; decode it with
    /// [`Endpoint::decode`](crate::Endpoint::decode). On a server-side
    /// endpoint, emitted when the connection hook accepted the client.
    Connect(Bytes),
    /// The connection closed.
    Close {
        /// The close code (1005 when the peer's close frame had none, 1006
        /// when the socket ended without a close frame). It compares with
        /// the constants of [`CloseCode`](crate::CloseCode)
        /// (`code == CloseCode::GOING_AWAY`).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A transport error, or a listener whose arguments did not decode.
    Error(String),
    /// A reconnect attempt starts (1-based).
    Retry(u32),
    /// A heartbeat ping was sent.
    Ping,
    /// The peer answered a heartbeat ping.
    Pong,
    /// The peer refused one of our frames; its formatted error.
    PreprocessingError(serde_json::Value),
    /// The connection's outgoing backlog was past its limits when a frame
    /// had to be queued without waiting (a broadcast, a reply): the peer
    /// does not read fast enough, and the connection is being closed with
    /// 4009 `Slow consumer`. The backlog's size at that moment.
    SlowConsumer {
        /// Frames waiting to be written.
        frames: usize,
        /// Their payload bytes.
        bytes: usize,
    },
}
