//! Chaos: the conformance `echo_server` (a separate process) is killed with
//! SIGKILL and restarted on the same port, again and again, under load.
//!
//! 50 Rust clients keep 16 `echo` invokes in flight each, every call with a
//! value of its own, while the server is killed 10 times. The test asserts:
//!
//! - every invoke ends (result, timeout or connection error) within the ack
//!   timeout plus a small slack;
//! - no reply ever reaches the wrong call (an echo returning another call's
//!   value);
//! - after every restart every client reconnects (bounded wait), and calls
//!   succeed again between kills and after the last restart.
//!
//! It prints the recovery time of each restart (from the new server's ready
//! line to all 50 clients connected) and the outcome counts.
//!
//! Run with `cargo test --test chaos -- --nocapture` (needs the debug
//! `echo_server` example, which `cargo test` builds).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::peers::{echo_server_path, spawn_listening};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, watch};
use ws_messaging::{Client, InvokeError, LocalEvent, RetryConfig};
use ws_messaging_json::Json;

const CLIENTS: usize = 50;
const IN_FLIGHT: usize = 16;
const RESTARTS: usize = 10;
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// What an invoke may take beyond its ack timeout (scheduling on a busy
/// 2-core machine).
const SLACK: Duration = Duration::from_secs(1);
/// Load time between a restart's recovery and the next kill.
const LOAD: Duration = Duration::from_millis(1200);
/// Bound for the clients to notice a kill, and to reconnect after a restart.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

/// Outcome counts over every worker.
#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    timeouts: AtomicU64,
    connection_errors: AtomicU64,
    /// Longest invoke, in microseconds.
    longest_us: AtomicU64,
    /// Calls that ended with something else than their own value, a
    /// timeout or a connection error.
    wrong: Mutex<Vec<String>>,
    /// Calls that took longer than the ack timeout plus the slack.
    late: Mutex<Vec<String>>,
}

/// The connected state of one client, kept by a task that follows its
/// local events: `Some(since)` while connected.
type Connected = watch::Receiver<Option<Instant>>;

fn follow(client: &Client<Json>) -> Connected {
    let mut events = client.events();
    let initial = client.is_connected().then(Instant::now);
    let (tx, rx) = watch::channel(initial);
    let client = client.downgrade();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(LocalEvent::Connect(_)) => {
                    tx.send_replace(Some(Instant::now()));
                }
                Ok(LocalEvent::Close { .. }) => {
                    tx.send_replace(None);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let Some(client) = client.upgrade() else { return };
                    let connected = client.is_connected();
                    tx.send_if_modified(|state| match (connected, state.is_some()) {
                        (true, false) => {
                            *state = Some(Instant::now());
                            true
                        }
                        (false, true) => {
                            *state = None;
                            true
                        }
                        _ => false,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    rx
}

/// One worker: `echo` with a fresh value, again and again, until `stop`.
async fn worker(
    client: Client<Json>,
    mut connected: Connected,
    name: String,
    stop: watch::Receiver<bool>,
    stats: Arc<Stats>,
) {
    let mut seq: u64 = 0;
    while !*stop.borrow() {
        seq += 1;
        let value = format!("{name}-{seq}");
        let started = Instant::now();
        let result = client.invoke::<_, Value>("echo", (&value,)).await;
        let took = started.elapsed();
        stats.longest_us.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        if took > ACK_TIMEOUT + SLACK {
            stats
                .late
                .lock()
                .unwrap()
                .push(format!("{value}: {took:?} ({result:?})"));
        }
        match result {
            Ok(Value::String(got)) if got == value => {
                stats.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(InvokeError::Timeout { .. }) => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Err(InvokeError::Connection { .. } | InvokeError::NotConnected) => {
                stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                // Not connected: wait until the client is again (or stop).
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut stop = stop.clone();
                tokio::select! {
                    _ = connected.wait_for(|c| c.is_some()) => {}
                    _ = stop.wait_for(|s| *s) => {}
                    () = tokio::time::sleep(RECOVERY_BOUND) => {}
                }
            }
            other => stats
                .wrong
                .lock()
                .unwrap()
                .push(format!("sent {value:?}, got {other:?}")),
        }
    }
}

async fn start_server(port: u16) -> (Child, String) {
    let mut command = Command::new(echo_server_path());
    command.args(["--port", &port.to_string(), "--codec", "json"]);
    spawn_listening(command).await
}

/// Waits until every client's state satisfies `pred`; returns when each one
/// got there.
async fn wait_all(states: &[Connected], what: &str, pred: impl Fn(&Option<Instant>) -> bool + Copy) -> Vec<Instant> {
    let waits = states.iter().enumerate().map(|(i, state)| {
        let mut state = state.clone();
        async move {
            match tokio::time::timeout(RECOVERY_BOUND, state.wait_for(pred)).await {
                Ok(Ok(_)) => Ok(Instant::now()),
                _ => Err(i),
            }
        }
    });
    let results = futures_util::future::join_all(waits).await;
    let missing: Vec<usize> = results.iter().filter_map(|r| r.err()).collect();
    assert!(
        missing.is_empty(),
        "{} client(s) not {what} within {RECOVERY_BOUND:?}: {missing:?}",
        missing.len()
    );
    results.into_iter().map(Result::unwrap).collect()
}

fn summary(durations: &mut [Duration]) -> String {
    durations.sort();
    format!(
        "min {:?}, median {:?}, max {:?}",
        durations[0],
        durations[durations.len() / 2],
        durations[durations.len() - 1]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_survive_a_server_killed_and_restarted_under_load() {
    let test_started = Instant::now();
    let (mut server, url) = start_server(0).await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();

    let mut clients = Vec::new();
    let mut states = Vec::new();
    for _ in 0..CLIENTS {
        let client = Client::<Json>::builder(url.clone())
            .auth(&json!({ "token": "secret" }))
            .configure(|o| o.ack_timeout = ACK_TIMEOUT)
            .retry(
                RetryConfig::default()
                    .factor(1.5)
                    .min_timeout(Duration::from_millis(50))
                    .max_timeout(Duration::from_millis(500))
                    .randomize(true)
                    .retries(100_000),
            )
            .build()
            .unwrap();
        states.push(follow(&client));
        tokio::time::timeout(RECOVERY_BOUND, client.connect())
            .await
            .expect("connect in time")
            .expect("connect");
        clients.push(client);
    }

    let stats = Arc::new(Stats::default());
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for w in 0..IN_FLIGHT {
            workers.push(tokio::spawn(worker(
                client.clone(),
                states[c].clone(),
                format!("c{c}-w{w}"),
                stopped.clone(),
                stats.clone(),
            )));
        }
    }

    let mut recoveries = Vec::new();
    for round in 1..=RESTARTS {
        // Load, and calls must be succeeding.
        let ok_before = stats.ok.load(Ordering::Relaxed);
        tokio::time::sleep(LOAD).await;
        let ok_during = stats.ok.load(Ordering::Relaxed) - ok_before;
        assert!(
            ok_during > 0,
            "round {round}: no invoke succeeded while the server was up"
        );

        server.start_kill().expect("SIGKILL the server");
        tokio::time::timeout(common::WAIT, server.wait())
            .await
            .expect("the killed server is reaped in time")
            .unwrap();
        wait_all(&states, "disconnected after the kill", |s| s.is_none()).await;

        let (restarted, new_url) = start_server(port).await;
        let ready = Instant::now();
        assert_eq!(new_url, url, "restarted on the same port");
        server = restarted;
        let connected_at = wait_all(&states, "reconnected after the restart", |s| s.is_some()).await;
        let mut per_client: Vec<Duration> = states
            .iter()
            .zip(&connected_at)
            .map(|(state, seen)| state.borrow().unwrap_or(*seen).saturating_duration_since(ready))
            .collect();
        let all = *per_client.iter().max().unwrap();
        println!(
            "restart {round}: all {CLIENTS} clients connected {all:?} after the ready line (per client: {}); {ok_during} calls succeeded before the kill",
            summary(&mut per_client)
        );
        recoveries.push(all);
    }

    // After the last restart, calls succeed again.
    let ok_before = stats.ok.load(Ordering::Relaxed);
    tokio::time::sleep(LOAD).await;
    assert!(
        stats.ok.load(Ordering::Relaxed) > ok_before,
        "no invoke succeeded after the last restart"
    );
    stop.send_replace(true);
    let joined = tokio::time::timeout(
        ACK_TIMEOUT + SLACK + RECOVERY_BOUND,
        futures_util::future::join_all(workers),
    )
    .await
    .expect("every worker stops in time");
    for result in joined {
        result.expect("a worker panicked");
    }
    for (c, client) in clients.iter().enumerate() {
        let value = format!("final-{c}");
        let got: Value = client
            .invoke("echo", (&value,))
            .await
            .expect("an invoke after the last restart");
        assert_eq!(got, json!(value));
    }

    println!(
        "{RESTARTS} restarts; recovery (ready line to all {CLIENTS} connected): {}",
        summary(&mut recoveries)
    );
    println!(
        "invokes: {} ok, {} timed out, {} connection errors; longest {:?}; whole test {:?}",
        stats.ok.load(Ordering::Relaxed),
        stats.timeouts.load(Ordering::Relaxed),
        stats.connection_errors.load(Ordering::Relaxed),
        Duration::from_micros(stats.longest_us.load(Ordering::Relaxed)),
        test_started.elapsed()
    );
    {
        let wrong = stats.wrong.lock().unwrap();
        assert!(
            wrong.is_empty(),
            "{} call(s) got another call's reply or an unexpected outcome, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        let late = stats.late.lock().unwrap();
        assert!(
            late.is_empty(),
            "{} call(s) took longer than the ack timeout ({ACK_TIMEOUT:?}) + {SLACK:?}, e.g. {:?}",
            late.len(),
            &late[..late.len().min(5)]
        );
    }
    futures_util::future::join_all(clients.iter().map(|client| client.close(1000, ""))).await;
    drop(server);
}
