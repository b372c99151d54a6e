//! Trace context across the wire: a client that asks carries its
//! invokes' W3C `traceparent` into the server's handlers, also on to the
//! next hop; a client that does not ask (as the JavaScript one) sends
//! nothing more and gets no extension header.

#![allow(clippy::result_large_err)] // tungstenite's handshake callback type

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, Endpoint, Server};
use ws_messaging_json::Json;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A server whose `trace` procedure answers the traceparent its handler
/// sees.
async fn traced_server() -> Server<Json> {
    let server = server().await;
    server
        .register("trace", |()| async move { Ok(ws_messaging::traceparent()) })
        .unwrap();
    server
}

#[tokio::test]
async fn an_invoke_carries_its_callers_traceparent_into_the_handler() {
    let server = traced_server().await;
    let current = Arc::new(Mutex::new(Some(CALLER.to_string())));
    let source = current.clone();
    let client = client_builder(&server)
        .trace_context(move || source.lock().unwrap().clone())
        .connect()
        .await
        .unwrap();
    let seen: Option<String> = client.invoke("trace", ()).await.unwrap();
    assert_eq!(seen.as_deref(), Some(CALLER));
    // No context now: the handler sees none (nothing is left over).
    *current.lock().unwrap() = None;
    let seen: Option<String> = client.invoke("trace", ()).await.unwrap();
    assert_eq!(seen, None);
    // A malformed one is not sent.
    *current.lock().unwrap() = Some("not-a-traceparent".into());
    let seen: Option<String> = client.invoke("trace", ()).await.unwrap();
    assert_eq!(seen, None);
    // Calls made concurrently each get their own.
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    *current.lock().unwrap() = Some(other.into());
    let calls: Vec<_> = (0..16)
        .map(|_| client.invoke::<_, Option<String>>("trace", ()))
        .collect();
    for seen in futures_util::future::join_all(calls).await {
        assert_eq!(seen.unwrap().as_deref(), Some(other));
    }
}

#[tokio::test]
async fn a_handler_carries_the_trace_on_to_the_next_service() {
    let downstream = traced_server().await;
    let upstream = server().await;
    let downstream_url = url(&downstream);
    upstream
        .register("forward", move |_: Endpoint<Json>, ()| {
            let url = downstream_url.clone();
            async move {
                let next = Client::<Json>::builder(url)
                    .auth(&json!({ "token": "secret" }))
                    .trace_context(ws_messaging::traceparent)
                    .connect()
                    .await
                    .map_err(|e| ws_messaging::HandlerError::new(e.to_string()))?;
                let seen: Option<String> = next
                    .invoke("trace", ())
                    .await
                    .map_err(|e| ws_messaging::HandlerError::new(e.to_string()))?;
                next.close(1000, "").await;
                Ok(seen)
            }
        })
        .unwrap();
    let client = client_builder(&upstream)
        .trace_context(|| Some(CALLER.to_string()))
        .connect()
        .await
        .unwrap();
    let seen: Option<String> = client.invoke("forward", ()).await.unwrap();
    assert_eq!(seen.as_deref(), Some(CALLER));
}

#[tokio::test]
async fn a_client_that_does_not_ask_sees_the_plain_protocol() {
    let server = traced_server().await;
    // As the JavaScript client: no extension header asked, none answered.
    let mut request = url(&server).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert!(response.headers().get("ws-messaging-trace").is_none());
    ws.send(Message::text(json!({ "token": "secret" }).to_string()))
        .await
        .unwrap();
    // A `wsm.trace` event from it is an ordinary event (no listener): the
    // call after it sees no trace context.
    ws.send(Message::text(
        json!({ "name": "wsm.trace", "args": ["1", CALLER] }).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        json!({ "name": "trace", "args": [], "id": 1 }).to_string(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            let Some(Ok(Message::Text(text))) = ws.next().await else {
                panic!("the connection ended");
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame.get("id") == Some(&json!(1)) {
                return frame;
            }
        }
    })
    .await
    .expect("the reply");
    assert_eq!(reply, json!({ "id": 1, "result": null }));

    // And a Rust client that does not ask sends nothing either.
    let plain = client(&server).await;
    let seen: Option<String> = plain.invoke("trace", ()).await.unwrap();
    assert_eq!(seen, None);
}

#[tokio::test]
async fn a_client_asks_but_a_server_that_does_not_answer_gets_no_trace_frames() {
    // A raw server that upgrades without the extension's header and
    // records every frame it reads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frames = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = frames.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let answer = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                      mut response: tokio_tungstenite::tungstenite::handshake::server::Response| {
            assert_eq!(
                request.headers().get("ws-messaging-trace").map(|v| v.as_bytes()),
                Some(&b"1"[..]),
                "the client asks"
            );
            response
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, answer).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else { continue };
            seen.lock().unwrap().push(text.to_string());
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame.get("token").is_some() {
                ws.send(Message::text(json!({ "name": "connect", "args": [] }).to_string()))
                    .await
                    .unwrap();
            } else if let Some(id) = frame.get("id") {
                ws.send(Message::text(json!({ "id": id, "result": "ok" }).to_string()))
                    .await
                    .unwrap();
            }
        }
    });
    let client = Client::<Json>::builder(format!("ws://{addr}"))
        .auth(&json!({ "token": "secret" }))
        .trace_context(|| Some(CALLER.to_string()))
        .connect()
        .await
        .unwrap();
    let answer: String = client.invoke("anything", ()).await.unwrap();
    assert_eq!(answer, "ok");
    let frames = frames.lock().unwrap().clone();
    assert!(frames.iter().all(|f| !f.contains("wsm.trace")), "{frames:?}");
}
