//! Rooms, presence and broadcast across `echo_server` nodes, driven by the
//! real npm `ws-messaging@2.0.0` client (tests/interop/multinode.js): one
//! node on its own, three nodes sharing a Redis (`--redis URL`), a node
//! SIGKILLed under its peers, the Redis server killed and restarted under
//! the nodes, and (measured from outside the process) what a node without
//! members in a flooded room reads.
//!
//! ```text
//! cargo test --test multinode
//! ```
//! Needs `node` with `npm ci --prefix tests/interop` done, and
//! `redis-server` (`apt-get install redis-server`); the README's test
//! command provides both.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::peers::{echo_server_path, interop_dir, node_cases, spawn_listening, terminate};
use common::redis::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use ws_messaging::Client;
use ws_messaging_json::Json;

/// The cases of multinode.js every cluster runs; `order` runs on its own.
const CASES: &str = "shout,rooms,join-twice,leave,leave-unjoined,count,tell,tell-unknown";

/// Upper bound for one interactive script step, and for its end.
const SCRIPT_WAIT: Duration = Duration::from_secs(90);

/// One test at a time: each starts several processes, and `count()` and
/// delivery are checked against bounds a loaded 2-core machine could
/// otherwise miss.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An `echo_server` node, in the cluster of `redis` if given.
async fn node(redis: Option<&RedisServer>) -> (Child, String) {
    node_with(redis, &[]).await
}

/// [`node`] with more options.
async fn node_with(redis: Option<&RedisServer>, extra: &[&str]) -> (Child, String) {
    let mut command = Command::new(echo_server_path());
    command.args(["--port", "0"]).args(extra);
    if let Some(redis) = redis {
        command.args(["--redis", &redis.url()]);
    }
    spawn_listening(command).await
}

/// Three nodes sharing `redis`.
async fn cluster(redis: &RedisServer) -> (Vec<Child>, Vec<String>) {
    cluster_with(redis, &[]).await
}

/// [`cluster`] with more options for each node.
async fn cluster_with(redis: &RedisServer, extra: &[&str]) -> (Vec<Child>, Vec<String>) {
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (child, url) = node_with(Some(redis), extra).await;
        children.push(child);
        urls.push(url);
    }
    (children, urls)
}

/// Runs the named multinode.js cases against `urls`; asserts they passed.
async fn cases(urls: &[String], names: &str) {
    let mut args = vec!["multinode.js"];
    args.extend(urls.iter().map(String::as_str));
    args.extend(["--cases", names]);
    node_cases(&interop_dir(), &args).await;
}

/// SIGTERMs every node; each must exit 0.
async fn terminate_all(children: Vec<Child>) {
    for child in children {
        assert!(terminate(child).await.success(), "a node failed on SIGTERM");
    }
}

fn assert_running(children: &mut [Child]) {
    for (i, child) in children.iter_mut().enumerate() {
        let status = child.try_wait().expect("query the node");
        assert!(status.is_none(), "node {} exited: {status:?}", i + 1);
    }
}

/// An interactive multinode.js case: it prints `# QUESTION` lines and
/// waits for an answer line on its stdin.
struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    transcript: String,
}

impl Script {
    fn start(urls: &[String], case: &str) -> Self {
        let mut child = Command::new("node")
            .current_dir(interop_dir())
            .arg("multinode.js")
            .args(urls)
            .args(["--cases", case])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script {
            child,
            stdin,
            lines,
            transcript: String::new(),
        }
    }

    /// The next stdout line, or `None` at the end.
    async fn line(&mut self) -> Option<String> {
        let line = tokio::time::timeout(SCRIPT_WAIT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no output within {SCRIPT_WAIT:?}; so far:\n{}", self.transcript))
            .expect("read the script's output")?;
        println!("{line}");
        self.transcript.push_str(&line);
        self.transcript.push('\n');
        Some(line)
    }

    /// Reads on until the script asks `# question`.
    async fn question(&mut self, question: &str) {
        let wanted = format!("# {question}");
        loop {
            match self.line().await {
                Some(line) if line == wanted => return,
                Some(_) => {}
                None => panic!("the script ended before asking {wanted:?}:\n{}", self.transcript),
            }
        }
    }

    async fn answer(&mut self, answer: &str) {
        self.stdin
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .expect("answer the script");
    }

    /// Reads to the end; asserts the case passed and the script exited 0.
    async fn finish(mut self) {
        while self.line().await.is_some() {}
        let status = tokio::time::timeout(SCRIPT_WAIT, self.child.wait())
            .await
            .expect("the script exits")
            .expect("wait for the script");
        assert!(
            status.success() && self.transcript.lines().any(|l| l == "1 passed, 0 failed"),
            "the case failed ({status}):\n{}",
            self.transcript
        );
    }
}

#[tokio::test]
async fn one_node_without_redis() {
    let _serial = SERIAL.lock().await;
    let (child, url) = node(None).await;
    let urls = [url];
    cases(&urls, CASES).await;
    cases(&urls, "order").await;
    terminate_all(vec![child]).await;
}

#[tokio::test]
async fn three_nodes_sharing_a_redis() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    let (children, urls) = cluster(&redis).await;
    cases(&urls, CASES).await;
    cases(&urls, "order").await;
    terminate_all(children).await;
}

#[tokio::test]
async fn three_nodes_sharing_a_redis_with_recovery_on() {
    // JavaScript clients do not ask for the extension; every send still
    // goes through the Redis logs (the sender's node delivers it when it
    // comes back), and the same surface and order hold.
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    let (children, urls) = cluster_with(&redis, &["--recovery"]).await;
    cases(&urls, CASES).await;
    cases(&urls, "order").await;
    terminate_all(children).await;
}

#[tokio::test]
async fn three_nodes_sharing_a_redis_cluster() {
    let _serial = SERIAL.lock().await;
    let redis = common::redis::RedisCluster::start(3, 0).await;
    let nodes = redis.addresses().join(",");
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let mut command = Command::new(echo_server_path());
        command.args(["--port", "0", "--redis-cluster", &nodes]);
        let (child, url) = spawn_listening(command).await;
        children.push(child);
        urls.push(url);
    }
    cases(&urls, CASES).await;
    cases(&urls, "order").await;
    terminate_all(children).await;
}

#[tokio::test]
async fn a_sigkilled_node_is_forgotten_and_the_others_carry_on() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    let (mut children, urls) = cluster(&redis).await;
    let mut script = Script::start(&urls, "survive-kill");
    script.question("kill node 3").await;
    let mut dead = children.pop().unwrap();
    dead.kill().await.expect("SIGKILL node 3");
    script.answer("killed").await;
    script.finish().await;
    // New clients on the survivors: the whole surface still works there.
    assert_running(&mut children);
    cases(&urls[..2], CASES).await;
    terminate_all(children).await;
}

#[tokio::test]
async fn nodes_keep_their_clients_through_a_redis_restart() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisServer::start().await;
    let (mut children, urls) = cluster(&redis).await;
    let port = redis.port();
    let mut script = Script::start(&urls, "redis-outage");
    script.question("kill redis").await;
    redis.kill().await;
    script.answer("redis-killed").await;
    script.question("restart redis").await;
    assert_running(&mut children);
    redis.restart().await;
    assert_eq!(redis.port(), port);
    script.answer("redis-restarted").await;
    script.finish().await;
    // New clients after the restart: shouts reach every node's clients.
    assert_running(&mut children);
    cases(&urls, "shout").await;
    terminate_all(children).await;
}

/// Bytes the process `pid` has received on its open TCP sockets (Redis's
/// and its clients'), as the kernel counts them from outside the process
/// (`ss -tinp`, iproute2).
fn bytes_received(pid: u32) -> u64 {
    let output = std::process::Command::new("ss")
        .args(["-tinpH"])
        .output()
        .expect("run ss (apt-get install iproute2)");
    assert!(output.status.success(), "ss failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let owner = format!("pid={pid},");
    let mut total = 0;
    let mut ours = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // A socket's line; its details follow on the next.
            ours = line.contains(&owner);
        } else if ours {
            total += line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("bytes_received:"))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// A client of the node at `url` that joined `room` and forwards the
/// payloads of its `room` events.
async fn member(url: &str, room: &str) -> (Client<Json>, mpsc::UnboundedReceiver<String>) {
    let client = Client::<Json>::builder(url.to_string())
        .auth(&serde_json::json!({ "token": "secret" }))
        .build()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    client.on("room", move |(_, payload): (String, String)| {
        let _ = tx.send(payload);
    });
    tokio::time::timeout(SCRIPT_WAIT, client.connect())
        .await
        .expect("connect in time")
        .expect("connect");
    let joined: bool = client.invoke("join", (room,)).await.expect("join");
    assert!(joined);
    (client, rx)
}

/// Floods a room of node A's while node B has members only elsewhere:
/// node B's process receives next to none of it (the kernel's counters).
async fn a_quiet_node_reads_next_to_nothing_of_a_flood(args: &[&str]) {
    const FLOOD: usize = 2_000;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut command = Command::new(echo_server_path());
        command.args(["--port", "0"]).args(args);
        nodes.push(spawn_listening(command).await);
    }
    let (busy, mut busy_rx) = member(&nodes[0].1, "busy").await;
    let (_quiet, mut quiet_rx) = member(&nodes[1].1, "quiet").await;
    let quiet_pid = nodes[1].0.id().expect("node B's pid");
    let payload = "x".repeat(1_000);
    let before = bytes_received(quiet_pid);
    for _ in 0..FLOOD {
        busy.send("to-room", ("busy", payload.as_str())).await.expect("send");
    }
    for _ in 0..FLOOD {
        let got = tokio::time::timeout(SCRIPT_WAIT, busy_rx.recv())
            .await
            .expect("the flood arrives");
        assert_eq!(got.as_deref(), Some(payload.as_str()));
    }
    // Sent after the flood: whatever node B was sent of it came before.
    busy.send("to-room", ("quiet", "after")).await.expect("send");
    let got = tokio::time::timeout(SCRIPT_WAIT, quiet_rx.recv())
        .await
        .expect("in time");
    assert_eq!(got.as_deref(), Some("after"));
    let read = bytes_received(quiet_pid) - before;
    let flood = (FLOOD * payload.len()) as u64;
    assert!(
        read < flood / 20,
        "node B read {read} bytes during a {flood}-byte flood"
    );
    terminate_all(nodes.into_iter().map(|(child, _)| child).collect()).await;
}

#[tokio::test]
async fn on_a_redis_a_node_without_members_reads_next_to_nothing_of_a_flooded_room() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    a_quiet_node_reads_next_to_nothing_of_a_flood(&["--redis", &redis.url()]).await;
}

#[tokio::test]
async fn on_a_redis_cluster_a_node_without_members_reads_next_to_nothing_of_a_flooded_room() {
    let _serial = SERIAL.lock().await;
    let redis = common::redis::RedisCluster::start(3, 0).await;
    a_quiet_node_reads_next_to_nothing_of_a_flood(&["--redis-cluster", &redis.addresses().join(",")]).await;
}
