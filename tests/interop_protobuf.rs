//! The protobuf codec against the real npm peers: `ws-messaging@2.0.0` with
//! the protobufjs 7.5.4 encoder/decoder of tests/interop/protobuf/codec.js,
//! both directions (the JavaScript client against `echo_server --codec
//! protobuf`, the Rust client against tests/interop/protobuf/js_server.js),
//! and the schema-validating server of examples/protobuf_schema.rs over real
//! sockets.

mod common;

#[allow(dead_code)]
#[path = "../examples/protobuf_schema.rs"]
mod protobuf_schema;

use std::path::PathBuf;
use std::time::Duration;

use common::peers::{echo_server_path, interop_dir, spawn_listening, terminate};
use common::{wait_event, WAIT};

/// tests/interop/protobuf/, with protobufjs installed.
fn protobuf_dir() -> PathBuf {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/protobufjs").is_dir(),
        "run `npm ci --prefix tests/interop`"
    );
    dir.join("protobuf")
}

/// Runs a node script of tests/interop/protobuf to its end.
async fn run_node_cases(script: &str, args: &[&str]) {
    let args: Vec<&str> = std::iter::once(script).chain(args.iter().copied()).collect();
    common::peers::node_cases(&protobuf_dir(), &args).await;
}
use futures_util::{SinkExt, StreamExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws_messaging::envelope::validate;
use ws_messaging::{Bytes, Client, Codec, ConnectError, Frame, InvokeError, LocalEvent, RawArgs};
use ws_messaging_protobuf::{Proto, Protobuf};

/// The conformance messages (proto/conformance.proto).
#[allow(dead_code, unreachable_pub)] // generated code
mod pb {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/generated/ws_messaging.conformance.rs"
    ));
}

use pb::{value::Kind, Auth, AuthReply, Delay, Number, Texts, Value};

// ------------------------------------------------------------ processes ---

// ----------------------------------------------------- JavaScript → Rust ---

#[tokio::test]
async fn protobufjs_writes_and_reads_the_golden_vectors() {
    run_node_cases("vectors_test.js", &[]).await;
}

#[tokio::test]
async fn javascript_client_against_the_rust_echo_server() {
    let mut server = Command::new(echo_server_path());
    server.args([
        "--codec",
        "protobuf",
        "--port",
        "0",
        "--ping-interval-ms",
        "200",
        "--auth-timeout-ms",
        "300",
    ]);
    let (server, url) = spawn_listening(server).await;
    run_node_cases("js_client_test.js", &[&url]).await;
    assert!(terminate(server).await.success());
}

// ----------------------------------------------------- Rust → JavaScript ---

async fn js_server(args: &[&str]) -> (Child, String) {
    let mut command = Command::new("node");
    command.arg(protobuf_dir().join("js_server.js")).args(args);
    spawn_listening(command).await
}

fn auth(token: &str) -> Proto<Auth> {
    Proto(Auth { token: token.into() })
}

fn secret(url: &str) -> ws_messaging::ClientBuilder<Protobuf> {
    Client::<Protobuf>::builder(url).auth(&auth("secret"))
}

fn value(kind: Kind) -> Proto<Value> {
    Proto(Value { kind: Some(kind) })
}

fn text(s: &str) -> Proto<Value> {
    value(Kind::Text(s.into()))
}

fn number(value: f64) -> Proto<Number> {
    Proto(Number { value })
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
    assert_eq!(
        client.auth_reply::<Proto<AuthReply>>().unwrap().0.user,
        "alice",
        "the connect event carries the AuthReply"
    );
    let refused = Client::<Protobuf>::builder(&url)
        .auth(&auth("nope"))
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
    // Bytes that are no Auth message, and the default auth `{}` (empty: an
    // Auth without token).
    for builder in [
        Client::<Protobuf>::builder(&url).auth(&vec![0xffu8, 0xff, 0xff]),
        Client::<Protobuf>::builder(&url),
    ] {
        let refused = builder.connect().await.unwrap_err();
        assert!(
            matches!(refused, ConnectError::Refused { code: 4003, .. }),
            "{refused:?}"
        );
    }
    let slow = Client::<Protobuf>::builder(&url)
        .auth(&auth("slow"))
        .connect()
        .await
        .unwrap();
    assert_eq!(slow.auth_reply::<Proto<AuthReply>>().unwrap().0.user, "slow");
}

#[tokio::test]
async fn rust_client_rpc_and_events_against_the_javascript_server() {
    let (_server, url) = js_server(&[]).await;
    let client = secret(&url).build().unwrap();
    client
        .register("double", |(Proto(n),): (Proto<Number>,)| async move {
            Ok(number(n.value * 2.0))
        })
        .unwrap();
    client
        .register("boom", |()| async {
            Err::<(), _>(ws_messaging::HandlerError::new("boom"))
        })
        .unwrap();
    client.register("nothing", |()| async { Ok(()) }).unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    for name in ["said", "shouted", "called", "call-failed"] {
        let tx = tx.clone();
        client.on(name, move |RawArgs(args)| tx.send((name, args.into_vec())).unwrap());
    }
    client.connect().await.unwrap();

    // Typed values, binary data included, through a JavaScript decode and
    // re-encode.
    let all_bytes: Vec<u8> = (0..=255).collect();
    let nested = value(Kind::List(pb::List {
        items: vec![
            text("日本語 🎉").0,
            value(Kind::Number(9007199254740991.0)).0,
            value(Kind::Flag(true)).0,
            Value { kind: None },
            value(Kind::Data(all_bytes.clone())).0,
            value(Kind::Map(pb::Map {
                entries: [("k".to_string(), text("v").0)].into(),
            }))
            .0,
        ],
    }));
    for v in [nested, text(""), value(Kind::Data(vec![])), value(Kind::Number(-0.5))] {
        let echoed: Proto<Value> = client.invoke("echo", (v.clone(),)).await.unwrap();
        assert_eq!(echoed, v);
    }
    let big = value(Kind::Data((0..100 * 1024).map(|i| (i * 31) as u8).collect()));
    assert_eq!(
        client.invoke::<_, Proto<Value>>("echo", (big.clone(),)).await.unwrap(),
        big
    );

    let sum: Proto<Number> = client
        .invoke("sum", (number(1.0), number(2.0), number(3.5)))
        .await
        .unwrap();
    assert_eq!(sum.value, 6.5);
    let sum: Proto<Number> = client.invoke("sum", ()).await.unwrap();
    assert_eq!(sum.value, 0.0);
    assert_eq!(
        client.invoke::<_, ()>("fail", ("Some error",)).await,
        Err(InvokeError::Remote(serde_json::json!("Error: Some error")))
    );
    assert_eq!(
        client.invoke::<_, ()>("missing", ()).await,
        Err(InvokeError::NoProcedure { name: "missing".into() })
    );
    let id: String = client.invoke("whoami", ()).await.unwrap();
    assert_eq!(id.len(), 24);

    // 100 in flight, answered out of order.
    let calls = (0..100u32).map(|i| {
        let client = client.clone();
        async move {
            let v: Proto<Value> = client
                .invoke(
                    "sleep",
                    (Proto(Delay { ms: (100 - i) % 13 }), value(Kind::Number(i.into()))),
                )
                .await
                .unwrap();
            v.0.kind
        }
    });
    assert_eq!(
        futures_util::future::join_all(calls).await,
        (0..100).map(|i| Some(Kind::Number(i.into()))).collect::<Vec<_>>()
    );

    let decode_value = |raw: &Bytes| Protobuf.decode_value::<Proto<Value>>(raw).unwrap();
    client
        .send("say", (text("one"), value(Kind::Data(vec![0, 255]))))
        .await
        .unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!(name, "said");
    assert_eq!(
        args.iter().map(decode_value).collect::<Vec<_>>(),
        [text("one"), value(Kind::Data(vec![0, 255]))]
    );
    client.send("shout", (text("hi"),)).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!(
        (name, args.iter().map(decode_value).collect::<Vec<_>>()),
        ("shouted", vec![text("hi")])
    );

    // The JavaScript server invokes our procedures.
    client.send("call-me", ("double", number(21.0))).await.unwrap();
    let (name, args) = recv(&mut events).await;
    assert_eq!(name, "called");
    assert_eq!(Protobuf.decode_value::<Proto<Number>>(&args[0]).unwrap().value, 42.0);
    client.send("call-me", ("nothing",)).await.unwrap();
    assert_eq!(recv(&mut events).await, ("called", vec![Bytes::new()]));
    client.send("call-me", ("boom",)).await.unwrap();
    assert_eq!(
        recv(&mut events).await,
        ("call-failed", vec![Bytes::from("Error: boom")])
    );
    client.send("call-me", ("missing",)).await.unwrap();
    assert_eq!(
        recv(&mut events).await,
        ("call-failed", vec![Bytes::from("NoProcedureError")])
    );
}

#[tokio::test]
async fn rust_client_reports_malformed_frames_to_the_javascript_server() {
    let (_server, url) = js_server(&[]).await;
    let client = secret(&url).connect().await.unwrap();
    let envelope = |message: ws_messaging_protobuf::pb::Message| {
        use ws_messaging_protobuf::prost::Message as _;
        ws_messaging_protobuf::pb::Envelope {
            kind: Some(ws_messaging_protobuf::pb::envelope::Kind::Message(message)),
        }
        .encode_to_vec()
    };
    let frames: Vec<Vec<u8>> = vec![
        vec![0xff, 0xff, 0xff],
        vec![],
        envelope(ws_messaging_protobuf::pb::Message {
            name: "x".into(),
            args: vec![],
            id: Some(0),
        }),
        envelope(ws_messaging_protobuf::pb::Message {
            name: String::new(),
            args: vec![],
            id: None,
        }),
    ];
    for frame in &frames {
        client.send("send-raw", (frame,)).await.unwrap();
    }
    // A round trip after them: the JavaScript server has handled our reports
    // once the reply to a later invoke arrives.
    assert_eq!(
        client
            .invoke::<_, Proto<Value>>("echo", (text("after"),))
            .await
            .unwrap(),
        text("after")
    );
    let Proto(Texts { items: reported }) = client.invoke("preprocessing-errors", ()).await.unwrap();
    assert_eq!(reported.len(), frames.len(), "{reported:?}");
    assert!(
        reported[0].starts_with("Error: decode error: not a protobuf ws_messaging.Envelope"),
        "{reported:?}"
    );
    assert!(
        reported[1..].iter().all(|r| r == "Error: Validation error"),
        "{reported:?}"
    );
    assert!(client.is_connected());
}

/// The next binary frame of a raw socket, decoded, skipping the heartbeat.
async fn next_frame(ws: &mut common::RawWs) -> Frame {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("frame") {
                WsMessage::Binary(data) => {
                    let frame = validate(Protobuf.decode_envelope(&data).unwrap(), true).unwrap();
                    if frame.name() != Some("ping") {
                        return frame;
                    }
                }
                WsMessage::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a frame in time")
}

#[tokio::test]
async fn javascript_server_reports_malformed_frames_from_a_rust_peer() {
    let (_server, url) = js_server(&[]).await;
    let mut ws = common::raw_connect(&url).await;
    let mut auth_frame = Vec::new();
    Protobuf.encode_value(&auth("secret"), &mut auth_frame).unwrap();
    ws.send(WsMessage::binary(auth_frame)).await.unwrap();
    let Frame::Message { name, args, id: None } = next_frame(&mut ws).await else {
        panic!("expected the connect event")
    };
    assert_eq!(name, "connect");
    assert_eq!(
        Protobuf.decode_value::<Proto<AuthReply>>(&args[0]).unwrap().0.user,
        "alice"
    );

    let mut ack = Vec::new();
    Protobuf
        .encode_reply::<()>(1, Err(&serde_json::json!("x")), &mut ack)
        .unwrap();
    ack.truncate(ack.len() - 3); // a length beyond the frame
    let mut no_id = Vec::new();
    Protobuf
        .encode_message("echo", &(text("x"),), Some(0), &mut no_id)
        .unwrap();
    for (frame, expected) in [
        (vec![0xffu8, 0xff, 0xff], None),
        (ack, None),
        (vec![], Some("Error: Validation error")),
        (no_id, Some("Error: Validation error")),
    ] {
        ws.send(WsMessage::binary(frame)).await.unwrap();
        let Frame::Message { name, args, id: None } = next_frame(&mut ws).await else {
            panic!("expected an event")
        };
        assert_eq!(name, "preprocessingError");
        assert_eq!(args.len(), 1);
        let reported = Protobuf.decode_error(&args[0]).unwrap();
        let reported = reported.as_str().unwrap();
        match expected {
            Some(expected) => assert_eq!(reported, expected),
            None => assert!(reported.contains("Error"), "{reported}"),
        }
    }
    // Still connected: a call is answered.
    let mut call = Vec::new();
    Protobuf
        .encode_message("echo", &(text("alive"),), Some(1), &mut call)
        .unwrap();
    ws.send(WsMessage::binary(call)).await.unwrap();
    let Frame::Reply {
        id: 1,
        outcome: Ok(result),
    } = next_frame(&mut ws).await
    else {
        panic!("expected the ack")
    };
    assert_eq!(Protobuf.decode_value::<Proto<Value>>(&result).unwrap(), text("alive"));
}

#[tokio::test]
async fn heartbeats_with_the_javascript_server() {
    // The JavaScript server pings every 50 ms and gives up after 100 ms: the
    // Rust client answers with an empty result, while its own pings get the
    // JavaScript handler's (null → empty) reply.
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

// ------------------------------------------------- schema-validating server ---

mod schema {
    use super::*;
    use protobuf_schema::pb::{CreateUser, Note, Stats, User};

    fn create(name: Option<&str>) -> Proto<CreateUser> {
        Proto(CreateUser {
            name: name.map(str::to_string),
            age: Some(30),
        })
    }

    /// Waits for the next `preprocessingError` the server sent us.
    async fn refusal(events: &mut tokio::sync::broadcast::Receiver<LocalEvent>) -> String {
        match wait_event(events, |e| matches!(e, LocalEvent::PreprocessingError(_))).await {
            LocalEvent::PreprocessingError(serde_json::Value::String(text)) => text,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn refused_frames_never_reach_a_handler_and_the_connection_carries_on() {
        let server = protobuf_schema::start(0).await.unwrap();
        let client = Client::<Protobuf>::builder(format!("ws://{}", server.local_addr().unwrap()))
            .configure(|o| {
                // A refused call is never answered: its invoke times out.
                o.ack_timeout = Duration::from_millis(300);
                o.ping_interval = Duration::from_millis(50);
            })
            .build()
            .unwrap();
        let (noted_tx, mut noted) = mpsc::unbounded_channel();
        client.on("noted", move |(text,): (String,)| noted_tx.send(text).unwrap());
        let mut events = client.events();
        client.connect().await.unwrap();

        let user: Proto<User> = client.invoke("create-user", (create(Some("ada")),)).await.unwrap();
        assert_eq!((user.id, user.name.as_str()), (1, "ada"));

        // Calls the schema refuses: the peer is told why, no reply comes.
        let refused_calls: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
            (
                "create-user",
                vec![encoded(&create(None))],
                "Error: invalid arguments for `create-user`: CreateUser.name is required",
            ),
            (
                "create-user",
                vec![vec![0x0a, 0x05, b'x']],
                "Error: invalid arguments for `create-user`: decode error: not a valid CreateUser message",
            ),
            (
                "create-user",
                vec![],
                "Error: invalid arguments for `create-user`: expected one CreateUser argument, got 0",
            ),
            (
                "stats",
                vec![vec![1]],
                "Error: invalid arguments for `stats`: expected no arguments, got 1",
            ),
            (
                "delete-everything",
                vec![],
                "Error: unknown event or procedure `delete-everything`",
            ),
        ];
        for (name, args, expected) in refused_calls {
            let (outcome, reported) = tokio::join!(client.invoke::<_, ()>(name, args), refusal(&mut events));
            assert!(reported.starts_with(expected), "{name}: {reported}");
            assert!(
                matches!(outcome, Err(InvokeError::Timeout { .. })),
                "{name}: {outcome:?}"
            );
        }

        // Events the schema refuses, then one it accepts.
        client.send("note", (Proto(Note { text: None }),)).await.unwrap();
        assert_eq!(
            refusal(&mut events).await,
            "Error: invalid arguments for `note`: Note.text is required"
        );
        client.send("gossip", ("psst",)).await.unwrap();
        assert_eq!(refusal(&mut events).await, "Error: unknown event or procedure `gossip`");
        client
            .send(
                "note",
                (Proto(Note {
                    text: Some(String::new()),
                }),),
            )
            .await
            .unwrap();
        assert_eq!(recv(&mut noted).await, "", "a set field counts even when empty");

        // The handlers ran exactly for the accepted frames, the heartbeat
        // (`ping`, a runtime name) passes, and the connection is still up.
        let Proto(stats) = client.invoke::<_, Proto<Stats>>("stats", ()).await.unwrap();
        assert_eq!(stats, Stats { users: 1, notes: 1 });
        wait_event(&mut events, |e| matches!(e, LocalEvent::Pong)).await;
        assert!(client.is_connected());
        assert!(noted.try_recv().is_err(), "a refused note reached the handler");
        server.close(1000).await;
    }

    fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        Protobuf.encode_value(value, &mut out).unwrap();
        out
    }
}
