//! What the library logs through `tracing` (feature `tracing`, on by
//! default): a span per connection, warnings for what would otherwise fail
//! silently (an event whose arguments do not decode, a refused frame).
//! A small recording subscriber stands in for the user's.
//!
//! `cargo test --test tracing`

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use futures_util::SinkExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use ws_messaging::Server;
use ws_messaging_json::Json;

/// One event: its level, its fields as text, and the names (with fields)
/// of the spans it happened in.
#[derive(Debug, Clone)]
struct Logged {
    level: Level,
    text: String,
    spans: Vec<String>,
}

#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<String>>,
    current: Mutex<Vec<u64>>,
    logged: Mutex<Vec<Logged>>,
    tx: Mutex<Option<mpsc::UnboundedSender<Logged>>>,
}

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

#[derive(Clone, Default)]
struct Recording(Arc<Recorder>);

impl Subscriber for Recording {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = format!("{} ", span.metadata().name());
        span.record(&mut Text(&mut text));
        let mut spans = self.0.spans.lock().unwrap();
        spans.push(text);
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = String::new();
        event.record(&mut Text(&mut text));
        let spans = self.0.spans.lock().unwrap();
        let logged = Logged {
            level: *event.metadata().level(),
            text,
            spans: self
                .0
                .current
                .lock()
                .unwrap()
                .iter()
                .map(|id| spans[*id as usize - 1].clone())
                .collect(),
        };
        self.0.logged.lock().unwrap().push(logged.clone());
        if let Some(tx) = &*self.0.tx.lock().unwrap() {
            let _ = tx.send(logged);
        }
    }
    fn enter(&self, span: &Id) {
        self.0.current.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, span: &Id) {
        let mut current = self.0.current.lock().unwrap();
        if let Some(at) = current.iter().rposition(|id| *id == span.into_u64()) {
            current.remove(at);
        }
    }
}

/// Waits for the first logged event matching `pred`.
async fn logged(rx: &mut mpsc::UnboundedReceiver<Logged>, pred: impl Fn(&Logged) -> bool) -> Logged {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = rx.recv().await.expect("the recorder is alive");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .expect("logged in time")
}

// One runtime thread, so that the recorder's notion of the current span
// (a single stack) matches what runs.
#[tokio::test(flavor = "current_thread")]
async fn failures_that_would_be_silent_are_logged_in_the_connection_span() {
    let recording = Recording::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    *recording.0.tx.lock().unwrap() = Some(tx);
    let _guard = tracing::subscriber::set_default(recording.clone());

    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, _: Value| async move {
            endpoint.on("typed", |(_n,): (u32,)| {});
            endpoint.register("add", |(a, b): (i64, i64)| async move { Ok(a + b) })?;
            Ok(())
        }),
    )
    .await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    let _connect = next_json(&mut ws).await;

    // An event whose argument does not decode: a warning naming it.
    ws.send(Message::text(r#"{"name":"typed","args":["not a number"]}"#))
        .await
        .unwrap();
    let warning = logged(&mut rx, |e| e.level == Level::WARN && e.text.contains("typed")).await;
    assert!(
        warning
            .spans
            .iter()
            .any(|s| s.starts_with("ws_messaging.connection") && s.contains("id=")),
        "{warning:?}"
    );

    // A malformed frame: a warning, and the connection carries on.
    ws.send(Message::text("{not json")).await.unwrap();
    logged(&mut rx, |e| {
        e.level == Level::WARN && e.text.contains("preprocessingError")
    })
    .await;
    let _report = next_json(&mut ws).await;

    // A handled call: debug, in a call span named after the procedure.
    ws.send(Message::text(r#"{"name":"add","args":[2,3],"id":7}"#))
        .await
        .unwrap();
    let answered = logged(&mut rx, |e| e.text.contains("call answered")).await;
    assert_eq!(answered.level, Level::DEBUG);
    // Timed, since debug events are recorded.
    assert!(
        answered.text.contains("elapsed=") && !answered.text.contains("elapsed=0ns"),
        "{answered:?}"
    );
    assert!(
        answered
            .spans
            .iter()
            .any(|s| s.starts_with("ws_messaging.call") && s.contains("name=add") && s.contains("id=7")),
        "{answered:?}"
    );

    // Nothing per frame at info or above.
    let loud: Vec<Logged> = recording
        .0
        .logged
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.level <= Level::INFO && !e.text.contains("typed") && !e.text.contains("preprocessingError"))
        .cloned()
        .collect();
    assert!(loud.is_empty(), "{loud:?}");
}

// One runtime thread, as above.
#[tokio::test(flavor = "current_thread")]
async fn typos_panics_and_refusals_are_logged_at_the_levels_the_docs_give() {
    let recording = Recording::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    *recording.0.tx.lock().unwrap() = Some(tx);
    let _guard = tracing::subscriber::set_default(recording.clone());

    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, auth: Value| async move {
            if auth["token"] != "secret" {
                return Err(ws_messaging::HandlerError::text("bad token"));
            }
            endpoint.register("boom", |(): ()| async move {
                if true {
                    panic!("boom");
                }
                Ok(())
            })?;
            Ok(())
        }),
    )
    .await;

    // A refused client: info, with the hook's error.
    let mut refused = raw_connect(&url(&server)).await;
    refused.send(Message::text(r#"{"token":"wrong"}"#)).await.unwrap();
    let refusal = logged(&mut rx, |e| e.text.contains("client refused")).await;
    assert_eq!(refusal.level, Level::INFO, "{refusal:?}");
    assert!(refusal.text.contains("bad token"), "{refusal:?}");

    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text(r#"{"token":"secret"}"#)).await.unwrap();
    let _connect = next_json(&mut ws).await;

    // A call of a procedure that is not registered: debug, with its name.
    ws.send(Message::text(r#"{"name":"ad","args":[],"id":1}"#))
        .await
        .unwrap();
    let typo = logged(&mut rx, |e| e.text.contains("not registered")).await;
    assert_eq!(typo.level, Level::DEBUG);
    assert!(typo.text.contains("name=ad") && typo.text.contains("id=1"), "{typo:?}");
    assert_eq!(next_json(&mut ws).await["error"], "NoProcedureError");

    // An event no listener takes: debug, with its name.
    ws.send(Message::text(r#"{"name":"sayy","args":[]}"#)).await.unwrap();
    let unheard = logged(&mut rx, |e| e.text.contains("no listener")).await;
    assert_eq!(unheard.level, Level::DEBUG);
    assert!(unheard.text.contains("sayy"), "{unheard:?}");

    // A panicking procedure: a warning in its call span.
    ws.send(Message::text(r#"{"name":"boom","args":[],"id":2}"#))
        .await
        .unwrap();
    let panicked = logged(&mut rx, |e| e.text.contains("panicked")).await;
    assert_eq!(panicked.level, Level::WARN);
    assert!(
        panicked
            .spans
            .iter()
            .any(|s| s.starts_with("ws_messaging.call") && s.contains("name=boom")),
        "{panicked:?}"
    );
}
