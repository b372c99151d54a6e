#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod adapter;
mod broadcast;
mod client;
pub mod codec;
mod config;
mod connection;
mod dispatch;
mod endpoint;
pub mod envelope;
mod error;
mod events;
pub mod lenient;
mod payload;
pub mod protocol;
pub mod reader;
mod request;
mod rpc;
pub mod schema;
mod server;
mod trace;

pub use broadcast::{Acks, Broadcast};
pub use client::{Client, ClientBuilder};
pub use codec::{Codec, FrameKind};
pub use config::{
    default_error_formatter, EndpointOptions, ErrorFormatter, Outgoing, OutgoingKind, ReceiveHook, RetryConfig,
    SendHook,
};
pub use connection::Transport;
pub use endpoint::{
    AsyncListener, EncodedMessage, Endpoint, FromEndpoint, Handler, Listener, ListenerId, State, WeakEndpoint,
};
pub use envelope::{ArgList, Frame, Name};
pub use error::{
    AdapterError, AttemptError, BoxError, CheckError, CodecError, ConnectError, HandlerError, InvokeError,
    PreprocessError, RegisterError, SendError, ServeError, SharedError,
};
pub use events::LocalEvent;
pub use payload::{Args, FromArgs, RawArgs, RawValue};
pub use protocol::{CLOSE_FORBIDDEN, CLOSE_SLOW_CONSUMER, CLOSE_TIMEOUT, RESERVED_NAMES, SUBPROTOCOL};
pub use request::Request;
pub use server::{Server, ServerBuilder};

pub use bytes::Bytes;
/// The rustls crate [`ClientBuilder::tls_config`] takes (feature `rustls`).
#[cfg(feature = "rustls")]
pub use rustls;
/// The `http` types of [`Request`] (`HeaderMap`, `Uri`, ...).
pub use tokio_tungstenite::tungstenite::http;
