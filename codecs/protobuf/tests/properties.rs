//! Properties: round trips over arbitrary envelopes and payloads (proptest),
//! and a bounded randomized run over random and mutated frames that must
//! each give an error or a valid envelope, never a panic.

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use serde::de::IgnoredAny;
use serde::Serialize;
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, PreprocessError};
use ws_messaging_protobuf::{prost, Proto, Protobuf};

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

/// Raw bytes that serialize as a serde byte string.
#[derive(Debug, Clone)]
struct Raw(Vec<u8>);

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

fn decode(frame: Vec<u8>) -> Result<Frame, PreprocessError> {
    let raw = Protobuf
        .decode_envelope(&Bytes::from(frame))
        .map_err(PreprocessError::Decode)?;
    validate(raw, true)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn messages_round_trip(
        name in "[^\u{0}]{1,24}",
        args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        id in prop::option::of(1..=u64::MAX),
    ) {
        let mut out = Vec::new();
        let raw: Vec<Raw> = args.iter().cloned().map(Raw).collect();
        Protobuf.encode_message(&name, &raw, id, &mut out).unwrap();
        let frame = decode(out).unwrap();
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(frame, Frame::Message { name, args, id });
    }

    #[test]
    fn replies_round_trip(id in 1..=u64::MAX, result in prop::collection::vec(any::<u8>(), 0..64), error in ".{0,32}", ok in any::<bool>()) {
        let mut out = Vec::new();
        if ok {
            Protobuf.encode_reply(id, Ok(&Raw(result.clone())), &mut out).unwrap();
            prop_assert_eq!(decode(out).unwrap(), Frame::Reply { id, outcome: Ok(Bytes::from(result)) });
        } else {
            Protobuf.encode_reply::<()>(id, Err(&serde_json::Value::String(error.clone())), &mut out).unwrap();
            let frame = decode(out).unwrap();
            let Frame::Reply { id: got, outcome: Err(raw) } = frame else { panic!("{frame:?}") };
            prop_assert_eq!(got, id);
            prop_assert_eq!(Protobuf.decode_error(&raw).unwrap(), serde_json::Value::String(error));
        }
    }

    #[test]
    fn typed_payloads_round_trip(value in sample(), text in ".{0,32}", data in prop::collection::vec(any::<u8>(), 0..64)) {
        // Through an envelope: encode_message, decode_envelope, decode_value.
        let mut out = Vec::new();
        Protobuf.encode_message("p", &(Proto(value.clone()), &text, &data, ()), Some(1), &mut out).unwrap();
        let Frame::Message { args, .. } = decode(out).unwrap() else { panic!("not a message") };
        prop_assert_eq!(args.len(), 4);
        prop_assert_eq!(Protobuf.decode_value::<Proto<Sample>>(&args[0]).unwrap().0, value.clone());
        prop_assert_eq!(Protobuf.decode_value::<String>(&args[1]).unwrap(), text);
        prop_assert_eq!(Protobuf.decode_value::<Vec<u8>>(&args[2]).unwrap(), data);
        Protobuf.decode_value::<()>(&args[3]).unwrap();
        // As a bare value (the auth frame).
        let mut out = Vec::new();
        Protobuf.encode_value(&Proto(value.clone()), &mut out).unwrap();
        prop_assert_eq!(Protobuf.decode_value::<Proto<Sample>>(&out).unwrap().0, value);
    }
}

/// A small deterministic generator (SplitMix64): the run is reproducible
/// from its seed without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Valid frames of every kind to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let c = Protobuf;
    let sample = Sample {
        text: "t".into(),
        number: -5,
        data: vec![0, 1, 2],
        values: vec![1.5],
        nested: Some(Box::new(Sample::default())),
    };
    let mut seeds = Vec::new();
    let mut push = |f: &dyn Fn(&mut Vec<u8>) -> Result<(), ws_messaging::CodecError>| {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        seeds.push(out);
    };
    push(&|o| c.encode_message("said", &("hello", Proto(sample.clone())), None, o));
    push(&|o| c.encode_message("sum", &(Proto(sample.clone()), [1u8, 2]), Some(300), o));
    push(&|o| c.encode_message("ping", &(), Some(1), o));
    push(&|o| c.encode_reply(7, Ok(&Proto(sample.clone())), o));
    push(&|o| c.encode_reply(1, Ok(&()), o));
    push(&|o| c.encode_reply::<()>(8, Err(&serde_json::json!("Error: x")), o));
    push(&|o| c.encode_value(&Proto(sample.clone()), o));
    seeds
}

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    for _ in 0..=rng.below(3) {
        match rng.below(6) {
            0 if !frame.is_empty() => {
                let i = rng.below(frame.len());
                frame[i] ^= 1 << rng.below(8);
            }
            1 if !frame.is_empty() => {
                let i = rng.below(frame.len());
                frame[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(frame.len() + 1);
                let byte = rng.next() as u8;
                frame.insert(i, byte);
            }
            3 if !frame.is_empty() => {
                let i = rng.below(frame.len());
                frame.remove(i);
            }
            4 => {
                let len = rng.below(frame.len() + 1);
                frame.truncate(len);
            }
            _ => {
                // Splice in a large varint (a length or a tag).
                let i = rng.below(frame.len() + 1);
                let tail = frame.split_off(i);
                frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
                frame.extend_from_slice(&tail);
            }
        }
    }
}

/// One frame through the whole receive path; a valid envelope re-encodes to
/// a frame that decodes the same.
fn check(frame: Vec<u8>) -> bool {
    let frame = Bytes::from(frame);
    let Ok(raw) = Protobuf.decode_envelope(&frame) else {
        return false;
    };
    let _ = validate(raw.clone(), false);
    let Ok(valid) = validate(raw, true) else {
        return false;
    };
    let range = frame.as_ptr_range();
    let mut out = Vec::new();
    match &valid {
        Frame::Message { name, args, id } => {
            for arg in args {
                assert!(arg.is_empty() || range.contains(&arg.as_ptr()), "argument copied");
                let _ = Protobuf.decode_value::<IgnoredAny>(arg);
                let _ = Protobuf.decode_value::<String>(arg);
                let _ = Protobuf.decode_value::<Proto<Sample>>(arg);
                let _ = Protobuf.decode_value::<Option<Vec<u8>>>(arg);
            }
            let raw: Vec<Raw> = args.iter().map(|a| Raw(a.to_vec())).collect();
            Protobuf.encode_message(name, &raw, *id, &mut out).unwrap();
        }
        Frame::Reply { id, outcome } => match outcome {
            Ok(result) => {
                let _ = Protobuf.decode_value::<Proto<Sample>>(result);
                Protobuf.encode_reply(*id, Ok(&Raw(result.to_vec())), &mut out).unwrap();
            }
            Err(error) => {
                let Ok(text) = Protobuf.decode_error(error) else {
                    return true;
                };
                Protobuf.encode_reply::<()>(*id, Err(&text), &mut out).unwrap();
            }
        },
    }
    assert_eq!(decode(out).unwrap(), valid, "re-encoding changed the envelope");
    true
}

#[test]
fn random_and_mutated_frames_never_panic() {
    const FRAMES: usize = 120_000;
    let seeds = seeds();
    let mut rng = Rng(0x5eed_2026);
    let start = Instant::now();
    let mut valid = 0;
    for i in 0..FRAMES {
        let frame = if i % 4 == 0 {
            let len = rng.below(48);
            rng.bytes(len)
        } else {
            let mut frame = seeds[rng.below(seeds.len())].clone();
            mutate(&mut rng, &mut frame);
            frame
        };
        if check(frame) {
            valid += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{FRAMES} frames in {elapsed:.2?} ({:.0} frames/s), {valid} valid envelopes",
        FRAMES as f64 / elapsed.as_secs_f64()
    );
    // Both outcomes occur: the run exercises decoding, not only rejection.
    assert!(valid > FRAMES / 100 && valid < FRAMES, "{valid} valid of {FRAMES}");
}
