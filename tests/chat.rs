//! The chat example (`examples/chat.rs`) from outside: its page and its
//! endpoint on one port, and Rust clients that re-join their room in their
//! `on_connect` hook, so that no message is lost across a restart of the
//! server once they are back.
//!
//! `cargo test --test chat` (builds with the examples).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::peers::{spawn_listening, terminate};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use ws_messaging::{Client, LocalEvent};
use ws_messaging_json::Json;

fn chat_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("chat{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it (cargo build --example chat)",
        path.display()
    );
    path
}

async fn start_chat(port: u16) -> (tokio::process::Child, String) {
    let mut command = Command::new(chat_path());
    command.args(["--port", &port.to_string()]);
    spawn_listening(command).await
}

/// A client named `name` that joins `lobby` on every (re)connection and
/// records every chat line.
async fn member(url: &str, name: &str) -> (Client<Json>, mpsc::UnboundedReceiver<(String, String, String)>) {
    let client = Client::<Json>::builder(format!("{url}/ws"))
        .auth(&json!({ "name": name }))
        .retry(fast_retry())
        .on_connect(|endpoint| async move {
            let joined: bool = endpoint.invoke("join", ("lobby",)).await?;
            assert!(joined);
            Ok(())
        })
        .build()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    client.on("chat", move |line: (String, String, String)| {
        let _ = tx.send(line);
    });
    client.connect().await.unwrap();
    (client, rx)
}

async fn lines(rx: &mut mpsc::UnboundedReceiver<(String, String, String)>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let (room, who, text) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a chat line in time")
            .expect("open");
        assert_eq!((room.as_str(), who.as_str()), ("lobby", "bob"));
        got.push(text);
    }
    got
}

#[tokio::test]
async fn the_page_and_the_endpoint_share_a_port() {
    let (child, url) = start_chat(0).await;
    let addr = url.trim_start_matches("ws://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("<title>ws-messaging chat</title>"), "{response}");
    let (alice, _) = member(&url, "alice").await;
    let who: Vec<String> = alice.invoke("who", ("lobby",)).await.unwrap();
    assert_eq!(who, ["alice"]);
    drop(alice);
    assert!(terminate(child).await.success());
}

#[tokio::test]
async fn no_message_is_lost_across_a_restart_once_rejoined() {
    const EACH: usize = 200;
    let (child, url) = start_chat(0).await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let (alice, mut heard) = member(&url, "alice").await;
    let (bob, _) = member(&url, "bob").await;

    for n in 0..EACH {
        bob.send("chat", ("lobby", format!("before {n}"))).await.unwrap();
    }
    let expected: Vec<String> = (0..EACH).map(|n| format!("before {n}")).collect();
    assert_eq!(lines(&mut heard, EACH).await, expected);

    // The server restarts on the same port; both clients come back and
    // re-join before they count as connected.
    let mut alice_events = alice.events();
    let mut bob_events = bob.events();
    assert!(terminate(child).await.success());
    let (child, _) = start_chat(port).await;
    for events in [&mut alice_events, &mut bob_events] {
        let back = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match events.recv().await {
                    Ok(LocalEvent::Connect(_)) => return,
                    Ok(_) => {}
                    Err(e) => panic!("events ended: {e}"),
                }
            }
        });
        back.await.expect("reconnected and re-joined");
    }
    for n in 0..EACH {
        bob.send("chat", ("lobby", format!("after {n}"))).await.unwrap();
    }
    let expected: Vec<String> = (0..EACH).map(|n| format!("after {n}")).collect();
    assert_eq!(lines(&mut heard, EACH).await, expected);
    drop((alice, bob));
    assert!(terminate(child).await.success());
}
