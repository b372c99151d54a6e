//! Events and RPC over WebSocket, wire-compatible with the JavaScript
//! `ws-messaging` 2.0.0 package.
//!
//! A connection has two ends, each an [`Endpoint`]: a [`Server`] hands one
//! to its connection hook for every client, and a [`Client`] derefs to one.
//! Both ends can send events ([`Endpoint::send`] / [`Endpoint::on`]) and
//! call each other's procedures ([`Endpoint::invoke`] /
//! [`Endpoint::register`]). The wire format is the type parameter `C`, a
//! [`Codec`]; `ws-messaging-json` is the JavaScript package's default.
//!
//! ```
//! use serde_json::{json, Value};
//! use ws_messaging::{Client, HandlerError, Server};
//! use ws_messaging_json::Json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::<Json>::builder()
//!     .on_connection(|client, auth: Value| async move {
//!         if auth["token"] != "secret" {
//!             return Err(HandlerError::text("bad token"));
//!         }
//!         client.register("sum", |n: Vec<f64>| async move { Ok(n.iter().fold(0.0, |a, b| a + b)) })?;
//!         Ok(json!({ "user": "alice" }))
//!     })
//!     .bind("127.0.0.1:0")
//!     .await?;
//!
//! let client = Client::<Json>::builder(format!("ws://{}", server.local_addr()))
//!     .auth(&json!({ "token": "secret" }))
//!     .connect()
//!     .await?;
//! assert_eq!(client.auth_reply::<Value>(), Some(json!({ "user": "alice" })));
//! let sum: f64 = client.invoke("sum", (1, 2, 3.5)).await?;
//! assert_eq!(sum, 6.5);
//! # Ok(()) }
//! ```
//!
//! # What happens to a frame
//! Each connection has one task. It decodes a frame's routing fields
//! (arguments stay encoded), validates the envelope
//! ([`envelope::validate`]), runs the codec's [`Codec::check`] and the
//! receive hook, then dispatches: an event to every listener, a call to its
//! procedure (in a task of its own unless it finishes at once), a reply to
//! the pending invoke. A frame refused on the way is answered with a
//! `preprocessingError` event and the connection carries on. The same task
//! writes the connection's backlog, bounded in frames and bytes: when it is
//! full, `send().await` waits, and a broadcast closes the slow consumer
//! (4009) rather than wait for it.
//!
//! # Errors
//! Every call ends: [`InvokeError`] tells a connection loss
//! (`Connection { id }`), a timeout (`Timeout { id }`) and the peer's error
//! value (`Remote`) apart.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
pub mod codec;
mod config;
mod connection;
mod dispatch;
mod endpoint;
pub mod envelope;
mod error;
mod events;
pub mod fanout;
pub mod lenient;
mod payload;
pub mod protocol;
mod rpc;
pub mod schema;
mod server;

pub use client::{Client, ClientBuilder};
pub use codec::{Codec, FrameKind};
pub use config::{
    default_error_formatter, EndpointOptions, ErrorFormatter, Outgoing, OutgoingKind, ReceiveHook, RetryConfig,
    SendHook,
};
pub use connection::Transport;
pub use endpoint::{EncodedMessage, Endpoint, ListenerId, WeakEndpoint};
pub use envelope::Frame;
pub use error::{
    CodecError, ConnectError, HandlerError, InvokeError, PreprocessError, RegisterError, SendError, ServeError,
};
pub use events::LocalEvent;
pub use payload::{Args, FromArgs, RawArgs};
pub use protocol::{CLOSE_FORBIDDEN, CLOSE_SLOW_CONSUMER, CLOSE_TIMEOUT, RESERVED_NAMES, SUBPROTOCOL};
pub use server::{Server, ServerBuilder};

pub use bytes::Bytes;
