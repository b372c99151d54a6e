//! The bincode codec's suite: golden vectors (tests/vectors/bincode/), the
//! JavaScript validation cases its fixed envelope can express, round trips,
//! bincode's own edge cases and mutated frames, most of it through the
//! shared kit (codecs/testkit). Run with `cargo test -p ws-messaging-bincode`;
//! `UPDATE_VECTORS=1` rewrites the vectors.

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use ws_messaging_bincode::Bincode;
use ws_messaging_codec_testkit::{self as testkit, Express, Form, Kit, Mutations, Vectors};
use ws_messaging_core::Codec;

fn kit() -> Kit<Bincode> {
    Kit::new(Bincode, Vectors::new("bincode", "hex", Form::Hex))
}

// Golden vectors.

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Auth {
    token: String,
}

#[test]
fn golden_vectors_both_ways() {
    let kit = kit();
    let raw = Bytes::from_static;
    kit.message_vector("event", "say", &("hi", 3u8), None, vec![raw(b"\x02hi"), raw(b"\x03")]);
    kit.message_vector("call", "sum", &(1u32, 2u32), Some(7), vec![raw(b"\x01"), raw(b"\x02")]);
    kit.reply_vector("result", 7, Ok(&3u32), Ok(raw(b"\x03")));
    // Errors travel as JSON text.
    let boom = serde_json::json!("Error: boom");
    kit.reply_vector::<()>("error", 8, Err(&boom), Err(raw(b"\"Error: boom\"")));
    kit.value_vector("auth", &Auth { token: "secret".into() });
}

// JavaScript validation.

#[test]
fn refuses_what_javascript_refuses() {
    let kit = kit();
    assert_eq!(kit.javascript_cases(Express::Envelopes), 7);

    // Malformed: unknown kind, truncation, trailing bytes, bad UTF-8.
    let ok = kit.encoded(|c, out| c.encode_message("x", &(1u8,), Some(1), out));
    let mut bad_name = kit.encoded(|c, out| c.encode_message("é", &(), None, out));
    bad_name[5] = 0xff;
    kit.assert_decode_errors(&[vec![9u8], [ok.clone(), vec![0]].concat(), bad_name]);
    kit.assert_prefixes_fail(&ok);
}

// Round trips.

// Values: bincode is not self-describing, so each side names the type.
testkit::round_trips!(kit(), names "[a-z]{1,12}", ids 1u64.., values any::<(Option<i64>, String)>(), expect testkit::same, errors testkit::error_text(), reference |_: &(Option<i64>, String)| None::<Vec<u8>>);
// Any float, NaN and infinities included.
testkit::payload_round_trips!(kit(), floats any::<f64>());

// bincode's edge cases.

#[test]
fn values_must_fill_their_bytes_and_fit_their_type() {
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
    assert!(kit().decode(&frame).is_err());
}

// Mutations.

#[test]
fn random_and_mutated_frames_never_panic() {
    let kit = kit();
    let mut seeds = kit.vectors.all();
    let args = ("hello", vec![1u32, 2, 3], Some(4.5f64));
    seeds.push(kit.encoded(|c, out| c.encode_message("say", &args, None, out)));
    seeds.push(kit.encoded(|c, out| c.encode_message("sum", &(1u64, 2u64), Some(99), out)));
    seeds.push(kit.encoded(|c, out| c.encode_reply(5, Ok(&"result"), out)));
    seeds.push(kit.encoded(|c, out| c.encode_reply::<()>(6, Err(&serde_json::json!({"code": 1})), out)));
    let tally = kit.mutations(&Mutations {
        seed: 0x9e37_79b9_7f4a_7c15,
        on_valid: |_, frame| {
            // Typed reads of whatever the envelope holds: errors, not panics.
            for raw in testkit::raws(frame) {
                let _ = Bincode.decode_value::<Vec<u64>>(&raw);
                let _ = Bincode.decode_value::<String>(&raw);
                let _ = Bincode.decode_value::<Vec<String>>(&raw);
            }
        },
        ..Mutations::new(seeds)
    });
    assert_eq!(tally.valid + tally.refused, 100_000);
}
