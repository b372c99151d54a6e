//! The one-glance summary: for every codec, encoded sizes, envelope
//! encode/decode times against the bare payload, round trips per second
//! over loopback and their ratio to the raw tokio-tungstenite baseline
//! measured in the same run, and allocations per round trip; then the JSON
//! figures with the client and the server in separate processes (the
//! echo_server example and raw baselines as child processes, see
//! benches/remote.rs, which has the full set).
//!
//! `cargo bench --bench summary` (runs last in `cargo bench`).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hint::black_box;
use support::{Counter, RawPeer};
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, FromArgs};

/// Counts every allocation, to show allocations per round trip.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the GlobalAlloc contract; counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's `layout` obligations pass on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the system one) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from the system allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Median time per iteration of `f`, over 7 batches sized to ~30 ms.
fn time_per_iter(mut f: impl FnMut()) -> Duration {
    let mut n = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        if start.elapsed() > Duration::from_millis(30) || n >= 1 << 24 {
            break;
        }
        n *= 2;
    }
    let mut samples: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed() / n
        })
        .collect();
    samples.sort();
    samples[3]
}

/// Median of 5 runs of an async measurement returning the time for `n` operations.
fn per_op<F: FnMut() -> Duration>(n: u64, mut run: F) -> Duration {
    run(); // warm up
    let mut samples: Vec<Duration> = (0..5).map(|_| run() / n as u32).collect();
    samples.sort();
    samples[2]
}

struct CodecRow {
    shape: &'static str,
    message: usize,
    bare: usize,
    encode: Duration,
    decode: Duration,
    bare_encode: Duration,
    bare_decode: Duration,
}

fn codec_row<C: Codec, P: Serialize + DeserializeOwned + Send + 'static>(
    codec: &C,
    shape: &'static str,
    payload: &P,
) -> CodecRow {
    let mut out = Vec::new();
    codec.encode_message("echo", &(payload,), Some(1), &mut out).unwrap();
    let message = Bytes::from(out.clone());
    let mut bare = Vec::new();
    codec.encode_value(payload, &mut bare).unwrap();
    let bare_len = bare.len();
    let encode = time_per_iter(|| {
        out.clear();
        codec
            .encode_message("echo", &(black_box(payload),), Some(1), &mut out)
            .unwrap();
    });
    let decode = time_per_iter(|| {
        let raw = codec.decode_envelope(black_box(&message)).unwrap();
        let Ok(Frame::Message { args, .. }) = validate(raw, true) else {
            panic!()
        };
        black_box(<(P,)>::from_args(codec, args).unwrap().0);
    });
    let bare_encode = time_per_iter(|| {
        out.clear();
        codec.encode_value(black_box(payload), &mut out).unwrap();
    });
    let bare_decode = time_per_iter(|| {
        black_box(codec.decode_value::<P>(black_box(&bare)).unwrap());
    });
    CodecRow {
        shape,
        message: message.len(),
        bare: bare_len,
        encode,
        decode,
        bare_encode,
        bare_decode,
    }
}

struct WireRow {
    shape: &'static str,
    rtt: Duration,
    raw_rtt: Duration,
    pipelined: Duration,
    raw_pipelined: Duration,
    events: Duration,
    raw_events: Duration,
    allocations: f64,
    /// Of `allocations`, those of decoding the payload into its Rust type,
    /// which the echo handler and the caller each do once.
    payload_allocations: u64,
}

fn wire_row<C, P>(rt: &tokio::runtime::Runtime, make: fn() -> C, shape: &'static str, payload: P) -> WireRow
where
    C: Codec,
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let payload = Arc::new(payload);
    let counter = Arc::new(Counter::default());
    let (server, client) = rt.block_on(async {
        let server = support::echo_server::<C, P>(make(), counter.clone()).await;
        let client = support::client(make(), &server).await;
        (server, client)
    });
    let frame = support::call_frame(&make(), &*payload);
    let (mut echo, mut sink) = rt.block_on(async { (RawPeer::start(true).await, RawPeer::start(false).await) });
    const SERIAL: u64 = 2_000;
    const PIPELINED: u64 = 64 * 300;
    const EVENTS: u64 = 20_000;
    let raw_rtt = per_op(SERIAL, || rt.block_on(echo.serial(&frame, SERIAL)));
    let rtt = per_op(SERIAL, || {
        rt.block_on(support::invoke_serial(&client, &*payload, SERIAL))
    });
    let raw_pipelined = per_op(PIPELINED, || rt.block_on(echo.pipelined(&frame, PIPELINED, 64)));
    let pipelined = per_op(PIPELINED, || {
        rt.block_on(support::invoke_pipelined(&client, &payload, PIPELINED, 64))
    });
    let raw_events = per_op(EVENTS, || rt.block_on(sink.events(&frame, EVENTS)));
    let events = per_op(EVENTS, || {
        rt.block_on(support::events(&client, &counter, &*payload, EVENTS))
    });
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    rt.block_on(support::invoke_serial(&client, &*payload, 1_000));
    let allocations = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 1_000.0;
    let codec = make();
    let mut bare = Vec::new();
    codec.encode_value(&*payload, &mut bare).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(codec.decode_value::<P>(&bare).unwrap());
    let payload_allocations = 2 * (ALLOCATIONS.load(Ordering::Relaxed) - before);
    rt.block_on(server.close(1000));
    WireRow {
        shape,
        rtt,
        raw_rtt,
        pipelined,
        raw_pipelined,
        events,
        raw_events,
        allocations,
        payload_allocations,
    }
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

fn rate(d: Duration) -> String {
    format!("{:.0}k/s", 1.0 / d.as_secs_f64() / 1e3)
}

/// The sizes and times of one codec, for the four shapes.
fn codec_table(name: &str, rows: &[CodecRow]) {
    println!("\n### {name}\n");
    println!(
        "| payload | message bytes | bare bytes | encode µs | decode µs | bare enc µs | bare dec µs | envelope cost |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ratio = (r.encode + r.decode).as_secs_f64() / (r.bare_encode + r.bare_decode).as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2}× |",
            r.shape,
            r.message,
            r.bare,
            us(r.encode),
            us(r.decode),
            us(r.bare_encode),
            us(r.bare_decode),
            ratio
        );
    }
}

/// The loopback numbers of one codec.
fn wire_table(wire: &[WireRow]) {
    println!();
    println!("| payload | invoke RTT µs (raw) | RTT ratio | 64 in flight (raw) | throughput ratio | events (raw) | events ratio | allocs / round trip (decoding the payload) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for w in wire {
        println!(
            "| {} | {} ({}) | {:.2}× | {} ({}) | {:.2} | {} ({}) | {:.2} | {:.1} ({}) |",
            w.shape,
            us(w.rtt),
            us(w.raw_rtt),
            w.rtt.as_secs_f64() / w.raw_rtt.as_secs_f64(),
            rate(w.pipelined),
            rate(w.raw_pipelined),
            w.raw_pipelined.as_secs_f64() / w.pipelined.as_secs_f64(),
            rate(w.events),
            rate(w.raw_events),
            w.raw_events.as_secs_f64() / w.events.as_secs_f64(),
            w.allocations,
            w.payload_allocations,
        );
    }
}

/// A serde codec: the four shapes as plain Rust types.
fn report<C: Codec>(rt: &tokio::runtime::Runtime, name: &str, make: fn() -> C) {
    let codec = make();
    codec_table(
        name,
        &[
            codec_row(&codec, "small", &support::small()),
            codec_row(&codec, "text4k", &support::text_4k()),
            codec_row(&codec, "blob64k", &support::blob_64k()),
            codec_row(&codec, "records1k", &support::records_1k()),
        ],
    );
    wire_table(&[
        wire_row(rt, make, "small", support::small()),
        wire_row(rt, make, "text4k", support::text_4k()),
    ]);
}

/// The JSON figures across processes, in the style of [`wire_table`]: the
/// load client in this process, the echo_server and the baselines (raw echo,
/// serde echo, raw sink, raw fan-out) as child processes.
fn cross_process(rt: &tokio::runtime::Runtime) {
    use support::remote::{self, CodecServers, Frames, Process, Scenarios, Sizes};
    let exe = remote::build_echo_server();
    let all = Scenarios {
        latency: true,
        pipelined: true,
        events: true,
    };
    let sizes = Sizes {
        rounds: 3,
        serial: 2_000,
        pipelined: 64 * 1_000,
        events: 50_000,
    };
    let (rounds, broadcast) = rt.block_on(async {
        let frames = Frames::named("json", 64).unwrap_or_else(|e| panic!("{e}"));
        let mut servers = CodecServers::start(&exe, "json")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rounds = remote::measure_codec(&mut servers, &frames, sizes, all, 64)
            .await
            .unwrap_or_else(|e| panic!("json across processes: {e}"));
        drop(servers);
        let frames = Arc::new(frames);
        let mut ours = Process::echo_server(&exe, "json")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut fanout = Process::baseline("raw-fanout", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let broadcast = remote::measure_broadcast(&mut ours, &mut fanout, &frames, 10_000, 100, 2)
            .await
            .unwrap_or_else(|e| panic!("broadcast to 10,000 clients: {e}"));
        (rounds, broadcast)
    });
    let median = |v: &[f64]| remote::median(&mut v.to_vec());
    let mean_rtt = |t: usize| rounds.latency[t].iter().map(|r| r[0]).collect::<Vec<f64>>();
    let per_s = |v: f64| format!("{:.0}k/s", v / 1e3);
    println!("\n### json across processes\n");
    println!(
        "The client in this process; the echo_server, and as baselines a raw tokio-tungstenite echo, a serde \
         echo (parse, answer; no RPC layer), a raw sink and a raw fan-out, each in a process of its own \
         (`cargo bench --bench remote` has p50/p99, the other codecs and 1,000 clients)."
    );
    println!();
    println!("| payload | invoke RTT µs (raw) | RTT ratio | 64 in flight (raw) | throughput ratio | 64 in flight (serde echo) | serde ratio | events (raw sink) | events ratio | broadcast to 10,000 (raw fan-out) | broadcast ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| small | {:.2} ({:.2}) | {:.2}× | {} ({}) | {:.2} | {} ({}) | {:.2} | {} ({}) | {:.2} | {} ({}) | {:.2} |",
        median(&mean_rtt(0)),
        median(&mean_rtt(1)),
        remote::paired_ratio(&mean_rtt(0), &mean_rtt(1)),
        per_s(median(&rounds.pipelined[0])),
        per_s(median(&rounds.pipelined[1])),
        remote::paired_ratio(&rounds.pipelined[0], &rounds.pipelined[1]),
        per_s(median(&rounds.pipelined[0])),
        per_s(median(&rounds.pipelined[2])),
        remote::paired_ratio(&rounds.pipelined[0], &rounds.pipelined[2]),
        per_s(median(&rounds.events[0])),
        per_s(median(&rounds.events[1])),
        remote::paired_ratio(&rounds.events[0], &rounds.events[1]),
        per_s(median(&broadcast.rates[0])),
        per_s(median(&broadcast.rates[1])),
        remote::paired_ratio(&broadcast.rates[0], &broadcast.rates[1]),
    );
}

fn main() {
    // The baseline servers of the cross-process section are this binary,
    // re-executed.
    support::remote::serve_role_if_asked();
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and expects a quick exit.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = support::runtime();
    println!(
        "## ws-messaging wire formats ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\nRatios compare with a raw tokio-tungstenite peer moving the same frames in the same run");
    println!(
        "(RTT ratio: lower is better; throughput and events ratios: higher is better, 1.0 = the transport floor)."
    );
    report(&rt, "json", || ws_messaging_json::Json);
    report(&rt, "msgpack", || ws_messaging_msgpack::MsgPack);
    report(&rt, "cbor", || ws_messaging_cbor::Cbor);
    // protobuf: the shapes as prost messages.
    let protobuf = ws_messaging_protobuf::Protobuf;
    codec_table(
        "protobuf",
        &[
            codec_row(&protobuf, "small", &support::pb::small()),
            codec_row(&protobuf, "text4k", &support::pb::text_4k()),
            codec_row(&protobuf, "blob64k", &support::pb::blob_64k()),
            codec_row(&protobuf, "records1k", &support::pb::records_1k()),
        ],
    );
    wire_table(&[
        wire_row(&rt, || ws_messaging_protobuf::Protobuf, "small", support::pb::small()),
        wire_row(
            &rt,
            || ws_messaging_protobuf::Protobuf,
            "text4k",
            support::pb::text_4k(),
        ),
    ]);
    report(&rt, "bincode", || ws_messaging_bincode::Bincode);
    cross_process(&rt);
}
