//! The value conventions: what serde types become as protobuf `bytes`, what
//! the runtime itself sends, and clear errors for everything else.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use ws_messaging_core::envelope::validate;
use ws_messaging_core::{Codec, CodecError, Frame};
use ws_messaging_protobuf::{prost, Proto, Protobuf};

#[derive(Clone, PartialEq, prost::Message)]
struct Point {
    #[prost(sint32, tag = "1")]
    x: i32,
    #[prost(string, tag = "2")]
    label: String,
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    Protobuf.encode_value(value, &mut out).map(|()| out)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Protobuf.decode_value(bytes)
}

fn message_args<A: Serialize + ?Sized>(args: &A) -> Vec<Bytes> {
    let mut out = Vec::new();
    Protobuf.encode_message("m", args, None, &mut out).unwrap();
    match validate(Protobuf.decode_envelope(&out.into()).unwrap(), true).unwrap() {
        Frame::Message { args, .. } => args.into_vec(),
        other => panic!("{other:?}"),
    }
}

/// The message of the encode error `value` gives.
fn encode_error<T: Serialize + ?Sized>(value: &T) -> String {
    match encode(value) {
        Err(e) if matches!(e, CodecError::Encode(_)) => e.to_string(),
        other => panic!("expected an encode error, got {other:?}"),
    }
}

/// The message of the decode error `bytes` give as a `T`.
fn decode_error<T: serde::de::DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> String {
    match decode::<T>(bytes) {
        Err(e) if matches!(e, CodecError::Decode(_)) => e.to_string(),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn messages_are_their_encoding() {
    let point = Point {
        x: -3,
        label: "p".into(),
    };
    let bytes = encode(&Proto(point.clone())).unwrap();
    assert_eq!(bytes, prost::Message::encode_to_vec(&point));
    assert_eq!(decode::<Proto<Point>>(&bytes).unwrap(), Proto(point));
    // The empty message is empty bytes.
    assert_eq!(encode(&Proto(Point::default())).unwrap(), b"");
    assert_eq!(decode::<Proto<Point>>(b"").unwrap().0, Point::default());
    let error = decode_error::<Proto<Point>>(&[0x0a, 0x09]);
    assert!(error.contains("not a valid Point message"), "{error}");
}

#[test]
fn text_bytes_and_nothing() {
    assert_eq!(encode("héllo").unwrap(), "héllo".as_bytes());
    assert_eq!(encode(&String::from("x")).unwrap(), b"x");
    assert_eq!(encode(&'é').unwrap(), "é".as_bytes());
    assert_eq!(decode::<String>("héllo".as_bytes()).unwrap(), "héllo");
    assert_eq!(decode::<char>("é".as_bytes()).unwrap(), 'é');
    assert!(decode::<char>(b"ab").is_err());
    let error = decode_error::<String>(&[0xff, 0xfe]);
    assert!(error.contains("not UTF-8"), "{error}");

    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(encode(&all).unwrap(), all);
    assert_eq!(encode(all.as_slice()).unwrap(), all);
    assert_eq!(encode(&[1u8, 2, 3]).unwrap(), [1, 2, 3]);
    assert_eq!(decode::<Vec<u8>>(&all).unwrap(), all);
    assert_eq!(decode::<[u8; 3]>(&[1, 2, 3]).unwrap(), [1, 2, 3]);
    assert!(decode::<[u8; 3]>(&[1, 2]).is_err());
    assert!(decode::<[u8; 3]>(&[1, 2, 3, 4]).is_err());

    assert_eq!(encode(&()).unwrap(), b"");
    assert_eq!(encode(&None::<String>).unwrap(), b"");
    assert_eq!(encode(&Some("a")).unwrap(), b"a");
    assert_eq!(encode(&serde_json::Map::new()).unwrap(), b"");
    assert_eq!(encode(&BTreeMap::<String, String>::new()).unwrap(), b"");
    decode::<()>(b"").unwrap();
    let error = decode_error::<()>(b"x");
    assert!(error.contains("got 1 bytes"), "{error}");
    assert_eq!(decode::<Option<String>>(b"").unwrap(), None);
    assert_eq!(decode::<Option<String>>(b"a").unwrap().as_deref(), Some("a"));
    assert_eq!(decode::<Option<Proto<Point>>>(b"").unwrap(), None);
    assert!(decode::<serde_json::Map<String, serde_json::Value>>(b"")
        .unwrap()
        .is_empty());
    assert!(decode::<serde_json::Map<String, serde_json::Value>>(b"x").is_err());
    decode::<IgnoredAny>(&[0xff, 0x00]).unwrap();
}

#[test]
fn newtypes_and_empty_structs() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Name(String);
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Nothing {}
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Unit;
    assert_eq!(encode(&Name("n".into())).unwrap(), b"n");
    assert_eq!(decode::<Name>(b"n").unwrap(), Name("n".into()));
    assert_eq!(encode(&Nothing {}).unwrap(), b"");
    assert_eq!(decode::<Nothing>(b"").unwrap(), Nothing {});
    assert_eq!(encode(&Unit).unwrap(), b"");
    assert_eq!(decode::<Unit>(b"").unwrap(), Unit);
}

#[test]
fn what_has_no_protobuf_form_is_a_clear_error() {
    #[derive(Serialize)]
    struct WithFields {
        a: u8,
    }
    #[derive(Serialize)]
    enum E {
        A,
        B(u8),
    }
    for (what, error) in [
        ("integer", encode_error(&1i32)),
        ("number", encode_error(&1.5f64)),
        ("boolean", encode_error(&true)),
        ("map or struct with fields", encode_error(&WithFields { a: 1 })),
        ("map or struct with fields", encode_error(&serde_json::json!({"a": 1}))),
        ("enum variant E::A", encode_error(&E::A)),
        ("enum variant E::B", encode_error(&E::B(1))),
        ("sequence of strings", encode_error(&["a", "b"])),
        ("sequence of integers other than u8", encode_error(&[1u32, 2])),
        ("integer", encode_error(&serde_json::json!(1))),
    ] {
        assert!(error.contains(what), "{what}: {error}");
        assert!(error.contains("prost message"), "the error says what to do: {error}");
    }
    for error in [
        decode_error::<i64>(b"1"),
        decode_error::<f64>(b"1"),
        decode_error::<bool>(b"\x01"),
        decode_error::<serde_json::Value>(b"1"),
    ] {
        assert!(
            error.contains("prost message") || error.contains("byte array"),
            "{error}"
        );
    }
    // A failed encode leaves the caller's buffer as it was.
    let mut out = b"keep".to_vec();
    assert!(Protobuf.encode_value(&(1u8, "x"), &mut out).is_err());
    assert_eq!(out, b"keep");
    // In an argument list, the error names the argument.
    let mut out = Vec::new();
    let error = Protobuf.encode_message("m", &("ok", 5), None, &mut out).unwrap_err();
    assert!(error.to_string().contains("argument 1"), "{error}");
    for not_a_list in [
        Protobuf.encode_message("m", &5, None, &mut out),
        Protobuf.encode_message("m", "text", None, &mut out),
        Protobuf.encode_message("m", &serde_json::json!({}), None, &mut out),
    ] {
        let error = not_a_list.unwrap_err().to_string();
        assert!(error.contains("must be a list"), "{error}");
    }
}

#[test]
fn argument_lists() {
    assert!(message_args(&()).is_empty());
    assert!(message_args(&[(); 0]).is_empty());
    assert!(message_args(&Vec::<String>::new()).is_empty());
    let point = Point {
        x: 1,
        label: "a".into(),
    };
    let args = message_args(&("text", Proto(point.clone()), (), vec![9u8, 8], Some("s")));
    assert_eq!(
        args,
        [
            Bytes::from_static(b"text"),
            Bytes::from(prost::Message::encode_to_vec(&point)),
            Bytes::new(),
            Bytes::from_static(&[9, 8]),
            Bytes::from_static(b"s"),
        ]
    );
    assert_eq!(
        message_args(&vec!["a", "b"]),
        [Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
}

/// The values ws-messaging's runtime produces on its own.
#[test]
fn what_the_runtime_sends() {
    // Heartbeat: `ping` with no arguments, answered with `()`.
    assert!(message_args(&()).is_empty());
    let mut out = Vec::new();
    Protobuf.encode_reply(1, Ok(&()), &mut out).unwrap();
    let Frame::Reply {
        outcome: Ok(result), ..
    } = validate(Protobuf.decode_envelope(&out.into()).unwrap(), true).unwrap()
    else {
        panic!()
    };
    Protobuf.decode_value::<()>(&result).unwrap();
    // The `connect` event: the hook's reply, `()` or a message.
    assert_eq!(message_args(&((),)), [Bytes::new()]);
    let reply = Point {
        x: 2,
        label: "alice".into(),
    };
    assert_eq!(
        message_args(&(Proto(reply.clone()),)),
        [Bytes::from(prost::Message::encode_to_vec(&reply))]
    );
    // The default auth value `{}`; a server hook taking `()` accepts it.
    assert_eq!(encode(&serde_json::Map::new()).unwrap(), b"");
    decode::<()>(b"").unwrap();
    // A `preprocessingError` event's argument: the formatted error, text.
    let args = message_args(&(serde_json::json!("Error: Validation error"),));
    assert_eq!(args, [Bytes::from_static(b"Error: Validation error")]);
    assert_eq!(
        Protobuf.decode_error(&args[0]).unwrap(),
        serde_json::json!("Error: Validation error")
    );
    assert_eq!(decode::<String>(&args[0]).unwrap(), "Error: Validation error");
}

#[test]
fn errors_are_text() {
    let mut out = Vec::new();
    for (error, text) in [
        (serde_json::json!("Error: Some error"), "Error: Some error"),
        (serde_json::json!("NoProcedureError"), "NoProcedureError"),
        (serde_json::json!({"code": 404}), r#"{"code":404}"#),
        (serde_json::json!(null), "null"),
    ] {
        out.clear();
        Protobuf.encode_reply::<()>(9, Err(&error), &mut out).unwrap();
        let frame = validate(Protobuf.decode_envelope(&out.clone().into()).unwrap(), true).unwrap();
        let Frame::Reply {
            id: 9,
            outcome: Err(raw),
        } = frame
        else {
            panic!("{frame:?}")
        };
        assert_eq!(raw, text.as_bytes());
        assert_eq!(Protobuf.decode_error(&raw).unwrap(), serde_json::json!(text));
    }
    let error = Protobuf.decode_error(&[0xc3]).unwrap_err().to_string();
    assert!(error.contains("not UTF-8"), "{error}");
}

#[test]
fn a_result_that_does_not_encode_is_an_error() {
    let mut out = Vec::new();
    let error = Protobuf.encode_reply(1, Ok(&42), &mut out).unwrap_err();
    assert!(error.to_string().contains("integer"), "{error}");
}

#[test]
fn proto_with_a_self_describing_codec() {
    // `Proto<M>` is a byte string to serde: JSON writes a list of numbers and
    // reads it back.
    let point = Point {
        x: 5,
        label: "j".into(),
    };
    let json = serde_json::to_string(&Proto(point.clone())).unwrap();
    assert_eq!(json, "[8,10,18,1,106]");
    assert_eq!(serde_json::from_str::<Proto<Point>>(&json).unwrap().0, point);
}
