//! Error types a caller can match on (the runtime's; the codec-side errors,
//! [`CodecError`], [`CheckError`](crate::CheckError) and
//! [`PreprocessError`], come from ws-messaging-core).
//!
//! Every error keeps what caused it: a codec error holds the format
//! library's own error (reach it with [`SharedError::downcast_ref`] or
//! [`std::error::Error::source`]), a refused send holds the hook's
//! [`HandlerError`], a client that gave up holds its last attempt's
//! [`AttemptError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

// The codec-side errors live in ws-messaging-core (the crate root
// re-exports them); the runtime's modules reach them here too.
pub(crate) use ws_messaging_core::{CodecError, PreprocessError, SharedError};

/// The error name (and, with the default formatter, the wire value) of a
/// call that no procedure takes.
const NO_PROCEDURE: &str = "NoProcedureError";
/// The error a server answers a call over its rate limit with.
pub(crate) const RATE_LIMITED: &str = "RateLimitError";

/// A server's [`Adapter`](crate::adapter::Adapter) could not reach the
/// other nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The adapter has lost its bus (the Redis connection, say) and is
    /// reconnecting: nothing was sent, to this node or any other.
    #[error("the adapter is not connected to the other nodes ({0}); nothing was sent")]
    Unavailable(String),
    /// The adapter's queue towards the bus is full: nothing was sent.
    #[error("the adapter's queue towards the other nodes is full; nothing was sent")]
    Full,
    /// Not every node answered a query in time.
    #[error("{missing} node(s) did not answer within {timeout:?}")]
    Timeout {
        /// How many nodes did not answer.
        missing: usize,
        /// How long they had.
        timeout: Duration,
    },
    /// Any other failure.
    #[error("{0}")]
    Other(#[source] SharedError),
}

/// The failure of a `send` (an event, or the request half of an `invoke`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Not connected (or no longer connected): nothing was sent. A
    /// [`Client`](crate::Client) between connections can wait for the
    /// next one with [`Client::connected`](crate::Client::connected).
    #[error("not connected: the message was not sent (a client can wait for its connection with `connected()`)")]
    Connection,
    /// The arguments could not be encoded.
    #[error("could not encode the message: {0}")]
    Encode(#[source] CodecError),
    /// The send hook refused the message with this error.
    #[error("the send hook refused the message: {0}")]
    Refused(HandlerError),
    /// The backlog stayed full for the whole `write_timeout`: the peer was
    /// closed (4009) and nothing was sent.
    #[error("the peer did not read for the whole write timeout: it was closed and the message not sent")]
    Timeout,
    /// The backlog was past its limits when a frame had to be queued
    /// without waiting: the peer was closed as a slow consumer (4009).
    #[error("the peer's backlog is full: it was closed as a slow consumer")]
    SlowConsumer,
    /// The name is one of the reserved names (`connect`, `close`, `open`,
    /// `error`, `ping`, `pong`, `retry`) or empty.
    #[error("`{0}` is reserved or empty and cannot be used as an event or procedure name")]
    ReservedName(String),
    /// The server's adapter refused to carry a send to the other nodes;
    /// nothing was sent to any connection.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// A client with a recovery session keeps what it sends until the
    /// server has it, and its outbox is full (1,000 events or 1 MiB):
    /// nothing was sent. The server has been unreachable for a while.
    #[error("the outbox of events kept for the server is full (1,000 events or 1 MiB): nothing was sent")]
    Backlog,
}

/// The failure of an [`invoke`](crate::Endpoint::invoke).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The client (or connection) was not connected when the invoke was
    /// made: nothing was sent, and the call can be made again once
    /// connected. A [`Client`](crate::Client) between connections can wait
    /// for the next one with [`Client::connected`](crate::Client::connected).
    #[error("not connected: the invoke was not sent (a client can wait for its connection with `connected()`)")]
    NotConnected,
    /// The connection closed after the invoke was made and before the
    /// reply arrived: the peer may or may not have run it. `id` is the
    /// invoke's id when one was assigned.
    #[error("connection closed before invoke {} was answered", id.map_or("(unsent)".to_string(), |id| format!("#{id}")))]
    Connection {
        /// The invoke id, if one was assigned.
        id: Option<u64>,
    },
    /// No reply arrived within the timeout.
    #[error("invoke #{id} timed out waiting for a reply")]
    Timeout {
        /// The invoke id.
        id: u64,
    },
    /// The peer has no procedure of that name: it answered
    /// `"NoProcedureError"`, the protocol's error for a call no handler
    /// takes ([`remote_value`](Self::remote_value) gives that wire value).
    #[error("the peer has no procedure `{name}` (NoProcedureError): check the name, and that the peer registers it before it is called")]
    NoProcedure {
        /// The name invoked.
        name: String,
    },
    /// The server refused the call: the connection sends faster than its
    /// rate limit allows (it answered `"RateLimitError"`; see
    /// [`RateLimit`](crate::RateLimit)). The call did not run: send it
    /// again later, more slowly.
    #[error(
        "the server refused the invoke of `{name}`: over its rate limit (RateLimitError); slow down and try again"
    )]
    RateLimited {
        /// The name invoked.
        name: String,
    },
    /// The peer answered with an error; this is its wire value (for a
    /// JavaScript peer with the default formatter, a string such as
    /// `"Error: Some error"`).
    #[error("the peer answered with an error: {0}")]
    Remote(serde_json::Value),
    /// The reply's result could not be decoded into the requested type.
    #[error("could not decode the result of the invoke: {0}")]
    Decode(#[source] CodecError),
    /// The call was not sent: its name is reserved, its arguments do not
    /// encode, or the send hook refused it.
    #[error("the invoke was not sent: {0}")]
    Send(#[source] SendError),
}

impl InvokeError {
    pub(crate) fn from_send(error: SendError, id: Option<u64>) -> Self {
        match error {
            SendError::Connection => InvokeError::NotConnected,
            SendError::SlowConsumer => InvokeError::Connection { id },
            SendError::Timeout => match id {
                Some(id) => InvokeError::Timeout { id },
                None => InvokeError::Connection { id },
            },
            other => InvokeError::Send(other),
        }
    }

    /// The error the peer answered with, as it was on the wire:
    /// [`Remote`](Self::Remote)'s value, and `"NoProcedureError"` for
    /// [`NoProcedure`](Self::NoProcedure); `None` for errors of this side.
    pub fn remote_value(&self) -> Option<serde_json::Value> {
        match self {
            InvokeError::Remote(value) => Some(value.clone()),
            InvokeError::NoProcedure { .. } => Some(serde_json::Value::from(NO_PROCEDURE)),
            InvokeError::RateLimited { .. } => Some(serde_json::Value::from(RATE_LIMITED)),
            _ => None,
        }
    }

    /// The error for the peer's answer `value` to an invoke of `name`.
    pub(crate) fn remote(name: &str, value: serde_json::Value) -> Self {
        if value.as_str() == Some(NO_PROCEDURE) {
            InvokeError::NoProcedure { name: name.to_string() }
        } else if value.as_str() == Some(RATE_LIMITED) {
            InvokeError::RateLimited { name: name.to_string() }
        } else {
            InvokeError::Remote(value)
        }
    }

    /// The invoke id carried by a connection or timeout error.
    pub fn id(&self) -> Option<u64> {
        match self {
            InvokeError::Connection { id } => *id,
            InvokeError::Timeout { id } => Some(*id),
            _ => None,
        }
    }
}

/// A registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A procedure with this name is already registered (one handler per name).
    #[error("can't register a duplicate RPC handler for `{0}`")]
    Duplicate(String),
    /// The name is reserved or empty.
    #[error("`{0}` is reserved or empty and cannot be used as a procedure name")]
    ReservedName(String),
}

/// Why a [`Client`](crate::Client) could not connect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server refused the auth value (close code 4003); the reason is the
    /// server's text, e.g. `bad token`. The client will not reconnect.
    #[error("the server refused the connection ({code}): {reason}")]
    Refused {
        /// The close code (4003).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The client gave up reconnecting after its retries (or reconnecting
    /// is off); `last` is how the last attempt ended.
    #[error("gave up connecting: {last}")]
    GaveUp {
        /// How the last attempt ended.
        #[source]
        last: AttemptError,
    },
    /// The client was closed by the user before it connected.
    #[error("the client was closed")]
    Closed,
    /// [`Client::connected`](crate::Client::connected) on a client that
    /// was never started: nothing is connecting.
    #[error("the client was never started: call `connect()` (or `reconnect()`) first")]
    NotStarted,
    /// The URL is unusable.
    #[error("invalid URL `{url}`: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        #[source]
        source: SharedError,
    },
    /// The auth value does not encode with the client's codec.
    #[error("the auth value does not encode: {0}")]
    Auth(#[source] CodecError),
    /// A header given to [`ClientBuilder::header`](crate::ClientBuilder::header)
    /// (or a subprotocol) is not a valid HTTP header.
    #[error("invalid header `{name}`: {source}")]
    Header {
        /// The header name.
        name: String,
        /// What is wrong with it.
        #[source]
        source: SharedError,
    },
}

/// How one connection attempt of a [`Client`](crate::Client) ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The WebSocket could not be opened: refused, unreachable, or a
    /// failed HTTP upgrade. Holds the WebSocket library's error.
    #[error("could not open the WebSocket: {0}")]
    Open(#[source] SharedError),
    /// The WebSocket did not open within the connect timeout
    /// ([`ClientBuilder::connect_timeout`](crate::ClientBuilder::connect_timeout),
    /// default the `ack_timeout`).
    #[error("the WebSocket did not open within {0:?}")]
    OpenTimeout(Duration),
    /// The auth provider ([`ClientBuilder::auth_with`](crate::ClientBuilder::auth_with))
    /// failed, or its value did not encode.
    #[error("no auth value for this attempt: {0}")]
    Auth(#[source] SharedError),
    /// The connection closed with this code and reason (1006: it broke
    /// without a close frame).
    #[error("closed with {code} {reason}")]
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// Why a [`Server`](crate::Server) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding or reading the listener's address failed.
    #[error("could not listen: {0}")]
    Io(#[from] std::io::Error),
}

/// The error a procedure handler, a connection hook or a receive hook fails with.
///
/// Like a JavaScript `Error`, it has a `name` (default `"Error"`) and a
/// `message`; the default error formatter turns it into the wire string
/// `"{name}: {message}"` (just `name` when the message is empty, just
/// `message` when the name is), which is what JavaScript's `String(error)`
/// gives. A handler may instead carry an
/// explicit wire value with [`HandlerError::value`].
///
/// Any `std::error::Error` converts into it, so `?` works in handlers; and
/// `?` carries it into `Box<dyn Error>` (it cannot implement
/// `std::error::Error` itself: with every error converting into it, that
/// impl would overlap with `From<T> for T`).
///
/// ```
/// fn setup() -> Result<(), ws_messaging::HandlerError> {
///     Err(ws_messaging::HandlerError::new("no database"))
/// }
/// fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     setup()?;
///     Ok(())
/// }
/// assert_eq!(run().unwrap_err().to_string(), "Error: no database");
/// ```
///
/// ```
/// use ws_messaging::HandlerError;
/// let e = HandlerError::new("Some error");
/// assert_eq!(e.to_string(), "Error: Some error");
/// let parse: Result<i32, _> = "x".parse::<i32>();
/// let e: HandlerError = parse.unwrap_err().into();
/// assert_eq!(e.to_string(), "Error: invalid digit found in string");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerError {
    name: String,
    message: String,
    value: Option<serde_json::Value>,
}

impl HandlerError {
    /// An error named `Error` with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self::named("Error", message)
    }

    /// A bare text error, as when JavaScript code throws a string: its
    /// text is exactly `message`, with no `Error: ` prefix.
    ///
    /// ```
    /// assert_eq!(ws_messaging::HandlerError::text("bad token").to_string(), "bad token");
    /// ```
    pub fn text(message: impl Into<String>) -> Self {
        Self::named("", message)
    }

    /// An error with a name of its own (as a JavaScript error subclass has).
    pub fn named(name: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            name: name.into(),
            message: message.into(),
            value: None,
        }
    }

    /// An error that goes on the wire as exactly this value, e.g. an object
    /// `{"code": 404}`, with the default formatter.
    pub fn value(value: serde_json::Value) -> Self {
        let message = value.to_string();
        HandlerError {
            name: "Error".into(),
            message,
            value: Some(value),
        }
    }

    /// The error's name (`Error` unless set).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The explicit wire value, if one was given.
    pub fn wire_value(&self) -> Option<&serde_json::Value> {
        self.value.as_ref()
    }

    pub(crate) fn no_procedure() -> Self {
        Self::named(NO_PROCEDURE, "")
    }

    pub(crate) fn rate_limited() -> Self {
        Self::named(RATE_LIMITED, "")
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.name)
        } else if self.name.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.name, self.message)
        }
    }
}

impl<E: Error> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::new(error.to_string())
    }
}

/// A [`HandlerError`] as a `std::error::Error` (see the `From` impls below).
#[derive(Debug)]
struct HandlerFailure(HandlerError);

impl fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for HandlerFailure {}

impl From<HandlerError> for Box<dyn Error + Send + Sync> {
    fn from(error: HandlerError) -> Self {
        Box::new(HandlerFailure(error))
    }
}

impl From<HandlerError> for Box<dyn Error> {
    fn from(error: HandlerError) -> Self {
        Box::new(HandlerFailure(error))
    }
}
