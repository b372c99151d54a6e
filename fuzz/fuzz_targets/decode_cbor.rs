//! Feeds arbitrary frames to the cbor codec's envelope decoder and the
//! validation rules: any outcome but a panic (or a huge allocation) is fine,
//! and whatever the envelope reader accepts, the value decoder reads (but
//! bignums beyond 2^64, which ciborium's Value cannot hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_messaging_cbor::{Cbor, Value};
use ws_messaging_core::{envelope::validate, Codec, Frame};

fuzz_target!(|data: &[u8]| {
    // A bare value, as the auth frame is decoded.
    let _ = Cbor.decode_value::<Value>(data);
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(raw) = Cbor.decode_envelope(&frame) {
        let raws = match validate(raw, true) {
            Ok(Frame::Message { args, .. }) => args.into_vec(),
            Ok(Frame::Reply { outcome: Ok(raw) | Err(raw), .. }) => vec![raw],
            Err(_) => return,
        };
        for raw in &raws {
            if let Err(e) = Cbor.decode_value::<Value>(raw) {
                assert!(e.to_string().contains("too large"), "{e}");
            }
            let _ = Cbor.decode_value::<serde::de::IgnoredAny>(raw);
        }
    }
});
