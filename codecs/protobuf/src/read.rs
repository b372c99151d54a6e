//! The envelope read by hand, for the frames ws-messaging peers write: one
//! `Envelope` field holding a `Message` (name, arguments, id) or an `Ack`
//! (id, result or error), each field once (arguments repeated), nothing
//! unknown. That reading allocates nothing but the argument list, where
//! prost would allocate the name and a `Vec` of arguments.
//!
//! Anything else (unknown or repeated fields, groups, a second `Envelope`
//! member, a malformed frame) is not read here: [`envelope`] answers `None`
//! and prost decodes the frame, with prost's merge rules and errors. Where
//! this reader answers, it answers what prost's decoding would (a test
//! holds it to that on many mutated frames).

use bytes::Bytes;
use ws_messaging_core::envelope::{ArgList, ArgsField, Name, NameField, RawEnvelope};

use crate::id_field;

/// Field keys (field number << 3 | wire type), each a one-byte varint.
const MESSAGE: u64 = 1 << 3 | 2;
const ACK: u64 = 2 << 3 | 2;
const NAME: u64 = 1 << 3 | 2;
const ARGS: u64 = 2 << 3 | 2;
const ID: u64 = 3 << 3;
const ACK_ID: u64 = 1 << 3;
const RESULT: u64 = 2 << 3 | 2;
const ERROR: u64 = 3 << 3 | 2;

/// A bounds-checked cursor over `buf[pos..end]`; `None` ends the reading.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl Cursor<'_> {
    fn more(&self) -> bool {
        self.pos < self.end
    }

    /// A varint as prost reads it: at most ten bytes, the tenth at most 1.
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        // Keys and short lengths take one byte.
        if self.pos < self.end && self.buf[self.pos] < 0x80 {
            self.pos += 1;
            return Some(self.buf[self.pos - 1].into());
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.buf[..self.end].get(self.pos)?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    /// A length-delimited field's content: its range in the buffer.
    #[inline]
    fn delimited(&mut self) -> Option<std::ops::Range<usize>> {
        let len = self.varint()?;
        if len > (self.end - self.pos) as u64 {
            return None;
        }
        let start = self.pos;
        self.pos += len as usize;
        Some(start..self.pos)
    }
}

/// The frame's envelope, when it has the usual shape; `None` otherwise.
#[inline]
pub(crate) fn envelope(frame: &Bytes) -> Option<RawEnvelope> {
    let mut cursor = Cursor {
        buf: frame,
        pos: 0,
        end: frame.len(),
    };
    let key = cursor.varint()?;
    let body = cursor.delimited()?;
    if cursor.more() {
        return None;
    }
    let body = Cursor {
        buf: frame,
        pos: body.start,
        end: body.end,
    };
    match key {
        MESSAGE => message(frame, body),
        ACK => ack(frame, body),
        _ => None,
    }
}

#[inline]
fn message(frame: &Bytes, mut cursor: Cursor<'_>) -> Option<RawEnvelope> {
    let mut name = None;
    let mut id = None;
    let mut args = ArgList::new();
    while cursor.more() {
        match cursor.varint()? {
            NAME if name.is_none() => name = Some(cursor.delimited()?),
            ARGS => args.push(frame.slice(cursor.delimited()?)),
            ID if id.is_none() => id = Some(cursor.varint()?),
            _ => return None,
        }
    }
    let name = match name {
        Some(range) if !range.is_empty() => NameField::Str(Name::from_utf8(frame.slice(range)).ok()?),
        _ => NameField::Falsy,
    };
    Some(RawEnvelope {
        is_map: true,
        keys: 2 + usize::from(id.is_some()),
        name,
        args: ArgsField::List(args),
        id: id_field(id),
        ..RawEnvelope::default()
    })
}

fn ack(frame: &Bytes, mut cursor: Cursor<'_>) -> Option<RawEnvelope> {
    let mut id = None;
    let mut result = None;
    let mut error = None;
    while cursor.more() {
        match cursor.varint()? {
            ACK_ID if id.is_none() => id = Some(cursor.varint()?),
            RESULT if result.is_none() && error.is_none() => result = Some(frame.slice(cursor.delimited()?)),
            ERROR if result.is_none() && error.is_none() => error = Some(frame.slice(cursor.delimited()?)),
            _ => return None,
        }
    }
    Some(RawEnvelope {
        is_map: true,
        keys: usize::from(id.is_some()) + usize::from(result.is_some() || error.is_some()),
        id: id_field(id),
        result,
        error,
        ..RawEnvelope::default()
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use ws_messaging_core::Codec;

    use super::*;
    use crate::Protobuf;

    /// xorshift64: reproducible frames.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }

        fn byte(&mut self) -> u8 {
            self.below(256) as u8
        }

        fn byte_of(&mut self, bytes: &[u8]) -> u8 {
            bytes[self.below(bytes.len())]
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for id in [None, Some(1), Some(300), Some(u64::MAX)] {
            for args in [&[][..], &[&b""[..]], &[b"\x08\x01", b"\x0a\x03abc"]] {
                for name in ["", "echo", "caf\u{e9}"] {
                    let message = crate::pb::Message {
                        name: name.into(),
                        args: args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
                        id,
                    };
                    seeds.push(
                        crate::pb::Envelope {
                            kind: Some(crate::pb::envelope::Kind::Message(message)),
                        }
                        .encode_to_vec(),
                    );
                }
            }
            for outcome in [
                None,
                Some(crate::pb::ack::Outcome::Result(Bytes::from_static(b"\x08\x02"))),
                Some(crate::pb::ack::Outcome::Error(Bytes::from_static(b"no"))),
            ] {
                let ack = crate::pb::Ack { id, outcome };
                seeds.push(
                    crate::pb::Envelope {
                        kind: Some(crate::pb::envelope::Kind::Ack(ack)),
                    }
                    .encode_to_vec(),
                );
            }
        }
        seeds
    }

    #[test]
    fn reads_what_prost_reads() {
        let seeds = seeds();
        // The usual frames are all read here, as prost reads them.
        for seed in &seeds {
            let frame = Bytes::from(seed.clone());
            let raw = envelope(&frame).expect("the usual shape");
            assert_eq!(Ok(raw), crate::decode_with_prost(&frame).map_err(|e| e.to_string()));
        }
        // Mutated ones: where this reader answers, prost answers the same.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut read, mut left) = (0, 0);
        for _ in 0..200_000 {
            let mut frame = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(frame.len() + 1);
                match rng.below(5) {
                    0 if at < frame.len() => frame[at] ^= 1 << rng.below(8),
                    1 if at < frame.len() => frame[at] = rng.byte_of(&[0x08, 0x0a, 0x12, 0x18, 0x1a, 0x80, 0xff, 0]),
                    2 => frame.insert(at, rng.byte()),
                    3 => frame.truncate(at),
                    _ => {
                        let copy = frame[at..(at + rng.below(6)).min(frame.len())].to_vec();
                        frame.splice(at..at, copy);
                    }
                }
            }
            let frame = Bytes::from(frame);
            match envelope(&frame) {
                Some(raw) => {
                    read += 1;
                    assert_eq!(
                        Ok(raw),
                        crate::decode_with_prost(&frame).map_err(|e| e.to_string()),
                        "{:02x?}",
                        &frame[..]
                    );
                }
                None => left += 1,
            }
            // Either way, the codec's answer is prost's.
            assert_eq!(
                Protobuf.decode_envelope(&frame).map_err(|e| e.to_string()),
                crate::decode_with_prost(&frame).map_err(|e| e.to_string())
            );
        }
        assert!(read > 10_000 && left > 10_000, "{read} read here, {left} left to prost");
    }
}
