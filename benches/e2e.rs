//! End to end over real loopback WebSockets, for every codec: invoke round
//! trips with 1 in flight (latency) and 64 in flight on one connection
//! (throughput), and fire-and-forget events client → server; the small
//! object and the 4 KiB payload. In the same run, the transport floor: a
//! raw tokio-tungstenite echo of the same bytes with no RPC layer.

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::de::DeserializeOwned;
use serde::Serialize;
use support::{Counter, RawPeer};
use ws_messaging::Codec;

const WINDOW: usize = 64;

fn shape<C, P>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, codec: fn() -> C, shape: &str, payload: P)
where
    C: Codec,
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let payload = Arc::new(payload);
    let counter = Arc::new(Counter::default());
    let (server, client) = rt.block_on(async {
        let server = support::echo_server::<C, P>(codec(), counter.clone()).await;
        let client = support::client(codec(), &server).await;
        (server, client)
    });
    let frame = support::call_frame(&codec(), &*payload);
    let (mut echo, mut sink) = rt.block_on(async { (RawPeer::start(true).await, RawPeer::start(false).await) });

    let mut group = c.benchmark_group(format!("e2e/{name}/{shape}"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_echo_1", |b| b.iter_custom(|n| rt.block_on(echo.serial(&frame, n))));
    group.bench_function("invoke_1", |b| {
        b.iter_custom(|n| rt.block_on(support::invoke_serial(&client, &*payload, n)));
    });
    group.bench_function("raw_echo_64", |b| {
        b.iter_custom(|n| rt.block_on(echo.pipelined(&frame, n, WINDOW)));
    });
    group.bench_function("invoke_64", |b| {
        b.iter_custom(|n| {
            let n = n.div_ceil(WINDOW as u64) * WINDOW as u64;
            rt.block_on(support::invoke_pipelined(&client, &payload, n, WINDOW))
        });
    });
    group.bench_function("raw_events", |b| b.iter_custom(|n| rt.block_on(sink.events(&frame, n))));
    group.bench_function("events", |b| {
        b.iter_custom(|n| rt.block_on(support::events(&client, &counter, &*payload, n)));
    });
    group.finish();
    rt.block_on(server.close(1000));
}

fn codec<C: Codec>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, make: fn() -> C) {
    shape(c, rt, name, make, "small", support::small());
    shape(c, rt, name, make, "text4k", support::text_4k());
}

fn e2e(c: &mut Criterion) {
    let rt = support::runtime();
    codec(c, &rt, "json", || ws_messaging_json::Json);
    codec(c, &rt, "msgpack", || ws_messaging_msgpack::MsgPack);
    codec(c, &rt, "cbor", || ws_messaging_cbor::Cbor);
    shape(
        c,
        &rt,
        "protobuf",
        || ws_messaging_protobuf::Protobuf,
        "small",
        support::pb::small(),
    );
    shape(
        c,
        &rt,
        "protobuf",
        || ws_messaging_protobuf::Protobuf,
        "text4k",
        support::pb::text_4k(),
    );
    codec(c, &rt, "bincode", || ws_messaging_bincode::Bincode);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .sample_size(15)
        .nresamples(5_000);
    targets = e2e
}
criterion_main!(benches);
