//! A bounds-checked MessagePack reader: finds the byte range of each value
//! without decoding it, and reads the envelope's routing fields.
//!
//! Nothing here allocates in proportion to a length the frame claims: a
//! claimed length is checked against the bytes actually left before it is
//! used, and collections are walked one element at a time (each element
//! takes at least one byte, so a false count runs out of frame quickly).
//! Nesting is limited to [`MAX_DEPTH`] levels, so walking a hostile frame
//! cannot exhaust the stack, and neither can decoding a value that passed.

use bytes::Bytes;
use rmp::Marker;
use ws_messaging::envelope::{ArgsField, IdField, Key, KeyCount, NameField, RawEnvelope};
use ws_messaging::CodecError;

/// The deepest nesting of arrays and maps accepted, counting the envelope
/// itself (about serde_json's limit for JSON frames).
pub const MAX_DEPTH: usize = 128;

/// The start of a value: its scalar content, or the size of a collection
/// whose elements follow.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Head<'a> {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    Bin,
    Ext,
    Array(u32),
    Map(u32),
}

/// A cursor over one frame.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: impl std::fmt::Display) -> CodecError {
    CodecError::Decode(format!("malformed MessagePack: {what}"))
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// `len` bytes, if the frame has them (`len` may be any claimed size).
    fn take(&mut self, len: u64) -> Result<&'a [u8], CodecError> {
        let left = self.buf.len() - self.pos;
        if len > left as u64 {
            return Err(malformed(format_args!(
                "a value at byte {} claims {len} bytes but only {left} remain",
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

    /// Reads one value's marker and scalar content; a collection's
    /// elements are left to the caller.
    pub(crate) fn head(&mut self) -> Result<Head<'a>, CodecError> {
        let at = self.pos;
        let byte = *self
            .buf
            .get(at)
            .ok_or_else(|| malformed(format_args!("the frame ends before a value at byte {at}")))?;
        self.pos += 1;
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(v) => Head::Uint(v.into()),
            Marker::FixNeg(v) => Head::Int(v.into()),
            Marker::Null => Head::Nil,
            Marker::False => Head::Bool(false),
            Marker::True => Head::Bool(true),
            Marker::U8 => Head::Uint(self.uint(1)?),
            Marker::U16 => Head::Uint(self.uint(2)?),
            Marker::U32 => Head::Uint(self.uint(4)?),
            Marker::U64 => Head::Uint(self.uint(8)?),
            Marker::I8 => Head::Int(self.uint(1)? as u8 as i8 as i64),
            Marker::I16 => Head::Int(self.uint(2)? as u16 as i16 as i64),
            Marker::I32 => Head::Int(self.uint(4)? as u32 as i32 as i64),
            Marker::I64 => Head::Int(self.uint(8)? as i64),
            Marker::F32 => Head::Float(f32::from_bits(self.uint(4)? as u32).into()),
            Marker::F64 => Head::Float(f64::from_bits(self.uint(8)?)),
            Marker::FixStr(len) => Head::Str(self.take(len.into())?),
            Marker::Str8 => Head::Str(self.sized(1)?),
            Marker::Str16 => Head::Str(self.sized(2)?),
            Marker::Str32 => Head::Str(self.sized(4)?),
            Marker::Bin8 => self.sized(1).map(|_| Head::Bin)?,
            Marker::Bin16 => self.sized(2).map(|_| Head::Bin)?,
            Marker::Bin32 => self.sized(4).map(|_| Head::Bin)?,
            // Type byte, then the data.
            Marker::FixExt1 => self.take(2).map(|_| Head::Ext)?,
            Marker::FixExt2 => self.take(3).map(|_| Head::Ext)?,
            Marker::FixExt4 => self.take(5).map(|_| Head::Ext)?,
            Marker::FixExt8 => self.take(9).map(|_| Head::Ext)?,
            Marker::FixExt16 => self.take(17).map(|_| Head::Ext)?,
            Marker::Ext8 => self.ext(1)?,
            Marker::Ext16 => self.ext(2)?,
            Marker::Ext32 => self.ext(4)?,
            Marker::FixArray(len) => Head::Array(len.into()),
            Marker::Array16 => Head::Array(self.uint(2)? as u32),
            Marker::Array32 => Head::Array(self.uint(4)? as u32),
            Marker::FixMap(len) => Head::Map(len.into()),
            Marker::Map16 => Head::Map(self.uint(2)? as u32),
            Marker::Map32 => Head::Map(self.uint(4)? as u32),
            Marker::Reserved => return Err(malformed(format_args!("the reserved marker 0xc1 at byte {at}"))),
        })
    }

    /// Data preceded by a big-endian length of `width` bytes.
    fn sized(&mut self, width: u64) -> Result<&'a [u8], CodecError> {
        let len = self.uint(width)?;
        self.take(len)
    }

    fn ext(&mut self, width: u64) -> Result<Head<'a>, CodecError> {
        let len = self.uint(width)?;
        self.take(1 + len).map(|_| Head::Ext)
    }

    /// Skips the elements of a collection whose head was just read at
    /// nesting level `depth` (scalars have none).
    pub(crate) fn skip_rest(&mut self, head: Head<'a>, depth: usize) -> Result<(), CodecError> {
        let items = match head {
            Head::Array(len) => u64::from(len),
            Head::Map(len) => 2 * u64::from(len),
            _ => return Ok(()),
        };
        if depth > MAX_DEPTH {
            return Err(CodecError::Decode(format!(
                "MessagePack nested deeper than {MAX_DEPTH} levels at byte {}",
                self.pos
            )));
        }
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    /// Skips one whole value at nesting level `depth`.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        let head = self.head()?;
        self.skip_rest(head, depth)
    }

    /// Fails unless the whole frame was read.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(malformed(format_args!(
                "{extra} trailing bytes after the value that ends at byte {}",
                self.pos
            ))),
        }
    }
}

/// Checks that `data` holds exactly one well-formed value within the
/// nesting limit.
pub(crate) fn check_value(data: &[u8]) -> Result<(), CodecError> {
    let mut reader = Reader::new(data);
    reader.skip(1)?;
    reader.finish()
}

/// The envelope key a map key names (non-string keys are unknown keys).
fn key_of(head: &Head) -> Key {
    match head {
        Head::Str(bytes) => Key::from_bytes(bytes),
        _ => Key::Other,
    }
}

/// Classifies `name` by JavaScript truthiness.
fn name_field(head: &Head) -> NameField {
    match *head {
        Head::Nil | Head::Bool(false) | Head::Uint(0) | Head::Int(0) => NameField::Falsy,
        Head::Float(v) if v == 0.0 || v.is_nan() => NameField::Falsy,
        Head::Str([]) => NameField::Falsy,
        // msgpack-lite decodes invalid UTF-8 with replacement characters.
        Head::Str(bytes) => NameField::Str(String::from_utf8_lossy(bytes).into_owned()),
        _ => NameField::Other,
    }
}

/// Classifies `id` the way JavaScript's `validateId` does.
fn id_field(head: &Head) -> IdField {
    match *head {
        Head::Uint(v) => IdField::from_u64(v),
        Head::Int(v) => IdField::from_i64(v),
        Head::Float(v) => IdField::from_f64(v),
        _ => IdField::Invalid,
    }
}

/// Reads a frame's envelope; arguments, result and error stay raw slices
/// of `frame`.
pub(crate) fn envelope(frame: &Bytes) -> Result<RawEnvelope, CodecError> {
    let mut reader = Reader::new(frame);
    let envelope = match reader.head()? {
        Head::Map(len) => fields(&mut reader, frame, len)?,
        other => {
            // A well-formed value that is not a map fails validation.
            reader.skip_rest(other, 1)?;
            RawEnvelope::not_a_map()
        }
    };
    reader.finish()?;
    Ok(envelope)
}

fn fields(reader: &mut Reader, frame: &Bytes, len: u32) -> Result<RawEnvelope, CodecError> {
    let mut env = RawEnvelope {
        is_map: true,
        ..RawEnvelope::default()
    };
    // Like a JavaScript object: a repeated key keeps its last value and
    // counts once.
    let mut keys = KeyCount::default();
    let raw = |reader: &mut Reader, start: usize| frame.slice(start..reader.pos());
    for _ in 0..len {
        let key = reader.head()?;
        reader.skip_rest(key, 2)?;
        let start = reader.pos();
        let field = key_of(&key);
        keys.add(field);
        match field {
            Key::Name => {
                let head = reader.head()?;
                reader.skip_rest(head, 2)?;
                env.name = name_field(&head);
            }
            Key::Args => {
                env.args = match reader.head()? {
                    Head::Array(count) => {
                        let mut args = Vec::new();
                        for _ in 0..count {
                            let start = reader.pos();
                            reader.skip(3)?;
                            args.push(raw(reader, start));
                        }
                        ArgsField::List(args)
                    }
                    other => {
                        reader.skip_rest(other, 2)?;
                        ArgsField::Invalid
                    }
                };
            }
            Key::Id => {
                let head = reader.head()?;
                reader.skip_rest(head, 2)?;
                env.id = id_field(&head);
            }
            Key::Result => {
                reader.skip(2)?;
                env.result = Some(raw(reader, start));
            }
            Key::Error => {
                reader.skip(2)?;
                env.error = Some(raw(reader, start));
            }
            Key::Other => reader.skip(2)?,
        };
    }
    env.keys = keys.total();
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_lengths_are_checked_against_the_frame() {
        for frame in [
            &[0xdb, 0xff, 0xff, 0xff, 0xff][..],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0],
            &[0xc6, 0xff, 0xff, 0xff, 0xff, 0],
            &[0xc9, 0xff, 0xff, 0xff, 0xff, 1],
            &[0xd8, 1, 2],
            &[0xcf, 0, 0],
            &[],
        ] {
            let err = check_value(frame).unwrap_err();
            assert!(
                err.to_string().starts_with("decode error: malformed MessagePack"),
                "{err}"
            );
        }
    }

    #[test]
    fn nesting_is_limited() {
        let mut deep = vec![0x91; MAX_DEPTH];
        deep.push(0xc0);
        check_value(&deep).unwrap();
        let mut too_deep = vec![0x91; MAX_DEPTH + 1];
        too_deep.push(0xc0);
        let err = check_value(&too_deep).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 128"), "{err}");
        // A huge frame of nested arrays fails at the limit, not the stack.
        assert!(check_value(&vec![0x91; 1_000_000]).is_err());
    }

    #[test]
    fn trailing_bytes_and_reserved_markers_are_errors() {
        assert!(check_value(&[0xc0, 0xc0])
            .unwrap_err()
            .to_string()
            .contains("1 trailing bytes"));
        assert!(check_value(&[0xc1])
            .unwrap_err()
            .to_string()
            .contains("reserved marker 0xc1"));
        assert!(check_value(&[0x92, 0x01, 0xc1]).is_err());
    }
}
