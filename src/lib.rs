#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod adapter;
mod broadcast;
mod buffers;
mod client;
mod config;
mod connection;
mod endpoint;
mod error;
mod events;
mod limits;
mod meter;
mod recovery;
mod request;
mod server;
mod trace;
mod tracecontext;
mod wire;

// The codec kit (ws-messaging-core), under the paths it has always had here.
#[doc(inline)]
pub use ws_messaging_core::{codec, envelope, lenient, protocol, reader, schema, writer};
#[doc(inline)]
pub use ws_messaging_core::{
    ArgList, Args, BoxError, CheckError, CloseCode, Codec, CodecError, Frame, FrameKind, FromArgs, Name,
    PreprocessError, RawArgs, RawValue, SharedError, RESERVED_NAMES, SUBPROTOCOL,
};

/// Guides: the long-form documentation, one module a topic (the same text
/// as `docs/guide/` in the repository).
pub mod guide {
    #[doc = include_str!("../docs/guide/handlers.md")]
    pub mod handlers {}
    #[doc = include_str!("../docs/guide/formats.md")]
    pub mod formats {}
    #[doc = include_str!("../docs/guide/rooms.md")]
    pub mod rooms {}
    #[doc = include_str!("../docs/guide/axum.md")]
    pub mod axum {}
    #[doc = include_str!("../docs/guide/clients.md")]
    pub mod clients {}
    #[doc = include_str!("../docs/guide/errors.md")]
    pub mod errors {}
    #[doc = include_str!("../docs/guide/connections.md")]
    pub mod connections {}
    #[doc = include_str!("../docs/guide/tls.md")]
    pub mod tls {}
}

pub use broadcast::{Acks, Broadcast, ConnectionInfo};
pub use client::{Client, ClientBuilder};
pub use config::{
    default_error_formatter, EndpointOptions, ErrorFormatter, Outgoing, OutgoingKind, ReceiveHook, RetryConfig,
    SendHook,
};
pub use connection::Transport;
pub use endpoint::{
    AsyncListener, EncodedMessage, Endpoint, FromEndpoint, Handler, Listener, ListenerId, State, WeakEndpoint,
};
pub use error::{
    AdapterError, AttemptError, ConnectError, HandlerError, InvokeError, RegisterError, SendError, ServeError,
};
pub use events::LocalEvent;
pub use limits::RateLimit;
pub use recovery::client::SessionStatus;
pub use recovery::RecoveryConfig;
pub use request::Request;
pub use server::{Server, ServerBuilder};
pub use tracecontext::traceparent;

pub use bytes::Bytes;
/// The rustls crate [`ClientBuilder::tls_config`] takes (feature `rustls`).
#[cfg(feature = "rustls")]
pub use rustls;
/// The `http` types of [`Request`] (`HeaderMap`, `Uri`, ...).
pub use tokio_tungstenite::tungstenite::http;
