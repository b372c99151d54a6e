//! The envelope read in one pass over the frame's bytes: the fast path of
//! [`Json::decode_envelope`](crate::Json).
//!
//! It checks the whole frame against the JSON grammar (every argument, the
//! result, the error and unknown keys' values included: nothing is
//! accepted that `JSON.parse` would refuse) while it finds the routing
//! fields and the raw slices. It handles the shapes peers send: keys and the
//! name as plain strings, the id as a plain integer. On anything else (an
//! escape in a key or the name, a non-string name, a fractional or negative
//! id) and on any error it stops with [`Stop::Bail`], and the serde-based
//! reader decides, with its own error messages. So this path only ever
//! accepts what that reader accepts, and gives the same envelope (the tests
//! below compare the two on mutated frames). A frame nested deeper than
//! [`MAX_DEPTH`] is refused here ([`Stop::TooDeep`]); [`nesting`] is the
//! same check for the frames the serde-based reader reads.

use bytes::Bytes;
use ws_messaging::envelope::{ArgList, ArgsField, IdField, Key, KeyCount, Name, NameField, RawEnvelope};
use ws_messaging::reader::MAX_DEPTH;

/// Why the scan stopped short of an envelope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Left to the serde-based reader.
    Bail,
    /// Nested deeper than [`MAX_DEPTH`], counting the envelope itself.
    TooDeep,
}

type Scan<T> = Result<T, Stop>;

/// Reads `frame`, which is UTF-8 (checked by the caller, or by the
/// WebSocket layer for a text frame), as an envelope map.
pub(crate) fn envelope(frame: &Bytes) -> Scan<RawEnvelope> {
    let mut s = Scanner { b: frame, pos: 0 };
    let mut env = RawEnvelope {
        is_map: true,
        ..RawEnvelope::default()
    };
    let mut keys = KeyCount::default();
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.pos += 1;
    } else {
        loop {
            let key = Key::from_bytes(s.plain_string()?);
            keys.add(key);
            s.ws();
            s.eat(b':')?;
            s.ws();
            match key {
                Key::Name => env.name = s.name(frame)?,
                Key::Args => env.args = s.args(frame)?,
                Key::Id => env.id = s.id()?,
                Key::Result => env.result = Some(s.raw(frame, 1)?),
                Key::Error => env.error = Some(s.raw(frame, 1)?),
                Key::Other => s.value(1)?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return Err(Stop::Bail),
            }
        }
    }
    s.ws();
    if s.pos != frame.len() {
        return Err(Stop::Bail);
    }
    env.keys = keys.total();
    Ok(env)
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

/// The high bit of each zero byte of `w` is set (bits above the lowest
/// zero byte may be set falsely; the lowest is exact).
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Scan<u8> {
        self.b.get(self.pos).copied().ok_or(Stop::Bail)
    }

    fn next(&mut self) -> Scan<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Ok(c)
    }

    fn eat(&mut self, c: u8) -> Scan<()> {
        if self.next()? == c {
            Ok(())
        } else {
            Err(Stop::Bail)
        }
    }

    /// The length of the run of bytes before a quote, a backslash or a
    /// control character.
    fn plain_run(&self) -> Scan<usize> {
        let rest = &self.b[self.pos..];
        // Eight bytes at a time: the lowest flagged byte of a word is the
        // first quote, backslash or control character in it.
        let mut words = rest.chunks_exact(8);
        let mut skipped = 0;
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().map_err(|_| Stop::Bail)?);
            let flags = zero_bytes(w ^ (ONES * u64::from(b'"')))
                | zero_bytes(w ^ (ONES * u64::from(b'\\')))
                | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
            if flags != 0 {
                return Ok(skipped + (flags.trailing_zeros() / 8) as usize);
            }
            skipped += 8;
        }
        words
            .remainder()
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|i| skipped + i)
            .ok_or(Stop::Bail)
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Ok(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string with no escape: its bytes between the quotes.
    fn plain_string(&mut self) -> Scan<&[u8]> {
        self.eat(b'"')?;
        let start = self.pos;
        let len = self.plain_run()?;
        self.pos += len;
        self.eat(b'"')?;
        Ok(&self.b[start..start + len])
    }

    fn name(&mut self, frame: &Bytes) -> Scan<NameField> {
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
        let len = self.b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 20 || (len > 1 && self.b[start] == b'0') {
            return Err(Stop::Bail);
        }
        self.pos += len;
        if let Ok(b'.' | b'e' | b'E') = self.peek() {
            return Err(Stop::Bail);
        }
        let digits = std::str::from_utf8(&self.b[start..self.pos]).map_err(|_| Stop::Bail)?;
        Ok(IdField::from_u64(digits.parse().map_err(|_| Stop::Bail)?))
    }

    /// An array's elements as raw slices of `frame`.
    /// The array of arguments (at depth 2: inside the envelope), its
    /// elements as raw slices of `frame`.
    fn args(&mut self, frame: &Bytes) -> Scan<ArgsField> {
        self.eat(b'[')?;
        let mut args = ArgList::new();
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(ArgsField::List(args));
        }
        loop {
            args.push(self.raw(frame, 2)?);
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Ok(ArgsField::List(args)),
                _ => return Err(Stop::Bail),
            }
        }
    }

    /// One value inside a collection at `depth`, as the slice of `frame`
    /// it occupies.
    fn raw(&mut self, frame: &Bytes, depth: usize) -> Scan<Bytes> {
        let start = self.pos;
        self.value(depth)?;
        Ok(frame.slice(start..self.pos))
    }

    /// Skips one value inside a collection at `depth`, checking it against
    /// the JSON grammar.
    fn value(&mut self, depth: usize) -> Scan<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Stop::Bail),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        let end = self.pos + word.len();
        if self.b.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Stop::Bail)
        }
    }

    fn string(&mut self) -> Scan<()> {
        self.eat(b'"')?;
        loop {
            self.pos += self.plain_run()?;
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.pos..self.pos + 4).ok_or(Stop::Bail)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Stop::Bail);
                        }
                        self.pos += 4;
                    }
                    _ => return Err(Stop::Bail),
                },
                _ => return Err(Stop::Bail), // a control character
            }
        }
    }

    fn digits(&mut self) -> usize {
        let len = self.b[self.pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        self.pos += len;
        len
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Scan<()> {
        if self.peek() == Ok(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {
                if self.peek().is_ok_and(|c| c.is_ascii_digit()) {
                    return Err(Stop::Bail);
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(Stop::Bail),
        }
        if self.peek() == Ok(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(Stop::Bail);
            }
        }
        if let Ok(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Ok(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(Stop::Bail);
            }
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(Stop::TooDeep);
        }
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Ok(()),
                _ => return Err(Stop::Bail),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(Stop::TooDeep);
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Ok(()),
                _ => return Err(Stop::Bail),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde_envelope;

    /// Whatever the fast path accepts, the serde-based reader accepts too,
    /// with the same envelope.
    fn agree(frame: &[u8]) -> bool {
        let frame = Bytes::copy_from_slice(frame);
        // The scanner's precondition, which its callers check.
        if std::str::from_utf8(&frame).is_err() {
            return false;
        }
        let Ok(fast) = envelope(&frame) else {
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

    const SEEDS: [&str; 8] = [
        r#"{"name":"echo","args":[{"id":7,"name":"small","tags":["a","b"],"ok":true,"ratio":0.5}],"id":24}"#,
        r#" {"name":"tick","args":[1,-2.5e-3,"s\"q\\u0041\u00e9",null,true,false,[],{},[[1]],{"a":{"b":[]}}]} "#,
        r#"{"id":9,"result":{"x":[1,2,{"y":"z"}]}}"#,
        r#"{"id":18446744073709551615,"error":"Error: boom"}"#,
        r#"{"name":"é✓","args":[],"id":0,"extra":[0.0,1E+2,-0,1e-7]}"#,
        r#"{}"#,
        r#"{"name":"","args":[""],"name":"again"}"#,
        "{\"name\":\"a\",\r\n\t\"args\" : [ 1 , 2 ] }",
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
            assert_eq!(
                envelope(&Bytes::copy_from_slice(bad.as_bytes())),
                Err(Stop::Bail),
                "{bad}"
            );
        }
        use ws_messaging::Codec;
        let not_utf8 = Bytes::from_static(b"{\"name\":\"\xff\",\"args\":[]}");
        assert!(crate::Json.decode_envelope(&not_utf8).is_err());
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
        assert_eq!(envelope(&deeper), Err(Stop::TooDeep));
        assert!(too_deep(&deeper));
        assert!(serde_envelope(&deeper).is_ok(), "serde alone would take it");
        // Refused whichever reader reads it.
        use ws_messaging::Codec;
        let escaped = String::from_utf8(deeper.to_vec())
            .unwrap()
            .replace(r#""name""#, r#""n\u0061me""#);
        let escaped = Bytes::from(escaped);
        assert_eq!(envelope(&escaped), Err(Stop::Bail));
        for frame in [&deeper, &escaped] {
            let error = crate::Json.decode_envelope(frame).unwrap_err();
            assert!(error.to_string().contains("nested deeper than 128"), "{error}");
        }
        assert!(crate::Json.decode_envelope(&deepest).is_ok());
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
                let s = Scanner { b: &text, pos: 0 };
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
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-tfnrul\"ax\t\x01\xc3\xa9";
        let mut fast = 0;
        for round in 0..40_000 {
            let mut frame = SEEDS[round % SEEDS.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % (frame.len() + 1);
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if at < frame.len() => frame[at] = c,
                    1 if at < frame.len() => {
                        frame.remove(at);
                    }
                    _ => frame.insert(at, c),
                }
            }
            fast += usize::from(agree(&frame));
        }
        // The check means something only if many mutants were accepted.
        assert!(fast > 4_000, "{fast}");
    }
}
