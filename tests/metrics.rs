//! The metrics, scraped from outside: `echo_server --http --metrics`
//! (axum, `GET /metrics` in the Prometheus text format) during a run of
//! calls, events, a refused auth and a slow consumer; each number is
//! checked against what the run did.

mod common;

use std::time::Duration;

use common::peers::{echo_server_path, spawn_listening, terminate};
use common::WAIT;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, InvokeError};
use ws_messaging_json::Json;

/// `GET /metrics` of the HTTP server at `addr`: the body.
async fn scrape(addr: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    tcp.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or("");
    body.to_string()
}

/// The value of `metric` with `labels` (each `name="value"`) in the
/// Prometheus text `text`; 0 when absent.
fn value(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            name == metric && labels.iter().all(|label| rest.contains(label))
        })
        .map(|(_, v)| v.parse().expect("a number"))
        .unwrap_or(0.0)
}

async fn client(url: &str, token: &str) -> Result<Client<Json>, ws_messaging::ConnectError> {
    let client = Client::<Json>::builder(url.to_string())
        .auth(&json!({ "token": token }))
        .auto_reconnect(false)
        .build()
        .unwrap();
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("an answer in time")?;
    Ok(client)
}

#[tokio::test]
async fn echo_server_metrics_count_what_the_clients_did() {
    let mut command = tokio::process::Command::new(echo_server_path());
    command.args(["--port", "0", "--http", "--metrics", "--max-backlog-bytes", "1048576"]);
    let (server, ws_base) = spawn_listening(command).await;
    let addr = ws_base.trim_start_matches("ws://").to_string();
    let url = format!("{ws_base}/ws");

    let alice = client(&url, "secret").await.expect("alice connects");
    for n in 0..3u32 {
        let echoed: u32 = alice.invoke("echo", (n,)).await.unwrap();
        assert_eq!(echoed, n);
    }
    assert!(matches!(
        alice.invoke::<_, Value>("fail", ("no",)).await,
        Err(InvokeError::Remote(_))
    ));
    assert!(matches!(
        alice.invoke::<_, Value>("no-such", ()).await,
        Err(InvokeError::NoProcedure { .. })
    ));
    let (said_tx, mut said) = tokio::sync::mpsc::unbounded_channel();
    alice.on("said", move |(v,): (u32,)| {
        let _ = said_tx.send(v);
    });
    for n in 0..2u32 {
        alice.send("say", (n,)).await.unwrap();
        assert_eq!(tokio::time::timeout(WAIT, said.recv()).await.unwrap(), Some(n));
    }
    // A refused auth.
    assert!(client(&url, "wrong").await.is_err());

    // A slow consumer: authenticated, then never reads while shouts pile
    // up past its 1 MiB backlog (and the socket buffers before it).
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    let (mut stalled, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    stalled
        .send(Message::text(json!({ "token": "secret" }).to_string()))
        .await
        .unwrap();
    let shouter = client(&url, "secret").await.unwrap();
    let big = "x".repeat(64 * 1024);
    let text = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            for _ in 0..8 {
                shouter.send("shout", (big.as_str(),)).await.unwrap();
            }
            let text = scrape(&addr).await;
            if value(&text, "ws_messaging_slow_consumer_closes_total", &[]) >= 1.0 {
                return text;
            }
        }
    })
    .await
    .expect("the stalled client is closed as a slow consumer");

    assert_eq!(value(&text, "ws_messaging_slow_consumer_closes_total", &[]), 1.0);
    assert_eq!(
        value(
            &text,
            "ws_messaging_calls_total",
            &[r#"name="echo""#, r#"outcome="ok""#]
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "ws_messaging_calls_total",
            &[r#"name="fail""#, r#"outcome="error""#]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "ws_messaging_calls_total",
            &[r#"name="(unregistered)""#, r#"outcome="no_procedure""#]
        ),
        1.0
    );
    assert_eq!(
        value(&text, "ws_messaging_connections_refused_total", &[r#"reason="auth""#]),
        1.0
    );
    // Alice, the shouter and the stalled client were accepted.
    assert_eq!(value(&text, "ws_messaging_connections_opened_total", &[]), 3.0);
    assert!(value(&text, "ws_messaging_connections_closed_total", &[r#"code="4009""#]) <= 1.0);
    // Frames in after the auth: alice's 5 calls and 2 events at least.
    assert!(value(&text, "ws_messaging_frames_received_total", &[r#"codec="json""#]) >= 7.0);
    assert!(value(&text, "ws_messaging_bytes_sent_total", &[r#"codec="json""#]) >= 64.0 * 1024.0);
    assert!(value(&text, "ws_messaging_broadcasts_total", &[]) >= 1.0);
    // Durations reach the recorder within a second.
    tokio::time::timeout(WAIT, async {
        loop {
            let text = scrape(&addr).await;
            if value(&text, "ws_messaging_call_duration_seconds_count", &[r#"name="echo""#]) == 3.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the three echo durations");

    // Once the stalled client is gone, two connections stay open.
    drop(stalled);
    tokio::time::timeout(WAIT, async {
        loop {
            let text = scrape(&addr).await;
            if value(&text, "ws_messaging_connections_closed_total", &[r#"code="4009""#]) == 1.0 {
                assert_eq!(value(&text, "ws_messaging_connections", &[]), 2.0, "{text}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the slow consumer's close is counted");
    assert!(terminate(server).await.success());
}
