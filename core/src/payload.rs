//! Typed payloads: argument lists that encode as the envelope's `args` array,
//! and decode, one argument at a time, straight into a handler's types.

use bytes::Bytes;
use serde::de::value::UnitDeserializer;
use serde::de::DeserializeOwned;
use serde::ser::SerializeTuple;
use serde::{Serialize, Serializer};

use crate::codec::Codec;
use crate::envelope::ArgList;
use crate::error::{CodecError, SharedError};

/// A list of positional arguments: a tuple (`()`, `(a,)`, `(a, b)`, ... up to
/// 12 elements), a `Vec<T>` or a slice of serde values.
///
/// ```
/// fn takes_args<A: ws_messaging_core::Args>(_: &A) {}
/// takes_args(&(1, "two", 3.5));
/// takes_args(&vec![1, 2, 3]);
/// takes_args(&());
/// ```
pub trait Args: Send + Sync {
    /// Serializes the arguments as one sequence (the envelope's `args`).
    fn serialize_args<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
}

impl<T: Serialize + Send + Sync> Args for Vec<T> {
    fn serialize_args<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }
}

impl<T: Serialize + Send + Sync> Args for [T] {
    fn serialize_args<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }
}

impl<A: Args + ?Sized> Args for &A {
    fn serialize_args<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize_args(serializer)
    }
}

/// No arguments: an empty list (serde would write `()` as `null`).
impl Args for () {
    fn serialize_args<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_tuple(0)?.end()
    }
}

/// Decodes a received argument list into a handler's parameter type.
///
/// Implemented for tuples of serde types (each element decoded from its own
/// raw argument), for `Vec<T>` (every argument as a `T`, for variadic
/// procedures) and for [`RawArgs`] (no decoding at all).
///
/// As with JavaScript functions, extra arguments are ignored and a missing
/// one decodes as if it were absent: an `Option<T>` becomes `None`, `()`
/// stays `()`, and any other type is an error.
pub trait FromArgs: Sized + Send + 'static {
    /// Decodes `args` with `codec`.
    fn from_args<C: Codec>(codec: &C, args: ArgList) -> Result<Self, CodecError>;
}

/// Decodes argument `index`, or the absent value when there is none.
#[inline]
fn arg<C: Codec, T: DeserializeOwned>(codec: &C, args: &ArgList, index: usize) -> Result<T, CodecError> {
    match args.get(index) {
        Some(raw) => if args.is_enveloped() {
            codec.decode_enveloped(raw)
        } else {
            codec.decode_value(raw)
        }
        .map_err(|e| CodecError::decode(ArgumentError::Invalid(index, e.cause().clone()))),
        None => T::deserialize(UnitDeserializer::<serde::de::value::Error>::new())
            .map_err(|e| CodecError::decode(ArgumentError::Missing(index, e))),
    }
}

/// Which argument did not decode, and why.
#[derive(Debug, thiserror::Error)]
enum ArgumentError {
    #[error("argument {0}: {1}")]
    Invalid(usize, #[source] SharedError),
    #[error("argument {0} is missing: {1}")]
    Missing(usize, #[source] serde::de::value::Error),
}

/// The arguments exactly as received, each still encoded in the codec's
/// format: the escape hatch for handlers that decode (or forward) them
/// themselves (with [`Codec::decode_value`], or ws-messaging's
/// `Endpoint::decode`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawArgs(pub ArgList);

/// A value already encoded in the endpoint's codec, sent exactly as it is:
/// a procedure that returns one answers with these bytes, never decoding
/// nor re-encoding them. The usual source is an argument received in
/// [`RawArgs`]: a procedure that forwards what it was given costs no more
/// than the envelope around it.
///
/// With ws-messaging, a procedure `first(a, ...)` that answers with its
/// first argument, untouched, is registered as
///
/// ```text
/// endpoint.register("first", |RawArgs(args)| async move {
///     args.into_iter().next().map(RawValue).ok_or(HandlerError::new("no argument"))
/// })
/// ```
///
/// and here is what happens to the bytes, step by step with a codec:
///
/// ```
/// use bytes::Bytes;
/// use ws_messaging_core::envelope::validate;
/// use ws_messaging_core::{Codec, FromArgs, Frame, RawArgs, RawValue};
/// use ws_messaging_json::Json;
///
/// let call = Bytes::from_static(br#"{"name":"first","args":[{"a":[1,2]},3],"id":9}"#);
/// let Frame::Message { args, .. } = validate(Json.decode_envelope(&call).unwrap(), true).unwrap() else {
///     unreachable!()
/// };
/// let RawArgs(args) = RawArgs::from_args(&Json, args).unwrap();
/// let RawValue(first) = args.into_iter().next().map(RawValue).unwrap();
/// let mut reply = Vec::new();
/// Json.encode_raw_reply(9, &first, &mut reply).unwrap();
/// assert_eq!(reply, br#"{"id":9,"result":{"a":[1,2]}}"#);
/// ```
///
/// The bytes must hold exactly one value in the codec's format (what
/// `RawArgs` and [`Codec::encode_value`] give). A `RawValue` is a whole
/// result only: nested inside another value it does not serialize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue(pub Bytes);

impl Serialize for RawValue {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a RawValue is sent only as a procedure's whole result",
        ))
    }
}

impl FromArgs for RawArgs {
    fn from_args<C: Codec>(_: &C, args: ArgList) -> Result<Self, CodecError> {
        Ok(RawArgs(args))
    }
}

impl<T: DeserializeOwned + Send + 'static> FromArgs for Vec<T> {
    fn from_args<C: Codec>(codec: &C, args: ArgList) -> Result<Self, CodecError> {
        (0..args.len()).map(|i| arg(codec, &args, i)).collect()
    }
}

impl FromArgs for () {
    fn from_args<C: Codec>(_: &C, _: ArgList) -> Result<Self, CodecError> {
        Ok(())
    }
}

macro_rules! tuple_args {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Serialize + Send + Sync),+> Args for ($($t,)+) {
            fn serialize_args<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.serialize(serializer)
            }
        }

        impl<$($t: DeserializeOwned + Send + 'static),+> FromArgs for ($($t,)+) {
            fn from_args<C: Codec>(codec: &C, args: ArgList) -> Result<Self, CodecError> {
                Ok(($(arg::<C, $t>(codec, &args, $i)?,)+))
            }
        }
    };
}

tuple_args!(A 0);
tuple_args!(A 0, B 1);
tuple_args!(A 0, B 1, D 2);
tuple_args!(A 0, B 1, D 2, E 3);
tuple_args!(A 0, B 1, D 2, E 3, F 4);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5, H 6);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5, H 6, I 7);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5, H 6, I 7, J 8);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5, H 6, I 7, J 8, K 9);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5, H 6, I 7, J 8, K 9, L 10);
tuple_args!(A 0, B 1, D 2, E 3, F 4, G 5, H 6, I 7, J 8, K 9, L 10, M 11);
