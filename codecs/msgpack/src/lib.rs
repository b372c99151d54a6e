//! The MessagePack codec for ws-messaging, sent in binary frames and
//! wire-compatible with a JavaScript peer that uses
//! [msgpack-lite](https://www.npmjs.com/package/msgpack-lite) as its
//! encoder and decoder (the pairing the ws-messaging package's own tests use):
//!
//! ```js
//! const msgpack = require('msgpack-lite')
//! const codec = { encoder: msgpack.encode, decoder: msgpack.decode }
//! const client = new Client(url, { ...codec })            // ws-messaging/client
//! const server = new Server({ port }, { connectionHook }, codec)
//! ```
//!
//! (A browser client receives an `ArrayBuffer`: use
//! `decoder: data => msgpack.decode(new Uint8Array(data))`.)
//!
//! Envelopes are maps with the string keys `name`, `args`, `id`, `result`
//! and `error`, in the key order `JSON.stringify` would write. Values are
//! encoded with [`rmp_serde`]; Rust structs become maps with named keys, as
//! a JavaScript object would.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use ws_messaging_core::{envelope::validate, Codec, Frame};
//! use ws_messaging_msgpack::MsgPack;
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
//! MsgPack.encode_message("upload", &(&upload, 7), Some(3), &mut out).unwrap();
//! // {"name":"upload","args":[{"name":"a.bin","data":<bin 00 01 ff>},7],"id":3}
//! assert_eq!(&out[..6], b"\x83\xa4name");
//!
//! let raw = MsgPack.decode_envelope(&out.into()).unwrap();
//! let Frame::Message { name, args, id } = validate(raw, true).unwrap() else { panic!() };
//! assert_eq!((name.as_str(), args.len(), id), ("upload", 2, Some(3)));
//! // Each argument is a zero-copy slice of the frame, decoded on demand.
//! assert_eq!(MsgPack.decode_value::<Upload>(&args[0]).unwrap(), upload);
//! assert_eq!(MsgPack.decode_value::<f64>(&args[1]).unwrap(), 7.0);
//! ```
//!
//! # Binary data
//! Bytes travel as the MessagePack `bin` type, which msgpack-lite decodes
//! to a Node.js `Buffer` and encodes a `Buffer` as. On the Rust side, use
//! [`serde_bytes`](https://docs.rs/serde_bytes) (`serde_bytes::ByteBuf`,
//! or `#[serde(with = "serde_bytes")]` on a `Vec<u8>` field): a plain
//! `Vec<u8>` serializes as an array of numbers. msgpack-lite sends a plain
//! `Uint8Array` (not a `Buffer`) as the ext type 0x12 instead; [`Value`]
//! keeps it as `Value::Ext(0x12, bytes)`, which msgpack-lite turns back
//! into a `Uint8Array`.
//!
//! # Numbers
//! JavaScript has one number type: msgpack-lite writes whole numbers up to
//! 32 bits as integers and every other number (`2 ** 40`, `Date.now()`,
//! `0.5`) as a 64-bit float. Decoding therefore accepts a float holding a
//! whole number where an integer is expected (`u64`, `i32`...) and an
//! integer where a float is expected, as a JSON peer would; a fraction is
//! still an error for an integer type. Integers beyond 2^53 lose precision
//! in JavaScript, as they do with JSON.
//!
//! # Limits
//! Decoding checks every length a frame claims against the bytes actually
//! there before using it, never allocates in proportion to a claim, and
//! refuses frames nested deeper than [`MAX_DEPTH`] levels or followed by
//! trailing bytes.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod reader;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use ws_messaging_core::envelope::RawEnvelope;
use ws_messaging_core::writer::{self, MapWriter};
use ws_messaging_core::{Codec, CodecError, FrameKind};

pub use reader::MAX_DEPTH;

/// Any MessagePack value (`rmpv::Value`): what a handler takes to accept,
/// or echo, whatever a peer sends, binary and ext values included.
pub type Value = rmpv::Value;

/// The MessagePack codec (rmp-serde). Zero-sized; `MsgPack::default()` or
/// `MsgPack`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgPack;

/// Serializes `value` at the end of `out` with structs as maps; on error
/// `out` is left as it was.
fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let len = out.len();
    let mut serializer = rmp_serde::Serializer::new(&mut *out).with_struct_map();
    value.serialize(&mut serializer).map_err(|e| {
        out.truncate(len);
        CodecError::encode(e)
    })
}

/// The envelope's primitives, in the compact forms rmp-serde writes
/// (writing into a `Vec` cannot fail).
struct MsgPackWriter;

impl writer::Format for MsgPackWriter {
    #[inline]
    fn map_head(out: &mut Vec<u8>, len: usize) {
        let _ = rmp::encode::write_map_len(out, len as u32);
    }

    #[inline]
    fn str(out: &mut Vec<u8>, text: &str) {
        let _ = rmp::encode::write_str(out, text);
    }

    #[inline]
    fn uint(out: &mut Vec<u8>, value: u64) {
        let _ = rmp::encode::write_uint(out, value);
    }
}

impl Codec for MsgPack {
    const FRAME_KIND: FrameKind = FrameKind::Binary;
    const MAP_WRITER: Option<MapWriter> = Some(MapWriter::of::<MsgPackWriter>());

    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        encode(value, out)
    }

    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        // Well-formed, one value, within the nesting limit: after this check
        // no length in `data` can claim more than `data` holds.
        ws_messaging_core::reader::check_value::<reader::MsgPackFormat>(data)?;
        self.decode_enveloped(data)
    }

    /// The envelope reader checked `data` as [`decode_value`](Codec::decode_value)
    /// does: it is decoded without that second walk. (On other input
    /// rmp-serde still fails cleanly: it checks lengths against the bytes
    /// there, and nesting is limited to [`MAX_DEPTH`] here too.)
    fn decode_enveloped<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        let mut deserializer = rmp_serde::Deserializer::from_read_ref(data);
        // rmp-serde refuses a value at its limit: one more lets MAX_DEPTH in.
        deserializer.set_max_depth(MAX_DEPTH + 1);
        T::deserialize(ws_messaging_core::lenient::Lenient(&mut deserializer)).map_err(CodecError::decode)
    }

    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        ws_messaging_core::reader::envelope::<reader::MsgPackFormat>(frame)
    }
}
