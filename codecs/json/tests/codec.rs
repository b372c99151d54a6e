//! Round trips, golden vectors and hostile input for the JSON codec.

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, PreprocessError};
use ws_messaging_json::Json;

fn decode(frame: &[u8]) -> Result<Frame, PreprocessError> {
    let raw = Json
        .decode_envelope(&Bytes::copy_from_slice(frame))
        .map_err(PreprocessError::Decode)?;
    validate(raw, true)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn messages_round_trip(name in ".+", id in proptest::option::of(1u64..(1 << 53)), args in prop::collection::vec(value(), 0..5)) {
        let mut out = Vec::new();
        Json.encode_message(&name, &args, id, &mut out).unwrap();
        let Frame::Message { name: got, args: raw, id: got_id } = decode(&out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(got, name);
        prop_assert_eq!(got_id, id);
        let back: Vec<Value> = raw.iter().map(|r| Json.decode_value(r).unwrap()).collect();
        prop_assert_eq!(back, args);
    }

    #[test]
    fn acks_round_trip(id in 1u64..(1 << 53), result in value(), error in value()) {
        let mut out = Vec::new();
        Json.encode_reply(id, Ok(&result), &mut out).unwrap();
        let Frame::Reply { id: got, outcome: Ok(raw) } = decode(&out).unwrap() else { panic!("not a result") };
        prop_assert_eq!(got, id);
        prop_assert_eq!(Json.decode_value::<Value>(&raw).unwrap(), result);
        out.clear();
        Json.encode_reply::<()>(id, Err(&error), &mut out).unwrap();
        let Frame::Reply { outcome: Err(raw), .. } = decode(&out).unwrap() else { panic!("not an error") };
        prop_assert_eq!(Json.decode_error(&raw).unwrap(), error);
    }
}

/// Compares `encoded` with tests/vectors/json/NAME.json (`UPDATE_VECTORS=1`
/// rewrites it) and returns the vector's bytes.
fn golden(name: &str, encoded: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/json")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(&path, encoded).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(encoded),
        String::from_utf8_lossy(&bytes),
        "encoding of {name} changed"
    );
    bytes
}

#[test]
fn golden_vectors_both_ways() {
    let mut out = Vec::new();
    Json.encode_message("say", &("hi", 3), None, &mut out).unwrap();
    let bytes = golden("event", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Message {
            name: "say".into(),
            args: vec![Bytes::from_static(b"\"hi\""), Bytes::from_static(b"3")],
            id: None
        }
    );
    out.clear();
    Json.encode_message("sum", &(1, 2.5), Some(7), &mut out).unwrap();
    let bytes = golden("call", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Message {
            name: "sum".into(),
            args: vec![Bytes::from_static(b"1"), Bytes::from_static(b"2.5")],
            id: Some(7)
        }
    );
    out.clear();
    Json.encode_reply(7, Ok(&json!({"user": "alice"})), &mut out).unwrap();
    let bytes = golden("result", &out);
    assert_eq!(
        decode(&bytes).unwrap(),
        Frame::Reply {
            id: 7,
            outcome: Ok(Bytes::from_static(br#"{"user":"alice"}"#))
        }
    );
    out.clear();
    Json.encode_reply::<()>(8, Err(&json!("Error: boom")), &mut out)
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
    Json.encode_value(&json!({"token": "secret"}), &mut out).unwrap();
    let bytes = golden("auth", &out);
    assert_eq!(Json.decode_value::<Value>(&bytes).unwrap(), json!({"token": "secret"}));
}

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
    let seeds: Vec<&[u8]> = vec![
        br#"{"name":"say","args":["hello",[1,2,{"a":null}],3.5e10,true]}"#,
        br#"{"name":"sum","args":[1,2,3],"id":99}"#,
        br#"{"id":5,"result":{"deep":[[[["x"]]]]}}"#,
        br#"{"id":6,"error":"Error: boom"}"#,
    ];
    let alphabet = b"{}[]\":,0123456789.eE+-truefalsnul \\\"abc";
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut valid, mut refused) = (0, 0);
    for i in 0..100_000 {
        let frame: Vec<u8> = if i % 4 == 0 {
            (0..rng.below(48))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        } else {
            let mut f = seeds[rng.below(seeds.len())].to_vec();
            match rng.below(4) {
                0 => {
                    let at = rng.below(f.len());
                    f[at] = alphabet[rng.below(alphabet.len())];
                }
                1 => f.truncate(rng.below(f.len())),
                2 => {
                    let at = rng.below(f.len());
                    f.insert(at, alphabet[rng.below(alphabet.len())]);
                }
                _ => {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
            }
            f
        };
        match decode(&frame) {
            Ok(Frame::Message { args, .. }) => {
                valid += 1;
                for arg in &args {
                    let _ = Json.decode_value::<Value>(arg);
                }
            }
            Ok(Frame::Reply { .. }) => valid += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(valid > 0 && refused > 0, "valid {valid}, refused {refused}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        r#"{{"name":"x","args":[{}1{}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // The envelope only skips over the argument; decoding it hits serde_json's
    // recursion limit and fails cleanly.
    match decode(deep.as_bytes()) {
        Ok(Frame::Message { args, .. }) => assert!(Json.decode_value::<Value>(&args[0]).is_err()),
        other => assert!(matches!(other, Err(PreprocessError::Decode(_))), "{other:?}"),
    }
}
