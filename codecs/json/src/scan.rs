//! The envelope read in one pass over the frame's bytes: the fast path of
//! [`Json::decode_envelope`](crate::Json) and
//! [`Json::decode_text_envelope`](crate::Json).
//!
//! It checks the whole frame against the JSON grammar (every argument, the
//! result, the error and unknown keys' values included: nothing is
//! accepted that `JSON.parse` would refuse) while it finds the routing
//! fields and the raw slices, and, for a frame not known to be UTF-8, that
//! the frame is UTF-8 (see [`envelope`]). It handles the shapes peers send:
//! keys and the name as plain strings, the id as a plain integer. On
//! anything else (an escape in a key or the name, a non-string name, a
//! fractional or negative id) and on any error it stops with
//! [`Stop::Bail`], and the serde-based reader decides, with its own error
//! messages. So this path only ever accepts what that reader accepts, and
//! gives the same envelope (the tests below compare the two on mutated
//! frames). A frame nested deeper than [`MAX_DEPTH`] is refused here
//! ([`Stop::TooDeep`]); [`too_deep`] is the same check for the frames the
//! serde-based reader reads.
//!
//! The end of the frame needs no check of its own: past the end the
//! scanner reads a 0 byte, which the grammar refuses wherever it is read
//! (outside strings it is no token; inside, a control character).

use bytes::Bytes;
use ws_messaging_core::envelope::{ArgList, ArgsField, IdField, Key, KeyCount, Name, NameField, RawEnvelope};
use ws_messaging_core::reader::MAX_DEPTH;

/// Why the scan stopped short of an envelope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Left to the serde-based reader.
    Bail,
    /// Nested deeper than [`MAX_DEPTH`], counting the envelope itself.
    TooDeep,
}

type Scan<T> = Result<T, Stop>;

/// Reads `frame` as an envelope map.
///
/// With `UTF8`, a frame that is not UTF-8 is never accepted (the scan
/// bails): outside strings the grammar admits only ASCII, and inside a
/// string every run of bytes between quotes, backslashes and control
/// characters that holds a byte above 0x7f is checked whole (a UTF-8
/// sequence never spans an ASCII byte, so checking run by run is checking
/// the frame). Without `UTF8`, the caller vouches for the frame (the
/// WebSocket layer checks text frames).
pub(crate) fn envelope<const UTF8: bool>(frame: &Bytes) -> Scan<RawEnvelope> {
    let mut s = Scanner::<UTF8> { b: frame, pos: 0 };
    // The fields in locals, the envelope made at the end, in place.
    let (mut name, mut args, mut id) = (NameField::Absent, ArgsField::Absent, IdField::Absent);
    let (mut result, mut error) = (None, None);
    let mut keys = KeyCount::default();
    if s.ws() != b'{' {
        return Err(Stop::Bail);
    }
    s.pos += 1;
    let mut c = s.ws();
    if c == b'}' {
        s.pos += 1;
    } else {
        loop {
            if c != b'"' {
                return Err(Stop::Bail);
            }
            let key = match known_key(frame, s.pos) {
                Some((key, len)) => {
                    s.pos += len;
                    key
                }
                None => Key::from_bytes(s.plain_string()?),
            };
            keys.add(key);
            if s.ws() != b':' {
                return Err(Stop::Bail);
            }
            s.pos += 1;
            let first = s.ws();
            match key {
                Key::Name => name = s.name(first, frame)?,
                Key::Args => {
                    // Filled where it lies.
                    args = ArgsField::List(ArgList::new());
                    if let ArgsField::List(list) = &mut args {
                        s.args(first, frame, list)?;
                        list.mark_enveloped();
                    }
                }
                Key::Id => id = s.id()?,
                Key::Result => result = Some(s.raw(first, frame, 1)?),
                Key::Error => error = Some(s.raw(first, frame, 1)?),
                Key::Other => s.value(first, 1)?,
            }
            match s.ws() {
                b',' => {
                    s.pos += 1;
                    c = s.ws();
                }
                b'}' => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(Stop::Bail),
            }
        }
    }
    s.ws();
    if s.pos != frame.len() {
        return Err(Stop::Bail);
    }
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

/// `key` (six bytes at most), quotes included, in the low bytes of a
/// little-endian word.
const fn quoted(key: &[u8]) -> u64 {
    let mut bytes = [0; 8];
    bytes[0] = b'"';
    let mut i = 0;
    while i < key.len() {
        bytes[i + 1] = key[i];
        i += 1;
    }
    bytes[key.len() + 1] = b'"';
    u64::from_le_bytes(bytes)
}

/// The known key, quotes included, at `i` (where a quote is), and its
/// length: the usual keys read in a few compares of one word.
#[inline(always)]
fn known_key(b: &[u8], i: usize) -> Option<(Key, usize)> {
    const MASK4: u64 = u64::MAX >> 32;
    const MASK6: u64 = u64::MAX >> 16;
    const MASK7: u64 = u64::MAX >> 8;
    const NAME: u64 = quoted(b"name");
    const ARGS: u64 = quoted(b"args");
    const ID: u64 = quoted(b"id");
    const RESULT: u64 = quoted(b"result");
    const ERROR: u64 = quoted(b"error");
    let w = word(b, i)?;
    Some(if w & MASK6 == NAME {
        (Key::Name, 6)
    } else if w & MASK6 == ARGS {
        (Key::Args, 6)
    } else if w & MASK4 == ID {
        (Key::Id, 4)
    } else if w == RESULT {
        (Key::Result, 8)
    } else if w & MASK7 == ERROR {
        (Key::Error, 7)
    } else {
        return None;
    })
}

/// Whether `frame` (valid JSON) nests deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep(frame: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in frame {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that ends a run is set: a quote, a
/// backslash, a control character and, with `high`, a byte above 0x7f
/// (bits above the lowest flagged byte may be set falsely; the lowest is
/// exact).
#[inline(always)]
fn run_ends(w: u64, high: bool) -> u64 {
    // The high bit of `x.wrapping_sub(ONES * k) & !x` is set for each byte
    // of `x` below `k` (exact up to the lowest; above it a borrow may set
    // it falsely). Quotes and backslashes are the zero bytes of `w` xor
    // their value, whose high bits are those of `w`.
    let below = w.wrapping_sub(ONES * 0x20)
        | (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES)
        | (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    if high {
        (below | w) & HIGHS
    } else {
        below & !w & HIGHS
    }
}

/// Whether `c` ends a run inside a string: a quote, a backslash, a
/// control character and, with `high`, a byte above 0x7f.
#[inline(always)]
fn ends_run(c: u8, high: bool) -> bool {
    c == b'"' || c == b'\\' || c < 0x20 || (high && c >= 0x80)
}

/// The eight bytes of `b` from `i`, if there are eight.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map(|w| u64::from_le_bytes(*w))
}

/// The index of the first byte flagged in `flags` (not 0) by [`run_ends`].
#[inline(always)]
fn first_flagged(flags: u64) -> usize {
    (flags.trailing_zeros() / 8) as usize
}

/// The length of the run at the start of `rest`: the bytes before the
/// first one that [`ends_run`] (or all of them).
#[inline(always)]
fn run_len(rest: &[u8], high: bool) -> usize {
    // Eight bytes at a time (the lowest flagged byte of a word is the first
    // byte that ends the run): one word, for the short strings, then
    // blocks of four.
    let Some(w) = word(rest, 0) else {
        return rest.iter().position(|&c| ends_run(c, high)).unwrap_or(rest.len());
    };
    let flags = run_ends(w, high);
    if flags != 0 {
        return first_flagged(flags);
    }
    let mut i = 8;
    while let Some(block) = rest.get(i..).and_then(<[u8]>::first_chunk::<32>) {
        let flags: [u64; 4] = std::array::from_fn(|k| {
            let w: [u8; 8] = std::array::from_fn(|j| block[8 * k + j]);
            run_ends(u64::from_le_bytes(w), high)
        });
        if flags != [0; 4] {
            let k = flags.iter().take_while(|f| **f == 0).count();
            return i + 8 * k + first_flagged(flags[k]);
        }
        i += 32;
    }
    while let Some(w) = word(rest, i) {
        let flags = run_ends(w, high);
        if flags != 0 {
            return i + first_flagged(flags);
        }
        i += 8;
    }
    i + rest[i..]
        .iter()
        .position(|&c| ends_run(c, high))
        .unwrap_or(rest.len() - i)
}

/// Reads the frame's bytes from `pos` on; with `UTF8`, checks that the
/// strings are UTF-8 (see [`envelope`]). The envelope's own fields are read
/// here; the values in them by the functions below, which keep the index
/// in a local.
struct Scanner<'a, const UTF8: bool> {
    b: &'a [u8],
    pos: usize,
}

impl<const UTF8: bool> Scanner<'_, UTF8> {
    /// Skips JSON whitespace; the byte after it (0 at the end).
    #[inline(always)]
    fn ws(&mut self) -> u8 {
        let c;
        (c, self.pos) = ws(self.b, self.pos);
        c
    }

    /// The length of the run of bytes from `pos` before a quote, a
    /// backslash, a control character or the end; with `UTF8`, a run that
    /// holds a byte above 0x7f must be UTF-8.
    #[inline(always)]
    fn plain_run(&self) -> Scan<usize> {
        plain_run::<UTF8>(&self.b[self.pos..])
    }

    /// A string with no escape, from its opening quote at `pos`: its bytes
    /// between the quotes.
    #[inline(always)]
    fn plain_string(&mut self) -> Scan<&[u8]> {
        let start = self.pos + 1;
        self.pos = start;
        let len = self.plain_run()?;
        self.pos += len;
        if at(self.b, self.pos) != b'"' {
            return Err(Stop::Bail);
        }
        self.pos += 1;
        Ok(&self.b[start..start + len])
    }

    /// The name, whose first byte is `c`.
    fn name(&mut self, c: u8, frame: &Bytes) -> Scan<NameField> {
        if c != b'"' {
            return Err(Stop::Bail);
        }
        let name = self.plain_string()?;
        Ok(if name.is_empty() {
            NameField::Falsy
        } else {
            // The frame is UTF-8, and so is every string in it.
            NameField::Str(Name::from_utf8(frame.slice_ref(name)).map_err(|_| Stop::Bail)?)
        })
    }

    /// A plain unsigned integer id.
    fn id(&mut self) -> Scan<IdField> {
        let start = self.pos;
        let mut id = 0u64;
        let mut i = start;
        while let Some(digit) = at(self.b, i).checked_sub(b'0').filter(|d| *d < 10) {
            id = id
                .checked_mul(10)
                .and_then(|id| id.checked_add(u64::from(digit)))
                .ok_or(Stop::Bail)?;
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && self.b[start] == b'0') {
            return Err(Stop::Bail);
        }
        if let b'.' | b'e' | b'E' = at(self.b, i) {
            return Err(Stop::Bail);
        }
        self.pos = i;
        Ok(IdField::from_u64(id))
    }

    /// The array of arguments (at depth 2: inside the envelope), whose
    /// first byte is `c`: its elements, as raw slices of `frame`, pushed to
    /// `args` (filled in place: a list returned through a `Result` would be
    /// moved once more).
    fn args(&mut self, c: u8, frame: &Bytes, args: &mut ArgList) -> Scan<()> {
        if c != b'[' {
            return Err(Stop::Bail);
        }
        self.pos += 1;
        let mut c = self.ws();
        if c == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let start = self.pos;
            self.value(c, 2)?;
            args.push(frame.slice(start..self.pos));
            match self.ws() {
                b',' => {
                    self.pos += 1;
                    c = self.ws();
                }
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Bail),
            }
        }
    }

    /// One value inside a collection at `depth`, whose first byte is `c`,
    /// as the slice of `frame` it occupies.
    #[inline(always)]
    fn raw(&mut self, c: u8, frame: &Bytes, depth: usize) -> Scan<Bytes> {
        let start = self.pos;
        self.value(c, depth)?;
        Ok(frame.slice(start..self.pos))
    }

    /// Skips one value inside a collection at `depth`, whose first byte is
    /// `c`, checking it against the JSON grammar.
    #[inline(always)]
    fn value(&mut self, c: u8, depth: usize) -> Scan<()> {
        self.pos = value::<UTF8>(self.b, self.pos, c, depth)?;
        Ok(())
    }
}

/// The byte at `i`, or 0 past the end.
#[inline(always)]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Skips JSON whitespace from `i`: the byte after it (0 at the end) and
/// its index.
#[inline(always)]
fn ws(b: &[u8], i: usize) -> (u8, usize) {
    let c = at(b, i);
    if c > b' ' {
        (c, i)
    } else {
        ws_run(b, i)
    }
}

#[inline(never)]
fn ws_run(b: &[u8], mut i: usize) -> (u8, usize) {
    loop {
        match at(b, i) {
            b' ' | b'\n' | b'\t' | b'\r' => i += 1,
            c => return (c, i),
        }
    }
}

// The open collections of a value are a stack of bits.
const _: () = assert!(MAX_DEPTH <= 128);

/// Skips the value at `i`, whose first byte is `c`, inside a collection at
/// `depth`, checking it against the JSON grammar: the index after it.
///
/// One loop, no recursion: the collections open inside the value are a
/// stack of bits (set for an object), so the index stays in a register.
fn value<const UTF8: bool>(b: &[u8], mut i: usize, mut c: u8, depth: usize) -> Scan<usize> {
    let mut objects = 0u128;
    let mut open = 0usize;
    loop {
        // A value starts at `i`, with `c`.
        match c {
            b'"' => i = string::<UTF8>(b, i + 1)?,
            b'0'..=b'9' | b'-' => i = number(b, i)?,
            b'{' | b'[' => {
                if depth + open + 1 > MAX_DEPTH {
                    return Err(Stop::TooDeep);
                }
                let object = c == b'{';
                (c, i) = ws(b, i + 1);
                if c != if object { b'}' } else { b']' } {
                    objects = objects << 1 | u128::from(object);
                    open += 1;
                    if object {
                        (c, i) = key::<UTF8>(b, i, c)?;
                    }
                    continue;
                }
                i += 1; // empty
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            _ => return Err(Stop::Bail),
        }
        // After a value: the next one, or the end of collections.
        loop {
            if open == 0 {
                return Ok(i);
            }
            let object = objects & 1 == 1;
            (c, i) = ws(b, i);
            if c == b',' {
                (c, i) = ws(b, i + 1);
                if object {
                    (c, i) = key::<UTF8>(b, i, c)?;
                }
                break;
            }
            if c != if object { b'}' } else { b']' } {
                return Err(Stop::Bail);
            }
            i += 1;
            objects >>= 1;
            open -= 1;
        }
    }
}

/// A key and its colon, from `i`, where the key's first byte `c` is: the
/// first byte of the value after them, and its index.
#[inline(always)]
fn key<const UTF8: bool>(b: &[u8], i: usize, c: u8) -> Scan<(u8, usize)> {
    if c != b'"' {
        return Err(Stop::Bail);
    }
    let (c, i) = ws(b, string::<UTF8>(b, i + 1)?);
    if c != b':' {
        return Err(Stop::Bail);
    }
    Ok(ws(b, i + 1))
}

#[inline(always)]
fn literal(b: &[u8], i: usize, word: &[u8]) -> Scan<usize> {
    if b.get(i..).is_some_and(|rest| rest.starts_with(word)) {
        Ok(i + word.len())
    } else {
        Err(Stop::Bail)
    }
}

/// The length of the run at the start of `rest` (see
/// [`Scanner::plain_run`]).
#[inline(always)]
fn plain_run<const UTF8: bool>(rest: &[u8]) -> Scan<usize> {
    let len = run_len(rest, UTF8);
    if UTF8 && rest.get(len).is_some_and(|&c| c >= 0x80) {
        return utf8_run(rest, len);
    }
    Ok(len)
}

/// The rest of a string, from `i` after its opening quote: the index after
/// its closing quote.
#[inline(always)]
fn string<const UTF8: bool>(b: &[u8], mut i: usize) -> Scan<usize> {
    loop {
        i += plain_run::<UTF8>(&b[i..])?;
        match at(b, i) {
            b'"' => return Ok(i + 1),
            b'\\' => i = escape(b, i)?,
            _ => return Err(Stop::Bail), // a control character, or the end
        }
    }
}

/// An escape, from its backslash at `i`: the index after it.
#[inline(never)]
fn escape(b: &[u8], i: usize) -> Scan<usize> {
    match at(b, i + 1) {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
        b'u' => {
            let hex = b.get(i + 2..i + 6).ok_or(Stop::Bail)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(Stop::Bail);
            }
            Ok(i + 6)
        }
        _ => Err(Stop::Bail),
    }
}

/// The index of the first byte from `i` on that is not a digit.
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    while at(b, i).is_ascii_digit() {
        i += 1;
    }
    i
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` from `i`: the
/// index after it.
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> Scan<usize> {
    if at(b, i) == b'-' {
        i += 1;
    }
    match at(b, i) {
        b'0' => {
            i += 1;
            if at(b, i).is_ascii_digit() {
                return Err(Stop::Bail);
            }
        }
        b'1'..=b'9' => i = digits(b, i + 1),
        _ => return Err(Stop::Bail),
    }
    let c = at(b, i);
    if c == b'.' || c | 0x20 == b'e' {
        i = fraction_exponent(b, i)?;
    }
    Ok(i)
}

/// The fraction and exponent of a number, from `i`: the index after them.
#[inline(never)]
fn fraction_exponent(b: &[u8], mut i: usize) -> Scan<usize> {
    if at(b, i) == b'.' {
        let start = i + 1;
        i = digits(b, start);
        if i == start {
            return Err(Stop::Bail);
        }
    }
    if at(b, i) | 0x20 == b'e' {
        i += 1;
        if let b'+' | b'-' = at(b, i) {
            i += 1;
        }
        let start = i;
        i = digits(b, start);
        if i == start {
            return Err(Stop::Bail);
        }
    }
    Ok(i)
}

/// The length of the run at the start of `rest` whose byte at `high`, the
/// first above 0x7f, ends [`run_len`] with bytes above 0x7f flagged: the
/// run is read on to its end and the part from `high` on must be UTF-8
/// (the bytes before are ASCII).
#[inline(never)]
fn utf8_run(rest: &[u8], high: usize) -> Scan<usize> {
    let len = high + run_len(&rest[high..], false);
    std::str::from_utf8(&rest[high..len]).map_err(|_| Stop::Bail)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde_envelope;

    /// Whatever the fast path accepts, the serde-based reader accepts too,
    /// with the same envelope; the fast path that checks UTF-8 accepts no
    /// frame that is not, and on UTF-8 agrees with the one that does not.
    fn agree(frame: &[u8]) -> bool {
        let frame = Bytes::copy_from_slice(frame);
        let checked = envelope::<true>(&frame);
        if std::str::from_utf8(&frame).is_err() {
            assert!(checked.is_err(), "accepted a frame that is not UTF-8: {frame:?}");
            return false;
        }
        assert_eq!(
            checked,
            envelope::<false>(&frame),
            "{:?}",
            String::from_utf8_lossy(&frame)
        );
        let Ok(fast) = checked else {
            return false;
        };
        match serde_envelope(&frame) {
            Ok(slow) => assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&frame)),
            Err(e) => panic!(
                "accepted what serde refuses ({e}): {:?}",
                String::from_utf8_lossy(&frame)
            ),
        }
        true
    }

    const SEEDS: [&str; 10] = [
        r#"{"name":"echo","args":[{"id":7,"name":"small","tags":["a","b"],"ok":true,"ratio":0.5}],"id":24}"#,
        r#" {"name":"tick","args":[1,-2.5e-3,"s\"q\\u0041\u00e9",null,true,false,[],{},[[1]],{"a":{"b":[]}}]} "#,
        r#"{"id":9,"result":{"x":[1,2,{"y":"z"}]}}"#,
        r#"{"id":18446744073709551615,"error":"Error: boom"}"#,
        r#"{"name":"é✓","args":[],"id":0,"extra":[0.0,1E+2,-0,1e-7]}"#,
        r#"{}"#,
        r#"{"name":"","args":[""],"name":"again"}"#,
        "{\"name\":\"a\",\r\n\t\"args\" : [ 1 , 2 ] }",
        r#"{"name":"überall-ñ-0123456789","args":["0123456789abcdé✓😀xyz0123456789abcdef0123456789","a\"é\\✓"],"id":3,"ö":"ß"}"#,
        r#"{"id":77,"result":{"clé":"valeur longue, très longue: 0123456789","liste":["日本語のテキスト",1e3]}}"#,
    ];

    #[test]
    fn the_usual_shapes_take_the_fast_path() {
        for seed in SEEDS {
            assert!(agree(seed.as_bytes()), "{seed}");
        }
    }

    #[test]
    fn what_json_refuses_is_left_to_serde() {
        for bad in [
            r#"{"name":"a","args":[01]}"#,
            r#"{"name":"a","args":[1.]}"#,
            r#"{"name":"a","args":[.5]}"#,
            r#"{"name":"a","args":[1e]}"#,
            r#"{"name":"a","args":[-]}"#,
            r#"{"name":"a","args":[1,]}"#,
            r#"{"name":"a","args":[tru]}"#,
            r#"{"name":"a","args":["\x"]}"#,
            r#"{"name":"a","args":["\u12G4"]}"#,
            "{\"name\":\"a\",\"args\":[\"\t\"]}",
            r#"{"name":"a","args":[{"k" 1}]}"#,
            r#"{"name":"a","args":[{1:1}]}"#,
            r#"{"name":"a","args":[],}"#,
            r#"{"name":"a","args":[]} x"#,
            r#"{"name":"a","args":[]"#,
            r#"{"name":"a\u0062","args":[]}"#,
            r#"{"n\u0061me":"a","args":[]}"#,
            r#"{"name":1,"args":[]}"#,
            r#"{"name":"a","args":[],"id":2.0}"#,
            r#"{"name":"a","args":[],"id":-1}"#,
            r#"{"name":"a","args":[],"id":18446744073709551616}"#,
            "\u{c}{}",
        ] {
            for utf8 in [
                envelope::<true>(&Bytes::copy_from_slice(bad.as_bytes())),
                envelope::<false>(&Bytes::copy_from_slice(bad.as_bytes())),
            ] {
                assert_eq!(utf8, Err(Stop::Bail), "{bad}");
            }
        }
        use ws_messaging_core::Codec;
        let not_utf8 = Bytes::from_static(b"{\"name\":\"\xff\",\"args\":[]}");
        assert!(crate::Json.decode_envelope(&not_utf8).is_err());
        // serde_json does not look at the strings it skips: the frame is
        // refused all the same.
        let skipped = Bytes::from_static(b"{\"name\":\"a\",\"args\":[],\"x\":\"\xff\"}");
        assert!(serde_envelope(&skipped).is_ok());
        let error = crate::Json.decode_envelope(&skipped).unwrap_err();
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }

    #[test]
    fn nesting_is_limited_in_both_readers() {
        // The envelope is level 1, `args` level 2: an argument may hold
        // MAX_DEPTH - 2 levels.
        let nested = |levels: usize| {
            let frame = format!(
                r#"{{"name":"a","args":[{}1{}],"x":"[[["}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            );
            Bytes::from(frame)
        };
        let deepest = nested(MAX_DEPTH - 2);
        assert!(agree(&deepest));
        assert!(!too_deep(&deepest));
        let deeper = nested(MAX_DEPTH - 1);
        assert_eq!(envelope::<true>(&deeper), Err(Stop::TooDeep));
        assert_eq!(envelope::<false>(&deeper), Err(Stop::TooDeep));
        assert!(too_deep(&deeper));
        assert!(serde_envelope(&deeper).is_ok(), "serde alone would take it");
        // Refused whichever reader reads it.
        use ws_messaging_core::Codec;
        let escaped = String::from_utf8(deeper.to_vec())
            .unwrap()
            .replace(r#""name""#, r#""n\u0061me""#);
        let escaped = Bytes::from(escaped);
        assert_eq!(envelope::<true>(&escaped), Err(Stop::Bail));
        for frame in [&deeper, &escaped] {
            let error = crate::Json.decode_envelope(frame).unwrap_err();
            assert!(error.to_string().contains("nested deeper than 128"), "{error}");
        }
        assert!(crate::Json.decode_envelope(&deepest).is_ok());
        // Objects and arrays in turn, each closed by its own bracket.
        let mixed = |levels: usize, close: [&str; 2]| {
            let open: String = (0..levels).map(|l| ["{\"k\":", "["][l % 2]).collect();
            let shut: String = (0..levels).rev().map(|l| close[l % 2]).collect();
            Bytes::from(format!(r#"{{"name":"a","args":[{open}1{shut}]}}"#))
        };
        for levels in [1, 2, 3, MAX_DEPTH - 3, MAX_DEPTH - 2] {
            assert!(agree(&mixed(levels, ["}", "]"])), "{levels}");
            assert_eq!(
                envelope::<true>(&mixed(levels, ["]", "}"])),
                Err(Stop::Bail),
                "{levels}"
            );
        }
        assert_eq!(envelope::<true>(&mixed(MAX_DEPTH - 1, ["}", "]"])), Err(Stop::TooDeep));
    }

    #[test]
    fn runs_end_at_the_first_quote_backslash_or_control_character() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let mut text = "é".repeat(len / 2).into_bytes();
                text.extend(std::iter::repeat_n(b'a', len % 2));
                let at = text.len();
                text.extend([stop, b'"', b'"']);
                text.extend(b"x\"".repeat(5));
                let s = Scanner::<true> { b: &text, pos: 0 };
                assert_eq!(s.plain_run(), Ok(at), "{len} {stop:#x}");
                let s = Scanner::<false> { b: &text, pos: 0 };
                assert_eq!(s.plain_run(), Ok(at), "{len} {stop:#x}");
            }
        }
    }

    #[test]
    fn mutated_frames_never_disagree() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-tfnrul\"ax\t\x01\xc3\xa9\x80\xbf\xc0\xe2\xed\xf0\xf4\xff";
        let (mut fast, mut not_utf8) = (0, 0);
        for round in 0..40_000 {
            let mut frame = SEEDS[round % SEEDS.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % (frame.len() + 1);
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 4 {
                    0 if at < frame.len() => frame[at] = c,
                    1 if at < frame.len() => {
                        frame.remove(at);
                    }
                    2 => {
                        let sequence = SEQUENCES[(next() as usize) % SEQUENCES.len()].0;
                        frame.splice(at..at, sequence.iter().copied());
                    }
                    _ => frame.insert(at, c),
                }
            }
            fast += usize::from(agree(&frame));
            not_utf8 += usize::from(std::str::from_utf8(&frame).is_err());
        }
        // The check means something only if many mutants were accepted,
        // and many were not UTF-8.
        assert!(fast > 4_000, "{fast}");
        assert!(not_utf8 > 4_000, "{not_utf8}");
    }

    /// Byte sequences, and whether each is UTF-8.
    const SEQUENCES: [(&[u8], bool); 30] = [
        (b"\xc3\xa9", true),                  // U+00E9
        (b"\xdf\xbf", true),                  // U+07FF
        (b"\xe0\xa0\x80", true),              // U+0800
        (b"\xe2\x9c\x93", true),              // U+2713
        (b"\xed\x9f\xbf", true),              // U+D7FF, below the surrogates
        (b"\xee\x80\x80", true),              // U+E000, above them
        (b"\xef\xbf\xbf", true),              // U+FFFF
        (b"\xf0\x90\x80\x80", true),          // U+10000
        (b"\xf0\x9f\x98\x80", true),          // U+1F600
        (b"\xf4\x8f\xbf\xbf", true),          // U+10FFFF
        (b"\x80", false),                     // a lone continuation byte
        (b"\xbf", false),                     // another
        (b"\xc0\x80", false),                 // overlong U+0000
        (b"\xc1\xbf", false),                 // overlong U+007F
        (b"\xe0\x9f\xbf", false),             // overlong U+07FF
        (b"\xf0\x8f\xbf\xbf", false),         // overlong U+FFFF
        (b"\xed\xa0\x80", false),             // U+D800, a surrogate
        (b"\xed\xbf\xbf", false),             // U+DFFF, a surrogate
        (b"\xed\xa0\xbd\xed\xb8\x80", false), // a surrogate pair, CESU-8
        (b"\xf4\x90\x80\x80", false),         // U+110000
        (b"\xf5\x80\x80\x80", false),         // no such lead byte
        (b"\xfe", false),
        (b"\xff", false),
        (b"\xc3", false),         // truncated
        (b"\xe2\x9c", false),     // truncated
        (b"\xf0\x9f\x98", false), // truncated
        (b"\xc3\x41", false),     // a lead byte, then ASCII
        (b"\xe2\x28\xa1", false),
        (b"\xa9\xc3", false),     // continuation first
        (b"\xc3\xa9\xa9", false), // one continuation too many
    ];

    #[test]
    fn every_string_is_checked_for_utf8() {
        use ws_messaging_core::Codec;
        // Where strings are: a key, the name (the two read as plain
        // strings: with an escape, the fast path leaves them to serde), an
        // argument, a key and a value inside one, the result, an unknown
        // key's value.
        let places: [(&[u8], &[u8]); 7] = [
            (b"{\"", b"\":1,\"name\":\"a\",\"args\":[]}"),
            (b"{\"name\":\"", b"\",\"args\":[]}"),
            (b"{\"name\":\"a\",\"args\":[\"", b"\"]}"),
            (b"{\"name\":\"a\",\"args\":[{\"", b"\":[]}]}"),
            (b"{\"name\":\"a\",\"args\":[{\"k\":[\"", b"\"]}]}"),
            (b"{\"id\":1,\"result\":\"", b"\"}"),
            (b"{\"name\":\"a\",\"args\":[],\"x\":\"", b"\"}"),
        ];
        // The sequence at every place in a word, with ASCII after it, an
        // escape after it, or the string's end; split by an escape; or at
        // the end of a frame that stops in the string.
        let mut checked = 0;
        for (sequence, utf8) in SEQUENCES {
            for (place, (open, close)) in places.into_iter().enumerate() {
                for before in 0..18 {
                    for after in [
                        &b""[..],
                        b"b",
                        b"bcdefgh",
                        b"bcdefghi",
                        b"bcdefghijklmnopq",
                        b"\\n",
                        b"\\u00e9xyz",
                    ] {
                        for split in [false, true] {
                            let mut text = b"a".repeat(before);
                            if split && sequence.len() > 1 {
                                text.extend_from_slice(&sequence[..1]);
                                text.extend_from_slice(b"\\t");
                                text.extend_from_slice(&sequence[1..]);
                            } else {
                                text.extend_from_slice(sequence);
                            }
                            text.extend_from_slice(after);
                            let whole = [open, &text, close].concat();
                            let valid = std::str::from_utf8(&whole).is_ok();
                            assert_eq!(valid, utf8 && !(split && sequence.len() > 1));
                            let plain = place < 2 && text.contains(&b'\\');
                            let frame = Bytes::from(whole);
                            assert_eq!(
                                envelope::<true>(&frame).is_ok(),
                                valid && !plain,
                                "{:?}",
                                String::from_utf8_lossy(&frame)
                            );
                            assert_eq!(crate::Json.decode_envelope(&frame).is_ok(), valid);
                            assert_eq!(agree(&frame), valid && !plain);
                            let cut = Bytes::from([open, &text].concat());
                            assert_eq!(envelope::<true>(&cut), Err(Stop::Bail));
                            assert!(crate::Json.decode_envelope(&cut).is_err());
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, SEQUENCES.len() * 7 * 18 * 7 * 2);
    }

    #[test]
    fn known_keys_are_read_as_plain_strings_are() {
        for key in [
            "name", "args", "id", "result", "error", "nam", "namex", "i", "idx", "resul", "results", "erro", "errors",
            "Name", "", "x",
        ] {
            for after in [":1}", ":", ""] {
                let text = format!("\"{key}\"{after}");
                let mut s = Scanner::<true> {
                    b: text.as_bytes(),
                    pos: 0,
                };
                let plain = Key::from_bytes(s.plain_string().unwrap());
                match known_key(text.as_bytes(), 0) {
                    Some((known, len)) => assert_eq!((known, len), (plain, s.pos), "{text}"),
                    None => assert!(plain == Key::Other || text.len() < 8, "{text}"),
                }
            }
        }
    }

    #[test]
    fn bytes_above_0x7f_outside_strings_are_refused() {
        use ws_messaging_core::Codec;
        for c in [0x80, 0xa0, 0xc2, 0xe2, 0xf0, 0xff] {
            for frame in [
                [&[c][..], br#"{"name":"a","args":[]}"#].concat(),
                [&br#"{"name":"a","args":[1"#[..], &[c], b"]}"].concat(),
                [&br#"{"name":"a","args":["#[..], &[c], b"]}"].concat(),
                [&br#"{"name":"a","args":[]}"#[..], &[c]].concat(),
            ] {
                let frame = Bytes::from(frame);
                assert_eq!(envelope::<true>(&frame), Err(Stop::Bail));
                assert!(crate::Json.decode_envelope(&frame).is_err());
            }
        }
        // Valid UTF-8 outside strings is no JSON either.
        let frame = Bytes::from(r#"{"name":"a","args":[é]}"#);
        assert_eq!(envelope::<true>(&frame), Err(Stop::Bail));
        assert_eq!(envelope::<false>(&frame), Err(Stop::Bail));
        assert!(crate::Json.decode_text_envelope(&frame).is_err());
    }
}
