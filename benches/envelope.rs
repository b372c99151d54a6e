//! The envelope's own cost, measured so that it holds still on a noisy
//! machine: for each codec, the small object's bare encode and decode and
//! the whole message's encode and decode (envelope read, validated, the
//! argument decoded through `FromArgs`, as the runtime does) are timed in
//! turn, 300 rounds of 2,000 operations each, and the fastest round of each
//! is kept. Interleaving the four keeps them under the same conditions;
//! the minimum drops the rounds that other processes disturbed.
//!
//! ```sh
//! cargo bench --bench envelope   # about 15 s
//! ```
//!
//! The envelope cost is (message encode + decode) ÷ (bare encode + decode).

mod support;

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, FromArgs};

const ROUNDS: usize = 300;
const PER_ROUND: u32 = 2_000;

/// The fastest round of `op`, in ns per operation, folded into `best`.
fn round(best: &mut f64, mut op: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..PER_ROUND {
        op();
    }
    *best = best.min(start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND));
}

fn row<C: Codec, P>(name: &str, codec: C, payload: &P)
where
    P: Serialize + DeserializeOwned + Send + 'static,
{
    let mut message = Vec::new();
    codec
        .encode_message("echo", &(payload,), Some(1), &mut message)
        .unwrap();
    let message = Bytes::from(message);
    let mut bare = Vec::new();
    codec.encode_value(payload, &mut bare).unwrap();
    let mut out = Vec::with_capacity(4096);
    let [mut bare_enc, mut bare_dec, mut msg_enc, mut msg_dec] = [f64::MAX; 4];
    for _ in 0..ROUNDS {
        round(&mut bare_enc, || {
            out.clear();
            codec.encode_value(black_box(payload), &mut out).unwrap();
        });
        round(&mut bare_dec, || {
            black_box(codec.decode_value::<P>(black_box(&bare)).unwrap());
        });
        round(&mut msg_enc, || {
            out.clear();
            codec
                .encode_message("echo", &(black_box(payload),), Some(1), &mut out)
                .unwrap();
        });
        round(&mut msg_dec, || {
            let raw = codec.decode_envelope(black_box(&message)).unwrap();
            let Ok(Frame::Message { args, .. }) = validate(raw, true) else {
                panic!("not a message")
            };
            black_box(<(P,)>::from_args(&codec, args).unwrap());
        });
    }
    println!(
        "| {name} | {bare_enc:.0} | {bare_dec:.0} | {msg_enc:.0} | {msg_dec:.0} | {:.2}× |",
        (msg_enc + msg_dec) / (bare_enc + bare_dec)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter (`cargo bench --bench
    // envelope -- json`) picks codecs.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    println!("## The small object: ns per operation, fastest of {ROUNDS} interleaved rounds\n");
    println!("| codec | bare encode | bare decode | message encode | message decode | envelope cost |");
    println!("|---|---:|---:|---:|---:|---:|");
    let small = support::small();
    if wanted("json") {
        row("json", ws_messaging_json::Json, &small);
    }
    if wanted("msgpack") {
        row("msgpack", ws_messaging_msgpack::MsgPack, &small);
    }
    if wanted("cbor") {
        row("cbor", ws_messaging_cbor::Cbor, &small);
    }
    if wanted("protobuf") {
        row("protobuf", ws_messaging_protobuf::Protobuf, &support::pb::small());
    }
    if wanted("bincode") {
        row("bincode", ws_messaging_bincode::Bincode, &small);
    }
}
