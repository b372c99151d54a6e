//! A schema-validating decoder: the JSON codec wrapped with a JSON Schema per
//! procedure. A call whose arguments break the schema is refused before any
//! handler runs; the caller gets a `preprocessingError` with the reason and
//! its invoke times out (as with the JavaScript package, a refused frame
//! gets no reply), and the connection carries on.
//!
//! ```text
//! cargo run --example json_schema
//! ```

use std::time::Duration;

use serde_json::{json, Value};
use ws_messaging::schema::Validated;
use ws_messaging::{BoxError, Bytes, Client, Codec, LocalEvent, ServerBuilder};
use ws_messaging_json::Json;

/// A rule checking the argument list (as a JSON array) against `schema`.
fn json_schema(schema: Value) -> impl Fn(&Json, &[Bytes]) -> Result<(), BoxError> + Send + Sync + 'static {
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    move |codec, args| {
        let args = args
            .iter()
            .map(|raw| codec.decode_value::<Value>(raw))
            .collect::<Result<Vec<_>, _>>()?;
        match validator.iter_errors(&Value::Array(args)).next() {
            None => Ok(()),
            Some(error) => Err(format!("{} (at {})", error, error.instance_path()).into()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let codec = Validated::new(Json)
        .rule(
            "create_user",
            json_schema(json!({
                "type": "array",
                "prefixItems": [{
                    "type": "object",
                    "required": ["name", "age"],
                    "properties": {
                        "name": { "type": "string", "minLength": 1 },
                        "age": { "type": "integer", "minimum": 0 }
                    },
                    "additionalProperties": false
                }],
                "minItems": 1,
                "maxItems": 1
            })),
        )
        .refuse_unknown();

    let server = ServerBuilder::new(codec)
        .on_connection(|client, _auth: Value| async move {
            client.register("create_user", |(user,): (Value,)| async move {
                Ok(format!("created {}", user["name"]))
            })?;
            Ok(())
        })
        .bind("127.0.0.1:0")
        .await?;

    let client = Client::<Json>::builder(format!("ws://{}", server.local_addr().expect("bound to a port")))
        .configure(|o| o.ack_timeout = Duration::from_millis(300))
        .connect()
        .await?;
    let mut events = client.events();

    let ok: String = client
        .invoke("create_user", (json!({ "name": "ada", "age": 36 }),))
        .await?;
    println!("valid call: {ok}");

    let refused = client
        .invoke::<_, String>("create_user", (json!({ "name": "", "age": -1 }),))
        .await;
    println!("invalid call: {}", refused.unwrap_err());
    while let Ok(event) = events.recv().await {
        if let LocalEvent::PreprocessingError(reason) = event {
            println!("the server said: {reason}");
            break;
        }
    }

    let unknown = client.invoke::<_, Value>("drop_tables", ()).await;
    println!("unknown procedure: {}", unknown.unwrap_err());
    let again: String = client
        .invoke("create_user", (json!({ "name": "grace", "age": 45 }),))
        .await?;
    println!("and the connection carries on: {again}");
    Ok(())
}
