//! Shared helpers for the integration tests: a test server with the
//! conformance contract (crate `ws-messaging-conformance`), raw WebSocket peers, and event waiters.
#![allow(dead_code, clippy::result_large_err)]

pub(crate) mod cutter;
pub(crate) mod peers;
pub(crate) mod redis;
pub(crate) mod rooms;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_messaging::{Client, ClientBuilder, HandlerError, LocalEvent, Server, ServerBuilder};
use ws_messaging_json::Json;

/// A reconnect backoff for tests: 20 ms, doubling, no jitter.
pub(crate) fn fast_retry() -> ws_messaging::RetryConfig {
    ws_messaging::RetryConfig::default()
        .min_timeout(Duration::from_millis(20))
        .randomize(false)
}

/// Upper bound for anything a test waits for.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A builder for the test server: token `secret` → `{"user":"alice"}`,
/// anything else refused with `bad token`.
pub(crate) fn builder() -> ServerBuilder<Json> {
    Server::<Json>::builder().on_connection(|_, auth: Value| async move {
        if auth["token"] != "secret" {
            return Err(HandlerError::text("bad token"));
        }
        Ok(json!({ "user": "alice" }))
    })
}

pub(crate) async fn server() -> Server<Json> {
    start(builder()).await
}

/// `builder` bound to a loopback port, with the conformance contract's
/// handlers (crate `ws-messaging-conformance`, as echo_server has them)
/// registered for every connection.
pub(crate) async fn start(builder: ServerBuilder<Json>) -> Server<Json> {
    let server = builder.bind("127.0.0.1:0").await.expect("bind a loopback port");
    ws_messaging_conformance::register::<Json, Value>(&server, false).expect("the conformance handlers");
    server
}

pub(crate) fn url(server: &Server<Json>) -> String {
    format!("ws://{}", server.local_addr().unwrap())
}

pub(crate) fn client_builder(server: &Server<Json>) -> ClientBuilder<Json> {
    Client::<Json>::builder(url(server)).auth(&json!({ "token": "secret" }))
}

pub(crate) async fn client(server: &Server<Json>) -> Client<Json> {
    tokio::time::timeout(WAIT, client_builder(server).connect())
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Waits for the first local event matching `pred`.
pub(crate) async fn wait_event(
    events: &mut broadcast::Receiver<LocalEvent>,
    pred: impl Fn(&LocalEvent) -> bool,
) -> LocalEvent {
    wait_event_within(events, WAIT, pred).await
}

/// Waits at most `limit` for the first local event matching `pred`.
pub(crate) async fn wait_event_within(
    events: &mut broadcast::Receiver<LocalEvent>,
    limit: Duration,
    pred: impl Fn(&LocalEvent) -> bool,
) -> LocalEvent {
    tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    })
    .await
    .expect("the event in time")
}

/// A raw WebSocket client offering the ws-messaging subprotocol.
pub(crate) async fn raw_connect(url: &str) -> RawWs {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("raw connect");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("ws-messaging")
    );
    ws
}

/// A raw client that has authenticated with the `secret` token.
pub(crate) async fn raw_authed(server: &Server<Json>) -> RawWs {
    let mut ws = raw_connect(&url(server)).await;
    ws.send(Message::text(r#"{"token":"secret"}"#)).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"name":"connect","args":[{"user":"alice"}]})
    );
    ws
}

/// The next text frame as JSON, skipping pings of the heartbeat.
pub(crate) async fn next_json(ws: &mut RawWs) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("frame") {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON frame");
                    if value["name"] == "ping" {
                        continue;
                    }
                    return value;
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a frame in time")
}

/// Waits for the close frame; returns its code and reason.
pub(crate) async fn next_close(ws: &mut RawWs) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frame.reason.to_string()),
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => {}
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame in time")
}

/// A raw WebSocket server on a loopback port: hands each accepted socket
/// (subprotocol echoed) to the test.
pub(crate) struct RawServer {
    pub listener: TcpListener,
}

impl RawServer {
    pub(crate) async fn bind() -> Self {
        RawServer {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://{}", self.listener.local_addr().unwrap())
    }

    pub(crate) async fn accept(&self) -> WebSocketStream<TcpStream> {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("a client in time")
            .unwrap();
        tokio_tungstenite::accept_hdr_async(
            stream,
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut res: tokio_tungstenite::tungstenite::handshake::server::Response| {
                assert_eq!(req.headers().get("sec-websocket-protocol").unwrap(), "ws-messaging");
                res.headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
                Ok(res)
            },
        )
        .await
        .unwrap()
    }
}

/// The next text frame of a server-side raw socket, as JSON.
pub(crate) async fn server_next_json(ws: &mut WebSocketStream<TcpStream>) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("frame") {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a frame in time")
}
