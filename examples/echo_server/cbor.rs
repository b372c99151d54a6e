//! `--codec cbor`: CBOR in binary frames, for JavaScript peers using
//! cbor-x. Echoed values and event arguments are `ciborium::Value`s, so
//! byte strings (a `Buffer`) and tagged values (a `Uint8Array`, tag 64)
//! come back as they were sent.

use ws_messaging_cbor::Cbor;

use super::Settings;

/// Runs the conformance server with the CBOR codec.
pub(crate) async fn run(settings: &Settings) -> Result<(), String> {
    super::run::<Cbor, ws_messaging_cbor::Value>(settings).await
}
