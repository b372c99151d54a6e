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
//! connection with 1001. Run: `wsm serve --port 8000`; tested by
//! `wsm/tests/cli.rs` (`cargo test -p wsm`).

use std::time::Duration;

use serde_json::{json, Value as Json};
use ws_messaging::{CloseCode, Endpoint, HandlerError, RawArgs, RawValue, RegisterError, Server};

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
    setup::<M>(&server).map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
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
    shutdown_signal().await;
    server.close(CloseCode::GOING_AWAY).await;
    Ok(())
}

/// `raw`, a small value, through the codec's value type and back (so that
/// CBOR's `undefined` comes back as `null`); `null` for no value.
fn reencode<M: Model>(endpoint: &Endpoint<M>, raw: Option<&[u8]>) -> Option<ws_messaging::Bytes> {
    let mut out = Vec::new();
    match raw {
        Some(raw) => {
            let value: M::Value = endpoint.decode(raw).ok()?;
            endpoint.codec().encode_value(&value, &mut out).ok()?;
        }
        None => endpoint.codec().encode_value(&(), &mut out).ok()?,
    }
    Some(out.into())
}

/// The procedures and events, once for every connection of `server`: each
/// handler takes its connection (or the server) as an argument.
fn setup<M: Model>(server: &Server<M>) -> Result<(), RegisterError> {
    // `echo(x)` answers with `x` as it came, never decoded (a missing `x`
    // is `null`).
    server.register("echo", |me: Endpoint<M>, RawArgs(args)| {
        let x = match args.into_iter().next() {
            Some(x) if x.len() > 4 => x,
            Some(x) => reencode(&me, Some(&x)).unwrap_or(x),
            None => reencode(&me, None).unwrap_or_default(),
        };
        async move { Ok(RawValue(x)) }
    })?;
    server.register("sum", |numbers: Vec<f64>| async move {
        Ok(numbers.iter().fold(0.0, |a, b| a + b))
    })?;
    server.register("sleep", |(ms, v): (u64, M::Value)| async move {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        Ok(v)
    })?;
    server.register("fail", |(message,): (String,)| async move {
        Err::<(), _>(HandlerError::new(message))
    })?;
    server.register("whoami", |me: Endpoint<M>, ()| {
        let id = me.id().map(str::to_string);
        async move { Ok(id) }
    })?;
    // Queued without waiting, so `said`s keep the order of their `say`s.
    server.on("say", |me: Endpoint<M>, args: Vec<M::Value>| {
        if let Ok(said) = ws_messaging::EncodedMessage::encode(me.codec(), "said", args) {
            let _ = me.queue_encoded(&said);
        }
    });
    server.on("shout", |server: Server<M>, args: Vec<M::Value>| {
        let _ = server.broadcast("shouted", args);
    });
    server.on("call-me", |me: Endpoint<M>, RawArgs(raw)| {
        let Some(procedure) = raw.first().and_then(|p| me.decode::<String>(p).ok()) else {
            return;
        };
        tokio::spawn(async move {
            let args: Vec<M::Value> = raw[1..].iter().filter_map(|arg| me.decode(arg).ok()).collect();
            match me.invoke::<_, M::Value>(&procedure, args).await {
                Ok(result) => me.send("called", (result,)).await,
                // The peer's error as it was on the wire (`NoProcedureError` too).
                Err(error) => match error.remote_value() {
                    Some(value) => me.send("call-failed", (value,)).await,
                    None => me.send("call-failed", (error.to_string(),)).await,
                },
            }
        });
    });
    rooms(server)
}

/// Rooms and presence: `join`, `leave`, `count`, `to-room`, `tell`.
fn rooms<M: Model>(server: &Server<M>) -> Result<(), RegisterError> {
    server.register("join", |me: Endpoint<M>, (room,): (String,)| async move {
        Ok(me.join(&room))
    })?;
    server.register("leave", |me: Endpoint<M>, (room,): (String,)| async move {
        Ok(me.leave(&room))
    })?;
    server.register("count", |server: Server<M>, ()| async move {
        server.count().await.map_err(HandlerError::from)
    })?;
    // `to-room(room, ...args)` → `room(room, ...args)` to every member.
    server.on("to-room", |me: Endpoint<M>, server: Server<M>, RawArgs(raw)| {
        let Some(room) = raw.first().and_then(|r| me.decode::<String>(r).ok()) else {
            return;
        };
        let args: Vec<M::Value> = raw.iter().filter_map(|arg| me.decode(arg).ok()).collect();
        let _ = server.to(room).emit("room", args);
    });
    // `tell(id, ...args)` → `told(...args)` to the connection `id` only.
    server.on("tell", |me: Endpoint<M>, server: Server<M>, RawArgs(raw)| {
        let Some(id) = raw.first().and_then(|r| me.decode::<String>(r).ok()) else {
            return;
        };
        let args: Vec<M::Value> = raw[1..].iter().filter_map(|arg| me.decode(arg).ok()).collect();
        let _ = server.send_to(&id, "told", args);
    });
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
