//! `--codec msgpack`: MessagePack in binary frames, for JavaScript peers
//! using msgpack-lite. Echoed values and event arguments are
//! `rmpv::Value`s, so binary (`bin`) and ext values (a `Uint8Array`) come
//! back as they were sent.

use ws_messaging_msgpack::MsgPack;

use super::Settings;

/// Runs the conformance server with the MessagePack codec.
pub(crate) async fn run(settings: &Settings) -> Result<(), String> {
    super::run::<MsgPack, ws_messaging_msgpack::Value>(settings).await
}
