//! Interoperability with the real npm package `ws-messaging@2.0.0`
//! (tests/interop/, installed with `npm ci`): the JavaScript client against
//! the Rust `echo_server`, and the Rust client against a JavaScript server.

mod common;

use std::time::Duration;

use common::peers::{echo_server_path, interop_dir, node_cases, spawn_listening, terminate};
use common::{wait_event, WAIT};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use ws_messaging::{Client, ConnectError, InvokeError, LocalEvent, RetryConfig};
use ws_messaging_json::Json;

#[tokio::test]
async fn javascript_client_against_the_rust_echo_server() {
    let dir = interop_dir();
    let mut server = Command::new(echo_server_path());
    server.args(["--port", "0", "--ping-interval-ms", "200", "--auth-timeout-ms", "300"]);
    let (server, url) = spawn_listening(server).await;
    node_cases(&dir, &["js_client_test.js", &url]).await;
    // SIGTERM: closes every connection and exits 0.
    assert!(terminate(server).await.success());
}

#[tokio::test]
async fn javascript_client_against_the_rust_echo_server_with_recovery_on() {
    // The JavaScript client does not ask for the extension: it sees the
    // 2.0.0 protocol, whatever the server offers.
    let dir = interop_dir();
    let mut server = Command::new(echo_server_path());
    server.args([
        "--port",
        "0",
        "--ping-interval-ms",
        "200",
        "--auth-timeout-ms",
        "300",
        "--recovery",
    ]);
    let (server, url) = spawn_listening(server).await;
    node_cases(&dir, &["js_client_test.js", &url]).await;
    assert!(terminate(server).await.success());
}

async fn js_server(args: &[&str]) -> (Child, String) {
    let mut command = Command::new("node");
    command.arg(interop_dir().join("js_server.js")).args(args);
    spawn_listening(command).await
}

fn secret(url: &str) -> ws_messaging::ClientBuilder<Json> {
    Client::<Json>::builder(url).auth(&json!({ "token": "secret" }))
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

#[tokio::test]
async fn rust_client_auth_against_the_javascript_server() {
    let (_server, url) = js_server(&[]).await;
    let client = secret(&url).connect().await.unwrap();
    assert_eq!(client.auth_reply::<Value>(), Some(json!({"user": "alice"})));
    let refused = Client::<Json>::builder(&url)
        .auth(&json!({"token": "nope"}))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        ConnectError::Refused {
            code: 4003,
            reason: "bad token".into()
        }
    );
    let refused = Client::<Json>::builder(&url).auth(&[1, 2]).connect().await.unwrap_err();
    assert!(matches!(refused, ConnectError::Refused { code: 4003, .. }));
    let slow = Client::<Json>::builder(&url)
        .auth(&json!({"token": "slow"}))
        .connect()
        .await
        .unwrap();
    assert_eq!(slow.auth_reply::<Value>(), Some(json!({"user": "slow"})));
}

#[tokio::test]
async fn rust_client_rpc_and_events_against_the_javascript_server() {
    let (_server, url) = js_server(&[]).await;
    let client = secret(&url).build().unwrap();
    client
        .register("double", |(x,): (i64,)| async move { Ok(x * 2) })
        .unwrap();
    client
        .register("boom", |()| async {
            Err::<(), _>(ws_messaging::HandlerError::new("boom"))
        })
        .unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    for name in ["said", "shouted", "called", "call-failed"] {
        let tx = tx.clone();
        client.on(name, move |args: Vec<Value>| tx.send((name, args)).unwrap());
    }
    client.connect().await.unwrap();

    let edge = json!({"nested": {"list": [1, "two", null, true, 9007199254740991u64]}, "text": "日本語 🎉"});
    assert_eq!(client.invoke::<_, Value>("echo", (edge.clone(),)).await.unwrap(), edge);
    assert_eq!(client.invoke::<_, f64>("sum", (1, 2, 3.5)).await.unwrap(), 6.5);
    assert_eq!(client.invoke::<_, f64>("sum", ()).await.unwrap(), 0.0);
    assert_eq!(
        client.invoke::<_, Value>("fail", ("Some error",)).await,
        Err(InvokeError::Remote(json!("Error: Some error")))
    );
    assert_eq!(
        client.invoke::<_, Value>("missing", ()).await,
        Err(InvokeError::NoProcedure { name: "missing".into() })
    );
    let id: String = client.invoke("whoami", ()).await.unwrap();
    assert_eq!(id.len(), 24);
    let big = "x".repeat(100 * 1024);
    assert_eq!(client.invoke::<_, String>("echo", (&big,)).await.unwrap(), big);

    // 200 in flight, answered out of order.
    let calls = (0..200u64).map(|i| {
        let client = client.clone();
        async move { client.invoke::<_, u64>("sleep", ((200 - i) % 13, i)).await.unwrap() }
    });
    assert_eq!(
        futures_util::future::join_all(calls).await,
        (0..200).collect::<Vec<_>>()
    );

    client.send("say", (1, "two")).await.unwrap();
    assert_eq!(recv(&mut events).await, ("said", vec![json!(1), json!("two")]));
    client.send("shout", ("hi",)).await.unwrap();
    assert_eq!(recv(&mut events).await, ("shouted", vec![json!("hi")]));
    client.send("call-me", ("double", 21)).await.unwrap();
    assert_eq!(recv(&mut events).await, ("called", vec![json!(42)]));
    client.send("call-me", ("boom",)).await.unwrap();
    assert_eq!(recv(&mut events).await, ("call-failed", vec![json!("Error: boom")]));
    client.send("call-me", ("missing",)).await.unwrap();
    assert_eq!(
        recv(&mut events).await,
        ("call-failed", vec![json!("NoProcedureError")])
    );
}

#[tokio::test]
async fn rust_client_reports_malformed_frames_to_the_javascript_server() {
    let (_server, url) = js_server(&[]).await;
    let client = secret(&url).connect().await.unwrap();
    let frames = ["not json", r#"{"foo":1}"#, r#"{"name":"x","args":[],"id":0}"#, "[1,2]"];
    for frame in frames {
        client.send("send-raw", (frame,)).await.unwrap();
    }
    // A round trip after them: the JavaScript server has handled our reports
    // once the reply to a later invoke arrives.
    assert_eq!(client.invoke::<_, i32>("echo", (1,)).await.unwrap(), 1);
    let reported: Vec<String> = client.invoke("preprocessing-errors", ()).await.unwrap();
    assert_eq!(reported.len(), frames.len(), "{reported:?}");
    assert!(reported[0].starts_with("Error: decode error"), "{reported:?}");
    assert!(
        reported[1..].iter().all(|r| r == "Error: Validation error"),
        "{reported:?}"
    );
    assert!(client.is_connected());
}

#[tokio::test]
async fn heartbeats_with_the_javascript_server() {
    // The JavaScript server pings every 50 ms and gives up after 100 ms: the
    // Rust client must answer, while its own pings get pongs.
    let (_server, url) = js_server(&["--ping-interval-ms", "50", "--ping-timeout-ms", "100"]).await;
    let client = secret(&url)
        .configure(|o| o.ping_interval = Duration::from_millis(40))
        .build()
        .unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    for _ in 0..8 {
        let event = wait_event(&mut events, |e| {
            matches!(e, LocalEvent::Pong | LocalEvent::Close { .. })
        })
        .await;
        assert_eq!(event, LocalEvent::Pong);
    }
    assert!(client.is_connected());
}

#[tokio::test]
async fn close_codes_from_the_javascript_server() {
    let (_server, url) = js_server(&[]).await;
    let retry = RetryConfig::default()
        .min_timeout(Duration::from_millis(20))
        .randomize(false);
    let client = secret(&url).retry(retry).build().unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    // 4008 is reconnectable.
    client.invoke::<_, ()>("kick", (4008, "Ping timeout")).await.unwrap();
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 4008,
            reason: "Ping timeout".into()
        }
    );
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Retry(_))).await,
        LocalEvent::Retry(1)
    );
    wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await;
    // 4003 terminates.
    client.invoke::<_, ()>("kick", (4003, "go away")).await.unwrap();
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 4003,
            reason: "go away".into()
        }
    );
    assert!(client.is_terminated());
}
