//! Serve ws-messaging from an [axum] router: the WebSocket endpoint on the
//! same port as the application's pages and API.
//!
//! Build the [`Server`] without a listener
//! ([`ServerBuilder::build`](ws_messaging::ServerBuilder::build)) and
//! mount it with [`route`]. The upgrade is answered here (no axum `ws`
//! feature, so only ws-messaging's tungstenite is in the build), and the
//! connection hook sees the upgrade request through
//! [`Endpoint::request`](ws_messaging::Endpoint::request): path, query,
//! headers, cookies, and the peer's address when the app is served with
//! [`into_make_service_with_connect_info::<SocketAddr>`](axum::Router::into_make_service_with_connect_info).
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use axum::response::Html;
//! use axum::routing::get;
//! use axum::serve::ListenerExt;
//! use axum::Router;
//! use serde_json::{json, Value};
//! use ws_messaging::{CloseCode, HandlerError, Server};
//! use ws_messaging_json::Json;
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let server = Server::<Json>::builder()
//!         // The connection is authenticated by a cookie, which browsers send
//!         // whatever page opens the WebSocket: only the app's own pages may.
//!         .allowed_origins(["http://127.0.0.1:3000"])
//!         .on_connection(|endpoint, _auth: Value| async move {
//!             // The upgrade request: a session cookie set by the app's login page.
//!             let request = endpoint.request().expect("inside the connection hook");
//!             let user = match request.cookie("session") {
//!                 Some("s3cr3t") => "alice",
//!                 _ => return Err(HandlerError::new("not logged in")),
//!             };
//!             endpoint.register("echo", |(x,): (Value,)| async move { Ok(x) })?;
//!             Ok(json!({ "user": user }))
//!         })
//!         .build();
//!
//!     let app = Router::new()
//!         .route("/", get(|| async { Html("<script>/* the page's client */</script>") }))
//!         .route("/ws", ws_messaging_axum::route(server.clone()));
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
//!         .await?
//!         .tap_io(|tcp| {
//!             let _ = tcp.set_nodelay(true); // small frames go out at once
//!         });
//!     // With connect info, the hook sees the peer's address.
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!         .with_graceful_shutdown(async move {
//!             let _ = tokio::signal::ctrl_c().await;
//!             // Every ws-messaging client gets 1001 (going away) and reconnects
//!             // to the next instance.
//!             server.close(CloseCode::GOING_AWAY).await;
//!         })
//!         .await
//! }
//! ```
//!
//! A handler that wants to look at the request first (and answer with a
//! plain HTTP error instead of a refused connection) takes the
//! [`WsMessaging`] extractor and calls [`serve`](WsMessaging::serve):
//!
//! ```
//! use axum::extract::State;
//! use axum::http::StatusCode;
//! use axum::response::{IntoResponse, Response};
//! use axum::routing::get;
//! use axum::Router;
//! use ws_messaging::Server;
//! use ws_messaging_axum::WsMessaging;
//! use ws_messaging_json::Json;
//!
//! async fn ws(State(server): State<Server<Json>>, ws: WsMessaging) -> Response {
//!     if ws.request().cookie("session").is_none() {
//!         return (StatusCode::UNAUTHORIZED, "log in first").into_response();
//!     }
//!     ws.serve(&server)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A cookie authenticates: only the app's own pages may connect.
//! let server = Server::<Json>::builder().allowed_origins(["https://app.example"]).build();
//! let app: Router = Router::new().route("/ws", get(ws)).with_state(server);
//! # }
//! ```
//!
//! `examples/axum_app.rs` (`cargo run -p ws-messaging-axum --example
//! axum_app`) is the same app with a page that connects.
//!
//! Only HTTP/1.1 upgrades are served (every browser and ws-messaging client
//! uses them; axum's `serve` over plain TCP is HTTP/1.1 for them).
//!
//! [axum]: https://docs.rs/axum/0.8

use std::fmt;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use ws_messaging::protocol::choose_subprotocol;
use ws_messaging::{Codec, Request, Server};

/// A GET route that serves ws-messaging with `server`:
/// `Router::new().route("/ws", ws_messaging_axum::route(server.clone()))`.
///
/// A request that is not a WebSocket upgrade gets a 4xx answer (see
/// [`WsMessagingRejection`]); other methods get 405.
pub fn route<C, S>(server: Server<C>) -> MethodRouter<S>
where
    C: Codec,
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(move |ws: WsMessaging| std::future::ready(ws.serve(&server)))
}

/// The extractor of a pending WebSocket upgrade: a valid upgrade request,
/// not answered yet. [`serve`](Self::serve) answers it and serves the
/// connection with a [`Server`].
pub struct WsMessaging {
    accept: HeaderValue,
    protocol: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
    request: Request,
}

impl fmt::Debug for WsMessaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsMessaging")
            .field("protocol", &self.protocol)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl WsMessaging {
    /// What the upgrade request said: what the connection hook will see
    /// in [`Endpoint::request`](ws_messaging::Endpoint::request).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Answers the upgrade (`101 Switching Protocols`, with the
    /// `ws-messaging` subprotocol when the client offered it) and serves
    /// the connection with `server` in a task of its own: the WebSocket
    /// protocol, the auth handshake and the connection until it ends.
    ///
    /// An upgrade from a web page whose origin the server does not allow
    /// ([`ServerBuilder::allowed_origins`](ws_messaging::ServerBuilder::allowed_origins))
    /// is answered `403 Forbidden` instead, and nothing is served.
    pub fn serve<C: Codec>(self, server: &Server<C>) -> Response {
        if !server.allows_origin(self.request.header("origin")) {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
        let WsMessaging {
            accept,
            protocol,
            on_upgrade,
            request,
        } = self;
        // The server's choice: the recovery extension's when it has it on.
        let offered: Vec<&str> = request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let protocol = server
            .subprotocol_for(offered)
            .and_then(|p| HeaderValue::from_str(p).ok())
            .or(protocol);
        // The trace-context extension, when the client asks: the server
        // grants it (`serve_upgraded` reads the same request header).
        let traced = request.header(ws_messaging::protocol::TRACE_HEADER).is_some();
        let server = server.clone();
        tokio::spawn(async move {
            // Err: the client went away before the upgrade completed.
            if let Ok(upgraded) = on_upgrade.await {
                server.serve_upgraded(TokioIo::new(upgraded), request).await;
            }
        });
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        if let Some(protocol) = protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        if traced {
            headers.insert(ws_messaging::protocol::TRACE_HEADER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WsMessaging {
    type Rejection = WsMessagingRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        use WsMessagingRejection as R;
        if parts.method != Method::GET {
            return Err(R::MethodNotGet);
        }
        let Some(upgrade) = parts.headers.get(header::UPGRADE) else {
            return Err(R::NotAnUpgrade);
        };
        if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
            return Err(R::UpgradeNotWebSocket);
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(R::ConnectionNotUpgrade);
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(R::UnsupportedVersion);
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|key| valid_key(key.as_bytes()))
            .ok_or(R::InvalidKey)?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| R::InvalidKey)?;
        // Put there by hyper on HTTP/1.1 connections that can be upgraded.
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(R::ConnectionNotUpgradable)?;
        let offered = parts.headers.get_all(header::SEC_WEBSOCKET_PROTOCOL);
        let protocol = choose_subprotocol(offered.iter().filter_map(|v| v.to_str().ok()))
            .and_then(|p| HeaderValue::from_str(p).ok());
        // The full path even under a nested router.
        let uri = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(uri)) => uri.clone(),
            None => parts.uri.clone(),
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Ok(WsMessaging {
            accept,
            protocol,
            on_upgrade,
            request: Request::new(uri, parts.headers.clone(), peer),
        })
    }
}

/// Whether the comma-separated header `name` has `token` (ASCII case
/// insensitive), in any of its values.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A `Sec-WebSocket-Key`: 16 bytes in base64 (22 characters and `==`).
fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Why a request could not be served as a WebSocket: the answer is this
/// status with a short text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsMessagingRejection {
    /// Not a GET: 405.
    MethodNotGet,
    /// No `Upgrade` header (a plain HTTP request): 426, with
    /// `Upgrade: websocket`.
    NotAnUpgrade,
    /// An `Upgrade` to something else than `websocket`: 400.
    UpgradeNotWebSocket,
    /// `Connection` does not have the `upgrade` token: 400.
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13: 426, with
    /// `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing or not 16 bytes in base64: 400.
    InvalidKey,
    /// The HTTP connection cannot be upgraded (HTTP/1.0, HTTP/2): 426.
    ConnectionNotUpgradable,
}

impl WsMessagingRejection {
    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAnUpgrade | Self::UnsupportedVersion | Self::ConnectionNotUpgradable => {
                StatusCode::UPGRADE_REQUIRED
            }
            Self::UpgradeNotWebSocket | Self::ConnectionNotUpgrade | Self::InvalidKey => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for WsMessagingRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MethodNotGet => "a WebSocket upgrade is a GET request",
            Self::NotAnUpgrade => "this endpoint is a WebSocket: upgrade required",
            Self::UpgradeNotWebSocket => "`Upgrade` is not `websocket`",
            Self::ConnectionNotUpgrade => "`Connection` does not include `upgrade`",
            Self::UnsupportedVersion => "`Sec-WebSocket-Version` must be 13",
            Self::InvalidKey => "`Sec-WebSocket-Key` is missing or invalid",
            Self::ConnectionNotUpgradable => "this connection cannot be upgraded (HTTP/1.1 only)",
        })
    }
}

impl std::error::Error for WsMessagingRejection {}

impl IntoResponse for WsMessagingRejection {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.to_string()).into_response();
        let headers = response.headers_mut();
        match self {
            Self::MethodNotGet => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            Self::NotAnUpgrade => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            }
            Self::UnsupportedVersion => {
                headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_are_16_bytes_of_base64() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZ*=="));
        assert!(!valid_key(b""));
    }
}
