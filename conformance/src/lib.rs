//! The handlers of the ws-messaging conformance contract, written once.
//!
//! `examples/echo_server` (the server the interop tests, benchmarks and
//! JavaScript checks drive), `wsm serve` and the integration tests of the
//! workspace register them from here, on the server, once for every
//! connection: each handler takes its connection (or the server) as an
//! argument, so a connection holds no handler of its own. Authentication
//! stays with each program (its tokens differ).
//!
//! The contract (`docs/protocol.md` has the wire format; the echo_server's
//! `main.rs` documents its command line):
//!
//! - procedures `echo(x)`, `sum(...numbers)`, `sleep(ms, v)`, `fail(msg)`,
//!   `whoami()` ([`register`]);
//! - events `say(...)` → `said(...)` to the sender, `shout(...)` →
//!   `shouted(...)` to everyone (encoded once), `call-me(proc, ...args)` →
//!   invokes `proc` on the sender, then `called(result)` or
//!   `call-failed(error)` ([`common`]);
//! - rooms and presence ([`rooms`]): `join(room)`, `leave(room)`,
//!   `count()`, `to-room(room, ...args)` → `room(room, ...args)`,
//!   `tell(id, ...args)` → `told(...args)`;
//! - load counters ([`counters`]): event `tick(...)`, procedure `ticks()`.
//!
//! A self-describing codec (JSON, MessagePack, CBOR, bincode's value type)
//! gets all of it from [`register`] with its dynamic value type `V`; a
//! schema codec (protobuf) registers its typed `echo`, `sum` and `sleep`
//! itself and the rest through [`common`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use ws_messaging::{Bytes, Codec, EncodedMessage, Endpoint, HandlerError, RawArgs, RawValue, RegisterError, Server};

/// A value the handlers take and give back: a codec's dynamic value type
/// (`serde_json::Value`, `rmpv::Value`, ...) or a typed message.
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// The longest `sleep(ms, v)` waits, whatever `ms` says.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Registers the whole contract for a self-describing codec `C` whose
/// dynamic value type is `V`: the procedures, the events, rooms and
/// presence, and with `counters` the load counters.
///
/// # Errors
///
/// A [`RegisterError`] when one of the names is already registered on
/// `server`.
pub fn register<C: Codec, V: Value>(server: &Server<C>, counters: bool) -> Result<(), RegisterError> {
    // `echo(x)` answers with `x` exactly as it came, never decoded. A
    // missing `x` is `null`; a tiny one goes through the codec's value type
    // `V`, so that CBOR's `undefined` comes back as `null`.
    server.register("echo", |me: Endpoint<C>, RawArgs(args)| {
        let x = match args.into_iter().next() {
            Some(x) if x.len() > 4 => x,
            Some(x) => reencode::<C, V>(&me, Some(&x)).unwrap_or(x),
            None => reencode::<C, V>(&me, None).unwrap_or_default(),
        };
        async move { Ok(RawValue(x)) }
    })?;
    server.register("sum", |numbers: Vec<f64>| async move {
        Ok(numbers.iter().fold(0.0, |a, b| a + b))
    })?;
    server.register("sleep", |(ms, v): (u64, V)| async move {
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLEEP)).await;
        Ok(v)
    })?;
    common::<C, V, V>(server)?;
    rooms::<C, V>(server)?;
    if counters {
        self::counters(server)?;
    }
    Ok(())
}

/// `raw` decoded as a `V` and encoded again; `null` for no `raw`.
fn reencode<C: Codec, V: Value>(endpoint: &Endpoint<C>, raw: Option<&[u8]>) -> Option<Bytes> {
    let mut out = Vec::new();
    match raw {
        Some(raw) => {
            let value: V = endpoint.decode(raw).ok()?;
            endpoint.codec().encode_value(&value, &mut out).ok()?;
        }
        None => endpoint.codec().encode_value(&(), &mut out).ok()?,
    }
    Some(out.into())
}

/// What every codec shares: procedures `fail(msg)` and `whoami()`, events
/// `say` and `shout` (their arguments taken as `V`) and `call-me` (the
/// invoked procedure's arguments and result taken as `A`: `V` for a
/// self-describing codec, the raw bytes for protobuf).
///
/// # Errors
///
/// A [`RegisterError`] when `fail` or `whoami` is already registered.
pub fn common<C: Codec, V: Value, A: Value>(server: &Server<C>) -> Result<(), RegisterError> {
    server.register("fail", |(msg,): (String,)| async move {
        Err::<(), _>(HandlerError::new(msg))
    })?;
    server.register("whoami", |me: Endpoint<C>, ()| {
        let id = me.id().map(str::to_string);
        async move { Ok(id) }
    })?;
    // Queued without waiting, so `said`s keep the order of their `say`s.
    server.on("say", |me: Endpoint<C>, args: Vec<V>| {
        if let Ok(said) = EncodedMessage::encode(me.codec(), "said", args) {
            let _ = me.queue_encoded(&said);
        }
    });
    // Through the server (to every node when there is an adapter), straight
    // from the listener, so that what one client sends keeps its order.
    server.on("shout", |server: Server<C>, args: Vec<V>| {
        let _ = server.broadcast("shouted", args);
    });
    server.on("call-me", |me: Endpoint<C>, RawArgs(raw)| {
        let Some(procedure) = raw.first().and_then(|p| me.decode::<String>(p).ok()) else {
            return;
        };
        tokio::spawn(async move {
            let args: Vec<A> = raw[1..].iter().filter_map(|arg| me.decode(arg).ok()).collect();
            match me.invoke::<_, A>(&procedure, args).await {
                Ok(result) => me.send("called", (result,)).await,
                // The peer's error as it was on the wire (`NoProcedureError` too).
                Err(error) => match error.remote_value() {
                    Some(value) => me.send("call-failed", (value,)).await,
                    None => me.send("call-failed", (error.to_string(),)).await,
                },
            }
        });
    });
    Ok(())
}

/// Rooms and presence, through the server (to every node when there is an
/// adapter): `join(room) -> true` (in effect before the reply is sent;
/// joining twice is joining once), `leave(room) -> true` (also for a room
/// never joined), `count()` (authenticated connections on every live
/// node), `to-room(room, ...args)` → `room(room, ...args)` once to every
/// member, `tell(id, ...args)` → `told(...args)` to the connection `id`
/// (an unknown id gets nothing).
///
/// # Errors
///
/// A [`RegisterError`] when `join`, `leave` or `count` is already
/// registered.
pub fn rooms<C: Codec, V: Value>(server: &Server<C>) -> Result<(), RegisterError> {
    server.register("join", |me: Endpoint<C>, (room,): (String,)| async move {
        Ok(me.join(&room))
    })?;
    server.register("leave", |me: Endpoint<C>, (room,): (String,)| async move {
        Ok(me.leave(&room))
    })?;
    server.register("count", |server: Server<C>, ()| async move {
        server.count().await.map_err(HandlerError::from)
    })?;
    server.on("to-room", |server: Server<C>, args: Vec<V>| {
        if let Some(room) = first_string::<C, V>(&server, args.first()) {
            let _ = server.to(room).emit("room", args);
        }
    });
    server.on("tell", |server: Server<C>, mut args: Vec<V>| {
        if let Some(id) = first_string::<C, V>(&server, args.first()) {
            args.remove(0);
            let _ = server.send_to(&id, "told", args);
        }
    });
    Ok(())
}

/// The first argument as a string (a room name or a connection id).
fn first_string<C: Codec, V: Serialize>(server: &Server<C>, first: Option<&V>) -> Option<String> {
    let mut raw = Vec::new();
    server.codec().encode_value(first?, &mut raw).ok()?;
    server.codec().decode_value::<String>(&raw).ok()
}

/// The `tick` events received, from every connection of every server of
/// the process.
static TICKS: AtomicU64 = AtomicU64::new(0);

/// For load clients: event `tick(...)` is counted (its arguments are not
/// decoded, nothing is sent back: what a load client measures is the event
/// path itself), and procedure `ticks()` returns how many `tick` events the
/// process has received, from every connection.
///
/// # Errors
///
/// A [`RegisterError`] when `ticks` is already registered.
pub fn counters<C: Codec>(server: &Server<C>) -> Result<(), RegisterError> {
    server.on("tick", |_: RawArgs| {
        TICKS.fetch_add(1, Ordering::AcqRel);
    });
    server.register("ticks", |()| async move { Ok(TICKS.load(Ordering::Acquire)) })?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (SIGINT only where there is no SIGTERM,
/// or when its handler cannot be installed).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
