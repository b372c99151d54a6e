//! Envelope shapes ([protocol § Envelopes](crate::protocol#envelopes)) and
//! the validation rules ([protocol § Validation](crate::protocol#validation)),
//! shared by every codec.
//!
//! A codec decodes a frame into a [`RawEnvelope`], a loose description of
//! what the frame held; [`validate`] applies the rules of the JavaScript
//! package (`validate()` in its `Client.js`) and yields a [`Frame`].

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::error::PreprocessError;

/// The `name` field as found in a frame, classified the way JavaScript's
/// truthiness sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameField {
    /// No `name` key.
    #[default]
    Absent,
    /// A falsy value: `null`, `false`, `0`, `""` (the frame is then an ack).
    Falsy,
    /// A non-empty string.
    Str(String),
    /// Any other truthy value (a number, an array...): an invalid message.
    Other,
}

/// The `id` field as found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdField {
    /// No `id` key.
    #[default]
    Absent,
    /// A whole number greater than 0 (a float such as `2.0` counts, as in
    /// JavaScript).
    Valid(u64),
    /// Present but not a whole number greater than 0 (or beyond `u64`).
    Invalid,
}

impl IdField {
    /// Classifies a float id the way JavaScript's `validateId` does.
    pub fn from_f64(v: f64) -> Self {
        if v.is_finite() && v.fract() == 0.0 && v > 0.0 && v <= u64::MAX as f64 {
            IdField::Valid(v as u64)
        } else {
            IdField::Invalid
        }
    }

    /// Classifies a signed integer id.
    pub fn from_i64(v: i64) -> Self {
        if v > 0 {
            IdField::Valid(v as u64)
        } else {
            IdField::Invalid
        }
    }

    /// Classifies an unsigned integer id.
    pub fn from_u64(v: u64) -> Self {
        if v > 0 {
            IdField::Valid(v)
        } else {
            IdField::Invalid
        }
    }
}

/// The `args` field as found in a frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArgsField {
    /// No `args` key.
    #[default]
    Absent,
    /// An array: each element as a raw slice in the codec's format.
    List(Vec<Bytes>),
    /// Present but not an array.
    Invalid,
}

/// A key of an envelope map, as a codec reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `name`
    Name,
    /// `args`
    Args,
    /// `id`
    Id,
    /// `result`
    Result,
    /// `error`
    Error,
    /// Any other key.
    Other,
}

impl Key {
    /// Classifies a key given as UTF-8 bytes.
    pub fn from_bytes(key: &[u8]) -> Key {
        match key {
            b"name" => Key::Name,
            b"args" => Key::Args,
            b"id" => Key::Id,
            b"result" => Key::Result,
            b"error" => Key::Error,
            _ => Key::Other,
        }
    }
}

/// Counts the keys of an envelope map for [`RawEnvelope::keys`], the way
/// `Object.keys` does for a decoded JavaScript object: a repeated known key
/// counts once (its last value wins). Every unknown key counts, which can
/// only make an already invalid envelope more so.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyCount {
    seen: [bool; 5],
    unknown: usize,
}

impl KeyCount {
    /// Notes one key.
    pub fn add(&mut self, key: Key) {
        match key {
            Key::Other => self.unknown += 1,
            known => self.seen[known as usize] = true,
        }
    }

    /// The number of distinct keys.
    pub fn total(&self) -> usize {
        self.unknown + self.seen.iter().filter(|s| **s).count()
    }
}

/// What a codec found in a frame, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEnvelope {
    /// Whether the frame's top level is a map (object). Anything else fails
    /// validation.
    pub is_map: bool,
    /// Number of distinct keys in the map, known or not.
    pub keys: usize,
    /// The `name` key.
    pub name: NameField,
    /// The `args` key.
    pub args: ArgsField,
    /// The `id` key.
    pub id: IdField,
    /// The raw `result` value, if the key is present.
    pub result: Option<Bytes>,
    /// The raw `error` value, if the key is present.
    pub error: Option<Bytes>,
}

impl RawEnvelope {
    /// The envelope of a frame whose top level is not a map.
    pub fn not_a_map() -> Self {
        RawEnvelope::default()
    }
}

/// A validated envelope, arguments and results still raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An event (`id` is `None`) or an invoke call.
    Message {
        /// The event or procedure name.
        name: String,
        /// The positional arguments, each still encoded.
        args: Vec<Bytes>,
        /// The invoke id.
        id: Option<u64>,
    },
    /// The reply to an invoke: `Ok(result)` or `Err(error)`, still encoded.
    Reply {
        /// The id of the invoke being answered.
        id: u64,
        /// The raw result or error.
        outcome: Result<Bytes, Bytes>,
    },
}

impl Frame {
    /// The message name, for a message.
    pub fn name(&self) -> Option<&str> {
        match self {
            Frame::Message { name, .. } => Some(name),
            Frame::Reply { .. } => None,
        }
    }
}

/// Applies the envelope rules ([protocol § Envelopes](crate::protocol#envelopes),
/// [protocol § Validation](crate::protocol#validation)).
///
/// With `strict == false` (the "skip validation" switch) the key counts and
/// id checks are not enforced; a frame that cannot be routed at all (no
/// string name and no usable id) is still refused.
pub fn validate(raw: RawEnvelope, strict: bool) -> Result<Frame, PreprocessError> {
    if !raw.is_map {
        return Err(PreprocessError::Validation);
    }
    match raw.name {
        NameField::Str(name) => {
            let args = match raw.args {
                ArgsField::List(args) => args,
                ArgsField::Absent if !strict => Vec::new(),
                _ => return Err(PreprocessError::Validation),
            };
            let id = match (raw.keys, raw.id) {
                (2, IdField::Absent) => None,
                (3, IdField::Valid(id)) => Some(id),
                (_, IdField::Valid(id)) if !strict => Some(id),
                (_, _) if !strict => None,
                _ => return Err(PreprocessError::Validation),
            };
            Ok(Frame::Message { name, args, id })
        }
        NameField::Other => Err(PreprocessError::Validation),
        NameField::Absent | NameField::Falsy => {
            let IdField::Valid(id) = raw.id else {
                return Err(PreprocessError::Validation);
            };
            if strict && raw.keys != 2 {
                return Err(PreprocessError::Validation);
            }
            let outcome = match (raw.error, raw.result) {
                (Some(error), _) => Err(error),
                (None, Some(result)) => Ok(result),
                (None, None) => return Err(PreprocessError::Validation),
            };
            Ok(Frame::Reply { id, outcome })
        }
    }
}

/// A message envelope ready to serialize with serde, as the map
/// `{name, args}` or `{name, args, id}` in that key order. Serde-based codecs
/// (JSON, MessagePack, CBOR) serialize it directly.
pub struct MessageOut<'a, A: ?Sized> {
    /// The name.
    pub name: &'a str,
    /// The argument sequence.
    pub args: &'a A,
    /// The invoke id.
    pub id: Option<u64>,
}

impl<A: ?Sized> std::fmt::Debug for MessageOut<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageOut")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<A: Serialize + ?Sized> Serialize for MessageOut<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(if self.id.is_some() { 3 } else { 2 }))?;
        map.serialize_entry("name", self.name)?;
        map.serialize_entry("args", self.args)?;
        if let Some(id) = self.id {
            map.serialize_entry("id", &id)?;
        }
        map.end()
    }
}

/// An ack envelope ready to serialize with serde, as the map `{id, result}`
/// or `{id, error}` in that key order.
pub struct ReplyOut<'a, T: ?Sized> {
    /// The id of the invoke being answered.
    pub id: u64,
    /// The result, or the formatted error.
    pub reply: Result<&'a T, &'a serde_json::Value>,
}

impl<T: ?Sized> std::fmt::Debug for ReplyOut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyOut").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<T: Serialize + ?Sized> Serialize for ReplyOut<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("id", &self.id)?;
        match self.reply {
            Ok(result) => map.serialize_entry("result", result)?,
            Err(error) => map.serialize_entry("error", error)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(keys: usize, name: NameField, args: ArgsField, id: IdField) -> RawEnvelope {
        RawEnvelope {
            is_map: true,
            keys,
            name,
            args,
            id,
            result: None,
            error: None,
        }
    }

    #[test]
    fn message_rules() {
        let ok = msg(2, NameField::Str("a".into()), ArgsField::List(vec![]), IdField::Absent);
        assert!(matches!(validate(ok, true), Ok(Frame::Message { id: None, .. })));
        let call = msg(
            3,
            NameField::Str("a".into()),
            ArgsField::List(vec![]),
            IdField::Valid(7),
        );
        assert!(matches!(validate(call, true), Ok(Frame::Message { id: Some(7), .. })));
        for bad in [
            msg(3, NameField::Str("a".into()), ArgsField::List(vec![]), IdField::Invalid),
            msg(3, NameField::Str("a".into()), ArgsField::List(vec![]), IdField::Absent),
            msg(2, NameField::Str("a".into()), ArgsField::Invalid, IdField::Absent),
            msg(1, NameField::Str("a".into()), ArgsField::Absent, IdField::Absent),
            msg(2, NameField::Other, ArgsField::List(vec![]), IdField::Absent),
            msg(
                4,
                NameField::Str("a".into()),
                ArgsField::List(vec![]),
                IdField::Valid(1),
            ),
        ] {
            assert_eq!(validate(bad, true), Err(PreprocessError::Validation));
        }
        assert_eq!(
            validate(RawEnvelope::not_a_map(), true),
            Err(PreprocessError::Validation)
        );
    }

    #[test]
    fn ack_rules() {
        let mut ack = msg(2, NameField::Absent, ArgsField::Absent, IdField::Valid(1));
        ack.result = Some(Bytes::from_static(b"1"));
        assert!(matches!(
            validate(ack.clone(), true),
            Ok(Frame::Reply { id: 1, outcome: Ok(_) })
        ));
        ack.keys = 3;
        assert_eq!(validate(ack.clone(), true), Err(PreprocessError::Validation));
        assert!(validate(ack, false).is_ok());
        let mut no_value = msg(2, NameField::Falsy, ArgsField::Absent, IdField::Valid(1));
        assert_eq!(validate(no_value.clone(), true), Err(PreprocessError::Validation));
        no_value.error = Some(Bytes::from_static(b"\"e\""));
        assert!(matches!(
            validate(no_value, true),
            Ok(Frame::Reply { outcome: Err(_), .. })
        ));
    }

    #[test]
    fn ids_follow_javascript() {
        assert_eq!(IdField::from_f64(2.0), IdField::Valid(2));
        assert_eq!(IdField::from_f64(1.5), IdField::Invalid);
        assert_eq!(IdField::from_f64(0.0), IdField::Invalid);
        assert_eq!(IdField::from_f64(-3.0), IdField::Invalid);
        assert_eq!(IdField::from_f64(f64::NAN), IdField::Invalid);
        assert_eq!(IdField::from_i64(-1), IdField::Invalid);
        assert_eq!(IdField::from_u64(0), IdField::Invalid);
    }
}
