//! Codec micro-benchmarks: encode and decode of a message envelope and an
//! ack envelope, for every codec and four payload shapes, beside the same
//! payload encoded bare with the same format library (so the envelope's
//! own cost shows).

mod support;

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hint::black_box;
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, FromArgs};

fn shape<C: Codec, P>(c: &mut Criterion, codec_name: &str, codec: &C, shape: &str, payload: &P)
where
    P: Serialize + DeserializeOwned + Send + 'static,
{
    let mut group = c.benchmark_group(format!("codec/{codec_name}/{shape}"));
    let mut message = Vec::new();
    codec
        .encode_message("echo", &(payload,), Some(1), &mut message)
        .unwrap();
    let message = Bytes::from(message);
    let mut ack = Vec::new();
    codec.encode_reply(1, Ok(payload), &mut ack).unwrap();
    let ack = Bytes::from(ack);
    let mut bare = Vec::new();
    codec.encode_value(payload, &mut bare).unwrap();
    let bare = Bytes::from(bare);
    group.throughput(Throughput::Bytes(message.len() as u64));

    let mut out = Vec::with_capacity(message.len());
    group.bench_function(BenchmarkId::new("message", "encode"), |b| {
        b.iter(|| {
            out.clear();
            codec
                .encode_message("echo", &(black_box(payload),), Some(1), &mut out)
                .unwrap();
        });
    });
    group.bench_function(BenchmarkId::new("message", "decode"), |b| {
        b.iter(|| {
            let raw = codec.decode_envelope(black_box(&message)).unwrap();
            let Ok(Frame::Message { args, .. }) = validate(raw, true) else {
                panic!()
            };
            black_box(<(P,)>::from_args(codec, args).unwrap().0)
        });
    });
    group.bench_function(BenchmarkId::new("ack", "encode"), |b| {
        b.iter(|| {
            out.clear();
            codec.encode_reply(1, Ok(black_box(payload)), &mut out).unwrap();
        });
    });
    group.bench_function(BenchmarkId::new("ack", "decode"), |b| {
        b.iter(|| {
            let raw = codec.decode_envelope(black_box(&ack)).unwrap();
            let Ok(Frame::Reply {
                outcome: Ok(result), ..
            }) = validate(raw, true)
            else {
                panic!()
            };
            black_box(codec.decode_enveloped::<P>(&result).unwrap())
        });
    });
    group.bench_function(BenchmarkId::new("bare", "encode"), |b| {
        b.iter(|| {
            out.clear();
            codec.encode_value(black_box(payload), &mut out).unwrap();
        });
    });
    group.bench_function(BenchmarkId::new("bare", "decode"), |b| {
        b.iter(|| black_box(codec.decode_value::<P>(black_box(&bare)).unwrap()));
    });
    group.finish();
}

fn codec<C: Codec>(c: &mut Criterion, name: &str, codec: C) {
    shape(c, name, &codec, "small", &support::small());
    shape(c, name, &codec, "text4k", &support::text_4k());
    shape(c, name, &codec, "blob64k", &support::blob_64k());
    shape(c, name, &codec, "records1k", &support::records_1k());
}

fn codecs(c: &mut Criterion) {
    codec(c, "json", ws_messaging_json::Json);
    codec(c, "msgpack", ws_messaging_msgpack::MsgPack);
    codec(c, "cbor", ws_messaging_cbor::Cbor);
    let protobuf = ws_messaging_protobuf::Protobuf;
    shape(c, "protobuf", &protobuf, "small", &support::pb::small());
    shape(c, "protobuf", &protobuf, "text4k", &support::pb::text_4k());
    shape(c, "protobuf", &protobuf, "blob64k", &support::pb::blob_64k());
    shape(c, "protobuf", &protobuf, "records1k", &support::pb::records_1k());
    codec(c, "bincode", ws_messaging_bincode::Bincode);
}

criterion_group! {
    name = benches;
    // 120 benchmarks: short runs and a lighter bootstrap keep the whole
    // `cargo bench` under 10 minutes on 2 cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20)
        .nresamples(5_000);
    targets = codecs
}
criterion_main!(benches);
