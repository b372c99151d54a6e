//! The quick start, end to end: a server and a client in one process.
//!
//! ```text
//! cargo run --release --example demo
//! ```

use serde_json::{json, Value};
use ws_messaging::{Client, CloseCode, Endpoint, HandlerError, Server};
use ws_messaging_json::Json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A server: check the auth value of each connection.
    let server = Server::<Json>::builder()
        .on_connection(|_client, auth: Value| async move {
            if auth["token"] != "secret" {
                return Err(HandlerError::text("bad token"));
            }
            Ok(json!({ "user": "alice" }))
        })
        .bind("127.0.0.1:0")
        .await?;
    // Handlers, once for every connection: a handler that needs its
    // connection takes it as an argument.
    server.register("sum", |numbers: Vec<f64>| async move {
        Ok(numbers.iter().fold(0.0, |a, b| a + b))
    })?;
    server.on_async("say", |client: Endpoint<Json>, (text,): (String,)| async move {
        let _ = client.send("said", (text.to_uppercase(),)).await;
    });
    println!("server listening on {}", server.local_addr().expect("bound to a port"));

    // A client: auth, an RPC, and an event round trip.
    let client = Client::<Json>::builder(format!("ws://{}", server.local_addr().expect("bound to a port")))
        .auth(&json!({ "token": "secret" }))
        .connect()
        .await?;
    println!("connected as {}", client.auth_reply::<Value>().unwrap_or_default());

    let sum: f64 = client.invoke("sum", (1, 2, 3.5)).await?;
    println!("sum(1, 2, 3.5) = {sum}");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    client.on("said", move |(text,): (String,)| {
        let _ = tx.send(text);
    });
    client.send("say", ("hello",)).await?;
    println!("the server said {:?}", rx.recv().await.unwrap_or_default());

    match client.invoke::<_, Value>("missing", ()).await {
        Err(e) => println!("invoking a missing procedure: {e}"),
        Ok(v) => println!("unexpected: {v}"),
    }
    client.close(CloseCode::NORMAL, "bye").await;
    server.close(CloseCode::NORMAL).await;
    Ok(())
}
