//! The Redis adapter and emitter on a Redis Cluster (sharded pub/sub):
//! nodes hear only their rooms, and a master's failover or a slot move
//! loses the room's subscription for a moment, never its order, never a
//! duplicate. Needs `redis-server`
//! and `redis-cli` 7+ (`cargo xtask ci` installs them).

mod common;

use std::time::Duration;

use common::redis::RedisCluster;
use common::rooms::*;
use common::*;
use serde_json::Value;
use tokio::sync::mpsc;
use ws_messaging::Server;
use ws_messaging_json::Json;
use ws_messaging_redis::{RedisAdapter, RedisConfig, RedisEmitter};

/// One test at a time: each runs a cluster of redis-server processes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Node {
    server: Server<Json>,
    adapter: RedisAdapter<Json>,
}

async fn node(cluster: &RedisCluster, prefix: &str) -> Node {
    let config = RedisConfig::default()
        .prefix(prefix)
        .liveness(Duration::from_millis(100), Duration::from_millis(1000));
    let adapter = RedisAdapter::<Json>::cluster(&cluster.urls(), config)
        .await
        .expect("connect to the test cluster");
    let server = start(
        Server::<Json>::builder()
            .adapter(adapter.clone())
            .on_connection(|_, _: Value| async move { Ok(()) }),
    )
    .await;
    Node { server, adapter }
}

async fn pair(cluster: &RedisCluster, prefix: &str) -> (Node, Node) {
    let (a, b) = (node(cluster, prefix).await, node(cluster, prefix).await);
    tokio::time::timeout(Duration::from_secs(10), async {
        while a.adapter.nodes().len() != 1 || b.adapter.nodes().len() != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the nodes hear each other");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_node_without_members_in_a_flooded_room_reads_none_of_it() {
    const FLOOD: usize = 1_000;
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0).await;
    let (a, b) = pair(&cluster, "sharded").await;
    let mut busy = peer(&a.server).await;
    assert!(busy.client.invoke::<_, bool>("join", ("busy",)).await.unwrap());
    let mut quiet = peer(&b.server).await;
    assert!(quiet.client.invoke::<_, bool>("join", ("quiet",)).await.unwrap());
    let (_, before) = b.adapter.received();
    let text = "x".repeat(100);
    for _ in 0..FLOOD {
        a.server.to("busy").emit("news", (&text,)).unwrap();
    }
    for _ in 0..FLOOD {
        assert_eq!(recv(&mut busy.news).await, text);
    }
    // Through the other shards, whatever node B was sent has come by now:
    // a send on every shard's channels after the flood.
    a.server.to("quiet").emit("news", ("after",)).unwrap();
    assert_eq!(recv(&mut quiet.news).await, "after");
    let read = b.adapter.received().1 - before;
    let flood = (FLOOD * text.len()) as u64;
    assert!(read < flood / 20, "node B read {read} bytes of a {flood}-byte flood");
    // A client of node B joins: node B hears the room, on its shard.
    assert!(quiet.client.invoke::<_, bool>("join", ("busy",)).await.unwrap());
    a.server.to("busy").emit("news", ("both",)).unwrap();
    assert_eq!(recv(&mut quiet.news).await, "both");
    // Broadcasts and sends by id still reach every node.
    a.server.broadcast("news", ("all",)).unwrap();
    assert_eq!(recv(&mut quiet.news).await, "all");
    a.server.send_to(&quiet.id, "news", ("you",)).unwrap();
    assert_eq!(recv(&mut quiet.news).await, "you");
    // A process with no clients sends through the cluster too.
    let emitter = RedisEmitter::cluster(&cluster.urls(), Json, &RedisConfig::default().prefix("sharded"))
        .await
        .expect("an emitter on the test cluster");
    emitter.to("quiet").emit("news", ("emitted",)).await.unwrap();
    assert_eq!(recv(&mut quiet.news).await, "emitted");
    emitter.everyone().emit("news", ("to all",)).await.unwrap();
    assert_eq!(recv(&mut quiet.news).await, "to all");
    emitter
        .to_connection(&quiet.id)
        .emit("news", ("to you",))
        .await
        .unwrap();
    assert_eq!(recv(&mut quiet.news).await, "to you");
}

/// What happens to the room's shard mid-stream.
enum Disturbance {
    /// Its master is SIGKILLed; its replica takes over within the node
    /// timeout.
    Failover,
    /// Its slot moves to another master.
    SlotMove,
}

/// Streams 600 numbered events from node A to a member of a room on node
/// B, disturbing the room's shard after the 100th arrives; asserts they
/// came in order, none twice, and that the stream went on to its end.
async fn stream_through(cluster: &mut RedisCluster, prefix: &str, disturbance: Disturbance) {
    let (a, b) = pair(cluster, prefix).await;
    let member = peer(&b.server).await;
    assert!(member.client.invoke::<_, bool>("join", ("room",)).await.unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    member.client.on("count", move |(n,): (u64,)| {
        let _ = tx.send(n);
    });
    let sender = a.server.clone();
    let sending = tokio::spawn(async move {
        // While the node's Redis connections are renewed, sends are
        // refused (not queued): those are sent again.
        let mut n = 0u64;
        while n < 600 {
            if sender.to("room").emit("count", (n,)).is_ok() {
                n += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut got: Vec<u64> = Vec::new();
    let channel = RedisConfig::default().prefix(prefix).room_channel("room");
    let mut disturbed = false;
    while got.last() != Some(&599) {
        let n = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing after {:?}", got.last()))
            .expect("the member's client is alive");
        if let Some(last) = got.last() {
            assert!(n > *last, "{n} after {last}: out of order or twice");
        }
        got.push(n);
        if got.len() == 100 {
            let master = cluster.master_of(&channel).await;
            match disturbance {
                Disturbance::Failover => cluster.kill(master).await,
                Disturbance::SlotMove => {
                    let to = (master + 1) % 3;
                    cluster.move_slot(&channel, to).await;
                    assert_eq!(cluster.master_of(&channel).await, to);
                }
            }
            disturbed = true;
        }
    }
    sending.await.unwrap();
    assert!(disturbed);
    // What was sent once the subscription followed arrived: the last
    // ones all came (what was published in the gap may be lost: pub/sub
    // is at most once).
    assert!(
        got.ends_with(&(590..600).collect::<Vec<_>>()),
        "got {} of 600",
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_rooms_master_keeps_order_and_delivers_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, 1).await;
    stream_through(&mut cluster, "failover", Disturbance::Failover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_move_keeps_the_rooms_subscription_order_and_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, 0).await;
    stream_through(&mut cluster, "moved", Disturbance::SlotMove).await;
}
