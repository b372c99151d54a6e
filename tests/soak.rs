//! Soak: a steady mix of events and invokes from 20 clients against the
//! conformance `echo_server` (a separate process), watching the server's
//! resident memory.
//!
//! Each client runs a few loops that go round the operations: `say` → `said`
//! round trips, `shout` broadcasts (every client receives each one), `echo`
//! and `sleep` invokes, with values of varying sizes. Every operation must
//! succeed within a bound (nothing closes during a soak); every broadcast
//! must reach every client. The server's VmRSS (/proc/PID/status) is sampled
//! after a warm-up and at the end; it must stay flat: growth at most 10% of
//! the warm value plus 2 MiB.
//!
//! - `cargo test --test soak -- --nocapture`: the bounded run (~25 s).
//! - `WSM_SOAK_SECS=600 cargo test --test soak -- --ignored --nocapture`: the
//!   long run (default 600 s).
//!
//! Needs the debug `echo_server` example (`cargo test` builds it).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::peers::{echo_server_path, spawn_listening, terminate};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::sync::{broadcast, oneshot, watch};
use ws_messaging::{Client, LocalEvent};
use ws_messaging_json::Json;

const CLIENTS: usize = 20;
const LOOPS_PER_CLIENT: usize = 3;
/// Pause between two operations of one loop (paces the load).
const PACE: Duration = Duration::from_millis(10);
/// Bound for every operation (an invoke's ack timeout, an event's answer).
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Allowed RSS growth between the warm-up sample and the end.
const GROWTH_RATIO: f64 = 0.10;
const GROWTH_SLACK_KIB: u64 = 2 * 1024;

/// Waiters for events that answer one of our operations, by token.
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

#[derive(Default)]
struct Counts {
    says: AtomicU64,
    shouts: AtomicU64,
    echoes: AtomicU64,
    sleeps: AtomicU64,
    /// `shouted` events received, over every client.
    shouted_received: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Counts {
    fn total(&self) -> u64 {
        self.says.load(Ordering::Relaxed)
            + self.shouts.load(Ordering::Relaxed)
            + self.echoes.load(Ordering::Relaxed)
            + self.sleeps.load(Ordering::Relaxed)
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read the server's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// A value of a size that varies with `seq` (16 B to ~2 KiB) carrying `token`.
fn payload(token: &str, seq: u64) -> Value {
    let pad = "p".repeat(16 << (seq % 8));
    json!({ "token": token, "seq": seq, "pad": pad })
}

/// Waits for the event answering `token` (registered in `waiters`).
async fn answered(waiters: &Waiters, token: &str, rx: oneshot::Receiver<Value>) -> Result<Value, String> {
    let result = tokio::time::timeout(OP_TIMEOUT, rx).await;
    waiters.lock().unwrap().remove(token);
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(format!("{token}: waiter dropped")),
        Err(_) => Err(format!("{token}: no answer within {OP_TIMEOUT:?}")),
    }
}

/// One loop of one client: say, echo, shout, sleep, ... until `stop`.
async fn run_loop(
    client: Client<Json>,
    waiters: Waiters,
    name: String,
    stop: watch::Receiver<bool>,
    counts: Arc<Counts>,
) {
    let mut seq: u64 = 0;
    while !*stop.borrow() {
        seq += 1;
        let token = format!("{name}-{seq}");
        let value = payload(&token, seq);
        let outcome: Result<(), String> = match seq % 10 {
            // say → said, to this client only.
            0..=2 => {
                let (tx, rx) = oneshot::channel();
                waiters.lock().unwrap().insert(token.clone(), tx);
                match client.send("say", (&value,)).await {
                    Ok(()) => match answered(&waiters, &token, rx).await {
                        Ok(got) if got == value => {
                            counts.says.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        }
                        Ok(got) => Err(format!("said {got} for {value}")),
                        Err(e) => Err(format!("said: {e}")),
                    },
                    Err(e) => Err(format!("say: {e}")),
                }
            }
            // shout → shouted, to everyone (this client included).
            3 => {
                let (tx, rx) = oneshot::channel();
                waiters.lock().unwrap().insert(token.clone(), tx);
                match client.send("shout", (&value,)).await {
                    Ok(()) => match answered(&waiters, &token, rx).await {
                        Ok(got) if got == value => {
                            counts.shouts.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        }
                        Ok(got) => Err(format!("shouted {got} for {value}")),
                        Err(e) => Err(format!("shouted: {e}")),
                    },
                    Err(e) => Err(format!("shout: {e}")),
                }
            }
            4..=7 => match client.invoke::<_, Value>("echo", (&value,)).await {
                Ok(got) if got == value => {
                    counts.echoes.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(got) => Err(format!("echo {got} for {value}")),
                Err(e) => Err(format!("echo: {e}")),
            },
            _ => match client.invoke::<_, Value>("sleep", (seq % 20, &value)).await {
                Ok(got) if got == value => {
                    counts.sleeps.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(got) => Err(format!("sleep {got} for {value}")),
                Err(e) => Err(format!("sleep: {e}")),
            },
        };
        if let Err(failure) = outcome {
            counts.failures.lock().unwrap().push(failure);
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn soak(duration: Duration, warm_up: Duration) {
    let started = Instant::now();
    let mut command = Command::new(echo_server_path());
    // Server pings too, so the heartbeat is part of the mix.
    command.args(["--port", "0", "--codec", "json", "--ping-interval-ms", "1000"]);
    let (server, url) = spawn_listening(command).await;
    let pid = server.id().expect("the server's pid");

    let counts = Arc::new(Counts::default());
    let mut clients = Vec::new();
    let mut closes = Vec::new();
    let mut all_waiters = Vec::new();
    for _ in 0..CLIENTS {
        let client = Client::<Json>::builder(url.clone())
            .auth(&json!({ "token": "secret" }))
            .configure(|o| o.ack_timeout = OP_TIMEOUT)
            .auto_reconnect(false)
            .build()
            .unwrap();
        let waiters: Waiters = Arc::default();
        for event in ["said", "shouted"] {
            let waiters = waiters.clone();
            let counts = counts.clone();
            client.on(event, move |(value,): (Value,)| {
                if event == "shouted" {
                    counts.shouted_received.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(token) = value["token"].as_str() {
                    if let Some(tx) = waiters.lock().unwrap().remove(token) {
                        let _ = tx.send(value);
                    }
                }
            });
        }
        closes.push(client.events());
        tokio::time::timeout(OP_TIMEOUT, client.connect())
            .await
            .expect("connect in time")
            .expect("connect");
        clients.push(client);
        all_waiters.push(waiters);
    }

    let (stop, stopped) = watch::channel(false);
    let mut loops = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for l in 0..LOOPS_PER_CLIENT {
            loops.push(tokio::spawn(run_loop(
                client.clone(),
                all_waiters[c].clone(),
                format!("c{c}-l{l}"),
                stopped.clone(),
                counts.clone(),
            )));
        }
    }

    tokio::time::sleep(warm_up).await;
    let warm = rss_kib(pid);
    let ops_at_warm = counts.total();
    let mut peak = warm;
    let mut samples = vec![warm];
    let deadline = started + duration;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()))).await;
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        samples.push(rss);
    }
    let end = rss_kib(pid);
    let ops_measured = counts.total() - ops_at_warm;

    stop.send_replace(true);
    let joined = tokio::time::timeout(OP_TIMEOUT * 2 + PACE, futures_util::future::join_all(loops))
        .await
        .expect("every loop ends in time");
    for result in joined {
        result.expect("a loop panicked");
    }
    // Every shout reached every client.
    let shouts = counts.shouts.load(Ordering::Relaxed);
    let expected = shouts * CLIENTS as u64;
    let drained = tokio::time::timeout(OP_TIMEOUT, async {
        while counts.shouted_received.load(Ordering::Relaxed) < expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    println!(
        "soak {:?}: {} ops ({} say/said, {} shouts, {} echo, {} sleep), {} shouted deliveries (expected {expected}), {} failures",
        started.elapsed(),
        counts.total(),
        counts.says.load(Ordering::Relaxed),
        shouts,
        counts.echoes.load(Ordering::Relaxed),
        counts.sleeps.load(Ordering::Relaxed),
        counts.shouted_received.load(Ordering::Relaxed),
        counts.failures.lock().unwrap().len(),
    );
    let limit = warm + (warm as f64 * GROWTH_RATIO) as u64 + GROWTH_SLACK_KIB;
    println!(
        "server VmRSS: {warm} KiB after the {warm_up:?} warm-up, {end} KiB at the end ({:+} KiB, limit {limit} KiB), peak {peak} KiB; {ops_measured} ops in between ({:+.1} B/op); samples (KiB): {samples:?}",
        end as i64 - warm as i64,
        (end as f64 - warm as f64) * 1024.0 / ops_measured.max(1) as f64
    );

    {
        let failures = counts.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} operation(s) failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
    assert!(drained.is_ok(), "not every shout reached every client");
    assert_eq!(counts.shouted_received.load(Ordering::Relaxed), expected);
    assert!(ops_measured > 0, "no operation ran after the warm-up");
    for (c, events) in closes.iter_mut().enumerate() {
        loop {
            match events.try_recv() {
                Ok(event) => assert!(
                    !matches!(event, LocalEvent::Close { .. }),
                    "client {c} was closed: {event:?}"
                ),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        assert!(clients[c].is_connected(), "client {c} is no longer connected");
    }
    assert!(
        end <= limit,
        "the server's RSS grew from {warm} KiB to {end} KiB (limit {limit} KiB)"
    );

    futures_util::future::join_all(clients.iter().map(|client| client.close(1000, ""))).await;
    let status = terminate(server).await;
    assert!(status.success(), "the server exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_mix_keeps_the_server_flat() {
    soak(Duration::from_secs(25), Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long soak: WSM_SOAK_SECS seconds (default 600)"]
async fn a_long_steady_mix_keeps_the_server_flat() {
    let secs: u64 = match std::env::var("WSM_SOAK_SECS") {
        Ok(value) => value.parse().expect("WSM_SOAK_SECS is a number of seconds"),
        Err(_) => 600,
    };
    assert!(secs >= 60, "WSM_SOAK_SECS must be at least 60");
    soak(Duration::from_secs(secs), Duration::from_secs(30)).await;
}
