//! What each node of a cluster reads from Redis, against what its clients
//! receive: rooms routed by interest (a node hears a room only while it has
//! members in it) beside one channel for everything.
//!
//! The bench starts its own `redis-server` (a free loopback port, no
//! persistence) and, in this process, `NODES` servers with the Redis
//! adapter. There are `ROOMS` rooms; node `i` has one client (a real
//! WebSocket client over loopback) in each room of its share
//! (`ROOMS / NODES` of them, none shared). Node 0's server then sends
//! `EVENTS` events round-robin over the rooms, as fast as the adapter takes
//! them, and the bench waits until every client has its events (each
//! exactly once, checked). Per setup:
//! - what each node read from Redis (`RedisAdapter::received`, bytes of
//!   channel messages) over the bytes of the events for its own rooms (the
//!   size of one room's event on the bus, measured, times their number):
//!   1.0 is a node reading exactly what its clients need;
//! - deliveries per second, from the first send to the last delivery.
//!
//! Routed rooms run on one Redis server and on a Redis Cluster of three
//! masters (sharded pub/sub; three more `redis-server` processes, made a
//! cluster with `redis-cli --cluster create`).
//!
//! ```text
//! cargo bench --bench interest
//! WSM_INTEREST_NODES=8 WSM_INTEREST_ROOMS=1000 WSM_INTEREST_EVENTS=16000   # the defaults
//! WSM_INTEREST_GROUPS=64   # RedisConfig::room_groups, its default
//! ```
//! Needs `redis-server` and `redis-cli` 7+ on the PATH (`apt-get install
//! redis-server`).
//! Without `--bench` (`cargo test --benches`) it only says how to run it.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Command;
use ws_messaging::{Client, Endpoint, Server};
use ws_messaging_json::Json;
use ws_messaging_redis::{RedisAdapter, RedisConfig};

mod support;

use support::redis::Redis;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("the interest bench runs with `cargo bench --bench interest`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(error) = runtime.block_on(run()) {
        eprintln!("interest bench failed: {error}");
        std::process::exit(1);
    }
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run() -> Result<(), String> {
    let nodes = setting("WSM_INTEREST_NODES", 8).max(2);
    let rooms = setting("WSM_INTEREST_ROOMS", 1000).max(nodes);
    let events = setting("WSM_INTEREST_EVENTS", 16_000);
    let redis = Redis::start(&[]).await?;
    let cluster = Cluster::start(3).await?;
    let one = Backend::Server(redis.url());
    let three = Backend::Cluster(cluster.urls());
    println!("### Room traffic per node: {nodes} nodes, {rooms} rooms (each node with members in {} of them), {events} events\n", rooms / nodes);
    println!("| setup | read ÷ needed, per node (min / median / max) | bytes read per node (median) | deliveries/s |");
    println!("|---|---:|---:|---:|");
    for (name, backend, routed) in [
        ("rooms routed by interest, one Redis", &one, true),
        ("rooms routed by interest, Redis Cluster (3 masters)", &three, true),
        ("one channel for everything, one Redis", &one, false),
    ] {
        let result = setup(backend, name, routed, nodes, rooms, events).await?;
        println!(
            "| {name} | {:.2} / {:.2} / {:.2} | {} | {:.0}k/s |",
            result.ratios[0],
            result.ratios[result.ratios.len() / 2],
            result.ratios[result.ratios.len() - 1],
            result.median_read,
            result.rate / 1000.0
        );
    }
    Ok(())
}

struct Outcome {
    /// Each node's read ÷ needed, sorted.
    ratios: Vec<f64>,
    median_read: u64,
    rate: f64,
}

/// Where the nodes' Redis is.
enum Backend {
    /// One server's URL.
    Server(String),
    /// The URLs of a cluster's nodes.
    Cluster(Vec<String>),
}

/// A server with the Redis adapter, and a `join` procedure.
async fn node(backend: &Backend, prefix: &str, routed: bool) -> Result<(Server<Json>, RedisAdapter<Json>), String> {
    let mut config = RedisConfig::default().prefix(prefix).route_rooms(routed);
    if let Ok(Ok(groups)) = std::env::var("WSM_INTEREST_GROUPS").map(|g| g.parse()) {
        config = config.room_groups(groups);
    }
    let adapter = match backend {
        Backend::Server(url) => RedisAdapter::<Json>::with_config(url, config).await,
        Backend::Cluster(urls) => RedisAdapter::<Json>::cluster(urls, config).await,
    }
    .map_err(|e| format!("connect to redis: {e}"))?;
    let server = Server::<Json>::builder()
        .adapter(adapter.clone())
        .bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    server
        .register("join", |me: Endpoint<Json>, (room,): (String,)| async move {
            Ok(me.join(&room))
        })
        .map_err(|e| e.to_string())?;
    Ok((server, adapter))
}

async fn setup(
    backend: &Backend,
    name: &str,
    routed: bool,
    nodes: usize,
    rooms: usize,
    events: usize,
) -> Result<Outcome, String> {
    let prefix = format!("interest-{routed}");
    let mut servers = Vec::new();
    for _ in 0..nodes {
        servers.push(node(backend, &prefix, routed).await?);
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while servers.iter().any(|(_, a)| a.nodes().len() < nodes - 1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| "the nodes did not find each other".to_string())?;
    // One client per room, node i holding rooms i, i + nodes, i + 2 nodes…
    let delivered = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    let per_room = events / rooms;
    for room in 0..rooms {
        let (server, _) = &servers[room % nodes];
        let url = format!("ws://{}", server.local_addr().ok_or("no address")?);
        let client = Client::<Json>::builder(url)
            .connect()
            .await
            .map_err(|e| format!("{name}: connect: {e}"))?;
        let next = Arc::new(AtomicU64::new(0));
        let counter = delivered.clone();
        client.on("ev", move |(room_of, seq): (u64, u64)| {
            // Each room's events arrive once, in order.
            assert_eq!(room_of as usize, room, "an event of another room");
            assert_eq!(
                next.fetch_add(1, Ordering::Relaxed),
                seq,
                "room {room}: out of order or twice"
            );
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let joined: bool = client
            .invoke("join", (format!("room-{room}"),))
            .await
            .map_err(|e| e.to_string())?;
        assert!(joined);
        clients.push(client);
    }
    // The size of one room's event on the bus: one event to a room of
    // node 1, read by node 1 alone.
    let before: Vec<u64> = servers.iter().map(|(_, a)| a.received().1).collect();
    let sender = &servers[0].0;
    let probe = delivered.load(Ordering::Relaxed);
    sender
        .to("room-1")
        .emit("ev", (1u64, 0u64))
        .map_err(|e| e.to_string())?;
    wait(&delivered, probe + 1).await?;
    let one = servers[1].1.received().1 - before[1];
    // Undo the probe's count in room 1.
    drop(clients.remove(1));
    let rooms_left: Vec<usize> = (0..rooms).filter(|r| *r != 1).collect();
    let before: Vec<u64> = servers.iter().map(|(_, a)| a.received().1).collect();
    let start = Instant::now();
    let mut sent = 0u64;
    for seq in 0..per_room as u64 {
        for room in &rooms_left {
            sender
                .to(format!("room-{room}"))
                .emit("ev", (*room as u64, seq))
                .map_err(|e| format!("{name}: emit: {e}"))?;
            sent += 1;
            if sent % 4096 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
    wait(&delivered, probe + 1 + sent).await?;
    let elapsed = start.elapsed();
    let mut ratios = Vec::new();
    let mut reads = Vec::new();
    for (i, (_, adapter)) in servers.iter().enumerate() {
        let read = adapter.received().1 - before[i];
        let own_rooms = rooms_left.iter().filter(|r| *r % nodes == i).count() as u64;
        let needed = own_rooms * per_room as u64 * one;
        ratios.push(read as f64 / needed.max(1) as f64);
        reads.push(read);
    }
    ratios.sort_by(f64::total_cmp);
    reads.sort_unstable();
    for (server, _) in &servers {
        server.close(ws_messaging::CloseCode::GOING_AWAY).await;
    }
    Ok(Outcome {
        ratios,
        median_read: reads[reads.len() / 2],
        rate: sent as f64 / elapsed.as_secs_f64(),
    })
}

async fn wait(counter: &AtomicU64, n: u64) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(120), async {
        while counter.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .map_err(|_| format!("stuck at {} of {n} deliveries", counter.load(Ordering::Relaxed)))
}

/// A Redis Cluster of `redis-server` children, masters only.
struct Cluster {
    nodes: Vec<Redis>,
    dir: std::path::PathBuf,
}

impl Cluster {
    async fn start(masters: usize) -> Result<Cluster, String> {
        let dir = std::env::temp_dir().join(format!("wsm-interest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("make {}: {e}", dir.display()))?;
        let dir_arg = dir.to_string_lossy().to_string();
        let mut nodes = Vec::new();
        for _ in 0..masters {
            let config_file = format!("nodes-{}.conf", nodes.len());
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config_file,
                "--dir",
                &dir_arg,
            ];
            nodes.push(Redis::start(&extra).await?);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .await
            .map_err(|e| format!("run redis-cli (apt-get install redis-server): {e}"))?;
        if !created.success() {
            return Err(format!("redis-cli --cluster create failed: {created}"));
        }
        let cluster = Cluster { nodes, dir };
        // Every node sees every slot served before the nodes connect.
        tokio::time::timeout(Duration::from_secs(30), async {
            for node in &cluster.nodes {
                loop {
                    let info = Command::new("redis-cli")
                        .args(["-p", &node.port.to_string(), "CLUSTER", "INFO"])
                        .output()
                        .await
                        .map_err(|e| e.to_string())?;
                    if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|_| "the cluster did not come up in 30 s".to_string())??;
        Ok(cluster)
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
