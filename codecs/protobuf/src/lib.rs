//! The Protocol Buffers codec for ws-messaging (prost), wire-compatible
//! with a protobufjs encoder/decoder pair on the JavaScript side. Frames are
//! binary.
//!
//! # The envelope
//! Every frame but the auth frame is one `ws_messaging.Envelope` of the
//! repository's `proto/envelope.proto`, whose comments are the reference
//! (generated types in [`pb`]):
//!
//! ```text
//! message Envelope { oneof kind { Message message = 1; Ack ack = 2; } }
//! message Message  { string name = 1; repeated bytes args = 2; optional uint64 id = 3; }
//! message Ack      { optional uint64 id = 1; oneof outcome { bytes result = 2; bytes error = 3; } }
//! ```
//!
//! It maps onto the JavaScript package's message objects, and the validation
//! rules ([ws_messaging § Validation](ws_messaging_core::protocol#validation))
//! apply as they do to JSON: a `Message` is
//! `{name, args}`, or `{name, args, id}` when `id` is present; an empty
//! `name` is falsy, so the frame reads as an ack and fails validation; an
//! `Ack` needs an `id` and exactly one of `result`/`error`; a present `id`
//! must be greater than 0 (`id: 0` fails); an `Envelope` with neither kind
//! fails. Unknown fields are skipped, as by every protobuf decoder (they do
//! not count as extra keys). Decoding reads the frame with prost into
//! [`bytes::Bytes`] fields, so every argument, result and error is a
//! zero-copy slice of the frame, and no allocation is sized by a length the
//! frame merely claims.
//!
//! # Values
//! Arguments, results, errors and the auth value are protobuf `bytes`, and
//! serde types map onto them like this, both ways:
//!
//! | Rust value | bytes |
//! | --- | --- |
//! | [`Proto<M>`] (any prost message) | the message's encoding |
//! | `String`, `&str`, `char` | UTF-8 text |
//! | `Vec<u8>`, `[u8; N]`, `&[u8]` (and serde byte strings) | as they are |
//! | `()`, `None`, an empty map or struct | empty (the empty message) |
//! | `Some(x)` | `x`; an empty value decodes as `None` |
//!
//! Numbers, booleans, enums, lists of anything but bytes and maps or structs
//! with fields have no protobuf form of their own: encoding or decoding one
//! is a [`CodecError`] that says so; put them in a message.
//!
//! What the runtime itself sends fits these rules: an event or call without
//! arguments has an empty `args`; a handler returning `()` (as `ping` does)
//! replies with an empty `result`; the `connect` event carries the connection
//! hook's reply (`()` gives one empty argument); the default auth value `{}`
//! is empty bytes; a `preprocessingError` event's argument is its text.
//!
//! **Errors** (`Ack.error`) are always UTF-8 text: a string error value
//! (what the default error formatter and JavaScript's `String(error)` make,
//! e.g. `Error: Some error`, `NoProcedureError`) as it is, any other JSON
//! value as its JSON text. A received error decodes as a
//! `serde_json::Value::String`.
//!
//! **The auth frame** is the bare auth value's bytes (a `Proto<M>`'s message
//! encoding), not an envelope, as
//! [ws_messaging § Auth handshake](ws_messaging_core::protocol#auth-handshake)
//! asks of every codec.
//!
//! # Example
//! ```
//! use ws_messaging::{Client, HandlerError, Server};
//! use ws_messaging_protobuf::{prost, Proto, Protobuf};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Auth {
//!     #[prost(string, tag = "1")]
//!     token: String,
//! }
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Numbers {
//!     #[prost(double, repeated, tag = "1")]
//!     values: Vec<f64>,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::<Protobuf>::builder()
//!     .on_connection(|client, Proto(auth): Proto<Auth>| async move {
//!         if auth.token != "secret" {
//!             return Err(HandlerError::text("bad token"));
//!         }
//!         client.register("sum", |(Proto(n),): (Proto<Numbers>,)| async move {
//!             Ok(Proto(Numbers { values: vec![n.values.iter().sum()] }))
//!         })?;
//!         Ok("welcome") // text: the auth reply
//!     })
//!     .bind("127.0.0.1:0")
//!     .await?;
//!
//! let client = Client::<Protobuf>::builder(format!("ws://{}", server.local_addr().unwrap()))
//!     .auth(&Proto(Auth { token: "secret".into() }))
//!     .connect()
//!     .await?;
//! assert_eq!(client.auth_reply::<String>().as_deref(), Some("welcome"));
//! let Proto(sum) = client
//!     .invoke::<_, Proto<Numbers>>("sum", (Proto(Numbers { values: vec![1.0, 2.5] }),))
//!     .await?;
//! assert_eq!(sum.values, [3.5]);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod de;
mod error;
mod proto;
mod read;
mod ser;

use bytes::Bytes;
use prost::Message as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use ws_messaging_core::envelope::{ArgsField, IdField, NameField, RawEnvelope};
use ws_messaging_core::{Codec, CodecError, FrameKind};

pub use prost;
pub use proto::Proto;

use crate::de::ValueDeserializer;
use crate::error::ValueError;
use crate::ser::{ArgFields, Delimited, Head, ValueSerializer};

/// `Envelope.message`: field 1, length-delimited.
const MESSAGE_TAG: u8 = 1 << 3 | 2;
/// `Message.name`: field 1, length-delimited.
const NAME_TAG: u8 = 1 << 3 | 2;
/// `Message.id`: field 3, varint.
const ID_TAG: u8 = 3 << 3;
/// `Envelope.ack`: field 2, length-delimited.
const ACK_TAG: u8 = 2 << 3 | 2;
/// `Ack.id`: field 1, varint.
const ACK_ID_TAG: u8 = 1 << 3;
/// `Ack.result`: field 2, length-delimited.
const RESULT_TAG: u8 = 2 << 3 | 2;

/// The envelope's prost types, generated from `proto/envelope.proto` (checked
/// in; `tests/generated.rs` keeps them current).
#[allow(missing_docs)]
pub mod pb {
    include!("generated/ws_messaging.rs");
}

use pb::{ack::Outcome, envelope::Kind};

/// The Protocol Buffers codec. Zero-sized; `Protobuf::default()` or
/// `Protobuf`. See the [crate docs](crate) for the envelope and the value
/// conventions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protobuf;

/// An error value as UTF-8 text: a string as it is, anything else as JSON.
fn error_text(error: &serde_json::Value) -> Bytes {
    match error {
        serde_json::Value::String(text) => Bytes::copy_from_slice(text.as_bytes()),
        other => Bytes::from(other.to_string()),
    }
}

fn id_field(id: Option<u64>) -> IdField {
    match id {
        None => IdField::Absent,
        Some(id) => IdField::from_u64(id),
    }
}

fn encode_envelope(kind: Kind, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let envelope = pb::Envelope { kind: Some(kind) };
    out.reserve(envelope.encoded_len());
    envelope.encode(out).map_err(CodecError::encode)
}

impl Codec for Protobuf {
    const FRAME_KIND: FrameKind = FrameKind::Binary;

    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        value.serialize(ValueSerializer { out }).map_err(|e| {
            out.truncate(start);
            e.into_encode()
        })
    }

    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        T::deserialize(ValueDeserializer { data }).map_err(ValueError::into_decode)
    }

    fn encode_message<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
        id: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // Written by hand, byte for byte what prost writes for the
        // `Envelope` holding this `Message` (fields in number order, an empty
        // name left out), so that no argument needs a buffer of its own:
        // each length is filled in once its content is written.
        let start = out.len();
        let message = Delimited::open(out, MESSAGE_TAG);
        if !name.is_empty() {
            Head::put(out, NAME_TAG, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        if let Err(e) = ws_messaging_core::writer::args::split(args, &mut ArgFields { out }) {
            out.truncate(start);
            return Err(e.into_encode());
        }
        if let Some(id) = id {
            Head::put(out, ID_TAG, id);
        }
        message.close(out);
        Ok(())
    }

    fn encode_reply<T: Serialize + ?Sized>(
        &self,
        id: u64,
        reply: Result<&T, &serde_json::Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let result = match reply {
            Ok(result) => result,
            Err(error) => {
                let ack = pb::Ack {
                    id: Some(id),
                    outcome: Some(Outcome::Error(error_text(error))),
                };
                return encode_envelope(Kind::Ack(ack), out);
            }
        };
        // By hand, as prost writes it (see `encode_message`).
        let start = out.len();
        let ack = Delimited::open(out, ACK_TAG);
        Head::put(out, ACK_ID_TAG, id);
        let value = Delimited::open(out, RESULT_TAG);
        if let Err(e) = result.serialize(ValueSerializer { out }) {
            out.truncate(start);
            return Err(e.into_encode());
        }
        value.close(out);
        ack.close(out);
        Ok(())
    }

    /// A protobuf value is its bytes: `raw` is the ack's result as it is.
    fn encode_raw_reply(&self, id: u64, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let id = Head::new(ACK_ID_TAG, id);
        let result = Head::new(RESULT_TAG, raw.len() as u64);
        let ack_len = id.bytes().len() + result.bytes().len() + raw.len();
        let head = Head::new(ACK_TAG, ack_len as u64);
        out.reserve(head.bytes().len() + ack_len);
        out.extend_from_slice(head.bytes());
        out.extend_from_slice(id.bytes());
        out.extend_from_slice(result.bytes());
        out.extend_from_slice(raw);
        Ok(())
    }

    /// Errors are UTF-8 text: they decode as a `serde_json::Value::String`.
    fn decode_error(&self, data: &[u8]) -> Result<serde_json::Value, CodecError> {
        std::str::from_utf8(data)
            .map(|text| serde_json::Value::String(text.to_owned()))
            .map_err(|e| CodecError::decode_in("the error value is not UTF-8 text", e))
    }

    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        // The usual frames are read by hand, the others by prost.
        match read::envelope(frame) {
            Some(raw) => Ok(raw),
            None => decode_with_prost(frame),
        }
    }
}

/// The envelope as prost decodes it.
fn decode_with_prost(frame: &Bytes) -> Result<RawEnvelope, CodecError> {
    // Decoding from a `Bytes` buffer makes every `bytes` field a slice of
    // the frame; prost checks each length against what is left.
    let envelope = pb::Envelope::decode(frame.clone())
        .map_err(|e| CodecError::decode_in("not a protobuf ws_messaging.Envelope", e))?;
    let mut raw = RawEnvelope {
        is_map: true,
        ..RawEnvelope::default()
    };
    match envelope.kind {
        None => {}
        Some(Kind::Message(message)) => {
            raw.keys = 2 + usize::from(message.id.is_some());
            raw.name = if message.name.is_empty() {
                NameField::Falsy
            } else {
                NameField::Str(message.name.into())
            };
            raw.args = ArgsField::List(message.args.into());
            raw.id = id_field(message.id);
        }
        Some(Kind::Ack(ack)) => {
            raw.keys = usize::from(ack.id.is_some()) + usize::from(ack.outcome.is_some());
            raw.id = id_field(ack.id);
            match ack.outcome {
                None => {}
                Some(Outcome::Result(result)) => raw.result = Some(result),
                Some(Outcome::Error(error)) => raw.error = Some(error),
            }
        }
    }
    Ok(raw)
}
