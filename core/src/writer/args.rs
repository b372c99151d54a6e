//! An argument list split into its arguments, for sequence formats (bincode,
//! protobuf) whose envelope frames each argument on its own.
//!
//! ```
//! use serde::Serialize;
//! use ws_messaging_core::writer::args::{split, ArgSink};
//!
//! /// Collects each argument's JSON text.
//! struct Texts(Vec<String>);
//!
//! impl ArgSink for Texts {
//!     type Error = serde_json::Error;
//!     fn arg<T: Serialize + ?Sized>(&mut self, _index: usize, value: &T) -> Result<(), Self::Error> {
//!         self.0.push(serde_json::to_string(value)?);
//!         Ok(())
//!     }
//! }
//!
//! let mut texts = Texts(Vec::new());
//! assert_eq!(split(&(1, "two"), &mut texts).unwrap(), 2);
//! assert_eq!(texts.0, ["1", r#""two""#]);
//! assert!(split(&5, &mut texts).is_err()); // not a list
//! ```

use serde::ser::{self, Impossible, Serialize, SerializeSeq, SerializeTuple, SerializeTupleStruct, Serializer};

/// Where a sequence format writes each argument of a list.
pub trait ArgSink {
    /// The error of the format's value serializer.
    type Error: ser::Error;

    /// Writes the argument at `index` (0 first).
    fn arg<T: Serialize + ?Sized>(&mut self, index: usize, value: &T) -> Result<(), Self::Error>;
}

/// Hands each element of `args` to `sink`, in order, and returns how many
/// there were. `args` is a sequence: a tuple, a `Vec`, a slice or a tuple
/// struct (a newtype around one is read through); `()` is no arguments.
/// Anything else is an error that says what it was.
pub fn split<A: Serialize + ?Sized, S: ArgSink>(args: &A, sink: &mut S) -> Result<usize, S::Error> {
    args.serialize(Splitter { sink })
}

fn not_a_list<E: ser::Error>(what: &str) -> E {
    E::custom(format_args!(
        "the arguments must be a list (a tuple, a Vec or a slice), not {what}"
    ))
}

struct Splitter<'a, S> {
    sink: &'a mut S,
}

/// The arguments seen so far.
struct Elements<'a, S> {
    sink: &'a mut S,
    count: usize,
}

impl<'a, S> Splitter<'a, S> {
    fn elements(self) -> Elements<'a, S> {
        Elements {
            sink: self.sink,
            count: 0,
        }
    }
}

impl<S: ArgSink> Elements<'_, S> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.sink.arg(self.count, value)?;
        self.count += 1;
        Ok(())
    }
}

/// The three list shapes serde has, each element an argument.
macro_rules! list {
    ($($shape:ident::$element:ident),+) => {
        $(impl<S: ArgSink> $shape for Elements<'_, S> {
            type Ok = usize;
            type Error = S::Error;
            fn $element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.push(value)
            }
            fn end(self) -> Result<usize, S::Error> {
                Ok(self.count)
            }
        })+
    };
}

list!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

/// Refuses each of these `Serializer` methods: not a list, but `$what`.
macro_rules! refuse {
    ($($what:literal: $($method:ident($($ty:ty),*)),+;)*) => {
        $($(fn $method(self, $(_: $ty),*) -> Result<usize, S::Error> {
            Err(not_a_list($what))
        })+)*
    };
}

impl<'a, S: ArgSink> Serializer for Splitter<'a, S> {
    type Ok = usize;
    type Error = S::Error;
    type SerializeSeq = Elements<'a, S>;
    type SerializeTuple = Elements<'a, S>;
    type SerializeTupleStruct = Elements<'a, S>;
    type SerializeTupleVariant = Impossible<usize, S::Error>;
    type SerializeMap = Impossible<usize, S::Error>;
    type SerializeStruct = Impossible<usize, S::Error>;
    type SerializeStructVariant = Impossible<usize, S::Error>;

    fn is_human_readable(&self) -> bool {
        false
    }

    refuse! {
        "a boolean": serialize_bool(bool);
        "an integer": serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
            serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
            serialize_u64(u64), serialize_u128(u128);
        "a number": serialize_f32(f32), serialize_f64(f64);
        "a char": serialize_char(char);
        "a string": serialize_str(&str);
        "bytes": serialize_bytes(&[u8]);
        "an option": serialize_none();
        "a unit struct": serialize_unit_struct(&'static str);
        "an enum": serialize_unit_variant(&'static str, u32, &'static str);
    }

    /// `()` is no arguments, however it reaches the codec.
    fn serialize_unit(self) -> Result<usize, S::Error> {
        Ok(0)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<usize, S::Error> {
        Err(not_a_list("an option"))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<usize, S::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<usize, S::Error> {
        Err(not_a_list("an enum"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a, S>, S::Error> {
        Ok(self.elements())
    }
    fn serialize_tuple(self, _: usize) -> Result<Elements<'a, S>, S::Error> {
        Ok(self.elements())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Elements<'a, S>, S::Error> {
        Ok(self.elements())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_list("an enum"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_a_list("a map"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, S::Error> {
        Err(not_a_list("a struct"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_a_list("an enum"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the arguments and keeps the error type serde needs.
    struct Count;

    impl ArgSink for Count {
        type Error = serde_json::Error;
        fn arg<T: Serialize + ?Sized>(&mut self, _: usize, _: &T) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// What `#[derive(Serialize)]` writes for `struct Pair(u8, &str)`.
    struct Pair(u8, &'static str);

    impl Serialize for Pair {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut fields = serializer.serialize_tuple_struct("Pair", 2)?;
            fields.serialize_field(&self.0)?;
            fields.serialize_field(&self.1)?;
            fields.end()
        }
    }

    /// What `#[derive(Serialize)]` writes for `struct Wrapped(Vec<u8>)`.
    struct Wrapped(Vec<u8>);

    impl Serialize for Wrapped {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_newtype_struct("Wrapped", &self.0)
        }
    }

    #[test]
    fn tuples_vecs_tuple_structs_newtypes_and_unit_are_argument_lists() {
        assert_eq!(split(&(1, "two", 3.0), &mut Count).unwrap(), 3);
        assert_eq!(split(&vec![1, 2], &mut Count).unwrap(), 2);
        assert_eq!(split(&[7u8; 4][..], &mut Count).unwrap(), 4);
        assert_eq!(split(&Pair(1, "b"), &mut Count).unwrap(), 2);
        assert_eq!(split(&Wrapped(vec![1, 2, 3]), &mut Count).unwrap(), 3);
        assert_eq!(split(&(), &mut Count).unwrap(), 0);
    }

    #[test]
    fn anything_else_is_refused_with_what_it_was() {
        let error = split(&"text", &mut Count).unwrap_err().to_string();
        assert!(
            error.contains("must be a list") && error.contains("a string"),
            "{error}"
        );
        let error = split(&Some(1), &mut Count).unwrap_err().to_string();
        assert!(error.contains("an option"), "{error}");
        let error = split(&std::collections::BTreeMap::from([(1, 2)]), &mut Count)
            .unwrap_err()
            .to_string();
        assert!(error.contains("a map"), "{error}");
    }
}
