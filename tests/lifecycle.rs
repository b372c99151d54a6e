//! Heartbeat, closing, reconnection, server shutdown (docs/protocol.md,
//! Heartbeat, Closing, Reconnection and Server side).

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, ConnectError, InvokeError, LocalEvent, SendError, Server};
use ws_messaging_json::Json;

#[tokio::test]
async fn pings_flow_both_ways() {
    let server = start(builder().configure(|o| o.ping_interval = Duration::from_millis(30))).await;
    let client = client_builder(&server)
        .configure(|o| o.ping_interval = Duration::from_millis(30))
        .build()
        .unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    let endpoint = server.connections().pop().unwrap();
    let mut server_events = endpoint.events();
    wait_event(&mut events, |e| *e == LocalEvent::Ping).await;
    wait_event(&mut events, |e| *e == LocalEvent::Pong).await;
    wait_event(&mut server_events, |e| *e == LocalEvent::Ping).await;
    wait_event(&mut server_events, |e| *e == LocalEvent::Pong).await;
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_ping_answered_with_a_raw_peer_looks_like_javascript() {
    // The server's ping is an invoke of `ping` with no arguments; the
    // answer is `{"id":N,"result":null}`.
    let server = start(builder().configure(|o| o.ping_interval = Duration::from_millis(20))).await;
    let mut ws = raw_authed(&server).await;
    let ping = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(Message::Text(text))) = ws.next().await {
                return serde_json::from_str::<Value>(&text).unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ping["name"], "ping");
    assert_eq!(ping["args"], json!([]));
    let id = ping["id"].as_u64().unwrap();
    // Our own ping is answered with null.
    ws.send(Message::text(r#"{"name":"ping","args":[],"id":77}"#))
        .await
        .unwrap();
    ws.send(Message::text(format!(r#"{{"id":{id},"result":null}}"#)))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":77,"result":null}));
}

#[tokio::test]
async fn an_unanswered_ping_closes_the_server_side_with_4008() {
    let server = start(builder().configure(|o| {
        o.ping_interval = Duration::from_millis(20);
        o.ping_timeout = Duration::from_millis(50);
    }))
    .await;
    let mut ws = raw_authed(&server).await;
    // Read (and ignore) the pings until the close comes.
    assert_eq!(next_close(&mut ws).await, (4008, "Ping timeout".into()));
}

#[tokio::test]
async fn an_unanswered_ping_closes_the_client_with_4008_and_it_reconnects() {
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url())
        .configure(|o| {
            o.ping_interval = Duration::from_millis(20);
            o.ping_timeout = Duration::from_millis(50);
        })
        .retry(fast_retry())
        .build()
        .unwrap();
    let mut events = client.events();
    client.reconnect();
    let mut ws = raw.accept().await;
    server_next_json(&mut ws).await;
    ws.send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    // The peer reads the ping but never answers; it does answer the close.
    let close = tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    });
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 4008,
            reason: "Ping timeout".into()
        }
    );
    assert_eq!(close.await.unwrap(), Some((4008, "Ping timeout".into())));
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Retry(_))).await,
        LocalEvent::Retry(1)
    );
    let mut again = raw.accept().await;
    assert_eq!(server_next_json(&mut again).await, json!({}));
    client.close(1000, "").await;
}

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    let server = server().await;
    let addr = server.local_addr().unwrap();
    let client = client_builder(&server).retry(fast_retry()).build().unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    let counter_before: String = client.invoke("whoami", ()).await.unwrap();

    server.close(1001).await;
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 1001,
            reason: String::new()
        }
    );
    assert!(!client.is_connected());
    assert_eq!(client.send("say", ()).await, Err(SendError::Connection));
    // While the server is down, attempts fail and are retried.
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Retry(_))).await,
        LocalEvent::Retry(1)
    );
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Retry(_))).await,
        LocalEvent::Retry(2)
    );

    let restarted = builder().serve(TcpListener::bind(addr).await.unwrap()).unwrap();
    ws_messaging_conformance::register::<Json, Value>(&restarted, false).unwrap();
    wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await;
    let counter_after: String = client.invoke("whoami", ()).await.unwrap();
    assert_ne!(counter_before, counter_after, "a new server-side connection");
    assert_eq!(restarted.connection_count(), 1);
}

#[tokio::test]
async fn gives_up_after_the_configured_retries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let client = Client::<Json>::builder(url)
        .retry(fast_retry().retries(2))
        .build()
        .unwrap();
    let mut events = client.events();
    let error = tokio::time::timeout(WAIT, client.connect()).await.unwrap().unwrap_err();
    assert!(matches!(error, ConnectError::GaveUp { .. }), "{error:?}");
    let retries: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, LocalEvent::Retry(_)))
        .collect();
    assert_eq!(retries, vec![LocalEvent::Retry(1), LocalEvent::Retry(2)]);
}

#[tokio::test]
async fn a_4003_after_connect_terminates_the_client() {
    let server = server().await;
    let client = client_builder(&server).retry(fast_retry()).build().unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    let id: String = client.invoke("whoami", ()).await.unwrap();
    server.get(&id).unwrap().close(4003, "kicked");
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 4003,
            reason: "kicked".into()
        }
    );
    assert!(client.is_terminated());
    // A manual reconnect works again.
    client.connect().await.unwrap();
    assert!(client.is_connected());
}

#[tokio::test]
async fn the_users_close_is_final_and_fails_pending_invokes() {
    let server = server().await;
    let client = client_builder(&server).retry(fast_retry()).build().unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.invoke::<_, Value>("sleep", (60_000, 1)).await }
    });
    assert_eq!(client.invoke::<_, i32>("echo", (1,)).await.unwrap(), 1);
    client.close(1000, "done").await;
    let result = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(InvokeError::Connection { id: Some(_) })),
        "{result:?}"
    );
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 1000,
            reason: "done".into()
        }
    );
    assert!(client.is_terminated());
    assert!(matches!(
        client.invoke::<_, Value>("echo", (1,)).await,
        Err(InvokeError::NotConnected)
    ));
    // The server forgets the connection.
    tokio::time::timeout(WAIT, async {
        while server.connection_count() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn server_close_closes_everyone_and_stops_accepting() {
    let server = server().await;
    let mut all_events = Vec::new();
    for _ in 0..3 {
        let client = client_builder(&server).auto_reconnect(false).build().unwrap();
        all_events.push((client.events(), client.clone()));
        client.connect().await.unwrap();
    }
    assert_eq!(server.connection_count(), 3);
    server.close(4321).await;
    for (events, _client) in &mut all_events {
        assert_eq!(
            wait_event(events, |e| matches!(e, LocalEvent::Close { .. })).await,
            LocalEvent::Close {
                code: 4321,
                reason: String::new()
            }
        );
    }
    assert_eq!(server.connection_count(), 0);
    let refused = tokio_tungstenite::connect_async(url(&server)).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn closed_connections_release_their_endpoints() {
    // Handlers that capture the endpoint must not keep it alive after close.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let tx = tx.clone();
        async move {
            let captured = endpoint.clone();
            endpoint.register("self", move |()| {
                let _keep = captured.clone();
                async { Ok(()) }
            })?;
            tx.send(endpoint.downgrade()).unwrap();
            Ok(())
        }
    }))
    .await;
    for _ in 0..20 {
        let client = Client::<Json>::builder(url(&server))
            .auto_reconnect(false)
            .connect()
            .await
            .unwrap();
        client.invoke::<_, ()>("self", ()).await.unwrap();
        let weak = rx.recv().await.unwrap();
        let mut events = client.events();
        client.close(1000, "").await;
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
        tokio::time::timeout(WAIT, async {
            while weak.upgrade().is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the server-side endpoint is dropped");
    }
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn the_subprotocol_is_echoed() {
    let server = server().await;
    // raw_connect asserts the echoed header.
    let _ws = raw_connect(&url(&server)).await;
    // A client offering nothing still connects, with no protocol header.
    let (_ws, response) = tokio_tungstenite::connect_async(url(&server)).await.unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn dropping_the_last_client_handle_closes_the_connection() {
    let server = server().await;
    let client = client(&server).await;
    let id: String = client.invoke("whoami", ()).await.unwrap();
    let mut events = server.get(&id).unwrap().events();
    let other = client.clone();
    drop(client);
    assert!(other.is_connected(), "a clone keeps it open");
    drop(other);
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 1000,
            reason: String::new()
        }
    );
}

#[tokio::test]
async fn server_close_does_not_wait_for_a_hook_that_never_ends() {
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |_, _: Value| {
        let entered_tx = entered_tx.clone();
        async move {
            entered_tx.send(()).unwrap();
            std::future::pending::<()>().await;
            Ok(())
        }
    }))
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    entered.recv().await.unwrap();
    let closing = tokio::spawn({
        let server = server.clone();
        async move { server.close(1001).await }
    });
    assert_eq!(next_close(&mut ws).await, (1001, String::new()));
    drop(ws);
    tokio::time::timeout(WAIT, closing)
        .await
        .expect("close returns")
        .unwrap();
}

#[tokio::test]
async fn a_stream_accepted_elsewhere_is_upgraded_and_served() {
    // The listener is the application's (a TLS acceptor would wrap the
    // stream here); the server is bound elsewhere and only serves it.
    let server = server().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_url = format!("ws://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            let (stream, _) = listener.accept().await.unwrap();
            server.serve_stream(stream).await;
        }
    });
    let client = Client::<Json>::builder(own_url)
        .auth(&json!({ "token": "secret" }))
        .auto_reconnect(false)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.invoke::<_, f64>("sum", (1, 2)).await.unwrap(), 3.0);
    assert_eq!(server.connection_count(), 1);
    client.close(1000, "").await;
    tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    assert_eq!(server.connection_count(), 0);
}

/// A server that reports how each connection ended, as its
/// `on_disconnect` hook sees it.
async fn disconnect_server() -> (Server<Json>, tokio::sync::mpsc::UnboundedReceiver<(u16, String)>) {
    let (ended_tx, ended) = tokio::sync::mpsc::unbounded_channel();
    let server = start(builder().on_disconnect(move |_, code, reason| {
        let _ = ended_tx.send((code, reason));
        async {}
    }))
    .await;
    (server, ended)
}

#[test]
fn a_client_that_exits_right_after_awaiting_close_was_closed_with_its_code() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, mut ended) = runtime.block_on(disconnect_server());
    let url = url(&server);
    // Several runs: a close that is not waited for loses the race with the
    // runtime's shutdown most of the time, not every time.
    for run in 1..=5 {
        let url = url.clone();
        // The client's program: its own runtime, shut down as soon as
        // `close` returned (as when `main` returns).
        std::thread::spawn(move || {
            let client_runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            client_runtime.block_on(async {
                let client = tokio::time::timeout(
                    WAIT,
                    Client::<Json>::builder(url)
                        .auth(&json!({ "token": "secret" }))
                        .connect(),
                )
                .await
                .expect("connected in time")
                .unwrap();
                tokio::time::timeout(WAIT * 2, client.close(1000, "bye"))
                    .await
                    .expect("close() returns within its bound");
            });
        })
        .join()
        .expect("the client's program ran");
        let seen = runtime.block_on(async { tokio::time::timeout(WAIT, ended.recv()).await });
        let seen = seen.expect("the server saw the connection end").unwrap();
        assert_eq!(seen, (1000, "bye".to_string()), "run {run}");
    }
}

#[tokio::test]
async fn close_returns_in_time_when_the_server_never_answers_it() {
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url()).build().unwrap();
    client.reconnect();
    let mut peer = raw.accept().await;
    assert_eq!(server_next_json(&mut peer).await, json!({}));
    peer.send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connected in time")
        .unwrap();
    let mut events = client.events();
    // The peer stops reading: the close frame is never answered.
    tokio::time::timeout(WAIT * 2, client.close(1000, ""))
        .await
        .expect("close() returns within its bound");
    assert!(!client.is_running());
    assert!(!client.is_connected());
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 1000,
            reason: String::new()
        }
    );
    drop(peer);
}
