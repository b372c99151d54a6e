//! The auth handshake (docs/protocol.md, Auth handshake).

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, ConnectError, HandlerError, InvokeError, LocalEvent, SendError, Server};
use ws_messaging_json::Json;

#[tokio::test]
async fn accepted_auth_gets_the_hook_reply() {
    let server = server().await;
    let client = client_builder(&server).build().unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    assert!(client.is_connected());
    assert_eq!(client.auth_reply::<Value>(), Some(json!({"user": "alice"})));
    let LocalEvent::Connect(reply) = wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await else {
        unreachable!()
    };
    assert_eq!(client.decode::<Value>(&reply).unwrap(), json!({"user": "alice"}));
    // The server knows the connection by its id.
    let id: String = client.invoke("whoami", ()).await.unwrap();
    assert_eq!(id.len(), 24);
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.get(&id).unwrap().id(), Some(id.as_str()));
}

#[tokio::test]
async fn refused_auth_closes_4003_and_never_reconnects() {
    let server = server().await;
    let client = Client::<Json>::builder(url(&server))
        .auth(&json!({ "token": "nope" }))
        .retry(ws_messaging::RetryConfig::default().min_timeout(Duration::from_millis(10)))
        .build()
        .unwrap();
    let mut events = client.events();
    let error = client.connect().await.unwrap_err();
    assert_eq!(
        error,
        ConnectError::Refused {
            code: 4003,
            reason: "bad token".into()
        }
    );
    let close = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
    assert_eq!(
        close,
        LocalEvent::Close {
            code: 4003,
            reason: "bad token".into()
        }
    );
    assert!(client.is_terminated());
    // Nothing after the close: no retry was scheduled.
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}

#[tokio::test]
async fn auth_that_is_not_a_map_is_refused() {
    let server = server().await;
    let error = Client::<Json>::builder(url(&server))
        .auth("just a string")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Refused { code: 4003, .. }));
}

#[tokio::test]
async fn a_long_refusal_reason_is_cut_to_123_bytes() {
    let server = start(
        Server::<Json>::builder()
            .on_connection(|_, _: Value| async move { Err::<(), _>(HandlerError::new("é".repeat(200))) }),
    )
    .await;
    let error = Client::<Json>::builder(url(&server)).connect().await.unwrap_err();
    let ConnectError::Refused { reason, .. } = error else {
        panic!("{error:?}")
    };
    assert!(reason.len() <= 123 && reason.starts_with("Error: é"), "{reason}");
}

#[tokio::test]
async fn silent_socket_is_closed_4003_after_the_auth_timeout() {
    let server = start(builder().auth_timeout(Duration::from_millis(100))).await;
    let mut ws = raw_connect(&url(&server)).await;
    assert_eq!(next_close(&mut ws).await, (4003, String::new()));
}

#[tokio::test]
async fn no_hook_accepts_everyone_with_a_null_reply() {
    let server = start(Server::<Json>::builder()).await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("\"anything\"")).await.unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"name":"connect","args":[null]}));
    // A hook returning `()` replies null too.
    let server = start(Server::<Json>::builder().on_connection(|_, _: Value| async { Ok(()) })).await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    assert_eq!(client.auth_reply::<Value>(), Some(Value::Null));
}

#[tokio::test]
async fn frames_sent_before_the_hook_settles_are_dropped() {
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let gate = std::sync::Mutex::new(Some(gate));
    let server = start(Server::<Json>::builder().on_connection(move |_, _: Value| {
        let gate = gate.lock().unwrap().take();
        async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            Ok("ok")
        }
    }))
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    ws.send(Message::text(r#"{"name":"echo","args":["early"],"id":1}"#))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"name":"nope","args":[],"id":2}"#))
        .await
        .unwrap();
    // A WebSocket ping after them: once its pong is back, the server has
    // read both frames, while the hook is still waiting.
    ws.send(Message::Ping(Default::default())).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while !matches!(futures_util::StreamExt::next(&mut ws).await, Some(Ok(Message::Pong(_)))) {}
    })
    .await
    .unwrap();
    release.send(()).unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"name":"connect","args":["ok"]}));
    ws.send(Message::text(r#"{"name":"echo","args":["late"],"id":3}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":3,"result":"late"}));
}

#[tokio::test]
async fn client_without_connect_reply_closes_4008_and_retries() {
    // A peer that accepts the socket but never answers the auth frame.
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url())
        .configure(|o| o.ack_timeout = Duration::from_millis(100))
        .retry(
            ws_messaging::RetryConfig::default()
                .min_timeout(Duration::from_millis(10))
                .randomize(false),
        )
        .build()
        .unwrap();
    let mut events = client.events();
    client.reconnect();
    let mut ws = raw.accept().await;
    assert_eq!(server_next_json(&mut ws).await, json!({}));
    let close = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
    assert_eq!(
        close,
        LocalEvent::Close {
            code: 4008,
            reason: "Auth timeout".into()
        }
    );
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Retry(_))).await,
        LocalEvent::Retry(1)
    );
    let _second = raw.accept().await;
    client.close(1000, "").await;
}

#[tokio::test]
async fn nothing_is_sent_before_connect() {
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url()).build().unwrap();
    assert_eq!(client.send("say", ("x",)).await, Err(SendError::Connection));
    assert!(matches!(
        client.invoke::<_, Value>("echo", (1,)).await,
        Err(InvokeError::NotConnected)
    ));
    client.reconnect();
    let mut ws = raw.accept().await;
    assert_eq!(server_next_json(&mut ws).await, json!({}));
    // Connected only once the server says so.
    assert!(!client.is_connected());
    assert_eq!(client.send("say", ("x",)).await, Err(SendError::Connection));
    ws.send(Message::text(r#"{"name":"connect","args":[{"ok":true}]}"#))
        .await
        .unwrap();
    client.connect().await.unwrap();
    assert_eq!(client.auth_reply::<Value>(), Some(json!({"ok": true})));
    client.send("say", ("x",)).await.unwrap();
    assert_eq!(server_next_json(&mut ws).await, json!({"name":"say","args":["x"]}));
}

#[tokio::test]
async fn a_duplicate_connect_event_is_ignored() {
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url()).build().unwrap();
    let mut events = client.events();
    let (synced, mut sync) = tokio::sync::mpsc::unbounded_channel();
    client.on("sync", move |(n,): (u32,)| synced.send(n).unwrap());
    client.reconnect();
    let mut ws = raw.accept().await;
    server_next_json(&mut ws).await;
    ws.send(Message::text(r#"{"name":"connect","args":[1]}"#))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"name":"connect","args":[2]}"#))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"name":"sync","args":[7]}"#)).await.unwrap();
    client.connect().await.unwrap();
    wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await;
    // Once `sync` has been handled, the second connect has been too.
    assert_eq!(tokio::time::timeout(WAIT, sync.recv()).await.unwrap(), Some(7));
    assert_eq!(client.auth_reply::<u32>(), Some(1));
    assert!(!std::iter::from_fn(|| events.try_recv().ok()).any(|e| matches!(e, LocalEvent::Connect(_))));
}

#[tokio::test]
async fn the_built_in_listener_refuses_pages_of_origins_not_allowed_with_403() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    let server = start(builder().allowed_origins(["https://app.test"])).await;
    let addr = server.local_addr().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: https://evil.test\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.ends_with("origin not allowed"), "{answer}");
    // The allowed origin, and a client that sends none, connect.
    for origin in [Some("https://app.test"), None] {
        let mut request = url(&server).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", HeaderValue::from_static(origin));
        }
        let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("upgraded in time")
            .expect("upgraded");
        ws.send(Message::text(r#"{"token":"secret"}"#)).await.unwrap();
        assert_eq!(next_json(&mut ws).await["name"], "connect");
    }
}
