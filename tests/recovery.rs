//! The recovery extension on one node (`docs/recovery.md`), over real
//! sockets with a raw client that speaks it frame by frame.

mod common;

use common::cutter::Cutter;
use common::peers::{echo_server_path, spawn_listening};
use common::rooms::recv;
use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{RecoveryConfig, Server};
use ws_messaging_json::Json;

/// A server with recovery on; the hook accepts every client as the user
/// its token names. Disconnections are reported on the receiver.
async fn recovering_server() -> (Server<Json>, mpsc::UnboundedReceiver<String>) {
    let (gone_tx, gone) = mpsc::unbounded_channel();
    let server = start(
        Server::<Json>::builder()
            .recovery(RecoveryConfig::default())
            .on_connection(|_, auth: Value| async move { Ok(json!({ "user": auth["token"] })) })
            .on_disconnect(move |endpoint, _, _| {
                let gone_tx = gone_tx.clone();
                async move {
                    let _ = gone_tx.send(endpoint.id().unwrap_or_default().to_string());
                }
            }),
    )
    .await;
    (server, gone)
}

/// A raw socket offering `protocols`; returns it and the protocol the
/// server chose.
async fn offer(server: &Server<Json>, protocols: &'static str) -> (RawWs, Option<String>) {
    let mut request = url(server).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static(protocols));
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("raw connect");
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, chosen)
}

/// Connects with the extension as `user`, sending `resume` as the second
/// frame; returns the socket and the `wsm.session` arguments.
async fn session(server: &Server<Json>, user: &str, resume: Value) -> (RawWs, Vec<String>) {
    let (mut ws, chosen) = offer(server, "ws-messaging.resume.1, ws-messaging").await;
    assert_eq!(chosen.as_deref(), Some("ws-messaging.resume.1"));
    ws.send(Message::text(json!({ "token": user }).to_string()))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({ "name": "wsm.resume", "args": resume }).to_string(),
    ))
    .await
    .unwrap();
    let first = next_json(&mut ws).await;
    assert_eq!(first["name"], "wsm.session", "{first}");
    let args: Vec<String> = serde_json::from_value(first["args"].clone()).unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"name": "connect", "args": [{ "user": user }]})
    );
    (ws, args)
}

/// The next recoverable event: its position and the event.
async fn next_tagged(ws: &mut RawWs) -> (String, Value) {
    let at = next_json(ws).await;
    assert_eq!(at["name"], "wsm.at", "{at}");
    let position = at["args"][0].as_str().unwrap().to_string();
    (position, next_json(ws).await)
}

#[tokio::test]
async fn a_client_that_does_not_ask_sees_the_plain_protocol() {
    let (server, _) = recovering_server().await;
    let (mut ws, chosen) = offer(&server, "ws-messaging").await;
    assert_eq!(chosen.as_deref(), Some("ws-messaging"));
    ws.send(Message::text(r#"{"token":"ann"}"#)).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"name":"connect","args":[{"user":"ann"}]})
    );
    server.broadcast("news", ("hi",)).unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"name":"news","args":["hi"]}));
}

#[tokio::test]
async fn a_resumed_session_gets_what_it_missed_in_order_then_live_events() {
    let (server, mut gone) = recovering_server().await;
    let (mut ws, args) = session(&server, "ann", json!([])).await;
    let [token, status, received] = &args[..] else {
        panic!("{args:?}")
    };
    assert_eq!((status.as_str(), received.as_str()), ("new", "0"));
    // Joined through the conformance contract's `join`.
    ws.send(Message::text(r#"{"name":"join","args":["lobby"],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":1,"result":true}));
    server.to("lobby").emit("room", ("lobby", 1)).unwrap();
    let (position, event) = next_tagged(&mut ws).await;
    assert_eq!(event, json!({"name":"room","args":["lobby",1]}));

    // The connection drops; events go on meanwhile.
    drop(ws);
    let id = recv(&mut gone).await;
    for n in 2..=4 {
        server.to("lobby").emit("room", ("lobby", n)).unwrap();
    }
    server.broadcast("news", ("everyone",)).unwrap();
    server.send_to(&id, "told", ("you",)).unwrap();
    server.to("elsewhere").emit("room", ("elsewhere", 0)).unwrap();

    let (mut ws, args) = session(&server, "ann", json!([token, position, ""])).await;
    assert_eq!(args[1], "recovered");
    assert_ne!(&args[0], token, "a new token");
    let mut missed = Vec::new();
    for _ in 0..5 {
        missed.push(next_tagged(&mut ws).await.1);
    }
    assert_eq!(
        missed,
        [
            json!({"name":"room","args":["lobby",2]}),
            json!({"name":"room","args":["lobby",3]}),
            json!({"name":"room","args":["lobby",4]}),
            json!({"name":"news","args":["everyone"]}),
            json!({"name":"told","args":["you"]}),
        ]
    );
    // Its rooms and id are its own again: live events follow.
    server.to("lobby").emit("room", ("lobby", 5)).unwrap();
    assert_eq!(next_tagged(&mut ws).await.1, json!({"name":"room","args":["lobby",5]}));
    ws.send(Message::text(r#"{"name":"whoami","args":[],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":1,"result":id}));
}

#[tokio::test]
async fn a_forged_or_foreign_token_recovers_nothing() {
    let (server, mut gone) = recovering_server().await;
    let (ws, args) = session(&server, "ann", json!([])).await;
    drop(ws);
    recv(&mut gone).await;
    let (_forged, forged) = session(&server, "ann", json!(["not-a-token", "", ""])).await;
    assert_eq!(forged[1], "failed:unknown");
    // Another user with ann's token: refused, ann's session untouched.
    let (mut ws, chosen) = offer(&server, "ws-messaging.resume.1, ws-messaging").await;
    assert_eq!(chosen.as_deref(), Some("ws-messaging.resume.1"));
    ws.send(Message::text(r#"{"token":"mallory"}"#)).await.unwrap();
    ws.send(Message::text(
        json!({"name":"wsm.resume","args":[args[0], "", ""]}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_close(&mut ws).await, (4003, "bad resume".to_string()));
    drop(ws);
    let (_ann, again) = session(&server, "ann", json!([args[0], "", ""])).await;
    assert_eq!(again[1], "recovered");
}

#[tokio::test]
async fn a_rust_client_gets_every_room_event_once_in_order_through_repeated_cuts() {
    const EVENTS: u64 = 400;
    let (server, _) = recovering_server().await;
    let proxy = Cutter::start(server.local_addr().unwrap()).await;
    let client = recovering_client(&proxy.url).build().unwrap();
    let mut events = client.events();
    let (tx, mut rx) = mpsc::unbounded_channel();
    client.on("room", move |(_, n): (String, u64)| {
        let _ = tx.send(n);
    });
    tokio::time::timeout(WAIT, client.connect()).await.unwrap().unwrap();
    assert_eq!(client.session_status(), Some(ws_messaging::SessionStatus::New));
    assert!(client.invoke::<_, bool>("join", ("lobby",)).await.unwrap());

    // A steady stream into the room, from the server.
    let emitter = tokio::spawn({
        let server = server.clone();
        async move {
            for n in 1..=EVENTS {
                server.to("lobby").emit("room", ("lobby", n)).unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    });
    let got = receive_numbers(&mut rx, EVENTS, |got| {
        if got % 60 == 0 {
            proxy.cut();
        }
    })
    .await;
    emitter.await.unwrap();
    assert_eq!(got, (1..=EVENTS).collect::<Vec<_>>(), "every event once, in order");
    assert_eq!(client.session_status(), Some(ws_messaging::SessionStatus::Recovered));
    let mut connects = 0;
    while let Ok(event) = events.try_recv() {
        connects += usize::from(matches!(event, ws_messaging::LocalEvent::Connect(_)));
    }
    assert!(
        connects > (EVENTS as usize - 1) / 60,
        "{connects} connections: the cuts happened"
    );
}

#[tokio::test]
async fn echo_server_recovery_replays_room_events_sent_by_another_client_through_cuts() {
    echo_server_replays_through_cuts(&[], "").await;
}

#[tokio::test]
async fn echo_server_recovery_works_through_axum_too() {
    echo_server_replays_through_cuts(&["--http"], "/ws").await;
}

/// `echo_server --recovery EXTRA` at `path`: a member through a cutting
/// proxy gets every `room` event a plain sender causes, once, in order.
async fn echo_server_replays_through_cuts(extra: &[&str], path: &str) {
    const EVENTS: u64 = 300;
    let mut command = tokio::process::Command::new(echo_server_path());
    command.args(["--port", "0", "--recovery"]).args(extra);
    let (_server, url) = spawn_listening(command).await;
    let addr = url.strip_prefix("ws://").unwrap().to_string();
    let url = format!("{url}{path}");
    let proxy = Cutter::start(addr).await;
    let member = ws_messaging::Client::<Json>::builder(format!("{}{path}", proxy.url))
        .recovery(true)
        .auth(&json!({ "token": "secret" }))
        .retry(fast_retry())
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    member.on("room", move |(_, n): (String, u64)| {
        let _ = tx.send(n);
    });
    tokio::time::timeout(WAIT, member.connect()).await.unwrap().unwrap();
    assert!(member.invoke::<_, bool>("join", ("lobby",)).await.unwrap());
    // The sender speaks the plain protocol, straight to the server.
    let sender = ws_messaging::Client::<Json>::builder(url.clone())
        .auth(&json!({ "token": "secret" }))
        .connect()
        .await
        .unwrap();
    assert_eq!(sender.session_status(), None);
    let sending = tokio::spawn(async move {
        for n in 1..=EVENTS {
            sender.send("to-room", ("lobby", n)).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        sender
    });
    let got = receive_numbers(&mut rx, EVENTS, |got| {
        if got % 50 == 0 {
            proxy.cut();
        }
    })
    .await;
    let _sender = sending.await.unwrap();
    assert_eq!(got, (1..=EVENTS).collect::<Vec<_>>(), "every event once, in order");
    assert_eq!(member.session_status(), Some(ws_messaging::SessionStatus::Recovered));
}

#[tokio::test]
async fn a_rust_clients_events_reach_the_server_once_in_order_through_repeated_cuts() {
    const EVENTS: u64 = 300;
    let (server, _) = recovering_server().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    server.on("note", move |(n,): (u64,)| {
        let _ = tx.send(n);
    });
    let proxy = Cutter::start(server.local_addr().unwrap()).await;
    let client = recovering_client(&proxy.url).connect().await.unwrap();
    for n in 1..=EVENTS {
        // Connected or not: kept until the server has it.
        client.send("note", (n,)).await.unwrap();
        if n % 50 == 0 {
            proxy.cut();
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let got = receive_numbers(&mut rx, EVENTS, |_| {}).await;
    assert_eq!(got, (1..=EVENTS).collect::<Vec<_>>(), "every event once, in order");
    assert_eq!(client.session_status(), Some(ws_messaging::SessionStatus::Recovered));
    // Nothing more comes.
    client.send("note", (0,)).await.unwrap();
    assert_eq!(recv(&mut rx).await, 0);
}

#[tokio::test]
async fn a_resume_takes_over_a_connection_the_server_still_holds() {
    let (server, _) = recovering_server().await;
    let (mut old, args) = session(&server, "ann", json!([])).await;
    old.send(Message::text(r#"{"name":"join","args":["lobby"],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut old).await, json!({"id":1,"result":true}));
    old.send(Message::text(r#"{"name":"whoami","args":[],"id":2}"#))
        .await
        .unwrap();
    let id = next_json(&mut old).await["result"].clone();
    server.to("lobby").emit("room", ("lobby", 1)).unwrap();
    let (position, _) = next_tagged(&mut old).await;
    // Its client is gone without a close the server saw; it comes back.
    server.to("lobby").emit("room", ("lobby", 2)).unwrap();
    let (mut ws, again) = session(&server, "ann", json!([args[0], position, ""])).await;
    assert_eq!(again[1], "recovered");
    assert_eq!(next_tagged(&mut ws).await.1, json!({"name":"room","args":["lobby",2]}));
    server.to("lobby").emit("room", ("lobby", 3)).unwrap();
    assert_eq!(next_tagged(&mut ws).await.1, json!({"name":"room","args":["lobby",3]}));
    ws.send(Message::text(r#"{"name":"whoami","args":[],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":1,"result":id}));
    // The old connection was closed, and no longer gets the room's events.
    loop {
        match next_json_or_close(&mut old).await {
            Ok(frame) => assert_ne!(frame["args"], json!(["lobby", 3]), "{frame}"),
            Err(close) => break assert_eq!(close, (4003, "session resumed elsewhere".to_string())),
        }
    }
}

/// The next JSON frame, or the close frame's code and reason.
async fn next_json_or_close(ws: &mut RawWs) -> Result<Value, (u16, String)> {
    use futures_util::StreamExt;
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("frame") {
                Message::Text(text) => return Ok(serde_json::from_str(&text).unwrap()),
                Message::Close(Some(frame)) => return Err((u16::from(frame.code), frame.reason.to_string())),
                Message::Close(None) => return Err((1005, String::new())),
                _ => {}
            }
        }
    })
    .await
    .expect("a frame in time")
}

#[tokio::test]
async fn a_rust_clients_invokes_run_once_and_are_answered_through_repeated_cuts() {
    const INVOKES: u64 = 200;
    let (server, _) = recovering_server().await;
    let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    server
        .register("once", {
            let ran = ran.clone();
            move |(n,): (u64,)| {
                ran.lock().unwrap().push(n);
                async move {
                    // Some are still running when their connection is cut.
                    tokio::time::sleep(std::time::Duration::from_millis(n % 7)).await;
                    Ok(n * 10)
                }
            }
        })
        .unwrap();
    let proxy = std::sync::Arc::new(Cutter::start(server.local_addr().unwrap()).await);
    let client = recovering_client(&proxy.url).connect().await.unwrap();
    let mut workers = Vec::new();
    for worker in 0..4u64 {
        let client = client.clone();
        let proxy = proxy.clone();
        workers.push(tokio::spawn(async move {
            for n in (worker..INVOKES).step_by(4) {
                let answer: u64 = client.invoke("once", (n,)).await.unwrap_or_else(|e| panic!("{n}: {e}"));
                assert_eq!(answer, n * 10);
                if worker == 0 && n % 40 == 0 {
                    proxy.cut();
                }
            }
        }));
    }
    for worker in workers {
        tokio::time::timeout(std::time::Duration::from_secs(30), worker)
            .await
            .expect("the invokes end")
            .unwrap();
    }
    let mut ran = ran.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, (0..INVOKES).collect::<Vec<_>>(), "each invoke ran once");
    assert_eq!(client.session_status(), Some(ws_messaging::SessionStatus::Recovered));
}

/// Receives `count` numbers from `rx` (at most 10 s between two), calling
/// `each` with how many have come after each one.
async fn receive_numbers(rx: &mut mpsc::UnboundedReceiver<u64>, count: u64, mut each: impl FnMut(usize)) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < count as usize {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("stuck after {:?}", got.last()))
            .unwrap();
        got.push(n);
        each(got.len());
    }
    got
}

/// A client of `url` asking for session recovery, as `ann`, reconnecting
/// at once.
fn recovering_client(url: &str) -> ws_messaging::ClientBuilder<Json> {
    ws_messaging::Client::<Json>::builder(url)
        .recovery(true)
        .auth(&json!({ "token": "ann" }))
        .retry(fast_retry())
}

#[tokio::test]
async fn a_session_past_its_time_resumes_nothing_and_says_so() {
    let server = start(
        Server::<Json>::builder()
            .recovery(RecoveryConfig::default().with_session_time(std::time::Duration::from_millis(200)))
            .on_connection(|endpoint, _: Value| async move {
                endpoint.join("lobby");
                Ok(())
            }),
    )
    .await;
    let addr = server.local_addr().unwrap();
    let proxy = Cutter::start(addr).await;
    let member = ws_messaging::Client::<Json>::builder(&proxy.url)
        .recovery(true)
        .auth(&json!({ "token": "x" }))
        // The client stays away longer than the session lives.
        .retry(ws_messaging::RetryConfig::doubling(
            std::time::Duration::from_millis(600),
            std::time::Duration::from_millis(600),
        ))
        .build()
        .unwrap();
    tokio::time::timeout(WAIT, member.connect()).await.unwrap().unwrap();
    assert_eq!(member.session_status(), Some(ws_messaging::SessionStatus::New));
    let mut events = member.events();
    proxy.cut();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Ok(ws_messaging::LocalEvent::Connect(_)) = events.recv().await {
                return member.session_status();
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(status, Some(ws_messaging::SessionStatus::Failed(_))),
        "{status:?}"
    );
}
