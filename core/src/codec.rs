//! The [`Codec`] trait: how envelopes and values become frames and back.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::envelope::{MessageOut, RawEnvelope, ReplyOut};
use crate::error::CodecError;
use crate::writer::MapWriter;

/// The kind of WebSocket frame a codec's output travels in
/// ([protocol § Transport](crate::protocol#transport)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text frame; the codec's output must be UTF-8 (JSON).
    Text,
    /// A binary frame (MessagePack, CBOR, protobuf, bincode).
    Binary,
}

/// A wire format: encodes and decodes the two envelopes
/// ([protocol § Envelopes](crate::protocol#envelopes)) and the values inside
/// them.
///
/// A codec works in two layers:
/// - **envelopes**: [`decode_envelope`](Codec::decode_envelope) reads only the
///   routing fields (`name`, `id`) and keeps every argument, result and error
///   as a raw, still-encoded [`Bytes`] slice of the frame; the runtime then
///   validates the shape with the shared rules of [`crate::envelope`];
/// - **values**: [`decode_value`](Codec::decode_value) turns one raw slice
///   straight into the handler's type, so each argument is decoded once.
///
/// Methods take `&self`, so a codec may carry settings (size limits, schemas).
/// A schema-validating codec wraps another one and refuses frames its schema
/// rejects by returning an error from `decode_envelope` or
/// [`check`](Codec::check); the runtime reports that to the peer as a
/// `preprocessingError` and the connection carries on.
///
/// # Contract
/// - `decode_envelope` never panics and never allocates in proportion to a
///   length the frame merely claims; malformed input is a [`CodecError`].
/// - Raw slices are in the codec's own format: `decode_value(raw)` must accept
///   what `decode_envelope` produced, and `encode_*` must accept `decode_value`'s
///   types (all payloads are serde types).
/// - `encode_message` writes `args` (a serde sequence: a tuple, a `Vec`, a
///   slice) as the envelope's argument list.
pub trait Codec: Send + Sync + 'static {
    /// Text or binary frames.
    const FRAME_KIND: FrameKind;

    /// For a self-describing format whose envelope is a map: its
    /// primitives ([`MapWriter::of`] a [`writer::Format`](crate::writer::Format)),
    /// with which the default [`encode_message`](Codec::encode_message),
    /// [`encode_reply`](Codec::encode_reply) and
    /// [`encode_raw_reply`](Codec::encode_raw_reply) write the envelope map
    /// themselves around the values [`encode_value`](Codec::encode_value)
    /// writes. `None` (the default): they encode the envelope as one serde
    /// value, and a raw reply is refused.
    const MAP_WRITER: Option<MapWriter> = None;

    /// Encodes a bare value (the auth frame,
    /// [protocol § Auth handshake](crate::protocol#auth-handshake)) into `out`.
    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes a bare value, or a raw slice taken from an envelope.
    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError>;

    /// Decodes a value that this codec's
    /// [`decode_envelope`](Codec::decode_envelope) took out of a frame: an
    /// argument (through [`FromArgs`](crate::FromArgs)) or an invoke's
    /// result. The envelope reader has already checked such a slice, so a
    /// codec whose `decode_value` begins by checking its input (MessagePack
    /// and CBOR check well-formedness, claimed lengths and nesting) skips
    /// that here and walks the value once instead of twice. The default is
    /// [`decode_value`](Codec::decode_value), right for every codec whose
    /// envelope reader does not check values.
    ///
    /// The runtime calls it only with slices of this codec's own
    /// `decode_envelope`; on any other input it must still fail with an
    /// error, never panic or allocate in proportion to a claimed length.
    fn decode_enveloped<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        self.decode_value(data)
    }

    /// Encodes a message envelope `{name, args, id?}` into `out`. The
    /// default writes it with [`MAP_WRITER`](Codec::MAP_WRITER), or without
    /// one encodes a [`MessageOut`] with
    /// [`encode_value`](Codec::encode_value): right for any self-describing
    /// format whose envelope is a map.
    fn encode_message<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
        id: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match Self::MAP_WRITER {
            Some(writer) => writer.message(self, name, args, id, out),
            None => self.encode_value(&MessageOut { name, args, id }, out),
        }
    }

    /// Encodes an ack envelope `{id, result}` or `{id, error}` into `out`.
    /// The default writes it with [`MAP_WRITER`](Codec::MAP_WRITER), or
    /// without one encodes a [`ReplyOut`] with
    /// [`encode_value`](Codec::encode_value).
    fn encode_reply<T: Serialize + ?Sized>(
        &self,
        id: u64,
        reply: Result<&T, &serde_json::Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match Self::MAP_WRITER {
            Some(writer) => writer.reply(self, id, reply, out),
            None => self.encode_value(&ReplyOut { id, reply }, out),
        }
    }

    /// Encodes an ack `{id, result}` whose result is `raw`, one value
    /// already in this codec's format ([`RawValue`](crate::RawValue): a
    /// raw slice from [`decode_envelope`](Codec::decode_envelope), or what
    /// [`encode_value`](Codec::encode_value) wrote), copied as it is. The
    /// output must equal `encode_reply(id, Ok(&v))` for the value `v` that
    /// `raw` encodes. The default writes it with
    /// [`MAP_WRITER`](Codec::MAP_WRITER); without one it refuses (the
    /// procedure's caller then gets an error): a codec that can splice a
    /// value otherwise overrides it.
    fn encode_raw_reply(&self, id: u64, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match Self::MAP_WRITER {
            Some(writer) => {
                writer.raw_reply(id, raw, out);
                Ok(())
            }
            None => Err(CodecError::encode("this codec cannot send a RawValue")),
        }
    }

    /// Decodes the error value of an ack (or the argument of a
    /// `preprocessingError` event). The default decodes a `serde_json::Value`
    /// with [`decode_value`](Codec::decode_value); a format that cannot decode
    /// self-describing values overrides it (and `encode_reply`'s error path).
    fn decode_error(&self, data: &[u8]) -> Result<serde_json::Value, CodecError> {
        self.decode_value(data)
    }

    /// Decodes a frame into its loose envelope form, arguments kept raw.
    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError>;

    /// [`decode_envelope`](Codec::decode_envelope) for a frame that came in
    /// a text frame: the WebSocket layer has checked that it is UTF-8, so a
    /// text format need not check again. The default is `decode_envelope`.
    fn decode_text_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        self.decode_envelope(frame)
    }

    /// Extra validation of a well-formed envelope before dispatch (a schema
    /// check per event or procedure name). The default accepts everything.
    /// An `Err` is sent to the peer as a `preprocessingError`.
    ///
    /// # `check` and the receive hook
    /// Both refuse a frame before dispatch, in this order: `check` first,
    /// then the runtime's receive hook (`EndpointOptions::receive_hook` in
    /// `ws-messaging`). They stay two because they belong to different
    /// owners. `check` belongs to the wire format: it travels with the codec
    /// value, so a codec that wraps another
    /// ([`schema::Validated`](crate::schema::Validated)) brings its rules to
    /// every client and server that speaks it, and to code that has the core
    /// crate alone (no runtime, no options); its refusals are typed
    /// ([`CheckError`](crate::CheckError)). The receive hook belongs to the
    /// application: a closure set per client or server, with the
    /// application's state and its own error values, for rules that are
    /// not the format's (permissions, rate limits). Put a rule about what a
    /// frame may contain in the codec, a rule about who may send it in the
    /// hook.
    fn check(&self, frame: &crate::Frame) -> Result<(), crate::CheckError> {
        let _ = frame;
        Ok(())
    }
}
