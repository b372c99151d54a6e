//! Schema-validating codecs: a refused frame never reaches a handler, the
//! peer gets a preprocessing error, and the connection carries on.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{next_json, raw_connect};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::schema::Validated;
use ws_messaging::{Codec, ServerBuilder};
use ws_messaging_json::Json;

#[tokio::test]
async fn refused_frames_never_reach_handlers() {
    let schema = jsonschema::validator_for(&json!({
        "type": "array",
        "prefixItems": [{ "type": "string", "minLength": 1 }],
        "minItems": 1
    }))
    .unwrap();
    let codec = Validated::new(Json)
        .typed::<(f64, f64)>("add")
        .rule("greet", move |codec: &Json, args| {
            let args: Vec<Value> = args.iter().map(|a| codec.decode_value(a)).collect::<Result<_, _>>()?;
            schema.validate(&Value::Array(args)).map_err(|e| e.to_string().into())
        })
        .rule("note", |_, args| {
            if args.len() == 1 {
                Ok(())
            } else {
                Err("one argument".into())
            }
        })
        .refuse_unknown();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let server = ServerBuilder::new(codec)
        .on_connection(move |endpoint, _: Value| {
            let calls = counted.clone();
            async move {
                let (a, b, c) = (calls.clone(), calls.clone(), calls.clone());
                endpoint.register("add", move |(x, y): (f64, f64)| {
                    a.fetch_add(1, Ordering::SeqCst);
                    async move { Ok(x + y) }
                })?;
                endpoint.register("greet", move |(name,): (String,)| {
                    b.fetch_add(1, Ordering::SeqCst);
                    async move { Ok(format!("hi {name}")) }
                })?;
                endpoint.on("note", move |_: ws_messaging::RawArgs| {
                    c.fetch_add(1, Ordering::SeqCst);
                });
                Ok(())
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut ws = raw_connect(&format!("ws://{}", server.local_addr().unwrap())).await;
    ws.send(Message::text("{}")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["name"], "connect");

    let refused = [
        (r#"{"name":"add","args":[1,"x"],"id":1}"#, "invalid arguments for `add`"),
        (
            r#"{"name":"greet","args":[""],"id":2}"#,
            "invalid arguments for `greet`",
        ),
        (r#"{"name":"greet","args":[],"id":3}"#, "invalid arguments for `greet`"),
        (
            r#"{"name":"note","args":[1,2]}"#,
            "invalid arguments for `note`: one argument",
        ),
        (
            r#"{"name":"drop","args":[],"id":4}"#,
            "unknown event or procedure `drop`",
        ),
    ];
    for (frame, reason) in refused {
        ws.send(Message::text(frame)).await.unwrap();
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["name"], "preprocessingError", "{frame}");
        let text = reply["args"][0].as_str().unwrap();
        assert!(text.starts_with("Error: ") && text.contains(reason), "{frame}: {text}");
    }
    ws.send(Message::text(r#"{"name":"add","args":[1,2],"id":5}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":5,"result":3.0}));
    ws.send(Message::text(r#"{"name":"greet","args":["ada"],"id":6}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id":6,"result":"hi ada"}));
    // Only the two valid calls ran.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
