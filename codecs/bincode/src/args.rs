//! Encodes an argument sequence as `count` + length-prefixed values.

use serde::ser::{self, Impossible, Serialize, SerializeSeq, SerializeTuple, Serializer};
use ws_messaging_core::CodecError;

use crate::config;

/// Writes `args` (a serde sequence) into `out` as a `u32` count followed by
/// each element's `u32` length and bincode encoding.
pub(crate) fn encode_args<A: Serialize + ?Sized>(args: &A, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let count = args
        .serialize(ArgsSerializer { out })
        .map_err(|e| CodecError::encode(e.0))?;
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

#[derive(Debug)]
pub(crate) struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct ArgsSerializer<'a> {
    out: &'a mut Vec<u8>,
}

struct Elements<'a> {
    out: &'a mut Vec<u8>,
    count: u32,
}

impl Elements<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let len_at = self.out.len();
        self.out.extend_from_slice(&0u32.to_le_bytes());
        bincode::serde::encode_into_std_write(value, &mut *self.out, config()).map_err(|e| Error(e.to_string()))?;
        let len = u32::try_from(self.out.len() - len_at - 4).map_err(|_| Error("argument too large".into()))?;
        self.out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        Ok(())
    }
}

impl SerializeSeq for Elements<'_> {
    type Ok = u32;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<u32, Error> {
        Ok(self.count)
    }
}

impl SerializeTuple for Elements<'_> {
    type Ok = u32;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<u32, Error> {
        Ok(self.count)
    }
}

fn not_a_sequence<T>() -> Result<T, Error> {
    Err(Error(
        "the arguments must be a sequence (a tuple, a Vec or a slice)".into(),
    ))
}

macro_rules! refuse {
    ($($method:ident($($ty:ty),*)),+ $(,)?) => {
        $(fn $method(self, $(_: $ty),*) -> Result<u32, Error> { not_a_sequence() })+
    };
}

impl<'a> Serializer for ArgsSerializer<'a> {
    type Ok = u32;
    type Error = Error;
    type SerializeSeq = Elements<'a>;
    type SerializeTuple = Elements<'a>;
    type SerializeTupleStruct = Impossible<u32, Error>;
    type SerializeTupleVariant = Impossible<u32, Error>;
    type SerializeMap = Impossible<u32, Error>;
    type SerializeStruct = Impossible<u32, Error>;
    type SerializeStructVariant = Impossible<u32, Error>;

    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a>, Error> {
        Ok(Elements {
            out: self.out,
            count: 0,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<Elements<'a>, Error> {
        Ok(Elements {
            out: self.out,
            count: 0,
        })
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    /// `()` is an empty argument list.
    fn serialize_unit(self) -> Result<u32, Error> {
        Ok(0)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u32, Error> {
        not_a_sequence()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<u32, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u32, Error> {
        not_a_sequence()
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        not_a_sequence()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        not_a_sequence()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        not_a_sequence()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        not_a_sequence()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        not_a_sequence()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_sequences_are_refused() {
        let mut out = Vec::new();
        assert!(super::encode_args(&5u32, &mut out).is_err());
    }
}
