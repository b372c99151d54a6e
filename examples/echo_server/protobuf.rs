//! `--codec protobuf`: the conformance contract with the messages of
//! proto/conformance.proto (see that file for which message each procedure
//! and event takes).

use std::time::Duration;

use ws_messaging::{Endpoint, HandlerError, RegisterError, Server};
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
            let user = super::user(&token).await?;
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

/// The conformance handlers, once for every connection of `server`: the
/// typed `echo`, `sum` and `sleep`, and the shared rest (`call-me` passes
/// the arguments and the result through as raw bytes).
fn setup(server: &Server<Protobuf>) -> Result<(), RegisterError> {
    server.register("echo", |(x,): (Proto<Value>,)| async move { Ok(x) })?;
    server.register("sum", |numbers: Vec<Proto<Number>>| async move {
        let value = numbers.iter().fold(0.0, |a, n| a + n.value);
        Ok(Proto(Number { value }))
    })?;
    server.register("sleep", |(delay, v): (Proto<Delay>, Proto<Value>)| async move {
        let ms = Duration::from_millis(u64::from(delay.ms));
        tokio::time::sleep(ms.min(ws_messaging_conformance::MAX_SLEEP)).await;
        Ok(v)
    })?;
    ws_messaging_conformance::common::<Protobuf, Proto<Value>, Vec<u8>>(server)
}
