//! [`Proto<M>`]: a prost message as a serde value.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// A prost message as a serde value: it serializes as bytes (the message's
/// protobuf encoding) and deserializes from bytes, so a message can be an
/// argument, a result, an auth value or an auth reply.
///
/// ```
/// use ws_messaging_core::Codec;
/// use ws_messaging_protobuf::{prost, Proto, Protobuf};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct Point {
///     #[prost(int32, tag = "1")]
///     x: i32,
///     #[prost(int32, tag = "2")]
///     y: i32,
/// }
///
/// let mut bytes = Vec::new();
/// Protobuf.encode_value(&Proto(Point { x: 1, y: -2 }), &mut bytes).unwrap();
/// assert_eq!(bytes, prost::Message::encode_to_vec(&Point { x: 1, y: -2 }));
/// let Proto(point) = Protobuf.decode_value::<Proto<Point>>(&bytes).unwrap();
/// assert_eq!((point.x, point.y), (1, -2));
/// ```
///
/// With a self-describing codec (JSON, MessagePack...) it is a byte string
/// (JSON writes bytes as an array of numbers), which it reads back too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Proto<M>(pub M);

impl<M> Proto<M> {
    /// The message.
    pub fn into_inner(self) -> M {
        self.0
    }
}

impl<M> From<M> for Proto<M> {
    fn from(message: M) -> Self {
        Proto(message)
    }
}

impl<M> Deref for Proto<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.0
    }
}

impl<M> DerefMut for Proto<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.0
    }
}

impl<M: prost::Message> Serialize for Proto<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de, M: prost::Message + Default> Deserialize<'de> for Proto<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(MessageVisitor(PhantomData))
    }
}

struct MessageVisitor<M>(PhantomData<M>);

impl<M: prost::Message + Default> MessageVisitor<M> {
    fn decode<E: de::Error>(bytes: &[u8]) -> Result<Proto<M>, E> {
        M::decode(bytes).map(Proto).map_err(|e| {
            E::custom(format_args!(
                "not a valid {} message: {e}",
                short_type_name(std::any::type_name::<M>())
            ))
        })
    }
}

/// `path::to::Point` → `Point` (generic parameters kept).
fn short_type_name(name: &str) -> &str {
    let end = name.find('<').unwrap_or(name.len());
    let start = name[..end].rfind("::").map_or(0, |i| i + 2);
    &name[start..]
}

impl<'de, M: prost::Message + Default> Visitor<'de> for MessageVisitor<M> {
    type Value = Proto<M>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "the bytes of a {} protobuf message",
            short_type_name(std::any::type_name::<M>())
        )
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Proto<M>, E> {
        Self::decode(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Proto<M>, E> {
        Self::decode(&v)
    }

    /// Formats without a byte string type write bytes as a list of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Proto<M>, A::Error> {
        // Grows with the elements actually present, not with a size hint.
        let mut bytes = Vec::new();
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Self::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn short_names() {
        assert_eq!(short_type_name("a::b::Point"), "Point");
        assert_eq!(short_type_name("Point"), "Point");
        assert_eq!(short_type_name("a::Wrap<b::C>"), "Wrap<b::C>");
    }
}
