//! Feeds arbitrary frames to the json codec's envelope decoder and the
//! validation rules: any outcome but a panic (or a huge allocation) is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_messaging_core::{envelope::validate, Codec};
use ws_messaging_json::Json;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(raw) = Json.decode_envelope(&frame) {
        if let Ok(ws_messaging_core::Frame::Message { args, .. }) = validate(raw, true) {
            for arg in &args {
                let _ = Json.decode_value::<serde::de::IgnoredAny>(arg);
            }
        }
    }
});
