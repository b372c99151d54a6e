//! Round trips, golden vectors, validation rules and hostile input.

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, PreprocessError};
use ws_messaging_bincode::Bincode;

fn decode(frame: &[u8]) -> Result<Frame, PreprocessError> {
    let raw = Bincode
        .decode_envelope(&Bytes::copy_from_slice(frame))
        .map_err(PreprocessError::Decode)?;
    validate(raw, true)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u32,
    name: String,
    tags: Vec<String>,
    score: f64,
    active: bool,
    #[serde(with = "serde_bytes_compat")]
    blob: Vec<u8>,
}

/// Binary as a byte string (what `serde_bytes` does), without the dependency.
mod serde_bytes_compat {
    pub(crate) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u32>(),
        ".*",
        prop::collection::vec(".{0,8}", 0..4),
        any::<f64>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(id, name, tags, score, active, blob)| Record {
            id,
            name,
            tags,
            score,
            active,
            blob,
        })
}

proptest! {
    #[test]
    fn messages_round_trip(name in "[a-z]{1,12}", id in proptest::option::of(1u64..), recs in prop::collection::vec(record(), 0..4), text in ".*") {
        let mut out = Vec::new();
        Bincode.encode_message(&name, &(&recs, &text), id, &mut out).unwrap();
        let Frame::Message { name: got, args, id: got_id } = decode(&out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(got, name);
        prop_assert_eq!(got_id, id);
        prop_assert_eq!(args.len(), 2);
        let back: Vec<Record> = Bincode.decode_value(&args[0]).unwrap();
        // NaN != NaN: compare the encodings instead.
        let mut a = Vec::new();
        let mut b = Vec::new();
        Bincode.encode_value(&back, &mut a).unwrap();
        Bincode.encode_value(&recs, &mut b).unwrap();
        prop_assert_eq!(a, b);
        prop_assert_eq!(Bincode.decode_value::<String>(&args[1]).unwrap(), text);
    }

    #[test]
    fn acks_round_trip(id in 1u64.., value in any::<Option<i64>>(), error in ".*") {
        let mut out = Vec::new();
        Bincode.encode_reply(id, Ok(&value), &mut out).unwrap();
        let Frame::Reply { id: got, outcome: Ok(raw) } = decode(&out).unwrap() else { panic!("not a result") };
        prop_assert_eq!(got, id);
        prop_assert_eq!(Bincode.decode_value::<Option<i64>>(&raw).unwrap(), value);
        out.clear();
        let err = serde_json::Value::String(error);
        Bincode.encode_reply::<()>(id, Err(&err), &mut out).unwrap();
        let Frame::Reply { outcome: Err(raw), .. } = decode(&out).unwrap() else { panic!("not an error") };
        prop_assert_eq!(Bincode.decode_error(&raw).unwrap(), err);
    }
}

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/bincode")
        .join(format!("{name}.hex"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares `encoded` with the checked-in vector (`UPDATE_VECTORS=1`
/// rewrites it) and returns the vector's bytes.
fn golden(name: &str, encoded: &[u8]) -> Vec<u8> {
    let path = vector_path(name);
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(&path, hex(encoded) + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = text.trim();
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(hex(encoded), text, "encoding of {name} changed");
    bytes
}

#[test]
fn golden_vectors_both_ways() {
    let mut out = Vec::new();
    Bincode.encode_message("say", &("hi", 3u8), None, &mut out).unwrap();
    let bytes = golden("event", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Message {
            name: "say".into(),
            args: vec![Bytes::from_static(b"\x02hi"), Bytes::from_static(b"\x03")],
            id: None
        }
    );

    out.clear();
    Bincode.encode_message("sum", &(1u32, 2u32), Some(7), &mut out).unwrap();
    let bytes = golden("call", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Message {
            name: "sum".into(),
            args: vec![Bytes::from_static(b"\x01"), Bytes::from_static(b"\x02")],
            id: Some(7)
        }
    );

    out.clear();
    Bincode.encode_reply(7, Ok(&3u32), &mut out).unwrap();
    let bytes = golden("result", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Reply {
            id: 7,
            outcome: Ok(Bytes::from_static(b"\x03"))
        }
    );

    out.clear();
    Bincode
        .encode_reply::<()>(8, Err(&serde_json::json!("Error: boom")), &mut out)
        .unwrap();
    let bytes = golden("error", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Reply {
            id: 8,
            outcome: Err(Bytes::from_static(b"\"Error: boom\""))
        }
    );

    out.clear();
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Auth {
        token: String,
    }
    Bincode
        .encode_value(&Auth { token: "secret".into() }, &mut out)
        .unwrap();
    let bytes = golden("auth", &out);
    assert_eq!(
        Bincode.decode_value::<Auth>(&bytes).unwrap(),
        Auth { token: "secret".into() }
    );
}

#[test]
fn validation_rules() {
    let mut ok = Vec::new();
    Bincode.encode_message("x", &(1u8,), Some(1), &mut ok).unwrap();
    // id 0 on a call, and an empty name, fail validation.
    let mut zero_id = ok.clone();
    zero_id[1..9].copy_from_slice(&0u64.to_le_bytes());
    assert_eq!(decode(&zero_id), Err(PreprocessError::Validation));
    let mut empty_name = Vec::new();
    Bincode.encode_message("", &(1u8,), None, &mut empty_name).unwrap();
    assert_eq!(decode(&empty_name), Err(PreprocessError::Validation));
    let mut ack = Vec::new();
    Bincode.encode_reply(0, Ok(&()), &mut ack).unwrap();
    assert_eq!(decode(&ack), Err(PreprocessError::Validation));
    // Malformed: unknown kind, truncation, trailing bytes, bad UTF-8.
    for bad in [
        vec![9u8],
        vec![],
        ok[..ok.len() - 1].to_vec(),
        [ok.clone(), vec![0]].concat(),
    ] {
        assert!(matches!(decode(&bad), Err(PreprocessError::Decode(_))), "{bad:?}");
    }
    let mut bad_name = Vec::new();
    Bincode.encode_message("é", &(), None, &mut bad_name).unwrap();
    bad_name[5] = 0xff;
    assert!(matches!(decode(&bad_name), Err(PreprocessError::Decode(_))));
    // Trailing bytes after a value, and values that do not fit the type.
    assert!(Bincode.decode_value::<u8>(&[1, 2]).is_err());
    assert!(Bincode.decode_value::<bool>(&[7]).is_err());
}

#[test]
fn claimed_lengths_never_allocate_past_the_frame() {
    // A 6-byte value claiming a 2^60-element vector is refused, not allocated.
    let huge = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10];
    assert!(Bincode.decode_value::<Vec<u64>>(&huge).is_err());
    assert!(Bincode.decode_value::<String>(&[0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
    // An envelope claiming 2^32-1 arguments.
    let mut frame = vec![0u8, 1, 0, 0, 0, b'x'];
    frame.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode(&frame).is_err());
}

/// A small xorshift PRNG: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seeds = Vec::new();
    let mut out = Vec::new();
    Bincode
        .encode_message("say", &("hello", vec![1u32, 2, 3], Some(4.5f64)), None, &mut out)
        .unwrap();
    seeds.push(std::mem::take(&mut out));
    Bincode
        .encode_message("sum", &(1u64, 2u64), Some(99), &mut out)
        .unwrap();
    seeds.push(std::mem::take(&mut out));
    Bincode.encode_reply(5, Ok(&"result"), &mut out).unwrap();
    seeds.push(std::mem::take(&mut out));
    Bincode
        .encode_reply::<()>(6, Err(&serde_json::json!({"code": 1})), &mut out)
        .unwrap();
    seeds.push(std::mem::take(&mut out));
    let (mut valid, mut refused) = (0, 0);
    for i in 0..100_000 {
        let frame: Vec<u8> = if i % 4 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let mut f = seeds[rng.below(seeds.len())].clone();
            match rng.below(4) {
                0 => {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
                1 => f.truncate(rng.below(f.len())),
                2 => {
                    let at = rng.below(f.len().saturating_sub(4));
                    f[at..at + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes());
                }
                _ => f.extend((0..rng.below(8)).map(|_| rng.next() as u8)),
            }
            f
        };
        match decode(&frame) {
            Ok(Frame::Message { args, .. }) => {
                valid += 1;
                for arg in &args {
                    let _ = Bincode.decode_value::<Vec<u64>>(arg);
                    let _ = Bincode.decode_value::<String>(arg);
                }
            }
            Ok(Frame::Reply { outcome, .. }) => {
                valid += 1;
                let raw = match outcome {
                    Ok(raw) | Err(raw) => raw,
                };
                let _ = Bincode.decode_value::<Vec<String>>(&raw);
                let _ = Bincode.decode_error(&raw);
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(valid + refused, 100_000);
    assert!(valid > 0 && refused > 0, "valid {valid}, refused {refused}");
}
