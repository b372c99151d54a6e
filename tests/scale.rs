//! Connection scale and slow consumers, measured from outside the server
//! process: the `echo_server` example built beside this test (debug with
//! `cargo test`) runs as a child process and its RSS is read from
//! /proc/PID/status. The scenarios are those of benches/connections.rs
//! (compiled here as a module), at test scale, with memory bounds:
//!
//! - 2,000 idle authenticated connections, each answering the server's pings
//!   (every second), cost the server at most 10 KiB of RSS each;
//! - while X shouts 5,000 events of 16 KiB to everyone and S never reads its
//!   socket, the server's RSS grows by less than 64 MiB, the reading client
//!   R gets every `shouted`, and the server closes S (4009 "Slow consumer",
//!   or at least drops it);
//! - `#[ignore]`: 50,000 idle connections (and 10,000 on the way), at most
//!   10 KiB each in a debug build, 8 KiB in a release build.
//!
//! ```text
//! cargo test --test scale
//! cargo test --release --test scale -- --ignored --nocapture   # 50,000 connections
//! WSM_CONNECTIONS=19000 cargo test --release --test scale -- --ignored --nocapture
//! ```
//! Linux only (/proc). The 50,000-connection test raises its open-file limit
//! with `prlimit` (util-linux) and starts the server under `sh -c 'ulimit -n
//! 200000'`: past the hard limit that needs CAP_SYS_RESOURCE (root), and the
//! test fails saying so when it cannot. Run with `--nocapture` to see the
//! figures.

mod common;
#[allow(dead_code)]
#[path = "../benches/connections.rs"]
mod connections;

use std::time::Duration;

use common::peers::echo_server_path;
use connections::*;

/// KiB of server RSS per idle connection a test tolerates (debug build).
const IDLE_KIB: f64 = 10.0;

/// The target per idle connection at 10,000 in a release build.
const IDLE_KIB_RELEASE: f64 = 8.0;

/// Server RSS growth a stalled reader may cause, KiB.
const STALLED_GROWTH_KIB: u64 = 64 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_cost_at_most_10_kib_each() {
    let options = IdleOptions {
        connections: 2_000,
        checkpoints: Vec::new(),
        ping_interval_ms: 1_000,
        ping_timeout_ms: 2_000,
        concurrency: 200,
        sources: 4,
        phase_limit: Duration::from_secs(60),
    };
    // Fails if a connection fails to open, does not get its first pings, is
    // dropped (a wrong ping reply: 4008), or if the server keeps a
    // descriptor after every client has gone.
    let report = idle(&echo_server_path(), &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    print_idle(&report);
    let per = report.per_connection_kib();
    assert!(
        per <= IDLE_KIB,
        "each idle connection costs the server {per:.2} KiB of RSS (at most {IDLE_KIB} expected): \
         {} MiB with 1 connection, {} MiB with 2,000",
        report.base.memory.rss_kib >> 10,
        report.rows.last().map_or(0, |r| r.memory.rss_kib >> 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "50,000 connections: minutes and GiBs; needs an open-file limit above 50,000 (CAP_SYS_RESOURCE)"]
async fn fifty_thousand_idle_connections() {
    let connections = match std::env::var("WSM_CONNECTIONS") {
        Ok(n) => n.parse().expect("WSM_CONNECTIONS is a number"),
        Err(_) => 50_000,
    };
    // This process and the server each need a descriptor per connection.
    raise_nofile(connections as u64 + 100).unwrap_or_else(|e| panic!("{e}"));
    let options = IdleOptions {
        connections,
        checkpoints: vec![10_000],
        ping_interval_ms: 5_000,
        ping_timeout_ms: 10_000,
        concurrency: 500,
        // Up to ~28,000 ephemeral ports per source address.
        sources: 8,
        phase_limit: Duration::from_secs(180),
    };
    let report = idle(&echo_server_path(), &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    print_idle(&report);
    let bound = if cfg!(debug_assertions) {
        IDLE_KIB
    } else {
        IDLE_KIB_RELEASE
    };
    for row in &report.rows {
        assert!(
            row.per_connection_kib <= bound,
            "each idle connection costs the server {:.2} KiB of RSS at {} connections (at most {bound} expected)",
            row.per_connection_kib,
            thousands(row.connections)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_neither_grows_the_server_nor_holds_up_the_others() {
    let options = StalledOptions::default();
    let report = stalled(&echo_server_path(), &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    print_stalled(&report);
    let mut failures = Vec::new();
    if report.growth_kib() >= STALLED_GROWTH_KIB {
        failures.push(format!(
            "the server's RSS grew by {} MiB (less than {} MiB expected)",
            report.growth_kib() >> 10,
            STALLED_GROWTH_KIB >> 10
        ));
    }
    if report.r_received != options.events {
        failures.push(format!(
            "R got {}/{} shouted within {:?} (or nothing for {:?}){}",
            report.r_received,
            options.events,
            options.limit,
            options.stall_limit,
            report.r_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    match &report.s_end {
        StalledEnd::Closed(4009, reason) if reason == "Slow consumer" => {}
        StalledEnd::Dropped(_) => {}
        other => failures.push(format!(
            "S (never reading) was not closed by the server with 4009 \"Slow consumer\" nor dropped: {other:?}"
        )),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
