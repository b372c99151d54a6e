//! A `redis-server` of its own for a test: a free loopback port, no
//! persistence, killed when dropped; SIGKILL and restart on the same port
//! for outage tests. Needs `redis-server` on the PATH (`apt-get install
//! redis-server`; `cargo xtask ci` installs it).

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// How long a starting `redis-server` may take to answer `PING`.
const READY: Duration = Duration::from_secs(10);

/// A running `redis-server` on 127.0.0.1.
#[derive(Debug)]
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a `redis-server` on a free loopback port and waits until it
    /// answers `PING`.
    pub(crate) async fn start() -> Self {
        // The port is free when probed; another process may take it before
        // redis-server binds it, so a failed start tries another one.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = {
                let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
                probe.local_addr().unwrap().port()
            };
            let mut server = RedisServer { port, child: None };
            match server.spawn_ready().await {
                Ok(()) => return server,
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!("redis-server did not start: {failures:?}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILLs the server and waits for its exit.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL redis-server");
        }
    }

    /// Starts the server again on the same port (killing it first if it
    /// still runs) and waits until it answers `PING`. Its data is gone.
    pub(crate) async fn restart(&mut self) {
        self.kill().await;
        if let Err(e) = self.spawn_ready().await {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// Stalls the server for `seconds` (`DEBUG SLEEP`: it answers no one,
    /// accepts no connection, loses nothing); returns when it answers again.
    pub(crate) async fn stall(&self, seconds: u32) {
        let seconds = seconds.to_string();
        let command = format!(
            "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n${}\r\n{seconds}\r\n",
            seconds.len()
        );
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(command.as_bytes()).await?;
            let mut reply = [0u8; 5];
            stream.read_exact(&mut reply).await?;
            Ok::<_, std::io::Error>(reply)
        };
        let limit = Duration::from_secs(seconds.parse::<u64>().unwrap() + 10);
        let reply = tokio::time::timeout(limit, exchange)
            .await
            .expect("DEBUG SLEEP answered in time")
            .expect("DEBUG SLEEP exchange");
        assert_eq!(&reply, b"+OK\r\n", "DEBUG SLEEP refused");
    }

    async fn spawn_ready(&mut self) -> Result<(), String> {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--loglevel", "warning", "--protected-mode", "yes"])
            // `DEBUG SLEEP` from loopback, for stall tests (Redis 7+).
            .args(["--enable-debug-command", "local"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server is not installed: `apt-get install redis-server` (`cargo xtask ci` installs it)")
            }
            Err(e) => panic!("start redis-server: {e}"),
        };
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("redis-server exited with {status}"));
            }
            if ping(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(format!("no answer to PING within {READY:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether `PING` on 127.0.0.1:`port` is answered with `+PONG` within 1 s.
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Some(true))
    )
}

/// A TCP proxy on another loopback port in front of a [`RedisServer`]:
/// [`freeze`](Self::freeze) holds what the connections open at that moment
/// send towards Redis (a path that went slow), while connections opened
/// later pass freely; [`thaw`](Self::thaw) lets the held bytes go.
pub(crate) struct Proxy {
    port: u16,
    gates: std::sync::Arc<std::sync::Mutex<Vec<tokio::sync::watch::Sender<bool>>>>,
    /// How many chunks wait at a closed gate or are being written.
    held: tokio::sync::watch::Receiver<usize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `redis`.
    pub(crate) async fn start(redis: &RedisServer) -> Self {
        use std::sync::{Arc, Mutex};
        use tokio::sync::watch;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let upstream = redis.port();
        let gates: Arc<Mutex<Vec<watch::Sender<bool>>>> = Arc::default();
        let (held_tx, held) = watch::channel(0usize);
        let held_tx = Arc::new(held_tx);
        let accept = {
            let gates = gates.clone();
            tokio::spawn(async move {
                let mut links = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        continue;
                    };
                    let (gate, mut open) = watch::channel(true);
                    gates.lock().unwrap().push(gate);
                    let held = held_tx.clone();
                    links.spawn(async move {
                        let (mut client_read, mut client_write) = client.into_split();
                        let (mut server_read, mut server_write) = server.into_split();
                        let up = async {
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let n = match client_read.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                let _held = Held::new(&held);
                                let passed = open.wait_for(|open| *open).await.is_ok()
                                    && server_write.write_all(&buf[..n]).await.is_ok();
                                if !passed {
                                    return;
                                }
                            }
                        };
                        let down = tokio::io::copy(&mut server_read, &mut client_write);
                        tokio::select! {
                            () = up => {}
                            _ = down => {}
                        }
                    });
                }
            })
        };
        Proxy {
            port,
            gates,
            held,
            accept,
        }
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Holds, from now on, what every connection open now sends to Redis.
    pub(crate) fn freeze(&self) {
        for gate in self.gates.lock().unwrap().iter() {
            gate.send_replace(false);
        }
    }

    /// Lets the held bytes go; returns once they were written to Redis (or
    /// Redis had closed their connection).
    pub(crate) async fn thaw(&mut self) {
        for gate in self.gates.lock().unwrap().iter() {
            gate.send_replace(true);
        }
        tokio::time::timeout(READY, self.held.wait_for(|held| *held == 0))
            .await
            .expect("the held bytes are written in time")
            .expect("the proxy runs");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Counts one held chunk while it lives (also when its task is dropped).
struct Held<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Held<'a> {
    fn new(count: &'a tokio::sync::watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Held(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// A Redis Cluster of `redis-server` processes on free loopback ports
/// (`redis-cli --cluster create`), masters first then their replicas;
/// every process killed when dropped. Needs `redis-server` and
/// `redis-cli` 7 or later on the PATH.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// `masters` masters with `replicas` replicas each, the cluster's
    /// slots all served, each node answering with `cluster_state:ok`.
    pub(crate) async fn start(masters: usize, replicas: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("ws-messaging-cluster-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's files");
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let mut node = None;
            for _ in 0..5 {
                let port = {
                    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
                    probe.local_addr().unwrap().port()
                };
                let mut server = RedisServer { port, child: None };
                if server.spawn_cluster_node(&dir).await.is_ok() {
                    node = Some(server);
                    break;
                }
            }
            nodes.push(node.expect("a cluster node started"));
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .await;
        match created {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("redis-cli --cluster create failed: {status}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-cli is not installed: `apt-get install redis-server` (`cargo xtask ci` installs it)")
            }
            Err(e) => panic!("run redis-cli: {e}"),
        }
        let cluster = RedisCluster { nodes, dir };
        for node in 0..cluster.nodes.len() {
            cluster.until_ok(node).await;
        }
        cluster
    }

    /// `HOST:PORT` of every node, masters first.
    pub(crate) fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect()
    }

    /// `redis://HOST:PORT` of every node.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// SIGKILLs node `index`.
    pub(crate) async fn kill(&mut self, index: usize) {
        self.nodes[index].kill().await;
    }

    /// The node serving `key`'s slot as its master, by index, as the
    /// live nodes see it.
    pub(crate) async fn master_of(&self, key: &[u8]) -> usize {
        let slot = self.keyslot(key).await;
        let live = self.nodes.iter().position(|n| n.child.is_some()).expect("a live node");
        // `ID HOST:PORT@BUS FLAGS MASTER PING PONG EPOCH STATE SLOTS...`
        for line in self.cli(live, &["CLUSTER", "NODES"]).await.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.split('-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(from)), Some(Ok(to))) => (from..=to).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1]
                    .split('@')
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .expect("a node's port");
                return self.nodes.iter().position(|n| n.port == port).expect("one of ours");
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// Moves `key`'s slot from its master to master `to`, as a resharding
    /// does (no keys to carry: channels are not keys).
    pub(crate) async fn move_slot(&self, key: &[u8], to: usize) {
        let slot = self.keyslot(key).await.to_string();
        let from = self.master_of(key).await;
        assert_ne!(from, to, "the slot is on node {to} already");
        let from_id = self.cli(from, &["CLUSTER", "MYID"]).await.trim().to_string();
        let to_id = self.cli(to, &["CLUSTER", "MYID"]).await.trim().to_string();
        for (node, args) in [
            (to, ["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]),
            (from, ["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]),
            (to, ["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]),
            (from, ["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]),
        ] {
            let answer = self.cli(node, &args).await;
            assert_eq!(answer.trim(), "OK", "{args:?} on node {node}: {answer}");
        }
    }

    /// Waits until node `index` (when it runs) says `cluster_state:ok`.
    pub(crate) async fn until_ok(&self, index: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self.cli(index, &["CLUSTER", "INFO"]).await;
            if info.contains("cluster_state:ok") {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster is not ok: {info}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn keyslot(&self, key: &[u8]) -> u16 {
        let key = String::from_utf8_lossy(key).to_string();
        let live = self.nodes.iter().position(|n| n.child.is_some()).expect("a live node");
        self.cli(live, &["CLUSTER", "KEYSLOT", &key])
            .await
            .trim()
            .parse()
            .expect("a slot")
    }

    /// `redis-cli -p PORT ARGS...` on node `index`: its output.
    async fn cli(&self, index: usize, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.nodes[index].port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).to_string()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
    hasher.finish()
}

impl RedisServer {
    /// Starts a cluster-enabled node whose files go in `dir`.
    async fn spawn_cluster_node(&mut self, dir: &std::path::Path) -> Result<(), String> {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            // Replicas in sync at once, and allowed to take over whatever
            // their data's age: a failover within seconds.
            .args([
                "--repl-diskless-sync-delay",
                "0",
                "--cluster-replica-validity-factor",
                "0",
            ])
            .args(["--cluster-config-file", &format!("nodes-{}.conf", self.port)])
            .arg("--dir")
            .arg(dir)
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server is not installed: `apt-get install redis-server` (`cargo xtask ci` installs it)")
            }
            Err(e) => return Err(format!("start redis-server: {e}")),
        };
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("redis-server exited with {status}"));
            }
            if ping(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(format!("no answer to PING within {READY:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
