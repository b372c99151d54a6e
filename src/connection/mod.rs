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
//! | decoded (routing fields only, arguments kept raw) | the codec's `decode_envelope` (`core/src/codec.rs`), called from `endpoint/receive.rs` |
//! | validated | `core/src/envelope.rs` (the shared rules), then `Codec::check` and the receive hook, from `endpoint/receive.rs` |
//! | dispatched | `endpoint/receive.rs`: event → `endpoint/listeners.rs`, call → `endpoint/rpc.rs`, reply → the pending invoke on `connection/link.rs` |
//! | answered | `endpoint/rpc.rs` (the procedure's result or error, encoded once) |
//! | queued | `connection/link.rs` (the bounded backlog), from `endpoint/send.rs` and `endpoint/rpc.rs` |
//! | written | `connection/write.rs`, batched, one flush per batch |

pub(crate) mod driver;
pub(crate) mod lean_io;
mod link;
pub(crate) mod read;
mod write;

pub(crate) use link::{detach, Link, Phase, PushError, Settle};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::events::LocalEvent;

/// What the connection's task needs of the endpoint it serves, and no more:
/// the connection layer knows nothing of codecs, handlers or servers.
pub(crate) trait Owner: Send + Sync {
    /// Handles one incoming data frame of `link` (decode, validate,
    /// dispatch); `text`: it came in a text frame.
    fn receive(&self, link: &Arc<Link>, data: Bytes, text: bool);
    /// Emits a local event (ping, pong, error).
    fn emit(&self, event: LocalEvent);
    /// The next heartbeat ping: its invoke id and frame; `None` when it
    /// cannot be sent now (the send hook refused it).
    fn ping_message(&self) -> Option<(u64, Message)>;
    /// Counts data frames read and written since the last count, and the
    /// change of the backlog's length (feature `metrics`).
    #[cfg(feature = "metrics")]
    fn count(&self, counts: &Counts, backlog: i64) {
        let _ = (counts, backlog);
    }
}

/// What a connection's task counted since it last reported (feature
/// `metrics`): reported once per wake-up, not per frame.
#[cfg(feature = "metrics")]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) frames_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    /// The backlog's length last reported.
    pub(crate) backlog: usize,
}

/// How a connection's task runs: its timers, and whether its reads pause
/// at its backlog's soft mark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// How long the socket may take no byte while frames wait.
    pub(crate) write_timeout: Duration,
    /// The heartbeat's interval (zero: no heartbeat) and its reply's wait.
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    /// Stop reading while the backlog is past its soft mark (servers; a
    /// client always reads, so that two peers never both wait).
    pub(crate) pause_reads: bool,
    /// A client's wait for the `connect` event (closed with 4008 `Auth
    /// timeout` after it).
    pub(crate) auth_wait: Option<Duration>,
}

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
