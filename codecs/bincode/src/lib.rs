//! The bincode codec for ws-messaging: the fastest and most compact
//! format for **Rust-to-Rust** links.
//!
//! It has **no JavaScript peer**: bincode is not self-describing, so both
//! sides must agree on every payload type, and no JavaScript ws-messaging
//! encoder speaks it. Use JSON, MessagePack or CBOR to talk to JavaScript.
//!
//! # Maintenance
//! bincode is pinned to 2.0.1 (the 3.0.0 release is a tombstone that does
//! not compile, and the crate is no longer maintained). For a maintained
//! non-self-describing format, the natural move is `postcard` (stable,
//! documented wire format, serde-based, `no_std`-friendly and actively
//! maintained) — or, when a schema and cross-language peers matter,
//! protobuf (`ws-messaging-protobuf`).
//!
//! # Wire layout
//! Values (arguments, results, the auth value) are bincode's standard
//! configuration (varint integers). The envelope around them is fixed and
//! tiny (little-endian):
//!
//! | kind | layout |
//! |---|---|
//! | event | `0u8`, name: `u32` length + UTF-8, argument count `u32`, each argument `u32` length + value |
//! | call | `1u8`, id `u64`, then as an event |
//! | result ack | `2u8`, id `u64`, the result value to the end of the frame |
//! | error ack | `3u8`, id `u64`, the error as JSON text to the end of the frame |
//!
//! # Limits
//! bincode's decoder has no size limit by default, so a 6-byte frame could
//! claim gigabytes. This codec always decodes with a limit proportional to
//! the frame (16 × its length, at least 1 MiB), and the envelope decoder
//! checks every length against the bytes actually present.
//!
//! ```
//! use ws_messaging_core::{Codec, Frame, envelope::validate};
//! use ws_messaging_bincode::Bincode;
//!
//! let mut out = Vec::new();
//! Bincode.encode_message("sum", &(1u32, 2.5f64), Some(7), &mut out).unwrap();
//! let raw = Bincode.decode_envelope(&out.into()).unwrap();
//! let Frame::Message { name, args, id } = validate(raw, true).unwrap() else { panic!() };
//! assert_eq!((name.as_str(), id), ("sum", Some(7)));
//! assert_eq!(Bincode.decode_value::<f64>(&args[1]).unwrap(), 2.5);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod args;

use bincode::config::{self, Config};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use ws_messaging_core::envelope::{ArgList, ArgsField, IdField, Name, NameField, RawEnvelope};
use ws_messaging_core::{Codec, CodecError, FrameKind};

/// The bincode codec. Zero-sized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bincode;

const EVENT: u8 = 0;
const CALL: u8 = 1;
const RESULT: u8 = 2;
const ERROR: u8 = 3;

pub(crate) fn config() -> impl Config {
    config::standard()
}

/// Decodes `data` entirely as a `T`, with an allocation limit proportional
/// to the input.
fn decode_limited<T: DeserializeOwned>(data: &[u8]) -> Result<T, CodecError> {
    macro_rules! tiers {
        ($($max_input:expr => $limit:expr),+) => {
            $(if data.len() <= $max_input {
                return finish(data, bincode::serde::decode_from_slice::<T, _>(data, config::standard().with_limit::<$limit>()));
            })+
        };
    }
    tiers!(64 << 10 => { 1 << 20 }, 1 << 20 => { 16 << 20 }, 16 << 20 => { 256 << 20 });
    finish(
        data,
        bincode::serde::decode_from_slice::<T, _>(data, config::standard().with_limit::<{ 1 << 31 }>()),
    )
}

fn finish<T>(data: &[u8], decoded: Result<(T, usize), bincode::error::DecodeError>) -> Result<T, CodecError> {
    let (value, used) = decoded.map_err(CodecError::decode)?;
    if used != data.len() {
        return Err(CodecError::decode(format!(
            "{} trailing bytes after the value",
            data.len() - used
        )));
    }
    Ok(value)
}

impl Codec for Bincode {
    const FRAME_KIND: FrameKind = FrameKind::Binary;

    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        bincode::serde::encode_into_std_write(value, out, config()).map_err(CodecError::encode)?;
        Ok(())
    }

    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        decode_limited(data)
    }

    fn encode_message<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
        id: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match id {
            Some(id) => {
                out.push(CALL);
                out.extend_from_slice(&id.to_le_bytes());
            }
            None => out.push(EVENT),
        }
        let len = u32::try_from(name.len()).map_err(|_| CodecError::encode("name too long"))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        args::encode_args(args, out)
    }

    fn encode_reply<T: Serialize + ?Sized>(
        &self,
        id: u64,
        reply: Result<&T, &serde_json::Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match reply {
            Ok(result) => {
                out.push(RESULT);
                out.extend_from_slice(&id.to_le_bytes());
                self.encode_value(result, out)
            }
            Err(error) => {
                out.push(ERROR);
                out.extend_from_slice(&id.to_le_bytes());
                serde_json::to_writer(out, error).map_err(CodecError::encode)
            }
        }
    }

    fn encode_raw_reply(&self, id: u64, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.push(RESULT);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(raw);
        Ok(())
    }

    fn decode_error(&self, data: &[u8]) -> Result<serde_json::Value, CodecError> {
        // Error acks carry JSON text; a `preprocessingError` event carries
        // its text as a bincode string argument.
        serde_json::from_slice(data).or_else(|_| decode_limited::<String>(data).map(serde_json::Value::String))
    }

    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        let mut r = Reader { frame, pos: 0 };
        // Each kind's envelope is made whole at the end, in place.
        match r.u8()? {
            kind @ (EVENT | CALL) => {
                let id = if kind == CALL {
                    IdField::from_u64(r.u64()?)
                } else {
                    IdField::Absent
                };
                let name = r.chunk()?;
                let name = Name::from_utf8(name).map_err(|_| CodecError::decode("the name is not UTF-8"))?;
                let name = if name.is_empty() {
                    NameField::Falsy
                } else {
                    NameField::Str(name)
                };
                let count = r.u32()? as usize;
                // Each argument takes at least its 4-byte length.
                if count > r.remaining() / 4 {
                    return Err(CodecError::decode("more arguments claimed than the frame holds"));
                }
                let mut args = ArgList::new();
                for _ in 0..count {
                    args.push(r.chunk()?);
                }
                if r.remaining() != 0 {
                    return Err(CodecError::decode("trailing bytes after the arguments"));
                }
                Ok(RawEnvelope {
                    is_map: true,
                    keys: if kind == CALL { 3 } else { 2 },
                    name,
                    args: ArgsField::List(args),
                    id,
                    result: None,
                    error: None,
                })
            }
            kind @ (RESULT | ERROR) => {
                let id = IdField::from_u64(r.u64()?);
                let value = Some(frame.slice(r.pos..));
                let (result, error) = if kind == RESULT { (value, None) } else { (None, value) };
                Ok(RawEnvelope {
                    is_map: true,
                    keys: 2,
                    name: NameField::Absent,
                    args: ArgsField::Absent,
                    id,
                    result,
                    error,
                })
            }
            other => Err(CodecError::decode(format!("unknown envelope kind {other}"))),
        }
    }
}

/// Reads the envelope's fixed fields, every length checked against the frame.
struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.frame.len() - self.pos
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let slice = &self.frame[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    #[cold]
    fn truncated(&self, n: usize) -> CodecError {
        CodecError::decode(format!(
            "truncated frame: {n} bytes needed at offset {}, {} left",
            self.pos,
            self.remaining()
        ))
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }

    /// A `u32`-length-prefixed chunk, as a zero-copy slice of the frame.
    #[inline(always)]
    fn chunk(&mut self) -> Result<Bytes, CodecError> {
        let len = self.u32()? as usize;
        self.take(len)?;
        Ok(self.frame.slice(self.pos - len..self.pos))
    }
}
