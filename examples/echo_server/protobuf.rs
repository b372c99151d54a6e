//! `--codec protobuf`: the conformance contract with the messages of
//! proto/conformance.proto (see that file for which message each procedure
//! and event takes).

use std::time::Duration;

use ws_messaging::{Endpoint, HandlerError, RawArgs};
use ws_messaging_protobuf::{Proto, Protobuf};

use super::{Settings, Start};

/// The generated conformance messages.
#[allow(dead_code, unreachable_pub)] // generated code
mod pb {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/generated/ws_messaging.conformance.rs"
    ));
}

use pb::{Auth, AuthReply, Delay, Number, Value};

/// Runs the conformance server with the protobuf codec.
pub(crate) async fn run(settings: &Settings) -> Result<(), String> {
    settings
        .builder::<Protobuf>()
        .await?
        // The auth frame as raw bytes: one that is not an `Auth` message is
        // refused like a wrong token.
        .on_connection(move |endpoint: Endpoint<Protobuf>, auth: Vec<u8>| async move {
            let token = Proto::<Auth>::decode(&auth).map(|a| a.0.token).unwrap_or_default();
            let user = match token.as_str() {
                "secret" => "alice",
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }
                _ => return Err(HandlerError::text("bad token")),
            };
            setup(&endpoint)?;
            Ok(Proto(AuthReply { user: user.into() }))
        })
        .start(settings)
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

fn setup(endpoint: &Endpoint<Protobuf>) -> Result<(), HandlerError> {
    endpoint.register("echo", |(x,): (Proto<Value>,)| async move { Ok(x) })?;
    endpoint.register("sum", |numbers: Vec<Proto<Number>>| async move {
        let value = numbers.iter().fold(0.0, |a, n| a + n.value);
        Ok(Proto(Number { value }))
    })?;
    endpoint.register("sleep", |(delay, v): (Proto<Delay>, Proto<Value>)| async move {
        tokio::time::sleep(Duration::from_millis(u64::from(delay.ms).min(60_000))).await;
        Ok(v)
    })?;
    endpoint.register("fail", |(msg,): (String,)| async move {
        Err::<(), _>(HandlerError::new(msg))
    })?;
    let me = endpoint.downgrade();
    endpoint.register("whoami", move |()| {
        let id = me.upgrade().and_then(|e| e.id().map(str::to_string));
        async move { Ok(id) }
    })?;

    let me = endpoint.downgrade();
    // Queued without waiting, so `said`s keep the order of their `say`s.
    endpoint.on("say", move |args: Vec<Proto<Value>>| {
        if let Some(endpoint) = me.upgrade() {
            if let Ok(said) = endpoint.encode_message("said", args) {
                let _ = endpoint.queue_encoded(&said);
            }
        }
    });
    let me = endpoint.downgrade();
    endpoint.on("shout", move |args: Vec<Proto<Value>>| {
        if let Some(server) = me.upgrade().and_then(|e| e.server()) {
            let _ = server.broadcast("shouted", args);
        }
    });
    let me = endpoint.downgrade();
    endpoint.on("call-me", move |RawArgs(raw)| {
        let Some(endpoint) = me.upgrade() else { return };
        let Some(procedure) = raw.first().and_then(|p| endpoint.decode::<String>(p).ok()) else {
            return;
        };
        tokio::spawn(async move {
            // The arguments and the result pass through as raw bytes.
            let args: Vec<Vec<u8>> = raw[1..].iter().map(|arg| arg.to_vec()).collect();
            match endpoint.invoke::<_, Vec<u8>>(&procedure, args).await {
                Ok(result) => endpoint.send("called", (result,)).await,
                // The peer's error as it was on the wire (`NoProcedureError` too).
                Err(error) => match error.remote_value() {
                    Some(value) => endpoint.send("call-failed", (value,)).await,
                    None => endpoint.send("call-failed", (error.to_string(),)).await,
                },
            }
        });
    });
    Ok(())
}
