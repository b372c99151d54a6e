//! The JSON codec's suite: golden vectors (tests/vectors/json/), the
//! JavaScript validation cases, round trips, JSON's own edge cases and
//! mutated frames, most of it through the shared kit (codecs/testkit). Run
//! with `cargo test -p ws-messaging-json`; `UPDATE_VECTORS=1` rewrites the
//! vectors.

use proptest::prelude::*;
use serde_json::{json, Value};
use ws_messaging_codec_testkit::{self as testkit, Express, Form, Kit, Mutations, Vectors};
use ws_messaging_core::{Codec, Frame, PreprocessError};
use ws_messaging_json::Json;

fn kit() -> Kit<Json> {
    Kit::new(Json, Vectors::new("json", "json", Form::Raw))
}

// Golden vectors.

#[test]
fn golden_vectors_both_ways() {
    kit().common_vectors(|shape| serde_json::to_vec(shape).unwrap());
}

// JavaScript validation.

#[test]
fn refuses_what_javascript_refuses() {
    let kit = kit();
    assert_eq!(kit.javascript_cases(Express::AnyValue), 41);

    // Not JSON: a decode error, never a validation error.
    kit.assert_decode_errors(&[
        &b"\xff"[..],
        b"{",
        b"{\"name\":\"x\",\"args\":[]}}",
        b"{\"name\":\"x\",\"args\":[1,]}",
        b"{\"name\":\"\xff\",\"args\":[]}",
    ]);
    kit.assert_prefixes_fail(br#"{"name":"x","args":[1,"a"],"id":9}"#);
}

// Round trips.

/// Any JSON value.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        testkit::finite().prop_map(|f| json!(f)),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// Ids up to 2^53: what a JavaScript number holds exactly.
testkit::round_trips!(kit(), names ".+", ids 1u64..(1 << 53), values value(), expect testkit::same, errors value(), reference |v: &Value| serde_json::to_vec(v).ok());
testkit::payload_round_trips!(kit(), floats testkit::finite());

// JSON's edge cases.

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        r#"{{"name":"x","args":[{}1{}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // The envelope only skips over the argument; decoding it hits serde_json's
    // recursion limit and fails cleanly.
    match kit().decode(deep.as_bytes()) {
        Ok(Frame::Message { args, .. }) => assert!(Json.decode_value::<Value>(&args[0]).is_err()),
        other => assert!(matches!(other, Err(PreprocessError::Decode(_))), "{other:?}"),
    }
}

// Mutations.

#[test]
fn random_and_mutated_frames_never_panic() {
    let kit = kit();
    let mut seeds = kit.vectors.all();
    seeds.extend([
        br#"{"name":"say","args":["hello",[1,2,{"a":null}],3.5e10,true]}"#.to_vec(),
        br#"{"name":"sum","args":[1,2,3],"id":99}"#.to_vec(),
        br#"{"id":5,"result":{"deep":[[[["x"]]]]}}"#.to_vec(),
        br#"{"id":6,"error":"Error: boom"}"#.to_vec(),
    ]);
    kit.mutations(&Mutations {
        random_len: 48,
        alphabet: b"{}[]\":,0123456789.eE+-truefalsnul \\\"abc".to_vec(),
        ..Mutations::new(seeds)
    });
}

proptest! {
    /// The envelopes are the bytes serde_json writes for the envelope maps.
    #[test]
    fn envelopes_are_written_as_serde_writes_them(
        name in "\\PC{0,12}|[\"\\\\\u{1}-\u{1f}\u{7f}é✓]{1,6}",
        args in prop::collection::vec(value(), 0..4),
        id in prop::option::of(any::<u64>()),
        error in value(),
    ) {
        kit().assert_envelopes_as_serde(&name, &args, id, &error);
    }
}

#[test]
fn an_envelope_that_does_not_encode_leaves_the_buffer_as_it_was() {
    use std::collections::BTreeMap;
    // serde_json refuses maps whose keys are not strings.
    let bad: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    let mut out = b"kept".to_vec();
    assert!(Json.encode_message("a", &(&bad,), Some(1), &mut out).is_err());
    assert!(Json.encode_reply(1, Ok(&bad), &mut out).is_err());
    assert_eq!(out, b"kept");
}
