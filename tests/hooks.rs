//! Server hooks and local events at the edges of a connection's life: a
//! close asked for by the connection hook, the disconnect hook, listeners
//! of reserved names, reserved names in broadcasts, the send hook on the
//! `connect` reply, hook cancellation and server close during an upgrade.
//! `cargo test --test hooks`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, HandlerError, SendError, Server};
use ws_messaging_json::Json;

#[tokio::test]
async fn a_close_asked_for_by_the_connection_hook_reaches_the_peer_with_its_code() {
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            endpoint.close(4003, "banned");
            Ok::<_, HandlerError>(json!("welcome anyway"))
        }),
    )
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    assert_eq!(next_close(&mut ws).await, (4003, "banned".into()));
}

#[derive(Clone, Debug, PartialEq)]
struct User(String);

#[tokio::test]
async fn the_disconnect_hook_sees_the_connections_data() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = start(
        builder()
            .on_connection(|endpoint, _: Value| async move {
                endpoint.set_data(User("alice".into()));
                Ok::<_, HandlerError>(())
            })
            .on_disconnect(move |endpoint, code, reason| {
                let seen_tx = seen_tx.clone();
                async move {
                    let _ = seen_tx.send((endpoint.data::<User>(), code, reason));
                }
            }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    client.close(4321, "bye").await;
    let (user, code, reason) = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(user, Some(User("alice".into())));
    assert_eq!((code, reason.as_str()), (4321, "bye"));
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn listeners_of_reserved_names_get_the_local_events() {
    let server = server().await;
    let client = client_builder(&server).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let connect_tx = tx.clone();
    client.on("connect", move |(reply,): (Value,)| {
        let _ = connect_tx.send(format!("connect {reply}"));
    });
    let close_tx = tx.clone();
    client.on("close", move |(code, reason): (u16, String)| {
        let _ = close_tx.send(format!("close {code} {reason}"));
    });
    client.connect().await.unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap(),
        r#"connect {"user":"alice"}"#
    );
    client.close(1000, "done").await;
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap(),
        "close 1000 done"
    );
}

#[tokio::test]
async fn reserved_names_are_refused_in_broadcasts_and_encoded_messages() {
    let server = server().await;
    for name in ["connect", "close", "ping", ""] {
        assert!(matches!(server.broadcast(name, ()), Err(SendError::ReservedName(_))));
        assert!(matches!(
            ws_messaging::EncodedMessage::encode(server.codec(), name, ()),
            Err(SendError::ReservedName(_))
        ));
        assert!(matches!(server.send_to("x", name, ()), Err(SendError::ReservedName(_))));
    }
}

#[tokio::test]
async fn the_send_hook_sees_the_connect_reply_and_may_refuse_it() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = start(builder().configure(move |o| {
        o.send_hook = Some(Arc::new(move |out: &ws_messaging::Outgoing<'_>| {
            if let ws_messaging::OutgoingKind::Message { name: "connect", .. } = out.kind {
                let _ = seen_tx.send(String::from_utf8_lossy(out.frame).to_string());
                return Err(HandlerError::text("no connect today"));
            }
            Ok(())
        }));
    }))
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text(r#"{"token":"secret"}"#)).await.unwrap();
    assert_eq!(
        next_close(&mut ws).await,
        (4003, "the send hook refused the message: no connect today".into())
    );
    let frame = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(frame, r#"{"name":"connect","args":[{"user":"alice"}]}"#);
}

/// Signals when dropped: shows a hook's future was dropped.
struct DropSignal(Arc<Notify>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

#[tokio::test]
async fn a_connection_hook_is_cancelled_when_its_socket_closes() {
    let dropped = Arc::new(Notify::new());
    let signal = dropped.clone();
    let server = start(Server::<Json>::builder().on_connection(move |_endpoint, _: Value| {
        let guard = DropSignal(signal.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<_, HandlerError>(())
        }
    }))
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    // The hook is running (the connection is registered); the client leaves.
    tokio::time::timeout(WAIT, async {
        while server.connection_count() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the connection reached the hook");
    ws.close(None).await.unwrap();
    tokio::time::timeout(WAIT, dropped.notified())
        .await
        .expect("the hook's future was dropped");
}

#[tokio::test]
async fn server_close_does_not_wait_for_a_half_done_upgrade() {
    let server = start(builder().auth_timeout(Duration::from_secs(60))).await;
    // A TCP connection that never sends its upgrade request.
    let _silent = tokio::net::TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    // Let the server accept it: a good client connecting after it was
    // accepted proves the accept loop went past it.
    let _client = client(&server).await;
    tokio::time::timeout(Duration::from_secs(10), server.close(1001))
        .await
        .expect("close returns well before the 60 s auth timeout");
}

#[tokio::test]
async fn close_listeners_on_the_server_side_still_see_the_connections_data() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let seen_tx = seen_tx.clone();
        async move {
            endpoint.set_data(User("bob".into()));
            let me = endpoint.downgrade();
            endpoint.on("close", move |(code, _reason): (u16, String)| {
                let user = me.upgrade().and_then(|e| e.data::<User>());
                let _ = seen_tx.send((user, code));
            });
            Ok::<_, HandlerError>(())
        }
    }))
    .await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    client.close(1000, "").await;
    let (user, code) = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!((user, code), (Some(User("bob".into())), 1000));
}
