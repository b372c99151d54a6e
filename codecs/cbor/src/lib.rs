//! The CBOR codec for ws-messaging, sent in binary frames and
//! wire-compatible with a JavaScript peer that uses
//! [cbor-x](https://www.npmjs.com/package/cbor-x)'s `encode` and `decode`,
//! with cbor-x's default options, as its encoder and decoder:
//!
//! ```js
//! const { encode, decode } = require('cbor-x')
//! const codec = { encoder: encode, decoder: decode }
//! const client = new Client(url, { ...codec })            // ws-messaging/client
//! const server = new Server({ port }, { connectionHook }, codec)
//! ```
//!
//! (A browser client receives an `ArrayBuffer`: use
//! `decoder: data => decode(new Uint8Array(data))`.) cbor-x's defaults
//! write objects as plain CBOR maps; do not turn on its `useRecords`,
//! `structures` or `pack` options, which write cbor-x-specific tags.
//!
//! Envelopes are maps with the text keys `name`, `args`, `id`, `result`
//! and `error`. Values are encoded with [`ciborium`]; Rust structs become
//! maps with named keys, as a JavaScript object would.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use ws_messaging_core::{envelope::validate, Codec, Frame};
//! use ws_messaging_cbor::Cbor;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Upload {
//!     name: String,
//!     #[serde(with = "serde_bytes")]
//!     data: Vec<u8>,
//! }
//!
//! let upload = Upload { name: "a.bin".into(), data: vec![0, 1, 255] };
//! let mut out = Vec::new();
//! Cbor.encode_message("upload", &(&upload, 7), Some(3), &mut out).unwrap();
//! // {"name":"upload","args":[{"name":"a.bin","data":h'0001ff'},7],"id":3}
//! assert_eq!(&out[..6], b"\xa3\x64name");
//!
//! let raw = Cbor.decode_envelope(&out.into()).unwrap();
//! let Frame::Message { name, args, id } = validate(raw, true).unwrap() else { panic!() };
//! assert_eq!((name.as_str(), args.len(), id), ("upload", 2, Some(3)));
//! // Each argument is a zero-copy slice of the frame, decoded on demand.
//! assert_eq!(Cbor.decode_value::<Upload>(&args[0]).unwrap(), upload);
//! assert_eq!(Cbor.decode_value::<f64>(&args[1]).unwrap(), 7.0);
//! ```
//!
//! # What cbor-x writes, and how this codec meets it
//! - **Objects** are maps, with a 16-bit size (`b9 00 02` for two keys)
//!   where a canonical encoder would use one byte; both forms are read.
//!   Non-string keys are read too (cbor-x turns number keys into strings).
//! - **Bytes**: a Node.js `Buffer` is a plain byte string, which cbor-x
//!   decodes back to a `Buffer`; this codec writes bytes that way. On the
//!   Rust side use [`serde_bytes`](https://docs.rs/serde_bytes)
//!   (`serde_bytes::ByteBuf`, or `#[serde(with = "serde_bytes")]` on a
//!   `Vec<u8>`): a plain `Vec<u8>` serializes as an array of numbers. A
//!   plain `Uint8Array` travels under tag 64 (RFC 8746): `serde_bytes` reads
//!   it like a byte string, and [`Value`] keeps the tag, so echoing it gives
//!   JavaScript back a `Uint8Array`.
//! - **Numbers**: cbor-x writes whole numbers in `[-2^31, 2^32)` as
//!   integers and every other number as a 64-bit float; it decodes an
//!   integer with an 8-byte argument as a `BigInt`, and misreads negative
//!   integers below `-2^31` written with a 4-byte argument. Decoding here
//!   accepts a float holding a whole number where an integer is expected
//!   and an integer where a float is expected; encoding writes integers
//!   outside `[-2^31, 2^32)` but within `±2^53` as floats, so that
//!   JavaScript gets the `number` JSON would give it (beyond `2^53` an
//!   integer stays an integer: a `BigInt` there, its only exact form).
//!   Floats are written in the shortest width that holds them exactly;
//!   cbor-x reads all three.
//! - **`undefined`** (simple value 23) decodes like `null`: `None`, `()`,
//!   `Value::Null`. JSON turns `undefined` in an array into `null` too.
//! - **Tags**: cbor-x reads a tagged value as an object (a `Date`, a typed
//!   array, its `Tag` class...), so a tagged `name`, `id` or `args` is not a
//!   string, number or array to the envelope rules; only the self-describe
//!   tag 55799 is read through, as cbor-x does.
//!
//! # Limits
//! Decoding checks every length a frame claims against the bytes actually
//! there before using it, never allocates in proportion to a claim, and
//! refuses frames nested deeper than [`MAX_DEPTH`] levels (arrays, maps and
//! tags), followed by trailing bytes, or holding text that is not UTF-8.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod js_numbers;
mod reader;

use bytes::Bytes;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde::Serialize;
use ws_messaging_core::envelope::RawEnvelope;
use ws_messaging_core::writer::{self, MapWriter};
use ws_messaging_core::{Codec, CodecError, FrameKind};

use js_numbers::JsNumbers;
pub use reader::MAX_DEPTH;

/// Any CBOR value (`ciborium::Value`): what a handler takes to accept, or
/// echo, whatever a peer sends, byte strings and tags included.
pub type Value = ciborium::Value;

/// The CBOR codec (ciborium). Zero-sized; `Cbor::default()` or `Cbor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

/// Serializes `value` at the end of `out`; on error `out` is left as it was.
fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let len = out.len();
    ciborium::into_writer(&JsNumbers(value), &mut *out).map_err(|e| {
        out.truncate(len);
        match e {
            ciborium::ser::Error::Value(message) => CodecError::encode(message),
            ciborium::ser::Error::Io(e) => CodecError::encode(e),
        }
    })
}

/// Decodes the wrapped type through [`ws_messaging_core::lenient::Lenient`].
struct LenientValue<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for LenientValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(ws_messaging_core::lenient::Lenient(deserializer)).map(LenientValue)
    }
}

fn decode_error(e: ciborium::de::Error<std::io::Error>) -> CodecError {
    use ciborium::de::Error;
    match e {
        Error::Semantic(_, message) => CodecError::decode(message),
        Error::Syntax(at) => CodecError::decode(format!("malformed CBOR at byte {at}")),
        Error::Io(e) => CodecError::decode(e),
        Error::RecursionLimitExceeded => CodecError::decode("CBOR nested too deep"),
    }
}

/// The envelope's primitives, with the shortest heads, as ciborium writes
/// them.
struct CborWriter;

impl writer::Format for CborWriter {
    #[inline]
    fn map_head(out: &mut Vec<u8>, len: usize) {
        head(out, MAP, len as u64);
    }

    #[inline]
    fn str(out: &mut Vec<u8>, text: &str) {
        head(out, TEXT, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }

    /// As [`encode`] writes it: an integer, or beyond `u32::MAX` the
    /// number JavaScript would get (see [`js_numbers`]).
    #[inline]
    fn uint(out: &mut Vec<u8>, value: u64) {
        if value <= u64::from(u32::MAX) {
            head(out, UNSIGNED, value);
        } else {
            // A `u64` always serializes.
            let _ = encode(&value, out);
        }
    }
}

/// Major types.
const UNSIGNED: u8 = 0;
const TEXT: u8 = 3 << 5;
const MAP: u8 = 5 << 5;

/// An item's head: its major type and `value` in the fewest bytes.
#[inline]
fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    match value {
        0..24 => out.push(major | value as u8),
        24..0x100 => out.extend_from_slice(&[major | 24, value as u8]),
        0x100..0x1_0000 => {
            out.push(major | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..0x1_0000_0000 => {
            out.push(major | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

impl Codec for Cbor {
    const FRAME_KIND: FrameKind = FrameKind::Binary;
    const MAP_WRITER: Option<MapWriter> = Some(MapWriter::of::<CborWriter>());

    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        encode(value, out)
    }

    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        // Well-formed, one item, within the nesting limit: after this check
        // no length in `data` can claim more than `data` holds.
        ws_messaging_core::reader::check_value::<reader::CborFormat>(data)?;
        self.decode_enveloped(data)
    }

    /// The envelope reader checked `data` as [`decode_value`](Codec::decode_value)
    /// does: it is decoded without that second walk. (On other input
    /// ciborium still fails cleanly: it reads claimed lengths in bounded
    /// chunks, and nesting is limited to [`MAX_DEPTH`] here too.)
    fn decode_enveloped<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        ciborium::de::from_reader_with_recursion_limit::<LenientValue<T>, _>(data, MAX_DEPTH)
            .map(|value| value.0)
            .map_err(decode_error)
    }

    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        ws_messaging_core::reader::envelope::<reader::CborFormat>(frame)
    }
}
