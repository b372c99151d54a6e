//! End to end with the client and the server in separate processes, as users
//! run them: the `echo_server` example (release build) is a child process,
//! and so is each baseline (this binary re-executed as a raw tokio-tungstenite
//! server, see benches/support/remote.rs). The load client, in this process,
//! speaks the ws-messaging wire format over raw tokio-tungstenite with frames
//! encoded once, so what is measured is the server.
//!
//! For each codec (JSON, MessagePack, CBOR), with the small object:
//! 1. `echo` invokes, 1 in flight: mean, p50 and p99 round trip, against a
//!    raw echo of the same frames and a serde echo (parse each frame, write
//!    the ack; no RPC layer);
//! 2. `echo` invokes, 64 in flight on one connection: invokes/s, against the
//!    same two;
//! 3. `tick` events into a listener: events/s the server received (its
//!    `ticks` procedure counts them), against a raw sink counting frames.
//!
//! And in JSON: 4. broadcast, one sender shouting to 1,000 and to 10,000
//! connected clients (`shout` → `shouted` to every client), deliveries/s
//! counted at the clients, against a raw fan-out server that queues one
//! shared `Message` to every connection.
//!
//! The servers run side by side; each round measures ours and the baselines
//! one after the other, alternating which goes first, and the tables give
//! the medians over the rounds and the median of the per-round ratios.
//!
//! ```text
//! cargo bench --bench remote
//! WSM_REMOTE_QUICK=1 cargo bench --bench remote              # a short run
//! WSM_REMOTE_CODECS=json,msgpack cargo bench --bench remote  # json, msgpack, cbor
//! WSM_REMOTE_SCENARIOS=pipelined,broadcast                   # latency, pipelined, events, broadcast
//! WSM_REMOTE_ROUNDS=5  WSM_REMOTE_PIPELINED=100000  WSM_REMOTE_CLIENTS=1000,10000
//! WSM_REMOTE_SERVER=/path/to/an/earlier/echo_server  # measure another build
//! WSM_SERVER_ARGS=--recovery                         # more echo_server options
//! ```
//! The process ids of the servers are printed, for a profiler (`perf record
//! -g -p PID`); `WSM_REMOTE_PAUSE_S=5` waits that long after printing them,
//! so that one can attach before the measurements start. Linux; the 10,000-client broadcast needs an open-file limit
//! above 10,000 (this process and the server each hold a descriptor per
//! client). Without `--bench` (`cargo test --benches`) it only says how to
//! run it.

mod support;

use std::sync::Arc;
use std::time::Instant;

use support::remote::{
    build_echo_server, load_average, measure_broadcast, measure_codec, print_broadcast_table, print_codec_table,
    serve_role_if_asked, CodecServers, Frames, Process, Scenarios, Sizes, CODECS,
};

/// Invokes in flight in the pipelined scenario.
const WINDOW: usize = 64;

fn env_number(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?}: {e}")),
    )
}

fn env_list(name: &str, default: &[&str], known: &[&str]) -> Vec<String> {
    let list: Vec<String> = match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => default.iter().map(|s| s.to_string()).collect(),
    };
    for item in &list {
        assert!(
            known.contains(&item.as_str()),
            "{name}: {item:?} is not one of {}",
            known.join(", ")
        );
    }
    list
}

/// Waits `WSM_REMOTE_PAUSE_S` seconds (if set), for a profiler to attach
/// to the process ids just printed.
async fn pause_for_profiler() {
    if let Some(seconds) = env_number("WSM_REMOTE_PAUSE_S") {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(std::time::Duration::from_secs(seconds as u64)).await;
    }
}

fn main() {
    serve_role_if_asked();
    if !std::env::args().any(|a| a == "--bench") {
        println!("remote: run it with `cargo bench --bench remote` (it starts server processes)");
        return;
    }
    let quick = std::env::var("WSM_REMOTE_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let codecs = env_list("WSM_REMOTE_CODECS", &CODECS, &CODECS);
    let scenarios = env_list(
        "WSM_REMOTE_SCENARIOS",
        &["latency", "pipelined", "events", "broadcast"],
        &["latency", "pipelined", "events", "broadcast"],
    );
    let selected = Scenarios {
        latency: scenarios.iter().any(|s| s == "latency"),
        pipelined: scenarios.iter().any(|s| s == "pipelined"),
        events: scenarios.iter().any(|s| s == "events"),
    };
    let sizes = Sizes {
        rounds: env_number("WSM_REMOTE_ROUNDS").unwrap_or(if quick { 2 } else { 5 }),
        serial: if quick { 1_000 } else { 3_000 },
        pipelined: env_number("WSM_REMOTE_PIPELINED").unwrap_or(if quick { 20_000 } else { 100_000 }),
        events: if quick { 20_000 } else { 100_000 },
    };
    let clients: Vec<usize> = match std::env::var("WSM_REMOTE_CLIENTS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().replace('_', "").parse().expect("WSM_REMOTE_CLIENTS: numbers"))
            .collect(),
        Err(_) => vec![1_000, 10_000],
    };
    let broadcast_rounds = env_number("WSM_REMOTE_ROUNDS").unwrap_or(if quick { 1 } else { 3 });

    let echo_server = build_echo_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    println!(
        "## ws-messaging across processes ({} cores; load average before: {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!("\nserver: {}", echo_server.display());
    println!(
        "Ratios are against baselines measured in the same run (latency: lower is better; rates: higher is \
         better, 1.0 = the baseline)."
    );
    runtime.block_on(async {
        if selected.latency || selected.pipelined || selected.events {
            for codec in &codecs {
                let frames = Frames::named(codec, WINDOW).unwrap_or_else(|e| panic!("{e}"));
                let mut servers = CodecServers::start(&echo_server, codec)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                println!("\npids ({codec}): {}", servers.pids());
                pause_for_profiler().await;
                let rounds = measure_codec(&mut servers, &frames, sizes, selected, WINDOW)
                    .await
                    .unwrap_or_else(|e| panic!("{codec}: {e}"));
                print_codec_table(codec, &frames, &rounds);
            }
        }
        if scenarios.iter().any(|s| s == "broadcast") {
            let frames = Arc::new(Frames::named("json", WINDOW).unwrap_or_else(|e| panic!("{e}")));
            let mut ours = Process::echo_server(&echo_server, "json")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut fanout = Process::baseline("raw-fanout", None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            println!(
                "\npids (broadcast): echo_server={} raw-fanout={}",
                ours.pid(),
                fanout.pid()
            );
            pause_for_profiler().await;
            let mut rows = Vec::new();
            for &n in &clients {
                // About a million deliveries per round at 10,000 clients.
                let shouts = if quick {
                    (200_000 / n).clamp(10, 200)
                } else {
                    (1_000_000 / n).clamp(20, 1_000)
                };
                let row = measure_broadcast(&mut ours, &mut fanout, &frames, n, shouts, broadcast_rounds)
                    .await
                    .unwrap_or_else(|e| panic!("broadcast to {n} clients: {e}"));
                rows.push(row);
            }
            print_broadcast_table(&rows);
        }
    });
    println!(
        "\n(took {:.0} s; load average after: {})",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
