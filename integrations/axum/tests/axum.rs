//! ws-messaging served from an axum router on a loopback port, beside the
//! app's own routes: the Rust client, raw WebSocket clients with cookies
//! and headers, plain HTTP requests that are not upgrades, and the request
//! context the connection hook sees.
//!
//! `cargo test -p ws-messaging-axum`

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_messaging::{Client, ConnectError, HandlerError, LocalEvent, Server};
use ws_messaging_axum::WsMessaging;
use ws_messaging_json::Json;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(5);

type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server whose hook accepts a client that shows a credential of the
/// upgrade request (the query parameter `token=abc`, the cookie
/// `session=s3cr3t`, or the header `x-api-key: k3y`) and replies with what
/// it saw of the request. `echo` and `say` → `said`.
fn server() -> Server<Json> {
    Server::<Json>::builder()
        .on_connection(|endpoint, auth: Value| async move {
            let request = endpoint.request().expect("inside the connection hook");
            let by = if request.query_param("token").as_deref() == Some("abc") {
                "query"
            } else if request.cookie("session") == Some("s3cr3t") {
                "cookie"
            } else if request.header("x-api-key") == Some("k3y") {
                "header"
            } else {
                return Err(HandlerError::text("no credential"));
            };
            let reply = json!({
                "by": by,
                "path": request.path(),
                "peer": request.peer_addr().map(|a| a.to_string()),
                "auth": auth,
            });
            endpoint.register("echo", |(x,): (Value,)| async move { Ok(x) })?;
            let me = endpoint.downgrade();
            endpoint.on("say", move |args: Vec<Value>| {
                if let Some(endpoint) = me.upgrade() {
                    if let Ok(said) = ws_messaging::EncodedMessage::encode(endpoint.codec(), "said", args) {
                        let _ = endpoint.queue_encoded(&said);
                    }
                }
            });
            Ok(reply)
        })
        .build()
}

/// The app: a page at `/` and ws-messaging at `/ws`.
fn app(server: &Server<Json>) -> Router {
    Router::new()
        .route("/", get(|| async { "the page" }))
        .route("/ws", ws_messaging_axum::route(server.clone()))
}

/// Serves `app` on a loopback port, with the peer address (`ConnectInfo`).
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    addr
}

/// Serves `app` on a loopback port without `ConnectInfo`.
async fn serve_plain(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One HTTP/1.1 request over a fresh connection; the status and the body.
async fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    tokio::time::timeout(WAIT, async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    })
    .await
    .expect("an answer in time")
}

/// An upgrade request with the key of RFC 6455's example. `connection`
/// may ask to close the connection after an answer that is not a 101.
fn upgrade_request(addr: SocketAddr, connection: &str, extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// A raw WebSocket client with `headers`, offering the ws-messaging
/// subprotocol (checked to be echoed).
async fn raw_connect(url: &str, headers: &[(&'static str, &'static str)]) -> RawWs {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    for (name, value) in headers {
        request.headers_mut().insert(*name, HeaderValue::from_static(value));
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("upgraded in time")
        .expect("upgraded");
    assert_eq!(response.headers()["sec-websocket-protocol"], "ws-messaging");
    ws
}

/// The next frame that is not a heartbeat: a JSON text, or the close code
/// and reason.
async fn next(ws: &mut RawWs) -> Result<Value, (u16, String)> {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("frame") {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["name"] != "ping" {
                        return Ok(value);
                    }
                }
                Message::Close(Some(frame)) => return Err((u16::from(frame.code), frame.reason.to_string())),
                Message::Close(None) => return Err((1005, String::new())),
                _ => {}
            }
        }
    })
    .await
    .expect("a frame in time")
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

#[tokio::test]
async fn rust_client_on_the_app_port_invoke_and_event() {
    let server = server();
    let addr = serve(app(&server)).await;

    // The app's own route on the same port.
    let (status, _, body) = http(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "the page"));

    let client = Client::<Json>::builder(format!("ws://{addr}/ws?token=abc"))
        .auth(&json!({"hello": 1}))
        .build()
        .unwrap();
    let (tx, mut said) = mpsc::unbounded_channel();
    client.on("said", move |args: Vec<Value>| tx.send(args).unwrap());
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connected in time")
        .unwrap();

    let reply: Value = client.auth_reply().unwrap();
    assert_eq!(reply["by"], "query");
    assert_eq!(reply["path"], "/ws");
    assert_eq!(reply["auth"], json!({"hello": 1}));
    // The peer address came from ConnectInfo: the client's own socket.
    let peer: SocketAddr = reply["peer"].as_str().expect("a peer address").parse().unwrap();
    assert!(peer.ip().is_loopback(), "{peer}");
    assert_ne!(peer, addr);
    assert_eq!(server.connection_count(), 1);

    let value = json!({"nested": [1, "two", null], "text": "日本語"});
    assert_eq!(
        client.invoke::<_, Value>("echo", (value.clone(),)).await.unwrap(),
        value
    );
    client.send("say", (1, "two")).await.unwrap();
    assert_eq!(recv(&mut said).await, vec![json!(1), json!("two")]);
    // The server reaches the client too.
    assert_eq!(server.broadcast("said", ("from the server",)).unwrap(), 1);
    assert_eq!(recv(&mut said).await, vec![json!("from the server")]);
}

#[tokio::test]
async fn the_hook_refuses_a_client_without_credential() {
    let server = server();
    let addr = serve(app(&server)).await;
    let refused = tokio::time::timeout(
        WAIT,
        Client::<Json>::builder(format!("ws://{addr}/ws?token=wrong"))
            .auth(&json!({}))
            .connect(),
    )
    .await
    .expect("an answer in time")
    .unwrap_err();
    assert_eq!(
        refused,
        ConnectError::Refused {
            code: 4003,
            reason: "no credential".into()
        }
    );
}

#[tokio::test]
async fn cookie_and_header_reach_the_hook() {
    let server = server();
    let addr = serve(app(&server)).await;
    let url = format!("ws://{addr}/ws");

    let mut ws = raw_connect(&url, &[("cookie", "theme=dark; session=s3cr3t")]).await;
    ws.send(Message::text(r#"{"token":"t"}"#)).await.unwrap();
    let connect = next(&mut ws).await.unwrap();
    assert_eq!(connect["name"], "connect");
    assert_eq!(connect["args"][0]["by"], "cookie");
    assert_eq!(connect["args"][0]["auth"], json!({"token": "t"}));
    ws.send(Message::text(r#"{"name":"echo","args":["x"],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), json!({"id": 1, "result": "x"}));

    let mut ws = raw_connect(&url, &[("x-api-key", "k3y")]).await;
    ws.send(Message::text("{}")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["args"][0]["by"], "header");

    // Neither: refused with 4003.
    let mut ws = raw_connect(&url, &[("cookie", "session=stale")]).await;
    ws.send(Message::text("{}")).await.unwrap();
    assert_eq!(next(&mut ws).await, Err((4003, "no credential".into())));
}

#[tokio::test]
async fn requests_that_are_not_upgrades_get_http_errors() {
    let server = server();
    let addr = serve(app(&server)).await;

    // A plain GET: 426 with `Upgrade: websocket`.
    let (status, head, body) = http(
        addr,
        &format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 426, "{head}");
    assert!(head.contains("\r\nupgrade: websocket"), "{head}");
    assert!(body.contains("upgrade required"), "{body}");

    // A POST: 405.
    let (status, head, _) = http(
        addr,
        &format!("POST /ws HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 405, "{head}");

    // Another version than 13: 426 naming 13.
    let (status, head, _) = http(
        addr,
        &upgrade_request(addr, "Upgrade, close", "Sec-WebSocket-Version: 8\r\n"),
    )
    .await;
    assert_eq!(status, 426, "{head}");
    assert!(head.contains("\r\nsec-websocket-version: 13"), "{head}");

    // No key, or one that is not 16 bytes of base64: 400.
    let no_key = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(http(addr, &no_key).await.0, 400);
    let short_key = no_key.replace("\r\n\r\n", "\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n");
    assert_eq!(http(addr, &short_key).await.0, 400);

    // An upgrade to something else, or `Connection` without `upgrade`: 400.
    let h2c = upgrade_request(addr, "Upgrade, close", "Sec-WebSocket-Version: 13\r\n").replace("websocket", "h2c");
    assert_eq!(http(addr, &h2c).await.0, 400);
    let no_token = upgrade_request(addr, "close", "Sec-WebSocket-Version: 13\r\n");
    assert_eq!(http(addr, &no_token).await.0, 400);

    // A valid upgrade over the same kind of raw request: 101 with the
    // accept key of RFC 6455's example, and the subprotocol when offered.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = upgrade_request(
        addr,
        "Upgrade",
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, ws-messaging\r\n",
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = tokio::time::timeout(WAIT, read_head(&mut tcp))
        .await
        .expect("101 in time");
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(
        head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("\r\nsec-websocket-protocol: ws-messaging"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket"), "{head}");
    // No HTTP error touched the ws-messaging server.
    assert_eq!(server.connection_count(), 0);
}

/// Reads a response head (to the blank line), lowercased.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "the head ended early");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn nested_route_without_connect_info() {
    let server = server();
    let app = Router::new().nest("/api", app(&server));
    let addr = serve_plain(app).await;
    let client = tokio::time::timeout(
        WAIT,
        Client::<Json>::builder(format!("ws://{addr}/api/ws?token=abc"))
            .auth(&json!(null))
            .connect(),
    )
    .await
    .expect("connected in time")
    .unwrap();
    let reply: Value = client.auth_reply().unwrap();
    // The full path, though the route is mounted under `/api`; no peer
    // address without ConnectInfo.
    assert_eq!(reply["path"], "/api/ws");
    assert_eq!(reply["peer"], Value::Null);
}

#[tokio::test]
async fn an_extractor_handler_checks_before_upgrading() {
    async fn ws(State(server): State<Server<Json>>, ws: WsMessaging) -> Response {
        if ws.request().cookie("session").is_none() {
            return (StatusCode::UNAUTHORIZED, "log in first").into_response();
        }
        ws.serve(&server)
    }
    let server = server();
    let app = Router::new().route("/ws", get(ws)).with_state(server.clone());
    let addr = serve(app).await;

    let (status, _, body) = http(
        addr,
        &upgrade_request(addr, "Upgrade, close", "Sec-WebSocket-Version: 13\r\n"),
    )
    .await;
    assert_eq!((status, body.as_str()), (401, "log in first"));

    let mut ws = raw_connect(&format!("ws://{addr}/ws"), &[("cookie", "session=s3cr3t")]).await;
    ws.send(Message::text("{}")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["args"][0]["by"], "cookie");
}

#[tokio::test]
async fn closing_the_server_closes_its_axum_connections_with_1001() {
    let server = server();
    let addr = serve(app(&server)).await;
    let client = Client::<Json>::builder(format!("ws://{addr}/ws?token=abc"))
        .auth(&json!(null))
        .build()
        .unwrap();
    let mut events = client.events();
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connected in time")
        .unwrap();
    tokio::time::timeout(WAIT, server.close(1001))
        .await
        .expect("closed in time");
    let close = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(event @ LocalEvent::Close { .. }) = events.recv().await {
                return event;
            }
        }
    })
    .await
    .expect("the close in time");
    assert_eq!(
        close,
        LocalEvent::Close {
            code: 1001,
            reason: String::new()
        }
    );
    assert_eq!(server.connection_count(), 0);

    // A later upgrade is answered, then closed with 1001 at once.
    let mut ws = raw_connect(&format!("ws://{addr}/ws"), &[]).await;
    assert_eq!(next(&mut ws).await, Err((1001, String::new())));
}

#[tokio::test]
async fn an_upgrade_from_a_page_of_another_origin_is_refused_with_403() {
    let server = Server::<Json>::builder()
        .allowed_origins(["http://app.test"])
        .on_connection(|_endpoint, _auth: Value| async move { Ok::<_, HandlerError>(json!("welcome")) })
        .build();
    let addr = serve(app(&server)).await;
    // Another site's page, with the app's cookie as a browser would send it.
    let request = upgrade_request(
        addr,
        "Upgrade, close",
        "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.test\r\nCookie: session=s3cr3t\r\n",
    );
    let (status, _, body) = http(addr, &request).await;
    assert_eq!((status, body.as_str()), (403, "origin not allowed"));
    assert_eq!(server.connection_count(), 0);
    // The app's own page (origins compare without regard to case or a
    // trailing slash), and a client that is not a browser (no Origin).
    let url = format!("ws://{addr}/ws");
    for headers in [&[("origin", "http://APP.test/")][..], &[]] {
        let mut ws = raw_connect(&url, headers).await;
        ws.send(Message::text("{}")).await.unwrap();
        assert_eq!(next(&mut ws).await, Ok(json!({"name":"connect","args":["welcome"]})));
    }
}
