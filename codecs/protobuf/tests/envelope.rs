//! The envelope: golden byte vectors (tests/vectors/protobuf/) both ways,
//! every validation rule, zero-copy arguments.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message as _;
use ws_messaging::envelope::{validate, ArgsField, IdField, NameField, RawEnvelope};
use ws_messaging::{Codec, Frame, PreprocessError};
use ws_messaging_protobuf::pb::{ack::Outcome, envelope::Kind, Ack, Envelope, Message};
use ws_messaging_protobuf::{prost, Proto, Protobuf};

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

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/protobuf")
}

fn num(value: f64) -> Bytes {
    Number { value }.encode_to_vec().into()
}

/// Each golden vector: its file, how the codec makes it, the frame it
/// decodes to (`None` for the auth frame, a bare value).
fn vectors() -> Vec<(&'static str, Vec<u8>, Option<Frame>)> {
    let c = Protobuf;
    let mut out = Vec::new();
    let encoded = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut buf = Vec::new();
        f(&mut buf);
        buf
    };
    out.push((
        "event",
        encoded(&|b| c.encode_message("said", &("hello", [0u8, 0xff]), None, b).unwrap()),
        Some(Frame::Message {
            name: "said".into(),
            args: vec![Bytes::from_static(b"hello"), Bytes::from_static(&[0, 0xff])],
            id: None,
        }),
    ));
    out.push((
        "call",
        encoded(&|b| {
            c.encode_message(
                "sum",
                &(Proto(Number { value: 1.5 }), Proto(Number { value: 2.0 })),
                Some(7),
                b,
            )
            .unwrap();
        }),
        Some(Frame::Message {
            name: "sum".into(),
            args: vec![num(1.5), num(2.0)],
            id: Some(7),
        }),
    ));
    out.push((
        "result_ack",
        encoded(&|b| c.encode_reply(7, Ok(&Proto(Number { value: 3.5 })), b).unwrap()),
        Some(Frame::Reply {
            id: 7,
            outcome: Ok(num(3.5)),
        }),
    ));
    out.push((
        "error_ack",
        encoded(&|b| {
            c.encode_reply::<()>(8, Err(&serde_json::json!("Error: Some error")), b)
                .unwrap();
        }),
        Some(Frame::Reply {
            id: 8,
            outcome: Err(Bytes::from_static(b"Error: Some error")),
        }),
    ));
    out.push((
        "auth",
        encoded(&|b| c.encode_value(&Proto(Auth { token: "secret".into() }), b).unwrap()),
        None,
    ));
    // What the runtime itself sends: a heartbeat ping, its unit reply, the
    // `connect` event of a hook that returned nothing.
    out.push((
        "ping_call",
        encoded(&|b| c.encode_message("ping", &(), Some(1), b).unwrap()),
        Some(Frame::Message {
            name: "ping".into(),
            args: vec![],
            id: Some(1),
        }),
    ));
    out.push((
        "unit_result_ack",
        encoded(&|b| c.encode_reply(1, Ok(&()), b).unwrap()),
        Some(Frame::Reply {
            id: 1,
            outcome: Ok(Bytes::new()),
        }),
    ));
    out.push((
        "connect_event",
        encoded(&|b| c.encode_message("connect", &((),), None, b).unwrap()),
        Some(Frame::Message {
            name: "connect".into(),
            args: vec![Bytes::new()],
            id: None,
        }),
    ));
    out
}

#[test]
fn golden_vectors_both_ways() {
    let dir = vectors_dir();
    let update = std::env::var_os("UPDATE_VECTORS").is_some();
    for (name, encoded, frame) in vectors() {
        let path = dir.join(format!("{name}.bin"));
        if update {
            std::fs::write(&path, &encoded).unwrap();
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            encoded,
            golden,
            "{name}: the encoder's bytes differ from {}",
            path.display()
        );
        match frame {
            Some(frame) => {
                let raw = Protobuf.decode_envelope(&Bytes::from(golden)).unwrap();
                assert_eq!(validate(raw, true).unwrap(), frame, "{name}");
            }
            None => {
                let Proto(auth) = Protobuf.decode_value::<Proto<Auth>>(&golden).unwrap();
                assert_eq!(auth.token, "secret");
            }
        }
    }
}

#[test]
fn golden_vectors_bytes_by_hand() {
    // Two vectors spelled out byte by byte, so the .bin files are not merely
    // what the encoder happened to write.
    let call = std::fs::read(vectors_dir().join("call.bin")).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x0a, 0x1d,                  // Envelope.message, 29 bytes
        0x0a, 0x03, b's', b'u', b'm', // Message.name "sum"
        0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // args[0]: Number{value: 1.5}
        0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40, // args[1]: Number{value: 2}
        0x18, 0x07,                  // Message.id 7
    ];
    assert_eq!(call, expected);
    let error = std::fs::read(vectors_dir().join("error_ack.bin")).unwrap();
    let mut expected = vec![0x12, 0x15, 0x08, 0x08, 0x1a, 0x11];
    expected.extend_from_slice(b"Error: Some error");
    assert_eq!(error, expected);
}

fn decode(bytes: &[u8]) -> Result<Frame, PreprocessError> {
    let raw = Protobuf
        .decode_envelope(&Bytes::copy_from_slice(bytes))
        .map_err(PreprocessError::Decode)?;
    validate(raw, true)
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

#[test]
fn valid_envelopes() {
    assert_eq!(
        decode(&message("ev", &[b"a", b""], None)),
        Ok(Frame::Message {
            name: "ev".into(),
            args: vec![Bytes::from_static(b"a"), Bytes::new()],
            id: None
        })
    );
    assert_eq!(
        decode(&message("call", &[], Some(u64::MAX))),
        Ok(Frame::Message {
            name: "call".into(),
            args: vec![],
            id: Some(u64::MAX)
        })
    );
    assert_eq!(
        decode(&ack(Some(3), Some(Outcome::Result(Bytes::new())))),
        Ok(Frame::Reply {
            id: 3,
            outcome: Ok(Bytes::new())
        })
    );
    assert_eq!(
        decode(&ack(Some(4), Some(Outcome::Error(Bytes::from_static(b"x"))))),
        Ok(Frame::Reply {
            id: 4,
            outcome: Err(Bytes::from_static(b"x"))
        })
    );
}

#[test]
fn every_validation_rule() {
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
        assert_eq!(decode(&bytes), Err(PreprocessError::Validation), "{what}");
    }
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
        let error = decode(&bytes).unwrap_err();
        assert!(
            matches!(&error, PreprocessError::Decode(e) if e.to_string().contains("ws_messaging.Envelope")),
            "{what}: {error:?}"
        );
    }
}

#[test]
fn raw_envelope_reports_what_the_frame_held() {
    let raw = |bytes: Vec<u8>| Protobuf.decode_envelope(&Bytes::from(bytes)).unwrap();
    assert_eq!(
        raw(message("x", &[b"1"], Some(0))),
        RawEnvelope {
            is_map: true,
            keys: 3,
            name: NameField::Str("x".into()),
            args: ArgsField::List(vec![Bytes::from_static(b"1")]),
            id: IdField::Invalid,
            result: None,
            error: None,
        }
    );
    assert_eq!(
        raw(ack(Some(2), None)),
        RawEnvelope {
            is_map: true,
            keys: 1,
            id: IdField::Valid(2),
            ..RawEnvelope::default()
        }
    );
    assert_eq!(raw(vec![]).keys, 0);
    // Skipping validation (docs/protocol.md, Validation: `skip_validation`):
    // an invalid id makes an event, as with JSON.
    assert!(matches!(
        validate(raw(message("x", &[], Some(0))), false),
        Ok(Frame::Message { id: None, .. })
    ));
}

#[test]
fn unknown_fields_are_skipped() {
    let mut bytes = message("ev", &[b"a"], None);
    // Envelope field 9 (varint), then field 10 (length-delimited, 2 bytes).
    bytes.extend_from_slice(&[0x48, 0x01, 0x52, 0x02, 0xaa, 0xbb]);
    assert_eq!(
        decode(&bytes),
        Ok(Frame::Message {
            name: "ev".into(),
            args: vec![Bytes::from_static(b"a")],
            id: None
        })
    );
}

#[test]
fn the_last_oneof_member_wins() {
    // Protobuf merge semantics: a message then an ack in one frame is the ack.
    let mut bytes = message("ev", &[], None);
    bytes.extend_from_slice(&ack(Some(5), Some(Outcome::Result(Bytes::from_static(b"r")))));
    assert_eq!(
        decode(&bytes),
        Ok(Frame::Reply {
            id: 5,
            outcome: Ok(Bytes::from_static(b"r"))
        })
    );
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
