//! Regression tests for the `Client` lifecycle around closing and
//! reconnecting (docs/protocol.md, Closing and Reconnection):
//!
//! - `close()` while an attempt is under way (during the WebSocket upgrade,
//!   and during the auth wait) is never lost: the attempt never ends up
//!   connected, the client stops and `connect()` waiters return at once;
//! - `close()` then `reconnect()` ends up connected;
//! - `close()` during a backoff wait stops the client at once;
//! - a connection that succeeded then closed at once resets the retry counter;
//! - a reply from a handler that outlives its connection is dropped, never
//!   sent on a newer connection (where the same id may mean another call);
//! - dropping the last `Client` handle outside a tokio runtime does not panic;
//! - a zero retry delay still counts the retries;
//! - `reconnect()` while connected leaves `fail_fast` off for later outages;
//! - a call while disconnected is not sent (`InvokeError::NotConnected`),
//!   and `connected()` waits for the next connection.
//!
//! Run with `cargo test --test reconnect`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, ConnectError, HandlerError, InvokeError, LocalEvent, RetryConfig, SendError, Server};
use ws_messaging_json::Json;

/// What `close()` must have done to a client whose `connect()` was waiting
/// (`waiter`): the waiter returned an error within `WAIT`, and the connect
/// loop stopped. Returns what went wrong.
async fn stopped_after_close(
    client: &Client<Json>,
    waiter: tokio::task::JoinHandle<Result<(), ConnectError>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match tokio::time::timeout(WAIT, waiter).await {
        Ok(Ok(Err(_))) => {}
        Ok(Ok(Ok(()))) => problems.push("connect() returned Ok after close()".to_string()),
        Ok(Err(e)) => problems.push(format!("the connect() waiter panicked: {e}")),
        Err(_) => problems.push("connect() did not return within 5 s of close()".to_string()),
    }
    if client.is_running() {
        problems.push("is_running() is still true after close()".to_string());
    }
    problems
}

/// How long a test watches for something that must not happen (a late
/// `connect`, a stale reply) once everything that could cause it has run.
const QUIET: Duration = Duration::from_millis(300);

/// Polls `cond` (a state with no event of its own, such as a server's
/// connection count) until it holds; fails after `WAIT`.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a `connect` local event arrives within `within`.
async fn connect_event_within(events: &mut tokio::sync::broadcast::Receiver<LocalEvent>, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(LocalEvent::Connect(_)) => return true,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// A TCP relay in front of a server that holds every accepted connection
/// until `open` is notified: a client connecting through it is stuck in the
/// middle of its WebSocket upgrade (its TCP connection is up, its HTTP
/// request unanswered) for as long as the test wants.
struct Gate {
    url: String,
    /// One message per accepted connection.
    accepted: mpsc::UnboundedReceiver<()>,
    open: watch::Sender<bool>,
    /// One message per relayed connection that ended (both directions done).
    ended: mpsc::UnboundedReceiver<()>,
}

impl Gate {
    async fn new(upstream: std::net::SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let (open, gate) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut downstream, _)) = listener.accept().await {
                let _ = accepted_tx.send(());
                let mut gate = gate.clone();
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut downstream, &mut up).await;
                    }
                    let _ = ended_tx.send(());
                });
            }
        });
        Gate {
            url,
            accepted,
            open,
            ended,
        }
    }
}

// ----- a. close while connecting ----------------------------------------

#[tokio::test]
async fn close_during_the_websocket_upgrade_is_not_lost() {
    let server = server().await;
    let mut gate = Gate::new(server.local_addr().unwrap()).await;
    let client = Client::<Json>::builder(gate.url.clone())
        .auth(&json!({ "token": "secret" }))
        .retry(fast_retry())
        .build()
        .unwrap();
    let mut events = client.events();
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    // The client's TCP connection is up; its upgrade request waits at the gate.
    tokio::time::timeout(WAIT, gate.accepted.recv())
        .await
        .expect("the client reaches the gate in time")
        .unwrap();
    assert!(client.is_running());
    client.close(1000, "").await;

    let mut problems = stopped_after_close(&client, waiter).await;
    // Let the upgrade through: a client that forgot the close would now
    // finish it, authenticate and connect.
    gate.open.send_replace(true);
    let connected = tokio::select! {
        connected = connect_event_within(&mut events, WAIT) => connected,
        _ = gate.ended.recv() => connect_event_within(&mut events, QUIET).await,
    };
    if connected {
        problems.push("the attempt ended up connected (a `connect` local event)".to_string());
    }
    if client.is_connected() {
        problems.push("is_connected() is true".to_string());
    }
    if server.connection_count() != 0 {
        problems.push(format!(
            "the server holds {} connection(s) of a closed client",
            server.connection_count()
        ));
    }
    assert!(
        problems.is_empty(),
        "close() during the upgrade was lost: {problems:#?}"
    );
}

#[tokio::test]
async fn close_during_the_auth_wait_is_not_lost() {
    // The connection hook waits until the test releases it.
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let (release, hook_release) = watch::channel(false);
    let server = start(Server::<Json>::builder().on_connection(move |_, _: Value| {
        let entered_tx = entered_tx.clone();
        let mut release = hook_release.clone();
        async move {
            let _ = entered_tx.send(());
            let _ = release.wait_for(|go| *go).await;
            Ok::<_, HandlerError>(json!({ "user": "alice" }))
        }
    }))
    .await;
    let client = client_builder(&server).retry(fast_retry()).build().unwrap();
    let mut events = client.events();
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    tokio::time::timeout(WAIT, entered.recv())
        .await
        .expect("the auth frame reaches the hook in time")
        .unwrap();
    assert_eq!(server.connection_count(), 1);
    client.close(1000, "").await;

    let problems = stopped_after_close(&client, waiter).await;
    assert!(
        problems.is_empty(),
        "close() during the auth wait was lost: {problems:#?}"
    );
    wait_until("the server dropped the connection", || server.connection_count() == 0).await;
    // A hook that accepts late must not revive it.
    release.send_replace(true);
    assert!(
        !connect_event_within(&mut events, QUIET).await,
        "the closed client got connected"
    );
    assert!(!client.is_connected());
    assert_eq!(server.connection_count(), 0);
}

// ----- b. close then reconnect ------------------------------------------

#[tokio::test]
async fn close_then_reconnect_ends_up_connected() {
    let server = server().await;
    let client = client_builder(&server).retry(fast_retry()).build().unwrap();
    client.connect().await.unwrap();
    let first: String = client.invoke("whoami", ()).await.unwrap();
    let mut events = client.events();

    client.endpoint().close(1000, "");
    // At once, while the close handshake and the connect loop still run.
    client.reconnect();

    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: 1000,
            reason: String::new()
        }
    );
    let reconnected = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(LocalEvent::Connect(_)) => return true,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            }
        }
    })
    .await;
    assert!(
        matches!(reconnected, Ok(true)),
        "reconnect() right after close() did not connect again (running: {}, terminated: {})",
        client.is_running(),
        client.is_terminated()
    );
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connect() returns in time")
        .expect("connected");
    assert!(client.is_connected());
    assert!(client.is_running());
    assert!(!client.is_terminated());
    let second: String = client.invoke("whoami", ()).await.unwrap();
    assert_ne!(first, second, "a new server-side connection");
    wait_until("the server holds only the new connection", || {
        server.connection_count() == 1
    })
    .await;
    assert!(server.get(&second).is_some());
    assert_eq!(client.invoke::<_, i32>("echo", (7,)).await.unwrap(), 7);
    assert!(client.is_running() && client.is_connected(), "it stays connected");
}

// ----- c. close during the backoff wait ---------------------------------

#[tokio::test]
async fn close_during_a_backoff_wait_stops_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let client = Client::<Json>::builder(url)
        .retry(
            RetryConfig::default()
                .min_timeout(Duration::from_secs(30))
                .randomize(false),
        )
        .build()
        .unwrap();
    let mut events = client.events();
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    // The first attempt fails (connection refused); the next one is 30 s away.
    let failed = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
    assert!(matches!(failed, LocalEvent::Close { code: 1006, .. }), "{failed:?}");
    assert!(client.is_running(), "waiting to retry");
    let closed_at = Instant::now();
    client.close(1000, "").await;
    let result = tokio::time::timeout(WAIT, waiter).await;
    let waited = closed_at.elapsed();
    assert!(
        matches!(result, Ok(Ok(Err(_)))),
        "connect() did not return within {WAIT:?} of close() during a 30 s backoff: {result:?}"
    );
    assert!(!client.is_running(), "is_running() after close()");
    assert!(client.is_terminated());
    println!("connect() returned {result:?} {waited:?} after close()");
    // Nothing was retried.
    let retries: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, LocalEvent::Retry(_)))
        .collect();
    assert!(retries.is_empty(), "{retries:?}");
}

// ----- d. the retry counter is reset by a successful connect ------------

#[tokio::test]
async fn a_connection_that_closes_at_once_still_resets_the_retry_counter() {
    const KICKS: usize = 12;
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url())
        .retry(fast_retry().retries(2))
        .build()
        .unwrap();
    let mut events = client.events();
    client.reconnect();
    for kick in 1..=KICKS + 1 {
        let accepted = tokio::time::timeout(WAIT, raw.listener.accept()).await;
        let Ok(Ok((stream, _))) = accepted else {
            panic!(
                "connection {kick} never came: the client gave up after {} kicks (retries: 2, running: {})",
                kick - 1,
                client.is_running()
            );
        };
        let mut ws = upgrade(stream).await;
        assert_eq!(server_next_json(&mut ws).await, json!({}));
        if kick > KICKS {
            break; // it came back after the last kick
        }
        // Accept, then close at once: the connect event and the close
        // frame go out in one write, and the socket is dropped.
        ws.feed(Message::text(r#"{"name":"connect","args":[null]}"#))
            .await
            .unwrap();
        ws.feed(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .unwrap();
        ws.flush().await.unwrap();
        drop(ws);
    }
    // Every kicked connection was a successful connect for the client.
    let connects = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, LocalEvent::Connect(_)))
        .count();
    assert_eq!(connects, KICKS);
    client.close(1000, "").await;
}

/// The server side of the WebSocket upgrade on an accepted socket, with the
/// subprotocol echoed.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
async fn upgrade(stream: TcpStream) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    tokio::time::timeout(
        WAIT,
        tokio_tungstenite::accept_hdr_async(
            stream,
            |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut res: tokio_tungstenite::tungstenite::handshake::server::Response| {
                res.headers_mut().insert(
                    "sec-websocket-protocol",
                    tokio_tungstenite::tungstenite::http::HeaderValue::from_static("ws-messaging"),
                );
                Ok(res)
            },
        ),
    )
    .await
    .expect("the upgrade in time")
    .expect("the upgrade")
}

// ----- e. a reply that outlives its connection is dropped ---------------

/// Sends on drop: the end of a handler's future.
struct Done(mpsc::UnboundedSender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[tokio::test]
async fn a_reply_from_a_handler_that_outlived_its_connection_is_dropped() {
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url()).retry(fast_retry()).build().unwrap();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    client
        .register("hold", move |(v,): (Value,)| {
            let entered_tx = entered_tx.clone();
            // Reports the handler's end, whether it returns or is aborted.
            let done = Done(done_tx.clone());
            let mut released = released.clone();
            async move {
                let _done = done;
                let _ = entered_tx.send(());
                let _ = released.wait_for(|go| *go).await;
                Ok(v)
            }
        })
        .unwrap();
    client.register("echo", |(v,): (Value,)| async move { Ok(v) }).unwrap();
    let mut events = client.events();
    client.reconnect();

    // Connection 1 invokes `hold` with id 1, then dies while it runs.
    let mut first = raw.accept().await;
    assert_eq!(server_next_json(&mut first).await, json!({}));
    first
        .send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    first
        .send(Message::text(r#"{"name":"hold","args":["stale"],"id":1}"#))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, entered.recv())
        .await
        .expect("the handler runs in time")
        .unwrap();
    drop(first);
    wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;

    // Connection 2 uses id 1 again, for another call.
    let mut second = raw.accept().await;
    assert_eq!(server_next_json(&mut second).await, json!({}));
    second
        .send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    second
        .send(Message::text(r#"{"name":"echo","args":["fresh"],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(server_next_json(&mut second).await, json!({"id":1,"result":"fresh"}));

    // The old handler finishes now: its reply belongs to connection 1.
    release.send_replace(true);
    tokio::time::timeout(WAIT, done.recv())
        .await
        .expect("the handler ends in time")
        .unwrap();
    second
        .send(Message::text(r#"{"name":"echo","args":["probe"],"id":2}"#))
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let frame = server_next_json(&mut second).await;
        let probe = frame["id"] == 2;
        frames.push(frame);
        if probe {
            break;
        }
    }
    // Anything still on its way.
    while let Ok(Some(Ok(message))) = tokio::time::timeout(QUIET, second.next()).await {
        if let Message::Text(text) = message {
            frames.push(serde_json::from_str(&text).unwrap());
        }
    }
    assert_eq!(
        frames,
        vec![json!({"id":2,"result":"probe"})],
        "the new connection got a reply of a call it never made (or lost its own)"
    );
    client.close(1000, "").await;
}

// ----- f. dropping a client outside a runtime ---------------------------

#[test]
fn dropping_an_idle_client_outside_a_runtime_does_not_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, client, mut server_events) = runtime.block_on(async {
        let server = server().await;
        let client = client(&server).await;
        let id: String = client.invoke("whoami", ()).await.unwrap();
        let server_events = server.get(&id).unwrap().events();
        (server, client, server_events)
    });
    let dropped = std::thread::spawn(move || drop(client)).join();
    assert!(
        dropped.is_ok(),
        "dropping the last Client handle outside a runtime panicked"
    );
    runtime.block_on(async {
        assert_eq!(
            wait_event(&mut server_events, |e| matches!(e, LocalEvent::Close { .. })).await,
            LocalEvent::Close {
                code: 1000,
                reason: String::new()
            }
        );
        wait_until("the server dropped the connection", || server.connection_count() == 0).await;
    });
}

#[test]
fn dropping_a_client_with_a_full_send_queue_outside_a_runtime_does_not_panic() {
    // The peer never reads, so the client's write queue fills up: the close
    // frame cannot be queued on the spot when the client is dropped.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, mut peer) = runtime.block_on(async {
        let raw = RawServer::bind().await;
        let client = Client::<Json>::builder(raw.url())
            .configure(|o| o.max_backlog_frames = 1)
            .build()
            .unwrap();
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
        let blob = "x".repeat(1 << 20);
        let mut full = false;
        for _ in 0..256 {
            // A send that cannot be queued within half a second means the
            // queue is full (the writer is stuck on the unread socket).
            match tokio::time::timeout(Duration::from_millis(500), client.send("blob", (&blob,))).await {
                Ok(sent) => sent.unwrap(),
                Err(_) => {
                    full = true;
                    break;
                }
            }
        }
        assert!(
            full,
            "the send queue never filled up (256 MiB sent to a peer that does not read)"
        );
        (client, peer)
    });
    let dropped = std::thread::spawn(move || drop(client)).join();
    assert!(
        dropped.is_ok(),
        "dropping the last Client handle (send queue full) outside a runtime panicked"
    );
    // The connection still ends: read through the backlog to the close
    // frame or the end of the socket.
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(message)) = peer.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await
        .expect("the dropped client's connection ends");
    });
}

// ----- g. how the connect loop counts its attempts ----------------------

/// A `ws://` URL where nothing listens.
async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// The local events received so far.
fn received(events: &mut tokio::sync::broadcast::Receiver<LocalEvent>) -> Vec<LocalEvent> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

/// The attempts (each failed one ends with a `close` event) and the
/// `retry` numbers among `events`.
fn attempts_and_retries(events: &[LocalEvent]) -> (usize, Vec<u32>) {
    let attempts = events.iter().filter(|e| matches!(e, LocalEvent::Close { .. })).count();
    let retries = events
        .iter()
        .filter_map(|e| match e {
            LocalEvent::Retry(n) => Some(*n),
            _ => None,
        })
        .collect();
    (attempts, retries)
}

#[tokio::test]
async fn a_zero_retry_delay_still_counts_the_retries() {
    let client = Client::<Json>::builder(closed_port_url().await)
        .retry(
            RetryConfig::default()
                .min_timeout(Duration::ZERO)
                .randomize(false)
                .retries(3),
        )
        .build()
        .unwrap();
    let mut events = client.events();
    let result = tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connect() gives up in time");
    assert!(matches!(result, Err(ConnectError::GaveUp { .. })), "{result:?}");
    assert!(!client.is_running());
    let (attempts, retries) = attempts_and_retries(&received(&mut events));
    assert_eq!((attempts, retries), (4, vec![1, 2, 3]), "retries: 3, no delay");
}

#[tokio::test]
async fn a_reconnect_while_connected_keeps_fail_fast_off_for_later_outages() {
    let server = server().await;
    let client = client_builder(&server)
        .fail_fast(true)
        .retry(fast_retry().retries(3))
        .build()
        .unwrap();
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connected in time")
        .unwrap();
    // Connected: nothing to do, but a fresh start of the connect loop.
    client.reconnect();
    assert!(client.is_connected());
    let mut events = client.events();

    // The server goes away for good: a client that has connected follows
    // its retry policy (fail_fast is for one that never did).
    tokio::time::timeout(WAIT, server.close(1001))
        .await
        .expect("the server closes in time");
    let closed = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
    assert!(matches!(closed, LocalEvent::Close { code: 1001, .. }), "{closed:?}");
    let result = tokio::time::timeout(WAIT, client.connected())
        .await
        .expect("the client gives up in time");
    assert!(matches!(result, Err(ConnectError::GaveUp { .. })), "{result:?}");
    let (attempts, retries) = attempts_and_retries(&received(&mut events));
    assert_eq!(
        (attempts, retries),
        (4, vec![1, 2, 3]),
        "after reconnect() while connected, an outage ended the client early"
    );
}

// ----- h. calls while disconnected --------------------------------------

#[tokio::test]
async fn a_call_while_disconnected_is_not_sent_and_connected_waits_for_the_next_connection() {
    let raw = RawServer::bind().await;
    let client = Client::<Json>::builder(raw.url()).retry(fast_retry()).build().unwrap();
    // Never started: `connected()` says so at once, and starts nothing.
    let never = tokio::time::timeout(WAIT, client.connected())
        .await
        .expect("connected() returns at once");
    assert_eq!(never, Err(ConnectError::NotStarted));
    assert!(!client.is_running());

    let mut events = client.events();
    client.reconnect();
    let mut first = raw.accept().await;
    assert_eq!(server_next_json(&mut first).await, json!({}));
    first
        .send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, client.connected())
        .await
        .expect("connected in time")
        .unwrap();

    // Connection 1 breaks. The next attempt waits at the listener (not
    // accepted yet): the client is not connected until the test says so.
    drop(first);
    wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
    assert!(!client.is_connected());
    let invoked = client.invoke::<_, Value>("echo", (1,)).await;
    assert_eq!(invoked, Err(InvokeError::NotConnected));
    let message = invoked.unwrap_err().to_string();
    assert!(
        message.contains("not connected") && message.contains("not sent") && message.contains("connected()"),
        "{message}"
    );
    assert_eq!(client.send("say", ("x",)).await, Err(SendError::Connection));
    assert!(SendError::Connection.to_string().contains("connected()"));

    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.connected().await }
    });
    let mut second = raw.accept().await;
    assert_eq!(server_next_json(&mut second).await, json!({}));
    // Nothing that was refused above reached the new connection.
    second
        .send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    let waited = tokio::time::timeout(WAIT, waiter)
        .await
        .expect("connected() resolves once connected again")
        .unwrap();
    assert_eq!(waited, Ok(()));
    assert!(client.is_connected());

    // Now the call goes out (and is the first frame after auth).
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.invoke::<_, Value>("echo", (2,)).await }
    });
    let frame = server_next_json(&mut second).await;
    assert_eq!((&frame["name"], &frame["args"]), (&json!("echo"), &json!([2])));
    second
        .send(Message::text(format!(r#"{{"id":{},"result":2}}"#, frame["id"])))
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, call)
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(answer, Ok(json!(2)));

    // Closed: `connected()` says so at once.
    client.endpoint().close(1000, "");
    let closed = tokio::time::timeout(WAIT, client.connected())
        .await
        .expect("connected() returns once the client stopped");
    assert_eq!(closed, Err(ConnectError::Closed));
}
