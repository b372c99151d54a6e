//! The conformance server: the contract the interop tests (and any
//! ws-messaging client) can rely on.
//!
//! ```text
//! cargo run --release --example echo_server -- --port 0 [--codec json]
//!     [--ping-interval-ms N] [--ping-timeout-ms N] [--auth-timeout-ms N]
//!     [--write-timeout-ms N] [--max-message-bytes N]
//!     [--max-backlog-bytes N] [--max-backlog-frames N] [--max-concurrent-calls N]
//!     [--counters] [--redis URL | --redis-cluster HOST:PORT[,HOST:PORT...]]
//!     [--http] [--recovery]
//!     [--rate-limit N] [--max-conns-per-ip N] [--drain-ms N] [--metrics]
//! ```
//! The handlers are the crate `ws-messaging-conformance`'s (`conformance/`),
//! shared with `wsm serve` and the integration tests.
//!
//! Prints `listening on 127.0.0.1:PORT` once ready; SIGINT/SIGTERM close
//! every connection with 1001 and exit 0. The limits default to the
//! library's (README, "Limits and guarantees"): a message over 100 MiB is
//! closed with 1009, a client whose backlog passes 16 MiB with 4009.
//!
//! - auth `{"token":"secret"}` → `{"user":"alice"}`; `{"token":"slow"}` →
//!   `{"user":"slow"}` after 500 ms; anything else → refused, `bad token`;
//! - procedures `echo(x)`, `sum(...numbers)`, `sleep(ms, v)`, `fail(msg)`,
//!   `whoami()`;
//! - events `say(...)` → `said(...)` to the sender, `shout(...)` →
//!   `shouted(...)` to everyone (encoded once), `call-me(proc, ...args)` →
//!   invokes `proc` on the sender, then `called(result)` or
//!   `call-failed(error)`;
//! - rooms and presence (not with `--codec protobuf`): procedures
//!   `join(room) -> true` (in effect before the reply is sent; joining
//!   twice is joining once), `leave(room) -> true` (also for a room never
//!   joined), `count()` → the number of authenticated connections on every
//!   live node; events `to-room(room, ...args)` → `room(room, ...args)` once
//!   to every member of `room` (the sender too if it is one), `tell(id,
//!   ...args)` → `told(...args)` to the connection `id` (its `whoami()`);
//!   an unknown id gets nothing;
//! - `--redis URL` (`redis://127.0.0.1:PORT`): the node joins the cluster
//!   of every node sharing that Redis (crate `ws-messaging-redis`): `shout`,
//!   `to-room`, `tell` and `count` then span every node, each delivery
//!   exactly once, and what one client sends keeps its order everywhere. A
//!   node that dies is forgotten by `count` within the adapter's node
//!   timeout (5 s). Without `--redis` all of this works within the node;
//! - `--redis-cluster HOST:PORT[,HOST:PORT...]` (some nodes of a Redis 7
//!   Cluster): the same as `--redis`, the nodes sharing that cluster, over
//!   sharded pub/sub (each room's channel on the shard of its slot);
//! - with `--counters` (for load clients; not with `--codec protobuf`):
//!   event `tick(...)` is counted (its arguments are not decoded; nothing is
//!   sent back) and procedure `ticks()` returns how many `tick` events the
//!   server has received, from every connection. Off by default, so that an
//!   idle connection holds only the handlers above;
//! - with `--http` (no value): an HTTP server on the port instead (axum,
//!   through the crate `ws-messaging-axum`), with the same ws-messaging
//!   surface, every other option included, at path `/ws`
//!   (`ws://127.0.0.1:PORT/ws`) and `GET /health` answering 200 `ok`; a
//!   request to `/ws` that is not a WebSocket upgrade gets a 4xx answer.
//!   SIGINT/SIGTERM close every ws-messaging connection with 1001, stop the
//!   HTTP server and exit 0;
//! - `--metrics` (no value): with `--http`, `GET /metrics` answers the
//!   library's metrics in the Prometheus text format (README, "Operating
//!   it": connections, frames and bytes per codec, calls and invokes by
//!   name and outcome, backlog, slow consumers, broadcasts, refusals, rate
//!   limits, the Redis adapter's state); without `--http` they are
//!   recorded and not served (what the benchmarks measure). Needs the
//!   examples' default feature `metrics`;
//! - `--rate-limit N`: each connection may send N messages a second, in
//!   bursts of N (`RateLimit::messages(N)`; the heartbeat is not counted).
//!   A call over it is answered with the error `"RateLimitError"`, an
//!   event over it is dropped and reported with `preprocessingError`; a
//!   client that sends N more while refused (N refused in a row) is closed
//!   with 1008 `Rate limit exceeded`;
//! - `--max-conns-per-ip N`: at most N connections at once from one IP
//!   address; the next upgrade is refused with HTTP 429 (with `--http`,
//!   accepted and closed at once with 1013 `too many connections from
//!   this address`);
//! - `--drain-ms N`: SIGINT/SIGTERM drain instead (`Server::drain`): no
//!   new connection (HTTP 503), each connection closed with 1012 `Service
//!   Restart` at a random moment of the first N/2 ms once its calls in
//!   flight have answered (they have N ms), the rest at N ms; then exit 0;
//! - with `--recovery` (no value; with or without `--http` and `--redis`):
//!   session recovery for clients that negotiate it (`docs/recovery.md`):
//!   what goes through the server (`shout` → `shouted`, `to-room` →
//!   `room`, `tell` → `told`) is replayed, in order, to a client that
//!   resumes within 2 minutes; clients that do not ask (the JavaScript
//!   client) see the 2.0.0 protocol unchanged. Alone, the history and
//!   sessions are this node's; with `--redis`, they are in Redis and a
//!   client resumes on any node of the cluster (its own killed included).

mod bincode;
mod cbor;
mod http;
mod msgpack;
mod protobuf;

use std::time::Duration;

use serde_json::json;
use ws_messaging::{CloseCode, Codec, Endpoint, HandlerError, RateLimit, RegisterError, Server, ServerBuilder};
use ws_messaging_json::Json;
use ws_messaging_redis::RedisAdapter;

/// The command line.
#[derive(Debug)]
pub struct Settings {
    /// `--port` (0 picks a free port).
    pub port: u16,
    /// `--codec`.
    pub codec: String,
    /// `--ping-interval-ms`.
    pub ping_interval: Option<Duration>,
    /// `--ping-timeout-ms`.
    pub ping_timeout: Option<Duration>,
    /// `--auth-timeout-ms`.
    pub auth_timeout: Option<Duration>,
    /// `--write-timeout-ms`.
    pub write_timeout: Option<Duration>,
    /// `--max-message-bytes`.
    pub max_message_size: Option<usize>,
    /// `--max-backlog-bytes`.
    pub max_backlog_bytes: Option<usize>,
    /// `--max-backlog-frames`.
    pub max_backlog_frames: Option<usize>,
    /// `--max-concurrent-calls`.
    pub max_concurrent_calls: Option<usize>,
    /// `--counters`: the `tick` event and the `ticks` procedure.
    pub counters: bool,
    /// `--redis URL`: the Redis server of the cluster.
    pub redis: Option<String>,
    /// `--redis-cluster HOST:PORT,...`: some nodes of a Redis Cluster.
    pub redis_cluster: Option<Vec<String>>,
    /// `--http`: served through axum at `/ws`, beside `GET /health`.
    pub http: bool,
    /// `--recovery`: session recovery for the clients that ask for it.
    pub recovery: bool,
    /// `--rate-limit N`: messages a second per connection, bursts of N.
    pub rate_limit: Option<u32>,
    /// `--max-conns-per-ip N`.
    pub max_conns_per_ip: Option<usize>,
    /// `--drain-ms N`: SIGTERM drains within N ms.
    pub drain: Option<Duration>,
    /// `--metrics`: `GET /metrics` (with `--http`).
    pub metrics: bool,
}

impl Settings {
    /// A server builder with the timeouts of the command line, in the
    /// cluster of `--redis` when given.
    pub async fn builder<C: Codec + Default>(&self) -> Result<ServerBuilder<C>, String> {
        let mut builder = Server::<C>::builder().configure(|o| {
            if let Some(d) = self.ping_interval {
                o.ping_interval = d;
            }
            if let Some(d) = self.ping_timeout {
                o.ping_timeout = d;
            }
            if let Some(d) = self.write_timeout {
                o.write_timeout = d;
            }
            if let Some(n) = self.max_message_size {
                o.max_message_size = n;
            }
            if let Some(n) = self.max_backlog_bytes {
                o.max_backlog_bytes = n;
            }
            if let Some(n) = self.max_backlog_frames {
                o.max_backlog_frames = n;
            }
            if let Some(n) = self.max_concurrent_calls {
                o.max_concurrent_calls = n;
            }
            if let Some(n) = self.rate_limit {
                o.rate_limit = Some(std::sync::Arc::new(RateLimit::messages(n)));
            }
        });
        if let Some(n) = self.max_conns_per_ip {
            builder = builder.max_connections_per_ip(n);
        }
        if let Some(d) = self.auth_timeout {
            builder = builder.auth_timeout(d);
        }
        if self.recovery {
            builder = builder.recovery(ws_messaging::RecoveryConfig::default());
        }
        if let Some(url) = &self.redis {
            let adapter = RedisAdapter::<C>::connect(url)
                .await
                .map_err(|e| format!("--redis {url}: {e}"))?;
            builder = builder.adapter(adapter);
        }
        if let Some(nodes) = &self.redis_cluster {
            let urls: Vec<String> = nodes.iter().map(|node| format!("redis://{node}")).collect();
            let adapter = RedisAdapter::<C>::cluster(&urls, ws_messaging_redis::RedisConfig::default())
                .await
                .map_err(|e| format!("--redis-cluster {}: {e}", nodes.join(",")))?;
            builder = builder.adapter(adapter);
        }
        Ok(builder)
    }
}

/// Starts a configured server the way the command line says.
pub(crate) trait Start {
    /// Starts it (on its own listener, or with `--http` at `/ws` of an HTTP
    /// server), prints the ready line, and serves until SIGINT/SIGTERM,
    /// which close every connection with 1001.
    /// `handlers` registers the handlers on the server before it is
    /// announced.
    async fn start(
        self,
        settings: &Settings,
        handlers: impl FnOnce(&Server<Self::Codec>) -> Result<(), RegisterError> + Send,
    ) -> Result<(), String>;

    /// The codec.
    type Codec: Codec;
}

impl<C: Codec> Start for ServerBuilder<C> {
    type Codec = C;

    async fn start(
        self,
        settings: &Settings,
        handlers: impl FnOnce(&Server<C>) -> Result<(), RegisterError> + Send,
    ) -> Result<(), String> {
        if settings.http {
            let server = self.build();
            handlers(&server).map_err(|e| e.to_string())?;
            return http::serve(server, settings).await;
        }
        let server = self
            .bind(("127.0.0.1", settings.port))
            .await
            .map_err(|e| e.to_string())?;
        handlers(&server).map_err(|e| e.to_string())?;
        println!("listening on {}", server.local_addr().expect("bound to a port"));
        ws_messaging_conformance::shutdown_signal().await;
        stop(&server, settings.drain).await;
        Ok(())
    }
}

fn parse_args() -> Result<Settings, String> {
    let mut settings = Settings {
        port: 0,
        codec: "json".into(),
        ping_interval: None,
        ping_timeout: None,
        auth_timeout: None,
        write_timeout: None,
        max_message_size: None,
        max_backlog_bytes: None,
        max_backlog_frames: None,
        max_concurrent_calls: None,
        counters: false,
        redis: None,
        redis_cluster: None,
        http: false,
        recovery: false,
        rate_limit: None,
        max_conns_per_ip: None,
        drain: None,
        metrics: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--counters" {
            settings.counters = true;
            continue;
        }
        if flag == "--http" {
            settings.http = true;
            continue;
        }
        if flag == "--recovery" {
            settings.recovery = true;
            continue;
        }
        if flag == "--metrics" {
            settings.metrics = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--port" => settings.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--codec" => settings.codec = value.clone(),
            "--redis" => settings.redis = Some(value.clone()),
            "--redis-cluster" => {
                let nodes: Vec<String> = value.split(',').map(str::to_string).collect();
                if nodes.iter().any(|n| !n.contains(':')) {
                    return Err("--redis-cluster takes HOST:PORT[,HOST:PORT...]".into());
                }
                settings.redis_cluster = Some(nodes);
            }
            "--ping-interval-ms" => settings.ping_interval = Some(ms()?),
            "--ping-timeout-ms" => settings.ping_timeout = Some(ms()?),
            "--auth-timeout-ms" => settings.auth_timeout = Some(ms()?),
            "--write-timeout-ms" => settings.write_timeout = Some(ms()?),
            "--max-message-bytes" => settings.max_message_size = Some(count()?),
            "--max-backlog-bytes" => settings.max_backlog_bytes = Some(count()?),
            "--max-backlog-frames" => settings.max_backlog_frames = Some(count()?),
            "--max-concurrent-calls" => settings.max_concurrent_calls = Some(count()?),
            "--rate-limit" => {
                let n = value.parse::<u32>().map_err(|e| format!("{flag}: {e}"))?;
                if n == 0 {
                    return Err("--rate-limit must be at least 1".into());
                }
                settings.rate_limit = Some(n);
            }
            "--max-conns-per-ip" => settings.max_conns_per_ip = Some(count()?),
            "--drain-ms" => settings.drain = Some(ms()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if settings.redis.is_some() && settings.redis_cluster.is_some() {
        return Err("--redis and --redis-cluster exclude each other".into());
    }
    if settings.metrics && !cfg!(feature = "metrics") {
        return Err("--metrics needs the examples built with their default feature `metrics`".into());
    }
    Ok(settings)
}

#[tokio::main]
async fn main() {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo_server: {e}");
            std::process::exit(2);
        }
    };
    #[cfg(feature = "metrics")]
    if settings.metrics {
        if let Err(e) = http::install_metrics() {
            eprintln!("echo_server: {e}");
            std::process::exit(1);
        }
    }
    let result = match settings.codec.as_str() {
        "json" => run::<Json, serde_json::Value>(&settings).await,
        "msgpack" => msgpack::run(&settings).await,
        "cbor" => cbor::run(&settings).await,
        "protobuf" => protobuf::run(&settings).await,
        "bincode" => bincode::run(&settings).await,
        other => Err(format!(
            "unknown codec `{other}` (known: json, msgpack, cbor, protobuf, bincode)"
        )),
    };
    if let Err(e) = result {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}

/// Runs the server with a self-describing codec `C`; `V` is the codec's
/// dynamic value type (echoed values, event arguments).
pub async fn run<C, V>(settings: &Settings) -> Result<(), String>
where
    C: Codec + Default,
    V: ws_messaging_conformance::Value,
{
    let counters = settings.counters;
    settings
        .builder::<C>()
        .await?
        .on_connection(move |_: Endpoint<C>, auth: serde_json::Value| async move {
            let token = auth.get("token").and_then(|t| t.as_str()).unwrap_or_default();
            Ok(json!({ "user": user(token).await? }))
        })
        .start(settings, |server| {
            ws_messaging_conformance::register::<C, V>(server, counters)
        })
        .await
}

/// Stops `server` as the command line says: drains within `--drain-ms`
/// (`drain`), or closes every connection with 1001.
pub(crate) async fn stop<C: Codec>(server: &Server<C>, drain: Option<Duration>) {
    match drain {
        Some(window) => server.drain(window).await,
        None => server.close(CloseCode::GOING_AWAY).await,
    }
}

/// The user a token authenticates: `secret` → `alice`, `slow` → `slow`
/// after 500 ms; anything else is refused with `bad token`.
async fn user(token: &str) -> Result<&'static str, HandlerError> {
    match token {
        "secret" => Ok("alice"),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok("slow")
        }
        _ => Err(HandlerError::text("bad token")),
    }
}
