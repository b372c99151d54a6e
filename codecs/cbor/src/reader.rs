//! CBOR's head decoding for the shared bounds-checked reader
//! ([`ws_messaging_core::reader`]), which finds the byte range of each value
//! without decoding it and reads the envelope's routing fields.
//!
//! Definite and indefinite lengths are both accepted, tags are skipped
//! together with the value they wrap, and text must be valid UTF-8 (chunk
//! by chunk, as RFC 8949 requires). Nothing here allocates in proportion
//! to a length the frame claims: a claimed length is checked against the
//! bytes actually left before it is used, and collections are walked one
//! element at a time. Nesting (arrays, maps and tags) is limited to
//! [`MAX_DEPTH`] levels.

use std::borrow::Cow;

use bytes::Bytes;
use ws_messaging_core::envelope::{IdField, Key, Name, NameField};
use ws_messaging_core::reader::{self, Format, Shape};
use ws_messaging_core::CodecError;

/// The deepest nesting of arrays, maps and tags accepted, counting the
/// envelope itself.
pub const MAX_DEPTH: usize = reader::MAX_DEPTH;

/// The self-describe tag (RFC 8949 §3.4.6): a marker with no meaning,
/// which cbor-x reads through.
const SELF_DESCRIBE: u64 = 55799;

const BREAK: u8 = 0xff;

/// The start of a value: its scalar content, or the size of a collection
/// whose elements follow (`None` for indefinite length).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Head<'a> {
    Uint(u64),
    /// The negative integer `-1 - n`.
    Nint,
    Bytes,
    /// Text; `chunked` when it is an indefinite-length string, whose chunk
    /// headers are then part of `data`.
    Text {
        data: &'a [u8],
        chunked: bool,
    },
    Array(Option<u64>),
    Map(Option<u64>),
    Tag(u64),
    Bool(bool),
    Null,
    Undefined,
    Float(f64),
    Break,
}

/// The CBOR format, for [`ws_messaging_core::reader`].
#[derive(Debug)]
pub(crate) struct CborFormat;

type Reader<'a> = reader::Reader<'a, CborFormat>;

fn malformed(what: impl std::fmt::Display) -> CodecError {
    Reader::malformed(what)
}

/// An IEEE 754 half-precision float (RFC 8949 Appendix D).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The argument of an initial byte whose additional information is
/// `info` (0..=27); `at` is where the item starts.
#[inline(always)]
fn argument(reader: &mut Reader<'_>, info: u8, at: usize) -> Result<u64, CodecError> {
    // Most items hold their argument in the initial byte.
    if info < 24 {
        return Ok(info.into());
    }
    long_argument(reader, info, at)
}

/// [`argument`] in the bytes after the initial byte.
fn long_argument(reader: &mut Reader<'_>, info: u8, at: usize) -> Result<u64, CodecError> {
    match info {
        24 => reader.uint(1),
        25 => reader.uint(2),
        26 => reader.uint(4),
        27 => reader.uint(8),
        _ => Err(malformed(format_args!(
            "reserved additional information {info} at byte {at}"
        ))),
    }
}

/// The chunks of an indefinite-length string of major type `major`, up
/// to and including the break; returns the chunk region.
fn chunks<'a>(reader: &mut Reader<'a>, major: u8) -> Result<&'a [u8], CodecError> {
    let start = reader.pos();
    loop {
        let at = reader.pos();
        let initial = reader.byte()?;
        if initial == BREAK {
            return Ok(&reader.frame()[start..at]);
        }
        if initial >> 5 != major || initial & 0x1f == 31 {
            return Err(malformed(format_args!(
                "an indefinite-length string holds something other than a definite chunk of its type at byte {at}"
            )));
        }
        let len = argument(reader, initial & 0x1f, at)?;
        let chunk = reader.take(len)?;
        if major == 3 {
            utf8(chunk, at)?;
        }
    }
}

impl Format for CborFormat {
    type Head<'a> = Head<'a>;
    const NAME: &'static str = "CBOR";
    const VALUE: &'static str = "item";
    const A_VALUE: &'static str = "an item";

    /// Reads one item's initial byte and scalar content; a collection's
    /// elements and a tag's value are left to the caller.
    #[inline(always)]
    fn head<'a>(reader: &mut Reader<'a>) -> Result<Head<'a>, CodecError> {
        let at = reader.pos();
        let initial = reader.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if info == 31 {
            return match major {
                2 => chunks(reader, 2).map(|_| Head::Bytes),
                3 => chunks(reader, 3).map(|data| Head::Text { data, chunked: true }),
                4 => Ok(Head::Array(None)),
                5 => Ok(Head::Map(None)),
                7 => Ok(Head::Break),
                _ => Err(malformed(format_args!(
                    "major type {major} cannot have an indefinite length (byte {at})"
                ))),
            };
        }
        let arg = argument(reader, info, at)?;
        Ok(match major {
            0 => Head::Uint(arg),
            1 => Head::Nint,
            2 => reader.take(arg).map(|_| Head::Bytes)?,
            3 => {
                let data = reader.take(arg)?;
                utf8(data, at)?;
                Head::Text { data, chunked: false }
            }
            4 => Head::Array(Some(arg)),
            5 => Head::Map(Some(arg)),
            6 => Head::Tag(arg),
            _ => match info {
                20 => Head::Bool(false),
                21 => Head::Bool(true),
                22 => Head::Null,
                23 => Head::Undefined,
                25 => Head::Float(f16_to_f64(arg as u16)),
                26 => Head::Float(f32::from_bits(arg as u32).into()),
                27 => Head::Float(f64::from_bits(arg)),
                // Unassigned simple values: neither cbor-x nor ciborium reads them.
                _ => return Err(malformed(format_args!("unsupported simple value {arg} at byte {at}"))),
            },
        })
    }

    #[inline]
    fn shape(head: &Head<'_>) -> Shape {
        match *head {
            Head::Array(len) => Shape::Array(len),
            Head::Map(len) => Shape::Map(len),
            Head::Tag(_) => Shape::Wrapper,
            Head::Break => Shape::Break,
            _ => Shape::Scalar,
        }
    }

    /// The next head, reading through self-describe tags.
    #[inline]
    fn value_head<'a>(reader: &mut Reader<'a>) -> Result<Head<'a>, CodecError> {
        loop {
            match Self::head(reader)? {
                Head::Tag(SELF_DESCRIBE) => continue,
                head => return Ok(head),
            }
        }
    }

    #[inline]
    fn at_break(reader: &mut Reader<'_>) -> Result<bool, CodecError> {
        match reader.peek() {
            Some(BREAK) => reader.byte().map(|_| true),
            Some(_) => Ok(false),
            None => Err(malformed("the frame ends inside an indefinite-length item")),
        }
    }

    /// Non-text keys are unknown keys.
    #[inline]
    fn key(head: &Head<'_>) -> Key {
        match *head {
            Head::Text { data, chunked } => Key::from_bytes(&text(data, chunked)),
            _ => Key::Other,
        }
    }

    /// As cbor-x decodes it: a tag other than self-describe makes an
    /// object.
    #[inline]
    fn name(head: &Head<'_>, frame: &Bytes) -> NameField {
        match *head {
            Head::Null | Head::Undefined | Head::Bool(false) | Head::Uint(0) => NameField::Falsy,
            Head::Float(v) if v == 0.0 || v.is_nan() => NameField::Falsy,
            Head::Text { data, chunked } => match text(data, chunked) {
                bytes if bytes.is_empty() => NameField::Falsy,
                // Checked UTF-8 while reading.
                Cow::Borrowed(bytes) => NameField::Str(Name::from_utf8_lossy(frame.slice_ref(bytes))),
                Cow::Owned(bytes) => NameField::Str(Name::from_utf8_lossy(bytes.into())),
            },
            _ => NameField::Other,
        }
    }

    #[inline]
    fn id(head: &Head<'_>) -> IdField {
        match *head {
            Head::Uint(v) => IdField::from_u64(v),
            Head::Float(v) => IdField::from_f64(v),
            _ => IdField::Invalid,
        }
    }
}

#[inline]
fn utf8(data: &[u8], at: usize) -> Result<(), CodecError> {
    // ASCII, the usual text (keys, names), is UTF-8: a cheaper check for
    // short strings than the full validation.
    if data.is_ascii() {
        return Ok(());
    }
    std::str::from_utf8(data)
        .map(|_| ())
        .map_err(|e| malformed(format_args!("text at byte {at} is not UTF-8 ({e})")))
}

/// The bytes of a text head (its chunks joined when it has several).
#[inline]
fn text<'a>(data: &'a [u8], chunked: bool) -> Cow<'a, [u8]> {
    if !chunked {
        return Cow::Borrowed(data);
    }
    Cow::Owned(joined(data))
}

/// The chunks of an indefinite-length text joined.
fn joined(data: &[u8]) -> Vec<u8> {
    // Already checked by `chunks`: definite text chunks, each in bounds.
    let mut reader = Reader::new(data);
    let mut joined = Vec::new();
    while let Ok(Head::Text { data, .. }) = CborFormat::head(&mut reader) {
        joined.extend_from_slice(data);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_value(data: &[u8]) -> Result<(), CodecError> {
        reader::check_value::<CborFormat>(data)
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f64(0x3800), 0.5);
        assert_eq!(f16_to_f64(0xc400), -4.0);
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert_eq!(f16_to_f64(0x0001), 5.960464477539063e-8);
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
        assert!(f16_to_f64(0x8000).is_sign_negative());
    }

    #[test]
    fn claimed_lengths_are_checked_against_the_frame() {
        for frame in [
            &[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6],
            &[0x5a, 0xff, 0xff, 0xff, 0xff, 0],
            &[0x5f, 0x41],
            &[0x9f, 0x01],
            &[0x1b, 0, 0],
            &[],
        ] {
            let err = check_value(frame).unwrap_err();
            assert!(err.to_string().starts_with("decode error: malformed CBOR"), "{err}");
        }
    }

    #[test]
    fn well_formedness() {
        for ok in [
            &[0x5f, 0x41, 0x01, 0x40, 0xff][..],
            &[0x7f, 0x61, b'a', 0x62, b'b', b'c', 0xff],
            &[0x9f, 0x01, 0x9f, 0xff, 0xff],
            &[0xbf, 0x61, b'a', 0x01, 0xff],
            &[0xd9, 0xd9, 0xf7, 0xc1, 0x01],
            &[0xf7],
            &[0xf9, 0x3c, 0x00],
            &[0xb9, 0x00, 0x01, 0x61, b'a', 0xf6],
        ] {
            check_value(ok).unwrap();
        }
        for bad in [
            &[0xff][..],
            &[0x1c],
            &[0x3f],
            &[0xdf, 0x01],
            &[0x5f, 0x61, b'a', 0xff],
            &[0x5f, 0x5f, 0xff, 0xff],
            &[0x61, 0xff],
            &[0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff],
            &[0xbf, 0x01, 0xff],
            &[0x82, 0x01, 0xff],
            &[0xe0],
            &[0xf8, 0x10],
            &[0xf8, 0x40],
            &[0x01, 0x01],
        ] {
            assert!(check_value(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn nesting_is_limited() {
        let mut deep = vec![0x81; MAX_DEPTH];
        deep.push(0xf6);
        check_value(&deep).unwrap();
        let mut too_deep = vec![0x81; MAX_DEPTH + 1];
        too_deep.push(0xf6);
        assert!(check_value(&too_deep)
            .unwrap_err()
            .to_string()
            .contains("nested deeper"));
        // Tags count as levels; a million of anything fails at the limit.
        assert!(check_value(&[0xc1; 1_000_000]).is_err());
        assert!(check_value(&[0x9f; 1_000_000]).is_err());
    }
}
