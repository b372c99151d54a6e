//! MessagePack's head decoding for the shared bounds-checked reader
//! ([`ws_messaging_core::reader`]), which finds the byte range of each value
//! without decoding it and reads the envelope's routing fields.
//!
//! Nothing here allocates in proportion to a length the frame claims: a
//! claimed length is checked against the bytes actually left before it is
//! used, and collections are walked one element at a time. Nesting is
//! limited to [`MAX_DEPTH`] levels.

use bytes::Bytes;
use rmp::Marker;
use ws_messaging_core::envelope::{IdField, Key, Name, NameField};
use ws_messaging_core::reader::{self, Format, Shape};
use ws_messaging_core::CodecError;

/// The deepest nesting of arrays and maps accepted, counting the envelope
/// itself (about serde_json's limit for JSON frames).
pub const MAX_DEPTH: usize = reader::MAX_DEPTH;

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

/// The MessagePack format, for [`ws_messaging_core::reader`].
#[derive(Debug)]
pub(crate) struct MsgPackFormat;

type Reader<'a> = reader::Reader<'a, MsgPackFormat>;

/// Data preceded by a big-endian length of `width` bytes.
fn sized<'a>(reader: &mut Reader<'a>, width: u64) -> Result<&'a [u8], CodecError> {
    let len = reader.uint(width)?;
    reader.take(len)
}

/// An ext type: its length of `width` bytes, a type byte, then the data.
fn ext<'a>(reader: &mut Reader<'a>, width: u64) -> Result<Head<'a>, CodecError> {
    let len = reader.uint(width)?;
    reader.take(1 + len).map(|_| Head::Ext)
}

impl Format for MsgPackFormat {
    type Head<'a> = Head<'a>;
    const NAME: &'static str = "MessagePack";
    const VALUE: &'static str = "value";
    const A_VALUE: &'static str = "a value";

    /// Reads one value's marker and scalar content; a collection's
    /// elements are left to the caller.
    #[inline]
    fn head<'a>(reader: &mut Reader<'a>) -> Result<Head<'a>, CodecError> {
        let at = reader.pos();
        let byte = reader.byte()?;
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(v) => Head::Uint(v.into()),
            Marker::FixNeg(v) => Head::Int(v.into()),
            Marker::Null => Head::Nil,
            Marker::False => Head::Bool(false),
            Marker::True => Head::Bool(true),
            Marker::U8 => Head::Uint(reader.uint(1)?),
            Marker::U16 => Head::Uint(reader.uint(2)?),
            Marker::U32 => Head::Uint(reader.uint(4)?),
            Marker::U64 => Head::Uint(reader.uint(8)?),
            Marker::I8 => Head::Int(reader.uint(1)? as u8 as i8 as i64),
            Marker::I16 => Head::Int(reader.uint(2)? as u16 as i16 as i64),
            Marker::I32 => Head::Int(reader.uint(4)? as u32 as i32 as i64),
            Marker::I64 => Head::Int(reader.uint(8)? as i64),
            Marker::F32 => Head::Float(f32::from_bits(reader.uint(4)? as u32).into()),
            Marker::F64 => Head::Float(f64::from_bits(reader.uint(8)?)),
            Marker::FixStr(len) => Head::Str(reader.take(len.into())?),
            Marker::Str8 => Head::Str(sized(reader, 1)?),
            Marker::Str16 => Head::Str(sized(reader, 2)?),
            Marker::Str32 => Head::Str(sized(reader, 4)?),
            Marker::Bin8 => sized(reader, 1).map(|_| Head::Bin)?,
            Marker::Bin16 => sized(reader, 2).map(|_| Head::Bin)?,
            Marker::Bin32 => sized(reader, 4).map(|_| Head::Bin)?,
            // Type byte, then the data.
            Marker::FixExt1 => reader.take(2).map(|_| Head::Ext)?,
            Marker::FixExt2 => reader.take(3).map(|_| Head::Ext)?,
            Marker::FixExt4 => reader.take(5).map(|_| Head::Ext)?,
            Marker::FixExt8 => reader.take(9).map(|_| Head::Ext)?,
            Marker::FixExt16 => reader.take(17).map(|_| Head::Ext)?,
            Marker::Ext8 => ext(reader, 1)?,
            Marker::Ext16 => ext(reader, 2)?,
            Marker::Ext32 => ext(reader, 4)?,
            Marker::FixArray(len) => Head::Array(len.into()),
            Marker::Array16 => Head::Array(reader.uint(2)? as u32),
            Marker::Array32 => Head::Array(reader.uint(4)? as u32),
            Marker::FixMap(len) => Head::Map(len.into()),
            Marker::Map16 => Head::Map(reader.uint(2)? as u32),
            Marker::Map32 => Head::Map(reader.uint(4)? as u32),
            Marker::Reserved => {
                return Err(Reader::malformed(format_args!("the reserved marker 0xc1 at byte {at}")));
            }
        })
    }

    /// [`head`](Format::head) without building the head: the bytes a
    /// marker has after it, read or skipped, and the shape.
    #[inline(always)]
    fn skip_head(reader: &mut Reader<'_>) -> Result<Shape, CodecError> {
        let at = reader.pos();
        let byte = reader.byte()?;
        let skip: u64 = match byte {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => return Ok(Shape::Scalar),
            0x80..=0x8f => return Ok(Shape::Map(Some((byte & 0x0f).into()))),
            0x90..=0x9f => return Ok(Shape::Array(Some((byte & 0x0f).into()))),
            0xa0..=0xbf => (byte & 0x1f).into(),
            0xc1 => return Err(Reader::malformed(format_args!("the reserved marker 0xc1 at byte {at}"))),
            // bin, str: a length of 1, 2 or 4 bytes, then the data.
            0xc4 | 0xd9 => reader.uint(1)?,
            0xc5 | 0xda => reader.uint(2)?,
            0xc6 | 0xdb => reader.uint(4)?,
            // ext: a length, then a type byte and the data.
            0xc7 => 1 + reader.uint(1)?,
            0xc8 => 1 + reader.uint(2)?,
            0xc9 => 1 + reader.uint(4)?,
            // Numbers of 1, 2, 4 or 8 bytes.
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xca | 0xce | 0xd2 => 4,
            0xcb | 0xcf | 0xd3 => 8,
            // fixext: a type byte and 1, 2, 4, 8 or 16 bytes.
            0xd4 => 2,
            0xd5 => 3,
            0xd6 => 5,
            0xd7 => 9,
            0xd8 => 17,
            0xdc => return Ok(Shape::Array(Some(reader.uint(2)?))),
            0xdd => return Ok(Shape::Array(Some(reader.uint(4)?))),
            0xde => return Ok(Shape::Map(Some(reader.uint(2)?))),
            0xdf => return Ok(Shape::Map(Some(reader.uint(4)?))),
        };
        reader.take(skip).map(|_| Shape::Scalar)
    }

    #[inline]
    fn shape(head: &Head<'_>) -> Shape {
        match *head {
            Head::Array(len) => Shape::Array(Some(len.into())),
            Head::Map(len) => Shape::Map(Some(len.into())),
            _ => Shape::Scalar,
        }
    }

    /// Non-string keys are unknown keys.
    #[inline]
    fn key(head: &Head<'_>) -> Key {
        match head {
            Head::Str(bytes) => Key::from_bytes(bytes),
            _ => Key::Other,
        }
    }

    #[inline]
    fn name(head: &Head<'_>, frame: &Bytes) -> NameField {
        match *head {
            Head::Nil | Head::Bool(false) | Head::Uint(0) | Head::Int(0) => NameField::Falsy,
            Head::Float(v) if v == 0.0 || v.is_nan() => NameField::Falsy,
            Head::Str([]) => NameField::Falsy,
            // msgpack-lite decodes invalid UTF-8 with replacement characters.
            Head::Str(bytes) => NameField::Str(Name::from_utf8_lossy(frame.slice_ref(bytes))),
            _ => NameField::Other,
        }
    }

    #[inline]
    fn id(head: &Head<'_>) -> IdField {
        match *head {
            Head::Uint(v) => IdField::from_u64(v),
            Head::Int(v) => IdField::from_i64(v),
            Head::Float(v) => IdField::from_f64(v),
            _ => IdField::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_value(data: &[u8]) -> Result<(), CodecError> {
        reader::check_value::<MsgPackFormat>(data)
    }

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
    fn skip_head_reads_what_head_reads() {
        // Every marker, followed by every kind of rest: nothing, short,
        // enough, and lengths that claim more than there is.
        let rests: [&[u8]; 6] = [
            &[],
            &[0x01],
            &[0x00, 0x02, 0xaa, 0xbb],
            &[
                0x00, 0x00, 0x00, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
            ],
            &[0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x05; 40],
        ];
        for marker in 0..=255u8 {
            for rest in rests {
                let mut data = vec![marker];
                data.extend_from_slice(rest);
                let mut by_head = Reader::new(&data);
                let mut by_skip = Reader::new(&data);
                let head = MsgPackFormat::head(&mut by_head).map(|h| MsgPackFormat::shape(&h));
                let skip = MsgPackFormat::skip_head(&mut by_skip);
                assert_eq!(
                    head.map_err(|e| e.to_string()),
                    skip.map_err(|e| e.to_string()),
                    "{data:02x?}"
                );
                assert_eq!(by_head.pos(), by_skip.pos(), "{data:02x?}");
            }
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
