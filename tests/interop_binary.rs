//! Interoperability of the binary codecs with the real npm peers
//! (tests/interop/, installed with `npm ci`): MessagePack against
//! ws-messaging@2.0.0 with msgpack-lite, CBOR against it with cbor-x.
//!
//! For each format: the JavaScript client test against
//! `echo_server --codec FORMAT`, the golden vectors against the npm codec,
//! and the Rust `Client` against `js_server.js --codec FORMAT`.

mod common;

use std::time::Duration;

use common::peers::{echo_server_path, interop_dir, node_cases, spawn_listening, terminate};
use common::{wait_event, WAIT};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use ws_messaging::{Client, ClientBuilder, Codec, ConnectError, InvokeError, LocalEvent, RawArgs};
use ws_messaging_cbor::Cbor;
use ws_messaging_msgpack::MsgPack;

async fn javascript_client_against_the_rust_echo_server(format: &str) {
    let mut server = Command::new(echo_server_path());
    server.args(["--port", "0", "--ping-interval-ms", "200", "--auth-timeout-ms", "300"]);
    server.args(["--codec", format]);
    let (server, url) = spawn_listening(server).await;
    node_cases(&interop_dir(), &["js_client_test.js", &url, "--codec", format]).await;
    // SIGTERM: closes every connection and exits 0.
    assert!(terminate(server).await.success());
}

async fn js_server(format: &str, args: &[&str]) -> (Child, String) {
    let mut command = Command::new("node");
    command
        .arg(interop_dir().join("js_server.js"))
        .args(["--codec", format])
        .args(args);
    spawn_listening(command).await
}

fn secret<C: Codec + Default>(url: &str) -> ClientBuilder<C> {
    Client::<C>::builder(url).auth(&json!({ "token": "secret" }))
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

async fn auth<C: Codec + Default>(format: &str) {
    let (_server, url) = js_server(format, &[]).await;
    let client = secret::<C>(&url).connect().await.unwrap();
    assert_eq!(client.auth_reply::<Value>(), Some(json!({"user": "alice"})));
    let refused = Client::<C>::builder(&url)
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
    let refused = Client::<C>::builder(&url).auth(&[1, 2]).connect().await.unwrap_err();
    assert!(matches!(refused, ConnectError::Refused { code: 4003, .. }));
    let refused = Client::<C>::builder(&url)
        .auth(&ByteBuf::from(b"secret".to_vec()))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(refused, ConnectError::Refused { code: 4003, .. }));
    let slow = Client::<C>::builder(&url)
        .auth(&json!({"token": "slow"}))
        .connect()
        .await
        .unwrap();
    assert_eq!(slow.auth_reply::<Value>(), Some(json!({"user": "slow"})));
}

/// A typed payload with a binary field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Upload {
    name: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    size: u64,
}

async fn rpc_and_events<C: Codec + Default>(format: &str) {
    let (_server, url) = js_server(format, &[]).await;
    let client = secret::<C>(&url).build().unwrap();
    client
        .register("double", |(x,): (i64,)| async move { Ok(x * 2) })
        .unwrap();
    client
        .register("boom", |()| async {
            Err::<(), _>(ws_messaging::HandlerError::new("boom"))
        })
        .unwrap();
    client
        .register("reverse", |(mut bytes,): (ByteBuf,)| async move {
            bytes.reverse();
            Ok(bytes)
        })
        .unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    for name in ["said", "shouted", "called", "call-failed"] {
        let tx = tx.clone();
        client.on(name, move |RawArgs(args)| tx.send((name, args.into_vec())).unwrap());
    }
    client.connect().await.unwrap();

    let edge = json!({"nested": {"list": [1, "two", null, true, -7, 0.5]}, "text": "日本語 🎉", "": {}});
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

    // Numbers: JavaScript sees numbers, not BigInts, and its floats come
    // back into Rust integers.
    let numbers = (1u64 << 40, -(1i64 << 40), (1u64 << 53) - 1, -3_000_000_000i64, u32::MAX);
    let described: Vec<String> = client.invoke("describe", numbers).await.unwrap();
    assert_eq!(described, ["number"; 5]);
    assert_eq!(client.invoke::<_, u64>("echo", (1u64 << 40,)).await.unwrap(), 1 << 40);
    assert_eq!(
        client.invoke::<_, i64>("echo", (-3_000_000_000i64,)).await.unwrap(),
        -3_000_000_000
    );
    assert_eq!(
        client.invoke::<_, u64>("sum", (1u64 << 40, 1u64 << 31)).await.unwrap(),
        (1 << 40) + (1 << 31)
    );

    // Binary payloads: bytes are a Buffer in JavaScript and come back equal.
    let blob = ByteBuf::from(vec![0, 1, 127, 128, 255]);
    let described: Vec<String> = client
        .invoke("describe", (&blob, ByteBuf::new(), vec![1u8, 2]))
        .await
        .unwrap();
    assert_eq!(described, ["Buffer", "Buffer", "Array"], "a plain Vec<u8> is an array");
    assert_eq!(client.invoke::<_, ByteBuf>("echo", (&blob,)).await.unwrap(), blob);
    let large = ByteBuf::from((0..256 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    assert_eq!(client.invoke::<_, ByteBuf>("echo", (&large,)).await.unwrap(), large);
    let upload = Upload {
        name: "a.bin".into(),
        data: vec![9; 1000],
        size: 1 << 33,
    };
    assert_eq!(client.invoke::<_, Upload>("echo", (&upload,)).await.unwrap(), upload);

    // 200 in flight, answered out of order.
    let calls = (0..200u64).map(|i| {
        let client = client.clone();
        async move { client.invoke::<_, u64>("sleep", ((200 - i) % 13, i)).await.unwrap() }
    });
    assert_eq!(
        futures_util::future::join_all(calls).await,
        (0..200).collect::<Vec<_>>()
    );

    let codec = C::default();
    let decode =
        |args: &[bytes::Bytes]| -> Vec<Value> { args.iter().map(|a| codec.decode_value(a).unwrap()).collect() };
    client.send("say", (1, "two")).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!((name, decode(&args)), ("said", vec![json!(1), json!("two")]));
    client.send("say", (&blob, "text")).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!(name, "said");
    assert_eq!(codec.decode_value::<ByteBuf>(&args[0]).unwrap(), blob);
    client.send("shout", ("hi",)).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!((name, decode(&args)), ("shouted", vec![json!("hi")]));
    client.send("call-me", ("double", 21)).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!((name, decode(&args)), ("called", vec![json!(42)]));
    client
        .send("call-me", ("reverse", ByteBuf::from(vec![1, 2, 3])))
        .await
        .unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!(name, "called");
    assert_eq!(
        codec.decode_value::<ByteBuf>(&args[0]).unwrap(),
        ByteBuf::from(vec![3, 2, 1])
    );
    client.send("call-me", ("boom",)).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!((name, decode(&args)), ("call-failed", vec![json!("Error: boom")]));
    client.send("call-me", ("missing",)).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!((name, decode(&args)), ("call-failed", vec![json!("NoProcedureError")]));
}

async fn malformed_frames<C: Codec + Default>(format: &str, malformed: &[&[u8]]) {
    let (_server, url) = js_server(format, &[]).await;
    let client = secret::<C>(&url).connect().await.unwrap();
    let codec = C::default();
    // Well-formed, but not envelopes.
    let invalid = [
        json!({"foo": 1}),
        json!({"name": "x", "args": [], "id": 0}),
        json!([1, 2]),
        json!({"id": 1.5, "result": 1}),
        json!("just a string"),
    ];
    let mut frames: Vec<ByteBuf> = malformed.iter().map(|f| ByteBuf::from(f.to_vec())).collect();
    for value in &invalid {
        let mut frame = Vec::new();
        codec.encode_value(value, &mut frame).unwrap();
        frames.push(ByteBuf::from(frame));
    }
    for frame in &frames {
        // The JavaScript server writes the bytes as a binary frame.
        client.send("send-raw", (frame,)).await.unwrap();
    }
    // A round trip after them: the JavaScript server has handled our reports
    // once the reply to a later invoke arrives.
    assert_eq!(client.invoke::<_, i32>("echo", (1,)).await.unwrap(), 1);
    let reported: Vec<String> = client.invoke("preprocessing-errors", ()).await.unwrap();
    assert_eq!(reported.len(), frames.len(), "{reported:?}");
    let (decode_errors, validation_errors) = reported.split_at(malformed.len());
    assert!(
        decode_errors.iter().all(|r| r.starts_with("Error: decode error")),
        "{reported:?}"
    );
    assert!(
        validation_errors.iter().all(|r| r == "Error: Validation error"),
        "{reported:?}"
    );
    assert!(client.is_connected());
}

async fn heartbeats<C: Codec + Default>(format: &str) {
    // The JavaScript server pings every 50 ms and gives up after 100 ms: the
    // Rust client must answer, while its own pings get pongs.
    let (_server, url) = js_server(format, &["--ping-interval-ms", "50", "--ping-timeout-ms", "100"]).await;
    let client = secret::<C>(&url)
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
async fn msgpack_javascript_client_against_the_rust_echo_server() {
    javascript_client_against_the_rust_echo_server("msgpack").await;
}

#[tokio::test]
async fn msgpack_golden_vectors_match_msgpack_lite() {
    node_cases(&interop_dir(), &["codecs/vectors.js", "--codec", "msgpack"]).await;
}

#[tokio::test]
async fn msgpack_rust_client_auth_against_the_javascript_server() {
    auth::<MsgPack>("msgpack").await;
}

#[tokio::test]
async fn msgpack_rust_client_rpc_events_and_binary_against_the_javascript_server() {
    rpc_and_events::<MsgPack>("msgpack").await;
}

#[tokio::test]
async fn msgpack_rust_client_reports_malformed_frames_to_the_javascript_server() {
    // The reserved marker, a truncated map, a string claiming 4 GiB, trailing bytes.
    let malformed: &[&[u8]] = &[
        &[0xc1],
        &[0x82, 0xa4, b'n', b'a', b'm', b'e'],
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        &[0x80, 0x80],
    ];
    malformed_frames::<MsgPack>("msgpack", malformed).await;
}

#[tokio::test]
async fn msgpack_heartbeats_with_the_javascript_server() {
    heartbeats::<MsgPack>("msgpack").await;
}

#[tokio::test]
async fn cbor_javascript_client_against_the_rust_echo_server() {
    javascript_client_against_the_rust_echo_server("cbor").await;
}

#[tokio::test]
async fn cbor_golden_vectors_match_cbor_x() {
    node_cases(&interop_dir(), &["codecs/vectors.js", "--codec", "cbor"]).await;
}

#[tokio::test]
async fn cbor_rust_client_auth_against_the_javascript_server() {
    auth::<Cbor>("cbor").await;
}

#[tokio::test]
async fn cbor_rust_client_rpc_events_and_binary_against_the_javascript_server() {
    rpc_and_events::<Cbor>("cbor").await;
}

#[tokio::test]
async fn cbor_rust_client_reports_malformed_frames_to_the_javascript_server() {
    // A truncated map, a string claiming 2^64 bytes, a stray break, an
    // unassigned simple value, text that is not UTF-8.
    let malformed: &[&[u8]] = &[
        &[0xa2, 0x64, b'n', b'a', b'm', b'e'],
        &[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xff],
        &[0xe0],
        &[0x62, 0xc3, 0x28],
    ];
    malformed_frames::<Cbor>("cbor", malformed).await;
}

#[tokio::test]
async fn cbor_heartbeats_with_the_javascript_server() {
    heartbeats::<Cbor>("cbor").await;
}
