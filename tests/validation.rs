//! Every invalid frame gets a preprocessing error and the connection carries
//! on (docs/protocol.md, Validation).

mod common;

use std::sync::Arc;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, Frame, HandlerError, LocalEvent};

const INVALID: &[&str] = &[
    "[1,2]",
    "\"text\"",
    "42",
    "null",
    "{}",
    r#"{"foo":1}"#,
    r#"{"name":"echo","args":{}}"#,
    r#"{"name":"echo","args":"x"}"#,
    r#"{"name":"echo"}"#,
    r#"{"name":7,"args":[]}"#,
    r#"{"name":"echo","args":[],"id":0}"#,
    r#"{"name":"echo","args":[],"id":-5}"#,
    r#"{"name":"echo","args":[],"id":1.5}"#,
    r#"{"name":"echo","args":[],"id":"1"}"#,
    r#"{"name":"echo","args":[],"extra":true}"#,
    r#"{"name":"echo","args":[],"id":1,"extra":true}"#,
    r#"{"id":1}"#,
    r#"{"id":0,"result":1}"#,
    r#"{"id":1,"result":1,"error":1}"#,
    r#"{"id":1.5,"result":1}"#,
    r#"{"name":"","args":[],"id":1}"#,
];

#[tokio::test]
async fn every_invalid_envelope_is_reported_and_the_connection_carries_on() {
    let server = server().await;
    let mut ws = raw_authed(&server).await;
    for (n, frame) in INVALID.iter().enumerate() {
        ws.send(Message::text(*frame)).await.unwrap();
        assert_eq!(
            next_json(&mut ws).await,
            json!({"name":"preprocessingError","args":["Error: Validation error"]}),
            "frame {frame}"
        );
        let id = n + 1;
        ws.send(Message::text(format!(r#"{{"name":"echo","args":[{id}],"id":{id}}}"#)))
            .await
            .unwrap();
        assert_eq!(next_json(&mut ws).await, json!({"id": id, "result": id}));
    }
}

#[tokio::test]
async fn undecodable_frames_are_reported_too() {
    let server = server().await;
    let mut ws = raw_authed(&server).await;
    for frame in ["not json", "{", "{\"name\":\"a\",\"args\":[]} trailing", ""] {
        ws.send(Message::text(frame)).await.unwrap();
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["name"], "preprocessingError", "{frame}");
        assert!(
            reply["args"][0].as_str().unwrap().starts_with("Error: decode error"),
            "{reply}"
        );
    }
    // Binary frames are decoded the same way.
    ws.send(Message::binary(br#"{"name":"echo","args":["bin"],"id":9}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":9,"result":"bin"}));
    ws.send(Message::binary(vec![0xff, 0x00, 0x12])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["name"], "preprocessingError");
    ws.send(Message::text(r#"{"name":"echo","args":[1],"id":10}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":10,"result":1}));
}

#[tokio::test]
async fn acks_for_unknown_ids_are_ignored() {
    let server = server().await;
    let mut ws = raw_authed(&server).await;
    ws.send(Message::text(r#"{"id":12345,"result":1}"#)).await.unwrap();
    ws.send(Message::text(r#"{"name":"echo","args":[2],"id":2}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":2,"result":2}));
}

#[tokio::test]
async fn the_receive_hook_refuses_frames_before_any_handler() {
    let server = start(builder().configure(|o| {
        o.receive_hook = Some(Arc::new(|frame: &Frame| match frame.name() {
            Some("echo") => Err(HandlerError::new("echo is switched off")),
            _ => Ok(()),
        }));
    }))
    .await;
    let mut ws = raw_authed(&server).await;
    ws.send(Message::text(r#"{"name":"echo","args":[1],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"name":"preprocessingError","args":["Error: echo is switched off"]})
    );
    ws.send(Message::text(r#"{"name":"sum","args":[1,2],"id":2}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":2,"result":3.0}));
}

#[tokio::test]
async fn skip_validation_accepts_loose_frames() {
    let server = start(builder().configure(|o| o.skip_validation = true)).await;
    let mut ws = raw_authed(&server).await;
    ws.send(Message::text(r#"{"name":"echo","args":[1],"id":1,"extra":true}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":1,"result":1}));
    // Frames that cannot be routed at all are still refused.
    ws.send(Message::text("[1]")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["name"], "preprocessingError");
}

#[tokio::test]
async fn a_client_reports_the_peers_preprocessing_errors_locally() {
    // A raw server peer that sends the Rust client a malformed frame.
    let raw = RawServer::bind().await;
    let other = Client::<ws_messaging_json::Json>::builder(raw.url()).build().unwrap();
    let mut other_events = other.events();
    other.reconnect();
    let mut ws = raw.accept().await;
    server_next_json(&mut ws).await;
    ws.send(Message::text(r#"{"name":"connect","args":[null]}"#))
        .await
        .unwrap();
    other.connect().await.unwrap();
    ws.send(Message::text(r#"{"bad":true}"#)).await.unwrap();
    assert_eq!(
        server_next_json(&mut ws).await,
        json!({"name":"preprocessingError","args":["Error: Validation error"]})
    );
    // And a peer's report shows up as a local event.
    ws.send(Message::text(
        r#"{"name":"preprocessingError","args":["Error: Validation error"]}"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        wait_event(&mut other_events, |e| matches!(e, LocalEvent::PreprocessingError(_))).await,
        LocalEvent::PreprocessingError(Value::String("Error: Validation error".into()))
    );
}

#[tokio::test]
async fn an_oversized_frame_ends_only_that_connection() {
    let server = start(builder().configure(|o| o.max_message_size = 1024)).await;
    let mut ws = raw_authed(&server).await;
    let mut other = raw_authed(&server).await;
    ws.send(Message::text(format!(
        r#"{{"name":"echo","args":["{}"],"id":1}}"#,
        "x".repeat(4096)
    )))
    .await
    .unwrap();
    // The offender's connection ends (tungstenite refuses the frame: 1009
    // or a dropped socket), the other one keeps working.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match futures_util::StreamExt::next(&mut ws).await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversized sender is disconnected");
    other
        .send(Message::text(r#"{"name":"echo","args":[1],"id":1}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut other).await, json!({"id":1,"result":1}));
}
