//! A protobuf server that checks every frame against its schema before
//! dispatch: an event or procedure whose name is unknown, or whose arguments
//! are not that name's message (proto/schema_example.proto), is refused. The
//! peer gets a `preprocessingError` event saying why, no handler runs, and
//! the connection carries on.
//!
//! ```text
//! cargo run --example protobuf_schema -- [--port N]
//! ```
//! Prints `listening on 127.0.0.1:PORT`; Ctrl-C stops it.
//!
//! The codec is [`Validated<Protobuf>`]: a codec that delegates every encode
//! and decode to [`Protobuf`] and overrides [`Codec::check`] with a rule per
//! name. Each rule here decodes the single argument as the name's prost
//! message and checks its required fields. proto3 has no required fields, so
//! "required" is expressed with `optional` fields (they have presence) that
//! the rule insists are set:
//!
//! | name | kind | argument | required |
//! | --- | --- | --- | --- |
//! | `create-user` | procedure → `User` | `CreateUser` | `name` |
//! | `note` | event (answered with `noted(text)`) | `Note` | `text` |
//! | `stats` | procedure → `Stats` | none | |
//!
//! [`Codec::check`]: ws_messaging::Codec::check

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ws_messaging::schema::Validated;
use ws_messaging::{BoxError, Bytes, CloseCode, Codec, Endpoint, HandlerError, ServeError, Server, ServerBuilder};
use ws_messaging_protobuf::{prost, Proto, Protobuf};

/// The generated schema messages.
#[allow(dead_code, unreachable_pub)] // generated code
pub(crate) mod pb {
    include!("../proto/generated/ws_messaging.schema_example.rs");
}

use pb::{CreateUser, Note, Stats, User};

/// The server's codec.
pub(crate) type Schema = Validated<Protobuf>;

/// A rule: exactly one argument, an `M` message whose required fields
/// (checked by `required`) are set.
fn one_message<M: prost::Message + Default + 'static>(
    required: fn(&M) -> Result<(), &'static str>,
) -> impl Fn(&Protobuf, &[Bytes]) -> Result<(), BoxError> + Send + Sync + 'static {
    move |codec, args| {
        let name = std::any::type_name::<M>().rsplit("::").next().unwrap_or_default();
        let [arg] = args else {
            return Err(format!("expected one {name} argument, got {}", args.len()).into());
        };
        let Proto(message) = codec.decode_value::<Proto<M>>(arg)?;
        required(&message).map_err(|field| format!("{name}.{field} is required").into())
    }
}

/// The schema: a rule per name, any other name refused. The runtime's own
/// `ping`, `connect` and `preprocessingError` always pass.
pub(crate) fn schema() -> Schema {
    Validated::new(Protobuf)
        .rule(
            "create-user",
            one_message::<CreateUser>(|m| m.name.as_ref().map(drop).ok_or("name")),
        )
        .rule("note", one_message::<Note>(|m| m.text.as_ref().map(drop).ok_or("text")))
        .rule("stats", |_, args: &[Bytes]| match args {
            [] => Ok(()),
            _ => Err(format!("expected no arguments, got {}", args.len()).into()),
        })
        .refuse_unknown()
}

/// How often the handlers ran (what a refused frame never reaches).
#[derive(Default)]
struct Counts {
    users: AtomicU32,
    notes: AtomicU32,
}

/// The server on `schema()`, every client accepted.
pub(crate) fn builder() -> ServerBuilder<Schema> {
    let counts = Arc::new(Counts::default());
    ServerBuilder::new(schema()).on_connection(move |endpoint: Endpoint<Schema>, ()| {
        let counts = counts.clone();
        async move {
            register(&endpoint, counts)?;
            Ok(())
        }
    })
}

fn register(endpoint: &Endpoint<Schema>, counts: Arc<Counts>) -> Result<(), HandlerError> {
    let c = counts.clone();
    endpoint.register("create-user", move |(Proto(user),): (Proto<CreateUser>,)| {
        let id = c.users.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            Ok(Proto(User {
                id: u64::from(id),
                name: user.name.unwrap_or_default(),
            }))
        }
    })?;
    let c = counts.clone();
    endpoint.on_async("note", move |me: Endpoint<Schema>, (Proto(note),): (Proto<Note>,)| {
        c.notes.fetch_add(1, Ordering::SeqCst);
        async move {
            let _ = me.send("noted", (note.text.unwrap_or_default(),)).await;
        }
    });
    endpoint.register("stats", move |()| {
        let stats = Stats {
            users: counts.users.load(Ordering::SeqCst),
            notes: counts.notes.load(Ordering::SeqCst),
        };
        async move { Ok(Proto(stats)) }
    })?;
    Ok(())
}

/// Starts the server on `127.0.0.1:port`.
pub(crate) async fn start(port: u16) -> Result<Server<Schema>, ServeError> {
    builder().bind(("127.0.0.1", port)).await
}

#[allow(dead_code)]
#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port = match (args.next().as_deref(), args.next()) {
        (None, _) => 0,
        (Some("--port"), Some(port)) => port.parse().unwrap_or_else(|e| {
            eprintln!("protobuf_schema: --port: {e}");
            std::process::exit(2)
        }),
        _ => {
            eprintln!("usage: protobuf_schema [--port N]");
            std::process::exit(2)
        }
    };
    let server = match start(port).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("protobuf_schema: {e}");
            std::process::exit(1)
        }
    };
    println!("listening on {}", server.local_addr().expect("bound to a port"));
    let _ = tokio::signal::ctrl_c().await;
    server.close(CloseCode::GOING_AWAY).await;
}
