//! One connection's life, owned in one place.
//!
//! A [`Link`] is the state one connection shares with the rest of the
//! crate: its phase (authenticating, open, closing, closed), its outgoing
//! backlog and its pending invokes. Everything that sends, closes or waits
//! goes through the link's one lock, so a close can never be lost between
//! two steps, and a reply always goes out on the connection its call came
//! in on (or nowhere, once that connection is gone). The [`driver`] is the
//! connection's single task: it reads, dispatches, writes the backlog, and
//! keeps the timers (heartbeat, auth wait, close grace, write stall).
//!
//! A frame's path, file by file:
//!
//! | step | where |
//! |---|---|
//! | read from the socket | `connection/lean_io.rs` (socket buffers), `connection/read.rs` |
//! | decoded (routing fields only, arguments kept raw) | the codec's `decode_envelope` (`core/src/codec.rs`), called from `dispatch.rs` |
//! | validated | `core/src/envelope.rs` (the shared rules), then `Codec::check` and the receive hook, from `dispatch.rs` |
//! | dispatched | `dispatch.rs`: event → `endpoint/listeners.rs`, call → `rpc.rs`, reply → the pending invoke on `connection/link.rs` |
//! | answered | `rpc.rs` (the procedure's result or error, encoded once) |
//! | queued | `connection/link.rs` (the bounded backlog), from `endpoint/send.rs` and `rpc.rs` |
//! | written | `connection/write.rs`, batched, one flush per batch |

pub(crate) mod driver;
pub(crate) mod lean_io;
mod link;
pub(crate) mod read;
mod write;

pub(crate) use link::{Link, Phase, PushError, Settle};

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Any WebSocket: a stream and sink of tungstenite messages. Plain TCP,
/// TLS, or an upgrade done by a web framework all fit.
pub trait Transport:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin + 'static
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin + 'static
{
}

use crate::protocol::CloseCode;

/// The end of a connection: its close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// This side closed it because the peer broke the WebSocket protocol:
    /// the peer may still be sending, so the socket should be drained
    /// before it is dropped (dropping unread data resets the connection,
    /// and the peer may never see the close frame).
    pub(crate) drain: bool,
}

impl Closed {
    pub(crate) fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Closed {
            code: code.0,
            reason: reason.into(),
            drain: false,
        }
    }
}
