//! Feeds arbitrary frames to the protobuf codec's envelope decoder and the
//! validation rules, then every raw value to the value decoders: any outcome
//! but a panic (or a huge allocation) is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_messaging_core::{envelope::validate, Codec, Frame};
use ws_messaging_protobuf::{pb, Proto, Protobuf};

/// Every value decoder a handler might use on a raw value.
fn decode_values(raw: &[u8]) {
    let _ = Protobuf.decode_value::<serde::de::IgnoredAny>(raw);
    let _ = Protobuf.decode_value::<String>(raw);
    let _ = Protobuf.decode_value::<Vec<u8>>(raw);
    let _ = Protobuf.decode_value::<Option<String>>(raw);
    let _ = Protobuf.decode_value::<()>(raw);
    // A nested message type: the envelope itself.
    let _ = Protobuf.decode_value::<Proto<pb::Envelope>>(raw);
}

fuzz_target!(|data: &[u8]| {
    // The auth frame is a bare value.
    decode_values(data);
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(raw) = Protobuf.decode_envelope(&frame) {
        let _ = validate(raw.clone(), false);
        match validate(raw, true) {
            Ok(Frame::Message { args, .. }) => args.iter().for_each(|arg| decode_values(arg)),
            Ok(Frame::Reply { outcome: Ok(result), .. }) => decode_values(&result),
            Ok(Frame::Reply { outcome: Err(error), .. }) => {
                let _ = Protobuf.decode_error(&error);
            }
            Err(_) => {}
        }
    }
});
