//! Request-reply in both directions (docs/protocol.md, Envelopes, Dispatch
//! and Closing).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::sync::Notify;
use ws_messaging::{Client, HandlerError, InvokeError, RawArgs, RawValue, RegisterError, SendError, Server};
use ws_messaging_json::Json;

#[tokio::test]
async fn typed_arguments_and_results() {
    let server = server().await;
    let client = client(&server).await;
    let sum: f64 = client.invoke("sum", (1, 2, 3.5)).await.unwrap();
    assert_eq!(sum, 6.5);
    let echoed: Value = client
        .invoke("echo", (json!({"a": [1, "é", null, true]}),))
        .await
        .unwrap();
    assert_eq!(echoed, json!({"a": [1, "é", null, true]}));
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Typed {
        a: Vec<u8>,
    }
    let typed: Typed = client.invoke("echo", (json!({"a": [1, 2]}),)).await.unwrap();
    assert_eq!(typed, Typed { a: vec![1, 2] });
    // A result that does not fit the requested type is a decode error.
    let wrong = client.invoke::<_, u32>("echo", ("text",)).await;
    assert!(matches!(wrong, Err(InvokeError::Decode(_))), "{wrong:?}");
}

#[tokio::test]
async fn server_invokes_the_client() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let tx = tx.clone();
        async move {
            tx.send(endpoint).unwrap();
            Ok(())
        }
    }))
    .await;
    let client = Client::<Json>::builder(url(&server)).build().unwrap();
    client
        .register("double", |(x,): (i64,)| async move { Ok(x * 2) })
        .unwrap();
    client
        .register("boom", |()| async { Err::<(), _>(HandlerError::new("boom")) })
        .unwrap();
    client.connect().await.unwrap();
    let endpoint = rx.recv().await.unwrap();
    assert_eq!(endpoint.invoke::<_, i64>("double", (21,)).await.unwrap(), 42);
    assert_eq!(
        endpoint.invoke::<_, Value>("boom", ()).await,
        Err(InvokeError::Remote(json!("Error: boom")))
    );
    assert_eq!(
        endpoint.invoke::<_, Value>("missing", ()).await,
        Err(InvokeError::NoProcedure { name: "missing".into() })
    );
}

#[tokio::test]
async fn handler_errors_and_missing_procedures() {
    let server = server().await;
    let client = client(&server).await;
    assert_eq!(
        client.invoke::<_, Value>("fail", ("Some error",)).await,
        Err(InvokeError::Remote(json!("Error: Some error")))
    );
    assert_eq!(
        client.invoke::<_, Value>("nope", ()).await,
        Err(InvokeError::NoProcedure { name: "nope".into() })
    );
    // The error names the procedure, and keeps the wire value.
    let missing = client.invoke::<_, Value>("nope", ()).await.unwrap_err();
    assert!(missing.to_string().contains("no procedure `nope`"), "{missing}");
    assert_eq!(missing.remote_value(), Some(json!("NoProcedureError")));
    // Arguments that do not decode into the handler's types.
    let bad = client.invoke::<_, Value>("sum", ("x",)).await;
    let Err(InvokeError::Remote(Value::String(text))) = bad else {
        panic!("{bad:?}")
    };
    assert!(text.starts_with("TypeError: invalid arguments"), "{text}");
}

#[tokio::test]
async fn error_formatter_and_wire_values() {
    let server = start(builder().configure(|o| {
        o.error_formatter = Arc::new(|e: &HandlerError| json!({ "name": e.name(), "message": e.message() }));
    }))
    .await;
    let client = client(&server).await;
    assert_eq!(
        client.invoke::<_, Value>("fail", ("x",)).await,
        Err(InvokeError::Remote(json!({"name": "Error", "message": "x"})))
    );
    assert_eq!(
        client.invoke::<_, Value>("nope", ()).await,
        Err(InvokeError::Remote(json!({"name": "NoProcedureError", "message": ""})))
    );
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            endpoint.register("coded", |()| async {
                Err::<(), _>(HandlerError::value(json!({"code": 404})))
            })?;
            Ok(())
        }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    assert_eq!(
        client.invoke::<_, Value>("coded", ()).await,
        Err(InvokeError::Remote(json!({"code": 404})))
    );
}

#[tokio::test]
async fn handlers_run_concurrently_and_replies_come_out_of_order() {
    let gate = Arc::new(Notify::new());
    let (wait_gate, open_gate) = (gate.clone(), gate.clone());
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let (wait_gate, open_gate) = (wait_gate.clone(), open_gate.clone());
        async move {
            endpoint.register("wait", move |()| {
                let gate = wait_gate.clone();
                async move {
                    gate.notified().await;
                    Ok("waited")
                }
            })?;
            endpoint.register("release", move |()| {
                let gate = open_gate.clone();
                async move {
                    gate.notify_one();
                    Ok("released")
                }
            })?;
            Ok(())
        }
    }))
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.invoke::<_, String>("wait", ()).await }
    });
    // `wait` blocks until `release` runs: `release` can only answer if the
    // connection is not blocked by the first handler.
    assert_eq!(client.invoke::<_, String>("release", ()).await.unwrap(), "released");
    assert_eq!(first.await.unwrap().unwrap(), "waited");
}

#[tokio::test]
async fn many_concurrent_invokes_get_their_own_replies() {
    let server = server().await;
    let client = client(&server).await;
    let calls = (0..500u64).map(|i| {
        let client = client.clone();
        async move { client.invoke::<_, u64>("sleep", (i % 7, i)).await.unwrap() }
    });
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(results, (0..500).collect::<Vec<_>>());
}

#[tokio::test]
async fn ack_timeout_fails_with_the_invoke_id() {
    let server = server().await;
    let client = client(&server).await;
    let err = client
        .invoke_with_timeout::<_, Value>("sleep", (2_000, 1), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::Timeout { id } if id >= 1), "{err:?}");
    // The connection is still fine.
    assert_eq!(client.invoke::<_, i32>("echo", (5,)).await.unwrap(), 5);
}

#[tokio::test]
async fn pending_invokes_fail_at_once_when_the_connection_closes() {
    let server = server().await;
    let client = client(&server).await;
    let id: String = client.invoke("whoami", ()).await.unwrap();
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.invoke::<_, Value>("sleep", (60_000, 1)).await })
        })
        .collect();
    // Make sure all three are on the wire, then drop the connection.
    assert_eq!(client.invoke::<_, i32>("echo", (1,)).await.unwrap(), 1);
    server.get(&id).unwrap().close(4000, "bye");
    for call in pending {
        let result = tokio::time::timeout(WAIT, call).await.expect("failed at once").unwrap();
        assert!(
            matches!(result, Err(InvokeError::Connection { id: Some(_) })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn registration_rules() {
    let server = server().await;
    let client = Client::<Json>::builder(url(&server)).build().unwrap();
    client.register("a", |()| async { Ok(()) }).unwrap();
    assert_eq!(
        client.register("a", |()| async { Ok(()) }),
        Err(RegisterError::Duplicate("a".into()))
    );
    for reserved in ["ping", "connect", "close", "open", "error", "pong", "retry", ""] {
        assert_eq!(
            client.register(reserved, |()| async { Ok(()) }),
            Err(RegisterError::ReservedName(reserved.into()))
        );
    }
    assert!(client.unregister("a"));
    assert!(!client.unregister("a"));
    client.register("a", |()| async { Ok(()) }).unwrap();
    assert!(matches!(
        client.invoke::<_, ()>("ping", ()).await,
        Err(InvokeError::Send(SendError::ReservedName(_)))
    ));
}

#[tokio::test]
async fn raw_arguments_escape_hatch() {
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            endpoint.register("raw", |RawArgs(args)| async move {
                Ok(args
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>())
            })?;
            endpoint.register("opt", |(a, b): (i32, Option<i32>)| async move { Ok((a, b)) })?;
            Ok(())
        }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let raw: Vec<String> = client.invoke("raw", (1, "two", json!({"x": null}))).await.unwrap();
    assert_eq!(raw, vec!["1", "\"two\"", "{\"x\":null}"]);
    // Missing trailing arguments decode as absent; extra ones are ignored.
    assert_eq!(
        client.invoke::<_, (i32, Option<i32>)>("opt", (1,)).await.unwrap(),
        (1, None)
    );
    assert_eq!(
        client.invoke::<_, (i32, Option<i32>)>("opt", (1, 2, 3)).await.unwrap(),
        (1, Some(2))
    );
}

#[tokio::test]
async fn panicking_handlers_and_listeners_do_not_take_the_connection_down() {
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            endpoint.register("panic", |()| async {
                if true {
                    panic!("handler bug")
                } else {
                    Ok(())
                }
            })?;
            endpoint.register("ok", |()| async { Ok("fine") })?;
            endpoint.on("bad", |()| panic!("listener bug"));
            Ok(())
        }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let endpoint = server.connections().pop().unwrap();
    let mut events = endpoint.events();
    assert_eq!(
        client.invoke::<_, Value>("panic", ()).await,
        Err(InvokeError::Remote(json!("Error: the handler panicked")))
    );
    client.send("bad", ()).await.unwrap();
    let event = wait_event(&mut events, |e| matches!(e, ws_messaging::LocalEvent::Error(_))).await;
    assert_eq!(
        event,
        ws_messaging::LocalEvent::Error("listener of `bad` panicked".into())
    );
    assert_eq!(client.invoke::<_, String>("ok", ()).await.unwrap(), "fine");
}

#[tokio::test]
async fn calls_over_the_limit_are_refused_while_the_connection_keeps_reading() {
    let gate = Arc::new(Notify::new());
    let handler_gate = gate.clone();
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let server = start(
        Server::<Json>::builder()
            .configure(|o| o.max_concurrent_calls = 1)
            .on_connection(move |endpoint, _: Value| {
                let gate = handler_gate.clone();
                let entered_tx = entered_tx.clone();
                async move {
                    endpoint.register("wait", move |()| {
                        let gate = gate.clone();
                        let entered_tx = entered_tx.clone();
                        async move {
                            entered_tx.send(()).unwrap();
                            gate.notified().await;
                            Ok("waited")
                        }
                    })?;
                    Ok(())
                }
            }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let blocked = tokio::spawn({
        let client = client.clone();
        async move { client.invoke::<_, String>("wait", ()).await }
    });
    entered.recv().await.unwrap();
    // With the one slot taken, a second call is refused at once with a
    // BusyError, while the connection keeps being read: events and their
    // replies still flow.
    let refused = client.invoke::<_, i32>("echo", (1,)).await;
    match refused {
        Err(InvokeError::Remote(Value::String(error))) => {
            assert!(error.starts_with("BusyError: too many calls in progress"), "{error}");
        }
        other => panic!("expected a BusyError, got {other:?}"),
    }
    let (said_tx, mut said) = tokio::sync::mpsc::unbounded_channel();
    client.on("said", move |(text,): (String,)| {
        let _ = said_tx.send(text);
    });
    client.send("say", ("still reading",)).await.unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, said.recv()).await.unwrap().unwrap(),
        "still reading"
    );
    gate.notify_one();
    assert_eq!(blocked.await.unwrap().unwrap(), "waited");
    assert_eq!(client.invoke::<_, i32>("echo", (2,)).await.unwrap(), 2);
}

#[tokio::test]
async fn a_raw_value_result_goes_out_as_it_came_in() {
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            // `first` answers with its first argument's bytes, never decoded.
            endpoint.register("first", |RawArgs(args)| async move {
                args.into_iter()
                    .next()
                    .map(RawValue)
                    .ok_or_else(|| HandlerError::new("no argument"))
            })?;
            // A RawValue nested in another value cannot be encoded: the caller
            // is told so.
            endpoint.register(
                "nested",
                |RawArgs(args)| async move { Ok((RawValue(args[0].clone()),)) },
            )?;
            Ok(())
        }),
    )
    .await;
    let client = client(&server).await;
    let value = json!({"a": [1, "é", null, true, 1.5e300], "b": {"c": "\"q\""}});
    let back: Value = client.invoke("first", (&value, 2)).await.unwrap();
    assert_eq!(back, value);
    assert_eq!(
        client.invoke::<_, Value>("first", ()).await,
        Err(InvokeError::Remote(json!("Error: no argument")))
    );
    let nested = client.invoke::<_, Value>("nested", (1,)).await;
    let Err(InvokeError::Remote(Value::String(error))) = nested else {
        panic!("{nested:?}")
    };
    assert!(error.contains("RawValue"), "{error}");
}

#[tokio::test]
async fn pending_invokes_fail_as_soon_as_the_peer_sends_its_close_frame() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;

    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url())
        .auto_reconnect(false)
        .build()
        .unwrap();
    let connecting = {
        let client = client.clone();
        tokio::spawn(async move { client.connect().await })
    };
    let mut ws = raw.accept().await;
    server_next_json(&mut ws).await; // the auth value
    ws.send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    connecting.await.unwrap().unwrap();
    let mut invoking = tokio::spawn(async move { client.invoke::<_, Value>("slow", ()).await });
    assert_eq!(server_next_json(&mut ws).await["name"], "slow");
    // The server closes (as after a message too big for it), and keeps the
    // TCP connection open: the client answers the close and waits for the
    // end of the connection, which comes only after its close grace.
    let close = CloseFrame {
        code: 1009.into(),
        reason: "Message too big".into(),
    };
    ws.send(Message::Close(Some(close))).await.unwrap();
    let socket_end = async {
        // The client's answer to the close, then the end of its TCP stream.
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
        let mut buf = [0u8; 256];
        while tokio::io::AsyncReadExt::read(ws.get_mut(), &mut buf)
            .await
            .is_ok_and(|n| n > 0)
        {}
    };
    let outcome = tokio::time::timeout(WAIT, async {
        tokio::select! {
            biased;
            () = socket_end => panic!("the client ended the connection before the invoke failed"),
            outcome = &mut invoking => outcome.unwrap(),
        }
    })
    .await
    .expect("the invoke ended in time");
    assert!(matches!(outcome, Err(InvokeError::Connection { .. })), "{outcome:?}");
}

#[tokio::test]
async fn handlers_take_their_connection_state_and_server_as_arguments() {
    use ws_messaging::{Endpoint, State};

    #[derive(Clone)]
    struct Greeting(&'static str);

    let server = start(
        Server::<Json>::builder()
            .state(Greeting("hello"))
            .on_connection(|_: Endpoint<Json>, _: Value| async move { Ok(()) }),
    )
    .await;
    // Once for every connection, present and future.
    server
        .register(
            "greet",
            |me: Endpoint<Json>, State(g): State<Greeting>, (name,): (String,)| async move {
                Ok(format!("{} {name}, from {}", g.0, me.id().unwrap().len()))
            },
        )
        .unwrap();
    server
        .register("connections", |server: Server<Json>, ()| async move {
            Ok(server.connection_count())
        })
        .unwrap();
    server
        .register("missing-state", |State(n): State<u64>, ()| async move { Ok(n) })
        .unwrap();
    server.on("say", |me: Endpoint<Json>, (text,): (String,)| {
        let said = ws_messaging::EncodedMessage::encode(me.codec(), "said", (text,)).unwrap();
        me.queue_encoded(&said).unwrap();
    });
    assert!(matches!(
        server.register("greet", |(): ()| async move { Ok(()) }),
        Err(RegisterError::Duplicate(_))
    ));

    let a = client(&server).await;
    let b = client(&server).await;
    let greeting: String = a.invoke("greet", ("ann",)).await.unwrap();
    assert_eq!(greeting, "hello ann, from 24");
    assert_eq!(b.invoke::<_, usize>("connections", ()).await.unwrap(), 2);
    // A state never given: the call is answered with an error that says so.
    let Err(InvokeError::Remote(Value::String(error))) = a.invoke::<_, u64>("missing-state", ()).await else {
        panic!("expected an error");
    };
    assert!(error.contains("no state of type `u64`"), "{error}");
    // The listener answers on the connection the event came in on.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.on("said", move |(text,): (String,)| {
        let _ = tx.send(text);
    });
    b.send("say", ("hi",)).await.unwrap();
    assert_eq!(tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap(), "hi");

    // A connection's own procedure is called instead of the server's.
    let endpoint = server.connections().into_iter().next().unwrap();
    endpoint
        .register("greet", |(name,): (String,)| async move { Ok(format!("own {name}")) })
        .unwrap();
    let clients = [a, b];
    let mut answers: Vec<String> = Vec::new();
    for client in &clients {
        answers.push(client.invoke("greet", ("x",)).await.unwrap());
    }
    answers.sort();
    assert_eq!(answers, ["hello x, from 24", "own x"]);
    assert!(server.unregister("greet"));
}

#[tokio::test]
async fn a_connection_hook_that_never_decides_is_refused_after_the_hook_timeout() {
    let server = start(
        Server::<Json>::builder()
            .hook_timeout(Duration::from_millis(200))
            .on_connection(|_, _: Value| std::future::pending::<Result<(), HandlerError>>()),
    )
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::text("{}"))
        .await
        .unwrap();
    let (code, reason) = next_close(&mut ws).await;
    assert_eq!(code, 4003);
    assert!(reason.contains("hook_timeout"), "{reason}");
    tokio::time::timeout(WAIT, server.close(1001))
        .await
        .expect("closed in time");
}
