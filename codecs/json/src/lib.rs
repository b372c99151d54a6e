//! The JSON codec for ws-messaging: the default wire format of the
//! JavaScript `ws-messaging` package (`JSON.stringify` / `JSON.parse`),
//! sent in text frames.
//!
//! Decoding reads only the routing fields; every argument, result and error
//! stays a raw slice of the received frame (no copy) until a handler
//! decodes it straight into its own type. The frame is still checked whole
//! against the JSON grammar, in one pass, so a malformed argument is refused
//! before dispatch as `JSON.parse` would refuse it; frames nested deeper
//! than [`ws_messaging_core::reader::MAX_DEPTH`] levels are refused too.
//!
//! ```
//! use ws_messaging_core::{Codec, Frame, envelope::validate};
//! use ws_messaging_json::Json;
//!
//! let mut out = Vec::new();
//! Json.encode_message("sum", &(1, 2, 3.5), Some(7), &mut out).unwrap();
//! assert_eq!(out, br#"{"name":"sum","args":[1,2,3.5],"id":7}"#);
//!
//! let raw = Json.decode_envelope(&out.into()).unwrap();
//! let Frame::Message { name, args, id } = validate(raw, true).unwrap() else { panic!() };
//! assert_eq!((name.as_str(), args.len(), id), ("sum", 3, Some(7)));
//! assert_eq!(Json.decode_value::<f64>(&args[2]).unwrap(), 3.5);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod scan;

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;
use ws_messaging_core::envelope::{ArgList, ArgsField, IdField, Key, KeyCount, NameField, RawEnvelope};
use ws_messaging_core::writer::{self, MapWriter};
use ws_messaging_core::{Codec, CodecError, FrameKind};

/// The JSON codec (serde_json). Zero-sized; `Json::default()` or `Json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

fn encode_err(e: serde_json::Error) -> CodecError {
    CodecError::encode(e)
}

fn decode_err(e: serde_json::Error) -> CodecError {
    CodecError::decode(e)
}

/// The envelope's primitives, as serde_json writes them (into a `Vec`,
/// a string or a number cannot fail).
struct JsonWriter;

impl writer::Format for JsonWriter {
    #[inline]
    fn map_head(out: &mut Vec<u8>, _: usize) {
        out.push(b'{');
    }

    #[inline]
    fn str(out: &mut Vec<u8>, text: &str) {
        let _ = serde_json::to_writer(out, text);
    }

    #[inline]
    fn uint(out: &mut Vec<u8>, value: u64) {
        let _ = serde_json::to_writer(out, &value);
    }

    /// `"key":`, after a comma but for the first entry, in one copy (the
    /// envelope's keys are short and need no escaping).
    #[inline]
    fn key(out: &mut Vec<u8>, index: usize, key: &'static str) {
        const ROOM: usize = 16;
        let start = usize::from(index == 0);
        if key.len() + 4 > ROOM {
            out.extend_from_slice(&b","[start..]);
            Self::str(out, key);
            out.push(b':');
            return;
        }
        let mut entry = [0u8; ROOM];
        let end = key.len() + 4;
        entry[..2].copy_from_slice(b",\"");
        entry[2..end - 2].copy_from_slice(key.as_bytes());
        entry[end - 2..end].copy_from_slice(b"\":");
        out.extend_from_slice(&entry[start..end]);
    }

    #[inline]
    fn map_end(out: &mut Vec<u8>) {
        out.push(b'}');
    }
}

impl Codec for Json {
    const FRAME_KIND: FrameKind = FrameKind::Text;
    const MAP_WRITER: Option<MapWriter> = Some(MapWriter::of::<JsonWriter>());

    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(encode_err)
    }

    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        // UTF-8 checked in one pass over the whole value, then read as text:
        // cheaper than serde_json checking string by string. Bytes that are
        // not UTF-8 go to serde_json as they are, for its error.
        match std::str::from_utf8(data) {
            Ok(text) => serde_json::from_str(text).map_err(decode_err),
            Err(_) => serde_json::from_slice(data).map_err(decode_err),
        }
    }

    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        // The scan checks that the frame is UTF-8 as it reads it: it accepts
        // no frame that is not.
        scan::envelope::<true>(frame).or_else(|stop| {
            if let Err(e) = std::str::from_utf8(frame) {
                return not_utf8(frame, e);
            }
            after_scan(frame, stop)
        })
    }

    fn decode_text_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        scan::envelope::<false>(frame).or_else(|stop| after_scan(frame, stop))
    }
}

/// The envelope of a UTF-8 `frame` that the scan stopped short of.
fn after_scan(frame: &Bytes, stop: scan::Stop) -> Result<RawEnvelope, CodecError> {
    match stop {
        scan::Stop::TooDeep => Err(too_deep()),
        scan::Stop::Bail => {
            let envelope = serde_envelope(frame)?;
            if scan::too_deep(frame) {
                return Err(too_deep());
            }
            Ok(envelope)
        }
    }
}

/// The error for a `frame` that is not UTF-8: serde_json's, which says
/// where the bad bytes are, or, where serde_json does not look (in the
/// values of unknown keys), `error`.
fn not_utf8(frame: &Bytes, error: std::str::Utf8Error) -> Result<RawEnvelope, CodecError> {
    serde_envelope(frame)?;
    Err(CodecError::decode_in("frame is not UTF-8", error))
}

fn too_deep() -> CodecError {
    CodecError::decode(format!(
        "JSON nested deeper than {} levels",
        ws_messaging_core::reader::MAX_DEPTH
    ))
}

/// The envelope read with serde_json: what the one-pass scanner leaves to
/// it (unusual shapes, and every error, with serde_json's message).
fn serde_envelope(frame: &Bytes) -> Result<RawEnvelope, CodecError> {
    let first = frame.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Valid JSON that is not an object fails validation; invalid
        // JSON fails decoding (JSON.parse's SyntaxError).
        serde_json::from_slice::<IgnoredAny>(frame).map_err(decode_err)?;
        return Ok(RawEnvelope::not_a_map());
    }
    let mut de = serde_json::Deserializer::from_slice(frame);
    let envelope = de.deserialize_map(EnvelopeVisitor { frame }).map_err(decode_err)?;
    de.end().map_err(decode_err)?;
    Ok(envelope)
}

/// The sub-slice of `frame` that `part` (borrowed from it) occupies.
fn slice_of(frame: &Bytes, part: &str) -> Bytes {
    frame.slice_ref(part.as_bytes())
}

struct EnvelopeVisitor<'f> {
    frame: &'f Bytes,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        let key: Cow<'de, str> = de::Deserialize::deserialize(d)?;
        Ok(Key::from_bytes(key.as_bytes()))
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = RawEnvelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a ws-messaging envelope")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawEnvelope, M::Error> {
        let mut env = RawEnvelope {
            is_map: true,
            ..RawEnvelope::default()
        };
        let mut keys = KeyCount::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            keys.add(key);
            match key {
                Key::Name => {
                    env.name = map.next_value_seed(NameSeed)?;
                }
                Key::Args => {
                    env.args = map.next_value_seed(ArgsSeed { frame: self.frame })?;
                }
                Key::Id => {
                    env.id = map.next_value_seed(IdSeed)?;
                }
                Key::Result => {
                    let raw: &'de RawValue = map.next_value()?;
                    env.result = Some(slice_of(self.frame, raw.get()));
                }
                Key::Error => {
                    let raw: &'de RawValue = map.next_value()?;
                    env.error = Some(slice_of(self.frame, raw.get()));
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            };
        }
        env.keys = keys.total();
        Ok(env)
    }
}

/// Classifies `name` by JavaScript truthiness.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = NameField;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<NameField, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = NameField;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NameField, E> {
        Ok(if v.is_empty() {
            NameField::Falsy
        } else {
            NameField::Str(v.into())
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<NameField, E> {
        Ok(NameField::Falsy)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NameField, E> {
        Ok(if v { NameField::Other } else { NameField::Falsy })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NameField, E> {
        Ok(if v == 0 { NameField::Falsy } else { NameField::Other })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NameField, E> {
        Ok(if v == 0 { NameField::Falsy } else { NameField::Other })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NameField, E> {
        Ok(if v == 0.0 { NameField::Falsy } else { NameField::Other })
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<NameField, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(NameField::Other)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<NameField, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(NameField::Other)
    }
}

/// Classifies `id` the way JavaScript's `validateId` does.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = IdField;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<IdField, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed {
    type Value = IdField;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdField, E> {
        Ok(IdField::from_u64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdField, E> {
        Ok(IdField::from_i64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<IdField, E> {
        Ok(IdField::from_f64(v))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<IdField, E> {
        Ok(IdField::Invalid)
    }
    fn visit_unit<E: de::Error>(self) -> Result<IdField, E> {
        Ok(IdField::Invalid)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdField, E> {
        Ok(IdField::Invalid)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<IdField, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(IdField::Invalid)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<IdField, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(IdField::Invalid)
    }
}

/// Collects the elements of `args` as raw slices; anything but an array is
/// `Invalid`.
struct ArgsSeed<'f> {
    frame: &'f Bytes,
}

impl<'de> DeserializeSeed<'de> for ArgsSeed<'_> {
    type Value = ArgsField;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ArgsField, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArgsSeed<'_> {
    type Value = ArgsField;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<ArgsField, S::Error> {
        // No pre-allocation from a size hint: the frame decides, not a claim.
        let mut args = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            args.push(slice_of(self.frame, raw.get()));
        }
        Ok(ArgsField::List(ArgList::from(args).into_enveloped()))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ArgsField, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ArgsField::Invalid)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<ArgsField, E> {
        Ok(ArgsField::Invalid)
    }
    fn visit_unit<E: de::Error>(self) -> Result<ArgsField, E> {
        Ok(ArgsField::Invalid)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ArgsField, E> {
        Ok(ArgsField::Invalid)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ArgsField, E> {
        Ok(ArgsField::Invalid)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ArgsField, E> {
        Ok(ArgsField::Invalid)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ArgsField, E> {
        Ok(ArgsField::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_messaging_core::envelope::validate;
    use ws_messaging_core::{Frame, PreprocessError};

    fn frame(s: &str) -> Result<Frame, PreprocessError> {
        let raw = Json
            .decode_envelope(&Bytes::copy_from_slice(s.as_bytes()))
            .map_err(PreprocessError::Decode)?;
        validate(raw, true)
    }

    #[test]
    fn wire_key_order_matches_json_stringify() {
        let mut out = Vec::new();
        Json.encode_message("ev", &("a", 1), None, &mut out).unwrap();
        assert_eq!(out, br#"{"name":"ev","args":["a",1]}"#);
        out.clear();
        Json.encode_reply(3, Ok(&()), &mut out).unwrap();
        assert_eq!(out, br#"{"id":3,"result":null}"#);
        out.clear();
        Json.encode_reply::<()>(4, Err(&serde_json::json!("Error: x")), &mut out)
            .unwrap();
        assert_eq!(out, br#"{"id":4,"error":"Error: x"}"#);
    }

    #[test]
    fn decodes_envelopes_with_raw_arguments() {
        let f = frame(r#" {"name":"a\u0062","args":[ {"x":[1,2]} , "s\"q", null ],"id":2.0} "#).unwrap();
        let Frame::Message { name, args, id } = f else { panic!() };
        assert_eq!(name, "ab");
        assert_eq!(id, Some(2));
        assert_eq!(&args[0][..], br#"{"x":[1,2]}"#);
        assert_eq!(&args[1][..], br#""s\"q""#);
        assert_eq!(&args[2][..], b"null");
        let f = frame(r#"{"id":9,"error":{"code":1}}"#).unwrap();
        assert_eq!(
            f,
            Frame::Reply {
                id: 9,
                outcome: Err(Bytes::from_static(br#"{"code":1}"#))
            }
        );
        let f = frame(r#"{"result":[1],"id":9,"result":2}"#).unwrap();
        assert_eq!(
            f,
            Frame::Reply {
                id: 9,
                outcome: Ok(Bytes::from_static(b"2"))
            }
        );
    }

    #[test]
    fn refuses_what_javascript_refuses() {
        for bad in [
            "[1,2]",
            "\"str\"",
            "42",
            "null",
            "{}",
            r#"{"foo":1}"#,
            r#"{"name":"x","args":{}}"#,
            r#"{"name":"x","args":[],"id":0}"#,
            r#"{"name":"x","args":[],"id":-1}"#,
            r#"{"name":"x","args":[],"id":1.5}"#,
            r#"{"name":"x","args":[],"id":"1"}"#,
            r#"{"name":"x","args":[],"id":null}"#,
            r#"{"name":"x","args":[],"extra":1}"#,
            r#"{"name":5,"args":[]}"#,
            r#"{"name":"x"}"#,
            r#"{"id":1.5,"result":1}"#,
            r#"{"id":1}"#,
            r#"{"id":1,"result":1,"error":2}"#,
            r#"{"name":"","args":[],"id":1}"#,
        ] {
            assert_eq!(frame(bad), Err(PreprocessError::Validation), "{bad}");
        }
        for broken in ["not json", "{", r#"{"name":"x","args":[]} x"#, "", "{\"a\":1,}"] {
            assert!(matches!(frame(broken), Err(PreprocessError::Decode(_))), "{broken}");
        }
        // A falsy name makes an ack, as in JavaScript.
        assert!(matches!(
            frame(r#"{"name":null,"id":1}"#),
            Err(PreprocessError::Validation)
        ));
        assert!(matches!(
            frame(r#"{"id":1,"error":null}"#),
            Ok(Frame::Reply { outcome: Err(_), .. })
        ));
    }

    #[test]
    fn keys_of_any_length_are_written_with_their_separator_and_colon() {
        use ws_messaging_core::writer::Format as _;
        let mut out = Vec::new();
        JsonWriter::key(&mut out, 0, "id");
        JsonWriter::key(&mut out, 1, "a key longer than the room");
        JsonWriter::key(&mut out, 2, "result");
        JsonWriter::key(&mut out, 0, "a key longer than the room");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""id":,"a key longer than the room":,"result":"a key longer than the room":"#
        );
    }
}
