//! The recovery extension on one node (`docs/recovery.md`), over real
//! sockets with a raw client that speaks it frame by frame.

mod common;

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
