//! The envelope read in one pass over the frame's bytes: the fast path of
//! [`Json::decode_envelope`](crate::Json).
//!
//! It checks the whole frame against the JSON grammar (every argument, the
//! result, the error and unknown keys' values included: nothing is
//! accepted that `JSON.parse` would refuse) while it finds the routing
//! fields and the raw slices. It handles the shapes peers send: keys and the
//! name as plain strings, the id as a plain integer. On anything else (an
//! escape in a key or the name, a non-string name, a fractional or negative
//! id, deep nesting) and on any error it answers `None`, and the serde-based
//! reader decides, with its own error messages. So this path only ever
//! accepts what that reader accepts, and gives the same envelope (the tests
//! below compare the two on mutated frames).

use bytes::Bytes;
use ws_messaging::envelope::{ArgsField, IdField, Key, KeyCount, NameField, RawEnvelope};

/// Nesting beyond this is left to the serde-based reader.
const MAX_DEPTH: usize = 64;

/// Reads `frame` as an envelope map; `None` when the serde-based reader must
/// decide.
pub(crate) fn envelope(frame: &Bytes) -> Option<RawEnvelope> {
    // Strings may hold any UTF-8: checked once, for the whole frame.
    std::str::from_utf8(frame).ok()?;
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
                Key::Name => env.name = s.name()?,
                Key::Args => env.args = s.args(frame)?,
                Key::Id => env.id = s.id()?,
                Key::Result => env.result = Some(s.raw(frame)?),
                Key::Error => env.error = Some(s.raw(frame)?),
                Key::Other => s.value(0)?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.pos != frame.len() {
        return None;
    }
    env.keys = keys.total();
    Some(env)
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string with no escape: its bytes between the quotes.
    fn plain_string(&mut self) -> Option<&[u8]> {
        self.eat(b'"')?;
        let start = self.pos;
        let len = self.b[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        self.pos += len;
        self.eat(b'"')?;
        Some(&self.b[start..start + len])
    }

    fn name(&mut self) -> Option<NameField> {
        let name = self.plain_string()?;
        Some(if name.is_empty() {
            NameField::Falsy
        } else {
            // The frame is UTF-8, and so is every string in it.
            NameField::Str(std::str::from_utf8(name).ok()?.to_owned())
        })
    }

    /// A plain unsigned integer id.
    fn id(&mut self) -> Option<IdField> {
        let start = self.pos;
        let len = self.b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 20 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        self.pos += len;
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        let digits = std::str::from_utf8(&self.b[start..self.pos]).ok()?;
        Some(IdField::from_u64(digits.parse().ok()?))
    }

    /// An array's elements as raw slices of `frame`.
    fn args(&mut self, frame: &Bytes) -> Option<ArgsField> {
        self.eat(b'[')?;
        let mut args = Vec::new();
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(ArgsField::List(args));
        }
        loop {
            args.push(self.raw(frame)?);
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(ArgsField::List(args)),
                _ => return None,
            }
        }
    }

    /// One value, as the slice of `frame` it occupies.
    fn raw(&mut self, frame: &Bytes) -> Option<Bytes> {
        let start = self.pos;
        self.value(0)?;
        Some(frame.slice(start..self.pos))
    }

    /// Skips one value, checking it against the JSON grammar.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.b.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let len = self.b[self.pos..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            self.pos += len;
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.pos..self.pos + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.pos += 4;
                    }
                    _ => return None,
                },
                _ => return None, // a control character
            }
        }
    }

    fn digits(&mut self) -> usize {
        let len = self.b[self.pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        self.pos += len;
        len
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
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
                b'}' => return Some(()),
                _ => return None,
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
        let Some(fast) = envelope(&frame) else {
            return false;
        };
        match serde_envelope(&frame) {
            Ok(slow) => assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&frame)),
            Err(e) => panic!("accepted what serde refuses ({e}): {:?}", String::from_utf8_lossy(&frame)),
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
            assert!(envelope(&Bytes::copy_from_slice(bad.as_bytes())).is_none(), "{bad}");
        }
        let deep = format!(r#"{{"name":"a","args":[{}1{}]}}"#, "[".repeat(100), "]".repeat(100));
        assert!(envelope(&Bytes::from(deep)).is_none());
        assert!(envelope(&Bytes::from_static(b"{\"name\":\"\xff\",\"args\":[]}")).is_none());
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
