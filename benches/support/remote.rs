//! Cross-process measurement, shared by benches/remote.rs and the
//! cross-process section of benches/summary.rs: the `echo_server` example and
//! four raw tokio-tungstenite baselines run as child processes, and a load
//! client in the bench process speaks the ws-messaging wire format
//! (docs/protocol.md) over raw tokio-tungstenite with frames encoded once,
//! before the clock starts.
//!
//! The baselines are the bench binary itself, re-executed with
//! `WSM_REMOTE_ROLE` set (see [`serve_role_if_asked`]); each prints
//! `listening on 127.0.0.1:PORT` like the echo_server:
//!
//! - `raw-echo`: every data frame is sent back as it is;
//! - `serde-echo` (codec in `WSM_REMOTE_CODEC`): every frame is parsed into
//!   the codec's dynamic value (`serde_json::Value` for JSON) and answered
//!   with the ack `{"id":..,"result":<args[0]>}`, no RPC layer;
//! - `raw-sink`: counts data frames; a text frame `count` is answered with
//!   the count so far (not counted);
//! - `raw-fanout`: a data frame from any connection is sent, as one
//!   `Message` cloned (the payload is shared, not copied), to every
//!   connected client.
//!
//! Not a bench on its own: `cargo bench --bench remote` runs it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use ws_messaging::envelope::validate;
use ws_messaging::{Codec, Frame, FrameKind};

/// The environment variable that makes the bench binary a baseline server.
pub(crate) const ROLE_VAR: &str = "WSM_REMOTE_ROLE";

/// The codec of the `serde-echo` role.
pub(crate) const CODEC_VAR: &str = "WSM_REMOTE_CODEC";

/// A raw client connection.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Upper bound of every wait of the load client.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// The invoke ids the load client cycles through: each has the same encoded
/// length in JSON (2 digits), MessagePack (1 byte) and CBOR (2 bytes), so
/// every ack of a run has one length.
pub(crate) const FIRST_ID: u64 = 24;

// ---------------------------------------------------------------------------
// The baseline servers (child processes).

/// The codecs the cross-process runs support: those whose echo_server echoes
/// the small object (bincode's echoes strings, protobuf's its own messages).
pub(crate) const CODECS: [&str; 3] = ["json", "msgpack", "cbor"];

/// If this process was started as a baseline server (`WSM_REMOTE_ROLE`),
/// serves until killed and never returns.
pub(crate) fn serve_role_if_asked() {
    let Ok(role) = std::env::var(ROLE_VAR) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        match role.as_str() {
            "raw-echo" => serve(listener, addr, super::echo_frames).await,
            "serde-echo" => {
                let codec = std::env::var(CODEC_VAR).unwrap_or_else(|_| "json".into());
                match codec.as_str() {
                    "json" => {
                        serve(listener, addr, |ws| {
                            serde_echo::<_, serde_json::Value>(ws_messaging_json::Json, ws)
                        })
                        .await
                    }
                    "msgpack" => {
                        serve(listener, addr, |ws| {
                            serde_echo::<_, ws_messaging_msgpack::Value>(ws_messaging_msgpack::MsgPack, ws)
                        })
                        .await
                    }
                    "cbor" => {
                        serve(listener, addr, |ws| {
                            serde_echo::<_, ws_messaging_cbor::Value>(ws_messaging_cbor::Cbor, ws)
                        })
                        .await
                    }
                    other => Err(format!("serde-echo: unknown codec {other:?} (json, msgpack, cbor)")),
                }
            }
            "raw-sink" => {
                let count = Arc::new(AtomicU64::new(0));
                serve(listener, addr, move |ws| raw_sink(ws, count.clone())).await
            }
            "raw-fanout" => {
                let clients: Registry = Arc::default();
                let next = Arc::new(AtomicU64::new(0));
                serve_fanout(listener, addr, clients, next).await
            }
            other => Err(format!(
                "{ROLE_VAR}={other:?}: not a role (raw-echo, serde-echo, raw-sink, raw-fanout)"
            )),
        }
    });
    if let Err(e) = result {
        eprintln!("{role}: {e}");
    }
    std::process::exit(1);
}

/// The handshake callback: echoes the `ws-messaging` subprotocol when it is
/// offered, as the ws-messaging server does.
#[allow(clippy::result_large_err)] // the signature tungstenite asks for
fn echo_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "ws-messaging");
    if offered {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    }
    Ok(response)
}

fn print_ready(addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Accepts connections for ever, each handled by `handle` in its own task.
async fn serve<H, F>(listener: TcpListener, addr: SocketAddr, handle: H) -> Result<(), String>
where
    H: Fn(WebSocketStream<TcpStream>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    print_ready(addr);
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
        let _ = stream.set_nodelay(true);
        let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, echo_subprotocol).await else {
            continue;
        };
        tokio::spawn(handle(ws));
    }
}

/// The codec's dynamic value, as far as the serde echo needs it.
trait Dynamic: Serialize + DeserializeOwned + Send + 'static {
    /// The `id` and the first argument of an invoke envelope.
    fn id_and_first_arg(self) -> Option<(u64, Self)>;
}

impl Dynamic for serde_json::Value {
    fn id_and_first_arg(mut self) -> Option<(u64, Self)> {
        let id = self.get("id")?.as_u64()?;
        let arg = self.get_mut("args")?.as_array_mut()?.first_mut()?.take();
        Some((id, arg))
    }
}

impl Dynamic for ws_messaging_msgpack::Value {
    fn id_and_first_arg(self) -> Option<(u64, Self)> {
        let Self::Map(entries) = self else { return None };
        let mut id = None;
        let mut arg = None;
        for (key, value) in entries {
            match key.as_str() {
                Some("id") => id = value.as_u64(),
                Some("args") => {
                    if let Self::Array(args) = value {
                        arg = args.into_iter().next();
                    }
                }
                _ => {}
            }
        }
        Some((id?, arg?))
    }
}

impl Dynamic for ws_messaging_cbor::Value {
    fn id_and_first_arg(self) -> Option<(u64, Self)> {
        let Self::Map(entries) = self else { return None };
        let mut id = None;
        let mut arg = None;
        for (key, value) in entries {
            match key.as_text() {
                Some("id") => id = value.as_integer().and_then(|i| u64::try_from(i).ok()),
                Some("args") => {
                    if let Self::Array(args) = value {
                        arg = args.into_iter().next();
                    }
                }
                _ => {}
            }
        }
        Some((id?, arg?))
    }
}

/// Parses every frame into the codec's dynamic value `V` and answers
/// `{"id":..,"result":<args[0]>}`; batches its flushes like [`super::echo_frames`].
async fn serde_echo<C: Codec, V: Dynamic>(codec: C, ws: WebSocketStream<TcpStream>) {
    let (mut tx, mut rx) = ws.split();
    let reply = |message: Message| -> Option<Message> {
        if !(message.is_text() || message.is_binary()) {
            return None;
        }
        let value: V = codec.decode_value(&message.into_data()).ok()?;
        let (id, arg) = value.id_and_first_arg()?;
        let mut out = Vec::with_capacity(128);
        codec.encode_reply(id, Ok(&arg), &mut out).ok()?;
        Some(match C::FRAME_KIND {
            FrameKind::Text => Message::text(String::from_utf8(out).ok()?),
            FrameKind::Binary => Message::binary(out),
        })
    };
    while let Some(Ok(message)) = rx.next().await {
        let Some(answer) = reply(message) else { continue };
        if tx.feed(answer).await.is_err() {
            return;
        }
        while let Some(Some(Ok(more))) = rx.next().now_or_never() {
            if let Some(answer) = reply(more) {
                if tx.feed(answer).await.is_err() {
                    return;
                }
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
}

/// Counts data frames into `count`; answers the text frame `count`.
async fn raw_sink(mut ws: WebSocketStream<TcpStream>, count: Arc<AtomicU64>) {
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Text(text) if text.as_str() == "count" => {
                let n = count.load(Ordering::Acquire);
                if ws.send(Message::text(n.to_string())).await.is_err() {
                    return;
                }
            }
            Message::Text(_) | Message::Binary(_) => {
                count.fetch_add(1, Ordering::AcqRel);
            }
            _ => {}
        }
    }
}

/// The fan-out server's connections: one unbounded queue each, drained by
/// its writer task.
type Registry = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

/// Every data frame, from any connection, is queued (one `Message`, cloned:
/// its payload is shared) to every connection. A connection is registered
/// before its handshake response is sent, so a client whose handshake has
/// completed gets every later frame.
async fn serve_fanout(
    listener: TcpListener,
    addr: SocketAddr,
    clients: Registry,
    next: Arc<AtomicU64>,
) -> Result<(), String> {
    print_ready(addr);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
        let _ = stream.set_nodelay(true);
        let clients = clients.clone();
        let id = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let (queue, mut queued) = mpsc::unbounded_channel::<Message>();
            let register = {
                let clients = clients.clone();
                #[allow(clippy::result_large_err)] // the signature tungstenite asks for
                move |request: &Request, response: Response| {
                    clients.lock().unwrap().insert(id, queue);
                    echo_subprotocol(request, response)
                }
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, register, Some(config)).await else {
                clients.lock().unwrap().remove(&id);
                return;
            };
            let (mut tx, mut rx) = ws.split();
            let writer = tokio::spawn(async move {
                while let Some(message) = queued.recv().await {
                    if tx.feed(message).await.is_err() {
                        return;
                    }
                    while let Ok(more) = queued.try_recv() {
                        if tx.feed(more).await.is_err() {
                            return;
                        }
                    }
                    if tx.flush().await.is_err() {
                        return;
                    }
                }
            });
            while let Some(Ok(message)) = rx.next().await {
                if message.is_text() || message.is_binary() {
                    for queue in clients.lock().unwrap().values() {
                        let _ = queue.send(message.clone());
                    }
                }
            }
            clients.lock().unwrap().remove(&id);
            writer.abort();
        });
    }
}

// ---------------------------------------------------------------------------
// Child processes.

/// A server child process (killed on drop).
pub(crate) struct Process {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it is, for messages.
    pub name: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Process {
    /// Starts `command` and waits for its `listening on 127.0.0.1:PORT` line.
    pub(crate) async fn spawn(name: &str, mut command: Command) -> Result<Process, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| format!("{name} printed no address within 30 s"))?
            .map_err(|e| format!("read {name}'s stdout: {e}"))?
            .ok_or_else(|| format!("{name} exited before listening ({:?})", child.try_wait()))?;
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line from {name}: {line:?}"))?;
        if addr.ip() != Ipv4Addr::LOCALHOST {
            return Err(format!("{name} listens on {addr}, not on 127.0.0.1"));
        }
        Ok(Process {
            child,
            addr,
            name: name.to_string(),
            _stdout: lines,
        })
    }

    /// The echo_server example with `codec`, no heartbeat pings.
    pub(crate) async fn echo_server(exe: &Path, codec: &str) -> Result<Process, String> {
        let mut command = Command::new(exe);
        command.args(["--port", "0", "--codec", codec, "--ping-interval-ms", "0", "--counters"]);
        // More options for the server, e.g. `--recovery`.
        command.args(std::env::var("WSM_SERVER_ARGS").unwrap_or_default().split_whitespace());
        Process::spawn(&format!("echo_server --codec {codec}"), command).await
    }

    /// This bench binary as the baseline server `role`.
    pub(crate) async fn baseline(role: &str, codec: Option<&str>) -> Result<Process, String> {
        let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
        let mut command = Command::new(exe);
        command.env(ROLE_VAR, role);
        if let Some(codec) = codec {
            command.env(CODEC_VAR, codec);
        }
        let name = match codec {
            Some(codec) => format!("{role} ({codec})"),
            None => role.to_string(),
        };
        Process::spawn(&name, command).await
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// How many file descriptors it has open (Linux: /proc/PID/fd).
    pub(crate) fn open_fds(&self) -> Result<usize, String> {
        let dir = format!("/proc/{}/fd", self.pid());
        Ok(std::fs::read_dir(&dir).map_err(|e| format!("read {dir}: {e}"))?.count())
    }

    /// Waits until it holds at most `fds` descriptors (its clients of a
    /// previous round are gone), checking every 20 ms, at most [`LIMIT`].
    pub(crate) async fn settle(&self, fds: usize) -> Result<(), String> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let open = self.open_fds()?;
            if open <= fds {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} still holds {open} descriptors after {LIMIT:?} (at most {fds} expected)",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails if the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(format!("wait for {}: {e}", self.name)),
        }
    }
}

/// Builds the echo_server example in this binary's profile (release under
/// `cargo bench`) and target directory; returns its path. With
/// `WSM_REMOTE_SERVER=PATH`, that echo_server binary is measured instead (an
/// earlier build, to compare before and after a change).
pub(crate) fn build_echo_server() -> PathBuf {
    if let Some(path) = std::env::var_os("WSM_REMOTE_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.exists(), "WSM_REMOTE_SERVER={}: no such file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("this binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/PROFILE/deps/this");
    let target_dir = profile_dir.parent().expect("target/PROFILE");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args([
            "build",
            "--quiet",
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

// ---------------------------------------------------------------------------
// The load client.

/// The frames of one codec, encoded once.
pub(crate) struct Frames {
    /// Codec name.
    pub codec: &'static str,
    /// The auth frame `{"token":"secret"}`.
    pub auth: Message,
    /// `echo(small)` invokes, ids [`FIRST_ID`], [`FIRST_ID`] + 1, ...
    pub invokes: Vec<Message>,
    /// The `tick(small)` event.
    pub tick: Message,
    /// The `shout(small)` event.
    pub shout: Message,
    decode_connect: fn(&Message) -> Result<(), String>,
    decode_count: fn(&Message) -> Result<u64, String>,
    decode_echo: fn(&Message) -> Result<(), String>,
    /// The `ticks()` invoke with an id (for the count queries, which both
    /// sides of the events comparison make, so encoded when asked).
    ticks: fn(u64) -> Message,
}

fn message_of<C: Codec>(bytes: Vec<u8>) -> Message {
    match C::FRAME_KIND {
        FrameKind::Text => Message::text(String::from_utf8(bytes).expect("a text codec writes UTF-8")),
        FrameKind::Binary => Message::binary(bytes),
    }
}

fn encode_ticks<C: Codec + Default>(id: u64) -> Message {
    let mut out = Vec::new();
    C::default()
        .encode_message("ticks", &Vec::<u32>::new(), Some(id), &mut out)
        .expect("encode");
    message_of::<C>(out)
}

fn decode_frame<C: Codec + Default>(message: &Message) -> Result<Frame, String> {
    let bytes: Bytes = message.clone().into_data();
    let raw = C::default()
        .decode_envelope(&bytes)
        .map_err(|e| format!("{e} in {message:?}"))?;
    validate(raw, true).map_err(|e| format!("{e:?} in {message:?}"))
}

fn decode_connect<C: Codec + Default>(message: &Message) -> Result<(), String> {
    match decode_frame::<C>(message)? {
        Frame::Message { name, .. } if name == "connect" => Ok(()),
        _ => Err(format!("expected the connect event, got {message:?}")),
    }
}

fn decode_result<C: Codec + Default, T: DeserializeOwned>(message: &Message) -> Result<T, String> {
    match decode_frame::<C>(message)? {
        Frame::Reply {
            outcome: Ok(result), ..
        } => C::default()
            .decode_value(&result)
            .map_err(|e| format!("{e} in the result of {message:?}")),
        _ => Err(format!("expected a result, got {message:?}")),
    }
}

fn decode_count<C: Codec + Default>(message: &Message) -> Result<u64, String> {
    decode_result::<C, u64>(message)
}

fn decode_echo<C: Codec + Default>(message: &Message) -> Result<(), String> {
    let echoed: super::Small = decode_result::<C, _>(message)?;
    if echoed == super::small() {
        Ok(())
    } else {
        Err(format!("echo returned {echoed:?}"))
    }
}

impl Frames {
    /// The frames of codec `C` (named `codec`), `window` invokes.
    pub(crate) fn new<C: Codec + Default>(codec: &'static str, window: usize) -> Frames {
        let c = C::default();
        let payload = super::small();
        let encode = |name: &str, id: Option<u64>| {
            let mut out = Vec::new();
            c.encode_message(name, &(&payload,), id, &mut out).expect("encode");
            message_of::<C>(out)
        };
        let mut auth = Vec::new();
        c.encode_value(&serde_json::json!({"token": "secret"}), &mut auth)
            .expect("encode the auth value");
        Frames {
            codec,
            auth: message_of::<C>(auth),
            invokes: (0..window as u64).map(|i| encode("echo", Some(FIRST_ID + i))).collect(),
            tick: encode("tick", None),
            shout: encode("shout", None),
            decode_connect: decode_connect::<C>,
            decode_count: decode_count::<C>,
            decode_echo: decode_echo::<C>,
            ticks: encode_ticks::<C>,
        }
    }

    /// The frames of a codec by name.
    pub(crate) fn named(codec: &str, window: usize) -> Result<Frames, String> {
        match codec {
            "json" => Ok(Frames::new::<ws_messaging_json::Json>("json", window)),
            "msgpack" => Ok(Frames::new::<ws_messaging_msgpack::MsgPack>("msgpack", window)),
            "cbor" => Ok(Frames::new::<ws_messaging_cbor::Cbor>("cbor", window)),
            other => Err(format!(
                "codec {other:?} is not measured cross-process (known: {}; the echo_server's \
                 bincode and protobuf echo take other types than the small object)",
                CODECS.join(", ")
            )),
        }
    }
}

/// What a load client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    /// The echo_server: auth frame, then the `connect` event.
    Ours,
    /// A raw baseline: the WebSocket only.
    Raw,
}

/// The source addresses 127.0.0.2 ..= 127.0.0.9, so that many short-lived
/// connections do not run out of ephemeral ports on one address.
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8)
}

/// Opens a WebSocket to `addr` (subprotocol `ws-messaging`, from source
/// address number `i`); for [`Peer::Ours`] authenticates and waits for the
/// `connect` event.
pub(crate) async fn open(
    addr: SocketAddr,
    i: usize,
    peer: Peer,
    frames: &Frames,
    config: WebSocketConfig,
) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    let from = source(i);
    socket
        .bind(SocketAddr::new(from.into(), 0))
        .map_err(|e| format!("bind {from}:0: {e}"))?;
    let stream = socket.connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let mut request = format!("ws://{addr}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("ws-messaging"));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    if peer == Peer::Ours {
        ws.send(frames.auth.clone())
            .await
            .map_err(|e| format!("send auth: {e}"))?;
        let first = next_data(&mut ws).await?;
        (frames.decode_connect)(&first)?;
    }
    Ok(ws)
}

/// The next data frame (within [`LIMIT`]).
async fn next_data(ws: &mut Ws) -> Result<Message, String> {
    loop {
        match tokio::time::timeout(LIMIT, ws.next()).await {
            Err(_) => return Err(format!("no frame within {LIMIT:?}")),
            Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => return Ok(m),
            Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("closed: {frame:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("the socket ended".into()),
        }
    }
}

/// A client of the invoke scenarios: one connection and the length every
/// answer has (checked on every frame, so an error answer is noticed).
pub(crate) struct Caller {
    ws: Ws,
    answer_len: usize,
}

impl Caller {
    /// Connects to `addr`; makes one invoke and checks its answer (the small
    /// object, echoed; for the raw echo, the frame itself).
    pub(crate) async fn connect(addr: SocketAddr, peer: Peer, frames: &Frames, echoes: bool) -> Result<Caller, String> {
        let mut ws = open(addr, 0, peer, frames, WebSocketConfig::default()).await?;
        let request = frames.invokes[0].clone();
        ws.send(request.clone()).await.map_err(|e| e.to_string())?;
        let answer = next_data(&mut ws).await?;
        if echoes {
            if answer != request {
                return Err(format!("the raw echo answered {answer:?} to {request:?}"));
            }
        } else {
            (frames.decode_echo)(&answer)?;
        }
        Ok(Caller {
            ws,
            answer_len: answer.len(),
        })
    }

    fn check(&self, answer: &Message) -> Result<(), String> {
        if answer.len() == self.answer_len {
            Ok(())
        } else {
            Err(format!("unexpected answer {answer:?}"))
        }
    }

    /// `n` invokes one at a time; the time of each.
    pub(crate) async fn serial(&mut self, frames: &Frames, n: usize) -> Result<Vec<Duration>, String> {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let frame = frames.invokes[i % frames.invokes.len()].clone();
            let start = Instant::now();
            self.ws.send(frame).await.map_err(|e| e.to_string())?;
            let answer = next_data(&mut self.ws).await?;
            times.push(start.elapsed());
            self.check(&answer)?;
        }
        Ok(times)
    }

    /// `n` invokes with `window` in flight; the time for all.
    pub(crate) async fn pipelined(&mut self, frames: &Frames, n: usize, window: usize) -> Result<Duration, String> {
        let answer_len = self.answer_len;
        let (mut tx, mut rx) = (&mut self.ws).split();
        let permits = Semaphore::new(window);
        let start = Instant::now();
        let reader = async {
            for _ in 0..n {
                let answer = match tokio::time::timeout(LIMIT, rx.next()).await {
                    Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => m,
                    other => return Err(format!("while reading answers: {other:?}")),
                };
                if answer.len() != answer_len {
                    return Err(format!("unexpected answer {answer:?}"));
                }
                permits.add_permits(1);
            }
            Ok(())
        };
        let writer = async {
            for i in 0..n {
                permits.acquire().await.map_err(|e| e.to_string())?.forget();
                tx.feed(frames.invokes[i % frames.invokes.len()].clone())
                    .await
                    .map_err(|e| e.to_string())?;
                if permits.available_permits() == 0 {
                    tx.flush().await.map_err(|e| e.to_string())?;
                }
            }
            tx.flush().await.map_err(|e| e.to_string())
        };
        let (read, write) = tokio::join!(reader, writer);
        read?;
        write?;
        Ok(start.elapsed())
    }
}

/// A client of the events scenario.
pub(crate) struct Emitter {
    ws: Ws,
    peer: Peer,
    next_id: u64,
}

impl Emitter {
    /// Connects to `addr` (the echo_server or the raw sink).
    pub(crate) async fn connect(addr: SocketAddr, peer: Peer, frames: &Frames) -> Result<Emitter, String> {
        let ws = open(addr, 0, peer, frames, WebSocketConfig::default()).await?;
        Ok(Emitter {
            ws,
            peer,
            next_id: 1_000,
        })
    }

    /// How many events the server has received (the `ticks` procedure, or
    /// the raw sink's `count` query).
    pub(crate) async fn count(&mut self, frames: &Frames) -> Result<u64, String> {
        let query = match self.peer {
            Peer::Ours => {
                self.next_id += 1;
                (frames.ticks)(self.next_id)
            }
            Peer::Raw => Message::text("count"),
        };
        self.ws.send(query).await.map_err(|e| e.to_string())?;
        let answer = next_data(&mut self.ws).await?;
        match self.peer {
            Peer::Ours => (frames.decode_count)(&answer),
            Peer::Raw => answer
                .to_text()
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("unexpected count {answer:?}")),
        }
    }

    /// `n` `tick` events as fast as the socket takes them, timed until the
    /// server reports having received them all.
    pub(crate) async fn events(&mut self, frames: &Frames, n: usize) -> Result<Duration, String> {
        let before = self.count(frames).await?;
        let start = Instant::now();
        for _ in 0..n {
            self.ws.feed(frames.tick.clone()).await.map_err(|e| e.to_string())?;
        }
        self.ws.flush().await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + LIMIT;
        loop {
            let count = self.count(frames).await?;
            if count >= before + n as u64 {
                return Ok(start.elapsed());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server received {}/{n} events within {LIMIT:?}",
                    count - before
                ));
            }
        }
    }
}

/// A count that wakes a waiter when it reaches a target.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Tally {
    /// Counts one.
    pub(crate) fn add(&self) {
        let n = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// The count now.
    pub(crate) fn get(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until the count reaches `target`, at most `limit`.
    pub(crate) async fn reach(&self, target: u64, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let reached = self.reached.notified();
            tokio::pin!(reached);
            reached.as_mut().enable();
            self.target.store(target, Ordering::Release);
            if self.get() >= target {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, reached).await.is_err() {
                return Err(format!("{}/{target} within {limit:?}", self.get()));
            }
        }
    }
}

/// Many connected clients that count every data frame they get.
pub(crate) struct Fleet {
    /// Frames received by all the clients.
    pub received: Arc<Tally>,
    /// Clients that have received at least one frame.
    pub reached: Arc<Tally>,
    /// Clients that ended before the fleet was dropped.
    pub failed: Arc<Mutex<Option<String>>>,
    tasks: JoinSet<()>,
    /// Number of clients.
    pub len: usize,
}

impl Fleet {
    /// Opens `clients` connections to `addr`, at most `concurrency` at once.
    pub(crate) async fn connect(
        addr: SocketAddr,
        clients: usize,
        peer: Peer,
        frames: &Arc<Frames>,
        concurrency: usize,
    ) -> Result<Fleet, String> {
        let received = Arc::new(Tally::default());
        let reached = Arc::new(Tally::default());
        let failed = Arc::new(Mutex::new(None));
        let mut tasks = JoinSet::new();
        let permits = Arc::new(Semaphore::new(concurrency));
        let opened = Arc::new(Tally::default());
        for i in 0..clients {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            if let Some(e) = failed.lock().unwrap().clone() {
                return Err(e);
            }
            let (received, reached, failed, opened, frames) = (
                received.clone(),
                reached.clone(),
                failed.clone(),
                opened.clone(),
                frames.clone(),
            );
            tasks.spawn(async move {
                let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
                let mut ws = match open(addr, i, peer, &frames, config).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        failed.lock().unwrap().get_or_insert(format!("client {i}: {e}"));
                        opened.add();
                        return;
                    }
                };
                opened.add();
                drop(permit);
                let mut first = true;
                loop {
                    match ws.next().await {
                        Some(Ok(m)) if m.is_text() || m.is_binary() => {
                            received.add();
                            if first {
                                first = false;
                                reached.add();
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            failed
                                .lock()
                                .unwrap()
                                .get_or_insert(format!("client {i} closed: {frame:?}"));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            failed.lock().unwrap().get_or_insert(format!("client {i}: {e}"));
                            return;
                        }
                        None => {
                            failed
                                .lock()
                                .unwrap()
                                .get_or_insert(format!("client {i}: the socket ended"));
                            return;
                        }
                    }
                }
            });
        }
        opened
            .reach(clients as u64, LIMIT)
            .await
            .map_err(|e| format!("connections opened: {e}"))?;
        if let Some(e) = failed.lock().unwrap().clone() {
            return Err(e);
        }
        Ok(Fleet {
            received,
            reached,
            failed,
            tasks,
            len: clients,
        })
    }

    fn check(&self) -> Result<(), String> {
        match self.failed.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Closes every connection (drops the sockets).
    pub(crate) async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Shouts `shouts` events from a connection of its own to a fleet connected
/// to `addr`, at most `2 * batch` ahead of the deliveries; the time from the
/// first shout until every client has every `shouted`.
///
/// Before the clock starts, one shout must reach every client (so every
/// client is registered with the server); the sender drains what it gets.
pub(crate) async fn broadcast(
    addr: SocketAddr,
    peer: Peer,
    frames: &Frames,
    fleet: &Fleet,
    shouts: usize,
    batch: usize,
) -> Result<Duration, String> {
    let sender = open(addr, 9, peer, frames, WebSocketConfig::default()).await?;
    let (mut tx, mut rx) = sender.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let clients = fleet.len as u64;
    let result = async {
        tx.send(frames.shout.clone()).await.map_err(|e| e.to_string())?;
        fleet
            .reached
            .reach(clients, LIMIT)
            .await
            .map_err(|e| format!("clients reached by the first shout: {e}"))?;
        fleet.received.reach(clients, LIMIT).await?;
        fleet.check()?;
        let base = fleet.received.get();
        if base != clients {
            return Err(format!("{base} frames for {clients} clients after one shout"));
        }
        let start = Instant::now();
        let mut sent = 0;
        while sent < shouts {
            // At most two batches in flight.
            let delivered = sent.saturating_sub(batch) as u64;
            fleet
                .received
                .reach(base + delivered * clients, LIMIT)
                .await
                .map_err(|e| format!("deliveries: {e}"))?;
            let this = batch.min(shouts - sent);
            for _ in 0..this {
                tx.feed(frames.shout.clone()).await.map_err(|e| e.to_string())?;
            }
            tx.flush().await.map_err(|e| e.to_string())?;
            sent += this;
        }
        fleet
            .received
            .reach(base + shouts as u64 * clients, LIMIT)
            .await
            .map_err(|e| format!("deliveries: {e}"))?;
        let elapsed = start.elapsed();
        fleet.check()?;
        Ok(elapsed)
    }
    .await;
    drain.abort();
    result
}

// ---------------------------------------------------------------------------
// Statistics and printing.

/// The median of `values` (sorted in place).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Mean, p50 and p99 of round-trip times, µs.
pub(crate) fn latency_stats(times: &mut [Duration]) -> [f64; 3] {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = times.iter().map(|d| us(*d)).sum::<f64>() / times.len().max(1) as f64;
    let at = |q: f64| us(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
    [mean, at(0.50), at(0.99)]
}

/// A rate for a table: `123k/s`, `1.23M/s`.
pub(crate) fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2}M/s", per_second / 1e6)
    } else {
        format!("{:.0}k/s", per_second / 1e3)
    }
}

/// The 1-, 5- and 15-minute load averages.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Measurements of the invoke and event scenarios for one codec, each a
/// list over rounds.
#[derive(Debug, Default)]
pub(crate) struct Rounds {
    /// 1 in flight, [mean, p50, p99] µs: ours, raw echo, serde echo.
    pub latency: [Vec<[f64; 3]>; 3],
    /// 64 in flight, invokes/s: ours, raw echo, serde echo.
    pub pipelined: [Vec<f64>; 3],
    /// Events/s: ours, raw sink.
    pub events: [Vec<f64>; 2],
}

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    /// Interleaved rounds.
    pub rounds: usize,
    /// Round trips per round, 1 in flight.
    pub serial: usize,
    /// Invokes per round, 64 in flight.
    pub pipelined: usize,
    /// Events per round.
    pub events: usize,
}

/// The scenario selection of [`measure_codec`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scenarios {
    /// 1 in flight.
    pub latency: bool,
    /// 64 in flight.
    pub pipelined: bool,
    /// Events into a listener.
    pub events: bool,
}

/// The processes of one codec's scenarios.
pub(crate) struct CodecServers {
    /// The echo_server.
    pub ours: Process,
    /// The raw echo.
    pub raw_echo: Process,
    /// The serde echo.
    pub serde_echo: Process,
    /// The raw sink.
    pub raw_sink: Process,
}

impl CodecServers {
    /// Starts the echo_server with `codec` and the three baselines.
    pub(crate) async fn start(echo_server: &Path, codec: &str) -> Result<CodecServers, String> {
        Ok(CodecServers {
            ours: Process::echo_server(echo_server, codec).await?,
            raw_echo: Process::baseline("raw-echo", None).await?,
            serde_echo: Process::baseline("serde-echo", Some(codec)).await?,
            raw_sink: Process::baseline("raw-sink", None).await?,
        })
    }

    /// The process ids, for profilers.
    pub(crate) fn pids(&self) -> String {
        format!(
            "echo_server={} raw-echo={} serde-echo={} raw-sink={}",
            self.ours.pid(),
            self.raw_echo.pid(),
            self.serde_echo.pid(),
            self.raw_sink.pid()
        )
    }

    fn check_alive(&mut self) -> Result<(), String> {
        self.ours.check_alive()?;
        self.raw_echo.check_alive()?;
        self.serde_echo.check_alive()?;
        self.raw_sink.check_alive()
    }
}

/// Runs the selected scenarios of one codec for `sizes.rounds` rounds,
/// alternating which server goes first.
pub(crate) async fn measure_codec(
    servers: &mut CodecServers,
    frames: &Frames,
    sizes: Sizes,
    scenarios: Scenarios,
    window: usize,
) -> Result<Rounds, String> {
    let mut rounds = Rounds::default();
    let targets = [
        (servers.ours.addr, Peer::Ours, false),
        (servers.raw_echo.addr, Peer::Raw, true),
        (servers.serde_echo.addr, Peer::Raw, false),
    ];
    let mut callers = Vec::new();
    for (addr, peer, echoes) in targets {
        callers.push(Caller::connect(addr, peer, frames, echoes).await?);
    }
    let mut emitters = [
        Emitter::connect(servers.ours.addr, Peer::Ours, frames).await?,
        Emitter::connect(servers.raw_sink.addr, Peer::Raw, frames).await?,
    ];
    // Warm up every path once.
    for caller in &mut callers {
        caller.serial(frames, 200).await?;
        caller.pipelined(frames, window * 20, window).await?;
    }
    for emitter in &mut emitters {
        emitter.events(frames, 2_000).await?;
    }
    for round in 0..sizes.rounds {
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1, 2] } else { vec![2, 1, 0] };
        if scenarios.latency {
            for &t in &order {
                let mut times = callers[t].serial(frames, sizes.serial).await?;
                rounds.latency[t].push(latency_stats(&mut times));
            }
        }
        if scenarios.pipelined {
            for &t in &order {
                let elapsed = callers[t].pipelined(frames, sizes.pipelined, window).await?;
                rounds.pipelined[t].push(sizes.pipelined as f64 / elapsed.as_secs_f64());
            }
        }
        if scenarios.events {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for t in order {
                let elapsed = emitters[t].events(frames, sizes.events).await?;
                rounds.events[t].push(sizes.events as f64 / elapsed.as_secs_f64());
            }
        }
        servers.check_alive()?;
    }
    Ok(rounds)
}

/// The median over rounds of `ours[i] / base[i]` (paired by round).
pub(crate) fn paired_ratio(ours: &[f64], base: &[f64]) -> f64 {
    let mut ratios: Vec<f64> = ours.iter().zip(base).map(|(o, b)| o / b).collect();
    median(&mut ratios)
}

/// The table of one codec's invoke and event scenarios.
pub(crate) fn print_codec_table(codec: &str, frames: &Frames, rounds: &Rounds) {
    println!(
        "\n### {codec}: the small object ({} bytes per invoke), medians of {} rounds\n",
        frames.invokes[0].len(),
        rounds.latency[0]
            .len()
            .max(rounds.pipelined[0].len())
            .max(rounds.events[0].len())
    );
    println!("| scenario | ws-messaging | raw echo / sink | serde echo | ours / raw | ours / serde |");
    println!("|---|---:|---:|---:|---:|---:|");
    let column = |rows: &[[f64; 3]], k: usize| rows.iter().map(|r| r[k]).collect::<Vec<f64>>();
    for (k, what) in [
        "invoke, 1 in flight: mean µs",
        "invoke, 1 in flight: p50 µs",
        "invoke, 1 in flight: p99 µs",
    ]
    .iter()
    .enumerate()
    {
        if rounds.latency[0].is_empty() {
            break;
        }
        let [ours, raw, serde] = [0, 1, 2].map(|t| column(&rounds.latency[t], k));
        println!(
            "| {what} | {:.1} | {:.1} | {:.1} | {:.2}× | {:.2}× |",
            median(&mut ours.clone()),
            median(&mut raw.clone()),
            median(&mut serde.clone()),
            paired_ratio(&ours, &raw),
            paired_ratio(&ours, &serde),
        );
    }
    if !rounds.pipelined[0].is_empty() {
        let [ours, raw, serde] = [0, 1, 2].map(|t| rounds.pipelined[t].clone());
        println!(
            "| invoke, 64 in flight: invokes/s | {} | {} | {} | {:.2} | {:.2} |",
            rate(median(&mut ours.clone())),
            rate(median(&mut raw.clone())),
            rate(median(&mut serde.clone())),
            paired_ratio(&ours, &raw),
            paired_ratio(&ours, &serde),
        );
    }
    if !rounds.events[0].is_empty() {
        let [ours, raw] = [0, 1].map(|t| rounds.events[t].clone());
        println!(
            "| events received by the server: events/s | {} | {} | — | {:.2} | — |",
            rate(median(&mut ours.clone())),
            rate(median(&mut raw.clone())),
            paired_ratio(&ours, &raw),
        );
    }
}

/// One broadcast measurement: deliveries per second, each round ours then
/// the raw fan-out (alternating who goes first).
#[derive(Debug, Default)]
pub(crate) struct BroadcastRounds {
    /// Clients.
    pub clients: usize,
    /// Shouts per round.
    pub shouts: usize,
    /// Deliveries/s: ours, raw fan-out.
    pub rates: [Vec<f64>; 2],
}

/// Measures broadcast to `clients` clients, `shouts` shouts per round.
pub(crate) async fn measure_broadcast(
    ours: &mut Process,
    fanout: &mut Process,
    frames: &Arc<Frames>,
    clients: usize,
    shouts: usize,
    rounds: usize,
) -> Result<BroadcastRounds, String> {
    let mut result = BroadcastRounds {
        clients,
        shouts,
        ..BroadcastRounds::default()
    };
    // Each round starts with the servers rid of the previous round's clients.
    let idle = [ours.open_fds()? + 2, fanout.open_fds()? + 2];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [1, 0] } else { [0, 1] };
        for t in order {
            let (server, peer) = if t == 0 {
                (&*ours, Peer::Ours)
            } else {
                (&*fanout, Peer::Raw)
            };
            let addr = server.addr;
            server.settle(idle[t]).await?;
            let fleet = Fleet::connect(addr, clients, peer, frames, 256).await?;
            let elapsed = broadcast(addr, peer, frames, &fleet, shouts, 8).await?;
            fleet.close().await;
            result.rates[t].push((shouts * clients) as f64 / elapsed.as_secs_f64());
            ours.check_alive()?;
            fanout.check_alive()?;
        }
    }
    Ok(result)
}

/// The broadcast table.
pub(crate) fn print_broadcast_table(rows: &[BroadcastRounds]) {
    println!("\n### json: broadcast (`shout` → `shouted` to every client), deliveries counted at the clients\n");
    println!("| clients | shouts / round | rounds | ws-messaging deliveries/s | raw fan-out | ours / raw |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let [ours, raw] = [r.rates[0].clone(), r.rates[1].clone()];
        println!(
            "| {} | {} | {} | {} | {} | {:.2} |",
            r.clients,
            r.shouts,
            ours.len(),
            rate(median(&mut ours.clone())),
            rate(median(&mut raw.clone())),
            paired_ratio(&ours, &raw),
        );
    }
}
