//! A chat app on one port: the page at `/`, ws-messaging at `/ws` (axum,
//! through `ws-messaging-axum`), rooms on the server; a client re-joins its
//! rooms on every reconnection.
//!
//! ```text
//! cargo run --example chat -- [--port 3000] [--redis redis://127.0.0.1:6379]
//! ```
//! Prints `listening on 127.0.0.1:PORT`; open `http://127.0.0.1:PORT/` in
//! two tabs. SIGINT/SIGTERM close every connection with 1001 (clients come
//! back to the next instance). With `--redis`, several instances share
//! their rooms (crate `ws-messaging-redis`).
//!
//! The protocol of the app:
//! - auth `{"name": "alice"}` (any non-empty name) → reply `{"name": ...}`;
//! - `join(room) -> true`, `leave(room) -> true`, `who(room) -> [names]`;
//! - event `chat(room, text)` → `chat(room, name, text)` to every member of
//!   `room` (the sender too), in the order each client sent them.
//!
//! `tests/chat.rs` drives it with Rust clients that re-join in their
//! `on_connect` hook across a restart of the server.

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use ws_messaging::{CloseCode, Endpoint, HandlerError, Server};
use ws_messaging_json::Json;
use ws_messaging_redis::RedisAdapter;

/// Who a connection is (stored on its endpoint).
#[derive(Debug, Clone, Deserialize)]
struct User {
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port = 3000u16;
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--redis" => redis = Some(value),
            other => return Err(format!("unknown option {other}").into()),
        }
    }

    let mut builder = Server::<Json>::builder();
    if let Some(url) = &redis {
        builder = builder.adapter(RedisAdapter::<Json>::connect(url).await?);
    }
    let server = builder
        .on_connection(|endpoint, user: User| async move {
            if user.name.trim().is_empty() {
                return Err(HandlerError::new("a name, please"));
            }
            let reply = json!({ "name": user.name });
            endpoint.set_data(user);
            Ok(reply)
        })
        .build();
    // The handlers, once for every connection: each takes its connection
    // (or the server) as an argument.
    server.register("join", |me: Endpoint<Json>, (room,): (String,)| async move {
        Ok(me.join(&room))
    })?;
    server.register("leave", |me: Endpoint<Json>, (room,): (String,)| async move {
        Ok(me.leave(&room))
    })?;
    server.register("who", |server: Server<Json>, (room,): (String,)| async move {
        // Names of this node's members (ids on every node).
        let ids = server.to(room.as_str()).ids().await.map_err(HandlerError::from)?;
        let names: Vec<String> = ids
            .iter()
            .filter_map(|id| server.get(id)?.data::<User>().map(|u| u.name))
            .collect();
        Ok(names)
    })?;
    // Sent from the listener itself: never waits, keeps the order.
    server.on(
        "chat",
        |me: Endpoint<Json>, server: Server<Json>, (room, text): (String, String)| {
            if let Some(user) = me.data::<User>() {
                if me.rooms().contains(&room) {
                    let _ = server.to(room.as_str()).emit("chat", (room, user.name, text));
                }
            }
        },
    );

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", ws_messaging_axum::route(server.clone()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            server.close(CloseCode::GOING_AWAY).await;
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The page: a bare WebSocket speaking the protocol (a real app would use
/// the ws-messaging npm client); it re-joins its room whenever it
/// reconnects.
const PAGE: &str = r#"<!doctype html>
<title>ws-messaging chat</title>
<form id="f"><input id="name" placeholder="name" value="guest">
<input id="room" value="lobby"> <input id="text" placeholder="say something" autofocus>
<button>send</button></form>
<pre id="log"></pre>
<script>
const $ = (id) => document.getElementById(id);
const log = (line) => ($("log").textContent += line + "\n");
let ws, next = 1;
function connect() {
  ws = new WebSocket(`ws://${location.host}/ws`, "ws-messaging");
  ws.onopen = () => ws.send(JSON.stringify({ name: $("name").value }));
  ws.onclose = (e) => { log(`* closed ${e.code} ${e.reason}; reconnecting`); setTimeout(connect, 1000); };
  ws.onmessage = ({ data }) => {
    const msg = JSON.parse(data);
    if (msg.name === "ping") return ws.send(JSON.stringify({ id: msg.id, result: null }));
    if (msg.name === "connect") {
      log(`* connected as ${msg.args[0].name}`);
      ws.send(JSON.stringify({ name: "join", args: [$("room").value], id: next++ }));
    }
    if (msg.name === "chat") log(`[${msg.args[0]}] ${msg.args[1]}: ${msg.args[2]}`);
  };
}
$("f").onsubmit = (e) => {
  e.preventDefault();
  ws.send(JSON.stringify({ name: "chat", args: [$("room").value, $("text").value] }));
  $("text").value = "";
};
connect();
</script>
"#;
