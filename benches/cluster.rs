//! Broadcast across a cluster of three nodes sharing a Redis server, beside
//! the same load on one node.
//!
//! The bench starts its own `redis-server` (on a free loopback port, no
//! persistence) and the `echo_server` example (release build) as child
//! processes:
//! - **one node**: one echo_server, no Redis;
//! - **three nodes**: three echo_servers with `--redis`, forming one cluster
//!   through the Redis adapter (crate `ws-messaging-redis`).
//!
//! N clients (JSON codec, authenticated) are connected, spread evenly over
//! the nodes (client `i` on node `i % nodes`); one more client, the sender,
//! is connected to the first node and sends K `shout(seq, sent_ns, small)`
//! events, which the echo_server broadcasts as `shouted(...)` to every
//! client of every node. `sent_ns` is the time of sending, in nanoseconds
//! since the bench started; `small` is the benchmarks' small object (about
//! 100 bytes), so that a frame is about the size of those of the broadcast
//! rows of `benches/remote.rs`.
//!
//! The sender keeps at most `WINDOW` shouts in flight (sent but not yet
//! delivered to every client), sending them in bursts of `WINDOW / 2`: the
//! same closed loop for both setups, which runs each at the rate it
//! sustains. Each client notes the arrival time of every delivery and
//! checks that it gets every shout exactly once and in order (the run fails
//! otherwise). Per setup and round:
//! - deliveries per second: N × K over the time from the first shout sent to
//!   the last delivery;
//! - p50, p99 and max delivery latency (arrival − send, the arrival being
//!   when the client's task reads the frame) over all N × K deliveries;
//!   with a full window this is mostly the time a shout waits behind the
//!   ones before it;
//! - the CPU each part used while the shouts ran, in cores: the nodes,
//!   Redis and this process (which runs the clients), from
//!   /proc/PID/task/*/schedstat, and every other process of the machine
//!   (/proc/stat); and the CPU time of the nodes and Redis per delivery,
//!   which other load on the machine skews less than the rates.
//!
//! The rounds interleave the setups (one node, three nodes, three nodes,
//! one node, ...: the order alternates so that neither always goes first);
//! the tables give the medians over the rounds, and the throughput ratio
//! three nodes ÷ one node (and that of the CPU per delivery) is the median
//! of the per-round ratios. The tables are markdown.
//!
//! ```text
//! cargo bench --bench cluster
//! WSM_CLUSTER_QUICK=1 cargo bench --bench cluster   # 90 clients, 300 shouts, 1 round
//! WSM_CLUSTER_CLIENTS=300 WSM_CLUSTER_SHOUTS=2000 WSM_CLUSTER_ROUNDS=3 WSM_CLUSTER_WINDOW=16
//! ```
//! (the defaults). `WSM_SERVER_ARGS="--recovery"` passes more options to
//! every node (with `--recovery`, every shout is logged: in memory on one
//! node, in Redis Streams on three). Needs `redis-server` on the PATH (`apt-get install
//! redis-server`) and Linux (/proc). Every process of a setup shares the
//! machine's cores with the others, so on a small machine three nodes do
//! not get more CPU than one: the comparison then shows what the Redis path
//! costs, not how far the cluster scales. Other load on the machine skews
//! the comparison (the scheduler shares the cores among threads, so three
//! nodes win a larger share against it than one): run it on an otherwise
//! idle machine; the load average before and after is printed. The process
//! ids are printed too, for a profiler. Without `--bench` (`cargo test
//! --benches`) it only says how to run it.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::process::Command;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::Codec;
use ws_messaging_json::Json;

use support::redis::Redis;
use support::remote::{
    build_echo_server, load_average, median, open, paired_ratio, rate, Frames, Peer, Process, Tally, Ws, LIMIT,
};

/// Connections opened at once while a round's clients connect.
const CONNECT_CONCURRENCY: usize = 64;

fn env_number(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?}: {e}")),
    )
}

// ---------------------------------------------------------------------------
// The processes.

/// An echo_server with JSON, no heartbeat pings, in the cluster of `redis`
/// when given.
async fn echo_server(exe: &Path, redis: Option<&str>, name: &str) -> Result<Process, String> {
    let mut command = Command::new(exe);
    command.args(["--port", "0", "--codec", "json", "--ping-interval-ms", "0"]);
    // More options for the nodes, e.g. `--recovery`.
    command.args(std::env::var("WSM_SERVER_ARGS").unwrap_or_default().split_whitespace());
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    Process::spawn(name, command).await
}

/// The nodes of one setup, and the descriptors each holds when idle.
struct Setup {
    name: &'static str,
    nodes: Vec<Process>,
    idle_fds: Vec<usize>,
}

impl Setup {
    async fn start(name: &'static str, exe: &Path, count: usize, redis: Option<&str>) -> Result<Setup, String> {
        let mut nodes = Vec::new();
        for i in 0..count {
            nodes.push(echo_server(exe, redis, &format!("{name}: echo_server {i}")).await?);
        }
        // Its idle descriptors, plus a margin (as benches/remote.rs).
        let idle_fds = nodes
            .iter()
            .map(|n| n.open_fds().map(|fds| fds + 2))
            .collect::<Result<_, _>>()?;
        Ok(Setup { name, nodes, idle_fds })
    }

    fn pids(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.pid().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every node is rid of the previous round's clients.
    async fn settle(&self) -> Result<(), String> {
        for (node, &fds) in self.nodes.iter().zip(&self.idle_fds) {
            node.settle(fds).await?;
        }
        Ok(())
    }

    fn check_alive(&mut self) -> Result<(), String> {
        self.nodes.iter_mut().try_for_each(Process::check_alive)
    }
}

// ---------------------------------------------------------------------------
// CPU accounting (Linux /proc).

/// The CPU time process `pid` (0: this process) has used so far, ns: the
/// sum over its threads of /proc/PID/task/TID/schedstat (whose first field
/// is the time on a CPU, in nanoseconds).
fn cpu_ns(pid: u32) -> u64 {
    let dir = if pid == 0 {
        "/proc/self/task".to_string()
    } else {
        format!("/proc/{pid}/task")
    };
    let Ok(tasks) = std::fs::read_dir(dir) else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU times (ns) of the parts of a setup: its nodes, Redis, this process.
#[derive(Clone, Copy)]
struct Cpu {
    nodes: u64,
    redis: u64,
    clients: u64,
    /// The busy time of the whole machine (/proc/stat), in its clock ticks.
    machine: u64,
}

/// The clock ticks per second of /proc/stat (USER_HZ).
const USER_HZ: f64 = 100.0;

/// The time every core of the machine has spent busy so far, in USER_HZ
/// ticks: the first line of /proc/stat, less idle and iowait.
fn machine_busy() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else { return 0 };
    // cpu user nice system idle iowait irq softirq steal (guest time is
    // also counted in user).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    ticks.iter().sum::<u64>() - ticks.get(3).unwrap_or(&0) - ticks.get(4).unwrap_or(&0)
}

impl Cpu {
    fn now(node_pids: &[u32], redis_pid: u32) -> Cpu {
        Cpu {
            nodes: node_pids.iter().map(|&p| cpu_ns(p)).sum(),
            redis: cpu_ns(redis_pid),
            clients: cpu_ns(0),
            machine: machine_busy(),
        }
    }

    /// Cores used from `self` to `later` over `wall`: nodes, Redis,
    /// clients, and every other process of the machine.
    fn cores(self, later: Cpu, wall: Duration) -> [f64; 4] {
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9 / wall.as_secs_f64();
        let ours = [
            cores(self.nodes, later.nodes),
            cores(self.redis, later.redis),
            cores(self.clients, later.clients),
        ];
        let machine = later.machine.saturating_sub(self.machine) as f64 / USER_HZ / wall.as_secs_f64();
        let others = (machine - ours.iter().sum::<f64>()).max(0.0);
        [ours[0], ours[1], ours[2], others]
    }
}

// ---------------------------------------------------------------------------
// One round: clients, sender, checks.

/// What every client receives.
#[derive(Deserialize)]
struct Shouted<'a> {
    #[serde(borrow)]
    name: &'a str,
    args: (u64, u64, IgnoredAny),
}

/// The state the clients of a round share with the sender.
struct Round {
    epoch: Instant,
    clients: u64,
    shouts: u64,
    /// Deliveries of each shout, by sequence number (1 ..= shouts + 1).
    counts: Vec<AtomicU32>,
    /// Shouts delivered to every client. Each client gets the shouts in
    /// order, so shout `s` is complete no later than shout `s + 1`: this is
    /// also the highest complete sequence number.
    complete: Tally,
    /// Clients that got a warm-up shout.
    warmed: Tally,
    /// Clients connected (or failed to).
    opened: Tally,
    failed: Mutex<Option<String>>,
    failure: Notify,
}

impl Round {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn fail(&self, error: String) {
        self.failed.lock().unwrap().get_or_insert(error);
        self.failure.notify_one();
    }

    fn check(&self) -> Result<(), String> {
        match self.failed.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until `tally` reaches `target`, at most [`LIMIT`], or a client
    /// fails.
    async fn wait(&self, tally: &Tally, target: u64, what: &str) -> Result<(), String> {
        self.check()?;
        tokio::select! {
            reached = tally.reach(target, LIMIT) => reached.map_err(|e| format!("{what}: {e}"))?,
            () = self.failure.notified() => {}
        }
        self.check()
    }
}

/// What one client saw: the latency of each delivery (ns) and the arrival
/// of its last measured one.
type Seen = (Vec<u64>, u64);

/// One client: checks every frame is the next `shouted` and notes when it
/// came, until the end marker (`shouts + 1`). Warm-up shouts (0) may come
/// any number of times before the first measured one.
async fn client(mut ws: Ws, round: &Round) -> Result<Seen, String> {
    let shouts = round.shouts;
    let mut latencies = Vec::with_capacity(shouts as usize);
    let mut last = 0;
    let mut expected = 1u64;
    let mut warmed = false;
    loop {
        let message = match ws.next().await {
            Some(Ok(m)) if m.is_text() || m.is_binary() => m,
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the socket ended".into()),
        };
        let now = round.now();
        let data = message.into_data();
        let frame: Shouted<'_> =
            serde_json::from_slice(&data).map_err(|e| format!("{e} in {:?}", String::from_utf8_lossy(&data)))?;
        if frame.name != "shouted" {
            return Err(format!("unexpected frame {:?}", String::from_utf8_lossy(&data)));
        }
        let (seq, sent, _) = frame.args;
        if seq == 0 && expected == 1 {
            if !warmed {
                warmed = true;
                round.warmed.add();
            }
            continue;
        }
        if seq != expected {
            return Err(format!(
                "got shout {seq} where shout {expected} was due (shouts must come once each, in order)"
            ));
        }
        expected += 1;
        if seq <= shouts {
            latencies.push(now.saturating_sub(sent));
            last = now;
        }
        if round.counts[seq as usize].fetch_add(1, Ordering::AcqRel) + 1 == round.clients as u32 {
            round.complete.add();
        }
        if seq == shouts + 1 {
            return Ok((latencies, last));
        }
    }
}

fn shout(seq: u64, sent: u64) -> Message {
    let mut out = Vec::new();
    Json.encode_message("shout", &(seq, sent, support::small()), None, &mut out)
        .expect("encode a shout");
    Message::text(String::from_utf8(out).expect("JSON is UTF-8"))
}

/// One measurement of one setup.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Deliveries per second.
    rate: f64,
    /// p50, p99 and max delivery latency, ms.
    latency: [f64; 3],
    /// p50 and p99 latency, ms, of the clients on the sender's node, and of
    /// those on the other nodes (NaN with one node).
    split: [[f64; 2]; 2],
    /// Cores used while the shouts ran: nodes, Redis, clients, the other
    /// processes of the machine.
    cpu: [f64; 4],
}

impl Sample {
    /// The CPU time of the nodes and Redis per delivery, µs.
    fn server_us_per_delivery(&self) -> f64 {
        (self.cpu[0] + self.cpu[1]) / self.rate * 1e6
    }
}

/// How much to measure.
#[derive(Clone, Copy, Debug)]
struct Load {
    clients: usize,
    shouts: usize,
    window: usize,
}

/// Connects the clients over the setup's nodes, then the sender to the
/// first node; warms up, shouts, checks and measures.
async fn measure(setup: &Setup, redis_pid: u32, frames: &Arc<Frames>, load: Load) -> Result<Sample, String> {
    setup.settle().await?;
    let round = Arc::new(Round {
        epoch: Instant::now(),
        clients: load.clients as u64,
        shouts: load.shouts as u64,
        counts: (0..load.shouts + 2).map(|_| AtomicU32::new(0)).collect(),
        complete: Tally::default(),
        warmed: Tally::default(),
        opened: Tally::default(),
        failed: Mutex::new(None),
        failure: Notify::new(),
    });
    let addrs: Vec<SocketAddr> = setup.nodes.iter().map(|n| n.addr).collect();
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..load.clients {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        round.check()?;
        let node = i % addrs.len();
        let (round, frames, addr) = (round.clone(), frames.clone(), addrs[node]);
        tasks.spawn(async move {
            let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
            let opened = open(addr, i, Peer::Ours, &frames, config).await;
            round.opened.add();
            drop(permit);
            let result = match opened {
                Ok(ws) => client(ws, &round).await.map(|seen| (node, seen)),
                Err(e) => Err(format!("connect: {e}")),
            };
            result.map_err(|e| {
                let e = format!("client {i} (node {node}): {e}");
                round.fail(e.clone());
                e
            })
        });
    }
    round
        .wait(&round.opened, load.clients as u64, "clients connected")
        .await?;

    let sender = open(addrs[0], 9, Peer::Ours, frames, WebSocketConfig::default()).await?;
    let (mut tx, mut rx) = sender.split();
    // The sender is a client too: it gets its own shouts, and drops them.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });

    let result = async {
        // Warm-up: until every client has had a shout (a client may be
        // registered with its node just after its `connect` came).
        let mut attempts = 0;
        loop {
            tx.send(shout(0, round.now())).await.map_err(|e| e.to_string())?;
            let all = round.wait(&round.warmed, load.clients as u64, "clients warmed up");
            match tokio::time::timeout(Duration::from_secs(1), all).await {
                Ok(warmed) => break warmed?,
                Err(_) if attempts < 10 => attempts += 1,
                Err(_) => {
                    return Err(format!(
                        "{}/{} clients got a warm-up shout after {attempts} of them",
                        round.warmed.get(),
                        load.clients
                    ))
                }
            }
        }

        let node_pids: Vec<u32> = setup.nodes.iter().map(Process::pid).collect();
        let cpu_before = Cpu::now(&node_pids, redis_pid);
        let started = Instant::now();
        let first_sent = round.now();
        let burst = (load.window / 2).max(1);
        let mut sent = 0;
        while sent < load.shouts {
            // At most `window` shouts not yet delivered to every client.
            let complete = (sent + burst).saturating_sub(load.window) as u64;
            round.wait(&round.complete, complete, "shouts delivered").await?;
            let this = burst.min(load.shouts - sent);
            for _ in 0..this {
                sent += 1;
                tx.feed(shout(sent as u64, round.now()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tx.flush().await.map_err(|e| e.to_string())?;
        }
        round
            .wait(&round.complete, load.shouts as u64, "shouts delivered")
            .await?;
        let cpu = cpu_before.cores(Cpu::now(&node_pids, redis_pid), started.elapsed());
        // The end marker: after it, each client hands in what it saw.
        tx.send(shout(load.shouts as u64 + 1, round.now()))
            .await
            .map_err(|e| e.to_string())?;
        round
            .wait(&round.complete, load.shouts as u64 + 1, "the end marker")
            .await?;
        Ok::<_, String>((first_sent, cpu))
    }
    .await;
    drain.abort();
    let (first_sent, cpu) = result?;

    // Latencies on the sender's node and on the others.
    let mut by_node = [Vec::new(), Vec::new()];
    let mut last = 0;
    while let Some(joined) = tokio::time::timeout(LIMIT, tasks.join_next())
        .await
        .map_err(|_| "a client did not finish".to_string())?
    {
        let (node, (seen, arrived)) = joined.map_err(|e| format!("a client task: {e}"))??;
        if seen.len() != load.shouts {
            return Err(format!("a client noted {} of {} shouts", seen.len(), load.shouts));
        }
        by_node[usize::from(node != 0)].extend_from_slice(&seen);
        last = last.max(arrived);
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let at = |sorted: &[u64], q: f64| {
        if sorted.is_empty() {
            f64::NAN
        } else {
            ms(sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)])
        }
    };
    for part in &mut by_node {
        part.sort_unstable();
    }
    let split = [0, 1].map(|k| [at(&by_node[k], 0.50), at(&by_node[k], 0.99)]);
    let mut latencies = by_node.concat();
    latencies.sort_unstable();
    let elapsed = Duration::from_nanos(last.saturating_sub(first_sent));
    Ok(Sample {
        rate: (load.clients * load.shouts) as f64 / elapsed.as_secs_f64(),
        latency: [at(&latencies, 0.50), at(&latencies, 0.99), at(&latencies, 1.0)],
        split,
        cpu,
    })
}

// ---------------------------------------------------------------------------
// Tables.

fn print_tables(load: Load, setups: &[&Setup], samples: &[Vec<Sample>]) {
    let rounds = samples[0].len();
    println!(
        "\n### Broadcast across nodes: {} clients, {} shouts per round, at most {} in flight; medians of {rounds} \
         round{}\n",
        load.clients,
        load.shouts,
        load.window,
        if rounds == 1 { "" } else { "s" }
    );
    println!("| setup | clients per node | deliveries/s | ÷ one node | p50 latency | p99 latency | max latency |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let rates: Vec<Vec<f64>> = samples.iter().map(|s| s.iter().map(|x| x.rate).collect()).collect();
    for (k, (setup, rows)) in setups.iter().zip(samples).enumerate() {
        let latency = |j: usize| median(&mut rows.iter().map(|x| x.latency[j]).collect::<Vec<_>>());
        let nodes = setup.nodes.len();
        println!(
            "| {} | {} | {} | {:.2} | {:.2} ms | {:.2} ms | {:.2} ms |",
            setup.name,
            load.clients.div_ceil(nodes),
            rate(median(&mut rates[k].clone())),
            paired_ratio(&rates[k], &rates[0]),
            latency(0),
            latency(1),
            latency(2),
        );
    }
    if let Some(k) = setups.iter().position(|s| s.nodes.len() > 1) {
        let split =
            |side: usize, j: usize| median(&mut samples[k].iter().map(|x| x.split[side][j]).collect::<Vec<_>>());
        println!("\n{}: latency by where the client is\n", setups[k].name);
        println!("| clients | p50 latency | p99 latency |");
        println!("|---|---:|---:|");
        println!(
            "| on the sender's node (delivered by that node) | {:.2} ms | {:.2} ms |",
            split(0, 0),
            split(0, 1)
        );
        println!(
            "| on the other nodes (through Redis) | {:.2} ms | {:.2} ms |",
            split(1, 0),
            split(1, 1)
        );
    }
    println!("\nCPU while the shouts ran (cores; the machine has {}):\n", cores());
    println!("| setup | nodes | Redis | bench clients | other processes | server CPU per delivery | ÷ one node |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let per_delivery: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| s.iter().map(Sample::server_us_per_delivery).collect())
        .collect();
    for (k, (setup, rows)) in setups.iter().zip(samples).enumerate() {
        let cpu = |j: usize| median(&mut rows.iter().map(|x| x.cpu[j]).collect::<Vec<_>>());
        let redis = if setup.nodes.len() > 1 {
            format!("{:.2}", cpu(1))
        } else {
            "—".into()
        };
        println!(
            "| {} | {:.2} | {redis} | {:.2} | {:.2} | {:.2} µs | {:.2} |",
            setup.name,
            cpu(0),
            cpu(2),
            cpu(3),
            median(&mut per_delivery[k].clone()),
            paired_ratio(&per_delivery[k], &per_delivery[0]),
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster: run it with `cargo bench --bench cluster` (it starts redis-server and server processes)");
        return;
    }
    let quick = std::env::var("WSM_CLUSTER_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let load = Load {
        clients: env_number("WSM_CLUSTER_CLIENTS").unwrap_or(if quick { 90 } else { 300 }),
        shouts: env_number("WSM_CLUSTER_SHOUTS").unwrap_or(if quick { 300 } else { 2_000 }),
        window: env_number("WSM_CLUSTER_WINDOW").unwrap_or(16),
    };
    let rounds = env_number("WSM_CLUSTER_ROUNDS").unwrap_or(if quick { 1 } else { 3 });
    assert!(
        load.clients > 0 && load.shouts > 0 && load.window > 0 && rounds > 0,
        "WSM_CLUSTER_CLIENTS, _SHOUTS, _WINDOW and _ROUNDS must be above 0"
    );
    assert!(load.clients < u32::MAX as usize, "WSM_CLUSTER_CLIENTS: too many");

    let exe = build_echo_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    println!(
        "## ws-messaging: broadcast across nodes through Redis ({} cores; load average before: {})",
        cores(),
        load_average()
    );
    println!("\nserver: {}", exe.display());
    runtime.block_on(async {
        let mut redis = Redis::start(&[]).await.unwrap_or_else(|e| panic!("{e}"));
        let url = redis.url();
        let mut one = Setup::start("one node", &exe, 1, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut three = Setup::start("three nodes + Redis", &exe, 3, Some(&url))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "pids: one node={} three nodes={} redis-server={} (port {})",
            one.pids(),
            three.pids(),
            redis.pid(),
            redis.port
        );
        let frames = Arc::new(Frames::named("json", 1).unwrap_or_else(|e| panic!("{e}")));
        let mut samples = [Vec::new(), Vec::new()];
        for r in 0..rounds {
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let setup = if k == 0 { &one } else { &three };
                let sample = measure(setup, redis.pid(), &frames, load)
                    .await
                    .unwrap_or_else(|e| panic!("round {}, {}: {e}", r + 1, setup.name));
                println!(
                    "round {}, {}: {} deliveries, {}; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (p50 on the \
                     sender's node {:.2} ms, on the others {:.2} ms); cores: nodes {:.2}, Redis {:.2}, clients {:.2}, other \
                     processes {:.2}",
                    r + 1,
                    setup.name,
                    load.clients * load.shouts,
                    rate(sample.rate),
                    sample.latency[0],
                    sample.latency[1],
                    sample.latency[2],
                    sample.split[0][0],
                    sample.split[1][0],
                    sample.cpu[0],
                    sample.cpu[1],
                    sample.cpu[2],
                    sample.cpu[3],
                );
                samples[k].push(sample);
                one.check_alive().unwrap_or_else(|e| panic!("{e}"));
                three.check_alive().unwrap_or_else(|e| panic!("{e}"));
                redis.check_alive().unwrap_or_else(|e| panic!("{e}"));
            }
        }
        print_tables(load, &[&one, &three], &samples);
    });
    println!(
        "\n(took {:.0} s; load average after: {})",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
