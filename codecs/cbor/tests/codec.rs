//! Round trips, golden vectors, validation rules and hostile input for the
//! CBOR codec.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use ciborium::Value;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use serde_json::json;
use ws_messaging::envelope::{validate, IdField, NameField};
use ws_messaging::{Codec, Frame, PreprocessError};
use ws_messaging_cbor::{Cbor, MAX_DEPTH};

fn decode(frame: &[u8]) -> Result<Frame, PreprocessError> {
    let raw = Cbor
        .decode_envelope(&Bytes::copy_from_slice(frame))
        .map_err(PreprocessError::Decode)?;
    validate(raw, true)
}

/// `value` encoded by ciborium alone (independent of the codec; maps keep
/// their order and any repeated key).
fn cb(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// A map with text keys, in this order.
fn obj(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn arr(items: &[Value]) -> Value {
    Value::Array(items.to_vec())
}

fn s(text: &str) -> Value {
    Value::Text(text.into())
}

fn int(v: i64) -> Value {
    Value::Integer(v.into())
}

/// What a value becomes after the codec's trip, which writes integers
/// outside `[-2^31, 2^32)` but within `±2^53` as floats (as cbor-x does).
fn js(value: &Value) -> Value {
    match value {
        Value::Integer(i) => {
            let v = i128::from(*i);
            if !(-(1 << 31)..1 << 32).contains(&v) && v.unsigned_abs() <= 1 << 53 {
                Value::Float(v as f64)
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(js).collect()),
        Value::Map(entries) => Value::Map(entries.iter().map(|(k, v)| (js(k), js(v))).collect()),
        Value::Tag(tag, inner) => Value::Tag(*tag, Box::new(js(inner))),
        other => other.clone(),
    }
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(int),
        any::<u64>().prop_map(|v| Value::Integer(v.into())),
        (-(1i64 << 33)..(1 << 33)).prop_map(int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        prop_oneof![Just(0.5), Just(-0.0), Just(65504.0), Just(1e300), Just(0.1)].prop_map(Value::Float),
        ".*".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
            // Any tag but the bignums 2 and 3, which ciborium reads as integers.
            ((4u64..100_000), inner).prop_map(|(tag, v)| Value::Tag(tag, Box::new(v))),
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
    offset: i64,
    ratio: Option<f64>,
}

fn upload() -> impl Strategy<Value = Upload> {
    (
        ".*",
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8).prop_map(ByteBuf::from), 0..4),
        any::<u64>(),
        any::<i64>(),
        proptest::option::of(any::<f64>().prop_filter("finite", |f| f.is_finite())),
    )
        .prop_map(|(name, data, parts, size, offset, ratio)| Upload {
            name,
            data,
            parts,
            size,
            offset,
            ratio,
        })
}

proptest! {
    #[test]
    fn messages_round_trip(name in ".+", id in proptest::option::of(1u64..), args in prop::collection::vec(value(), 0..5)) {
        let mut out = Vec::new();
        Cbor.encode_message(&name, &args, id, &mut out).unwrap();
        let Frame::Message { name: got, args: raw, id: got_id } = decode(&out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(got, name);
        prop_assert_eq!(got_id, id);
        let back: Vec<Value> = raw.iter().map(|r| Cbor.decode_value(r).unwrap()).collect();
        prop_assert_eq!(back, args.iter().map(js).collect::<Vec<_>>());
    }

    #[test]
    fn typed_payloads_round_trip(first in upload(), second in upload(), id in 1u64..) {
        let mut out = Vec::new();
        Cbor.encode_message("upload", &(&first, &second), Some(id), &mut out).unwrap();
        let Frame::Message { args, id: got, .. } = decode(&out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(got, Some(id));
        prop_assert_eq!(Cbor.decode_value::<Upload>(&args[0]).unwrap(), first);
        prop_assert_eq!(Cbor.decode_value::<Upload>(&args[1]).unwrap(), second);
    }

    #[test]
    fn acks_round_trip(id in 1u64.., result in value(), error in json_value()) {
        let mut out = Vec::new();
        Cbor.encode_reply(id, Ok(&result), &mut out).unwrap();
        let Frame::Reply { id: got, outcome: Ok(raw) } = decode(&out).unwrap() else { panic!("not a result") };
        prop_assert_eq!(got, id);
        prop_assert_eq!(Cbor.decode_value::<Value>(&raw).unwrap(), js(&result));
        out.clear();
        Cbor.encode_reply::<()>(id, Err(&error), &mut out).unwrap();
        let Frame::Reply { outcome: Err(raw), .. } = decode(&out).unwrap() else { panic!("not an error") };
        prop_assert_eq!(Cbor.decode_error(&raw).unwrap(), error);
    }

    #[test]
    fn bare_values_round_trip(v in value()) {
        let mut out = Vec::new();
        Cbor.encode_value(&v, &mut out).unwrap();
        prop_assert_eq!(Cbor.decode_value::<Value>(&out).unwrap(), js(&v));
        // Where no integer needs a float, the bytes are ciborium's own.
        if js(&v) == v {
            prop_assert_eq!(out, cb(&v));
        }
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

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/cbor")
}

/// Compares `encoded` with tests/vectors/cbor/NAME.hex (`UPDATE_VECTORS=1`
/// rewrites it) and returns the vector's bytes, then the bytes cbor-x
/// writes for the same value (NAME.cbor-x.hex).
fn golden(name: &str, encoded: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let path = vectors().join(format!("{name}.hex"));
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(&path, hex(encoded) + "\n").unwrap();
    }
    let read = |path: PathBuf| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = read(path);
    assert_eq!(hex(encoded), text.trim(), "encoding of {name} changed");
    (unhex(&text), unhex(&read(vectors().join(format!("{name}.cbor-x.hex")))))
}

fn raw(value: &Value) -> Bytes {
    Bytes::from(cb(value))
}

/// Decodes both encodings: ours must give exactly `expected` (arguments
/// byte for byte), cbor-x's the same frame with arguments equal as values.
fn both_ways(ours: &[u8], theirs: &[u8], expected: &Frame) {
    assert_eq!(&decode(ours).unwrap(), expected);
    let values = |frame: &Frame| -> (Option<String>, Option<u64>, Vec<Value>) {
        match frame {
            Frame::Message { name, args, id } => (
                Some(name.clone()),
                *id,
                args.iter().map(|a| Cbor.decode_value(a).unwrap()).collect(),
            ),
            Frame::Reply { id, outcome } => {
                let (Ok(raw) | Err(raw)) = outcome;
                (None, Some(*id), vec![Cbor.decode_value(raw).unwrap()])
            }
        }
    };
    let frame = decode(theirs).unwrap();
    assert_eq!(
        std::mem::discriminant(&frame),
        std::mem::discriminant(expected),
        "{frame:?}"
    );
    assert_eq!(values(&frame), values(expected));
}

#[derive(Serialize)]
struct Data {
    data: ByteBuf,
}

#[test]
fn golden_vectors_both_ways() {
    let mut out = Vec::new();
    Cbor.encode_message("say", &("hi", 3), None, &mut out).unwrap();
    let (ours, theirs) = golden("event", &out);
    let expected = Frame::Message {
        name: "say".into(),
        args: vec![raw(&s("hi")), raw(&int(3))],
        id: None,
    };
    both_ways(&ours, &theirs, &expected);

    out.clear();
    Cbor.encode_message("sum", &(1, 2.5), Some(7), &mut out).unwrap();
    let (ours, theirs) = golden("call", &out);
    let expected = Frame::Message {
        name: "sum".into(),
        args: vec![raw(&int(1)), raw(&Value::Float(2.5))],
        id: Some(7),
    };
    both_ways(&ours, &theirs, &expected);

    out.clear();
    Cbor.encode_reply(7, Ok(&json!({"user": "alice"})), &mut out).unwrap();
    let (ours, theirs) = golden("result", &out);
    let expected = Frame::Reply {
        id: 7,
        outcome: Ok(raw(&obj(&[("user", s("alice"))]))),
    };
    both_ways(&ours, &theirs, &expected);

    out.clear();
    Cbor.encode_reply::<()>(8, Err(&json!("Error: boom")), &mut out)
        .unwrap();
    let (ours, theirs) = golden("error", &out);
    let expected = Frame::Reply {
        id: 8,
        outcome: Err(raw(&s("Error: boom"))),
    };
    both_ways(&ours, &theirs, &expected);

    out.clear();
    Cbor.encode_value(&json!({"token": "secret"}), &mut out).unwrap();
    let (ours, theirs) = golden("auth", &out);
    for bytes in [ours, theirs] {
        assert_eq!(
            Cbor.decode_value::<serde_json::Value>(&bytes).unwrap(),
            json!({"token": "secret"})
        );
    }

    out.clear();
    let blob = ByteBuf::from(vec![0, 1, 255]);
    let empty = Data { data: ByteBuf::new() };
    Cbor.encode_message("blob", &(&blob, &empty), None, &mut out).unwrap();
    let (ours, theirs) = golden("binary", &out);
    let expected = Frame::Message {
        name: "blob".into(),
        args: vec![
            raw(&Value::Bytes(vec![0, 1, 255])),
            raw(&obj(&[("data", Value::Bytes(vec![]))])),
        ],
        id: None,
    };
    both_ways(&ours, &theirs, &expected);
    let Frame::Message { args, .. } = decode(&theirs).unwrap() else {
        panic!()
    };
    assert_eq!(Cbor.decode_value::<ByteBuf>(&args[0]).unwrap(), blob);

    // Integers a JavaScript peer reads as numbers: 2^40 and -2^32 as floats
    // (f32 holds them exactly).
    out.clear();
    let numbers = (
        1u64 << 40,
        -0.5f64,
        2_147_483_647u32,
        2_147_483_648u64,
        -2_147_483_648i64,
        -4_294_967_296i64,
    );
    Cbor.encode_message("sum", &numbers, Some(2_147_483_647), &mut out)
        .unwrap();
    let (ours, theirs) = golden("numbers", &out);
    for bytes in [ours, theirs] {
        let Frame::Message { args, id, .. } = decode(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(id, Some(2_147_483_647));
        let ints: Vec<i64> = [0, 2, 3, 4, 5]
            .iter()
            .map(|&i| Cbor.decode_value(&args[i]).unwrap())
            .collect();
        assert_eq!(
            ints,
            [1 << 40, 2_147_483_647, 2_147_483_648, -2_147_483_648, -4_294_967_296]
        );
        assert_eq!(Cbor.decode_value::<f64>(&args[1]).unwrap(), -0.5);
        assert_eq!(Cbor.decode_value::<f64>(&args[2]).unwrap(), 2_147_483_647.0);
        assert!(Cbor.decode_value::<i64>(&args[1]).is_err(), "a fraction is no integer");
        assert!(Cbor.decode_value::<u32>(&args[0]).is_err(), "2^40 does not fit a u32");
    }
}

fn envelope(frame: &[u8]) -> ws_messaging::envelope::RawEnvelope {
    Cbor.decode_envelope(&Bytes::copy_from_slice(frame)).unwrap()
}

#[test]
fn refuses_what_javascript_refuses() {
    let msg = |extra: &[(&str, Value)]| {
        let mut entries = vec![("name", s("x")), ("args", arr(&[]))];
        entries.extend(extra.iter().cloned());
        obj(&entries)
    };
    let tag = |n: u64, v: Value| Value::Tag(n, Box::new(v));
    let bad = [
        arr(&[int(1), int(2)]),
        s("str"),
        int(42),
        Value::Null,
        obj(&[]),
        obj(&[("foo", int(1))]),
        obj(&[("name", s("x")), ("args", obj(&[]))]),
        msg(&[("id", int(0))]),
        msg(&[("id", int(-1))]),
        msg(&[("id", Value::Float(1.5))]),
        msg(&[("id", s("1"))]),
        msg(&[("id", Value::Null)]),
        msg(&[("extra", int(1))]),
        obj(&[("name", int(5)), ("args", arr(&[]))]),
        obj(&[("name", s("x"))]),
        obj(&[("id", Value::Float(1.5)), ("result", int(1))]),
        obj(&[("id", int(1))]),
        obj(&[("id", int(1)), ("result", int(1)), ("error", int(2))]),
        obj(&[("name", s("")), ("args", arr(&[])), ("id", int(1))]),
        // CBOR's own types: cbor-x reads tagged items as objects.
        obj(&[("name", Value::Bytes(b"x".to_vec())), ("args", arr(&[]))]),
        obj(&[("name", s("x")), ("args", Value::Bytes(vec![1]))]),
        obj(&[("name", tag(0, s("x"))), ("args", arr(&[]))]),
        obj(&[("name", s("x")), ("args", tag(258, arr(&[])))]),
        msg(&[("id", tag(1, int(5)))]),
        msg(&[("id", tag(2, Value::Bytes(vec![5])))]),
        tag(259, obj(&[("name", s("x")), ("args", arr(&[]))])),
        Value::Bytes(b"{}".to_vec()),
        // A non-text key is one more key, as in JavaScript.
        Value::Map(vec![(int(1), s("x")), (s("name"), s("x")), (s("args"), arr(&[]))]),
        msg(&[("id", int(1)), ("", Value::Null)]),
    ];
    for frame in &bad {
        assert_eq!(decode(&cb(frame)), Err(PreprocessError::Validation), "{frame:?}");
    }

    // Not CBOR: a decode error, never a validation error.
    let call = cb(&msg(&[("id", int(9))]));
    let mut broken: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        vec![0x1c],
        vec![0xa1, 0x61, b'a'],
        vec![0x01, 0x02],
        [call.as_slice(), &[0xf6]].concat(),
        // args: [simple(0)], [break], invalid UTF-8
        vec![
            0xa2, 0x64, b'n', b'a', b'm', b'e', 0x61, b'x', 0x64, b'a', b'r', b'g', b's', 0x81, 0xe0,
        ],
        vec![
            0xa2, 0x64, b'n', b'a', b'm', b'e', 0x61, b'x', 0x64, b'a', b'r', b'g', b's', 0x81, 0xff,
        ],
        vec![
            0xa2, 0x64, b'n', b'a', b'm', b'e', 0x61, 0xff, 0x64, b'a', b'r', b'g', b's', 0x80,
        ],
        // a map whose break comes where a value should
        vec![0xbf, 0x64, b'n', b'a', b'm', b'e', 0xff],
        vec![0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
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
        decode(&cb(&obj(&[("name", Value::Null), ("id", int(1))]))),
        Err(PreprocessError::Validation)
    );
    assert!(matches!(
        decode(&cb(&obj(&[("id", int(1)), ("error", Value::Null)]))),
        Ok(Frame::Reply { outcome: Err(_), .. })
    ));
    let name_is = |name: &[u8]| {
        let frame = [b"\xa1\x64name".as_slice(), name].concat();
        envelope(&frame).name
    };
    // null, undefined, false, 0, 0.0 (f16), -0.0, NaN, "", "" in chunks
    for falsy in [
        &[0xf6][..],
        &[0xf7],
        &[0xf4],
        &[0x00],
        &[0xf9, 0, 0],
        &[0xfb, 0x80, 0, 0, 0, 0, 0, 0, 0],
        &[0xf9, 0x7e, 0],
        &[0x60],
        &[0x7f, 0x60, 0xff],
    ] {
        assert_eq!(name_is(falsy), NameField::Falsy, "{falsy:02x?}");
    }
    // true, -1, 0.5, h'', [], {}, tag 1(0)
    for truthy in [
        &[0xf5][..],
        &[0x20],
        &[0xf9, 0x38, 0],
        &[0x40],
        &[0x80],
        &[0xa0],
        &[0xc1, 0x00],
    ] {
        assert_eq!(name_is(truthy), NameField::Other, "{truthy:02x?}");
    }
    assert_eq!(
        name_is(&[0x7f, 0x61, b'a', 0x62, b'b', b'c', 0xff]),
        NameField::Str("abc".into())
    );
    assert_eq!(name_is(&[0xd9, 0xd9, 0xf7, 0x61, b'a']), NameField::Str("a".into()));

    // Ids are numbers of any CBOR width, whole and above zero.
    let id_of = |bytes: &[u8]| envelope(&[&[0xa1, 0x62, b'i', b'd'][..], bytes].concat()).id;
    assert_eq!(id_of(&[0xf9, 0x40, 0x00]), IdField::Valid(2));
    assert_eq!(id_of(&[0xfa, 0x40, 0x40, 0, 0]), IdField::Valid(3));
    assert_eq!(id_of(&[0xfb, 0x42, 0x70, 0, 0, 0, 0, 0, 0]), IdField::Valid(1 << 40));
    assert_eq!(id_of(&[0x1b, 0, 0, 0, 0, 0, 0, 0, 5]), IdField::Valid(5));
    assert_eq!(
        id_of(&[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        IdField::Valid(u64::MAX)
    );
    assert_eq!(id_of(&[0xd9, 0xd9, 0xf7, 0x05]), IdField::Valid(5));
    assert_eq!(id_of(&[0x20]), IdField::Invalid);
    assert_eq!(id_of(&[0xf7]), IdField::Invalid);
    assert_eq!(id_of(&[0xf9, 0x7c, 0x00]), IdField::Invalid);

    // What cbor-x writes (16-bit map sizes) and what other encoders may
    // (indefinite lengths, chunked text, the self-describe tag) all work.
    let cbor_x = unhex(
        "b90003646e616d656373756d646172677382 01 fb4004000000000000 6269641a7fffffff"
            .replace(' ', "")
            .as_str(),
    );
    assert!(matches!(
        decode(&cbor_x),
        Ok(Frame::Message {
            id: Some(2_147_483_647),
            ..
        })
    ));
    let indefinite = [
        &[0xd9, 0xd9, 0xf7, 0xbf][..],
        b"\x64name\x7f\x61s\x62ay\xff",
        b"\x64args\x9f\x01\x5f\x41\x02\xff\xff",
        &[0xff],
    ]
    .concat();
    let Ok(Frame::Message { name, args, id: None }) = decode(&indefinite) else {
        panic!("{:?}", decode(&indefinite))
    };
    assert_eq!(name, "say");
    assert_eq!(Cbor.decode_value::<u8>(&args[0]).unwrap(), 1);
    assert_eq!(Cbor.decode_value::<ByteBuf>(&args[1]).unwrap(), ByteBuf::from(vec![2]));

    // A repeated key keeps its last value and counts once.
    assert_eq!(
        decode(&cb(&msg(&[("id", int(1)), ("id", int(2))]))),
        Ok(Frame::Message {
            name: "x".into(),
            args: vec![],
            id: Some(2)
        })
    );
    assert_eq!(
        decode(&cb(&obj(&[
            ("result", arr(&[int(1)])),
            ("id", int(9)),
            ("result", int(2))
        ]))),
        Ok(Frame::Reply {
            id: 9,
            outcome: Ok(raw(&int(2)))
        })
    );
}

#[test]
fn javascript_values_decode_into_rust_types() {
    // Uint8Array: tag 64 around the bytes; serde_bytes reads through it.
    assert_eq!(
        Cbor.decode_value::<ByteBuf>(&[0xd8, 0x40, 0x42, 4, 5]).unwrap(),
        ByteBuf::from(vec![4, 5])
    );
    assert_eq!(
        Cbor.decode_value::<Value>(&[0xd8, 0x40, 0x42, 4, 5]).unwrap(),
        Value::Tag(64, Box::new(Value::Bytes(vec![4, 5])))
    );
    // undefined reads as null.
    assert_eq!(Cbor.decode_value::<Option<u8>>(&[0xf7]).unwrap(), None);
    Cbor.decode_value::<()>(&[0xf7]).unwrap();
    assert_eq!(Cbor.decode_value::<serde_json::Value>(&[0xf7]).unwrap(), json!(null));
    // A BigInt (what cbor-x writes for one) reads as an integer.
    assert_eq!(
        Cbor.decode_value::<u64>(&[0x1b, 0, 0x20, 0, 0, 0, 0, 0, 1]).unwrap(),
        (1 << 53) + 1
    );
}

/// Nested arrays around `1`, `depth` levels deep.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x81; depth];
    v.push(0x01);
    v
}

#[test]
fn nesting_is_limited_for_envelopes_and_values() {
    let frame = |depth: usize| [b"\xa2\x64name\x61x\x64args".as_slice(), &nested(depth)].concat();
    // The envelope is one level, the args array the first of `nested`.
    let Ok(Frame::Message { args, .. }) = decode(&frame(MAX_DEPTH - 1)) else {
        panic!()
    };
    assert!(Cbor.decode_value::<Value>(&args[0]).is_ok());
    let err = decode(&frame(MAX_DEPTH)).unwrap_err();
    assert!(err.to_string().contains("nested deeper than 128 levels"), "{err}");
    assert!(decode(&frame(1_000_000)).is_err());
    assert!(Cbor.decode_value::<Value>(&nested(MAX_DEPTH)).is_ok());
    assert!(Cbor.decode_value::<Value>(&nested(MAX_DEPTH + 1)).is_err());
    assert!(Cbor.decode_value::<Value>(&vec![0x9f; 1_000_000]).is_err());
    assert!(Cbor.decode_value::<Value>(&vec![0xc1; 1_000_000]).is_err());
}

#[test]
fn decode_value_refuses_trailing_bytes_and_truncation() {
    assert_eq!(Cbor.decode_value::<u8>(&[0x05]).unwrap(), 5);
    assert!(Cbor.decode_value::<u8>(&[0x05, 0x06]).is_err());
    assert!(Cbor.decode_value::<String>(&[0x63, b'a']).is_err());
    assert!(Cbor.decode_value::<Value>(&[]).is_err());
    // Collections claiming 2^64 elements are refused before any allocation.
    let huge = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6];
    assert!(Cbor.decode_value::<Vec<Value>>(&huge).is_err());
    assert!(Cbor.decode_value::<Value>(&huge).is_err());
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

/// Initial bytes that claim a length, each followed by the largest claim it can make.
const HUGE_CLAIMS: &[&[u8]] = &[
    &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x7a, 0xff, 0xff, 0xff, 0xff],
    &[0x9a, 0xff, 0xff, 0xff, 0xff],
    &[0xba, 0xff, 0xff, 0xff, 0xff],
    &[0x99, 0xff, 0xff],
    &[0xdb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
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
        // A collection or string header with another count, or indefinite.
        4 if !frame.is_empty() => {
            frame[at] = match rng.below(3) {
                0 => [0x40, 0x60, 0x80, 0xa0][rng.below(4)] | (rng.byte() % 24),
                1 => [0x5f, 0x7f, 0x9f, 0xbf, 0xff][rng.below(5)],
                _ => [0xc0, 0xd8, 0xd9, 0xf9, 0xfa, 0xfb][rng.below(6)],
            };
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
    let mut seeds = Vec::new();
    for name in ["event", "call", "result", "error", "auth", "binary", "numbers"] {
        for file in [format!("{name}.hex"), format!("{name}.cbor-x.hex")] {
            seeds.push(unhex(&std::fs::read_to_string(vectors().join(file)).unwrap()));
        }
    }
    let mut out = Vec::new();
    let nested = obj(&[(
        "a",
        arr(&[
            Value::Null,
            Value::Float(1.5),
            Value::Tag(64, Box::new(Value::Bytes(vec![0; 12]))),
        ]),
    )]);
    let big = ByteBuf::from(vec![7; 300]);
    Cbor.encode_message(
        "deep",
        &(&nested, "text", u64::MAX, -7i64, &big),
        Some(1 << 40),
        &mut out,
    )
    .unwrap();
    seeds.push(out);
    seeds.push(
        [
            &[0xd9, 0xd9, 0xf7, 0xbf][..],
            b"\x64name\x7f\x61s\x62ay\xff",
            b"\x64args\x9f\x01\x5f\x41\x02\xff\xbf\x61k\xf7\xff\xff",
            &[0xff],
        ]
        .concat(),
    );

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
        let _ = Cbor.decode_value::<Value>(&frame);
        match decode(&frame) {
            Ok(frame) => {
                valid += 1;
                let raws = match frame {
                    Frame::Message { args, .. } => args,
                    Frame::Reply {
                        outcome: Ok(raw) | Err(raw),
                        ..
                    } => vec![raw],
                };
                for raw in &raws {
                    // Whatever the envelope reader accepts, the value decoder
                    // reads (except bignums beyond what ciborium holds).
                    if let Err(e) = Cbor.decode_value::<Value>(raw) {
                        assert!(e.to_string().contains("too large"), "{}: {e}", hex(raw));
                    }
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
