//! `echo_server --http`: the conformance server inside an axum HTTP server
//! (crate `ws-messaging-axum`), at `/ws` beside `GET /health`, exercised by
//! the real npm client `ws-messaging@2.0.0` (tests/interop/, installed with
//! `npm ci --prefix tests/interop`) and by plain HTTP requests.
//!
//! `cargo test --test http`

mod common;

use common::peers::{echo_server_path, interop_dir, node_cases, spawn_listening, terminate};
use common::{wait_event, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use ws_messaging::{Client, LocalEvent};
use ws_messaging_json::Json;

/// `echo_server --port 0 --http` with the interop timeouts and `extra`;
/// the process and its `ws://127.0.0.1:PORT` base URL (no path).
async fn echo_server_http(extra: &[&str]) -> (Child, String) {
    let mut server = Command::new(echo_server_path());
    server
        .args([
            "--port",
            "0",
            "--http",
            "--ping-interval-ms",
            "200",
            "--auth-timeout-ms",
            "300",
        ])
        .args(extra);
    spawn_listening(server).await
}

/// One HTTP/1.1 request (`Connection: close`) to the server at `base`
/// (`ws://HOST:PORT`); the status and the body.
async fn get(base: &str, path: &str) -> (u16, String) {
    let addr = base.strip_prefix("ws://").unwrap();
    tokio::time::timeout(WAIT, async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
        let status = head.split(' ').nth(1).expect("a status line").parse().unwrap();
        (status, body.to_string())
    })
    .await
    .expect("an answer in time")
}

#[tokio::test]
async fn javascript_client_against_echo_server_http() {
    let dir = interop_dir();
    let (server, base) = echo_server_http(&[]).await;

    assert_eq!(get(&base, "/health").await, (200, "ok".to_string()));
    // `/ws` without the upgrade headers is an HTTP error, not a connection.
    let (status, _) = get(&base, "/ws").await;
    assert!((400..500).contains(&status), "GET /ws without upgrade: {status}");
    assert_eq!(get(&base, "/nothing-here").await.0, 404);

    node_cases(&dir, &["js_client_test.js", &format!("{base}/ws")]).await;

    // SIGTERM: closes every connection with 1001, stops the HTTP server,
    // exits 0.
    let client = Client::<Json>::builder(format!("{base}/ws"))
        .auth(&json!({"token": "secret"}))
        .build()
        .unwrap();
    let mut events = client.events();
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connected in time")
        .unwrap();
    assert_eq!(client.invoke::<_, Value>("echo", ("x",)).await.unwrap(), json!("x"));
    assert!(terminate(server).await.success());
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 1001,
            reason: String::new()
        }
    );
}

#[tokio::test]
async fn javascript_client_against_echo_server_http_msgpack() {
    let dir = interop_dir();
    let (server, base) = echo_server_http(&["--codec", "msgpack"]).await;
    node_cases(
        &dir,
        &["js_client_test.js", &format!("{base}/ws"), "--codec", "msgpack"],
    )
    .await;
    assert!(terminate(server).await.success());
}
