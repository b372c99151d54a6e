//! A web app and its ws-messaging endpoint on one port, with axum: the page
//! at `/`, ws-messaging at `/ws`. The connection hook accepts the clients
//! whose upgrade request carries the `user` cookie the page set.
//!
//! `cargo run -p ws-messaging-axum --example axum_app`, then open
//! <http://127.0.0.1:3000/>; Ctrl-C stops it.

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::{json, Value};
use ws_messaging::{CloseCode, HandlerError, Server};
use ws_messaging_json::Json;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // No listener of its own: axum serves the port.
    let server = Server::<Json>::builder()
        // The `user` cookie authenticates, and browsers send it whatever
        // page opens the WebSocket: only this app's page may connect.
        .allowed_origins(["http://127.0.0.1:3000", "http://localhost:3000"])
        .on_connection(|endpoint, _auth: Value| async move {
            // The HTTP upgrade request: path, query, headers, cookies, peer.
            let request = endpoint.request().expect("inside the connection hook");
            let Some(user) = request.cookie("user").map(str::to_owned) else {
                return Err(HandlerError::new("log in first"));
            };
            println!("{user} connected from {:?}", request.peer_addr());
            endpoint.register("echo", |(x,): (Value,)| async move { Ok(x) })?;
            Ok(json!({ "user": user }))
        })
        .build();

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", ws_messaging_axum::route(server.clone()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true); // small frames go out at once
    });
    println!("open http://127.0.0.1:3000/");
    // With connect info, the hook sees the peer's address.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Clients get 1001 (going away) and reconnect to the next instance.
            server.close(CloseCode::GOING_AWAY).await;
        })
        .await
}

/// The page: sets the cookie (a login would), then speaks the protocol over
/// a bare WebSocket (the ws-messaging npm client does all of this for you).
const PAGE: &str = r#"<!doctype html>
<pre id="log"></pre>
<script>
  document.cookie = "user=alice";
  const log = (line) => (document.getElementById("log").textContent += line + "\n");
  const ws = new WebSocket(`ws://${location.host}/ws`, "ws-messaging");
  ws.onopen = () => ws.send("{}"); // the auth value
  ws.onclose = (e) => log(`closed ${e.code} ${e.reason}`);
  ws.onmessage = ({ data }) => {
    const msg = JSON.parse(data);
    if (msg.name === "ping") return ws.send(JSON.stringify({ id: msg.id, result: null }));
    log(data);
    if (msg.name === "connect") ws.send(JSON.stringify({ name: "echo", args: ["hello"], id: 1 }));
  };
</script>
"#;
