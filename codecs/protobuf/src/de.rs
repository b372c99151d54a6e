//! A deserializer over one protobuf `bytes` value: the mirror of
//! [`ValueSerializer`](crate::ser::ValueSerializer).
//!
//! Bytes decode as bytes (`Proto<M>` decodes its message from them, `Vec<u8>`
//! and `[u8; N]` take them as they are), as a string when they are UTF-8, as
//! `()` or `None` when empty, as an empty map or struct when empty. Numbers,
//! booleans and enums are errors: they belong in a message.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::{ValueError, SHAPES};

/// Reads one value from `data`.
pub(crate) struct ValueDeserializer<'de> {
    pub(crate) data: &'de [u8],
}

fn unsupported(expected: &dyn de::Expected) -> ValueError {
    ValueError(format!(
        "cannot decode {expected} from a protobuf value ({SHAPES}); put it in a prost message"
    ))
}

impl<'de> ValueDeserializer<'de> {
    fn text(&self) -> Result<&'de str, ValueError> {
        std::str::from_utf8(self.data)
            .map_err(|e| ValueError(format!("expected text, but the value is not UTF-8: {e}")))
    }

    fn expect_empty(&self, what: &str) -> Result<(), ValueError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(ValueError(format!(
                "expected {what} (an empty value), got {} bytes",
                self.data.len()
            )))
        }
    }
}

macro_rules! reject {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
                Err(unsupported(&visitor))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = ValueError;

    fn is_human_readable(&self) -> bool {
        false
    }

    /// A self-describing read sees bytes: every protobuf value is bytes.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_borrowed_bytes(self.data)
    }

    reject! {
        deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let text = self.text()?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(de::Error::invalid_value(de::Unexpected::Str(text), &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_borrowed_bytes(self.data)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_borrowed_bytes(self.data)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        if self.data.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.expect_empty("nothing")?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, ValueError> {
        self.expect_empty(name)?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_seq(ByteSeq { data: self.data })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, ValueError> {
        if self.data.len() != len {
            return Err(de::Error::invalid_length(self.data.len(), &visitor));
        }
        visitor.visit_seq(ByteSeq { data: self.data })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.expect_empty("an empty map")?;
        visitor.visit_map(EmptyMap)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.expect_empty(&format!("an empty {name}"))?;
        visitor.visit_map(EmptyMap)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        Err(unsupported(&visitor))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }
}

/// The bytes of a value as a sequence of `u8` (for `Vec<u8>`, `[u8; N]`).
struct ByteSeq<'de> {
    data: &'de [u8],
}

impl<'de> de::SeqAccess<'de> for ByteSeq<'de> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ValueError> {
        match self.data.split_first() {
            Some((&byte, rest)) => {
                self.data = rest;
                seed.deserialize(byte.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.data.len())
    }
}

/// The empty message read as a map or struct: no entries.
struct EmptyMap;

impl<'de> de::MapAccess<'de> for EmptyMap {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, ValueError> {
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, ValueError> {
        Err(ValueError("an empty map has no values".into()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(0)
    }
}
