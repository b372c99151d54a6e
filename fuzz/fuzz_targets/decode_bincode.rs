//! Feeds arbitrary frames to the bincode codec's envelope decoder and the
//! validation rules: any outcome but a panic (or a huge allocation) is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_messaging_bincode::Bincode;
use ws_messaging_core::{envelope::validate, Codec};

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(raw) = Bincode.decode_envelope(&frame) {
        if let Ok(ws_messaging_core::Frame::Message { args, .. }) = validate(raw, true) {
            for arg in &args {
                let _ = Bincode.decode_value::<serde::de::IgnoredAny>(arg);
            }
        }
    }
});
