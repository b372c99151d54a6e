//! The MessagePack codec's suite: golden vectors (tests/vectors/msgpack/),
//! the JavaScript validation cases, round trips, MessagePack's own edge
//! cases and mutated frames, most of it through the shared kit
//! (codecs/testkit). Run with `cargo test -p ws-messaging-msgpack`;
//! `UPDATE_VECTORS=1` rewrites the vectors.

use proptest::prelude::*;
use rmpv::Value;
use ws_messaging_codec_testkit::{self as testkit, Express, Form, Kit, Mutations, Shape, Vectors};
use ws_messaging_core::envelope::{validate, IdField, NameField};
use ws_messaging_core::{Codec, Frame};
use ws_messaging_msgpack::{MsgPack, MAX_DEPTH};

fn kit() -> Kit<MsgPack> {
    Kit::new(MsgPack, Vectors::new("msgpack", "hex", Form::Hex))
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

/// The event `{name: "x", args: []}`, then `extra` entries.
fn msg(extra: &[(&str, Value)]) -> Value {
    let Value::Map(mut entries) = rmpv::ext::to_value(testkit::msg(&[])).unwrap() else {
        unreachable!("a map")
    };
    entries.extend(extra.iter().map(|(k, v)| (Value::from(*k), v.clone())));
    Value::Map(entries)
}

// Golden vectors.

#[test]
fn golden_vectors_both_ways() {
    let kit = kit();
    let independent = |shape: &Shape| mp(&rmpv::ext::to_value(shape).unwrap());
    kit.common_vectors(independent);
    kit.binary_vector(independent);
    // As msgpack-lite writes numbers: floats outside the int32 range.
    let numbers = (
        1_099_511_627_776.0f64,
        -0.5f64,
        2_147_483_647u32,
        2_147_483_648.0f64,
        -2_147_483_648i32,
        -4_294_967_296.0f64,
    );
    let out = kit.encoded(|c, out| c.encode_message("sum", &numbers, Some(2_147_483_647), out));
    kit.assert_numbers_vector(&kit.vectors.check("numbers", &out));
}

// JavaScript validation.

#[test]
fn refuses_what_javascript_refuses() {
    let kit = kit();
    assert_eq!(kit.javascript_cases(Express::AnyValue), 41);

    // MessagePack's own types.
    for frame in [
        obj(&[("name", Value::Binary(b"x".to_vec())), ("args", Value::Array(vec![]))]),
        obj(&[("name", Value::from("x")), ("args", Value::Binary(vec![1]))]),
        msg(&[("id", Value::F32(1.5))]),
        msg(&[("id", Value::Binary(vec![1]))]),
        msg(&[("id", Value::Ext(1, vec![1]))]),
        Value::Binary(b"{}".to_vec()),
        Value::Ext(0x12, vec![]),
    ] {
        kit.assert_invalid(&mp(&frame), &frame.to_string());
    }

    // Not MessagePack: a decode error, never a validation error.
    let call = mp(&msg(&[("id", Value::from(9))]));
    kit.assert_decode_errors(&[
        vec![0xc1],
        vec![0x81, 0xa1, b'a'],
        vec![0x01, 0x02],
        [call.as_slice(), &[0xc0]].concat(),
        b"\x82\xa4name\xa1x\xa4args\x91\xc1".to_vec(),
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],
    ]);
    kit.assert_prefixes_fail(&call);

    // Falsy and truthy names of MessagePack's own types.
    let named = |name: Value| obj(&[("name", name), ("id", Value::from(1)), ("result", Value::Nil)]);
    let raw = kit.envelope(&mp(&named(Value::F32(0.0))));
    assert_eq!(raw.name, NameField::Falsy);
    assert!(matches!(validate(raw, false), Ok(Frame::Reply { id: 1, .. })));
    for name in [Value::Binary(vec![]), Value::Ext(1, vec![])] {
        assert_eq!(kit.envelope(&mp(&named(name.clone()))).name, NameField::Other, "{name}");
    }

    // Ids are numbers of any MessagePack width, whole and above zero.
    let id_of = |bytes: &[u8]| kit.envelope(&[&[0x81, 0xa2, b'i', b'd'][..], bytes].concat()).id;
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
}

// Round trips.

/// Any MessagePack value: binary and ext types included.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F32),
        testkit::finite().prop_map(Value::F64),
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

testkit::round_trips!(kit(), names ".+", ids 1u64.., values value(), expect testkit::same, errors testkit::error_value(), reference |v: &Value| Some(mp(v)));
testkit::payload_round_trips!(kit(), floats testkit::finite());

// MessagePack's edge cases.

#[test]
fn nesting_is_limited_for_envelopes_and_values() {
    kit().assert_nesting_limited::<Value>(b"\x82\xa4name\xa1x\xa4args", 0x91, MAX_DEPTH);
}

#[test]
fn decode_value_refuses_trailing_bytes_and_truncation() {
    // Arrays claiming 4 billion elements are refused before any allocation.
    kit().assert_values_whole::<Value>(&[0xa3, b'a'], &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]);
}

#[test]
fn arguments_are_checked_once_and_only_once() {
    kit().assert_arguments_checked_once::<Value>(&[0x07, 0xc0], 0x91);
}

// Mutations.

#[test]
fn random_and_mutated_frames_never_panic() {
    let kit = kit();
    let mut seeds = kit.vectors.all();
    let nested = obj(&[(
        "a",
        Value::Array(vec![Value::Nil, Value::F32(1.5), Value::Ext(-1, vec![0; 12])]),
    )]);
    seeds.push(kit.deep_seed(&nested));
    kit.mutations(&Mutations {
        frames: 120_000,
        random_every: 8,
        min_each: 1001,
        // Markers claiming far more than the frame holds.
        splices: vec![
            vec![0xdb, 0xff, 0xff, 0xff, 0xff],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            vec![0xc6, 0xff, 0xff, 0xff, 0xff],
            vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
            vec![0xda, 0xff, 0xff],
            vec![0xdc, 0xff, 0xff],
            vec![0xde, 0xff, 0xff],
        ],
        // Map, array and string headers with another count.
        markers: (0..16).flat_map(|n| [0x80 | n, 0x90 | n, 0xa0 | n]).collect(),
        on_frame: testkit::read_as::<MsgPack, Value>,
        // Whatever the envelope reader accepts, the value decoder reads.
        on_valid: testkit::raws_read_as::<MsgPack, Value>,
        ..Mutations::new(seeds)
    });
}

proptest! {
    /// The envelopes are the bytes rmp-serde writes for the envelope maps.
    #[test]
    fn envelopes_are_written_as_rmp_serde_writes_them(
        name in "\\PC{0,40}",
        long in prop::sample::select(vec![0usize, 31, 32, 255, 256, 65_535, 65_536]),
        args in prop::collection::vec(value(), 0..4),
        id in prop::option::of(prop_oneof![0u64..300, any::<u64>(), Just(u64::from(u32::MAX)), Just(65_536u64)]),
        error in any::<i64>(),
    ) {
        let name = if long > 0 { "n".repeat(long) } else { name };
        kit().assert_envelopes_as_serde(&name, &args, id, &serde_json::json!(error));
    }
}
