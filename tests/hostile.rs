//! Hostile input against the `echo_server` example, driven from outside the
//! way an external checker would: silent sockets, oversized frames and
//! messages, floods of invalid envelopes, WebSocket protocol violations, deep
//! nesting, invalid UTF-8, absurd ids and connection churn.
//!
//! After every hostile case the server must still serve a fresh, well-behaved
//! client (auth + `echo` round trip) and its process must still be running;
//! where a case carries big data, the server's peak RSS (`VmHWM` in
//! `/proc/PID/status`, reset through `/proc/PID/clear_refs`) must stay bounded.
//! Frame-level abuse goes over a raw TCP socket after a hand-written HTTP
//! upgrade, so frames the WebSocket libraries refuse to write can be sent.
//!
//! Linux only (reads `/proc`). Run with
//! `cargo build --example echo_server && cargo test --test hostile`
//! (`-- --nocapture` prints what each case observed).

mod common;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::{echo_server_path, spawn_listening};
use common::{next_close, next_json, raw_connect, RawWs, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1 << 20;
/// The auth (and upgrade) timeout of the servers that test timeouts.
const AUTH_TIMEOUT: Duration = Duration::from_millis(300);
/// Frame opcodes.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
/// A mask key for small client frames.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The all-zero mask key: a masked frame whose payload is sent as is (big
/// payloads need no masking work on this side).
const ZERO_MASK: [u8; 4] = [0; 4];

// ---------------------------------------------------------------------------
// The server process

/// A running `echo_server` (killed on drop).
struct EchoServer {
    child: Child,
    url: String,
    pid: u32,
}

impl EchoServer {
    async fn start(extra: &[&str]) -> EchoServer {
        let mut command = Command::new(echo_server_path());
        command.args(["--port", "0"]).args(extra);
        let (child, url) = spawn_listening(command).await;
        let pid = child.id().expect("the server's pid");
        EchoServer { child, url, pid }
    }

    /// `127.0.0.1:PORT`.
    fn addr(&self) -> &str {
        self.url.strip_prefix("ws://").unwrap()
    }

    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().expect("query the server process").is_none(),
            "the server process has exited"
        );
    }

    /// The process is running and a fresh client authenticates and gets an
    /// `echo` round trip.
    async fn assert_serves(&mut self) {
        self.assert_alive();
        let mut ws = good_client(&self.url).await;
        assert_echo(&mut ws, 1, json!("still here")).await;
        let _ = tokio::time::timeout(WAIT, ws.close(None)).await;
        self.assert_alive();
    }

    fn status_kib(&self, key: &str) -> u64 {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {path} (these tests need Linux /proc): {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {path}"))
    }

    /// Current resident set size, in bytes.
    fn rss(&self) -> u64 {
        self.status_kib("VmRSS") * 1024
    }

    /// Peak resident set size since the last `reset_peak`, in bytes.
    fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM") * 1024
    }

    /// Resets the peak RSS to the current RSS (Linux ≥ 4.0). Should that be
    /// refused, the peak covers the whole life of the process, which only
    /// makes the bound stricter.
    fn reset_peak(&self) {
        if let Err(e) = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5") {
            eprintln!("could not reset the peak RSS ({e}); the bound covers the whole process life");
        }
    }

    /// Open file descriptors of the server process.
    fn fds(&self) -> usize {
        let path = format!("/proc/{}/fd", self.pid);
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("list {path} (these tests need Linux /proc): {e}"))
            .count()
    }

    /// Waits (up to `within`) until the server's count of open file
    /// descriptors satisfies `done`; returns the last count.
    async fn wait_fds(&self, done: impl Fn(usize) -> bool, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let fds = self.fds();
            if done(fds) || Instant::now() > deadline {
                return fds;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

// ---------------------------------------------------------------------------
// Well-behaved clients (tokio-tungstenite)

/// A tokio-tungstenite client that has authenticated with `secret`.
async fn good_client(url: &str) -> RawWs {
    let mut ws = tokio::time::timeout(WAIT, raw_connect(url))
        .await
        .expect("the WebSocket upgrade in time");
    ws.send(Message::text(r#"{"token":"secret"}"#)).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"name":"connect","args":[{"user":"alice"}]})
    );
    ws
}

/// `echo(value)` with `id` gets `{"id":id,"result":value}` as the next frame.
async fn assert_echo(ws: &mut RawWs, id: u64, value: Value) {
    let call = json!({"name":"echo","args":[value.clone()],"id":id});
    ws.send(Message::text(call.to_string())).await.unwrap();
    assert_eq!(next_json(ws).await, json!({"id":id,"result":value}));
}

/// The text of the next text frame (no JSON parsing: it may be too deep for
/// serde_json), skipping the heartbeat's pings; `Err` when the socket
/// closes or nothing comes in time.
async fn next_text(ws: &mut RawWs) -> Result<String, String> {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if text.starts_with(r#"{"name":"ping""#) {
                        continue;
                    }
                    return Ok(text.to_string());
                }
                Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
                Some(Ok(_)) => {}
                other => return Err(format!("socket ended: {other:?}")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no frame in time".into()))
}

// ---------------------------------------------------------------------------
// A raw WebSocket client over TCP, for frames no library writes

/// How a raw connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// A close frame: code and reason.
    Close(u16, String),
    /// The TCP connection ended without a close frame.
    Eof,
    /// A read error (connection reset, ...).
    Error(String),
    /// Nothing within the wait.
    Timeout,
}

impl Ending {
    fn code(&self) -> Option<u16> {
        match self {
            Ending::Close(code, _) => Some(*code),
            _ => None,
        }
    }
}

struct RawSocket {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A client frame header: FIN, RSV bits (0–7), opcode, mask key, length.
fn frame_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(masked | len as u8);
    } else if len <= 0xffff {
        out.push(masked | 126);
        out.extend((len as u16).to_be_bytes());
    } else {
        out.push(masked | 127);
        out.extend(len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend(key);
    }
    out
}

/// A whole client frame, its payload masked with `mask`.
fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked, final text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    frame(true, 0, TEXT, Some(MASK), payload)
}

impl RawSocket {
    /// TCP connect and the HTTP upgrade, offering `ws-messaging`.
    async fn upgrade(addr: &str) -> RawSocket {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        RawSocket::upgrade_on(stream, addr, "/").await
    }

    /// The HTTP upgrade of `path` on a connected `stream`.
    async fn upgrade_on(stream: TcpStream, addr: &str, path: &str) -> RawSocket {
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: ws-messaging\r\n\r\n"
        );
        writer.write_all(request.as_bytes()).await.unwrap();
        tokio::time::timeout(WAIT, async {
            let mut status = String::new();
            reader.read_line(&mut status).await.unwrap();
            assert!(status.starts_with("HTTP/1.1 101"), "upgrade refused: {status:?}");
            let mut protocol = None;
            loop {
                let mut line = String::new();
                assert!(reader.read_line(&mut line).await.unwrap() > 0, "headers cut short");
                if line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("sec-websocket-protocol:") {
                    protocol = Some(v.trim().to_string());
                }
            }
            assert_eq!(protocol.as_deref(), Some("ws-messaging"));
        })
        .await
        .expect("the upgrade response in time");
        RawSocket { reader, writer }
    }

    /// Upgrade, auth with `secret`, and the `connect` event.
    async fn authed(addr: &str) -> RawSocket {
        let mut socket = RawSocket::upgrade(addr).await;
        socket.send(&text_frame(br#"{"token":"secret"}"#)).await.unwrap();
        assert_eq!(
            socket.next_json().await,
            json!({"name":"connect","args":[{"user":"alice"}]})
        );
        socket
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await
    }

    /// The next server frame: opcode and payload; `Ok(None)` at EOF.
    async fn read_frame(&mut self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        read_frame(&mut self.reader).await
    }

    /// The next text frame as JSON, skipping pings of the heartbeat.
    async fn next_json(&mut self) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.read_frame().await {
                    Ok(Some((TEXT, payload))) => {
                        let value: Value = serde_json::from_slice(&payload).expect("a JSON frame");
                        if value["name"] != "ping" {
                            return value;
                        }
                    }
                    Ok(Some((CLOSE, payload))) => panic!("closed: {:?}", close_of(&payload)),
                    Ok(Some(_)) => {}
                    other => panic!("socket ended: {other:?}"),
                }
            }
        })
        .await
        .expect("a frame in time")
    }

    /// Reads until the connection ends; how it ended.
    async fn ending(&mut self, within: Duration) -> Ending {
        ending_of(&mut self.reader, within).await
    }
}

async fn read_frame(reader: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 2];
    match reader.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let opcode = head[0] & 0x0f;
    assert_eq!(head[1] & 0x80, 0, "the server masked a frame");
    let len = match head[1] & 0x7f {
        126 => reader.read_u16().await? as u64,
        127 => reader.read_u64().await?,
        n => n as u64,
    };
    assert!(len <= 64 * MIB, "a {len}-byte frame from the server");
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await?;
    Ok(Some((opcode, payload)))
}

fn close_of(payload: &[u8]) -> Ending {
    if payload.len() < 2 {
        return Ending::Close(1005, String::new());
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    Ending::Close(code, String::from_utf8_lossy(&payload[2..]).into_owned())
}

async fn ending_of(reader: &mut BufReader<OwnedReadHalf>, within: Duration) -> Ending {
    tokio::time::timeout(within, async {
        loop {
            match read_frame(reader).await {
                Ok(Some((CLOSE, payload))) => return close_of(&payload),
                Ok(Some(_)) => {}
                Ok(None) => return Ending::Eof,
                Err(e) => return Ending::Error(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or(Ending::Timeout)
}

/// Reads a TCP stream until it ends; `true` when it ended (EOF or reset)
/// within `within`.
async fn tcp_ends(stream: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

// ---------------------------------------------------------------------------
// 1. Silent sockets

#[tokio::test]
async fn a_tcp_connection_that_never_upgrades_is_dropped_after_the_auth_timeout() {
    let mut server = EchoServer::start(&["--auth-timeout-ms", "300"]).await;
    // Nothing at all, and half a request (slowloris).
    for sent in [&b""[..], b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(sent).await.unwrap();
        assert!(
            tcp_ends(&mut stream, WAIT).await,
            "a silent TCP connection ({} bytes sent) still open after {WAIT:?}",
            sent.len()
        );
        let elapsed = started.elapsed();
        println!("silent TCP ({} bytes sent): dropped after {elapsed:?}", sent.len());
        assert!(
            elapsed >= AUTH_TIMEOUT - Duration::from_millis(50),
            "dropped early: {elapsed:?}"
        );
    }
    // Many at once are all dropped.
    let started = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..200 {
        streams.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    let ended = futures_util::future::join_all(streams.iter_mut().map(|s| tcp_ends(s, WAIT))).await;
    let open = ended.iter().filter(|e| !**e).count();
    println!(
        "200 silent TCP: all ended after {:?}, {open} still open",
        started.elapsed()
    );
    assert_eq!(open, 0, "silent TCP connections still open after {WAIT:?}");
    server.assert_serves().await;
}

#[tokio::test]
async fn an_upgraded_socket_that_never_authenticates_is_closed_with_4003() {
    let mut server = EchoServer::start(&["--auth-timeout-ms", "300"]).await;
    let started = Instant::now();
    let mut ws = tokio::time::timeout(WAIT, raw_connect(&server.url)).await.unwrap();
    let (code, reason) = next_close(&mut ws).await;
    let elapsed = started.elapsed();
    println!("upgraded, no auth: close {code} {reason:?} after {elapsed:?}");
    assert_eq!(code, 4003);
    assert!(
        elapsed >= AUTH_TIMEOUT - Duration::from_millis(50),
        "closed early: {elapsed:?}"
    );

    // Many at once: each gets its 4003.
    let started = Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..100 {
        sockets.push(RawSocket::upgrade(server.addr()).await);
    }
    let endings = futures_util::future::join_all(sockets.iter_mut().map(|s| s.ending(WAIT))).await;
    let wrong: Vec<_> = endings.iter().filter(|e| e.code() != Some(4003)).collect();
    println!(
        "100 upgraded, no auth: ended after {:?}; not 4003: {wrong:?}",
        started.elapsed()
    );
    assert!(wrong.is_empty(), "{wrong:?}");
    server.assert_serves().await;
}

#[tokio::test]
async fn many_silent_sockets_do_not_stop_a_good_client() {
    // A long auth timeout: the silent sockets stay while the good client runs.
    let mut server = EchoServer::start(&["--auth-timeout-ms", "30000"]).await;
    let baseline = server.fds();
    let mut tcp = Vec::new();
    let mut upgraded = Vec::new();
    for _ in 0..250 {
        tcp.push(TcpStream::connect(server.addr()).await.unwrap());
        upgraded.push(RawSocket::upgrade(server.addr()).await);
    }
    // The server has accepted all 500 (so they are really held open).
    let fds = server.wait_fds(|n| n >= baseline + 500, WAIT).await;
    println!("500 silent sockets: server fds {baseline} -> {fds}");
    assert!(fds >= baseline + 500, "the server holds {fds} fds, baseline {baseline}");
    let started = Instant::now();
    server.assert_serves().await;
    println!(
        "good client served in {:?} beside 500 silent sockets",
        started.elapsed()
    );
    // Still served after they all go away.
    drop(tcp);
    drop(upgraded);
    let fds = server.wait_fds(|n| n <= baseline + 5, WAIT).await;
    println!("silent sockets gone: server fds {fds}");
    assert!(
        fds <= baseline + 5,
        "the server still holds {fds} fds, baseline {baseline}"
    );
    server.assert_serves().await;
}

/// A TCP connection whose receive buffer is small, so that the server's
/// send path fills soon when this side never reads.
async fn small_window_stream(addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    tokio::time::timeout(WAIT, socket.connect(addr.parse().unwrap()))
        .await
        .expect("connect in time")
        .expect("connect")
}

#[tokio::test]
async fn a_peer_that_floods_pings_and_never_reads_cannot_hold_the_shutdown() {
    // Standalone, and through axum (`--http`, at `/ws`).
    for (mode, path) in [(None, "/"), (Some("--http"), "/ws")] {
        let mut args = vec!["--auth-timeout-ms", "300"];
        args.extend(mode);
        let mut server = EchoServer::start(&args).await;
        let addr = server.addr().to_string();
        let stream = small_window_stream(&addr).await;
        let mut socket = RawSocket::upgrade_on(stream, &addr, path).await;
        // Pings, never a read: the pongs fill the server's send path (16
        // MiB of pings; the writes fail once the server drops the socket).
        let batch = frame(true, 0, PING, Some(MASK), &[0x55; 125]).repeat(512);
        let flood = tokio::time::timeout(Duration::from_secs(30), async {
            for _ in 0..256 {
                if socket.send(&batch).await.is_err() {
                    return;
                }
            }
        });
        let _ = flood.await;
        server.assert_alive();
        // SIGTERM: the server closes every connection with 1001 and exits.
        let started = Instant::now();
        let pid = server.child.id().unwrap().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
        assert!(killed.success());
        let exited = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await;
        let status = exited
            .unwrap_or_else(|_| panic!("{mode:?}: the server had not exited 20 s after SIGTERM"))
            .unwrap();
        println!("{mode:?}: exited {status} {:?} after SIGTERM", started.elapsed());
        assert!(status.success(), "{mode:?}: {status}");
        drop(socket);
    }
}

// ---------------------------------------------------------------------------
// 2. Oversized frames and messages

/// Streams `frames` (each a header, then `payload_len` zero bytes) until the
/// server's close arrives; returns how the connection ended and how many
/// bytes went out by then.
async fn stream_until_close(socket: RawSocket, headers: Vec<Vec<u8>>, payload_len: u64) -> (Ending, u64, Duration) {
    let RawSocket { mut reader, mut writer } = socket;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writer_task = tokio::spawn(async move {
        let chunk = vec![0u8; 256 << 10];
        for header in headers {
            if writer.write_all(&header).await.is_err() {
                return;
            }
            let mut left = payload_len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                if writer.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n as u64;
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        // Everything sent: keep the socket open for the close.
        std::future::pending::<()>().await;
    });
    let started = Instant::now();
    let ending = ending_of(&mut reader, Duration::from_secs(30)).await;
    let elapsed = started.elapsed();
    // Not one more byte after the close.
    writer_task.abort();
    let _ = writer_task.await;
    (ending, sent.load(Ordering::Relaxed), elapsed)
}

#[tokio::test]
async fn a_120_mib_frame_is_refused_with_1009_without_reading_it() {
    let mut server = EchoServer::start(&[]).await;
    let mut observed = Vec::new();
    for opcode in [BINARY, TEXT] {
        let socket = RawSocket::authed(server.addr()).await;
        let baseline = server.rss();
        server.reset_peak();
        let header = frame_header(true, 0, opcode, Some(ZERO_MASK), 120 * MIB);
        let (ending, sent, elapsed) = stream_until_close(socket, vec![header], 120 * MIB).await;
        let growth = server.peak_rss().saturating_sub(baseline);
        println!(
            "120 MiB frame (opcode {opcode}): {ending:?} after {elapsed:?}, {:.1} MiB sent, peak RSS +{:.1} MiB",
            mib(sent),
            mib(growth)
        );
        server.assert_serves().await;
        observed.push((opcode, ending, growth));
    }
    for (opcode, ending, growth) in observed {
        assert_eq!(ending.code(), Some(1009), "opcode {opcode}: {ending:?}");
        assert!(
            growth < 64 * MIB,
            "opcode {opcode}: peak RSS grew {:.1} MiB",
            mib(growth)
        );
    }
}

#[tokio::test]
async fn a_120_mib_message_in_1_mib_fragments_is_refused_with_1009() {
    let mut server = EchoServer::start(&[]).await;
    let socket = RawSocket::authed(server.addr()).await;
    let baseline = server.rss();
    server.reset_peak();
    let headers: Vec<_> = (0..120)
        .map(|i| {
            let opcode = if i == 0 { BINARY } else { CONTINUATION };
            frame_header(i == 119, 0, opcode, Some(ZERO_MASK), MIB)
        })
        .collect();
    let (ending, sent, elapsed) = stream_until_close(socket, headers, MIB).await;
    let growth = server.peak_rss().saturating_sub(baseline);
    println!(
        "120 x 1 MiB fragments: {ending:?} after {elapsed:?}, {:.1} MiB sent, peak RSS +{:.1} MiB",
        mib(sent),
        mib(growth)
    );
    server.assert_serves().await;
    assert_eq!(ending.code(), Some(1009), "{ending:?}");
    // The server may buffer up to its limit (100 MiB), not the whole message.
    assert!(growth < 116 * MIB, "peak RSS grew {:.1} MiB", mib(growth));
}

#[tokio::test]
async fn after_a_1009_close_the_server_ends_the_tcp_connection_at_once() {
    let mut server = EchoServer::start(&["--max-message-bytes", "1024"]).await;
    let mut ws = good_client(&server.url).await;
    ws.send(Message::text(format!("[\"{}\"]", "x".repeat(4096))))
        .await
        .unwrap();
    assert_eq!(next_close(&mut ws).await, (1009, "Message too big".into()));
    // The client answered the close and waits for the server to end the
    // TCP connection (RFC 6455 § 7.1.1): the server half-closes it before
    // draining what the peer may still send, instead of after the drain's
    // 2 s bound.
    let closed_at = Instant::now();
    let ended = tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    let waited = closed_at.elapsed();
    println!("TCP end {waited:?} after the 1009 close");
    assert!(ended.is_ok(), "the TCP connection did not end");
    assert!(
        waited < Duration::from_secs(1),
        "the TCP connection ended {waited:?} after the close handshake, not at once"
    );
    server.assert_serves().await;
}

/// `shout(<16 KiB>)`, `n` times, from `ws`'s write half while its read
/// half counts the `shouted` echoes (pausing `read_pause` every 16 of
/// them); how many came back, and how the socket ended if it did.
async fn shout_and_read(ws: RawWs, n: usize, read_pause: Option<Duration>) -> (usize, Option<String>) {
    let (mut sink, mut stream) = ws.split();
    let shout = Message::text(json!({"name":"shout","args":["x".repeat(16 << 10)]}).to_string());
    let writer = tokio::spawn(async move {
        for _ in 0..n {
            if sink.send(shout.clone()).await.is_err() {
                break;
            }
        }
        sink
    });
    let mut echoes = 0;
    let mut ended = None;
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while echoes < n {
            match stream.next().await {
                Some(Ok(Message::Text(text))) if text.contains("\"shouted\"") => {
                    echoes += 1;
                    // A reader slower than the server: a pause every 16 echoes.
                    if let Some(pause) = read_pause.filter(|_| echoes % 16 == 0) {
                        tokio::time::sleep(pause).await;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    ended = Some(format!("closed: {frame:?}"));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    ended = Some(format!("error: {e}"));
                    return;
                }
                None => {
                    ended = Some("ended".into());
                    return;
                }
            }
        }
    })
    .await;
    if read.is_err() {
        ended = Some(format!("only {echoes} echoes within 120 s"));
    }
    let _ = tokio::time::timeout(WAIT, writer).await;
    (echoes, ended)
}

#[tokio::test]
async fn a_client_that_floods_and_reads_its_own_echoes_is_slowed_not_closed() {
    // A backlog limit of 4 MiB.
    let mut server = EchoServer::start(&["--max-backlog-bytes", "4194304"]).await;
    let ws = good_client(&server.url).await;
    // 800 × 16 KiB (three times the backlog's limit), sent as fast as the
    // socket takes them, while the echoes are read at about 3 MB/s.
    let (echoes, ended) = shout_and_read(ws, 800, Some(Duration::from_millis(80))).await;
    println!("{echoes} echoes, ended: {ended:?}");
    assert_eq!((echoes, ended), (800, None));
    server.assert_serves().await;
}

#[tokio::test]
async fn a_shutdown_close_reaches_a_reader_far_behind() {
    let mut server = EchoServer::start(&[]).await;
    let addr = server.addr().to_string();
    // A reader of about 1 MB/s, with a small receive window, that starts
    // reading once the server is told to stop.
    let mut slow = RawSocket::upgrade_on(small_window_stream(&addr).await, &addr, "/").await;
    slow.send(&text_frame(br#"{"token":"secret"}"#)).await.unwrap();
    assert_eq!(slow.next_json().await["name"], "connect");
    let go = Arc::new(tokio::sync::Notify::new());
    let start = go.clone();
    let reading = tokio::spawn(async move {
        start.notified().await;
        let mut frames = 0usize;
        let ending = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match slow.read_frame().await {
                    Ok(Some((CLOSE, payload))) => return close_of(&payload),
                    Ok(Some(_)) => {
                        frames += 1;
                        if frames % 32 == 0 {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                    Ok(None) => return Ending::Eof,
                    Err(e) => return Ending::Error(e.to_string()),
                }
            }
        })
        .await
        .unwrap_or(Ending::Timeout);
        (ending, frames)
    });
    // 9 MiB of shouts (under the 16 MiB backlog limit): the slow reader's
    // backlog is 9 s deep when the server is told to stop, three times the
    // close grace.
    let (echoes, ended) = shout_and_read(good_client(&server.url).await, 576, None).await;
    assert_eq!((echoes, ended), (576, None));
    let pid = server.child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap()
        .success());
    go.notify_one();
    let (ending, frames) = reading.await.unwrap();
    println!("the slow reader read {frames} frames, then {ending:?}");
    assert_eq!(ending, Ending::Close(1001, String::new()));
    let exited = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await;
    assert!(exited.expect("exits after SIGTERM").unwrap().success());
}

// ---------------------------------------------------------------------------
// 3. Floods of invalid frames, WebSocket protocol violations

/// Frames that each get exactly one `preprocessingError`.
const MALFORMED: &[&str] = &[
    "not json",
    "{}",
    "[]",
    r#"{"name":1,"args":[]}"#,
    "\"\"",
    "null",
    "42",
    "{",
    "",
    r#"{"name":"echo"}"#,
    r#"{"name":"echo","args":{}}"#,
    r#"{"name":"echo","args":[],"id":0}"#,
    r#"{"name":"echo","args":[],"id":"1"}"#,
    r#"{"name":"echo","args":[],"extra":1}"#,
    r#"{"name":["echo"],"args":[]}"#,
    r#"{"name":"","args":[],"id":1}"#,
    r#"{"id":1}"#,
    r#"{"id":1,"result":1,"error":2}"#,
    r#"{"name":"echo","args":[]} trailing"#,
    r#"{"name":"echo","args":[1],"id":1"#,
];

#[tokio::test]
async fn a_flood_of_malformed_envelopes_is_answered_one_by_one() {
    const COUNT: usize = 20_000;
    let mut server = EchoServer::start(&[]).await;
    let ws = good_client(&server.url).await;
    let (mut sink, mut stream) = ws.split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..COUNT {
            sink.feed(Message::text(MALFORMED[i % MALFORMED.len()])).await.unwrap();
            if i % 64 == 63 {
                sink.flush().await.unwrap();
            }
        }
        sink.flush().await.unwrap();
        sink
    });
    let mut errors = 0usize;
    let mut texts = std::collections::BTreeMap::<String, usize>::new();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while errors < COUNT {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("a JSON frame");
                    if value["name"] == "ping" {
                        continue;
                    }
                    assert_eq!(value["name"], "preprocessingError", "after {errors} errors: {value}");
                    errors += 1;
                    let text = value["args"][0].as_str().unwrap_or("?");
                    // Group decode errors by their start (their positions differ).
                    let key: String = text.chars().take(40).collect();
                    *texts.entry(key).or_default() += 1;
                }
                Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
                Some(Ok(_)) => {}
                other => return Err(format!("socket ended: {other:?}")),
            }
        }
        Ok(())
    })
    .await;
    println!(
        "{errors} preprocessingErrors for {COUNT} malformed frames in {:?}: {texts:#?}",
        started.elapsed()
    );
    outcome
        .unwrap_or_else(|_| Err("timed out".into()))
        .unwrap_or_else(|e| panic!("after {errors} of {COUNT}: {e}"));
    assert_eq!(errors, COUNT);
    let sink = writer.await.unwrap();
    let mut ws = sink.reunite(stream).unwrap();
    // Not one more error: the next frame is the echo's reply.
    assert_echo(&mut ws, 1, json!("after the flood")).await;
    server.assert_serves().await;
}

#[tokio::test]
async fn websocket_protocol_violations_are_closed_with_1002() {
    let mut server = EchoServer::start(&[]).await;
    let echo = br#"{"name":"echo","args":[1],"id":1}"#;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("reserved data opcode 0x3", vec![frame(true, 0, 0x3, Some(MASK), b"x")]),
        (
            "reserved control opcode 0xB",
            vec![frame(true, 0, 0xb, Some(MASK), b"")],
        ),
        ("RSV1 set (no extension)", vec![frame(true, 4, TEXT, Some(MASK), echo)]),
        ("RSV3 set", vec![frame(true, 1, TEXT, Some(MASK), echo)]),
        ("unmasked client frame", vec![frame(true, 0, TEXT, None, echo)]),
        (
            "continuation with nothing to continue",
            vec![frame(true, 0, CONTINUATION, Some(MASK), b"x")],
        ),
        (
            "new message inside a fragmented one",
            vec![
                frame(false, 0, TEXT, Some(MASK), b"{\"name\""),
                frame(true, 0, TEXT, Some(MASK), echo),
            ],
        ),
        ("fragmented ping", vec![frame(false, 0, PING, Some(MASK), b"x")]),
        (
            "ping with 126 bytes",
            vec![frame(true, 0, PING, Some(MASK), &[b'p'; 126])],
        ),
        (
            "close with code 1005",
            vec![frame(true, 0, CLOSE, Some(MASK), &1005u16.to_be_bytes())],
        ),
        (
            "close with a 1-byte payload",
            vec![frame(true, 0, CLOSE, Some(MASK), &[3])],
        ),
    ];
    let mut observed = Vec::new();
    for (name, frames) in cases {
        let mut socket = RawSocket::authed(server.addr()).await;
        for f in frames {
            let _ = socket.send(&f).await;
        }
        let ending = socket.ending(WAIT).await;
        println!("{name}: {ending:?}");
        observed.push((name, ending));
        server.assert_serves().await;
    }
    let wrong: Vec<_> = observed.iter().filter(|(_, e)| e.code() != Some(1002)).collect();
    assert!(wrong.is_empty(), "not closed with 1002: {wrong:#?}");
}

// ---------------------------------------------------------------------------
// 4. Deep nesting

fn nested_arrays(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

fn nested_objects(depth: usize) -> String {
    r#"{"a":"#.repeat(depth) + "1" + &"}".repeat(depth)
}

/// Sends `frame`, then `echo` with `id`; returns the frames that came before
/// the echo's reply (their first 80 characters).
async fn before_echo(ws: &mut RawWs, frame: String, id: u64) -> Vec<String> {
    ws.send(Message::text(frame)).await.unwrap();
    ws.send(Message::text(format!(r#"{{"name":"echo","args":["ok"],"id":{id}}}"#)))
        .await
        .unwrap();
    let reply = format!(r#"{{"id":{id},"result":"ok"}}"#);
    let mut before = Vec::new();
    loop {
        let text = next_text(ws)
            .await
            .unwrap_or_else(|e| panic!("waiting for echo {id}: {e}"));
        if text == reply {
            return before;
        }
        before.push(text.chars().take(80).collect());
        assert!(before.len() < 10, "{before:?}");
    }
}

#[tokio::test]
async fn deeply_nested_values_are_refused_without_a_crash() {
    const DEPTH: usize = 100_000;
    let mut server = EchoServer::start(&[]).await;
    let mut ws = good_client(&server.url).await;
    for (kind, deep) in [("arrays", nested_arrays(DEPTH)), ("objects", nested_objects(DEPTH))] {
        // As the argument of an invoke: a preprocessing error or an error reply.
        let call = format!(r#"{{"name":"echo","args":[{deep}],"id":1}}"#);
        let before = before_echo(&mut ws, call, 2).await;
        println!("{DEPTH} nested {kind} in an invoke: {before:?}");
        assert_eq!(before.len(), 1, "{before:?}");
        assert!(
            before[0].starts_with(r#"{"name":"preprocessingError","#) || before[0].starts_with(r#"{"id":1,"error""#),
            "{before:?}"
        );
        server.assert_alive();
        // In an event, an unknown key and a reply: no crash, the connection goes on.
        for (what, frame) in [
            ("an event", format!(r#"{{"name":"say","args":[{deep}]}}"#)),
            (
                "an unknown key",
                format!(r#"{{"name":"echo","args":[1],"id":3,"x":{deep}}}"#),
            ),
            ("a reply", format!(r#"{{"id":5,"result":{deep}}}"#)),
        ] {
            let before = before_echo(&mut ws, frame, 4).await;
            println!("{DEPTH} nested {kind} in {what}: {before:?}");
            assert!(
                before.iter().all(|f| f.starts_with(r#"{"name":"preprocessingError","#)),
                "{what}: {before:?}"
            );
            server.assert_alive();
        }
        // As the auth value: refused with 4003.
        let mut auth = tokio::time::timeout(WAIT, raw_connect(&server.url)).await.unwrap();
        auth.send(Message::text(format!(r#"{{"token":{deep}}}"#)))
            .await
            .unwrap();
        let (code, reason) = next_close(&mut auth).await;
        println!("{DEPTH} nested {kind} as the auth value: close {code} {reason:?}");
        assert_eq!(code, 4003);
        server.assert_serves().await;
    }
}

// ---------------------------------------------------------------------------
// 5. Invalid UTF-8

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_is_closed_with_1007() {
    let mut server = EchoServer::start(&[]).await;
    let bad = b"{\"name\":\"echo\",\"args\":[\"\xff\xfe\"],\"id\":1}";
    let cases: Vec<(&str, bool, Vec<Vec<u8>>)> = vec![
        ("one text frame", true, vec![text_frame(bad)]),
        (
            // A sequence cut between two fragments, then an invalid byte.
            "fragmented text",
            true,
            vec![
                frame(false, 0, TEXT, Some(MASK), b"{\"name\":\"echo\",\"args\":[\"\xe2\x82"),
                frame(true, 0, CONTINUATION, Some(MASK), b"\xff\"],\"id\":1}"),
            ],
        ),
        ("the auth frame", false, vec![text_frame(b"{\"token\":\"\xff\xfe\"}")]),
    ];
    let mut observed = Vec::new();
    for (name, authed, frames) in cases {
        let mut socket = if authed {
            RawSocket::authed(server.addr()).await
        } else {
            RawSocket::upgrade(server.addr()).await
        };
        for f in frames {
            let _ = socket.send(&f).await;
        }
        let ending = socket.ending(WAIT).await;
        println!("invalid UTF-8 in {name}: {ending:?}");
        observed.push((name, ending));
        server.assert_serves().await;
    }
    let wrong: Vec<_> = observed.iter().filter(|(_, e)| e.code() != Some(1007)).collect();
    assert!(wrong.is_empty(), "not closed with 1007: {wrong:#?}");
}

#[tokio::test]
async fn invalid_utf8_in_a_binary_frame_is_a_preprocessing_error() {
    // A binary frame carries no UTF-8 promise: the JSON codec refuses it.
    let mut server = EchoServer::start(&[]).await;
    let mut socket = RawSocket::authed(server.addr()).await;
    for bad in [
        &b"{\"name\":\"echo\",\"args\":[\"\xff\xfe\"],\"id\":1}"[..],
        b"\xff\xfe",
        b"{\"name\":\"ec\xc3\",\"args\":[],\"id\":2}",
    ] {
        socket.send(&frame(true, 0, BINARY, Some(MASK), bad)).await.unwrap();
        let reply = socket.next_json().await;
        println!("invalid UTF-8 in a binary frame: {reply}");
        assert_eq!(reply["name"], "preprocessingError", "{reply}");
        socket
            .send(&text_frame(br#"{"name":"echo","args":["fine"],"id":9}"#))
            .await
            .unwrap();
        assert_eq!(socket.next_json().await, json!({"id":9,"result":"fine"}));
    }
    server.assert_serves().await;
}

// ---------------------------------------------------------------------------
// 6. Absurd ids

/// What JavaScript makes of an id literal: `Some(n)` when `validateId`
/// (`typeof id === 'number' && id % 1 === 0 && id > 0`) accepts it, which
/// is `Number.isInteger(n) && n > 0`; `None` otherwise.
fn javascript_id(literal: &str) -> Option<f64> {
    let value: f64 = match serde_json::from_str::<Value>(literal) {
        Ok(Value::Number(n)) => n.as_f64()?,
        Ok(_) => return None,
        // JSON.parse reads 1e400 as Infinity: not an integer.
        Err(_) => return None,
    };
    (value.is_finite() && value.fract() == 0.0 && value > 0.0).then_some(value)
}

/// Sends `echo("x")` with the id `literal`; the answer's text.
async fn echo_with_id(ws: &mut RawWs, literal: &str) -> String {
    let call = format!(r#"{{"name":"echo","args":["x"],"id":{literal}}}"#);
    ws.send(Message::text(call)).await.unwrap();
    let text = next_text(ws).await.unwrap_or_else(|e| panic!("id {literal}: {e}"));
    println!("id {literal}: {text}");
    text
}

/// Whether `text` answers an `echo("x")` with the id `literal` the way a
/// JavaScript peer does: a reply with the same id (compared as doubles) or
/// `preprocessingError("Error: Validation error")`.
fn answered_like_javascript(literal: &str, text: &str) -> bool {
    let reply: Value = serde_json::from_str(text).unwrap();
    match javascript_id(literal) {
        Some(id) => reply["id"].as_f64() == Some(id) && reply["result"] == "x",
        None => reply == json!({"name":"preprocessingError","args":["Error: Validation error"]}),
    }
}

#[tokio::test]
async fn absurd_invoke_ids_are_answered_or_refused_never_hung() {
    let mut server = EchoServer::start(&[]).await;
    let mut ws = good_client(&server.url).await;
    let literals = [
        "0",
        "-1",
        "-0",
        "1.5",
        "-1e400",
        "1e400",
        "18446744073709551616",
        "9007199254740993",
        "1.0",
        "1e3",
        "\"1\"",
        "null",
        "true",
        "[]",
        "{}",
        "[1]",
    ];
    let mut wrong = Vec::new();
    for literal in literals {
        let text = echo_with_id(&mut ws, literal).await;
        let ok = if literal.ends_with("e400") {
            // Beyond a double: a preprocessing error of any text (JavaScript
            // says `Validation error`; see the test below).
            let reply: Value = serde_json::from_str(&text).unwrap();
            reply["name"] == "preprocessingError" && reply["args"][0].is_string()
        } else {
            answered_like_javascript(literal, &text)
        };
        if !ok {
            wrong.push(format!("id {literal}: {text}"));
        }
        server.assert_alive();
    }
    assert_echo(&mut ws, 1, json!("after the ids")).await;
    assert!(wrong.is_empty(), "answered unlike JavaScript: {wrong:#?}");
}

#[tokio::test]
async fn replies_with_absurd_ids_have_no_effect() {
    let mut server = EchoServer::start(&[]).await;
    let mut ws = good_client(&server.url).await;
    // Valid but unknown ids: ignored silently.
    for reply in [
        r#"{"id":99999999,"result":1}"#,
        r#"{"id":18446744073709551615,"error":"x"}"#,
        r#"{"id":1,"result":1}"#,
    ] {
        let before = before_echo(&mut ws, reply.to_string(), 7).await;
        println!("{reply}: {before:?}");
        assert!(before.is_empty(), "{reply}: {before:?}");
    }
    // Invalid ids: a validation error.
    for reply in [
        r#"{"id":-5,"result":1}"#,
        r#"{"id":0,"error":"x"}"#,
        r#"{"id":1.5,"result":1}"#,
        r#"{"id":"7","result":1}"#,
        r#"{"id":null,"result":1}"#,
    ] {
        let before = before_echo(&mut ws, reply.to_string(), 8).await;
        println!("{reply}: {before:?}");
        assert_eq!(
            before,
            vec![r#"{"name":"preprocessingError","args":["Error: Validation error"]}"#.to_string()],
            "{reply}"
        );
    }
    server.assert_serves().await;
}

// ---------------------------------------------------------------------------
// 7. Churn

/// Authenticates, invokes `sleep(ms)` and goes away without waiting for it.
async fn leave_a_sleep_behind(url: &str, ms: u64) {
    let mut ws = good_client(url).await;
    let call = format!(r#"{{"name":"sleep","args":[{ms},1],"id":1}}"#);
    ws.send(Message::text(call)).await.unwrap();
    // A ping round trip: the invoke was read before the socket goes.
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Pong(_)) {
                return;
            }
        }
        panic!("socket ended before the pong");
    })
    .await
    .expect("a pong in time");
}

/// One connect/close cycle of the churn, in one of four ways.
async fn churn_cycle(url: &str, addr: &str, i: usize) {
    match i % 4 {
        // A clean close after an echo.
        0 => {
            let mut ws = good_client(url).await;
            assert_echo(&mut ws, 1, json!(i)).await;
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() {}
        }
        // Authenticated, then the TCP connection just goes.
        1 => drop(RawSocket::authed(addr).await),
        // Upgraded, then gone before auth.
        2 => drop(RawSocket::upgrade(addr).await),
        // An invoke still running (a 100 ms sleep), then gone: its reply
        // has nowhere to go.
        _ => leave_a_sleep_behind(url, 100).await,
    }
}

#[tokio::test]
async fn connection_churn_leaves_nothing_behind() {
    const ROUNDS: usize = 2;
    const CYCLES: usize = 1_000;
    const CONCURRENCY: usize = 32;
    let mut server = EchoServer::start(&["--auth-timeout-ms", "2000"]).await;
    // Warm up the allocator and the runtime's threads before the baseline.
    server.assert_serves().await;
    let fds_before = server.fds();
    let mut rss = vec![server.rss()];
    let url = server.url.clone();
    let addr = server.addr().to_string();
    for round in 0..ROUNDS {
        let started = Instant::now();
        futures_util::stream::iter(0..CYCLES)
            .for_each_concurrent(CONCURRENCY, |i| churn_cycle(&url, &addr, i))
            .await;
        let churn = started.elapsed();
        let fds = server.wait_fds(|n| n <= fds_before, Duration::from_secs(10)).await;
        rss.push(server.rss());
        println!(
            "churn round {round}: {CYCLES} cycles in {churn:?}; server fds {fds_before} -> {fds}, RSS {:.1} MiB",
            mib(rss[round + 1])
        );
        assert!(
            fds <= fds_before,
            "the server holds {fds} fds after the churn, {fds_before} before"
        );
    }
    server.assert_serves().await;
    // The first round may grow the allocator's pools; later rounds reuse them.
    let total = rss[ROUNDS].saturating_sub(rss[0]);
    let last = rss[ROUNDS].saturating_sub(rss[ROUNDS - 1]);
    assert!(total < 32 * MIB, "RSS grew {:.1} MiB over the churn", mib(total));
    assert!(last < 8 * MIB, "RSS grew {:.1} MiB in the last round", mib(last));
}

#[tokio::test]
async fn handlers_outliving_their_connection_do_not_hold_its_memory() {
    // A client may invoke a slow procedure and go: the handler runs on (as in
    // JavaScript), but what the closed connection held should be freed, or
    // connecting, invoking and leaving in a loop grows the server.
    const CONNECTIONS: usize = 1_000;
    const CONCURRENCY: usize = 32;
    let mut server = EchoServer::start(&[]).await;
    let url = server.url.clone();
    let fds_before = server.fds();
    // Warm-up: the same traffic with handlers that end at once.
    futures_util::stream::iter(0..CONNECTIONS)
        .for_each_concurrent(CONCURRENCY, |_| leave_a_sleep_behind(&url, 0))
        .await;
    server.wait_fds(|n| n <= fds_before, Duration::from_secs(10)).await;
    let before = server.rss();
    futures_util::stream::iter(0..CONNECTIONS)
        .for_each_concurrent(CONCURRENCY, |_| leave_a_sleep_behind(&url, 60_000))
        .await;
    let fds = server.wait_fds(|n| n <= fds_before, Duration::from_secs(10)).await;
    let after = server.rss();
    let per_connection = after.saturating_sub(before) / CONNECTIONS as u64;
    println!(
        "{CONNECTIONS} closed connections with a 60 s handler running: RSS {:.1} -> {:.1} MiB, {per_connection} B each",
        mib(before),
        mib(after)
    );
    assert!(fds <= fds_before, "the server holds {fds} fds, {fds_before} before");
    server.assert_serves().await;
    assert!(
        per_connection < 4096,
        "each closed connection with a running handler holds {per_connection} B"
    );
}
