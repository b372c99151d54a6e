//! Connection scale and slow consumers, measured from outside the server
//! process: the `echo_server` example runs as a child process, its memory is
//! read from /proc/PID/status, and the clients are raw WebSocket peers in this
//! process (loopback only, source addresses 127.0.0.2, 127.0.0.3, ...).
//!
//! - **idle**: N idle authenticated JSON connections (default 50,000) that
//!   answer the server's pings; the server's RSS per connection at 10,000 and
//!   at N (over a baseline taken with one connection), then after every
//!   client has gone (is the memory given back?).
//! - **stalled reader**: client S authenticates and never reads its socket
//!   again, R reads everything, X sends 5,000 `shout` events of 16 KiB each as
//!   fast as its socket allows; the server's RSS before and at its peak
//!   (sampled every 50 ms), how long R takes to get the 5,000 `shouted`
//!   events, and what the server did with S (close code, after how long).
//!
//! ```text
//! cargo bench --bench connections
//! WSM_CONNECTIONS=10000 cargo bench --bench connections   # idle scale
//! WSM_SCENARIO=idle|stalled                                # one scenario only
//! WSM_PING_INTERVAL_MS=5000   # the server's ping interval in the idle scenario (0: no pings; timeout 10 s)
//! WSM_CONCURRENCY=500         # connections being opened at once
//! WSM_SERVER_ARGS=--recovery  # more echo_server options (space-separated)
//! WSM_RESUME=1                # clients negotiate session recovery (with --recovery)
//! ```
//!
//! It builds the echo_server example itself (`cargo build --release --example
//! echo_server`), starts it under `ulimit -n 200000` and raises its own
//! open-file limit (with `prlimit`, else by re-executing itself under
//! `sh -c 'ulimit -n ...'`): that needs root or a high enough hard limit.
//! Linux only (/proc). Run without `--bench` (e.g. `cargo test --benches`) it
//! does a small smoke run of both scenarios.
//!
//! tests/scale.rs compiles this file as a module and runs the same scenarios
//! at test scale with assertions.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// A raw client connection.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// The open-file limit the server runs with (and this process raises itself to).
pub(crate) const NOFILE: u64 = 200_000;

/// The auth frame every client sends.
pub(crate) const AUTH: &str = r#"{"token":"secret"}"#;

/// Upper bound for opening one connection (TCP, upgrade, auth).
pub(crate) const OPEN_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The server process and what /proc says about it.

/// The echo_server child process (killed on drop).
pub(crate) struct ServerProcess {
    child: Child,
    /// Where it listens (127.0.0.1:PORT).
    pub addr: SocketAddr,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts `exe --port 0 --codec json EXTRA...` under `ulimit -n NOFILE`
    /// and waits for its `listening on` line.
    pub(crate) async fn spawn(exe: &Path, extra: &[&str]) -> Result<Self, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(raise_then_exec())
            .arg(exe)
            .args(["--port", "0", "--codec", "json"])
            .args(extra)
            // More options for the server, e.g. `--recovery`.
            .args(std::env::var("WSM_SERVER_ARGS").unwrap_or_default().split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start sh (for {}): {e}", exe.display()))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| "the echo_server printed no address within 30 s".to_string())?
            .map_err(|e| format!("read the echo_server's stdout: {e}"))?
            .ok_or_else(|| format!("the echo_server exited before listening ({:?})", child.try_wait()))?;
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line from the echo_server: {line:?}"))?;
        if addr.ip() != Ipv4Addr::LOCALHOST {
            return Err(format!("the echo_server listens on {addr}, not on 127.0.0.1"));
        }
        Ok(ServerProcess {
            child,
            addr,
            _stdout: lines,
        })
    }

    /// Its process id (the `sh` exec'd into the server, so the same process).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("the echo_server is still running")
    }

    /// Its memory now.
    pub(crate) fn memory(&self) -> Result<Memory, String> {
        memory_of(self.pid())
    }

    /// Its open-file limit.
    pub(crate) fn nofile(&self) -> Result<u64, String> {
        nofile_limit_of(&self.pid().to_string())
    }

    /// How many file descriptors it has open (sockets included).
    pub(crate) fn open_fds(&self) -> Result<usize, String> {
        open_fds_of(self.pid())
    }

    /// Fails if the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the echo_server exited: {status}")),
            Err(e) => Err(format!("wait for the echo_server: {e}")),
        }
    }

    /// Kills it and waits for its end.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A process's memory, from /proc/PID/status and /proc/PID/maps.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// RssAnon (heap, stacks), KiB.
    pub anon_kib: u64,
    /// Number of mappings (each large allocation of glibc's malloc is one).
    pub maps: usize,
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// VmRSS of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    status_field(&status, "VmRSS:").ok_or_else(|| format!("no VmRSS in {path}"))
}

/// How many file descriptors `pid` has open.
pub(crate) fn open_fds_of(pid: u32) -> Result<usize, String> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&dir).map_err(|e| format!("read {dir}: {e}"))?.count())
}

/// The memory of `pid`.
pub(crate) fn memory_of(pid: u32) -> Result<Memory, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().count())
        .unwrap_or(0);
    Ok(Memory {
        rss_kib: status_field(&status, "VmRSS:").ok_or_else(|| format!("no VmRSS in {path}"))?,
        anon_kib: status_field(&status, "RssAnon:").unwrap_or(0),
        maps,
    })
}

/// The `sh -c` script that raises the open-file limit to [`NOFILE`] (or,
/// without the privilege for that, to the hard limit) and execs `$0 $@`.
pub(crate) fn raise_then_exec() -> String {
    format!(r#"ulimit -n {NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@""#)
}

/// Column 3 (soft) or 4 (hard) of the open-file line of /proc/PID/limits.
fn nofile_column(pid: &str, column: usize) -> Result<u64, String> {
    let path = format!("/proc/{pid}/limits");
    let limits = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(column))
        .and_then(|v| {
            if v == "unlimited" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        })
        .ok_or_else(|| format!("no open-file limit in {path}"))
}

fn nofile_limit_of(pid: &str) -> Result<u64, String> {
    nofile_column(pid, 3)
}

/// This process's hard open-file limit.
pub(crate) fn nofile_hard_limit() -> Option<u64> {
    nofile_column("self", 4).ok()
}

/// This process's soft open-file limit.
pub(crate) fn nofile_limit() -> u64 {
    nofile_limit_of("self").unwrap_or(0)
}

/// Raises this process's open-file limit to `want` with `prlimit`
/// (util-linux); that needs CAP_SYS_RESOURCE (root) past the hard limit.
/// On failure the soft limit is at least raised to the hard limit.
pub(crate) fn raise_nofile(want: u64) -> Result<(), String> {
    if nofile_limit() >= want {
        return Ok(());
    }
    let pid = std::process::id().to_string();
    let output = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={want}:{want}")])
        .output()
        .map_err(|e| format!("run prlimit (install util-linux): {e}"))?;
    if nofile_limit() >= want {
        return Ok(());
    }
    // At least the soft limit up to the hard one.
    if let Some(hard) = nofile_hard_limit() {
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={hard}:")])
            .output();
    }
    Err(format!(
        "cannot raise the open-file limit to {want}, it stays at {} ({}): that needs CAP_SYS_RESOURCE \
         (root with that capability) or a hard limit of at least {want}",
        nofile_limit(),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// One line of /proc/net/tcp: state, send queue, receive queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpInfo {
    pub state: u8,
    pub tx_queue: u64,
    pub rx_queue: u64,
}

fn parse_proc_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    // The kernel prints the address as a native-endian u32 of the network-order bytes.
    let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
    Some(SocketAddr::new(ip.into(), u16::from_str_radix(port, 16).ok()?))
}

/// The IPv4 TCP sockets `(local, remote)` of this network namespace, where
/// they exist (one read of /proc/net/tcp).
pub(crate) fn tcp_info_of<const N: usize>(sockets: [(SocketAddr, SocketAddr); N]) -> [Option<TcpInfo>; N] {
    let mut found = [None; N];
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            continue;
        }
        let (Some(local), Some(remote)) = (parse_proc_addr(fields[1]), parse_proc_addr(fields[2])) else {
            continue;
        };
        let Some(i) = sockets.iter().position(|s| *s == (local, remote)) else {
            continue;
        };
        let Some((tx, rx)) = fields[4].split_once(':') else {
            continue;
        };
        found[i] = (|| {
            Some(TcpInfo {
                state: u8::from_str_radix(fields[3], 16).ok()?,
                tx_queue: u64::from_str_radix(tx, 16).ok()?,
                rx_queue: u64::from_str_radix(rx, 16).ok()?,
            })
        })();
    }
    found
}

/// The name of a /proc/net/tcp state.
pub(crate) fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "?",
    }
}

// ---------------------------------------------------------------------------
// Raw clients.

/// A lean client socket: small read buffer (it grows for large frames),
/// nothing buffered on write.
pub(crate) fn lean_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

/// A reading client: a buffer big enough for the 16 KiB frames.
pub(crate) fn reader_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(64 << 10)
}

/// The source addresses 127.0.0.2 ..= 127.0.0.(1 + count).
pub(crate) fn sources(count: u8) -> Vec<Ipv4Addr> {
    (0..count).map(|i| Ipv4Addr::new(127, 0, 0, 2 + i)).collect()
}

/// Opens a WebSocket from `source` to `server` (subprotocol `ws-messaging`),
/// sends the `secret` token and waits for the `connect` reply.
pub(crate) async fn connect_authed(
    server: SocketAddr,
    source: Ipv4Addr,
    config: WebSocketConfig,
) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .map_err(|e| format!("bind {source}:0: {e}"))?;
    let stream = socket.connect(server).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let mut request = format!("ws://{server}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    // With WSM_RESUME=1, each client asks for a recovery session.
    let resume = std::env::var("WSM_RESUME").is_ok_and(|v| v == "1");
    let offered = if resume {
        "ws-messaging.resume.1, ws-messaging"
    } else {
        "ws-messaging"
    };
    let expected: &[u8] = if resume {
        b"ws-messaging.resume.1"
    } else {
        b"ws-messaging"
    };
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static(offered));
    let (mut ws, response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let protocol = response.headers().get("sec-websocket-protocol");
    if protocol.map(|p| p.as_bytes()) != Some(expected) {
        return Err(format!("the server chose subprotocol {protocol:?}"));
    }
    ws.send(Message::text(AUTH))
        .await
        .map_err(|e| format!("send auth: {e}"))?;
    if resume {
        ws.send(Message::text(r#"{"name":"wsm.resume","args":[]}"#))
            .await
            .map_err(|e| format!("send wsm.resume: {e}"))?;
    }
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e} in {text}"))?;
                if resume && value["name"] == "wsm.session" {
                    continue;
                }
                return if value == json!({"name":"connect","args":[{"user":"alice"}]}) {
                    Ok(ws)
                } else {
                    Err(format!("unexpected first frame {text}"))
                };
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("closed before the connect reply: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("before the connect reply: {e}")),
            None => return Err("the socket ended before the connect reply".into()),
        }
    }
}

/// The id of a server ping (`{"name":"ping","args":[],"id":N}`).
pub(crate) fn ping_id(text: &str) -> Option<u64> {
    if text.len() > 256 || !text.contains("\"ping\"") {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    if value["name"] == "ping" {
        value["id"].as_u64()
    } else {
        None
    }
}

/// The reply to ping `id`.
pub(crate) fn pong(id: u64) -> Message {
    Message::text(format!(r#"{{"id":{id},"result":null}}"#))
}

fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

// ---------------------------------------------------------------------------
// The idle fleet.

/// Pings a client answers before it counts as steady. With a heartbeat that
/// pings again only once the previous ping was answered (the core's), the
/// second ping also shows the first reply was accepted; otherwise a wrong
/// reply shows up as a connection closed with 4008 after the ping timeout.
pub(crate) const STEADY_PINGS: u64 = 2;

/// What the idle clients saw.
#[derive(Default)]
pub(crate) struct FleetStats {
    /// Pings answered.
    pub pings: AtomicU64,
    /// Clients that answered at least [`STEADY_PINGS`] pings.
    pub pinged: AtomicUsize,
    /// Connections that ended before the fleet was stopped.
    pub dropped: AtomicUsize,
    /// How the first of them ended.
    pub first_drop: Mutex<Option<String>>,
    changed: Notify,
}

impl FleetStats {
    fn drop_one(&self, why: String) {
        self.first_drop.lock().unwrap().get_or_insert(why);
        self.dropped.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

/// Many idle authenticated connections, each a task that answers pings.
pub(crate) struct Fleet {
    server: SocketAddr,
    sources: Vec<Ipv4Addr>,
    concurrency: usize,
    stop: watch::Sender<bool>,
    /// What the clients saw.
    pub stats: Arc<FleetStats>,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// An empty fleet; connections come from `sources` in turn, at most
    /// `concurrency` being opened at once.
    pub(crate) fn new(server: SocketAddr, sources: Vec<Ipv4Addr>, concurrency: usize) -> Self {
        Fleet {
            server,
            sources,
            concurrency: concurrency.max(1),
            stop: watch::channel(false).0,
            stats: Arc::default(),
            tasks: JoinSet::new(),
        }
    }

    /// Connections opened so far.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none is open.
    #[allow(dead_code)] // used by tests/scale.rs, which includes this file
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Opens connections until there are `target`, every one authenticated;
    /// fails on the first connection that fails or after `limit`.
    pub(crate) async fn grow(&mut self, target: usize, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let wanted = target.saturating_sub(self.len());
        let mut opened = 0;
        for i in self.len()..target {
            let permit = tokio::time::timeout_at(deadline, permits.clone().acquire_owned())
                .await
                .map_err(|_| format!("{opened}/{wanted} connections opened within {limit:?}"))?
                .expect("the semaphore is never closed");
            while let Ok(result) = done_rx.try_recv() {
                result?;
                opened += 1;
            }
            let source = self.sources[i % self.sources.len()];
            self.tasks.spawn(idle_client(
                self.server,
                source,
                self.stop.subscribe(),
                self.stats.clone(),
                done_tx.clone(),
                permit,
            ));
        }
        drop(done_tx);
        while opened < wanted {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(result)) => {
                    result?;
                    opened += 1;
                }
                Ok(None) => return Err(format!("{opened}/{wanted} connections opened, the others vanished")),
                Err(_) => return Err(format!("{opened}/{wanted} connections opened within {limit:?}")),
            }
        }
        Ok(start.elapsed())
    }

    /// Waits until every client has answered [`STEADY_PINGS`] pings (none
    /// dropped in the meantime).
    pub(crate) async fn all_pinged(&self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.stats.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.check_no_drop()?;
            let pinged = self.stats.pinged.load(Ordering::SeqCst);
            if pinged >= self.len() {
                return Ok(start.elapsed());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(format!(
                    "{pinged}/{} clients answered {STEADY_PINGS} server pings within {limit:?}",
                    self.len()
                ));
            }
        }
    }

    /// Fails if a connection has ended.
    pub(crate) fn check_no_drop(&self) -> Result<(), String> {
        match self.stats.dropped.load(Ordering::SeqCst) {
            0 => Ok(()),
            n => Err(format!(
                "{n} connection(s) ended early, the first: {}",
                self.stats.first_drop.lock().unwrap().as_deref().unwrap_or("?")
            )),
        }
    }

    /// Closes every connection (close frame 1000, then waits for the
    /// server's) and waits for every client task.
    pub(crate) async fn disconnect(mut self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        self.stop.send_replace(true);
        let total = self.len();
        let mut done = 0;
        tokio::time::timeout(limit, async {
            while let Some(joined) = self.tasks.join_next().await {
                joined.map_err(|e| format!("a client task failed: {e}"))?;
                done += 1;
            }
            Ok::<_, String>(())
        })
        .await
        .map_err(|_| format!("{done}/{total} clients closed within {limit:?}"))??;
        Ok(start.elapsed())
    }
}

async fn idle_client(
    server: SocketAddr,
    source: Ipv4Addr,
    mut stop: watch::Receiver<bool>,
    stats: Arc<FleetStats>,
    done: mpsc::UnboundedSender<Result<(), String>>,
    permit: OwnedSemaphorePermit,
) {
    let opened = tokio::time::timeout(OPEN_LIMIT, connect_authed(server, source, lean_config()))
        .await
        .unwrap_or_else(|_| Err(format!("not connected within {OPEN_LIMIT:?}")));
    drop(permit);
    let mut ws = match opened {
        Ok(ws) => {
            let _ = done.send(Ok(()));
            ws
        }
        Err(e) => {
            let _ = done.send(Err(format!("from {source}: {e}")));
            return;
        }
    };
    drop(done);
    let mut answered = 0;
    while !*stop.borrow_and_update() {
        tokio::select! {
            _ = stop.changed() => break,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => match ping_id(&text) {
                    Some(id) => {
                        if let Err(e) = ws.send(pong(id)).await {
                            return stats.drop_one(format!("answering a ping: {e}"));
                        }
                        stats.pings.fetch_add(1, Ordering::Relaxed);
                        answered += 1;
                        if answered == STEADY_PINGS {
                            stats.pinged.fetch_add(1, Ordering::SeqCst);
                            stats.changed.notify_waiters();
                        }
                    }
                    None => return stats.drop_one(format!("unexpected frame {}", excerpt(&text))),
                },
                Some(Ok(Message::Close(frame))) => return stats.drop_one(format!("closed by the server: {frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return stats.drop_one(format!("socket error: {e}")),
                None => return stats.drop_one("socket ended".into()),
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

// ---------------------------------------------------------------------------
// Scenario: idle connections.

/// How to run the idle scenario.
#[derive(Clone, Debug)]
pub(crate) struct IdleOptions {
    /// Connections at the end.
    pub connections: usize,
    /// Counts on the way where memory is also measured (below `connections`).
    pub checkpoints: Vec<usize>,
    /// The server's `--ping-interval-ms` (0: no pings).
    pub ping_interval_ms: u64,
    /// The server's `--ping-timeout-ms` (a wrong ping reply closes the
    /// connection with 4008 that long after the ping).
    pub ping_timeout_ms: u64,
    /// Connections being opened at once.
    pub concurrency: usize,
    /// Source addresses used (127.0.0.2, ...).
    pub sources: u8,
    /// Upper bound for each phase (opening, pings, closing).
    pub phase_limit: Duration,
}

/// One measurement of the idle scenario.
#[derive(Clone, Debug)]
pub(crate) struct IdleRow {
    /// Open connections.
    pub connections: usize,
    /// Server memory.
    pub memory: Memory,
    /// Server file descriptors.
    pub fds: usize,
    /// Time to open the connections of this phase.
    pub opened_in: Duration,
    /// (RSS − baseline RSS) / (connections − 1), KiB.
    pub per_connection_kib: f64,
}

/// The figures of the idle scenario.
#[derive(Clone, Debug)]
pub(crate) struct IdleReport {
    pub options: IdleOptions,
    /// The server just started, before any connection.
    pub started: Memory,
    /// One connection (the baseline).
    pub base: IdleRow,
    /// At each checkpoint, then at `connections`.
    pub rows: Vec<IdleRow>,
    /// After every client has gone (the server's descriptors back to their
    /// count before the first connection).
    pub after: Memory,
    pub after_fds: usize,
    /// Time for every client to close.
    pub closed_in: Duration,
    /// Pings answered by the clients.
    pub pings: u64,
    /// This (client) process's RSS with every connection open, KiB.
    pub client_rss_kib: u64,
}

#[allow(dead_code)] // some methods are used by tests/scale.rs only, which includes this file
impl IdleReport {
    /// The per-connection figure at `connections` (the last row).
    pub(crate) fn per_connection_kib(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.per_connection_kib)
    }

    /// The row at exactly `connections`.
    pub(crate) fn at(&self, connections: usize) -> Option<&IdleRow> {
        self.rows.iter().find(|r| r.connections == connections)
    }
}

/// Runs the idle scenario against a fresh `exe` (killed at the end).
pub(crate) async fn idle(exe: &Path, options: &IdleOptions) -> Result<IdleReport, String> {
    let interval = options.ping_interval_ms.to_string();
    let timeout = options.ping_timeout_ms.to_string();
    let mut server =
        ServerProcess::spawn(exe, &["--ping-interval-ms", &interval, "--ping-timeout-ms", &timeout]).await?;
    let result = idle_on(&mut server, options).await;
    server.kill().await;
    result
}

async fn idle_on(server: &mut ServerProcess, options: &IdleOptions) -> Result<IdleReport, String> {
    let limit = options.phase_limit;
    let pings = options.ping_interval_ms > 0;
    let wanted = options.connections as u64 + 50;
    for (who, limit) in [("the echo_server", server.nofile()?), ("this process", nofile_limit())] {
        if limit < wanted {
            return Err(format!(
                "{who} may open {limit} files, too few for {} connections: raise the hard open-file limit \
                 (needs CAP_SYS_RESOURCE)",
                thousands(options.connections)
            ));
        }
    }
    let started = server.memory()?;
    let fds_before = server.open_fds()?;
    let mut fleet = Fleet::new(server.addr, sources(options.sources), options.concurrency);

    // Baseline: one connection (the runtime's lazy set-up is done), through
    // its first pings if the server pings.
    let opened_in = fleet.grow(1, limit).await?;
    if pings {
        fleet.all_pinged(limit).await?;
    }
    let base = IdleRow {
        connections: 1,
        memory: server.memory()?,
        fds: server.open_fds()?,
        opened_in,
        per_connection_kib: 0.0,
    };

    let mut rows = Vec::new();
    let mut targets: Vec<usize> = options
        .checkpoints
        .iter()
        .copied()
        .filter(|&c| c > 1 && c < options.connections)
        .collect();
    targets.push(options.connections);
    let mut client_rss_kib = 0;
    for target in targets {
        let opened_in = fleet.grow(target, limit).await?;
        // Steady state: every connection has been through its first pings.
        if pings {
            fleet.all_pinged(limit).await?;
        }
        fleet.check_no_drop()?;
        server.check_alive()?;
        let memory = server.memory()?;
        rows.push(IdleRow {
            connections: target,
            memory,
            fds: server.open_fds()?,
            opened_in,
            per_connection_kib: memory.rss_kib.saturating_sub(base.memory.rss_kib) as f64 / (target - 1).max(1) as f64,
        });
        client_rss_kib = rss_kib(std::process::id())?;
    }
    let pings_answered = fleet.stats.pings.load(Ordering::Relaxed);
    fleet.check_no_drop()?;

    let closed_in = fleet.disconnect(limit).await?;
    // The server has let go of every connection when its descriptors are
    // back to their count before the first one.
    let deadline = Instant::now() + limit;
    let after_fds = loop {
        let fds = server.open_fds()?;
        if fds <= fds_before {
            break fds;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server still has {} descriptors more than before the first connection after {limit:?}",
                fds - fds_before
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(IdleReport {
        options: options.clone(),
        started,
        base,
        rows,
        after: server.memory()?,
        after_fds,
        closed_in,
        pings: pings_answered,
        client_rss_kib,
    })
}

/// `12345678` → `12,345,678`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Prints the idle figures.
pub(crate) fn print_idle(report: &IdleReport) {
    let o = &report.options;
    println!(
        "\n== idle: {} connections from {} source addresses, {} opening at once, pings {} ==",
        thousands(o.connections),
        o.sources,
        o.concurrency,
        if o.ping_interval_ms == 0 {
            "off".to_string()
        } else {
            format!(
                "every {} ms (timeout {} ms), measured once each client answered {STEADY_PINGS}",
                o.ping_interval_ms, o.ping_timeout_ms
            )
        }
    );
    let figures: Vec<String> = report
        .rows
        .iter()
        .map(|r| format!("{:.2} KiB at {}", r.per_connection_kib, thousands(r.connections)))
        .collect();
    println!("RSS per idle connection: {}", figures.join(" / "));
    println!(
        "{:>12} {:>11} {:>12} {:>8} {:>8} {:>10} {:>13}",
        "connections", "VmRSS MiB", "RssAnon MiB", "maps", "fds", "KiB/conn", "opened in"
    );
    let line = |label: &str, m: &Memory, fds: usize, per: &str, opened: &str| {
        println!(
            "{label:>12} {:>11} {:>12} {:>8} {:>8} {per:>10} {opened:>13}",
            mib(m.rss_kib),
            mib(m.anon_kib),
            m.maps,
            fds
        );
    };
    line("started", &report.started, 0, "", "");
    line(
        "1",
        &report.base.memory,
        report.base.fds,
        "",
        &format!("{:.2?}", report.base.opened_in),
    );
    let mut previous = 1;
    for r in &report.rows {
        let rate = (r.connections - previous) as f64 / r.opened_in.as_secs_f64().max(1e-9);
        line(
            &thousands(r.connections),
            &r.memory,
            r.fds,
            &format!("{:.2}", r.per_connection_kib),
            &format!("{:.1?} ({:.0}/s)", r.opened_in, rate),
        );
        previous = r.connections;
    }
    line(
        "0 (closed)",
        &report.after,
        report.after_fds,
        "",
        &format!("closed in {:.1?}", report.closed_in),
    );
    let peak = report.rows.last().map_or(0, |r| r.memory.rss_kib);
    println!(
        "after every client left: RSS {} MiB = baseline {:+.1} MiB ({:.0}% of the growth given back); \
         pings answered: {}; client process RSS at the peak: {} MiB",
        mib(report.after.rss_kib),
        (report.after.rss_kib as f64 - report.base.memory.rss_kib as f64) / 1024.0,
        100.0 * peak.saturating_sub(report.after.rss_kib) as f64
            / peak.saturating_sub(report.base.memory.rss_kib).max(1) as f64,
        thousands(report.pings as usize),
        mib(report.client_rss_kib)
    );
}

// ---------------------------------------------------------------------------
// Scenario: a stalled reader among fast ones.

/// How to run the stalled-reader scenario.
#[derive(Clone, Debug)]
pub(crate) struct StalledOptions {
    /// `shout` events X sends.
    pub events: usize,
    /// Length of each event's string argument.
    pub size: usize,
    /// Upper bound for R to get every `shouted`.
    pub limit: Duration,
    /// Give up when R gets nothing for this long.
    pub stall_limit: Duration,
}

impl Default for StalledOptions {
    fn default() -> Self {
        StalledOptions {
            events: 5_000,
            size: 16 << 10,
            limit: Duration::from_secs(120),
            stall_limit: Duration::from_secs(30),
        }
    }
}

/// How S's connection ended, as S read it once the flood was over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StalledEnd {
    /// A close frame.
    Closed(u16, String),
    /// The socket ended (or failed) without a close frame.
    Dropped(String),
    /// A frame that is neither `shouted` nor a ping.
    Unexpected(String),
    /// Still open: nothing more to read for a while.
    Open,
}

/// The figures of the stalled-reader scenario.
#[derive(Clone, Debug)]
pub(crate) struct StalledReport {
    pub options: StalledOptions,
    /// The server with S, R and X connected, before the flood.
    pub base: Memory,
    /// The highest RSS sampled during the flood, KiB, and when.
    pub peak_rss_kib: u64,
    pub peak_after: Duration,
    /// At the end (S drained, R and X still connected).
    pub end: Memory,
    /// When X had written every `shout`, if it did.
    pub sent_in: Option<Duration>,
    /// `shouted` events R got, when the last came, and why R stopped early.
    pub r_received: usize,
    pub r_last_at: Duration,
    pub r_error: Option<String>,
    /// `shouted` events X got, and why X stopped early.
    pub x_received: usize,
    pub x_error: Option<String>,
    /// When the server's side of S left ESTABLISHED (state then, or
    /// "gone"), if it did.
    pub s_server_side: Option<(String, Duration)>,
    /// The largest send queue of the server's side of S, and receive queue
    /// of S's side, in bytes (kernel buffers).
    pub s_server_tx_max: u64,
    pub s_client_rx_max: u64,
    /// `shouted` events S found in its socket when it finally read.
    pub s_received: usize,
    pub s_end: StalledEnd,
}

impl StalledReport {
    /// Peak RSS growth over the baseline, KiB.
    pub(crate) fn growth_kib(&self) -> u64 {
        self.peak_rss_kib.saturating_sub(self.base.rss_kib)
    }
}

/// Runs the stalled-reader scenario against a fresh `exe` (killed at the
/// end). The server pings rarely (every 10 min), so the only reason for it
/// to drop S is S's backlog.
pub(crate) async fn stalled(exe: &Path, options: &StalledOptions) -> Result<StalledReport, String> {
    let mut server = ServerProcess::spawn(exe, &["--ping-interval-ms", "600000"]).await?;
    let result = stalled_on(&mut server, options).await;
    server.kill().await;
    result
}

#[derive(Default)]
struct Sampled {
    peak_rss_kib: u64,
    peak_after: Duration,
    s_server_side: Option<(String, Duration)>,
    s_server_tx_max: u64,
    s_client_rx_max: u64,
}

async fn stalled_on(server: &mut ServerProcess, options: &StalledOptions) -> Result<StalledReport, String> {
    let addr = server.addr;
    let pid = server.pid();
    let open = |source, config| async move {
        tokio::time::timeout(OPEN_LIMIT, connect_authed(addr, source, config))
            .await
            .map_err(|_| format!("not connected within {OPEN_LIMIT:?}"))?
    };
    let mut s = open(Ipv4Addr::new(127, 0, 0, 2), lean_config()).await?;
    let s_local = s.get_ref().local_addr().map_err(|e| e.to_string())?;
    let r = open(Ipv4Addr::new(127, 0, 0, 3), reader_config()).await?;
    let x = open(Ipv4Addr::new(127, 0, 0, 4), reader_config()).await?;
    let base = server.memory()?;

    let text = "x".repeat(options.size);
    let shout = Utf8Bytes::from(format!(r#"{{"name":"shout","args":["{text}"]}}"#));
    let shouted = Utf8Bytes::from(format!(r#"{{"name":"shouted","args":["{text}"]}}"#));
    drop(text);
    let start = Instant::now();
    let (stop, stopped) = watch::channel(false);

    // The server's RSS every 50 ms, and whether it still holds S: the state
    // of its side of S in /proc/net/tcp, read every 500 ms and whenever the
    // server's descriptor count changes (that file is slow to read with many
    // sockets around). On a thread of its own, so reading /proc never holds
    // up the clients.
    let (s_gone_tx, mut s_gone) = watch::channel(false);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = std::thread::spawn({
        let sampling = sampling.clone();
        move || {
            let mut sampled = Sampled::default();
            let mut fds = open_fds_of(pid).unwrap_or(0);
            for i in 0u64.. {
                if !sampling.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(rss) = rss_kib(pid) {
                    if rss > sampled.peak_rss_kib {
                        sampled.peak_rss_kib = rss;
                        sampled.peak_after = start.elapsed();
                    }
                }
                let now_fds = open_fds_of(pid).unwrap_or(fds);
                if sampled.s_server_side.is_none() && (i % 10 == 0 || now_fds != fds) {
                    let [server_side, client_side] = tcp_info_of([(addr, s_local), (s_local, addr)]);
                    sampled.s_client_rx_max = sampled.s_client_rx_max.max(client_side.map_or(0, |c| c.rx_queue));
                    sampled.s_server_tx_max = sampled.s_server_tx_max.max(server_side.map_or(0, |c| c.tx_queue));
                    match server_side.map(|c| c.state) {
                        Some(1) => {}
                        state => {
                            let name = state.map_or("gone", tcp_state_name).to_string();
                            sampled.s_server_side = Some((name, start.elapsed()));
                            s_gone_tx.send_replace(true);
                        }
                    }
                }
                fds = now_fds;
                std::thread::sleep(Duration::from_millis(50));
            }
            sampled
        }
    });

    let (r_sink, r_stream) = r.split();
    let (x_sink, x_stream) = x.split();
    let (r_progress_tx, r_progress) = watch::channel((0usize, Duration::ZERO));
    let (x_progress_tx, x_progress) = watch::channel((0usize, Duration::ZERO));
    let (r_pongs, r_pongs_rx) = mpsc::unbounded_channel();
    let (x_pongs, x_pongs_rx) = mpsc::unbounded_channel();
    let (sent_tx, sent_rx) = oneshot::channel();
    let (unused_tx, _) = oneshot::channel();
    let r_reader = tokio::spawn(read_shouted(
        r_stream,
        shouted.clone(),
        r_progress_tx,
        r_pongs,
        start,
        stopped.clone(),
    ));
    let x_reader = tokio::spawn(read_shouted(
        x_stream,
        shouted.clone(),
        x_progress_tx,
        x_pongs,
        start,
        stopped.clone(),
    ));
    let r_writer = tokio::spawn(write_shouts(
        r_sink,
        shout.clone(),
        0,
        r_pongs_rx,
        unused_tx,
        start,
        stopped.clone(),
    ));
    let x_writer = tokio::spawn(write_shouts(
        x_sink,
        shout,
        options.events,
        x_pongs_rx,
        sent_tx,
        start,
        stopped.clone(),
    ));

    // Wait for R (and X) to get every `shouted`, or to stop making progress.
    let wait_all = |progress: &watch::Receiver<(usize, Duration)>| {
        let mut progress = progress.clone();
        let (events, limit, stall) = (options.events, options.limit, options.stall_limit);
        async move {
            while progress.borrow_and_update().0 < events && start.elapsed() < limit {
                let left = limit.saturating_sub(start.elapsed());
                match tokio::time::timeout(stall.min(left), progress.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break, // the reader ended, or stalled
                }
            }
        }
    };
    tokio::join!(wait_all(&r_progress), wait_all(&x_progress));
    let sent_in = tokio::time::timeout(Duration::from_secs(5), sent_rx)
        .await
        .ok()
        .and_then(|r| r.ok())
        .and_then(|r| r.ok());

    // Give the server a moment to let go of S if it has not yet.
    let _ = tokio::time::timeout(Duration::from_secs(5), s_gone.wait_for(|gone| *gone)).await;
    stop.send_replace(true);
    sampling.store(false, Ordering::SeqCst);
    let sampled = tokio::task::spawn_blocking(move || sampler.join())
        .await
        .map_err(|e| format!("join the sampler: {e}"))?
        .map_err(|_| "the sampler panicked".to_string())?;

    // Now S reads what is left in its socket, up to the close frame.
    let mut s_received = 0;
    let s_end = loop {
        match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            Err(_) => break StalledEnd::Open,
            Ok(Some(Ok(Message::Text(text)))) if text == shouted => s_received += 1,
            Ok(Some(Ok(Message::Text(text)))) => {
                if ping_id(&text).is_none() {
                    break StalledEnd::Unexpected(excerpt(&text).to_string());
                }
            }
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                break StalledEnd::Closed(frame.code.into(), frame.reason.to_string());
            }
            Ok(Some(Ok(Message::Close(None)))) => break StalledEnd::Closed(1005, String::new()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => break StalledEnd::Dropped(e.to_string()),
            Ok(None) => break StalledEnd::Dropped("socket ended".into()),
        }
    };
    drop(s);

    let (r_received, r_last_at, r_error) = finish_reader(r_reader, &r_progress).await;
    let (x_received, _, x_error) = finish_reader(x_reader, &x_progress).await;
    server.check_alive()?;
    let end = server.memory()?;
    for writer in [r_writer, x_writer] {
        if let Ok(Ok(Ok(mut sink))) = tokio::time::timeout(Duration::from_secs(5), writer).await {
            let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
        }
    }
    Ok(StalledReport {
        options: options.clone(),
        base,
        peak_rss_kib: sampled.peak_rss_kib.max(base.rss_kib),
        peak_after: sampled.peak_after,
        end,
        sent_in,
        r_received,
        r_last_at,
        r_error,
        x_received,
        x_error,
        s_server_side: sampled.s_server_side,
        s_server_tx_max: sampled.s_server_tx_max,
        s_client_rx_max: sampled.s_client_rx_max,
        s_received,
        s_end,
    })
}

async fn finish_reader(
    reader: tokio::task::JoinHandle<Result<(), String>>,
    progress: &watch::Receiver<(usize, Duration)>,
) -> (usize, Duration, Option<String>) {
    let error = match tokio::time::timeout(Duration::from_secs(5), reader).await {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(e),
        Ok(Err(e)) => Some(format!("the reader task failed: {e}")),
        Err(_) => Some("the reader did not stop".into()),
    };
    let (count, last) = *progress.borrow();
    (count, last, error)
}

/// Reads `shouted` frames (each must be exactly `expected`) until stopped,
/// passing ping ids to the writer.
async fn read_shouted(
    mut stream: SplitStream<Ws>,
    expected: Utf8Bytes,
    progress: watch::Sender<(usize, Duration)>,
    pongs: mpsc::UnboundedSender<u64>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut count = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if text == expected {
                        count += 1;
                        progress.send_replace((count, start.elapsed()));
                    } else if let Some(id) = ping_id(&text) {
                        let _ = pongs.send(id);
                    } else {
                        return Err(format!("unexpected frame ({} bytes): {}", text.len(), excerpt(&text)));
                    }
                }
                Some(Ok(Message::Close(frame))) => return Err(format!("closed by the server: {frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("socket error: {e}")),
                None => return Err("socket ended".into()),
            },
        }
    }
}

/// Sends `count` copies of `shout` as fast as the socket takes them, then
/// only answers pings until stopped; gives the sink back.
async fn write_shouts(
    mut sink: SplitSink<Ws, Message>,
    shout: Utf8Bytes,
    count: usize,
    mut pongs: mpsc::UnboundedReceiver<u64>,
    sent: oneshot::Sender<Result<Duration, String>>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<SplitSink<Ws, Message>, String> {
    let mut sending = Ok(());
    for i in 0..count {
        while let Ok(id) = pongs.try_recv() {
            sending = sink.feed(pong(id)).await;
        }
        if sending.is_ok() {
            sending = sink.send(Message::Text(shout.clone())).await;
        }
        if let Err(e) = &sending {
            let _ = sent.send(Err(format!("sending shout {i}: {e}")));
            return Err(format!("sending shout {i}: {e}"));
        }
        if *stop.borrow() {
            return Ok(sink);
        }
    }
    let _ = sent.send(Ok(start.elapsed()));
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(sink),
            id = pongs.recv() => match id {
                Some(id) => sink.send(pong(id)).await.map_err(|e| format!("answering a ping: {e}"))?,
                None => return Ok(sink),
            },
        }
    }
}

/// Prints the stalled-reader figures.
pub(crate) fn print_stalled(report: &StalledReport) {
    let o = &report.options;
    println!(
        "\n== stalled reader: X shouts {} events of {} KiB; R reads, S never reads ==",
        thousands(o.events),
        o.size >> 10
    );
    println!(
        "server RSS: {} MiB before, peak {} MiB ({:+.1} MiB) at {:.1?}, {} MiB at the end",
        mib(report.base.rss_kib),
        mib(report.peak_rss_kib),
        report.growth_kib() as f64 / 1024.0,
        report.peak_after,
        mib(report.end.rss_kib)
    );
    match report.sent_in {
        Some(t) => println!("X wrote every shout in {t:.2?}"),
        None => println!("X did not write every shout"),
    }
    println!(
        "R got {}/{} shouted, the last at {:.2?}{}",
        thousands(report.r_received),
        thousands(o.events),
        report.r_last_at,
        report
            .r_error
            .as_ref()
            .map(|e| format!(" (stopped: {e})"))
            .unwrap_or_default()
    );
    println!(
        "X got {}/{} shouted{}",
        thousands(report.x_received),
        thousands(o.events),
        report
            .x_error
            .as_ref()
            .map(|e| format!(" (stopped: {e})"))
            .unwrap_or_default()
    );
    match &report.s_server_side {
        Some((state, at)) => println!("S: the server's side left ESTABLISHED ({state}) at {at:.2?}"),
        None => println!("S: the server's side was still ESTABLISHED at the end of the flood"),
    }
    println!(
        "S: kernel queues at most {} KiB unsent on the server's side, {} KiB unread on S's side; \
         S then read {} shouted and {}",
        report.s_server_tx_max >> 10,
        report.s_client_rx_max >> 10,
        thousands(report.s_received),
        match &report.s_end {
            StalledEnd::Closed(code, reason) => format!("a close frame {code} {reason:?}"),
            StalledEnd::Dropped(why) => format!("no close frame ({why})"),
            StalledEnd::Unexpected(text) => format!("an unexpected frame {text}"),
            StalledEnd::Open => "nothing more for 5 s (still open)".into(),
        }
    );
}

// ---------------------------------------------------------------------------
// The benchmark.

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")),
    )
}

/// Builds the echo_server example with the profile of this binary; returns
/// its path.
fn build_echo_server() -> PathBuf {
    let exe = std::env::current_exe().expect("this binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/PROFILE/deps/this");
    let target_dir = profile_dir.parent().expect("target/PROFILE");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args([
            "build",
            "--example",
            "echo_server",
            "--package",
            "ws-messaging-examples",
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build --example echo_server");
    assert!(status.success(), "cargo build --example echo_server failed: {status}");
    let path = profile_dir
        .join("examples")
        .join(format!("echo_server{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing after the build", path.display());
    path
}

/// Raises the open-file limit to `want` if it can (with prlimit, or by
/// re-executing this binary under `sh -c 'ulimit -n ...'` where prlimit is
/// missing); returns the limit it has.
fn ensure_nofile(want: u64) -> u64 {
    const MARK: &str = "WSM_CONNECTIONS_REEXEC";
    let Err(e) = raise_nofile(want) else { return want };
    let prlimit = std::process::Command::new("prlimit").arg("--version").output().is_ok();
    if !prlimit && std::env::var_os(MARK).is_none() {
        eprintln!("{e}; re-executing under `ulimit -n {want}`");
        use std::os::unix::process::CommandExt;
        let error = std::process::Command::new("sh")
            .arg("-c")
            .arg(raise_then_exec())
            .arg(std::env::current_exe().expect("this binary's path"))
            .args(std::env::args_os().skip(1))
            .env(MARK, "1")
            .exec();
        panic!("re-execute under sh: {error}");
    }
    eprintln!("warning: {e}");
    nofile_limit()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let connections = env_number("WSM_CONNECTIONS").unwrap_or(if bench { 50_000 } else { 200 }) as usize;
    let scenario = std::env::var("WSM_SCENARIO").unwrap_or_default();
    assert!(
        ["", "idle", "stalled"].contains(&scenario.as_str()),
        "WSM_SCENARIO is idle or stalled (or unset for both), not {scenario:?}"
    );
    let idle_options = IdleOptions {
        connections: connections.max(2),
        checkpoints: vec![10_000],
        ping_interval_ms: env_number("WSM_PING_INTERVAL_MS").unwrap_or(5_000),
        ping_timeout_ms: 10_000,
        concurrency: env_number("WSM_CONCURRENCY").unwrap_or(500) as usize,
        // Up to ~28,000 ephemeral ports per source address: 8 addresses.
        sources: 8,
        phase_limit: Duration::from_secs(120),
    };
    let stalled_options = if bench {
        StalledOptions::default()
    } else {
        StalledOptions {
            events: 200,
            ..StalledOptions::default()
        }
    };
    if !bench {
        println!("connections: smoke run (`cargo bench --bench connections` runs the real one)");
    }
    let limit = ensure_nofile(NOFILE);
    // The server and this process each need a descriptor per connection.
    let capacity = limit.saturating_sub(100).min(usize::MAX as u64) as usize;
    let mut idle_options = idle_options;
    if idle_options.connections > capacity && scenario != "stalled" {
        println!(
            "note: {} idle connections do not fit under the open-file limit of {limit} \
             (raising it needs CAP_SYS_RESOURCE): measuring up to {} instead",
            thousands(idle_options.connections),
            thousands(capacity)
        );
        idle_options.connections = capacity;
    }
    let exe = build_echo_server();
    println!("server: {}", exe.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if scenario.is_empty() || scenario == "idle" {
            match idle(&exe, &idle_options).await {
                Ok(report) => print_idle(&report),
                Err(e) => panic!("idle scenario: {e}"),
            }
        }
        if scenario.is_empty() || scenario == "stalled" {
            match stalled(&exe, &stalled_options).await {
                Ok(report) => print_stalled(&report),
                Err(e) => panic!("stalled-reader scenario: {e}"),
            }
        }
    });
}
