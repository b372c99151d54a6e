//! What a client does on each (re)connection: the `on_connect` hook, the
//! auth provider, handshake headers and subprotocols, the connect timeout
//! and fail-fast; the request context the server's hook sees; async
//! listeners. Real sockets on 127.0.0.1.
//!
//! `cargo test --test client_hooks`

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use ws_messaging::{AttemptError, Client, ConnectError, Endpoint, HandlerError, LocalEvent, Server};
use ws_messaging_json::Json;

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

/// A server with `join(room)` (the conformance contract's), a `news` sender, and the upgrade requests
/// its hook saw.
async fn rooms_server() -> (
    Server<Json>,
    mpsc::UnboundedReceiver<(String, Option<String>, Option<String>, Option<String>, bool)>,
) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, auth: Value| {
        let seen_tx = seen_tx.clone();
        async move {
            let request = endpoint.request().expect("the request, in the hook");
            let _ = seen_tx.send((
                request.path().to_string(),
                request.query_param("room"),
                request.cookie("session").map(str::to_string),
                request.header("x-app").map(str::to_string),
                request.peer_addr().is_some_and(|a| a.ip().is_loopback()),
            ));
            if auth["token"] == "expired" {
                return Err(HandlerError::text("token expired"));
            }
            endpoint.register("request-after-hook", |me: Endpoint<Json>, ()| {
                let gone = me.request().is_none();
                async move { Ok(gone) }
            })?;
            Ok(())
        }
    }))
    .await;
    (server, seen)
}

#[tokio::test]
async fn the_connection_hook_sees_the_upgrade_request() {
    let (server, mut seen) = rooms_server().await;
    let client = Client::<Json>::builder(format!("{}/chat?room=lobby&x=1", url(&server)))
        .header("cookie", "theme=dark; session=abc123")
        .header("x-app", "tests")
        .connect()
        .await
        .unwrap();
    let (path, room, session, app, loopback) = recv(&mut seen).await;
    assert_eq!(path, "/chat");
    assert_eq!(room.as_deref(), Some("lobby"));
    assert_eq!(session.as_deref(), Some("abc123"));
    assert_eq!(app.as_deref(), Some("tests"));
    assert!(loopback);
    // Dropped once the hook returned.
    assert!(client.invoke::<_, bool>("request-after-hook", ()).await.unwrap());
}

#[tokio::test]
async fn on_connect_runs_on_every_connection_before_it_counts() {
    let (server, _seen) = rooms_server().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let hook_runs = runs.clone();
    let client = Client::<Json>::builder(url(&server))
        .retry(fast_retry())
        .on_connect(move |endpoint| {
            let runs = hook_runs.clone();
            async move {
                // The connection is open: the hook can invoke.
                let joined: bool = endpoint.invoke("join", ("lobby",)).await?;
                assert!(joined);
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .unwrap();
    let (news_tx, mut news) = mpsc::unbounded_channel();
    client.on("news", move |(text,): (String,)| {
        let _ = news_tx.send(text);
    });
    let mut events = client.events();
    client.connect().await.unwrap();
    // `connect()` resolved after the hook: the room is joined already.
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(server.to("lobby").emit("news", ("first",)).unwrap(), 1);
    assert_eq!(recv(&mut news).await, "first");
    wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await;

    // The server drops every connection; the client comes back and joins
    // again before its `connect` event.
    for endpoint in server.connections() {
        endpoint.close(1012, "restart");
    }
    wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(server.to("lobby").emit("news", ("second",)).unwrap(), 1);
    assert_eq!(recv(&mut news).await, "second");
}

/// Sends on drop: the end of a hook's future, whether it returned or was
/// aborted.
struct Done(mpsc::UnboundedSender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[tokio::test]
async fn an_on_connect_hook_ends_with_its_connection() {
    // The server reports the events each connection sends, in order.
    let (heard_tx, mut heard) = mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let heard_tx = heard_tx.clone();
        async move {
            for name in ["from-hook", "probe"] {
                let heard_tx = heard_tx.clone();
                endpoint.on(name, move |(n,): (u32,)| {
                    let _ = heard_tx.send((name, n));
                });
            }
            Ok::<_, HandlerError>(())
        }
    }))
    .await;
    // The hook of connection 1 waits (for something other than its
    // connection) until the test releases it, then sends; the hook of
    // connection 2 returns at once.
    let runs = Arc::new(AtomicUsize::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let client = Client::<Json>::builder(url(&server))
        .retry(fast_retry())
        .on_connect(move |endpoint| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let entered_tx = entered_tx.clone();
            let done = Done(ended_tx.clone());
            let mut released = released.clone();
            async move {
                let _done = done;
                if run == 1 {
                    let _ = entered_tx.send(());
                    let _ = tokio::time::timeout(Duration::from_secs(30), released.wait_for(|go| *go)).await;
                    endpoint.send("from-hook", (1,)).await?;
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    let mut events = client.events();
    client.reconnect();
    recv(&mut entered).await;
    // Connection 1 ends while its hook waits; connection 2 gets ready.
    for endpoint in server.connections() {
        endpoint.close(1012, "restart");
    }
    wait_event(&mut events, |e| matches!(e, LocalEvent::Connect(_))).await;
    assert!(client.is_connected());
    // Hook 1 would finish now (if it still ran).
    release.send_replace(true);
    recv(&mut ended).await; // hook 1
    recv(&mut ended).await; // hook 2

    let mut problems = Vec::new();
    match tokio::time::timeout(WAIT, client.connect()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("connect() failed: {e}")),
        Err(_) => problems.push("connect() on the connected client did not return".to_string()),
    }
    client.send("probe", (2,)).await.unwrap();
    let mut got = Vec::new();
    loop {
        let event = recv(&mut heard).await;
        got.push(event);
        if event.0 == "probe" {
            break;
        }
    }
    if got != [("probe", 2)] {
        problems.push(format!("the server got {got:?} on connection 2"));
    }
    assert!(
        problems.is_empty(),
        "the hook of a dropped connection outlived it: {problems:#?}"
    );
}

#[tokio::test]
async fn a_failing_on_connect_hook_closes_and_retries() {
    let (server, _seen) = rooms_server().await;
    let tries = Arc::new(AtomicUsize::new(0));
    let hook_tries = tries.clone();
    let client = Client::<Json>::builder(url(&server))
        .retry(fast_retry())
        .on_connect(move |_| {
            let n = hook_tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(HandlerError::new("not yet"))
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .unwrap();
    let mut events = client.events();
    client.connect().await.unwrap();
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    let error = wait_event(&mut events, |e| matches!(e, LocalEvent::Error(_))).await;
    assert!(
        matches!(&error, LocalEvent::Error(text) if text.contains("not yet")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_auth_provider_gives_a_fresh_value_for_every_attempt() {
    let (server, _seen) = rooms_server().await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let provider_calls = calls.clone();
    // The first value is refused (4003): the client stops, as refused
    // clients do; `reconnect` asks the provider again.
    let client = Client::<Json>::builder(url(&server))
        .retry(fast_retry())
        .auth_with(move || {
            let calls = provider_calls.clone();
            async move {
                let mut calls = calls.lock().unwrap();
                let token = if calls.is_empty() { "expired" } else { "fresh" };
                calls.push(token);
                Ok(json!({ "token": token }))
            }
        })
        .build()
        .unwrap();
    let refused = client.connect().await.unwrap_err();
    assert!(
        matches!(&refused, ConnectError::Refused { code: 4003, reason } if reason == "token expired"),
        "{refused:?}"
    );
    client.connect().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), ["expired", "fresh"]);
}

#[tokio::test]
async fn a_failing_auth_provider_fails_the_attempt() {
    let (server, _seen) = rooms_server().await;
    let result = Client::<Json>::builder(url(&server))
        .fail_fast(true)
        .auth_with(|| async { Err::<Value, _>(HandlerError::new("no token store")) })
        .connect()
        .await;
    let Err(ConnectError::GaveUp {
        last: AttemptError::Auth(error),
    }) = &result
    else {
        panic!("{result:?}");
    };
    assert!(error.to_string().contains("no token store"), "{error}");
}

#[tokio::test]
async fn fail_fast_reports_a_server_that_is_down_at_once() {
    // A port with nothing listening.
    let port = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap().port()
    };
    let client = Client::<Json>::builder(format!("ws://127.0.0.1:{port}"))
        .fail_fast(true)
        .build()
        .unwrap();
    let mut events = client.events();
    let result = tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("fail-fast answers without retrying");
    assert!(
        matches!(
            result,
            Err(ConnectError::GaveUp {
                last: AttemptError::Open(_)
            })
        ),
        "{result:?}"
    );
    // One attempt, no retry.
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(!seen.iter().any(|e| matches!(e, LocalEvent::Retry(_))), "{seen:?}");
    assert!(!client.is_running());
}

#[tokio::test]
async fn the_connect_timeout_bounds_a_silent_server() {
    // Accepts TCP, never answers the upgrade.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let result = tokio::time::timeout(
        WAIT,
        Client::<Json>::builder(format!("ws://{addr}"))
            .connect_timeout(Duration::from_millis(200))
            .fail_fast(true)
            .connect(),
    )
    .await
    .expect("bounded by the connect timeout");
    assert!(
        matches!(result, Err(ConnectError::GaveUp { last: AttemptError::OpenTimeout(d) }) if d == Duration::from_millis(200)),
        "{result:?}"
    );
}

#[tokio::test]
async fn subprotocols_are_offered_after_ws_messaging() {
    let (protocols_tx, mut protocols) = mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let protocols_tx = protocols_tx.clone();
        async move {
            let request = endpoint.request().unwrap();
            let _ = protocols_tx.send(request.header("sec-websocket-protocol").map(str::to_string));
            Ok(())
        }
    }))
    .await;
    let _client = Client::<Json>::builder(url(&server))
        .subprotocols(["chat.v2", "ws-messaging"])
        .connect()
        .await
        .unwrap();
    assert_eq!(recv(&mut protocols).await.as_deref(), Some("ws-messaging, chat.v2"));
    let bad = Client::<Json>::builder(url(&server)).header("bad header", "x").build();
    assert!(matches!(bad, Err(ConnectError::Header { .. })), "{bad:?}");
}

#[tokio::test]
async fn async_listeners_may_wait() {
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            let me = endpoint.downgrade();
            // Waits on the peer (an invoke) inside the listener.
            endpoint.on_async("ask-me", move |(question,): (String,)| {
                let me = me.clone();
                async move {
                    let Some(endpoint) = me.upgrade() else { return };
                    if let Ok(answer) = endpoint.invoke::<_, String>("answer", (question,)).await {
                        let _ = endpoint.send("answered", (answer,)).await;
                    }
                }
            });
            Ok(())
        }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    client
        .register("answer", |(q,): (String,)| async move { Ok(format!("{q}: 42")) })
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    client.on("answered", move |(a,): (String,)| {
        let _ = tx.send(a);
    });
    client.send("ask-me", ("life",)).await.unwrap();
    assert_eq!(recv(&mut rx).await, "life: 42");
}
