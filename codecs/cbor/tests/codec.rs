//! The CBOR codec's suite: golden vectors (tests/vectors/cbor/, ours and
//! cbor-x's), the JavaScript validation cases, round trips, CBOR's own edge
//! cases (tags, indefinite lengths, JavaScript numbers) and mutated frames,
//! most of it through the shared kit (codecs/testkit). Run with
//! `cargo test -p ws-messaging-cbor`; `UPDATE_VECTORS=1` rewrites our vectors.

use ciborium::Value;
use proptest::prelude::*;
use serde::Serialize;
use serde_bytes::ByteBuf;
use serde_json::json;
use ws_messaging_cbor::{Cbor, MAX_DEPTH};
use ws_messaging_codec_testkit::{self as testkit, hex, unhex, Express, Form, Kit, Mutations, Vectors};
use ws_messaging_core::envelope::{IdField, NameField};
use ws_messaging_core::{Codec, Frame};

fn kit() -> Kit<Cbor> {
    Kit::new(Cbor, Vectors::new("cbor", "hex", Form::Hex))
}

/// `value` encoded by ciborium alone (independent of the codec; maps keep
/// their order and any repeated key).
fn cb<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// A map with text keys, in this order.
fn obj(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::Text((*k).into()), v.clone()))
            .collect(),
    )
}

/// The event `{name: "x", args: []}`, then `extra` entries.
fn msg(extra: &[(&str, Value)]) -> Value {
    let mut entries = vec![("name", Value::Text("x".into())), ("args", Value::Array(vec![]))];
    entries.extend(extra.iter().cloned());
    obj(&entries)
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

// Golden vectors.

/// Asserts that cbor-x's bytes for vector `name` (NAME.cbor-x.hex) make the
/// same frame as ours, arguments, results and errors equal as values.
fn same_as_cbor_x(kit: &Kit<Cbor>, name: &str, ours: &[u8]) {
    let theirs = kit.vectors.read(&format!("{name}.cbor-x"));
    if name == "auth" {
        for bytes in [ours, &theirs] {
            let auth: serde_json::Value = Cbor.decode_value(bytes).unwrap();
            assert_eq!(auth, json!({"token": "secret"}));
        }
        return;
    }
    let values = |bytes: &[u8]| {
        let frame = kit.frame(bytes);
        let values: Vec<Value> = testkit::raws(&frame)
            .iter()
            .map(|r| Cbor.decode_value(r).unwrap())
            .collect();
        match frame {
            Frame::Message { name, id, .. } => (Some(name), id, false, values),
            Frame::Reply { id, outcome } => (None, Some(id), outcome.is_err(), values),
        }
    };
    assert_eq!(values(ours), values(&theirs), "{name}");
}

#[test]
fn golden_vectors_both_ways() {
    let kit = kit();
    for (name, ours) in kit.common_vectors(cb) {
        same_as_cbor_x(&kit, name, &ours);
    }
    same_as_cbor_x(&kit, "binary", &kit.binary_vector(cb));
    kit.assert_binary(&kit.vectors.read("binary.cbor-x"));
    // Integers a JavaScript peer reads as numbers: 2^40 and -2^32 as floats
    // (f32 holds them exactly).
    let numbers = (
        1u64 << 40,
        -0.5f64,
        2_147_483_647u32,
        2_147_483_648u64,
        -2_147_483_648i64,
        -4_294_967_296i64,
    );
    let out = kit.encoded(|c, out| c.encode_message("sum", &numbers, Some(2_147_483_647), out));
    kit.assert_numbers_vector(&kit.vectors.check("numbers", &out));
    kit.assert_numbers_vector(&kit.vectors.read("numbers.cbor-x"));
}

// JavaScript validation.

#[test]
fn refuses_what_javascript_refuses() {
    let kit = kit();
    assert_eq!(kit.javascript_cases(Express::AnyValue), 41);

    // CBOR's own types: cbor-x reads tagged items as objects.
    let tag = |n: u64, v: Value| Value::Tag(n, Box::new(v));
    let (x, none) = (Value::Text("x".into()), Value::Array(vec![]));
    for frame in [
        obj(&[("name", Value::Bytes(b"x".to_vec())), ("args", none.clone())]),
        obj(&[("name", x.clone()), ("args", Value::Bytes(vec![1]))]),
        obj(&[("name", tag(0, x.clone())), ("args", none.clone())]),
        obj(&[("name", x.clone()), ("args", tag(258, none.clone()))]),
        msg(&[("id", tag(1, Value::Integer(5.into())))]),
        msg(&[("id", tag(2, Value::Bytes(vec![5])))]),
        tag(259, msg(&[])),
        Value::Bytes(b"{}".to_vec()),
    ] {
        kit.assert_invalid(&cb(&frame), &format!("{frame:?}"));
    }

    // Not CBOR: a decode error, never a validation error.
    let call = cb(&msg(&[("id", Value::Integer(9.into()))]));
    kit.assert_decode_errors(&[
        vec![0xff],
        vec![0x1c],
        vec![0xa1, 0x61, b'a'],
        vec![0x01, 0x02],
        [call.as_slice(), &[0xf6]].concat(),
        // args: [simple(0)], [break], a name that is not UTF-8
        b"\xa2\x64name\x61x\x64args\x81\xe0".to_vec(),
        b"\xa2\x64name\x61x\x64args\x81\xff".to_vec(),
        b"\xa2\x64name\x61\xff\x64args\x80".to_vec(),
        // a map whose break comes where a value should
        b"\xbf\x64name\xff".to_vec(),
        vec![0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]);
    kit.assert_prefixes_fail(&call);

    let name_is = |name: &[u8]| kit.envelope(&[b"\xa1\x64name".as_slice(), name].concat()).name;
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
    let id_of = |bytes: &[u8]| kit.envelope(&[&[0xa1, 0x62, b'i', b'd'][..], bytes].concat()).id;
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
    let cbor_x = unhex("b90003646e616d656373756d646172677382 01 fb4004000000000000 6269641a7fffffff");
    assert!(matches!(
        kit.frame(&cbor_x),
        Frame::Message {
            id: Some(2_147_483_647),
            ..
        }
    ));
    let Frame::Message { name, args, id: None } = kit.frame(&indefinite(b"\x01\x5f\x41\x02\xff")) else {
        panic!("not an event")
    };
    assert_eq!(name, "say");
    assert_eq!(Cbor.decode_value::<u8>(&args[0]).unwrap(), 1);
    assert_eq!(Cbor.decode_value::<ByteBuf>(&args[1]).unwrap(), ByteBuf::from(vec![2]));
}

/// A self-described, indefinite-length map `{name: "say" in chunks, args:
/// [_ items]}`.
fn indefinite(items: &[u8]) -> Vec<u8> {
    [
        &[0xd9, 0xd9, 0xf7, 0xbf][..],
        b"\x64name\x7f\x61s\x62ay\xff",
        b"\x64args\x9f",
        items,
        &[0xff, 0xff],
    ]
    .concat()
}

// Round trips.

/// Any CBOR value: byte strings and tags included.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| Value::Integer(v.into())),
        any::<u64>().prop_map(|v| Value::Integer(v.into())),
        (-(1i64 << 33)..(1 << 33)).prop_map(|v| Value::Integer(v.into())),
        testkit::finite().prop_map(Value::Float),
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

// Where no integer needs a float, the bytes are ciborium's own.
testkit::round_trips!(kit(), names ".+", ids 1u64.., values value(), expect js, errors testkit::error_value(), reference |v: &Value| (js(v) == *v).then(|| cb(v)));
testkit::payload_round_trips!(kit(), floats testkit::finite());

// CBOR's edge cases.

#[test]
fn javascript_values_decode_into_rust_types() {
    // Uint8Array: tag 64 around the bytes; serde_bytes reads through it.
    let uint8 = [0xd8, 0x40, 0x42, 4, 5];
    assert_eq!(Cbor.decode_value::<ByteBuf>(&uint8).unwrap(), ByteBuf::from(vec![4, 5]));
    assert_eq!(
        Cbor.decode_value::<Value>(&uint8).unwrap(),
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

#[test]
fn nesting_is_limited_for_envelopes_and_values() {
    kit().assert_nesting_limited::<Value>(b"\xa2\x64name\x61x\x64args", 0x81, MAX_DEPTH);
    // A million indefinite-length arrays, or tags.
    assert!(Cbor.decode_value::<Value>(&vec![0x9f; 1_000_000]).is_err());
    assert!(Cbor.decode_value::<Value>(&vec![0xc1; 1_000_000]).is_err());
}

#[test]
fn decode_value_refuses_trailing_bytes_and_truncation() {
    // Collections claiming 2^64 elements are refused before any allocation.
    let huge = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6];
    kit().assert_values_whole::<Value>(&[0x63, b'a'], &huge);
}

#[test]
fn arguments_are_checked_once_and_only_once() {
    kit().assert_arguments_checked_once::<Value>(&[0x07, 0xf6], 0x81);
}

// Mutations.

#[test]
fn random_and_mutated_frames_never_panic() {
    let kit = kit();
    let mut seeds = kit.vectors.all();
    let uint8 = Value::Tag(64, Box::new(Value::Bytes(vec![0; 12])));
    let nested = obj(&[("a", Value::Array(vec![Value::Null, Value::Float(1.5), uint8]))]);
    seeds.push(kit.deep_seed(&nested));
    seeds.push(indefinite(b"\x01\x5f\x41\x02\xff\xbf\x61k\xf7\xff"));
    kit.mutations(&Mutations {
        frames: 120_000,
        random_every: 8,
        min_each: 1001,
        // Initial bytes that claim a length, each with the largest claim it can make.
        splices: vec![
            vec![0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x7a, 0xff, 0xff, 0xff, 0xff],
            vec![0x9a, 0xff, 0xff, 0xff, 0xff],
            vec![0xba, 0xff, 0xff, 0xff, 0xff],
            vec![0x99, 0xff, 0xff],
            vec![0xdb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ],
        // Byte, text, array and map headers with another count; indefinite
        // lengths and breaks; tags and floats.
        markers: (0..24)
            .flat_map(|n| [0x40 | n, 0x60 | n, 0x80 | n, 0xa0 | n])
            .chain([0x5f, 0x7f, 0x9f, 0xbf, 0xff, 0xc0, 0xd8, 0xd9, 0xf9, 0xfa, 0xfb])
            .collect(),
        on_frame: testkit::read_as::<Cbor, Value>,
        // Whatever the envelope reader accepts, the value decoder reads
        // (except bignums beyond what ciborium holds).
        on_valid: |_, frame| {
            for raw in testkit::raws(frame) {
                if let Err(e) = Cbor.decode_value::<Value>(&raw) {
                    assert!(e.to_string().contains("too large"), "{}: {e}", hex(&raw));
                }
            }
        },
        ..Mutations::new(seeds)
    });
}

proptest! {
    /// The envelopes are the bytes the codec writes for the envelope maps
    /// through serde.
    #[test]
    fn envelopes_are_written_as_serde_writes_them(
        name in "\\PC{0,40}",
        long in prop::sample::select(vec![0usize, 23, 24, 255, 256, 65_535, 65_536]),
        args in prop::collection::vec(value(), 0..4),
        id in prop::option::of(prop_oneof![0u64..300, any::<u64>(), Just(u64::from(u32::MAX) + 1), Just(1u64 << 53)]),
        error in any::<i64>(),
    ) {
        let name = if long > 0 { "n".repeat(long) } else { name };
        kit().assert_envelopes_as_serde(&name, &args, id, &json!(error));
    }
}
