//! The writer kit: envelope writers written once, over a format's
//! primitives, as [`reader`](crate::reader) is for reading.
//!
//! - **Map-shaped formats** (JSON, MessagePack, CBOR), whose envelope is the
//!   map `{name, args, id?}` or `{id, result | error}`: a format implements
//!   [`Format`] (a map's head, a string, an unsigned integer) and names it in
//!   [`Codec::MAP_WRITER`] with [`MapWriter::of`]; the codec's default
//!   [`encode_message`](Codec::encode_message),
//!   [`encode_reply`](Codec::encode_reply) and
//!   [`encode_raw_reply`](Codec::encode_raw_reply) then write the envelope
//!   around the values its [`encode_value`](Codec::encode_value) writes:
//!   the same bytes as serializing [`MessageOut`](crate::envelope::MessageOut)
//!   or [`ReplyOut`](crate::envelope::ReplyOut) with the format's serializer,
//!   with less work.
//! - **Sequence formats** (bincode, protobuf), whose envelope frames each
//!   argument on its own: [`args::split`] walks an argument list and hands
//!   each argument to the format's [`args::ArgSink`].
//!
//! ```
//! use ws_messaging_core::writer::{Format, MapWriter};
//!
//! /// A toy map format: `M<count>` opens a map, `S<len>:` a string, `U` a number.
//! struct Toy;
//!
//! impl Format for Toy {
//!     fn map_head(out: &mut Vec<u8>, len: usize) {
//!         out.extend_from_slice(format!("M{len}").as_bytes());
//!     }
//!     fn str(out: &mut Vec<u8>, text: &str) {
//!         out.extend_from_slice(format!("S{}:{text}", text.len()).as_bytes());
//!     }
//!     fn uint(out: &mut Vec<u8>, value: u64) {
//!         out.extend_from_slice(format!("U{value}").as_bytes());
//!     }
//! }
//!
//! let mut out = Vec::new();
//! MapWriter::of::<Toy>().raw_reply(7, b"S2:ok", &mut out);
//! assert_eq!(out, b"M2S2:idU7S6:resultS2:ok");
//! ```

pub mod args;

use serde::Serialize;

use crate::codec::Codec;
use crate::error::CodecError;

/// The primitives of a self-describing format whose envelope is a map,
/// each written at the end of `out` exactly as the format's serde
/// serializer writes it (writing into a `Vec` cannot fail).
pub trait Format {
    /// Opens a map of `len` entries (for JSON, `{`).
    fn map_head(out: &mut Vec<u8>, len: usize);

    /// A string (the envelope's `name`, and by default its keys).
    fn str(out: &mut Vec<u8>, text: &str);

    /// An unsigned integer (the envelope's `id`), as the serializer writes
    /// a `u64`.
    fn uint(out: &mut Vec<u8>, value: u64);

    /// The key of the entry at `index` (0 first) of the map being written.
    /// The default writes `key` with [`str`](Format::str); a format with
    /// separators writes them here (JSON: `,"args":`).
    #[inline]
    fn key(out: &mut Vec<u8>, index: usize, key: &'static str) {
        let _ = index;
        Self::str(out, key);
    }

    /// Closes the map. The default writes nothing (right for a format whose
    /// map head counts its entries); JSON writes `}`.
    #[inline]
    fn map_end(out: &mut Vec<u8>) {
        let _ = out;
    }
}

/// The envelope writers over one [`Format`]'s primitives: what a codec
/// names in [`Codec::MAP_WRITER`] to get its envelope encoders.
#[derive(Clone, Copy)]
pub struct MapWriter {
    map_head: fn(&mut Vec<u8>, usize),
    str: fn(&mut Vec<u8>, &str),
    uint: fn(&mut Vec<u8>, u64),
    key: fn(&mut Vec<u8>, usize, &'static str),
    map_end: fn(&mut Vec<u8>),
}

impl std::fmt::Debug for MapWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWriter").finish_non_exhaustive()
    }
}

impl MapWriter {
    /// The writers over `F`'s primitives.
    pub const fn of<F: Format>() -> Self {
        MapWriter {
            map_head: F::map_head,
            str: F::str,
            uint: F::uint,
            key: F::key,
            map_end: F::map_end,
        }
    }

    /// `{name, args}`, or `{name, args, id}` when `id` is given, with
    /// `args` written by `codec`'s [`encode_value`](Codec::encode_value).
    /// On error `out` is left as it was.
    #[inline]
    pub fn message<C: Codec + ?Sized, A: Serialize + ?Sized>(
        &self,
        codec: &C,
        name: &str,
        args: &A,
        id: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let start = out.len();
        (self.map_head)(out, 2 + usize::from(id.is_some()));
        (self.key)(out, 0, "name");
        (self.str)(out, name);
        (self.key)(out, 1, "args");
        if let Err(e) = codec.encode_value(args, out) {
            out.truncate(start);
            return Err(e);
        }
        if let Some(id) = id {
            (self.key)(out, 2, "id");
            (self.uint)(out, id);
        }
        (self.map_end)(out);
        Ok(())
    }

    /// `{id, result}` or `{id, error}`, the value written by `codec`'s
    /// [`encode_value`](Codec::encode_value). On error `out` is left as it
    /// was.
    #[inline]
    pub fn reply<C: Codec + ?Sized, T: Serialize + ?Sized>(
        &self,
        codec: &C,
        id: u64,
        reply: Result<&T, &serde_json::Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let start = out.len();
        self.ack_head(id, out);
        let written = match reply {
            Ok(result) => {
                (self.key)(out, 1, "result");
                codec.encode_value(result, out)
            }
            Err(error) => {
                (self.key)(out, 1, "error");
                codec.encode_value(error, out)
            }
        };
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        (self.map_end)(out);
        Ok(())
    }

    /// `{id, result}` with `raw`, one value already in the format, copied
    /// as it is.
    #[inline]
    pub fn raw_reply(&self, id: u64, raw: &[u8], out: &mut Vec<u8>) {
        self.ack_head(id, out);
        (self.key)(out, 1, "result");
        out.extend_from_slice(raw);
        (self.map_end)(out);
    }

    /// An ack's map head and its `id` entry.
    #[inline]
    fn ack_head(&self, id: u64, out: &mut Vec<u8>) {
        (self.map_head)(out, 2);
        (self.key)(out, 0, "id");
        (self.uint)(out, id);
    }
}
