//! `wsm serve`: a ready-made demo server to try clients against, with the
//! procedures and events of the project's conformance server
//! (`examples/echo_server`), for the JSON, MessagePack and CBOR codecs.
//!
//! - auth: with `--auth-token T`, `{"token":T}` is accepted (reply
//!   `{"user":"alice"}`) and anything else refused with 4003 `bad token`;
//!   without it every client is accepted (reply `{"user":"guest"}`);
//! - procedures `echo(x)`, `sum(...numbers)`, `sleep(ms, v)`, `fail(msg)`,
//!   `whoami()`, `join(room)`, `leave(room)`, `count()`;
//! - events `say(...)` → `said(...)` to the sender, `shout(...)` →
//!   `shouted(...)` to everyone, `call-me(proc, ...args)` → invokes `proc`
//!   on the sender, then `called(result)` or `call-failed(error)`,
//!   `to-room(room, ...args)` → `room(room, ...args)` to every member,
//!   `tell(id, ...args)` → `told(...args)` to the connection `id`.
//!
//! Prints `listening on HOST:PORT` on stdout once it accepts connections,
//! connections coming and going on stderr; SIGINT/SIGTERM close every
//! connection with 1001. The handlers are the conformance contract's
//! (crate `ws-messaging-conformance`), as echo_server registers them. Run:
//! `wsm serve --port 8000`; tested by
//! `wsm/tests/cli.rs` (`cargo test -p wsm`).

use serde_json::{json, Value as Json};
use ws_messaging::{CloseCode, Endpoint, HandlerError, Server};

use crate::model::Model;
use crate::output::{out, Failure, Kind};

/// Starts the server on `host:port`; `log`: report connections on stderr.
pub(crate) async fn start<M: Model>(
    host: &str,
    port: u16,
    token: Option<String>,
    log: bool,
) -> Result<Server<M>, Failure> {
    let mut builder = Server::<M>::builder().on_connection(move |endpoint: Endpoint<M>, auth: Json| {
        let token = token.clone();
        async move {
            let user = match &token {
                None => "guest",
                Some(token) if auth.get("token").and_then(Json::as_str) == Some(token) => "alice",
                Some(_) => return Err(HandlerError::text("bad token")),
            };
            if log {
                out().note(&format!("+ {} ({user})", endpoint.id().unwrap_or("?")));
            }
            Ok(json!({ "user": user }))
        }
    });
    if log {
        builder = builder.on_disconnect(|endpoint, code, reason| async move {
            let closed = crate::client::close_text(code, &reason);
            out().note(&format!("- {} ({closed})", endpoint.id().unwrap_or("?")));
        });
    }
    let server = builder
        .bind((host, port))
        .await
        .map_err(|e| Failure::new(Kind::Other, format!("cannot listen on {host}:{port}: {e}")))?;
    ws_messaging_conformance::register::<M, M::Value>(&server, false)
        .map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
    Ok(server)
}

/// `wsm serve`: runs until SIGINT or SIGTERM.
pub(crate) async fn run<M: Model>(host: &str, port: u16, token: Option<String>) -> Result<(), Failure> {
    let token_hint = token.clone();
    let server = start::<M>(host, port, token, true).await?;
    let addr = server.local_addr().expect("a bound server");
    out().line(&format!("listening on {addr}"));
    let codec = match M::NAME {
        "json" => String::new(),
        name => format!(" --codec {name}"),
    };
    let auth = match &token_hint {
        Some(token) => format!(" --auth '{}'", json!({ "token": token })),
        None => String::new(),
    };
    out().note(&format!("try: wsm call{codec}{auth} ws://{addr} sum 1 2 3.5"));
    ws_messaging_conformance::shutdown_signal().await;
    server.close(CloseCode::GOING_AWAY).await;
    Ok(())
}
