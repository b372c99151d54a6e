//! Slow consumers: the outgoing backlog is bounded in frames and bytes, a
//! broadcast never waits on a connection, a peer past the limit is closed
//! with 4009, and `send().await` waits for room at most `write_timeout`.
//! `cargo test --test backlog`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{CloseCode, Endpoint, HandlerError, LocalEvent, SendError, Server};
use ws_messaging_json::Json;

/// A server that hands each accepted endpoint to the test.
async fn handing_server(
    configure: impl FnOnce(&mut ws_messaging::EndpointOptions),
) -> (Server<Json>, mpsc::UnboundedReceiver<Endpoint<Json>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = start(
        Server::<Json>::builder()
            .configure(configure)
            .on_connection(move |endpoint, _: Value| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(endpoint);
                    Ok::<_, HandlerError>(())
                }
            }),
    )
    .await;
    (server, rx)
}

async fn next_endpoint(rx: &mut mpsc::UnboundedReceiver<Endpoint<Json>>) -> Endpoint<Json> {
    tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_stalled_reader_is_closed_with_4009_while_the_others_get_every_broadcast() {
    let (server, mut accepted) = handing_server(|o| o.max_backlog_bytes = 1 << 20).await;
    // The stalled peer: authenticates, then never reads again.
    let _stalled_socket = raw_authed_any(&server).await;
    let stalled = next_endpoint(&mut accepted).await;
    let mut stalled_events = stalled.events();
    // The reader reads everything.
    let mut reader = raw_authed_any(&server).await;
    let _reader_endpoint = next_endpoint(&mut accepted).await;

    let payload = "x".repeat(16 * 1024);
    let count = 2_000; // 32 MiB in all: far past the kernel's socket buffers
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < count {
            match reader.next().await {
                Some(Ok(Message::Text(_))) => got += 1,
                Some(Ok(_)) => {}
                other => panic!("the reader lost its connection: {other:?}"),
            }
        }
        got
    });
    // Broadcasting never waits on the stalled peer.
    tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..count {
            server.broadcast("news", (&payload,)).unwrap();
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("broadcasts never wait on a connection");
    let event = wait_event(&mut stalled_events, |e| matches!(e, LocalEvent::SlowConsumer { .. })).await;
    let LocalEvent::SlowConsumer { bytes, .. } = event else {
        unreachable!()
    };
    assert!(bytes >= 1 << 20, "closed past the byte limit: {bytes}");
    // Its backlog is freed at once (only the close frame waits); the
    // connection ends within the close grace.
    let (frames, bytes) = stalled.backlog();
    assert!(frames <= 1 && bytes == 0, "{frames} frames, {bytes} bytes");
    assert_eq!(
        wait_event_within(&mut stalled_events, Duration::from_secs(10), |e| matches!(
            e,
            LocalEvent::Close { .. }
        ))
        .await,
        LocalEvent::Close {
            code: CloseCode::SLOW_CONSUMER.into(),
            reason: "Slow consumer".into()
        }
    );
    let got = tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, count);
}

#[tokio::test]
async fn send_waits_for_room_then_times_out_and_closes_the_peer() {
    let (_server, mut accepted) = handing_server(|o| {
        o.max_backlog_frames = 4;
        o.write_timeout = Duration::from_millis(300);
    })
    .await;
    let _silent = raw_authed_any(&_server).await;
    let endpoint = next_endpoint(&mut accepted).await;
    let mut events = endpoint.events();
    let payload = "y".repeat(64 * 1024);
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(e) = endpoint.send("big", (&payload,)).await {
                return e;
            }
        }
    })
    .await
    .expect("a send that waits ends within the write timeout");
    // The send's own wait and the socket's stall timer share the write
    // timeout: whichever fires first closes the peer.
    assert!(
        matches!(outcome, SendError::Timeout | SendError::Connection),
        "{outcome:?}"
    );
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await,
        LocalEvent::Close {
            code: CloseCode::SLOW_CONSUMER.into(),
            reason: "Write timeout".into()
        }
    );
    assert_eq!(endpoint.send("after", ()).await, Err(SendError::Connection));
}

/// A raw client that authenticated (any auth is accepted).
async fn raw_authed_any(server: &Server<Json>) -> RawWs {
    use futures_util::SinkExt;
    let mut ws = raw_connect(&url(server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    let connect = next_json(&mut ws).await;
    assert_eq!(connect["name"], "connect");
    ws
}

/// Reads paused at the soft mark go on once the backlog is written down,
/// also when one frame alone passes the mark and is written at once (it
/// used to leave the connection unread for good).
#[tokio::test]
async fn reads_go_on_after_a_frame_past_the_soft_mark_is_written() {
    let server = start(builder().configure(|o| o.max_backlog_bytes = 64 * 1024)).await;
    let client = client(&server).await;
    let (tx, mut shouted) = mpsc::unbounded_channel();
    client.on("shouted", move |(text,): (String,)| {
        let _ = tx.send(text.len());
    });
    // Each shout comes back as a 48 KiB frame: past the 32 KiB soft mark.
    let big = "x".repeat(48 * 1024);
    for _ in 0..10 {
        client.send("shout", (big.as_str(),)).await.unwrap();
        let len = tokio::time::timeout(WAIT, shouted.recv())
            .await
            .expect("the shout comes back: the server reads on")
            .unwrap();
        assert_eq!(len, big.len());
    }
}
