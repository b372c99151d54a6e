//! Error types a caller can match on.

use std::fmt;

/// A codec could not encode or decode a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A value could not be encoded in the codec's format.
    #[error("encode error: {0}")]
    Encode(String),
    /// Bytes could not be decoded as the codec's format or as the requested type.
    #[error("decode error: {0}")]
    Decode(String),
}

/// Why a received frame was refused before dispatch.
///
/// The refusal is reported to the peer as a `preprocessingError` event whose
/// argument is the formatted error, and the connection carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// The frame is not valid in the codec's format.
    #[error("{0}")]
    Decode(CodecError),
    /// The frame decoded but is not a valid envelope.
    #[error("Validation error")]
    Validation,
    /// The receive hook (or a schema-validating codec) refused the frame.
    #[error("{0}")]
    Refused(String),
}

/// The failure of a `send` (an event, or the request half of an `invoke`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Not connected (or no longer connected): nothing was sent.
    #[error("not connected: the message was not sent")]
    Connection,
    /// The arguments could not be encoded.
    #[error("could not encode the message: {0}")]
    Encode(CodecError),
    /// The send hook refused the message.
    #[error("the send hook refused the message: {0}")]
    Refused(String),
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
}

/// The failure of an [`invoke`](crate::Endpoint::invoke).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The connection was not open, or closed before the reply arrived.
    /// `id` is the invoke's id when one was assigned.
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
    /// The peer answered with an error; this is its wire value (for a
    /// JavaScript peer with the default formatter, a string such as
    /// `"Error: Some error"` or `"NoProcedureError"`).
    #[error("the peer answered with an error: {0}")]
    Remote(serde_json::Value),
    /// The arguments could not be encoded.
    #[error("could not encode the invoke: {0}")]
    Encode(CodecError),
    /// The reply's result could not be decoded into the requested type.
    #[error("could not decode the result of the invoke: {0}")]
    Decode(CodecError),
    /// The send hook refused the message.
    #[error("the send hook refused the invoke: {0}")]
    Refused(String),
    /// The name is reserved or empty.
    #[error("`{0}` is reserved or empty and cannot be used as a procedure name")]
    ReservedName(String),
}

impl InvokeError {
    pub(crate) fn from_send(error: SendError, id: Option<u64>) -> Self {
        match error {
            SendError::Connection | SendError::SlowConsumer => InvokeError::Connection { id },
            SendError::Timeout => match id {
                Some(id) => InvokeError::Timeout { id },
                None => InvokeError::Connection { id },
            },
            SendError::Encode(e) => InvokeError::Encode(e),
            SendError::Refused(r) => InvokeError::Refused(r),
            SendError::ReservedName(n) => InvokeError::ReservedName(n),
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
    /// The client was closed by the user, or gave up reconnecting after its
    /// retries; `last` describes the last failure.
    #[error("gave up connecting: {last}")]
    GaveUp {
        /// What went wrong on the last attempt.
        last: String,
    },
    /// The URL or the auth value is unusable.
    #[error("invalid client configuration: {0}")]
    Config(String),
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
        Self::named("NoProcedureError", "")
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

impl<E: std::error::Error> From<E> for HandlerError {
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

impl std::error::Error for HandlerFailure {}

impl From<HandlerError> for Box<dyn std::error::Error + Send + Sync> {
    fn from(error: HandlerError) -> Self {
        Box::new(HandlerFailure(error))
    }
}

impl From<HandlerError> for Box<dyn std::error::Error> {
    fn from(error: HandlerError) -> Self {
        Box::new(HandlerFailure(error))
    }
}
