//! The protobuf codec's suite: golden vectors (tests/vectors/protobuf/)
//! both ways, the JavaScript validation cases its envelope can express and
//! every validation rule, round trips, the envelope's own edge cases
//! (unknown fields, oneof merging, zero-copy slices) and mutated frames,
//! most of it through the shared kit (codecs/testkit). Run with
//! `cargo test -p ws-messaging-protobuf --test codec`; `UPDATE_VECTORS=1`
//! rewrites the vectors. The value conventions are in tests/values.rs.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;
use ws_messaging_codec_testkit::{self as testkit, Blob, Express, Form, Kit, Mutations, Vectors};
use ws_messaging_core::envelope::{validate, ArgsField, IdField, NameField, RawEnvelope};
use ws_messaging_core::{Codec, Frame, PreprocessError};
use ws_messaging_protobuf::pb::{ack::Outcome, envelope::Kind, Ack, Envelope, Message};
use ws_messaging_protobuf::{prost, Proto, Protobuf};

fn kit() -> Kit<Protobuf> {
    Kit::new(Protobuf, Vectors::new("protobuf", "bin", Form::Raw))
}

/// `ws_messaging.conformance.Number`, as in proto/conformance.proto.
#[derive(Clone, PartialEq, prost::Message)]
struct Number {
    #[prost(double, tag = "1")]
    value: f64,
}

/// `ws_messaging.conformance.Auth`.
#[derive(Clone, PartialEq, prost::Message)]
struct Auth {
    #[prost(string, tag = "1")]
    token: String,
}

fn num(value: f64) -> Bytes {
    Number { value }.encode_to_vec().into()
}

fn envelope(kind: Option<Kind>) -> Vec<u8> {
    Envelope { kind }.encode_to_vec()
}

fn message(name: &str, args: &[&[u8]], id: Option<u64>) -> Vec<u8> {
    envelope(Some(Kind::Message(Message {
        name: name.into(),
        args: args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
        id,
    })))
}

fn ack(id: Option<u64>, outcome: Option<Outcome>) -> Vec<u8> {
    envelope(Some(Kind::Ack(Ack { id, outcome })))
}

// Golden vectors.

#[test]
fn golden_vectors_both_ways() {
    let kit = kit();
    let said = ("hello", [0u8, 0xff]);
    let hello = vec![Bytes::from_static(b"hello"), Bytes::from_static(&[0, 0xff])];
    kit.message_vector("event", "said", &said, None, hello);
    let numbers = (Proto(Number { value: 1.5 }), Proto(Number { value: 2.0 }));
    kit.message_vector("call", "sum", &numbers, Some(7), vec![num(1.5), num(2.0)]);
    kit.reply_vector("result_ack", 7, Ok(&Proto(Number { value: 3.5 })), Ok(num(3.5)));
    let error = serde_json::json!("Error: Some error");
    kit.reply_vector::<()>(
        "error_ack",
        8,
        Err(&error),
        Err(Bytes::from_static(b"Error: Some error")),
    );
    kit.value_vector("auth", &Proto(Auth { token: "secret".into() }));
    // What the runtime itself sends: a heartbeat ping, its unit reply, the
    // `connect` event of a hook that returned nothing.
    kit.message_vector("ping_call", "ping", &(), Some(1), vec![]);
    kit.reply_vector("unit_result_ack", 1, Ok(&()), Ok(Bytes::new()));
    kit.message_vector("connect_event", "connect", &((),), None, vec![Bytes::new()]);
}

#[test]
fn golden_vectors_bytes_by_hand() {
    // Two vectors spelled out byte by byte, so the .bin files are not merely
    // what the encoder happened to write.
    let vectors = kit().vectors;
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x0a, 0x1d,                  // Envelope.message, 29 bytes
        0x0a, 0x03, b's', b'u', b'm', // Message.name "sum"
        0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // args[0]: Number{value: 1.5}
        0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40, // args[1]: Number{value: 2}
        0x18, 0x07,                  // Message.id 7
    ];
    assert_eq!(vectors.read("call"), expected);
    let mut expected = vec![0x12, 0x15, 0x08, 0x08, 0x1a, 0x11];
    expected.extend_from_slice(b"Error: Some error");
    assert_eq!(vectors.read("error_ack"), expected);
}

// JavaScript validation.

#[test]
fn refuses_what_javascript_refuses() {
    let kit = kit();
    assert_eq!(kit.javascript_cases(Express::Envelopes), 7);

    // Every rule, on envelopes the encoder would not write.
    let invalid: Vec<(&str, Vec<u8>)> = vec![
        ("an empty frame: an envelope with neither kind", vec![]),
        ("an envelope with neither kind", envelope(None)),
        ("an event with id 0", message("x", &[], Some(0))),
        (
            "an empty name: falsy, read as an ack without result",
            message("", &[], None),
        ),
        ("an empty name with an id", message("", &[b"a"], Some(1))),
        ("an ack without id", ack(None, Some(Outcome::Result(Bytes::new())))),
        ("an ack with id 0", ack(Some(0), Some(Outcome::Result(Bytes::new())))),
        ("an ack with neither result nor error", ack(Some(1), None)),
        ("an empty ack", ack(None, None)),
    ];
    for (what, bytes) in invalid {
        kit.assert_invalid(&bytes, what);
    }

    // Not protobuf: a decode error that names the envelope.
    let undecodable: Vec<(&str, Vec<u8>)> = vec![
        ("a truncated field", vec![0x0a, 0x05, 0x0a]),
        ("a length beyond the frame", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        (
            "a varint of 11 bytes",
            vec![0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        ("field number 0", vec![0x00, 0x00]),
        ("wire type 7", vec![0x0f]),
        ("`message` as a varint", vec![0x08, 0x01]),
        ("a name that is not UTF-8", vec![0x0a, 0x03, 0x0a, 0x01, 0xff]),
        ("an id as a length-delimited field", vec![0x0a, 0x03, 0x18, 0x01, 0x00]),
        ("text, not protobuf", b"{\"name\":\"x\",\"args\":[]}".to_vec()),
    ];
    for (what, bytes) in undecodable {
        let error = kit.decode(&bytes).unwrap_err();
        assert!(
            matches!(&error, PreprocessError::Decode(e) if e.to_string().contains("ws_messaging.Envelope")),
            "{what}: {error:?}"
        );
    }
}

// Round trips.

// Arguments, results and the auth value are bytes; errors are text.
testkit::round_trips!(kit(), names "[^\u{0}]{1,24}", ids 1..=u64::MAX, values testkit::blob(), expect testkit::same, errors testkit::error_text(), reference |b: &Blob| Some(b.0.clone()));

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(sint64, tag = "2")]
    number: i64,
    #[prost(bytes = "vec", tag = "3")]
    data: Vec<u8>,
    #[prost(double, repeated, tag = "4")]
    values: Vec<f64>,
    #[prost(message, optional, tag = "5")]
    nested: Option<Box<Sample>>,
}

fn sample() -> impl Strategy<Value = Sample> {
    let leaf = (
        ".{0,16}",
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..32),
        prop::collection::vec(-1e9f64..1e9, 0..4),
    )
        .prop_map(|(text, number, data, values)| Sample {
            text,
            number,
            data,
            values,
            nested: None,
        });
    leaf.prop_recursive(3, 8, 1, |inner| {
        (inner.clone(), inner).prop_map(|(mut outer, nested)| {
            outer.nested = Some(Box::new(nested));
            outer
        })
    })
}

proptest! {
    // Typed payloads are prost messages, text, bytes and `()`.
    #[test]
    fn typed_payloads_round_trip(value in sample(), text in ".{0,32}", data in prop::collection::vec(any::<u8>(), 0..64)) {
        // Through an envelope: encode_message, decode_envelope, decode_value.
        let kit = kit();
        let out = kit.encoded(|c, out| c.encode_message("p", &(Proto(value.clone()), &text, &data, ()), Some(1), out));
        let Frame::Message { args, .. } = kit.frame(&out) else { panic!("not a message") };
        prop_assert_eq!(args.len(), 4);
        prop_assert_eq!(Protobuf.decode_value::<Proto<Sample>>(&args[0]).unwrap().0, value.clone());
        prop_assert_eq!(Protobuf.decode_value::<String>(&args[1]).unwrap(), text);
        prop_assert_eq!(Protobuf.decode_value::<Vec<u8>>(&args[2]).unwrap(), data);
        Protobuf.decode_value::<()>(&args[3]).unwrap();
        // As a bare value (the auth frame).
        prop_assert_eq!(kit.assert_value_round_trip(&Proto(value.clone()), testkit::same), value.encode_to_vec());
    }
}

// The envelope's edge cases.

#[test]
fn valid_envelopes() {
    let kit = kit();
    let got = kit.frame(&message("ev", &[b"a", b""], None));
    let args = vec![Bytes::from_static(b"a"), Bytes::new()];
    assert_eq!(
        got,
        Frame::Message {
            name: "ev".into(),
            args: args.into(),
            id: None
        }
    );
    let got = kit.frame(&message("call", &[], Some(u64::MAX)));
    assert_eq!(
        got,
        Frame::Message {
            name: "call".into(),
            args: vec![].into(),
            id: Some(u64::MAX)
        }
    );
    let got = kit.frame(&ack(Some(3), Some(Outcome::Result(Bytes::new()))));
    assert_eq!(
        got,
        Frame::Reply {
            id: 3,
            outcome: Ok(Bytes::new())
        }
    );
    let got = kit.frame(&ack(Some(4), Some(Outcome::Error(Bytes::from_static(b"x")))));
    assert_eq!(
        got,
        Frame::Reply {
            id: 4,
            outcome: Err(Bytes::from_static(b"x"))
        }
    );
}

#[test]
fn raw_envelope_reports_what_the_frame_held() {
    let kit = kit();
    assert_eq!(
        kit.envelope(&message("x", &[b"1"], Some(0))),
        RawEnvelope {
            is_map: true,
            keys: 3,
            name: NameField::Str("x".into()),
            args: ArgsField::List(vec![Bytes::from_static(b"1")].into()),
            id: IdField::Invalid,
            result: None,
            error: None,
        }
    );
    assert_eq!(
        kit.envelope(&ack(Some(2), None)),
        RawEnvelope {
            is_map: true,
            keys: 1,
            id: IdField::Valid(2),
            ..RawEnvelope::default()
        }
    );
    assert_eq!(kit.envelope(&[]).keys, 0);
    // Skipping validation (docs/protocol.md, Validation: `skip_validation`):
    // an invalid id makes an event, as with JSON.
    assert!(matches!(
        validate(kit.envelope(&message("x", &[], Some(0))), false),
        Ok(Frame::Message { id: None, .. })
    ));
}

#[test]
fn unknown_fields_are_skipped() {
    let mut bytes = message("ev", &[b"a"], None);
    // Envelope field 9 (varint), then field 10 (length-delimited, 2 bytes).
    bytes.extend_from_slice(&[0x48, 0x01, 0x52, 0x02, 0xaa, 0xbb]);
    let args = vec![Bytes::from_static(b"a")];
    assert_eq!(
        kit().frame(&bytes),
        Frame::Message {
            name: "ev".into(),
            args: args.into(),
            id: None
        }
    );
}

#[test]
fn the_last_oneof_member_wins() {
    // Protobuf merge semantics: a message then an ack in one frame is the ack.
    let mut bytes = message("ev", &[], None);
    bytes.extend_from_slice(&ack(Some(5), Some(Outcome::Result(Bytes::from_static(b"r")))));
    let outcome = Ok(Bytes::from_static(b"r"));
    assert_eq!(kit().frame(&bytes), Frame::Reply { id: 5, outcome });
}

#[test]
fn arguments_results_and_errors_are_slices_of_the_frame() {
    let big = vec![7u8; 4096];
    let frame = Bytes::from(message("ev", &[&big, b"small"], None));
    let range = frame.as_ptr_range();
    let Ok(Frame::Message { args, .. }) = validate(Protobuf.decode_envelope(&frame).unwrap(), true) else {
        panic!("not a message")
    };
    assert_eq!(args[0], big);
    for arg in &args {
        assert!(range.contains(&arg.as_ptr()), "argument copied out of the frame");
    }
    for outcome in [
        Outcome::Result(Bytes::from(big.clone())),
        Outcome::Error(Bytes::from(big.clone())),
    ] {
        let frame = Bytes::from(ack(Some(1), Some(outcome)));
        let raw = Protobuf.decode_envelope(&frame).unwrap();
        let value = raw.result.or(raw.error).unwrap();
        assert_eq!(value, big);
        assert!(frame.as_ptr_range().contains(&value.as_ptr()));
    }
}

// Mutations.

/// A valid envelope's arguments are slices of its frame, read as any type
/// without a panic, and re-encode to a frame that decodes the same.
fn re_encodes(bytes: &Bytes, frame: &Frame) {
    let range = bytes.as_ptr_range();
    let mut out = Vec::new();
    match frame {
        Frame::Message { name, args, id } => {
            for arg in args {
                assert!(arg.is_empty() || range.contains(&arg.as_ptr()), "argument copied");
                let _ = Protobuf.decode_value::<String>(arg);
                let _ = Protobuf.decode_value::<Proto<Sample>>(arg);
                let _ = Protobuf.decode_value::<Option<Vec<u8>>>(arg);
            }
            let raw: Vec<Blob> = args.iter().map(|a| Blob(a.to_vec())).collect();
            Protobuf.encode_message(name, &raw, *id, &mut out).unwrap();
        }
        Frame::Reply {
            id,
            outcome: Ok(result),
        } => {
            let _ = Protobuf.decode_value::<Proto<Sample>>(result);
            Protobuf
                .encode_reply(*id, Ok(&Blob(result.to_vec())), &mut out)
                .unwrap();
        }
        Frame::Reply {
            id,
            outcome: Err(error),
        } => {
            let Ok(text) = Protobuf.decode_error(error) else {
                return;
            };
            Protobuf.encode_reply::<()>(*id, Err(&text), &mut out).unwrap();
        }
    }
    assert_eq!(kit().frame(&out), *frame, "re-encoding changed the envelope");
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let kit = kit();
    let mut seeds = kit.vectors.all();
    let sample = Sample {
        text: "t".into(),
        number: -5,
        data: vec![0, 1, 2],
        values: vec![1.5],
        nested: Some(Box::new(Sample::default())),
    };
    let value = Proto(sample);
    seeds.push(kit.encoded(|c, out| c.encode_message("said", &("hello", &value), None, out)));
    seeds.push(kit.encoded(|c, out| c.encode_message("sum", &(&value, [1u8, 2]), Some(300), out)));
    seeds.push(kit.encoded(|c, out| c.encode_reply(7, Ok(&value), out)));
    seeds.push(kit.encoded(|c, out| c.encode_reply::<()>(8, Err(&serde_json::json!("Error: x")), out)));
    seeds.push(kit.value_bytes(&value));
    kit.mutations(&Mutations {
        frames: 120_000,
        seed: 0x5eed_2026,
        random_len: 48,
        // Both outcomes occur: the run exercises decoding, not only rejection.
        min_each: 120_000 / 100 + 1,
        // A large varint (a length or a tag).
        splices: vec![vec![0xff, 0xff, 0xff, 0xff, 0x0f]],
        on_valid: re_encodes,
        ..Mutations::new(seeds)
    });
}

#[test]
fn messages_are_written_as_prost_writes_them() {
    let long_name = "n".repeat(200);
    let big = vec![7u8; 300];
    let huge = vec![1u8; 20_000];
    for name in ["", "a", "echo", long_name.as_str()] {
        for id in [None, Some(0), Some(1), Some(127), Some(128), Some(u64::MAX)] {
            let cases: [(&[&[u8]], Vec<u8>); 5] = [
                (&[], {
                    let mut out = Vec::new();
                    Protobuf.encode_message(name, &(), id, &mut out).unwrap();
                    out
                }),
                (&[b""], {
                    let mut out = Vec::new();
                    Protobuf.encode_message(name, &("",), id, &mut out).unwrap();
                    out
                }),
                (&[b"x", &big], {
                    let mut out = Vec::new();
                    let args = ("x", big.as_slice());
                    Protobuf.encode_message(name, &args, id, &mut out).unwrap();
                    out
                }),
                (&[&huge, b"", b"yz"], {
                    let mut out = Vec::new();
                    let args = (huge.as_slice(), "", "yz");
                    Protobuf.encode_message(name, &args, id, &mut out).unwrap();
                    out
                }),
                (&[b"after", b"prefix"], {
                    // Written after what the buffer already held.
                    let mut out = b"prefix".to_vec();
                    Protobuf
                        .encode_message(name, &("after", "prefix"), id, &mut out)
                        .unwrap();
                    out.split_off(6)
                }),
            ];
            for (args, written) in cases {
                assert_eq!(written, message(name, args, id), "{name:?} {id:?} {} args", args.len());
            }
        }
    }
    // A refused argument leaves the buffer as it was.
    let mut out = b"kept".to_vec();
    assert!(Protobuf.encode_message("a", &("x", 1.5), Some(1), &mut out).is_err());
    assert_eq!(out, b"kept");
}

#[test]
fn acks_are_written_as_prost_writes_them() {
    let big = vec![9u8; 300];
    for id in [0, 1, 127, 128, 1 << 40, u64::MAX] {
        for result in [&b""[..], b"r", &big] {
            let expected = ack(Some(id), Some(Outcome::Result(Bytes::copy_from_slice(result))));
            let mut out = b"prefix".to_vec();
            Protobuf.encode_reply(id, Ok(result), &mut out).unwrap();
            assert_eq!(out.split_off(6), expected, "{id} {}", result.len());
            let mut out = b"prefix".to_vec();
            Protobuf.encode_raw_reply(id, result, &mut out).unwrap();
            assert_eq!(out.split_off(6), expected, "raw {id} {}", result.len());
        }
    }
    let mut out = b"kept".to_vec();
    assert!(Protobuf.encode_reply(1, Ok(&1.5), &mut out).is_err());
    assert_eq!(out, b"kept");
}
