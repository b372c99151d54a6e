//! The Redis adapter on a Redis Cluster (sharded pub/sub): nodes hear only
//! their rooms, and a master's failover loses the room's subscriptions
//! for a moment, never its order, never a duplicate. Needs `redis-server`
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
use ws_messaging_redis::{RedisAdapter, RedisConfig};

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_rooms_master_keeps_order_and_delivers_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, 1).await;
    let (a, b) = pair(&cluster, "failover").await;
    let member = peer(&b.server).await;
    assert!(member.client.invoke::<_, bool>("join", ("room",)).await.unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    member.client.on("count", move |(n,): (u64,)| {
        let _ = tx.send(n);
    });
    // A steady stream to the room from node A.
    let sender = a.server.clone();
    let sending = tokio::spawn(async move {
        let mut n = 0u64;
        let mut refused = 0u64;
        loop {
            match sender.to("room").emit("count", (n,)) {
                Ok(_) => n += 1,
                Err(_) => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n >= 600 {
                return (n, refused);
            }
        }
    });
    let mut got: Vec<u64> = Vec::new();
    let mut killed = false;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing after {:?}", got.last()));
        let Some(n) = next else { break };
        if let Some(last) = got.last() {
            assert!(n > *last, "{n} after {last}: out of order or twice");
        }
        got.push(n);
        if got.len() == 100 && !killed {
            // The master of the room's channel dies; its replica takes
            // over within the node timeout.
            let master = cluster.master_of(b"failover#room#room").await;
            cluster.kill(master).await;
            killed = true;
        }
        if n == 599 {
            break;
        }
    }
    let (sent, refused) = sending.await.unwrap();
    assert_eq!(sent, 600);
    assert!(killed);
    // What was sent after the failover arrived: the last ones all came.
    assert!(
        got.ends_with(&(590..600).collect::<Vec<_>>()),
        "{refused} refused; got {} of 600",
        got.len()
    );
}
