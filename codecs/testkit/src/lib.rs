//! The shared test kit of the ws-messaging codec crates (json, msgpack,
//! cbor, protobuf, bincode): what every codec's suite checks, written once
//! and run against any [`Codec`].
//!
//! Not published; each codec crate lists it under `[dev-dependencies]`:
//!
//! ```toml
//! [dev-dependencies]
//! ws-messaging-codec-testkit = { path = "../testkit" }
//! ```
//!
//! # What it holds
//! - [`Kit`]: a codec and its golden [`Vectors`], with
//!   - the golden-vector check both ways ([`Kit::message_vector`],
//!     [`Kit::reply_vector`], [`Kit::value_vector`], and
//!     [`Kit::common_vectors`] for the five vectors the self-describing
//!     formats share): the encoder gives exactly the file's bytes, the file
//!     decodes to the expected envelope;
//!   - the JavaScript validation table ([`javascript_cases`], run by
//!     [`Kit::javascript_cases`]): the envelopes the JavaScript package
//!     refuses or accepts, as data, for every codec that can express them;
//!   - the round-trip assertions ([`Kit::assert_message_round_trip`] and
//!     the others), run as proptest tests by [`round_trips!`] and
//!     [`payload_round_trips!`];
//!   - the mutation run ([`Kit::mutations`], settings in [`Mutations`]):
//!     seeded random edits of valid frames must give an error or a valid
//!     envelope, never a panic, and an envelope's raw slices must go through
//!     `decode_value` and `decode_error` without a panic;
//! - a seeded generator ([`Rng`]), [`hex`] and [`unhex`].
//!
//! # A codec's suite
//! Each codec crate has `tests/codec.rs` with the same sections, in this
//! order; a new format copies one and fills in its own parts:
//! 1. `kit()`: the codec and its vectors (`Vectors::new("FORMAT", "hex", Form::Hex)`);
//! 2. golden vectors: the kit's vector checks, then the format's own vectors;
//! 3. JavaScript validation: `kit().javascript_cases(Express::…)` (its count
//!    asserted), then the format's own refusals (bytes that are not the
//!    format, its own types);
//! 4. round trips: `round_trips!` and `payload_round_trips!`;
//! 5. format edge cases (nesting limits, tags, ext types, number leniency…);
//! 6. mutations: `kit().mutations(Mutations { seeds, splices, .. })`.
//!
//! Run one codec's suite with `cargo test -p ws-messaging-cbor` (and so on);
//! `UPDATE_VECTORS=1` rewrites the golden vectors from the encoders.
//!
//! The kit never builds a `CodecError` nor looks inside one: it checks
//! `is_err()`, the variant with `matches!`, and the message with
//! `to_string()`.

use std::fmt::Debug;
use std::time::Instant;

use bytes::Bytes;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use serde_json::json;
use ws_messaging_core::envelope::{validate, ArgList, MessageOut, NameField, RawEnvelope, ReplyOut};
use ws_messaging_core::{Codec, CodecError, Frame, PreprocessError};

mod hex;
mod mutate;
mod props;
mod rng;
mod shape;
mod vectors;

pub use hex::{hex, unhex};
pub use mutate::{Mutations, Tally};
pub use props::{blob, error_text, error_value, finite, payload, Blob, Payload};
#[doc(hidden)]
pub use proptest;
pub use rng::Rng;
pub use shape::{javascript_cases, msg, obj, Expect, JsCase, Shape};
pub use vectors::{Form, Vectors};

/// How a codec writes the frames of [`javascript_cases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Express {
    /// Any shape, as a bare value (`encode_value`): self-describing formats
    /// whose envelope is a map (JSON, MessagePack, CBOR).
    AnyValue,
    /// Only the shapes `encode_message` and `encode_reply` can write (a
    /// name, an argument list and an id; an id and a result or an error):
    /// formats with a fixed envelope (protobuf, bincode).
    Envelopes,
}

/// The clone of a value: the `expect` of a format whose values come back
/// as they went.
pub fn same<V: Clone>(value: &V) -> V {
    value.clone()
}

/// Decodes `bytes` as a `V` with the codec `C`, the result dropped: a
/// [`Mutations::on_frame`] that reads every frame as a bare value too.
pub fn read_as<C: Codec + Default, V: DeserializeOwned>(bytes: &[u8]) {
    let _ = C::default().decode_value::<V>(bytes);
}

/// Asserts that every raw slice of `frame` decodes as a `V` with the codec
/// `C`: a [`Mutations::on_valid`] for formats whose value decoder reads
/// whatever the envelope reader accepts.
pub fn raws_read_as<C: Codec + Default, V: DeserializeOwned + Debug>(_bytes: &Bytes, frame: &Frame) {
    for raw in raws(frame) {
        let value = C::default().decode_value::<V>(&raw);
        assert!(value.is_ok(), "{}: {value:?}", hex(&raw));
    }
}

/// The raw slices of a frame: the arguments, or the result or error.
pub fn raws(frame: &Frame) -> Vec<Bytes> {
    match frame {
        Frame::Message { args, .. } => args.to_vec(),
        Frame::Reply {
            outcome: Ok(raw) | Err(raw),
            ..
        } => vec![raw.clone()],
    }
}

/// A codec and its golden vectors: every check of the kit.
#[derive(Debug, Clone)]
pub struct Kit<C> {
    /// The codec under test.
    pub codec: C,
    /// Its golden vectors.
    pub vectors: Vectors,
}

impl<C: Codec> Kit<C> {
    /// The kit for `codec`, whose vectors are `vectors`.
    pub fn new(codec: C, vectors: Vectors) -> Self {
        Kit { codec, vectors }
    }

    /// A frame through the receive path: `decode_envelope`, then strict
    /// validation.
    pub fn decode(&self, frame: &[u8]) -> Result<Frame, PreprocessError> {
        let raw = self
            .codec
            .decode_envelope(&Bytes::copy_from_slice(frame))
            .map_err(PreprocessError::Decode)?;
        validate(raw, true)
    }

    /// The valid envelope `frame` holds.
    ///
    /// # Panics
    /// When it is not one (the message shows the frame in hex).
    pub fn frame(&self, frame: &[u8]) -> Frame {
        self.decode(frame)
            .unwrap_or_else(|e| panic!("{}: not a valid envelope: {e:?}", hex(frame)))
    }

    /// The loose envelope of `frame`, before validation.
    ///
    /// # Panics
    /// When `decode_envelope` fails.
    pub fn envelope(&self, frame: &[u8]) -> RawEnvelope {
        self.codec
            .decode_envelope(&Bytes::copy_from_slice(frame))
            .unwrap_or_else(|e| panic!("{}: {e}", hex(frame)))
    }

    /// What `write` puts in a fresh buffer.
    ///
    /// # Panics
    /// When `write` fails.
    pub fn encoded(&self, write: impl FnOnce(&C, &mut Vec<u8>) -> Result<(), CodecError>) -> Vec<u8> {
        let mut out = Vec::new();
        write(&self.codec, &mut out).unwrap_or_else(|e| panic!("encoding failed: {e}"));
        out
    }

    /// `value` encoded as a bare value.
    pub fn value_bytes<T: Serialize + ?Sized>(&self, value: &T) -> Vec<u8> {
        self.encoded(|c, out| c.encode_value(value, out))
    }

    /// Asserts that the envelopes the codec writes are the bytes its
    /// [`encode_value`](Codec::encode_value) writes for the envelope maps
    /// ([`MessageOut`], [`ReplyOut`]), after bytes already in the buffer
    /// (which are kept): the message `{name, args, id?}`, and the acks
    /// `{id, result: args}` and `{id, error}` (with `id`, or 1).
    ///
    /// # Panics
    /// When they differ, or an encoder fails.
    pub fn assert_envelopes_as_serde<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
        id: Option<u64>,
        error: &serde_json::Value,
    ) {
        let after_kept = |write: &dyn Fn(&mut Vec<u8>) -> Result<(), CodecError>| {
            let mut out = b"kept".to_vec();
            write(&mut out).unwrap_or_else(|e| panic!("encoding failed: {e}"));
            assert_eq!(&out[..4], b"kept");
            out.split_off(4)
        };
        let message = after_kept(&|out| self.codec.encode_message(name, args, id, out));
        assert_eq!(hex(&message), hex(&self.value_bytes(&MessageOut { name, args, id })));
        let id = id.unwrap_or(1);
        for reply in [Ok(args), Err(error)] {
            let ack = after_kept(&|out| self.codec.encode_reply(id, reply, out));
            assert_eq!(hex(&ack), hex(&self.value_bytes(&ReplyOut { id, reply })));
        }
    }

    /// Asserts that `frame` decodes but is not a valid envelope.
    pub fn assert_invalid(&self, frame: &[u8], what: &str) {
        let got = self.decode(frame);
        assert!(
            matches!(got, Err(PreprocessError::Validation)),
            "{what} ({}): want a validation error, got {got:?}",
            hex(frame)
        );
    }

    /// Asserts that each frame is a decode error (never a validation error).
    pub fn assert_decode_errors<F: AsRef<[u8]>>(&self, frames: &[F]) {
        for frame in frames {
            let frame = frame.as_ref();
            let got = self.decode(frame);
            assert!(
                matches!(got, Err(PreprocessError::Decode(_))),
                "{}: want a decode error, got {got:?}",
                hex(frame)
            );
        }
    }

    /// Asserts that every proper prefix of `frame` (the empty one included)
    /// is a decode error.
    pub fn assert_prefixes_fail(&self, frame: &[u8]) {
        let prefixes: Vec<&[u8]> = (0..frame.len()).map(|len| &frame[..len]).collect();
        self.assert_decode_errors(&prefixes);
    }

    // Golden vectors.

    /// Encodes the message `{name, args, id}`, asserts it is exactly vector
    /// `file`, and that the vector decodes to that message with arguments
    /// `expected_args` byte for byte. Returns the vector's bytes.
    pub fn message_vector<A: Serialize + ?Sized>(
        &self,
        file: &str,
        name: &str,
        args: &A,
        id: Option<u64>,
        expected_args: Vec<Bytes>,
    ) -> Vec<u8> {
        let golden = self
            .vectors
            .check(file, &self.encoded(|c, out| c.encode_message(name, args, id, out)));
        let expected = Frame::Message {
            name: name.into(),
            args: expected_args.into(),
            id,
        };
        assert_eq!(self.frame(&golden), expected, "{file}");
        golden
    }

    /// Encodes the ack `{id, result}` or `{id, error}`, asserts it is exactly
    /// vector `file`, and that the vector decodes to that ack with the raw
    /// result or error `expected`. Returns the vector's bytes.
    pub fn reply_vector<T: Serialize + ?Sized>(
        &self,
        file: &str,
        id: u64,
        reply: Result<&T, &serde_json::Value>,
        expected: Result<Bytes, Bytes>,
    ) -> Vec<u8> {
        let golden = self
            .vectors
            .check(file, &self.encoded(|c, out| c.encode_reply(id, reply, out)));
        let expected = Frame::Reply { id, outcome: expected };
        assert_eq!(self.frame(&golden), expected, "{file}");
        golden
    }

    /// Encodes `value` as a bare value (the auth frame), asserts it is
    /// exactly vector `file` and that the vector decodes to `value`.
    /// Returns the vector's bytes.
    pub fn value_vector<T: Serialize + DeserializeOwned + PartialEq + Debug>(&self, file: &str, value: &T) -> Vec<u8> {
        let golden = self.vectors.check(file, &self.value_bytes(value));
        let back: T = self
            .codec
            .decode_value(&golden)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&back, value, "{file}");
        golden
    }

    /// The five vectors the self-describing formats share, both ways:
    /// `event` (`say("hi", 3)`), `call` (`sum(1, 2.5)`, id 7), `result`
    /// (7, `{"user": "alice"}`), `error` (8, `"Error: boom"`) and `auth`
    /// (`{"token": "secret"}`). The expected raw slices are `independent`'s
    /// encoding of each value (an encoder other than the codec). Returns
    /// each vector's name and bytes, in that order.
    pub fn common_vectors(&self, independent: impl Fn(&Shape) -> Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
        use Shape::{Float, Int, Str};
        let raw = |shape: Shape| Bytes::from(independent(&shape));
        vec![
            (
                "event",
                self.message_vector("event", "say", &("hi", 3), None, vec![raw(Str("hi")), raw(Int(3))]),
            ),
            (
                "call",
                self.message_vector("call", "sum", &(1, 2.5), Some(7), vec![raw(Int(1)), raw(Float(2.5))]),
            ),
            (
                "result",
                self.reply_vector(
                    "result",
                    7,
                    Ok(&json!({"user": "alice"})),
                    Ok(raw(obj(&[("user", Str("alice"))]))),
                ),
            ),
            (
                "error",
                self.reply_vector::<()>("error", 8, Err(&json!("Error: boom")), Err(raw(Str("Error: boom")))),
            ),
            ("auth", self.value_vector("auth", &json!({"token": "secret"}))),
        ]
    }

    /// The `binary` vector of the binary self-describing formats, both
    /// ways: `blob(h'0001ff', {data: h''})`, the raw arguments being
    /// `independent`'s encoding of each. Returns the vector's bytes.
    pub fn binary_vector(&self, independent: impl Fn(&Shape) -> Vec<u8>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Data {
            data: Blob,
        }
        let args = (Blob(vec![0, 1, 255]), Data { data: Blob::default() });
        let expected = [Shape::Bytes(vec![0, 1, 255]), obj(&[("data", Shape::Bytes(vec![]))])];
        let expected = expected.iter().map(|shape| Bytes::from(independent(shape))).collect();
        let golden = self.message_vector("binary", "blob", &args, None, expected);
        self.assert_binary(&golden);
        golden
    }

    /// Asserts that `frame` (a `binary` vector) carries the blob `h'0001ff'`
    /// as its first argument.
    pub fn assert_binary(&self, frame: &[u8]) {
        let Frame::Message { args, .. } = self.frame(frame) else {
            panic!("binary: not a message")
        };
        assert_eq!(
            self.codec.decode_value::<Blob>(&args[0]).unwrap(),
            Blob(vec![0, 1, 255])
        );
    }

    /// Asserts what the `numbers` vector (`sum(2^40, -0.5, 2^31 - 1, 2^31,
    /// -2^31, -2^32)`, id `2^31 - 1`, however the format writes each number)
    /// decodes into: whole numbers as integers and floats, fractions never
    /// as integers, nothing into a type too small for it.
    pub fn assert_numbers_vector(&self, frame: &[u8]) {
        let Frame::Message { args, id, .. } = self.frame(frame) else {
            panic!("numbers: not a message")
        };
        assert_eq!(id, Some(2_147_483_647));
        let ints: Vec<i64> = [0, 2, 3, 4, 5]
            .iter()
            .map(|&i| self.codec.decode_value(&args[i]).unwrap())
            .collect();
        assert_eq!(
            ints,
            [1 << 40, 2_147_483_647, 2_147_483_648, -2_147_483_648, -4_294_967_296]
        );
        assert_eq!(self.codec.decode_value::<u64>(&args[0]).unwrap(), 1 << 40);
        assert_eq!(self.codec.decode_value::<f64>(&args[1]).unwrap(), -0.5);
        assert_eq!(self.codec.decode_value::<f64>(&args[2]).unwrap(), 2_147_483_647.0);
        assert!(
            self.codec.decode_value::<i64>(&args[1]).is_err(),
            "a fraction is no integer"
        );
        assert!(
            self.codec.decode_value::<u32>(&args[0]).is_err(),
            "2^40 does not fit a u32"
        );
        assert!(self.codec.decode_value::<u64>(&args[5]).is_err(), "negative");
    }

    // Limits.

    /// Asserts the nesting limit of envelopes and values, `array` being the
    /// format's header of a one-item array: `prefix` (an envelope up to its
    /// argument list) then `max_depth - 1` nested arrays decodes, and each
    /// argument as a `V`; `max_depth` arrays is an error saying so; a value
    /// of `max_depth` arrays decodes as a `V`, one more does not; a million
    /// is an error, never a stack overflow.
    pub fn assert_nesting_limited<V: DeserializeOwned + Debug>(&self, prefix: &[u8], array: u8, max_depth: usize) {
        let nested = |depth: usize| [vec![array; depth], vec![0x01]].concat();
        let frame = |depth: usize| [prefix, &nested(depth)].concat();
        // The envelope is one level, the args array the first of `nested`.
        let Frame::Message { args, .. } = self.frame(&frame(max_depth - 1)) else {
            panic!("not a message")
        };
        assert!(self.codec.decode_value::<V>(&args[0]).is_ok());
        let err = self.decode(&frame(max_depth)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("nested deeper than {max_depth} levels")),
            "{err}"
        );
        assert!(self.decode(&frame(1_000_000)).is_err());
        assert!(self.codec.decode_value::<V>(&nested(max_depth)).is_ok());
        assert!(self.codec.decode_value::<V>(&nested(max_depth + 1)).is_err());
        assert!(self.codec.decode_value::<V>(&nested(1_000_000)).is_err());
    }

    /// Asserts that `decode_value` reads a whole value and nothing else:
    /// `[0x05]` is 5, with a byte more it is an error; `truncated` (a string
    /// cut short) and the empty input are errors; `huge` (a collection
    /// claiming far more items than it has) is an error, not an allocation.
    pub fn assert_values_whole<V: DeserializeOwned + Debug>(&self, truncated: &[u8], huge: &[u8]) {
        assert_eq!(self.codec.decode_value::<u8>(&[0x05]).unwrap(), 5);
        assert!(self.codec.decode_value::<u8>(&[0x05, 0x06]).is_err());
        assert!(self.codec.decode_value::<String>(truncated).is_err());
        assert!(self.codec.decode_value::<V>(&[]).is_err());
        assert!(self.codec.decode_value::<Vec<V>>(huge).is_err());
        assert!(self.codec.decode_value::<V>(huge).is_err());
    }

    /// Arguments are checked once: out of an envelope they decode through
    /// `FromArgs` without a second check, to the same value as
    /// `decode_value`; put together by hand they are checked as
    /// `decode_value` checks them (`trailing`, a value followed by a byte
    /// more, is refused); and `decode_enveloped` fails cleanly on anything,
    /// a million nested arrays (`array`, the one-element array head) or
    /// nothing at all.
    pub fn assert_arguments_checked_once<V: DeserializeOwned + Debug>(&self, trailing: &[u8], array: u8) {
        use ws_messaging_core::envelope::ArgList;
        use ws_messaging_core::FromArgs;
        let mut frame = Vec::new();
        self.codec.encode_message("f", &(7u32, "x"), None, &mut frame).unwrap();
        let Frame::Message { args, .. } = self.frame(&frame) else {
            panic!("not a message")
        };
        assert_eq!(self.codec.decode_value::<u32>(&args[0]).unwrap(), 7);
        assert_eq!(<(u32, String)>::from_args(&self.codec, args).unwrap(), (7, "x".into()));
        let by_hand = ArgList::from(vec![Bytes::copy_from_slice(trailing)]);
        let err = <(u32,)>::from_args(&self.codec, by_hand).unwrap_err();
        assert!(err.to_string().contains("trailing bytes"), "{err}");
        assert!(self.codec.decode_enveloped::<V>(&vec![array; 1_000_000]).is_err());
        assert!(self.codec.decode_enveloped::<u32>(&[]).is_err());
    }

    // JavaScript validation.

    /// Runs every case of [`javascript_cases`] the codec can express (see
    /// [`Express`]) and returns how many ran; assert that count in the
    /// suite, so a case that stops being expressible does not go unseen.
    pub fn javascript_cases(&self, express: Express) -> usize {
        let mut ran = 0;
        for case in javascript_cases() {
            let Some(bytes) = self.express(&case.frame, express) else {
                continue;
            };
            ran += 1;
            let what = format!("{}: {:?} ({})", case.what, case.frame, hex(&bytes));
            match case.expect {
                Expect::Invalid => self.assert_invalid(&bytes, &what),
                Expect::Message { id } => {
                    let expected = Frame::Message {
                        name: "x".into(),
                        args: ArgList::new(),
                        id,
                    };
                    assert_eq!(self.frame(&bytes), expected, "{what}");
                }
                Expect::Reply { id, outcome } => {
                    let Frame::Reply { id: got, outcome: raw } = self.frame(&bytes) else {
                        panic!("{what}: not an ack")
                    };
                    assert_eq!(got, id, "{what}");
                    match (raw, outcome) {
                        (Ok(raw), Ok(result)) => assert_eq!(hex(&raw), hex(&self.value_bytes(&result)), "{what}"),
                        (Err(raw), Err(error)) => {
                            // As it went, or as its JSON text (formats that carry
                            // errors as text).
                            let error = serde_json::to_value(&error).unwrap();
                            let got = self.codec.decode_error(&raw).unwrap();
                            assert!(got == error || got == json!(error.to_string()), "{what}: {got}");
                        }
                        (raw, _) => panic!("{what}: the wrong outcome {raw:?}"),
                    }
                }
                Expect::FalsyName => {
                    let raw = self.envelope(&bytes);
                    assert_eq!(raw.name, NameField::Falsy, "{what}");
                    let frame = validate(raw, false);
                    assert!(matches!(frame, Ok(Frame::Reply { id: 1, .. })), "{what}: {frame:?}");
                }
                Expect::TruthyName => assert_eq!(self.envelope(&bytes).name, NameField::Other, "{what}"),
            }
        }
        ran
    }

    /// `shape` as this codec writes it, or `None` where it cannot.
    fn express(&self, shape: &Shape, express: Express) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let written = match express {
            Express::AnyValue => self.codec.encode_value(shape, &mut out),
            Express::Envelopes => {
                let Shape::Map(entries) = shape else { return None };
                let mut keys: Vec<&str> = Vec::new();
                for (key, _) in entries {
                    let Shape::Str(key) = key else { return None };
                    if keys.contains(key) {
                        return None;
                    }
                    keys.push(key);
                }
                let get = |key: &str| {
                    entries
                        .iter()
                        .find(|(k, _)| matches!(k, Shape::Str(k) if *k == key))
                        .map(|(_, v)| v)
                };
                let id = match get("id") {
                    None => None,
                    Some(Shape::Int(id)) => Some(u64::try_from(*id).ok()?),
                    Some(_) => return None,
                };
                keys.sort_unstable();
                match (keys.as_slice(), get("name"), get("args")) {
                    (["args", "name"] | ["args", "id", "name"], Some(Shape::Str(name)), Some(Shape::List(args))) => {
                        self.codec.encode_message(name, args, id, &mut out)
                    }
                    (["id", "result"], ..) => self.codec.encode_reply(id?, Ok(get("result")?), &mut out),
                    (["error", "id"], ..) => {
                        let error = serde_json::to_value(get("error")?).ok()?;
                        self.codec.encode_reply::<()>(id?, Err(&error), &mut out)
                    }
                    _ => return None,
                }
            }
        };
        written.ok().map(|()| out)
    }

    // Round trips.

    /// Asserts that the message `{name, args, id}` comes back as it went:
    /// the same name and id, each argument decoding to `expect(arg)`.
    pub fn assert_message_round_trip<V>(&self, name: &str, args: &[V], id: Option<u64>, expect: impl Fn(&V) -> V)
    where
        V: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let out = self.encoded(|c, out| c.encode_message(name, args, id, out));
        let Frame::Message {
            name: got,
            args: raw,
            id: got_id,
        } = self.frame(&out)
        else {
            panic!("not a message")
        };
        assert_eq!((got.as_str(), got_id), (name, id));
        let back: Vec<V> = raw.iter().map(|r| self.codec.decode_value(r).unwrap()).collect();
        assert_eq!(back, args.iter().map(expect).collect::<Vec<_>>());
    }

    /// Asserts that the acks `{id, result}` and `{id, error}` come back as
    /// they went (the result decoding to `expect(result)`, the error through
    /// `decode_error`).
    pub fn assert_reply_round_trip<V>(&self, id: u64, result: &V, expect: impl Fn(&V) -> V, error: &serde_json::Value)
    where
        V: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let ack = |reply: Result<&V, &serde_json::Value>| {
            let out = self.encoded(|c, out| c.encode_reply(id, reply, out));
            match self.frame(&out) {
                Frame::Reply { id: got, outcome } if got == id => outcome,
                other => panic!("not the ack of {id}: {other:?}"),
            }
        };
        let Ok(raw) = ack(Ok(result)) else {
            panic!("not a result")
        };
        assert_eq!(self.codec.decode_value::<V>(&raw).unwrap(), expect(result));
        // A result already encoded (a `RawValue`: what `encode_value`
        // writes, or the raw slice just decoded) goes out as the same ack.
        let encoded = self.encoded(|c, out| c.encode_reply(id, Ok(result), out));
        for value in [self.value_bytes(result), raw.to_vec()] {
            let spliced = self.encoded(|c, out| c.encode_raw_reply(id, &value, out));
            assert_eq!(hex(&spliced), hex(&encoded), "{result:?}");
        }
        let Err(raw) = ack(Err(error)) else {
            panic!("not an error")
        };
        assert_eq!(&self.codec.decode_error(&raw).unwrap(), error);
    }

    /// Asserts that a bare value decodes to `expect(value)`; returns its
    /// encoding.
    pub fn assert_value_round_trip<V>(&self, value: &V, expect: impl Fn(&V) -> V) -> Vec<u8>
    where
        V: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let out = self.value_bytes(value);
        assert_eq!(self.codec.decode_value::<V>(&out).unwrap(), expect(value));
        out
    }

    /// Asserts that two typed payloads sent in one call come back equal.
    pub fn assert_typed_round_trip(&self, first: &Payload, second: &Payload, id: u64) {
        let out = self.encoded(|c, out| c.encode_message("upload", &(first, second), Some(id), out));
        let Frame::Message { args, id: got, .. } = self.frame(&out) else {
            panic!("not a message")
        };
        assert_eq!(got, Some(id));
        assert_eq!(args.len(), 2);
        assert_eq!(&self.codec.decode_value::<Payload>(&args[0]).unwrap(), first);
        assert_eq!(&self.codec.decode_value::<Payload>(&args[1]).unwrap(), second);
    }

    // Mutations.

    /// A deep seed frame: the call `deep(nested, "text", u64::MAX, -7,
    /// 300 bytes)` with id 2^40.
    pub fn deep_seed<T: Serialize + ?Sized>(&self, nested: &T) -> Vec<u8> {
        let args = (nested, "text", u64::MAX, -7i64, Blob(vec![7; 300]));
        self.encoded(|c, out| c.encode_message("deep", &args, Some(1 << 40), out))
    }

    /// Runs the mutation run `m`: every frame through `decode_envelope` and
    /// validation (strict and not), which must give an error or a valid
    /// envelope, never a panic; every raw slice of a valid envelope through
    /// `decode_value` and `decode_error` (errors allowed, panics not); then
    /// `m.on_valid`. Asserts both outcomes occur at least `m.min_each` times.
    pub fn mutations(&self, m: &Mutations) -> Tally {
        assert!(!m.seeds.is_empty(), "a mutation run needs seed frames");
        let mut rng = Rng::new(m.seed);
        let mut tally = Tally { valid: 0, refused: 0 };
        let start = Instant::now();
        for i in 0..m.frames {
            let frame = m.frame(&mut rng, i);
            (m.on_frame)(&frame);
            let bytes = Bytes::from(frame);
            let Ok(raw) = self.codec.decode_envelope(&bytes) else {
                tally.refused += 1;
                continue;
            };
            let _ = validate(raw.clone(), false);
            match validate(raw, true) {
                Ok(frame) => {
                    tally.valid += 1;
                    for raw in raws(&frame) {
                        let _ = self.codec.decode_value::<IgnoredAny>(&raw);
                        let _ = self.codec.decode_value::<serde_json::Value>(&raw);
                        let _ = self.codec.decode_error(&raw);
                    }
                    (m.on_valid)(&bytes, &frame);
                }
                Err(PreprocessError::Validation) => tally.refused += 1,
                Err(other) => panic!("{}: unexpected {other:?}", hex(&bytes)),
            }
        }
        let elapsed = start.elapsed();
        println!(
            "{} frames in {elapsed:.2?}: {} valid envelopes, {} refused",
            m.frames, tally.valid, tally.refused
        );
        assert!(
            tally.valid >= m.min_each && tally.refused >= m.min_each,
            "want at least {} of each: {tally:?}",
            m.min_each
        );
        tally
    }
}
