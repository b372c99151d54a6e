//! Payload types and proptest strategies for the round-trip properties.

use proptest::prelude::*;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

/// Binary data that serializes as a serde byte string (what `serde_bytes`
/// does, without the dependency); reads back from a byte string or, for
/// JSON, a list of numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::new();
                while let Some(byte) = seq.next_element()? {
                    out.push(byte);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_byte_buf(BlobVisitor)
    }
}

/// A typed payload as a Rust application would send it: text, binary,
/// integers of every width and sign, floats, a boolean, nested lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    /// Text.
    pub name: String,
    /// A list of strings.
    pub tags: Vec<String>,
    /// Binary data.
    pub data: Blob,
    /// A list of binary parts.
    pub parts: Vec<Blob>,
    /// A 32-bit integer.
    pub id: u32,
    /// Any `u64`.
    pub size: u64,
    /// Any `i64`.
    pub offset: i64,
    /// An optional float.
    pub ratio: Option<f64>,
    /// A float (NaN included where the format carries it).
    pub score: f64,
    /// A boolean.
    pub active: bool,
}

/// Floats equal as values, or bit for bit (so an exact NaN equals itself).
fn same_float(a: f64, b: f64) -> bool {
    a == b || a.to_bits() == b.to_bits()
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        let ratio = match (self.ratio, other.ratio) {
            (Some(a), Some(b)) => same_float(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        ratio
            && same_float(self.score, other.score)
            && (&self.name, &self.tags, &self.data, &self.parts)
                == (&other.name, &other.tags, &other.data, &other.parts)
            && (self.id, self.size, self.offset, self.active) == (other.id, other.size, other.offset, other.active)
    }
}

/// Any finite `f64`, and the edge values 0.5, -0.0, 65504 (the largest f16),
/// 1e300 and 0.1.
pub fn finite() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        prop_oneof![Just(0.5), Just(-0.0), Just(65504.0), Just(1e300), Just(0.1)],
    ]
}

/// Binary data up to 64 bytes.
pub fn blob() -> impl Strategy<Value = Blob> + Clone {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Blob)
}

/// [`Payload`]s whose floats come from `floats`.
pub fn payload(floats: impl Strategy<Value = f64> + Clone) -> impl Strategy<Value = Payload> {
    (
        (".*", prop::collection::vec(".{0,8}", 0..4), blob()),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8).prop_map(Blob), 0..4),
        (any::<u32>(), any::<u64>(), any::<i64>()),
        (proptest::option::of(floats.clone()), floats, any::<bool>()),
    )
        .prop_map(
            |((name, tags, data), parts, (id, size, offset), (ratio, score, active))| Payload {
                name,
                tags,
                data,
                parts,
                id,
                size,
                offset,
                ratio,
                score,
                active,
            },
        )
}

/// Ack errors as a JavaScript peer sends them: a string, an object with a
/// message, a code and a list, or `null`.
pub fn error_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        ".*".prop_map(serde_json::Value::String),
        (".*", any::<i32>()).prop_map(|(m, code)| json!({"message": m, "code": code, "tags": [m]})),
        Just(serde_json::Value::Null),
    ]
}

/// Ack errors that are strings (formats that carry errors as text).
pub fn error_text() -> impl Strategy<Value = serde_json::Value> {
    ".{0,32}".prop_map(serde_json::Value::String)
}

/// The round-trip properties of a codec as proptest tests, each through
/// the kit's assertions:
/// `messages_round_trip` ([`Kit::assert_message_round_trip`](crate::Kit::assert_message_round_trip)),
/// `acks_round_trip` ([`Kit::assert_reply_round_trip`](crate::Kit::assert_reply_round_trip)),
/// `bare_values_round_trip` ([`Kit::assert_value_round_trip`](crate::Kit::assert_value_round_trip),
/// then the bytes compared with `reference(&value)` where that is `Some`).
///
/// ```text
/// round_trips!(kit(), names ".+", ids 1u64.., values value(), expect js, errors error_value(), reference |v| Some(mp(v)));
/// ```
#[macro_export]
macro_rules! round_trips {
    ($kit:expr, names $names:expr, ids $ids:expr, values $values:expr, expect $expect:expr, errors $errors:expr, reference $reference:expr $(,)?) => {
        $crate::proptest::proptest! {
            #[test]
            fn messages_round_trip(
                name in $names,
                id in $crate::proptest::option::of($ids),
                args in $crate::proptest::collection::vec($values, 0..5),
            ) {
                $kit.assert_message_round_trip(&name, &args, id, $expect);
            }

            #[test]
            fn acks_round_trip(id in $ids, result in $values, error in $errors) {
                $kit.assert_reply_round_trip(id, &result, $expect, &error);
            }

            #[test]
            fn bare_values_round_trip(value in $values) {
                let bytes = $kit.assert_value_round_trip(&value, $expect);
                #[allow(clippy::redundant_closure_call)]
                if let Some(reference) = ($reference)(&value) {
                    assert_eq!($crate::hex(&bytes), $crate::hex(&reference), "{value:?}");
                }
            }
        }
    };
}

/// The typed-payload property as a proptest test: `typed_payloads_round_trip`
/// sends two [`Payload`]s (floats from the given strategy) in one message
/// ([`Kit::assert_typed_round_trip`](crate::Kit::assert_typed_round_trip)).
#[macro_export]
macro_rules! payload_round_trips {
    ($kit:expr, floats $floats:expr $(,)?) => {
        $crate::proptest::proptest! {
            #[test]
            fn typed_payloads_round_trip(
                first in $crate::payload($floats),
                second in $crate::payload($floats),
                id in 1u64..,
            ) {
                $kit.assert_typed_round_trip(&first, &second, id);
            }
        }
    };
}
