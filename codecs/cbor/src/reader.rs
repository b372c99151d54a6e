//! A bounds-checked CBOR reader: finds the byte range of each value
//! without decoding it, and reads the envelope's routing fields.
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
use ws_messaging::envelope::{ArgsField, IdField, Key, KeyCount, NameField, RawEnvelope};
use ws_messaging::CodecError;

/// The deepest nesting of arrays, maps and tags accepted, counting the
/// envelope itself.
pub const MAX_DEPTH: usize = 128;

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

/// A cursor over one frame.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: impl std::fmt::Display) -> CodecError {
    CodecError::Decode(format!("malformed CBOR: {what}"))
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

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| malformed(format_args!("the frame ends before a value at byte {}", self.pos)))?;
        self.pos += 1;
        Ok(byte)
    }

    /// Whether the next byte is a break (which it then consumes).
    fn at_break(&mut self) -> Result<bool, CodecError> {
        match self.buf.get(self.pos) {
            Some(&BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(malformed("the frame ends inside an indefinite-length item")),
        }
    }

    /// `len` bytes, if the frame has them (`len` may be any claimed size).
    fn take(&mut self, len: u64) -> Result<&'a [u8], CodecError> {
        let left = self.buf.len() - self.pos;
        if len > left as u64 {
            return Err(malformed(format_args!(
                "an item at byte {} claims {len} bytes but only {left} remain",
                self.pos
            )));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn uint(&mut self, width: u64) -> Result<u64, CodecError> {
        Ok(self.take(width)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The argument of an initial byte whose additional information is
    /// `info` (0..=27); `at` is where the item starts.
    fn argument(&mut self, info: u8, at: usize) -> Result<u64, CodecError> {
        match info {
            0..=23 => Ok(info.into()),
            24 => self.uint(1),
            25 => self.uint(2),
            26 => self.uint(4),
            27 => self.uint(8),
            _ => Err(malformed(format_args!(
                "reserved additional information {info} at byte {at}"
            ))),
        }
    }

    /// The chunks of an indefinite-length string of major type `major`,
    /// up to and including the break; returns the chunk region.
    fn chunks(&mut self, major: u8) -> Result<&'a [u8], CodecError> {
        let start = self.pos;
        loop {
            let at = self.pos;
            let initial = self.byte()?;
            if initial == BREAK {
                return Ok(&self.buf[start..at]);
            }
            if initial >> 5 != major || initial & 0x1f == 31 {
                return Err(malformed(format_args!(
                    "an indefinite-length string holds something other than a definite chunk of its type at byte {at}"
                )));
            }
            let len = self.argument(initial & 0x1f, at)?;
            let chunk = self.take(len)?;
            if major == 3 {
                utf8(chunk, at)?;
            }
        }
    }

    /// Reads one item's initial byte and scalar content; a collection's
    /// elements and a tag's value are left to the caller.
    pub(crate) fn head(&mut self) -> Result<Head<'a>, CodecError> {
        let at = self.pos;
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if info == 31 {
            return match major {
                2 => self.chunks(2).map(|_| Head::Bytes),
                3 => self.chunks(3).map(|data| Head::Text { data, chunked: true }),
                4 => Ok(Head::Array(None)),
                5 => Ok(Head::Map(None)),
                7 => Ok(Head::Break),
                _ => Err(malformed(format_args!(
                    "major type {major} cannot have an indefinite length (byte {at})"
                ))),
            };
        }
        let arg = self.argument(info, at)?;
        Ok(match major {
            0 => Head::Uint(arg),
            1 => Head::Nint,
            2 => self.take(arg).map(|_| Head::Bytes)?,
            3 => {
                let data = self.take(arg)?;
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

    /// Skips what follows a head just read at nesting level `depth`: a
    /// collection's elements, a tag's value (scalars have nothing).
    pub(crate) fn skip_rest(&mut self, head: Head<'a>, depth: usize) -> Result<(), CodecError> {
        let items = match head {
            Head::Array(len) => len.map(|n| (n, 1)),
            Head::Map(len) => len.map(|n| (n, 2)),
            Head::Tag(_) => Some((1, 1)),
            Head::Break => return Err(malformed(format_args!("unexpected break at byte {}", self.pos - 1))),
            _ => return Ok(()),
        };
        if depth > MAX_DEPTH {
            return Err(CodecError::Decode(format!(
                "CBOR nested deeper than {MAX_DEPTH} levels at byte {}",
                self.pos
            )));
        }
        match items {
            Some((count, per_item)) => {
                for _ in 0..count {
                    for _ in 0..per_item {
                        self.skip(depth + 1)?;
                    }
                }
            }
            None => {
                let per_item = if matches!(head, Head::Map(_)) { 2 } else { 1 };
                while !self.at_break()? {
                    for _ in 0..per_item {
                        self.skip(depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Skips one whole item at nesting level `depth`.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        let head = self.head()?;
        self.skip_rest(head, depth)
    }

    /// The next head, reading through self-describe tags.
    fn head_untagged(&mut self) -> Result<Head<'a>, CodecError> {
        loop {
            match self.head()? {
                Head::Tag(SELF_DESCRIBE) => continue,
                head => return Ok(head),
            }
        }
    }

    /// Fails unless the whole frame was read.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(malformed(format_args!(
                "{extra} trailing bytes after the item that ends at byte {}",
                self.pos
            ))),
        }
    }
}

fn utf8(data: &[u8], at: usize) -> Result<(), CodecError> {
    std::str::from_utf8(data)
        .map(|_| ())
        .map_err(|e| malformed(format_args!("text at byte {at} is not UTF-8 ({e})")))
}

/// The bytes of a text head (its chunks joined when it has several).
fn text<'a>(data: &'a [u8], chunked: bool) -> Cow<'a, [u8]> {
    if !chunked {
        return Cow::Borrowed(data);
    }
    // Already checked by `Reader::chunks`: definite text chunks, each in bounds.
    let mut reader = Reader::new(data);
    let mut joined = Vec::new();
    while let Ok(Head::Text { data, .. }) = reader.head() {
        joined.extend_from_slice(data);
    }
    Cow::Owned(joined)
}

/// Checks that `data` holds exactly one well-formed item within the
/// nesting limit.
pub(crate) fn check_value(data: &[u8]) -> Result<(), CodecError> {
    let mut reader = Reader::new(data);
    reader.skip(1)?;
    reader.finish()
}

/// Classifies `name` by JavaScript truthiness (as cbor-x decodes it: a tag
/// other than self-describe makes an object).
fn name_field(head: &Head) -> NameField {
    match *head {
        Head::Null | Head::Undefined | Head::Bool(false) | Head::Uint(0) => NameField::Falsy,
        Head::Float(v) if v == 0.0 || v.is_nan() => NameField::Falsy,
        Head::Text { data, chunked } => match text(data, chunked) {
            bytes if bytes.is_empty() => NameField::Falsy,
            // Checked UTF-8 while reading.
            bytes => NameField::Str(String::from_utf8_lossy(&bytes).into_owned()),
        },
        _ => NameField::Other,
    }
}

/// Classifies `id` the way JavaScript's `validateId` does.
fn id_field(head: &Head) -> IdField {
    match *head {
        Head::Uint(v) => IdField::from_u64(v),
        Head::Float(v) => IdField::from_f64(v),
        _ => IdField::Invalid,
    }
}

/// The envelope key a map key names (non-text keys are unknown keys).
fn key_of(head: &Head) -> Key {
    match *head {
        Head::Text { data, chunked } => Key::from_bytes(&text(data, chunked)),
        _ => Key::Other,
    }
}

/// Reads a frame's envelope; arguments, result and error stay raw slices
/// of `frame`.
pub(crate) fn envelope(frame: &Bytes) -> Result<RawEnvelope, CodecError> {
    let mut reader = Reader::new(frame);
    let envelope = match reader.head_untagged()? {
        Head::Map(len) => fields(&mut reader, frame, len)?,
        other => {
            // A well-formed item that is not a map fails validation.
            reader.skip_rest(other, 1)?;
            RawEnvelope::not_a_map()
        }
    };
    reader.finish()?;
    Ok(envelope)
}

/// Calls `each` for every element of a collection of `len` items (`None`:
/// indefinite, up to the break).
fn for_each<'a>(
    reader: &mut Reader<'a>,
    len: Option<u64>,
    mut each: impl FnMut(&mut Reader<'a>) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    match len {
        Some(len) => (0..len).try_for_each(|_| each(reader)),
        None => {
            while !reader.at_break()? {
                each(reader)?;
            }
            Ok(())
        }
    }
}

fn fields(reader: &mut Reader, frame: &Bytes, len: Option<u64>) -> Result<RawEnvelope, CodecError> {
    let mut env = RawEnvelope {
        is_map: true,
        ..RawEnvelope::default()
    };
    // Like a JavaScript object: a repeated key keeps its last value and
    // counts once.
    let mut keys = KeyCount::default();
    for_each(reader, len, |reader| {
        let key = reader.head()?;
        reader.skip_rest(key, 2)?;
        let start = reader.pos();
        let raw = |reader: &Reader| frame.slice(start..reader.pos());
        let field = key_of(&key);
        keys.add(field);
        match field {
            Key::Name => {
                let head = reader.head_untagged()?;
                reader.skip_rest(head, 2)?;
                env.name = name_field(&head);
            }
            Key::Args => {
                env.args = match reader.head_untagged()? {
                    Head::Array(count) => {
                        let mut args = Vec::new();
                        for_each(reader, count, |reader| {
                            let start = reader.pos();
                            reader.skip(3)?;
                            args.push(frame.slice(start..reader.pos()));
                            Ok(())
                        })?;
                        ArgsField::List(args)
                    }
                    other => {
                        reader.skip_rest(other, 2)?;
                        ArgsField::Invalid
                    }
                };
            }
            Key::Id => {
                let head = reader.head_untagged()?;
                reader.skip_rest(head, 2)?;
                env.id = id_field(&head);
            }
            Key::Result => {
                reader.skip(2)?;
                env.result = Some(raw(reader));
            }
            Key::Error => {
                reader.skip(2)?;
                env.error = Some(raw(reader));
            }
            Key::Other => reader.skip(2)?,
        };
        Ok(())
    })?;
    env.keys = keys.total();
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

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
