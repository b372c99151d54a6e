//! Integers as a JavaScript peer reads them.
//!
//! cbor-x 1.6.0 decodes a CBOR integer with an 8-byte argument (anything
//! outside `[-2^32, 2^32)`) as a `BigInt`, not a `number`: `typeof` is
//! `'bigint'`, it cannot be mixed with numbers in arithmetic, and
//! ws-messaging's `validateId` refuses it. Worse, it decodes a negative
//! integer with a 4-byte argument of 2^31 or more (`-2^32..=-2^31-1`) wrong
//! (`~argument` on an int32: `3a 80000000`, -2147483649, reads as
//! 2147483647). cbor-x itself writes integers only within `[-2^31, 2^32)`
//! and every other number as a 64-bit float. [`JsNumbers`] does the same:
//! an integer outside that range but within `±2^53` (where a float holds it
//! exactly) is written as a float, so the JavaScript side sees the same
//! `number` JSON would give it. Integers beyond `2^53` stay integers (a
//! `BigInt` in JavaScript, the only exact representation there).
//! Everything else is forwarded unchanged.

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// Serializes the wrapped value with integers a JavaScript peer reads as numbers.
pub(crate) struct JsNumbers<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for JsNumbers<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Js(serializer))
    }
}

/// Largest magnitude a float holds exactly with all smaller integers.
const EXACT: u64 = 1 << 53;
/// Integers cbor-x decodes (correctly) as numbers.
const INT_MIN: i64 = -(1 << 31);
const INT_MAX: u64 = u32::MAX as u64;

/// Whether `v` should go out as a float.
fn float_u64(v: u64) -> bool {
    v > INT_MAX && v <= EXACT
}

fn float_i64(v: i64) -> bool {
    if v >= 0 {
        float_u64(v as u64)
    } else {
        v < INT_MIN && v.unsigned_abs() <= EXACT
    }
}

struct Js<S>(S);

/// ciborium's marker for a CBOR tag: `(tag number, value)` as a tuple variant.
fn is_cbor_tag(name: &str, variant: &str) -> bool {
    name == "@@TAG@@" && variant == "@@TAGGED@@"
}

impl<S: Serializer> Serializer for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Js<S::SerializeSeq>;
    type SerializeTuple = Js<S::SerializeTuple>;
    type SerializeTupleStruct = Js<S::SerializeTupleStruct>;
    type SerializeTupleVariant = TupleVariant<S::SerializeTupleVariant>;
    type SerializeMap = Js<S::SerializeMap>;
    type SerializeStruct = Js<S::SerializeStruct>;
    type SerializeStructVariant = Js<S::SerializeStructVariant>;

    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        if float_u64(v) {
            self.0.serialize_f64(v as f64)
        } else {
            self.0.serialize_u64(v)
        }
    }

    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        if float_i64(v) {
            self.0.serialize_f64(v as f64)
        } else {
            self.0.serialize_i64(v)
        }
    }

    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        match u64::try_from(v) {
            Ok(v) => self.serialize_u64(v),
            Err(_) => self.0.serialize_u128(v),
        }
    }

    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) if v > 0 => self.serialize_u128(v as u128),
            Err(_) => self.0.serialize_i128(v),
        }
    }

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.0.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.0.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.0.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.0.serialize_i32(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.0.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.0.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.0.serialize_u32(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.0.serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.0.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.0.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.0.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.0.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&JsNumbers(value))
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(self, name: &'static str, index: u32, variant: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &JsNumbers(value))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &JsNumbers(value))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Js)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Js)
    }
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Js)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let tag_number_next = is_cbor_tag(name, variant);
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(|inner| TupleVariant { inner, tag_number_next })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Js)
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Js)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(Js)
    }
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<S: SerializeSeq> SerializeSeq for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&JsNumbers(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: SerializeTuple> SerializeTuple for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&JsNumbers(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: SerializeTupleStruct> SerializeTupleStruct for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&JsNumbers(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// A tuple variant; for a CBOR tag the first field is the tag number,
/// which ciborium reads as a `u64` and must stay one.
struct TupleVariant<S> {
    inner: S,
    tag_number_next: bool,
}

impl<S: SerializeTupleVariant> SerializeTupleVariant for TupleVariant<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        if std::mem::take(&mut self.tag_number_next) {
            self.inner.serialize_field(value)
        } else {
            self.inner.serialize_field(&JsNumbers(value))
        }
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeMap> SerializeMap for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&JsNumbers(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&JsNumbers(value))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.0.serialize_entry(&JsNumbers(key), &JsNumbers(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: SerializeStruct> SerializeStruct for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(key, &JsNumbers(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: SerializeStructVariant> SerializeStructVariant for Js<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(key, &JsNumbers(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&JsNumbers(value), &mut out).unwrap();
        out
    }

    #[test]
    fn integers_cbor_x_misreads_become_floats_up_to_two_to_the_53() {
        assert_eq!(cbor(&u64::from(u32::MAX)), [0x1a, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(cbor(&i32::MIN), [0x3a, 0x7f, 0xff, 0xff, 0xff]);
        // cbor-x misreads 3a 80000000 as 2147483647: a float instead.
        assert_eq!(cbor(&(i64::from(i32::MIN) - 1)), cbor(&-2_147_483_649.0f64));
        // 2^32 as the shortest exact float (f32 here), which cbor-x reads as 4294967296.
        assert_eq!(cbor(&(1u64 << 32)), [0xfa, 0x4f, 0x80, 0, 0]);
        assert_eq!(cbor(&(-(1i64 << 32) - 1)), cbor(&(-4_294_967_297.0f64)));
        assert_eq!(cbor(&((1u64 << 53) - 1)), cbor(&9_007_199_254_740_991.0f64));
        assert_eq!(cbor(&(1i128 << 53)), cbor(&9_007_199_254_740_992.0f64));
        // Beyond 2^53 a float is no longer exact: the integer stays (a BigInt in JavaScript).
        assert_eq!(cbor(&((1u64 << 53) + 1))[0], 0x1b);
        assert_eq!(cbor(&i64::MIN)[0], 0x3b);
        assert_eq!(cbor(&u128::MAX)[0], 0xc2);
        // Nested values too, and CBOR tag numbers are left alone.
        assert_eq!(cbor(&vec![Some(1u64 << 40)]), [0x81, 0xfa, 0x53, 0x80, 0, 0]);
        let tagged = ciborium::Value::Tag(1 << 40, Box::new(ciborium::Value::Integer((1u64 << 40).into())));
        assert_eq!(cbor(&tagged), [0xdb, 0, 0, 1, 0, 0, 0, 0, 0, 0xfa, 0x53, 0x80, 0, 0]);
    }
}
