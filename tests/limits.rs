//! What an operator limits, over real sockets: per-connection rate limits
//! (a call over the limit answered `RateLimitError`, a flood closed with
//! 1008, the other clients unaffected), connection caps per server and per
//! address (refused at the upgrade with 503 / 429), and a drain for a
//! rolling restart (calls in flight answered, clients closed with 1012
//! spread over the window, new connections refused).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{CloseCode, InvokeError, LocalEvent, RateLimit};

/// The HTTP status a raw upgrade to `url` is refused with (`None`: it was
/// accepted).
async fn upgrade_status(url: &str) -> Option<u16> {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("an answer in time")
    {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        Err(other) => panic!("upgrade failed otherwise: {other}"),
    }
}

#[tokio::test]
async fn a_call_over_the_rate_limit_is_refused_with_a_typed_error_then_passes_again() {
    let limit = RateLimit::messages(10).burst(3);
    let server = start(builder().configure(|o| o.rate_limit = Some(Arc::new(limit)))).await;
    let client = client(&server).await;
    for n in 0..3 {
        let echoed: u32 = client.invoke("echo", (n,)).await.expect("within the burst");
        assert_eq!(echoed, n);
    }
    match client.invoke::<_, u32>("echo", (3,)).await {
        Err(InvokeError::RateLimited { name }) => assert_eq!(name, "echo"),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // A token comes back every 100 ms: the same call then runs.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let echoed: u32 = client.invoke("echo", (4,)).await.expect("after the refill");
    assert_eq!(echoed, 4);
}

#[tokio::test]
async fn a_flooding_client_is_closed_with_1008_and_the_others_go_on() {
    let limit = RateLimit::messages(50).burst(20);
    let server = start(builder().configure(|o| o.rate_limit = Some(Arc::new(limit)))).await;
    let flooder = client(&server).await;
    let mut flooder_events = flooder.events();
    let calm = client(&server).await;
    // Events as fast as they go: 20 pass, the next 20 are refused (each
    // reported), and the 40th in a row closes the connection.
    let mut refused = 0;
    let mut events = flooder.events();
    for n in 0..200u32 {
        if flooder.send("say", (n,)).await.is_err() {
            break;
        }
    }
    let closed = wait_event(&mut flooder_events, |e| matches!(e, LocalEvent::Close { .. })).await;
    let LocalEvent::Close { code, reason } = closed else {
        unreachable!()
    };
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
    assert_eq!(reason, "Rate limit exceeded");
    while let Ok(event) = events.try_recv() {
        if let LocalEvent::PreprocessingError(value) = event {
            assert_eq!(value, json!("RateLimitError"));
            refused += 1;
        }
    }
    assert!(refused > 0, "refused events are reported");
    // The other client's calls still run.
    let started = Instant::now();
    for n in 0..10u32 {
        let echoed: u32 = calm.invoke("echo", (n,)).await.expect("the calm client goes on");
        assert_eq!(echoed, n);
    }
    println!("10 calls of the calm client after the flood: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_connection_caps_refuse_the_next_upgrade_and_free_their_seats() {
    let server = start(builder().max_connections_per_ip(2)).await;
    let first = client(&server).await;
    let _second = client(&server).await;
    assert_eq!(upgrade_status(&url(&server)).await, Some(429));
    first.close(1000, "bye").await;
    tokio::time::timeout(WAIT, async {
        while server.connection_count() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first connection ends");
    // Its seat is free again (the server counts a connection until its
    // task ends, a moment after the close).
    tokio::time::timeout(WAIT, async {
        loop {
            match upgrade_status(&url(&server)).await {
                None => return,
                Some(429) => tokio::time::sleep(Duration::from_millis(10)).await,
                Some(other) => panic!("refused with {other}"),
            }
        }
    })
    .await
    .expect("a seat comes free");

    let full = start(builder().max_connections(1)).await;
    let _only = client(&full).await;
    assert_eq!(upgrade_status(&url(&full)).await, Some(503));
}

#[tokio::test]
async fn a_drain_answers_calls_in_flight_and_spreads_the_closes_over_its_window() {
    const CLIENTS: usize = 20;
    let window = Duration::from_millis(1000);
    let server = start(builder()).await;
    let mut clients = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..CLIENTS {
        let client = client_builder(&server).auto_reconnect(false).connect().await.unwrap();
        receivers.push(client.events());
        clients.push(client);
    }
    // A call in flight on every connection when the drain starts.
    let calls: Vec<_> = clients
        .iter()
        .map(|client| {
            let client = client.clone();
            tokio::spawn(async move { client.invoke::<_, Value>("sleep", (50, "done")).await })
        })
        .collect();
    tokio::time::timeout(WAIT, async {
        while server.registry().count(&ws_messaging::adapter::Target::all()) < CLIENTS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let started = Instant::now();
    let draining = {
        let server = server.clone();
        tokio::spawn(async move { server.drain(window).await })
    };
    // Each close timed as it comes, all watched at once.
    let watchers: Vec<_> = receivers
        .into_iter()
        .map(|mut events| {
            tokio::spawn(async move {
                let event = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await;
                let LocalEvent::Close { code, reason } = event else {
                    unreachable!()
                };
                assert_eq!(code, CloseCode::SERVICE_RESTART);
                assert_eq!(reason, "Service Restart");
                started.elapsed()
            })
        })
        .collect();
    let mut closed_at = Vec::new();
    for watcher in watchers {
        closed_at.push(watcher.await.unwrap());
    }
    for call in calls {
        let answer = call.await.unwrap().expect("a call in flight is answered");
        assert_eq!(answer, json!("done"));
    }
    // New connections are refused while it drains.
    assert!(tokio::time::timeout(WAIT, draining).await.is_ok(), "the drain ends");
    closed_at.sort();
    let (first, last) = (closed_at[0], closed_at[CLIENTS - 1]);
    println!("{CLIENTS} connections closed from {first:?} to {last:?} of a {window:?} drain");
    assert!(
        last <= window + Duration::from_millis(500),
        "closed by the window's end: {last:?}"
    );
    // 20 turns uniform over half the window, none closing before its 50 ms
    // call answered: all within a tenth of the window has a chance of
    // about 0.3^20.
    assert!(last - first >= window / 10, "spread: {first:?}..{last:?}");
}

#[tokio::test]
async fn a_draining_server_refuses_new_connections() {
    let server = start(builder()).await;
    let client = client_builder(&server).auto_reconnect(false).connect().await.unwrap();
    let url = url(&server);
    let draining = {
        let server = server.clone();
        tokio::spawn(async move { server.drain(Duration::from_millis(2000)).await })
    };
    // The listener is closed, or the upgrade refused with 503.
    tokio::time::timeout(WAIT, async {
        loop {
            let mut request = url.as_str().into_client_request().unwrap();
            request
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Io(_)) => return,
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status().as_u16(), 503);
                    return;
                }
                Err(other) => panic!("{other}"),
                Ok((mut ws, _)) => {
                    let _ = ws.send(Message::Close(None)).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    })
    .await
    .expect("refused");
    drop(client);
    tokio::time::timeout(WAIT, draining).await.unwrap().unwrap();
}

/// `echo_server` with `args`, and its URL.
async fn echo_server(args: &[&str]) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new(peers::echo_server_path());
    command.args(["--port", "0"]).args(args);
    peers::spawn_listening(command).await
}

async fn echo_client(url: &str) -> ws_messaging::Client<ws_messaging_json::Json> {
    let client = ws_messaging::Client::<ws_messaging_json::Json>::builder(url.to_string())
        .auth(&json!({ "token": "secret" }))
        .auto_reconnect(false)
        .build()
        .unwrap();
    tokio::time::timeout(WAIT, client.connect())
        .await
        .expect("connect in time")
        .expect("connect");
    client
}

#[tokio::test]
async fn echo_server_limits_rates_and_connections_and_drains_on_sigterm() {
    // --rate-limit: a flood is closed with 1008.
    let (limited, url) = echo_server(&["--rate-limit", "5"]).await;
    let flooder = echo_client(&url).await;
    let mut events = flooder.events();
    for n in 0..100u32 {
        if flooder.send("say", (n,)).await.is_err() {
            break;
        }
    }
    let LocalEvent::Close { code, .. } = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
    assert!(peers::terminate(limited).await.success());

    // --max-conns-per-ip: the next upgrade from the address gets 429.
    let (capped, url) = echo_server(&["--max-conns-per-ip", "2"]).await;
    let _a = echo_client(&url).await;
    let _b = echo_client(&url).await;
    assert_eq!(upgrade_status(&url).await, Some(429));
    assert!(peers::terminate(capped).await.success());

    // --drain-ms: SIGTERM closes the clients with 1012, then the process
    // exits 0.
    let (draining, url) = echo_server(&["--drain-ms", "500"]).await;
    let client = echo_client(&url).await;
    let mut events = client.events();
    let started = Instant::now();
    let exited = tokio::spawn(peers::terminate(draining));
    let LocalEvent::Close { code, .. } = wait_event(&mut events, |e| matches!(e, LocalEvent::Close { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(code, CloseCode::SERVICE_RESTART);
    let status = tokio::time::timeout(WAIT, exited)
        .await
        .expect("exits in time")
        .unwrap();
    assert!(status.success(), "{status}");
    println!("drained and exited after {:?}", started.elapsed());
}
