//! Round trips, golden vectors, validation rules and hostile input for the
//! MessagePack codec.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use rmpv::Value;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use serde_json::json;
use ws_messaging::envelope::{validate, IdField, NameField};
use ws_messaging::{Codec, Frame, PreprocessError};
use ws_messaging_msgpack::{MsgPack, MAX_DEPTH};

fn decode(frame: &[u8]) -> Result<Frame, PreprocessError> {
    let raw = MsgPack
        .decode_envelope(&Bytes::copy_from_slice(frame))
        .map_err(PreprocessError::Decode)?;
    validate(raw, true)
}

/// `value` encoded by rmpv's own writer (independent of the codec; maps
/// keep their order and any repeated key).
fn mp(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

/// A map with string keys, in this order.
fn obj(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (Value::from(*k), v.clone())).collect())
}

fn arr(items: &[Value]) -> Value {
    Value::Array(items.to_vec())
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F32),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F64),
        ".*".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Binary),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        ".*".prop_map(serde_json::Value::String),
        (".*", any::<i32>()).prop_map(|(m, code)| json!({"message": m, "code": code, "tags": [m]})),
        Just(serde_json::Value::Null),
    ]
}

/// A typed payload as a Rust application would send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Upload {
    name: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    parts: Vec<ByteBuf>,
    size: u64,
    ratio: Option<f64>,
}

fn upload() -> impl Strategy<Value = Upload> {
    (
        ".*",
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8).prop_map(ByteBuf::from), 0..4),
        any::<u64>(),
        proptest::option::of(any::<f64>().prop_filter("finite", |f| f.is_finite())),
    )
        .prop_map(|(name, data, parts, size, ratio)| Upload {
            name,
            data,
            parts,
            size,
            ratio,
        })
}

proptest! {
    #[test]
    fn messages_round_trip(name in ".+", id in proptest::option::of(1u64..), args in prop::collection::vec(value(), 0..5)) {
        let mut out = Vec::new();
        MsgPack.encode_message(&name, &args, id, &mut out).unwrap();
        let Frame::Message { name: got, args: raw, id: got_id } = decode(&out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(got, name);
        prop_assert_eq!(got_id, id);
        let back: Vec<Value> = raw.iter().map(|r| MsgPack.decode_value(r).unwrap()).collect();
        prop_assert_eq!(back, args);
    }

    #[test]
    fn typed_payloads_round_trip(first in upload(), second in upload(), id in 1u64..) {
        let mut out = Vec::new();
        MsgPack.encode_message("upload", &(&first, &second), Some(id), &mut out).unwrap();
        let Frame::Message { args, .. } = decode(&out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(MsgPack.decode_value::<Upload>(&args[0]).unwrap(), first);
        prop_assert_eq!(MsgPack.decode_value::<Upload>(&args[1]).unwrap(), second);
    }

    #[test]
    fn acks_round_trip(id in 1u64.., result in value(), error in json_value()) {
        let mut out = Vec::new();
        MsgPack.encode_reply(id, Ok(&result), &mut out).unwrap();
        let Frame::Reply { id: got, outcome: Ok(raw) } = decode(&out).unwrap() else { panic!("not a result") };
        prop_assert_eq!(got, id);
        prop_assert_eq!(MsgPack.decode_value::<Value>(&raw).unwrap(), result);
        out.clear();
        MsgPack.encode_reply::<()>(id, Err(&error), &mut out).unwrap();
        let Frame::Reply { outcome: Err(raw), .. } = decode(&out).unwrap() else { panic!("not an error") };
        prop_assert_eq!(MsgPack.decode_error(&raw).unwrap(), error);
    }

    #[test]
    fn bare_values_round_trip(v in value()) {
        let mut out = Vec::new();
        MsgPack.encode_value(&v, &mut out).unwrap();
        prop_assert_eq!(&out, &mp(&v));
        prop_assert_eq!(MsgPack.decode_value::<Value>(&out).unwrap(), v);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Compares `encoded` with tests/vectors/msgpack/NAME.hex (`UPDATE_VECTORS=1`
/// rewrites it) and returns the vector's bytes.
fn golden(name: &str, encoded: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/msgpack")
        .join(format!("{name}.hex"));
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(&path, hex(encoded) + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(hex(encoded), text.trim(), "encoding of {name} changed");
    unhex(&text)
}

fn raw(value: &Value) -> Bytes {
    Bytes::from(mp(value))
}

#[derive(Serialize)]
struct Data {
    data: ByteBuf,
}

#[test]
fn golden_vectors_both_ways() {
    let mut out = Vec::new();
    MsgPack.encode_message("say", &("hi", 3), None, &mut out).unwrap();
    let bytes = golden("event", &out);
    let expected = Frame::Message {
        name: "say".into(),
        args: vec![raw(&s("hi")), raw(&Value::from(3))],
        id: None,
    };
    assert_eq!(decode(&bytes).unwrap(), expected);

    out.clear();
    MsgPack.encode_message("sum", &(1, 2.5), Some(7), &mut out).unwrap();
    let bytes = golden("call", &out);
    let expected = Frame::Message {
        name: "sum".into(),
        args: vec![raw(&Value::from(1)), raw(&Value::F64(2.5))],
        id: Some(7),
    };
    assert_eq!(decode(&bytes).unwrap(), expected);

    out.clear();
    MsgPack
        .encode_reply(7, Ok(&json!({"user": "alice"})), &mut out)
        .unwrap();
    let bytes = golden("result", &out);
    let expected = Frame::Reply {
        id: 7,
        outcome: Ok(raw(&obj(&[("user", s("alice"))]))),
    };
    assert_eq!(decode(&bytes).unwrap(), expected);

    out.clear();
    MsgPack
        .encode_reply::<()>(8, Err(&json!("Error: boom")), &mut out)
        .unwrap();
    let bytes = golden("error", &out);
    let expected = Frame::Reply {
        id: 8,
        outcome: Err(raw(&s("Error: boom"))),
    };
    assert_eq!(decode(&bytes).unwrap(), expected);

    out.clear();
    MsgPack.encode_value(&json!({"token": "secret"}), &mut out).unwrap();
    let bytes = golden("auth", &out);
    assert_eq!(
        MsgPack.decode_value::<serde_json::Value>(&bytes).unwrap(),
        json!({"token": "secret"})
    );

    out.clear();
    let blob = ByteBuf::from(vec![0, 1, 255]);
    let empty = Data { data: ByteBuf::new() };
    MsgPack
        .encode_message("blob", &(&blob, &empty), None, &mut out)
        .unwrap();
    let bytes = golden("binary", &out);
    let expected = Frame::Message {
        name: "blob".into(),
        args: vec![
            raw(&Value::Binary(vec![0, 1, 255])),
            raw(&obj(&[("data", Value::Binary(vec![]))])),
        ],
        id: None,
    };
    let frame = decode(&bytes).unwrap();
    assert_eq!(frame, expected);
    let Frame::Message { args, .. } = frame else {
        unreachable!()
    };
    assert_eq!(MsgPack.decode_value::<ByteBuf>(&args[0]).unwrap(), blob);

    // As msgpack-lite writes numbers: floats outside the int32 range.
    out.clear();
    let numbers = (
        1_099_511_627_776.0f64,
        -0.5f64,
        2_147_483_647u32,
        2_147_483_648.0f64,
        -2_147_483_648i32,
        -4_294_967_296.0f64,
    );
    MsgPack
        .encode_message("sum", &numbers, Some(2_147_483_647), &mut out)
        .unwrap();
    let bytes = golden("numbers", &out);
    let Frame::Message { args, id, .. } = decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(id, Some(2_147_483_647));
    // Whole floats decode as integers, integers as floats.
    let ints: Vec<i64> = [0, 2, 3, 4, 5]
        .iter()
        .map(|&i| MsgPack.decode_value(&args[i]).unwrap())
        .collect();
    assert_eq!(
        ints,
        [
            1_099_511_627_776,
            2_147_483_647,
            2_147_483_648,
            -2_147_483_648,
            -4_294_967_296
        ]
    );
    assert_eq!(MsgPack.decode_value::<u64>(&args[0]).unwrap(), 1 << 40);
    assert_eq!(MsgPack.decode_value::<f64>(&args[2]).unwrap(), 2_147_483_647.0);
    assert!(
        MsgPack.decode_value::<i64>(&args[1]).is_err(),
        "a fraction is no integer"
    );
    assert!(
        MsgPack.decode_value::<u32>(&args[0]).is_err(),
        "2^40 does not fit a u32"
    );
    assert!(MsgPack.decode_value::<u64>(&args[5]).is_err(), "negative");
}

fn envelope(frame: &Value) -> ws_messaging::envelope::RawEnvelope {
    MsgPack.decode_envelope(&Bytes::from(mp(frame))).unwrap()
}

#[test]
fn refuses_what_javascript_refuses() {
    let msg = |extra: &[(&str, Value)]| {
        let mut entries = vec![("name", s("x")), ("args", arr(&[]))];
        entries.extend(extra.iter().cloned());
        obj(&entries)
    };
    let bad = [
        arr(&[Value::from(1), Value::from(2)]),
        s("str"),
        Value::from(42),
        Value::Nil,
        obj(&[]),
        obj(&[("foo", Value::from(1))]),
        obj(&[("name", s("x")), ("args", obj(&[]))]),
        msg(&[("id", Value::from(0))]),
        msg(&[("id", Value::from(-1))]),
        msg(&[("id", Value::F64(1.5))]),
        msg(&[("id", s("1"))]),
        msg(&[("id", Value::Nil)]),
        msg(&[("extra", Value::from(1))]),
        obj(&[("name", Value::from(5)), ("args", arr(&[]))]),
        obj(&[("name", s("x"))]),
        obj(&[("id", Value::F64(1.5)), ("result", Value::from(1))]),
        obj(&[("id", Value::from(1))]),
        obj(&[
            ("id", Value::from(1)),
            ("result", Value::from(1)),
            ("error", Value::from(2)),
        ]),
        obj(&[("name", s("")), ("args", arr(&[])), ("id", Value::from(1))]),
        // MessagePack's own types.
        obj(&[("name", Value::Binary(b"x".to_vec())), ("args", arr(&[]))]),
        obj(&[("name", s("x")), ("args", Value::Binary(vec![1]))]),
        msg(&[("id", Value::F32(1.5))]),
        msg(&[("id", Value::Binary(vec![1]))]),
        msg(&[("id", Value::Ext(1, vec![1]))]),
        Value::Binary(b"{}".to_vec()),
        Value::Ext(0x12, vec![]),
        // A non-string key is one more key, as in JavaScript.
        Value::Map(vec![
            (Value::from(1), s("x")),
            (s("name"), s("x")),
            (s("args"), arr(&[])),
        ]),
        msg(&[("id", Value::from(1)), ("", Value::Nil)]),
    ];
    for frame in &bad {
        assert_eq!(decode(&mp(frame)), Err(PreprocessError::Validation), "{frame}");
    }

    // Not MessagePack: a decode error, never a validation error.
    let call = mp(&msg(&[("id", Value::from(9))]));
    let mut broken: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xc1],
        vec![0x81, 0xa1, b'a'],
        vec![0x01, 0x02],
        [call.as_slice(), &[0xc0]].concat(),
        vec![
            0x82, 0xa4, b'n', b'a', b'm', b'e', 0xa1, b'x', 0xa4, b'a', b'r', b'g', b's', 0x91, 0xc1,
        ],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],
    ];
    broken.extend((0..call.len()).map(|len| call[..len].to_vec()));
    for frame in &broken {
        assert!(
            matches!(decode(frame), Err(PreprocessError::Decode(_))),
            "{}: {:?}",
            hex(frame),
            decode(frame)
        );
    }

    // A falsy name makes an ack, as in JavaScript.
    assert_eq!(
        decode(&mp(&obj(&[("name", Value::Nil), ("id", Value::from(1))]))),
        Err(PreprocessError::Validation)
    );
    assert!(matches!(
        decode(&mp(&obj(&[("id", Value::from(1)), ("error", Value::Nil)]))),
        Ok(Frame::Reply { outcome: Err(_), .. })
    ));
    let falsy = [
        Value::Nil,
        Value::Boolean(false),
        Value::from(0),
        Value::F64(0.0),
        Value::F64(-0.0),
        Value::F32(0.0),
        Value::F64(f64::NAN),
        s(""),
    ];
    for name in falsy {
        let raw = envelope(&obj(&[
            ("name", name.clone()),
            ("id", Value::from(1)),
            ("result", Value::Nil),
        ]));
        assert_eq!(raw.name, NameField::Falsy, "{name}");
        assert!(matches!(validate(raw, false), Ok(Frame::Reply { id: 1, .. })), "{name}");
    }
    let truthy = [
        Value::Boolean(true),
        Value::from(-1),
        Value::F64(0.5),
        Value::Binary(vec![]),
        Value::Ext(1, vec![]),
        arr(&[]),
        obj(&[]),
    ];
    for name in truthy {
        assert_eq!(
            envelope(&obj(&[("name", name.clone())])).name,
            NameField::Other,
            "{name}"
        );
    }

    // Ids are numbers of any MessagePack width, whole and above zero.
    let id_of = |bytes: &[u8]| {
        let frame = [&[0x81, 0xa2, b'i', b'd'][..], bytes].concat();
        MsgPack.decode_envelope(&Bytes::from(frame)).unwrap().id
    };
    assert_eq!(id_of(&[0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0]), IdField::Valid(2));
    assert_eq!(id_of(&[0xca, 0x40, 0x40, 0, 0]), IdField::Valid(3));
    assert_eq!(
        id_of(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        IdField::Valid(u64::MAX)
    );
    assert_eq!(id_of(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 5]), IdField::Valid(5));
    assert_eq!(id_of(&[0xd0, 0xff]), IdField::Invalid);
    assert_eq!(id_of(&[0xd0, 0x00]), IdField::Invalid);
    assert_eq!(id_of(&[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0]), IdField::Invalid);

    // A repeated key keeps its last value and counts once.
    assert_eq!(
        decode(&mp(&msg(&[("id", Value::from(1)), ("id", Value::from(2))]))),
        Ok(Frame::Message {
            name: "x".into(),
            args: vec![],
            id: Some(2)
        })
    );
    assert_eq!(
        decode(&mp(&obj(&[
            ("result", arr(&[Value::from(1)])),
            ("id", Value::from(9)),
            ("result", Value::from(2))
        ]))),
        Ok(Frame::Reply {
            id: 9,
            outcome: Ok(raw(&Value::from(2)))
        })
    );
}

/// Nested arrays around `1`, `depth` levels deep.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x91; depth];
    v.push(0x01);
    v
}

#[test]
fn nesting_is_limited_for_envelopes_and_values() {
    let frame = |depth: usize| [b"\x82\xa4name\xa1x\xa4args".as_slice(), &nested(depth)].concat();
    // The envelope is one level, the args array the first of `nested`.
    let Ok(Frame::Message { args, .. }) = decode(&frame(MAX_DEPTH - 1)) else {
        panic!()
    };
    assert!(MsgPack.decode_value::<Value>(&args[0]).is_ok());
    let err = decode(&frame(MAX_DEPTH)).unwrap_err();
    assert!(err.to_string().contains("nested deeper than 128 levels"), "{err}");
    assert!(decode(&frame(1_000_000)).is_err());
    assert!(MsgPack.decode_value::<Value>(&nested(MAX_DEPTH)).is_ok());
    assert!(MsgPack.decode_value::<Value>(&nested(MAX_DEPTH + 1)).is_err());
    assert!(MsgPack.decode_value::<Value>(&nested(1_000_000)).is_err());
}

#[test]
fn decode_value_refuses_trailing_bytes_and_truncation() {
    assert_eq!(MsgPack.decode_value::<u8>(&[0x05]).unwrap(), 5);
    assert!(MsgPack.decode_value::<u8>(&[0x05, 0x06]).is_err());
    assert!(MsgPack.decode_value::<String>(&[0xa3, b'a']).is_err());
    assert!(MsgPack.decode_value::<Value>(&[]).is_err());
    // Arrays claiming 4 billion elements are refused before any allocation.
    assert!(MsgPack
        .decode_value::<Vec<Value>>(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])
        .is_err());
    assert!(MsgPack
        .decode_value::<Value>(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])
        .is_err());
}

/// A small xorshift generator: deterministic, no dependency.
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
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Markers that claim a length, each followed by the largest claim it can make.
const HUGE_CLAIMS: &[&[u8]] = &[
    &[0xdb, 0xff, 0xff, 0xff, 0xff],
    &[0xdd, 0xff, 0xff, 0xff, 0xff],
    &[0xdf, 0xff, 0xff, 0xff, 0xff],
    &[0xc6, 0xff, 0xff, 0xff, 0xff],
    &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xda, 0xff, 0xff],
    &[0xdc, 0xff, 0xff],
    &[0xde, 0xff, 0xff],
];

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    let at = rng.below(frame.len());
    match rng.below(7) {
        0 if !frame.is_empty() => frame[at] ^= 1 << rng.below(8),
        1 => frame.truncate(at),
        2 if !frame.is_empty() => frame[at] = rng.byte(),
        // A length field claiming far more than the frame holds.
        3 => {
            let claim = HUGE_CLAIMS[rng.below(HUGE_CLAIMS.len())];
            frame.splice(at..(at + rng.below(3)).min(frame.len()), claim.iter().copied());
        }
        // A collection or string header with a different count.
        4 if !frame.is_empty() => {
            frame[at] = [0x80, 0x90, 0xa0][rng.below(3)] | (rng.byte() & 0x0f);
        }
        5 => {
            let end = (at + rng.below(8)).min(frame.len());
            let copy = frame[at..end].to_vec();
            frame.splice(at..at, copy);
        }
        _ => {
            let end = (at + rng.below(8)).min(frame.len());
            frame.drain(at..end);
        }
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/msgpack");
    let mut seeds: Vec<Vec<u8>> = ["event", "call", "result", "error", "auth", "binary", "numbers"]
        .iter()
        .map(|name| unhex(&std::fs::read_to_string(vectors.join(format!("{name}.hex"))).unwrap()))
        .collect();
    let mut out = Vec::new();
    let nested = obj(&[("a", arr(&[Value::Nil, Value::F32(1.5), Value::Ext(-1, vec![0; 12])]))]);
    MsgPack
        .encode_message(
            "deep",
            &(&nested, "text", u64::MAX, -7i64, ByteBuf::from(vec![7; 300])),
            Some(1 << 40),
            &mut out,
        )
        .unwrap();
    seeds.push(out);

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut valid, mut refused) = (0, 0);
    let frames = 120_000;
    let start = Instant::now();
    for i in 0..frames {
        let frame: Vec<u8> = if i % 8 == 0 {
            (0..rng.below(64)).map(|_| rng.byte()).collect()
        } else {
            let mut frame = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut frame);
            }
            frame
        };
        let _ = MsgPack.decode_value::<Value>(&frame);
        match decode(&frame) {
            Ok(frame) => {
                valid += 1;
                // Whatever the envelope reader accepts, the value decoder reads.
                let raws = match frame {
                    Frame::Message { args, .. } => args,
                    Frame::Reply {
                        outcome: Ok(raw) | Err(raw),
                        ..
                    } => vec![raw],
                };
                for raw in &raws {
                    assert!(MsgPack.decode_value::<Value>(raw).is_ok(), "{}", hex(raw));
                }
            }
            Err(PreprocessError::Decode(_) | PreprocessError::Validation) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{frames} frames in {elapsed:?} ({:.0} frames/s): {valid} valid envelopes, {refused} refused",
        frames as f64 / elapsed.as_secs_f64()
    );
    assert!(valid > 1000 && refused > 1000, "valid {valid}, refused {refused}");
}
