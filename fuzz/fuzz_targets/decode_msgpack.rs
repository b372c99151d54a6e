//! Feeds arbitrary frames to the msgpack codec's envelope decoder and the
//! validation rules: any outcome but a panic (or a huge allocation) is fine,
//! and whatever the envelope reader accepts, the value decoder reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_messaging_core::{envelope::validate, Codec, Frame};
use ws_messaging_msgpack::{MsgPack, Value};

fuzz_target!(|data: &[u8]| {
    // A bare value, as the auth frame is decoded.
    let _ = MsgPack.decode_value::<Value>(data);
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(raw) = MsgPack.decode_envelope(&frame) {
        let raws = match validate(raw, true) {
            Ok(Frame::Message { args, .. }) => args.into_vec(),
            Ok(Frame::Reply { outcome: Ok(raw) | Err(raw), .. }) => vec![raw],
            Err(_) => return,
        };
        for raw in &raws {
            assert!(MsgPack.decode_value::<Value>(raw).is_ok());
            let _ = MsgPack.decode_value::<serde::de::IgnoredAny>(raw);
        }
    }
});
