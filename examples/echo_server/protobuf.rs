//! `--codec protobuf`: the conformance contract with the messages of
//! proto/conformance.proto (see that file for which message each procedure
//! and event takes).

use std::time::Duration;

use ws_messaging::{Endpoint, HandlerError, RawArgs, RegisterError, Server};
use ws_messaging_protobuf::{Proto, Protobuf};

use super::{Settings, Start};

/// The generated conformance messages.
#[allow(dead_code, unreachable_pub)] // generated code
mod pb {
    include!("../../proto/generated/ws_messaging.conformance.rs");
}

use pb::{Auth, AuthReply, Delay, Number, Value};

/// Runs the conformance server with the protobuf codec.
pub(crate) async fn run(settings: &Settings) -> Result<(), String> {
    settings
        .builder::<Protobuf>()
        .await?
        // The auth frame as raw bytes: one that is not an `Auth` message is
        // refused like a wrong token.
        .on_connection(move |_: Endpoint<Protobuf>, auth: Vec<u8>| async move {
            let token = Proto::<Auth>::decode(&auth).map(|a| a.0.token).unwrap_or_default();
            let user = match token.as_str() {
                "secret" => "alice",
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }
                _ => return Err(HandlerError::text("bad token")),
            };
            Ok(Proto(AuthReply { user: user.into() }))
        })
        .start(settings, setup)
        .await
}

/// Decodes a message from bytes.
trait DecodeProto: Sized {
    fn decode(bytes: &[u8]) -> Result<Self, HandlerError>;
}

impl<M: prost::Message + Default> DecodeProto for Proto<M> {
    fn decode(bytes: &[u8]) -> Result<Self, HandlerError> {
        M::decode(bytes).map(Proto).map_err(HandlerError::from)
    }
}

/// The conformance handlers, once for every connection of `server`.
fn setup(server: &Server<Protobuf>) -> Result<(), RegisterError> {
    server.register("echo", |(x,): (Proto<Value>,)| async move { Ok(x) })?;
    server.register("sum", |numbers: Vec<Proto<Number>>| async move {
        let value = numbers.iter().fold(0.0, |a, n| a + n.value);
        Ok(Proto(Number { value }))
    })?;
    server.register("sleep", |(delay, v): (Proto<Delay>, Proto<Value>)| async move {
        tokio::time::sleep(Duration::from_millis(u64::from(delay.ms).min(60_000))).await;
        Ok(v)
    })?;
    server.register("fail", |(msg,): (String,)| async move {
        Err::<(), _>(HandlerError::new(msg))
    })?;
    server.register("whoami", |me: Endpoint<Protobuf>, ()| {
        let id = me.id().map(str::to_string);
        async move { Ok(id) }
    })?;
    // Queued without waiting, so `said`s keep the order of their `say`s.
    server.on("say", |me: Endpoint<Protobuf>, args: Vec<Proto<Value>>| {
        if let Ok(said) = ws_messaging::EncodedMessage::encode(me.codec(), "said", args) {
            let _ = me.queue_encoded(&said);
        }
    });
    server.on("shout", |server: Server<Protobuf>, args: Vec<Proto<Value>>| {
        let _ = server.broadcast("shouted", args);
    });
    server.on("call-me", |me: Endpoint<Protobuf>, RawArgs(raw)| {
        let Some(procedure) = raw.first().and_then(|p| me.decode::<String>(p).ok()) else {
            return;
        };
        tokio::spawn(async move {
            // The arguments and the result pass through as raw bytes.
            let args: Vec<Vec<u8>> = raw[1..].iter().map(|arg| arg.to_vec()).collect();
            match me.invoke::<_, Vec<u8>>(&procedure, args).await {
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
