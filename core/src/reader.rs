//! A bounds-checked reader for binary codecs whose values start with a
//! self-delimiting head (MessagePack, CBOR): it finds the byte range of
//! each value without decoding it, and reads an envelope's routing fields
//! into a [`RawEnvelope`] whose arguments, result and error stay zero-copy
//! slices of the frame.
//!
//! A format implements [`Format`] (how to read the next head, what shape
//! it has and how to classify it as an envelope key, `name` or `id`); the
//! walk, the bounds checks and the nesting limit are written here once.
//!
//! Nothing here allocates in proportion to a length the frame claims: a
//! claimed length is checked against the bytes actually left before it is
//! used, and collections are walked one element at a time (each element
//! takes at least one byte, so a false count runs out of frame quickly).
//! Nesting is limited to [`MAX_DEPTH`] levels, so walking a hostile frame
//! cannot exhaust the stack, and neither can decoding a value that passed.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;

use crate::envelope::{ArgList, ArgsField, IdField, Key, KeyCount, NameField, RawEnvelope};
use crate::CodecError;

/// The deepest nesting of collections (and wrappers such as CBOR tags)
/// accepted, counting the envelope itself (about serde_json's limit for
/// JSON frames).
pub const MAX_DEPTH: usize = 128;

/// What follows a head, as far as the walk is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A scalar: nothing follows.
    Scalar,
    /// An array of this many elements (`None`: indefinite length, up to a
    /// break).
    Array(Option<u64>),
    /// A map of this many key/value pairs (`None`: indefinite length, up
    /// to a break).
    Map(Option<u64>),
    /// A wrapper (such as a CBOR tag) followed by exactly one value.
    Wrapper,
    /// The end of an indefinite-length collection, where a value was
    /// expected.
    Break,
}

/// One binary format's head decoding, which the shared walk uses.
pub trait Format: Sized {
    /// A decoded head: a scalar's content, or a collection's size.
    type Head<'a>: Copy;
    /// The format's name in error messages ("CBOR").
    const NAME: &'static str;
    /// What a format calls one value in error messages ("item").
    const VALUE: &'static str;
    /// The same with its indefinite article ("an item").
    const A_VALUE: &'static str;

    /// Reads one value's head and scalar content; a collection's elements
    /// (and a wrapper's value) are left to the caller.
    fn head<'a>(reader: &mut Reader<'a, Self>) -> Result<Self::Head<'a>, CodecError>;

    /// What follows `head`.
    fn shape(head: &Self::Head<'_>) -> Shape;

    /// Reads one value's head where only its shape matters (a value being
    /// skipped). The default reads the whole [`head`](Format::head); a
    /// format may do less, but must read exactly the same bytes and fail
    /// exactly as `head` does.
    #[inline]
    fn skip_head(reader: &mut Reader<'_, Self>) -> Result<Shape, CodecError> {
        Self::head(reader).map(|head| Self::shape(&head))
    }

    /// Reads the head of an envelope or of its `name`, `args` or `id`
    /// value (a format may read through markers with no meaning here).
    fn value_head<'a>(reader: &mut Reader<'a, Self>) -> Result<Self::Head<'a>, CodecError> {
        Self::head(reader)
    }

    /// Whether the next byte ends an indefinite-length collection (which
    /// it then consumes). Only called for [`Shape::Array`] or
    /// [`Shape::Map`] with no length; formats without those never are.
    fn at_break(reader: &mut Reader<'_, Self>) -> Result<bool, CodecError> {
        let _ = reader;
        Ok(true)
    }

    /// The envelope key a map key names.
    fn key(head: &Self::Head<'_>) -> Key;

    /// Classifies `name` by JavaScript truthiness. A string name is best
    /// kept as a slice of `frame`, which the head borrows from
    /// ([`Bytes::slice_ref`]), so that reading it does not allocate.
    fn name(head: &Self::Head<'_>, frame: &Bytes) -> NameField;

    /// Classifies `id` the way JavaScript's `validateId` does.
    fn id(head: &Self::Head<'_>) -> IdField;
}

/// A cursor over one frame of format `F`.
pub struct Reader<'a, F> {
    buf: &'a [u8],
    pos: usize,
    format: PhantomData<F>,
}

impl<F> fmt::Debug for Reader<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("len", &self.buf.len())
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'a, F: Format> Reader<'a, F> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            format: PhantomData,
        }
    }

    /// The offset of the next byte to read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The whole frame.
    pub fn frame(&self) -> &'a [u8] {
        self.buf
    }

    /// A decode error saying the frame is malformed in format `F`.
    #[cold]
    pub fn malformed(what: impl fmt::Display) -> CodecError {
        CodecError::decode(format!("malformed {}: {what}", F::NAME))
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next byte, which the frame must have.
    pub fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = self
            .peek()
            .ok_or_else(|| Self::malformed(format_args!("the frame ends before a value at byte {}", self.pos)))?;
        self.pos += 1;
        Ok(byte)
    }

    /// `len` bytes, if the frame has them (`len` may be any claimed size).
    pub fn take(&mut self, len: u64) -> Result<&'a [u8], CodecError> {
        let left = self.buf.len() - self.pos;
        if len > left as u64 {
            return Err(self.claims_too_much(len));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    #[cold]
    fn claims_too_much(&self, len: u64) -> CodecError {
        Self::malformed(format_args!(
            "{} at byte {} claims {len} bytes but only {} remain",
            F::A_VALUE,
            self.pos,
            self.buf.len() - self.pos
        ))
    }

    /// A big-endian unsigned integer of `width` bytes (at most 8).
    #[inline]
    pub fn uint(&mut self, width: u64) -> Result<u64, CodecError> {
        Ok(match *self.take(width)? {
            [a] => a.into(),
            [a, b] => u16::from_be_bytes([a, b]).into(),
            [a, b, c, d] => u32::from_be_bytes([a, b, c, d]).into(),
            [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
            ref other => other.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        })
    }

    /// Skips what follows a head just read at nesting level `depth`: a
    /// collection's elements, a wrapper's value (scalars have nothing).
    ///
    /// One loop with a small stack of the items left in each open
    /// collection (the common, shallow case); a value nested deeper than
    /// that stack goes on recursively. Both read the same heads in the same
    /// order, so they accept the same values and fail at the same byte with
    /// the same error.
    #[inline]
    pub fn skip_rest(&mut self, head: F::Head<'a>, depth: usize) -> Result<(), CodecError> {
        match F::shape(&head) {
            // Most heads (keys, names, ids) are whole values: no call.
            Shape::Scalar => Ok(()),
            shape => self.skip_shape(shape, depth),
        }
    }

    /// [`skip_rest`](Self::skip_rest) for a head of which only the shape
    /// was read.
    fn skip_shape(&mut self, shape: Shape, depth: usize) -> Result<(), CodecError> {
        /// Items left in an open collection: a count, or one of these.
        const INDEFINITE: u64 = u64::MAX;
        /// An indefinite map expecting a key or its break.
        const MAP_KEY: u64 = u64::MAX - 1;
        /// An indefinite map expecting the value of the key just read.
        const MAP_VALUE: u64 = u64::MAX - 2;
        /// Any count past this runs out of frame first (every item takes a
        /// byte), so counts are cut here, clear of the markers above.
        const MAX_COUNT: u64 = u64::MAX - 3;
        const STACK: usize = 16;
        if shape == Shape::Scalar {
            return Ok(());
        }
        let mut left = [0u64; STACK];
        let mut open = 0usize;
        let mut shape = shape;
        loop {
            let items = match shape {
                Shape::Scalar => 0,
                Shape::Break => return Err(self.unexpected_break()),
                shape => {
                    let at = depth + open;
                    if at > MAX_DEPTH {
                        return Err(self.too_deep());
                    }
                    if open == STACK {
                        self.skip_nested(shape, at)?;
                        0
                    } else {
                        match shape {
                            Shape::Array(Some(len)) => len.min(MAX_COUNT),
                            Shape::Map(Some(len)) => len.saturating_mul(2).min(MAX_COUNT),
                            Shape::Array(None) => INDEFINITE,
                            Shape::Map(None) => MAP_KEY,
                            _ => 1,
                        }
                    }
                }
            };
            if items > 0 {
                left[open] = items;
                open += 1;
            }
            // On to the next item, closing the collections that are done.
            loop {
                let Some(top) = open.checked_sub(1).map(|i| &mut left[i]) else {
                    return Ok(());
                };
                match *top {
                    0 => open -= 1,
                    INDEFINITE | MAP_KEY if F::at_break(self)? => open -= 1,
                    INDEFINITE => break,
                    MAP_KEY => {
                        *top = MAP_VALUE;
                        break;
                    }
                    MAP_VALUE => {
                        *top = MAP_KEY;
                        break;
                    }
                    _ => {
                        *top -= 1;
                        break;
                    }
                }
            }
            shape = F::skip_head(self)?;
        }
    }

    /// [`skip_rest`](Self::skip_rest) one recursive call per level, for
    /// values nested deeper than its stack.
    fn skip_nested(&mut self, shape: Shape, depth: usize) -> Result<(), CodecError> {
        let (len, per_item) = match shape {
            Shape::Array(len) => (len, 1),
            Shape::Map(len) => (len, 2),
            Shape::Wrapper => (Some(1), 1),
            Shape::Break => return Err(self.unexpected_break()),
            Shape::Scalar => return Ok(()),
        };
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.for_each(len, |reader| {
            for _ in 0..per_item {
                let shape = F::skip_head(reader)?;
                reader.skip_nested(shape, depth + 1)?;
            }
            Ok(())
        })
    }

    #[cold]
    fn unexpected_break(&self) -> CodecError {
        Self::malformed(format_args!("unexpected break at byte {}", self.pos - 1))
    }

    #[cold]
    fn too_deep(&self) -> CodecError {
        CodecError::decode(format!(
            "{} nested deeper than {MAX_DEPTH} levels at byte {}",
            F::NAME,
            self.pos
        ))
    }

    /// Skips one whole value at nesting level `depth`.
    #[inline]
    pub fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        match F::skip_head(self)? {
            Shape::Scalar => Ok(()),
            shape => self.skip_shape(shape, depth),
        }
    }

    /// Calls `each` for every element of a collection of `len` elements
    /// (`None`: indefinite, up to the break).
    pub fn for_each(
        &mut self,
        len: Option<u64>,
        mut each: impl FnMut(&mut Self) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        match len {
            Some(len) => (0..len).try_for_each(|_| each(self)),
            None => {
                while !F::at_break(self)? {
                    each(self)?;
                }
                Ok(())
            }
        }
    }

    /// Fails unless the whole frame was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(Self::malformed(format_args!(
                "{extra} trailing bytes after the {} that ends at byte {}",
                F::VALUE,
                self.pos
            ))),
        }
    }
}

/// Checks that `data` holds exactly one well-formed value of format `F`
/// within the nesting limit.
pub fn check_value<F: Format>(data: &[u8]) -> Result<(), CodecError> {
    let mut reader = Reader::<F>::new(data);
    reader.skip(1)?;
    reader.finish()
}

/// Reads a frame's envelope; arguments, result and error stay raw slices
/// of `frame`.
pub fn envelope<F: Format>(frame: &Bytes) -> Result<RawEnvelope, CodecError> {
    let mut reader = Reader::<F>::new(frame);
    let head = F::value_head(&mut reader)?;
    let Shape::Map(len) = F::shape(&head) else {
        // A well-formed value that is not a map fails validation.
        reader.skip_rest(head, 1)?;
        reader.finish()?;
        return Ok(RawEnvelope::not_a_map());
    };
    // The fields in locals, the envelope made at the end, in place (not
    // built early and moved out through each return).
    let mut fields = Fields::default();
    fields.read(&mut reader, frame, len)?;
    reader.finish()?;
    let Fields {
        keys,
        name,
        args,
        id,
        result,
        error,
    } = fields;
    Ok(RawEnvelope {
        is_map: true,
        keys: keys.total(),
        name,
        args,
        id,
        result,
        error,
    })
}

/// The fields of an envelope map, as read so far.
#[derive(Default)]
struct Fields {
    keys: KeyCount,
    name: NameField,
    args: ArgsField,
    id: IdField,
    result: Option<Bytes>,
    error: Option<Bytes>,
}

impl Fields {
    fn read<F: Format>(
        &mut self,
        reader: &mut Reader<'_, F>,
        frame: &Bytes,
        len: Option<u64>,
    ) -> Result<(), CodecError> {
        // Like a JavaScript object: a repeated key keeps its last value and
        // counts once.
        reader.for_each(len, |reader| {
            let key = F::head(reader)?;
            reader.skip_rest(key, 2)?;
            let start = reader.pos();
            let raw = |reader: &Reader<'_, F>| frame.slice(start..reader.pos());
            let field = F::key(&key);
            self.keys.add(field);
            match field {
                Key::Name => {
                    let head = F::value_head(reader)?;
                    reader.skip_rest(head, 2)?;
                    self.name = F::name(&head, frame);
                }
                Key::Args => {
                    let head = F::value_head(reader)?;
                    let Shape::Array(count) = F::shape(&head) else {
                        reader.skip_rest(head, 2)?;
                        self.args = ArgsField::Invalid;
                        return Ok(());
                    };
                    // Filled where it lies (not moved in once built).
                    self.args = ArgsField::List(ArgList::new());
                    if let ArgsField::List(args) = &mut self.args {
                        reader.for_each(count, |reader| {
                            let start = reader.pos();
                            reader.skip(3)?;
                            args.push(frame.slice(start..reader.pos()));
                            Ok(())
                        })?;
                        args.mark_enveloped();
                    }
                }
                Key::Id => {
                    let head = F::value_head(reader)?;
                    reader.skip_rest(head, 2)?;
                    self.id = F::id(&head);
                }
                Key::Result => {
                    reader.skip(2)?;
                    self.result = Some(raw(reader));
                }
                Key::Error => {
                    reader.skip(2)?;
                    self.error = Some(raw(reader));
                }
                Key::Other => reader.skip(2)?,
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy format with every shape the walk knows: scalars (with and
    /// without content), definite and indefinite arrays and maps, wrappers
    /// and breaks.
    struct Toy;

    impl Format for Toy {
        type Head<'a> = Shape;
        const NAME: &'static str = "toy";
        const VALUE: &'static str = "value";
        const A_VALUE: &'static str = "a value";

        fn head<'a>(reader: &mut Reader<'a, Self>) -> Result<Shape, CodecError> {
            Ok(match reader.byte()? {
                b @ 0x40..=0x4f => Shape::Array(Some(u64::from(b & 0xf))),
                b @ 0x50..=0x5f => Shape::Map(Some(u64::from(b & 0xf))),
                0x60 => Shape::Array(None),
                0x61 => Shape::Map(None),
                0x62 => Shape::Wrapper,
                0x63 => Shape::Break,
                0x64 => Shape::Array(Some(u64::MAX)),
                0x65 => Shape::Map(Some(u64::MAX / 2 + 1)),
                0x66..=0x6f => {
                    let len = reader.uint(1)?;
                    reader.take(len)?;
                    Shape::Scalar
                }
                _ => Shape::Scalar,
            })
        }

        fn shape(head: &Shape) -> Shape {
            *head
        }

        fn at_break(reader: &mut Reader<'_, Self>) -> Result<bool, CodecError> {
            let at_break = reader.peek() == Some(0x63);
            if at_break {
                reader.byte()?;
            }
            Ok(at_break)
        }

        fn key(_: &Shape) -> Key {
            Key::Other
        }

        fn name(_: &Shape, _: &Bytes) -> NameField {
            NameField::Other
        }

        fn id(_: &Shape) -> IdField {
            IdField::Invalid
        }
    }

    /// The loop and the recursive walk on the same bytes: same outcome,
    /// same error, same end.
    fn both(data: &[u8]) -> Result<usize, String> {
        let walk = |nested: bool| {
            let mut reader = Reader::<Toy>::new(data);
            let outcome = Toy::skip_head(&mut reader).and_then(|shape| {
                if nested {
                    reader.skip_nested(shape, 1)
                } else {
                    reader.skip_shape(shape, 1)
                }
            });
            outcome.map(|()| reader.pos()).map_err(|e| e.to_string())
        };
        let (looped, nested) = (walk(false), walk(true));
        assert_eq!(looped, nested, "{data:02x?}");
        looped
    }

    #[test]
    fn the_loop_walks_as_the_recursion_does() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut ok, mut deep) = (0, 0);
        for _ in 0..50_000 {
            let len = rng.random_range(0..200);
            // Mostly collection heads, so that values nest deep and often
            // past the loop's own stack.
            let data: Vec<u8> = (0..len)
                .map(|_| match rng.random_range(0..10) {
                    0..=3 => 0x40 + rng.random_range(0..3),
                    4 => 0x50 + rng.random_range(0..3),
                    5 => 0x60 + rng.random_range(0..4),
                    6 => 0x66,
                    7 => rng.random_range(0..4),
                    _ => rng.random(),
                })
                .collect();
            if let Ok(end) = both(&data) {
                ok += 1;
                deep += usize::from(end > 20);
            }
        }
        assert!(ok > 500 && deep > 50, "{ok} values walked, {deep} long ones");
        // Nesting at the limit, past it, and much deeper than the stack.
        for levels in [15, 16, 17, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 10_000] {
            for open in [0x41, 0x60, 0x62] {
                let mut data = vec![open; levels];
                data.push(0);
                data.extend(std::iter::repeat_n(0x63, if open == 0x60 { levels } else { 0 }));
                let outcome = both(&data);
                assert_eq!(
                    outcome.is_ok(),
                    levels <= MAX_DEPTH,
                    "{levels} levels of {open:02x}: {outcome:?}"
                );
            }
        }
    }
}
