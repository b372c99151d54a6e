//! Serializers from serde values to protobuf `bytes`.
//!
//! [`ValueSerializer`] writes one value: bytes (`Proto<M>` serializes as its
//! message's encoding), a string as UTF-8, a sequence of `u8` as those bytes,
//! nothing (`()`, `None`, an empty map or struct) as no bytes. Anything else
//! (numbers, booleans, maps and structs with fields, enums) is an error:
//! protobuf has no self-describing values, so those belong in a message.
//!
//! [`ArgFields`] writes an argument list (a sequence, split by
//! [`split`](ws_messaging_core::writer::args::split)) as one `bytes` value per element: the envelope's
//! `repeated bytes args`, each element framed as field 2 of `Message` (tag,
//! length, bytes) straight into the output.

use serde::ser::{self, Impossible, Serialize};
use ws_messaging_core::writer::args::ArgSink;

use crate::error::{ValueError, SHAPES};

fn unsupported(what: &str) -> ValueError {
    ValueError(format!(
        "cannot encode {what} as a protobuf value ({SHAPES}); put it in a prost message"
    ))
}

/// Writes one value into `out`.
pub(crate) struct ValueSerializer<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

/// Rejects every scalar method of `Serializer` with `unsupported`.
macro_rules! reject_scalars {
    ($($method:ident($ty:ty) => $what:expr;)*) => {
        $(
            fn $method(self, _: $ty) -> Result<Self::Ok, ValueError> {
                Err(unsupported($what))
            }
        )*
    };
}

impl<'a> ser::Serializer for ValueSerializer<'a> {
    type Ok = ();
    type Error = ValueError;
    type SerializeSeq = ByteSeq<'a>;
    type SerializeTuple = ByteSeq<'a>;
    type SerializeTupleStruct = ByteSeq<'a>;
    type SerializeTupleVariant = Impossible<(), ValueError>;
    type SerializeMap = Empty;
    type SerializeStruct = Empty;
    type SerializeStructVariant = Impossible<(), ValueError>;

    fn is_human_readable(&self) -> bool {
        false
    }

    reject_scalars! {
        serialize_bool(bool) => "a boolean";
        serialize_i8(i8) => "an integer";
        serialize_i16(i16) => "an integer";
        serialize_i32(i32) => "an integer";
        serialize_i64(i64) => "an integer";
        serialize_i128(i128) => "an integer";
        serialize_u8(u8) => "an integer";
        serialize_u16(u16) => "an integer";
        serialize_u32(u32) => "an integer";
        serialize_u64(u64) => "an integer";
        serialize_u128(u128) => "an integer";
        serialize_f32(f32) => "a number";
        serialize_f64(f64) => "a number";
    }

    fn serialize_char(self, v: char) -> Result<(), ValueError> {
        self.out.extend_from_slice(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), ValueError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), ValueError> {
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), ValueError> {
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), ValueError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), ValueError> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), ValueError> {
        Ok(())
    }

    fn serialize_unit_variant(self, name: &'static str, _: u32, variant: &'static str) -> Result<(), ValueError> {
        Err(unsupported(&format!("the enum variant {name}::{variant}")))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<(), ValueError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<(), ValueError> {
        Err(unsupported(&format!("the enum variant {name}::{variant}")))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<ByteSeq<'a>, ValueError> {
        Ok(ByteSeq { out: self.out })
    }

    fn serialize_tuple(self, _: usize) -> Result<ByteSeq<'a>, ValueError> {
        Ok(ByteSeq { out: self.out })
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<ByteSeq<'a>, ValueError> {
        Ok(ByteSeq { out: self.out })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        Err(unsupported(&format!("the enum variant {name}::{variant}")))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Empty, ValueError> {
        Ok(Empty)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Empty, ValueError> {
        Ok(Empty)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        Err(unsupported(&format!("the enum variant {name}::{variant}")))
    }
}

/// A sequence value: its elements must be `u8`s, written as they are.
pub(crate) struct ByteSeq<'a> {
    out: &'a mut Vec<u8>,
}

impl ByteSeq<'_> {
    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ValueError> {
        let byte = value.serialize(ByteElement)?;
        self.out.push(byte);
        Ok(())
    }
}

impl ser::SerializeSeq for ByteSeq<'_> {
    type Ok = ();
    type Error = ValueError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }
    fn end(self) -> Result<(), ValueError> {
        Ok(())
    }
}

impl ser::SerializeTuple for ByteSeq<'_> {
    type Ok = ();
    type Error = ValueError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }
    fn end(self) -> Result<(), ValueError> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for ByteSeq<'_> {
    type Ok = ();
    type Error = ValueError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }
    fn end(self) -> Result<(), ValueError> {
        Ok(())
    }
}

/// A map or struct value: only an empty one (the empty message) encodes.
pub(crate) struct Empty;

fn not_empty() -> ValueError {
    unsupported("a map or struct with fields")
}

impl ser::SerializeMap for Empty {
    type Ok = ();
    type Error = ValueError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, _: &T) -> Result<(), ValueError> {
        Err(not_empty())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, _: &T) -> Result<(), ValueError> {
        Err(not_empty())
    }
    fn end(self) -> Result<(), ValueError> {
        Ok(())
    }
}

impl ser::SerializeStruct for Empty {
    type Ok = ();
    type Error = ValueError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &'static str, _: &T) -> Result<(), ValueError> {
        Err(not_empty())
    }
    fn end(self) -> Result<(), ValueError> {
        Ok(())
    }
}

/// An element of a sequence value: a `u8` and nothing else.
struct ByteElement;

fn not_a_byte(what: &str) -> ValueError {
    ValueError(format!(
        "cannot encode a sequence of {what} as a protobuf value: a sequence must hold bytes (u8); \
         put a list in a prost message (`repeated`)"
    ))
}

macro_rules! reject_element_scalars {
    ($($method:ident($ty:ty) => $what:expr;)*) => {
        $(
            fn $method(self, _: $ty) -> Result<u8, ValueError> {
                Err(not_a_byte($what))
            }
        )*
    };
}

impl ser::Serializer for ByteElement {
    type Ok = u8;
    type Error = ValueError;
    type SerializeSeq = Impossible<u8, ValueError>;
    type SerializeTuple = Impossible<u8, ValueError>;
    type SerializeTupleStruct = Impossible<u8, ValueError>;
    type SerializeTupleVariant = Impossible<u8, ValueError>;
    type SerializeMap = Impossible<u8, ValueError>;
    type SerializeStruct = Impossible<u8, ValueError>;
    type SerializeStructVariant = Impossible<u8, ValueError>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_u8(self, v: u8) -> Result<u8, ValueError> {
        Ok(v)
    }

    reject_element_scalars! {
        serialize_bool(bool) => "booleans";
        serialize_i8(i8) => "integers other than u8";
        serialize_i16(i16) => "integers other than u8";
        serialize_i32(i32) => "integers other than u8";
        serialize_i64(i64) => "integers other than u8";
        serialize_i128(i128) => "integers other than u8";
        serialize_u16(u16) => "integers other than u8";
        serialize_u32(u32) => "integers other than u8";
        serialize_u64(u64) => "integers other than u8";
        serialize_u128(u128) => "integers other than u8";
        serialize_f32(f32) => "numbers";
        serialize_f64(f64) => "numbers";
        serialize_char(char) => "chars";
        serialize_str(&str) => "strings";
        serialize_bytes(&[u8]) => "byte strings";
        serialize_unit_struct(&'static str) => "unit structs";
    }

    fn serialize_none(self) -> Result<u8, ValueError> {
        Err(not_a_byte("options"))
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<u8, ValueError> {
        Err(not_a_byte("options"))
    }
    fn serialize_unit(self) -> Result<u8, ValueError> {
        Err(not_a_byte("units"))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<u8, ValueError> {
        Err(not_a_byte("enums"))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<u8, ValueError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, ValueError> {
        Err(not_a_byte("enums"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, ValueError> {
        Err(not_a_byte("sequences"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, ValueError> {
        Err(not_a_byte("tuples"))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, ValueError> {
        Err(not_a_byte("tuples"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        Err(not_a_byte("enums"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, ValueError> {
        Err(not_a_byte("maps"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, ValueError> {
        Err(not_a_byte("structs"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        Err(not_a_byte("enums"))
    }
}

/// Writes each argument of a list as one `args` field of `Message` (see
/// [`split`](ws_messaging_core::writer::args::split)).
pub(crate) struct ArgFields<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

/// The tag of `Message.args`: field 2, length-delimited.
const ARGS_TAG: u8 = 2 << 3 | 2;

impl ArgSink for ArgFields<'_> {
    type Error = ValueError;

    /// Writes the value as an `args` field, its length filled in after it
    /// (see [`Delimited`]).
    fn arg<T: ?Sized + Serialize>(&mut self, index: usize, value: &T) -> Result<(), ValueError> {
        let field = Delimited::open(self.out, ARGS_TAG);
        value
            .serialize(ValueSerializer { out: self.out })
            .map_err(|e| ValueError(format!("argument {index}: {e}")))?;
        field.close(self.out);
        Ok(())
    }
}

/// A field's key byte and a varint after it (a length or a value): the
/// bytes prost writes in front of a field's content.
pub(crate) struct Head {
    bytes: [u8; 11],
    len: usize,
}

impl Head {
    #[inline]
    pub(crate) fn new(tag: u8, value: u64) -> Self {
        // The varint as prost's `encode_varint` writes it (seven bits a
        // byte, low first), without its `BufMut` steps per byte.
        let mut bytes = [tag; 11];
        let (mut value, mut len) = (value, 1);
        while value >= 0x80 {
            bytes[len] = value as u8 | 0x80;
            value >>= 7;
            len += 1;
        }
        bytes[len] = value as u8;
        Head { bytes, len: len + 1 }
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Writes the key `tag` and the varint `value` at the end of `out`, a
    /// byte at a time (a small copy through `extend_from_slice` costs a
    /// call).
    #[inline]
    pub(crate) fn put(out: &mut Vec<u8>, tag: u8, mut value: u64) {
        out.push(tag);
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
}

/// A length-delimited field being written in place: its key byte and a
/// one-byte length go in front of the content, and the length is filled in
/// once the content is written. Only content of 128 bytes or more, whose
/// length takes more than one byte, is moved along to make room.
pub(crate) struct Delimited {
    at: usize,
}

impl Delimited {
    /// Writes the key `tag` and room for a one-byte length.
    #[inline]
    pub(crate) fn open(out: &mut Vec<u8>, tag: u8) -> Self {
        let at = out.len();
        out.extend_from_slice(&[tag, 0]);
        Delimited { at }
    }

    /// Writes the length of what `out` took since [`open`](Self::open).
    #[inline]
    pub(crate) fn close(self, out: &mut Vec<u8>) {
        let content = self.at + 2;
        let end = out.len();
        let len = end - content;
        if len < 0x80 {
            out[self.at + 1] = len as u8;
            return;
        }
        let head = Head::new(out[self.at], len as u64);
        let wider = head.len - 2;
        out.resize(end + wider, 0);
        out.copy_within(content..end, content + wider);
        out[self.at..self.at + head.len].copy_from_slice(head.bytes());
    }
}
