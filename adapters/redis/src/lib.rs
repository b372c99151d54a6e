//! A Redis (or Valkey) adapter for ws-messaging: one application on several
//! server nodes, and every client still hears what it should.
//!
//! Plug a [`RedisAdapter`] into each node's server. Broadcasts, sends to
//! rooms and to connection ids, disconnects, presence queries and
//! broadcast invokes then reach the connections of every node sharing the
//! Redis server (and the same [`RedisConfig::prefix`]):
//!
//! ```no_run
//! use ws_messaging::Server;
//! use ws_messaging_json::Json;
//! use ws_messaging_redis::RedisAdapter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let adapter = RedisAdapter::<Json>::connect("redis://127.0.0.1:6379").await?;
//! let server = Server::<Json>::builder()
//!     .adapter(adapter.clone())
//!     .on_connection(|endpoint, _auth: serde_json::Value| async move {
//!         endpoint.join("lobby");
//!         Ok(())
//!     })
//!     .bind("127.0.0.1:8000")
//!     .await?;
//! // Every member of `lobby`, on every node, once.
//! server.to("lobby").emit("news", ("hello",))?;
//! // Connections on every live node.
//! let online = server.count().await?;
//! # Ok(()) }
//! ```
//!
//! On a Redis Cluster (7 or later), [`RedisAdapter::cluster`] and
//! [`RedisEmitter::cluster`] take some of its nodes' URLs: every channel is
//! then a sharded one, each room's on the shard of its slot; slot moves and
//! failovers are followed.
//!
//! # How it works
//! - Each node has a random id, publishes on the channel `PREFIX#all` and
//!   subscribes to it, to its own `PREFIX#node#ID`, and to
//!   `{PREFIX#G}#room#ROOM` for each room it has members in
//!   ([`RedisConfig::route_rooms`], on by default; `G` is the room's
//!   group, see [`RedisConfig::room_groups`]): a node reads the traffic of
//!   its own rooms, not the whole cluster's.
//! - A send is delivered to this node's connections at once and published
//!   once, as the codec encoded it, with its target (rooms, connection
//!   ids, except): on the room's channel when it names one room and no
//!   connection, else on `PREFIX#all`. The other nodes deliver it to
//!   their own connections. A join that gives a room its first member on
//!   a node subscribes before the joining connection is written to again
//!   (10 s at most), so a send made after the client has its join's reply
//!   reaches it.
//!   Every publish of a node goes through one queue and one Redis
//!   connection, and Redis keeps the order of a connection's publishes:
//!   what one node sends reaches every node in the order it was sent.
//! - Presence (`count`, `ids`) and broadcast invokes are requests on
//!   `PREFIX#all`; each live node answers on the requester's own channel.
//!   Nodes that do not answer within [`RedisConfig::request_timeout`] are
//!   left out of the answer.
//! - Liveness: every node publishes a heartbeat each
//!   [`RedisConfig::heartbeat_interval`]; a node not heard from for
//!   [`RedisConfig::node_timeout`] is forgotten, with its connections. A
//!   node that closes says so at once (`Bye` is the last thing it
//!   publishes: no heartbeat follows it).
//! - A bus message is read in time linear in its size; a target naming
//!   more than 1,048,576 rooms (or exceptions) is refused when sent
//!   ([`Error::TooManyRooms`], [`AdapterError::Other`]) and ignored when
//!   read.
//!
//! # Session recovery
//! With [`ServerBuilder::recovery`](ws_messaging::ServerBuilder::recovery)
//! on, the adapter keeps the recovery extension's history and sessions in
//! Redis ([`Adapter::recovery_store`]),
//! so a client resumes on any node, its own node killed included
//! (`docs/recovery.md`, "Across nodes"). A recoverable event is appended
//! by a script to the streams `{PREFIX:P}:log` of its partitions (at most
//! `history_len` entries each, expiring a session time after the last
//! one; epoch and offsets in `{PREFIX:P}:meta`) and published with its
//! positions; every node, the sender's too, delivers it when it comes
//! back. Sessions are the hashes `PREFIX:session:SHA256(token)`, written
//! by the node that holds the connection only. One Redis server: the
//! script spans the partitions of an event's target.
//!
//! # When Redis is slow
//! Every Redis connection takes its timeouts from the [`RedisConfig`]:
//! connecting within [`RedisConfig::connect_timeout`], answering a batch
//! of publishes within [`RedisConfig::response_timeout`] (default 5 s).
//! A stall shorter than that and than the node timeout (a slow fork, a
//! `DEBUG SLEEP`) only delays the publishes, which wait in the queue, in
//! order; nothing is refused. A connection that takes longer is taken for
//! lost (as below); its replacement first kills it on the server
//! (`CLIENT KILL ID`, same Redis run only), so the batch it held either
//! ran before anything newer or never runs: what a node sends still
//! arrives in order, with that batch possibly lost.
//!
//! # When Redis is down
//! The adapter reconnects with backoff and reports each change as an
//! [`AdapterEvent`] ([`RedisAdapter::events`]). While it is disconnected,
//! every send that needs the other nodes is **refused** with
//! [`AdapterError::Unavailable`]
//! and is sent nowhere (not even to this node's connections): an error
//! means nothing was sent, so retrying it duplicates nothing; sends to
//! [`local()`](ws_messaging::Broadcast::local) still go, for an
//! application that wants this node's clients served meanwhile. Nothing is
//! queued without bound: publishes wait in a queue of at most
//! [`RedisConfig::max_queue`] messages (a full queue refuses with
//! [`AdapterError::Full`]). The failure
//! is noticed when either connection breaks, when a batch is not answered
//! within the response timeout, or at the latest when this node's own
//! heartbeats have not come back for the node timeout: publishes accepted
//! before that wait in the queue and are written once Redis is back,
//! except a batch that was being written when the connection broke, which
//! is lost. Clients stay connected to their node throughout; when Redis is
//! back, each node resubscribes and carries on, with nothing to replay.
//!
//! A process with no WebSocket clients (a worker, a cron job) sends to the
//! cluster's rooms and connections with a [`RedisEmitter`].

mod backend;
mod bus;
mod emitter;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;

use crate::backend::{Backend, Incoming, Messages, Publisher};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use ws_messaging::adapter::{
    Ack, AckOutcome, AckRequest, AckSender, Adapter, AdapterFuture, Described, Registry, Target,
};
use ws_messaging::{AdapterError, Codec, EncodedMessage, RetryConfig};

use crate::bus::{Bus, Envelope, Outcome};
pub use crate::emitter::{Emit, RedisEmitter};

/// The settings of a [`RedisAdapter`] (and the prefix of a
/// [`RedisEmitter`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The prefix of the channel names: nodes (and emitters) with the same
    /// prefix on the same Redis form one cluster. Default `ws-messaging`.
    pub prefix: String,
    /// How often a node says it is alive. Default 1 s.
    pub heartbeat_interval: Duration,
    /// A node not heard from for this long is forgotten, with its
    /// connections. Default 5 s.
    pub node_timeout: Duration,
    /// How long presence queries wait for the other nodes' answers (and the
    /// margin a broadcast invoke adds to its own timeout). Default 1 s.
    pub request_timeout: Duration,
    /// How many publishes may wait for the Redis connection. Default 65,536.
    pub max_queue: usize,
    /// How long connecting to Redis may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long Redis may take to answer a command (a batch of publishes,
    /// an emitter's PUBLISH) before its connection is taken for lost and
    /// renewed. Meanwhile the publishes wait in the queue: a stall of Redis
    /// shorter than this (a slow fork, a `DEBUG SLEEP`) delays them, and
    /// refuses nothing. Default 5 s.
    pub response_timeout: Duration,
    /// The reconnect backoff of the adapter's Redis connections and of an
    /// emitter's: the client's type. Default
    /// [`RetryConfig::doubling`]`(50 ms, 2 s)` (the first delay 50 ms,
    /// doubled after each failed attempt up to 2 s, no jitter). Its
    /// `retries` does not apply: a node keeps trying while it runs.
    pub retry: RetryConfig,
    /// Sends to one room travel on that room's channel, which only the
    /// nodes with members in it subscribe to. Default `true`. Every node of
    /// a cluster (and every emitter) must agree: turn it off on the new
    /// nodes while a rolling upgrade still runs nodes without it, then on.
    pub route_rooms: bool,
    /// Room channels are named in this many groups (a stable hash of the
    /// room's name picks its group), each a Redis Cluster hash tag: on a
    /// cluster, a group's rooms share one slot, so a node's batch of
    /// sends to many rooms goes out as at most this many pipelines, and
    /// the groups spread over the shards. A node still subscribes room by
    /// room. Default 64; every node and emitter must agree.
    pub room_groups: u16,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            prefix: "ws-messaging".into(),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
            max_queue: 65_536,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            retry: RetryConfig::doubling(Duration::from_millis(50), Duration::from_secs(2)),
            route_rooms: true,
            room_groups: 64,
        }
    }
}

impl RedisConfig {
    /// The channel prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether sends to one room travel on that room's channel (see the
    /// field).
    pub fn route_rooms(mut self, on: bool) -> Self {
        self.route_rooms = on;
        self
    }

    /// How many groups the room channels are named in (see the field;
    /// at least 1).
    pub fn room_groups(mut self, groups: u16) -> Self {
        self.room_groups = groups.max(1);
        self
    }

    /// The heartbeat interval and the time after which a silent node is
    /// forgotten.
    pub fn liveness(mut self, heartbeat_interval: Duration, node_timeout: Duration) -> Self {
        self.heartbeat_interval = heartbeat_interval;
        self.node_timeout = node_timeout;
        self
    }

    /// How long presence queries wait for the other nodes.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many publishes may wait for the Redis connection.
    pub fn max_queue(mut self, max: usize) -> Self {
        self.max_queue = max.max(1);
        self
    }

    /// How long connecting may take, and how long Redis may take to answer
    /// a command before its connection is taken for lost.
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// The reconnect backoff (see [`retry`](Self::retry) for the field).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The first and the longest reconnect delay: the delay doubles from
    /// `min` up to `max`, as [`RetryConfig::doubling`].
    pub fn backoff(self, min: Duration, max: Duration) -> Self {
        self.retry(RetryConfig::doubling(min, max))
    }

    /// The settings of every Redis connection that sends commands: this
    /// config's timeouts, not the client library's own (shorter) ones.
    fn connection_config(&self) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
    }

    fn all_channel(&self) -> String {
        format!("{}#all", self.prefix)
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}#node#{node}", self.prefix)
    }

    /// The channel on which sends to `room` travel (with
    /// [`route_rooms`](Self::route_rooms)): `{PREFIX#G}#room#ROOM`, `G`
    /// the room's group. Only the nodes with members in the room subscribe
    /// to it. To watch a room with `redis-cli`, or to find its shard.
    pub fn room_channel(&self, room: &str) -> Vec<u8> {
        let mut channel = format!("{{{}#{}}}#room#", self.prefix, room_group(room, self.room_groups)).into_bytes();
        channel.extend_from_slice(room.as_bytes());
        channel
    }

    /// The room whose channel `channel` is.
    fn room_of<'a>(&self, channel: &'a [u8]) -> Option<&'a str> {
        const MARK: &[u8] = b"}#room#";
        let at = channel.windows(MARK.len()).position(|w| w == MARK)?;
        let room = std::str::from_utf8(&channel[at + MARK.len()..]).ok()?;
        (self.room_channel(room) == channel).then_some(room)
    }

    /// Where a send to `target` is published: the room's channel when it
    /// names one room and nothing else, else the cluster's.
    fn channel_for(&self, target: &Target) -> Option<Vec<u8>> {
        if !self.route_rooms {
            return None;
        }
        match (target.rooms(), target.connections()) {
            ([room], []) => Some(self.room_channel(room)),
            _ => None,
        }
    }
}

/// Why the adapter or an emitter could not start, or an emitter could not
/// send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL is not valid.
    #[error("invalid Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    /// Redis could not be reached or refused a command.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time: connecting within
    /// [`RedisConfig::connect_timeout`], or an emitter's PUBLISH within
    /// [`RedisConfig::response_timeout`] (which may or may not have been
    /// published).
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// An emitter has no Redis connection now: the last attempt failed and
    /// the next one is due in `retry_in` (then on the next send). Nothing
    /// was published.
    #[error("Redis is unreachable ({reason}); nothing was published; the next attempt is in {retry_in:?}")]
    Unavailable {
        /// Why the last attempt failed.
        reason: String,
        /// When the emitter tries again.
        retry_in: Duration,
    },
    /// A send names more rooms (or exceptions) than a node accepts from the
    /// bus (1,048,576). Nothing was published.
    #[error("a send names {0} rooms; at most 1048576 cross the bus")]
    TooManyRooms(usize),
    /// The event could not be encoded.
    #[error(transparent)]
    Send(#[from] ws_messaging::SendError),
}

/// What happens to the adapter's link with the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdapterEvent {
    /// Connected to Redis again after `Disconnected`: sends reach the other
    /// nodes again.
    Connected,
    /// The Redis connection failed: sends that need the other nodes are
    /// refused until `Connected`.
    Disconnected {
        /// What failed.
        error: String,
    },
    /// A node was heard from for the first time (or again after it was
    /// forgotten).
    NodeUp(String),
    /// A node left, or was not heard from for the node timeout.
    NodeDown(String),
}

/// What a publish is, where the publisher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Heartbeat,
    /// The node's farewell: no heartbeat is written after it.
    Bye,
    Other,
}

/// A publish (or other write) waiting for the Redis connection.
struct Outgoing {
    command: Command,
    kind: Kind,
    /// Told once the batch holding this publish was written.
    flushed: Option<oneshot::Sender<()>>,
}

/// A channel to publish on: a shared name, or a room's.
#[derive(Clone)]
pub(crate) enum Channel {
    Named(Arc<str>),
    Room(Bytes),
}

impl Channel {
    fn bytes(&self) -> &[u8] {
        match self {
            Channel::Named(name) => name.as_bytes(),
            Channel::Room(name) => name,
        }
    }
}

/// What an [`Outgoing`] writes.
pub(crate) enum Command {
    /// `PUBLISH channel payload`.
    Publish { channel: Channel, payload: Bytes },
    /// Commands written in this order (a script, a session's write).
    Cmds(Vec<redis::Cmd>),
}

pub(crate) struct Shared<C: Codec> {
    node: String,
    /// The recovery scripts' names.
    scripts: store::Scripts,
    /// The open recovery sessions this node owns.
    open_sessions: Mutex<store::OpenSessions>,
    /// The connection for reads (logs, sessions), made when first needed.
    reader: Mutex<Option<MultiplexedConnection>>,
    /// The rooms with members on this node, each with whether its channel
    /// is subscribed yet.
    rooms: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Told when a room's subscription failed: the subscribed connection
    /// is renewed.
    resubscribe: Notify,
    /// Changes the subscribed connection's channels (held while it is
    /// renewed).
    sink: tokio::sync::Mutex<Option<backend::Sink>>,
    /// Messages and bytes read from the subscribed channels.
    received: (AtomicU64, AtomicU64),
    config: RedisConfig,
    /// One Redis server or a cluster.
    backend: Backend,
    all: Arc<str>,
    queue: mpsc::Sender<Outgoing>,
    publisher_up: AtomicBool,
    /// Told when the subscription broke: the publishing connection must be
    /// renewed.
    publisher_stale: Notify,
    subscriber_up: AtomicBool,
    registry: OnceLock<Weak<Registry<C>>>,
    nodes: Mutex<HashMap<String, Instant>>,
    /// Open requests: where their answers go, with the answering node.
    requests: Mutex<HashMap<u64, mpsc::UnboundedSender<(String, Bus)>>>,
    next_request: AtomicU64,
    last_own_heartbeat: Mutex<Instant>,
    events: broadcast::Sender<AdapterEvent>,
    shutdown: watch::Sender<bool>,
}

/// The Redis adapter: give a clone to [`ServerBuilder::adapter`](ws_messaging::ServerBuilder::adapter)
/// and keep one to watch [`events`](Self::events). Its background tasks
/// stop when the server closes, or when the last clone is dropped.
pub struct RedisAdapter<C: Codec> {
    handle: Arc<Handle<C>>,
}

/// Stops the tasks when the last [`RedisAdapter`] goes.
struct Handle<C: Codec> {
    shared: Arc<Shared<C>>,
}

impl<C: Codec> Drop for Handle<C> {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl<C: Codec> Clone for RedisAdapter<C> {
    fn clone(&self) -> Self {
        RedisAdapter {
            handle: self.handle.clone(),
        }
    }
}

impl<C: Codec> std::fmt::Debug for RedisAdapter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("node", &self.shared().node)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl<C: Codec> RedisAdapter<C> {
    /// Connects to Redis at `url` (`redis://HOST:PORT[/DB]`) with the
    /// default [`RedisConfig`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::with_config(url, RedisConfig::default()).await
    }

    /// Connects with `config`. Fails when Redis cannot be reached now;
    /// later failures are retried in the background.
    pub async fn with_config(url: &str, config: RedisConfig) -> Result<Self, Error> {
        let backend = Backend::standalone(url).map_err(Error::Url)?;
        Self::start(backend, config).await
    }

    /// Connects to the Redis Cluster that `urls` (`redis://HOST:PORT`, one
    /// or more of its nodes) belong to, Redis 7 or later. Every channel is
    /// then a sharded one (`SPUBLISH` / `SSUBSCRIBE`): each room's channel
    /// lives on the shard of its slot, so the cluster's capacity grows with
    /// its shards; slot moves and failovers are followed. Session recovery
    /// across nodes needs one Redis server: on a cluster, a server with
    /// recovery keeps it in its own memory.
    pub async fn cluster(urls: &[String], config: RedisConfig) -> Result<Self, Error> {
        let backend = Backend::cluster(urls, &config).map_err(Error::Url)?;
        Self::start(backend, config).await
    }

    async fn start(backend: Backend, config: RedisConfig) -> Result<Self, Error> {
        let node = node_id();
        let connection = within(config.connect_timeout, backend.publisher(&config, None)).await?;
        let (sink, stream) = within(config.connect_timeout, backend.subscribe(&config, &node, &[])).await?;
        let (queue, outgoing) = mpsc::channel(config.max_queue.max(1));
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            all: Arc::from(config.all_channel()),
            node,
            scripts: connection.scripts(),
            open_sessions: Mutex::new(store::OpenSessions::default()),
            reader: Mutex::new(None),
            rooms: Mutex::new(HashMap::new()),
            resubscribe: Notify::new(),
            sink: tokio::sync::Mutex::new(Some(sink)),
            received: (AtomicU64::new(0), AtomicU64::new(0)),
            config,
            backend,
            queue,
            publisher_up: AtomicBool::new(true),
            publisher_stale: Notify::new(),
            subscriber_up: AtomicBool::new(true),
            registry: OnceLock::new(),
            nodes: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            last_own_heartbeat: Mutex::new(Instant::now()),
            events: broadcast::channel(64).0,
            shutdown,
        });
        tokio::spawn(publisher(shared.clone(), outgoing, connection));
        tokio::spawn(subscriber(shared.clone(), stream));
        tokio::spawn(heartbeat(shared.clone()));
        tokio::spawn(store::push_open_sessions(shared.clone()));
        Ok(RedisAdapter {
            handle: Arc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Shared<C> {
        &self.handle.shared
    }

    /// This node's id in the cluster (random, one per adapter).
    pub fn node_id(&self) -> &str {
        &self.shared().node
    }

    /// Whether both Redis connections (publishing, subscribed) are up.
    pub fn is_connected(&self) -> bool {
        self.shared().is_up()
    }

    /// The other nodes heard from within the node timeout.
    pub fn nodes(&self) -> Vec<String> {
        self.shared().live_nodes().into_iter().collect()
    }

    /// What this node has read from Redis's channels so far: messages and
    /// their bytes (payloads). With rooms routed by interest, a node reads
    /// the traffic of the rooms its connections are in, sends to everyone
    /// or to several rooms, and the cluster's own messages (heartbeats,
    /// presence).
    pub fn received(&self) -> (u64, u64) {
        let (messages, bytes) = &self.shared().received;
        (messages.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed))
    }

    /// The adapter's events, from now on: Redis lost and regained, nodes
    /// joining and leaving.
    pub fn events(&self) -> broadcast::Receiver<AdapterEvent> {
        self.shared().events.subscribe()
    }
}

impl<C: Codec> Adapter<C> for RedisAdapter<C> {
    fn start(&self, local: Arc<Registry<C>>) {
        let _ = self.shared().registry.set(Arc::downgrade(&local));
        #[cfg(feature = "metrics")]
        metrics::gauge!("ws_messaging_adapter_up").set(if self.is_connected() { 1.0 } else { 0.0 });
    }

    fn publish(&self, target: &Target, message: &EncodedMessage) -> Result<(), AdapterError> {
        let shared = self.shared();
        let channel = match shared.config.channel_for(target) {
            Some(room) => Channel::Room(room.into()),
            None => Channel::Named(shared.all.clone()),
        };
        let message = Bus::Broadcast {
            target: target.clone(),
            frame: message.to_bytes(),
        };
        shared.send_on(channel, &message, None)
    }

    fn room_interest(&self) -> Option<Arc<dyn ws_messaging::adapter::RoomInterest>> {
        if !self.shared().config.route_rooms {
            return None;
        }
        Some(Arc::new(Interest {
            shared: self.handle.shared.clone(),
        }))
    }

    fn disconnect(&self, target: &Target, code: u16, reason: &str) -> Result<(), AdapterError> {
        let shared = self.shared();
        shared.send(
            &shared.all,
            &Bus::Disconnect {
                target: target.clone(),
                code,
                reason: reason.to_string(),
            },
            None,
        )
    }

    fn count<'a>(&'a self, target: &'a Target) -> AdapterFuture<'a, Result<usize, AdapterError>> {
        Box::pin(async move {
            let answers = self
                .shared()
                .query(|request| Bus::Count {
                    request,
                    target: target.clone(),
                })
                .await?;
            Ok(counted(answers))
        })
    }

    fn ids<'a>(&'a self, target: &'a Target) -> AdapterFuture<'a, Result<Vec<String>, AdapterError>> {
        Box::pin(async move {
            let answers = self
                .shared()
                .query(|request| Bus::Ids {
                    request,
                    target: target.clone(),
                })
                .await?;
            Ok(gathered(answers, |answer| match answer {
                Bus::Listed { ids, .. } => ids,
                _ => Vec::new(),
            }))
        })
    }

    fn describe<'a>(&'a self, target: &'a Target) -> AdapterFuture<'a, Result<Vec<Described>, AdapterError>> {
        Box::pin(async move {
            let answers = self
                .shared()
                .query(|request| Bus::Describe {
                    request,
                    target: target.clone(),
                })
                .await?;
            Ok(gathered(answers, |answer| match answer {
                Bus::Described { connections, .. } => connections,
                _ => Vec::new(),
            }))
        })
    }

    fn join<'a>(&'a self, target: &'a Target, room: &'a str) -> AdapterFuture<'a, Result<usize, AdapterError>> {
        Box::pin(async move {
            let answers = self
                .shared()
                .query(|request| Bus::Join {
                    request,
                    target: target.clone(),
                    room: room.to_string(),
                })
                .await?;
            Ok(counted(answers))
        })
    }

    fn leave<'a>(&'a self, target: &'a Target, room: &'a str) -> AdapterFuture<'a, Result<usize, AdapterError>> {
        Box::pin(async move {
            let answers = self
                .shared()
                .query(|request| Bus::Leave {
                    request,
                    target: target.clone(),
                    room: room.to_string(),
                })
                .await?;
            Ok(counted(answers))
        })
    }

    fn invoke(&self, target: &Target, request: &AckRequest, acks: AckSender) -> Result<(), AdapterError> {
        let shared = self.handle.shared.clone();
        let mut waiting = shared.live_nodes();
        if waiting.is_empty() {
            return Ok(());
        }
        let (id, answers) = shared.open_request();
        let sent = shared.send(
            &shared.all,
            &Bus::Invoke {
                request: id,
                target: target.clone(),
                id: request.id,
                timeout: request.timeout,
                frame: request.frame.to_bytes(),
            },
            None,
        );
        if let Err(error) = sent {
            shared.close_request(id);
            return Err(error);
        }
        let deadline = Instant::now() + request.timeout + shared.config.request_timeout;
        tokio::spawn(async move {
            let mut answers = answers;
            while !waiting.is_empty() {
                let Ok(Some((node, answer))) = tokio::time::timeout_at(deadline, answers.recv()).await else {
                    break;
                };
                match answer {
                    Bus::Ack {
                        connection, outcome, ..
                    } => {
                        let outcome = match outcome {
                            Outcome::Result(raw) => AckOutcome::Result(raw),
                            Outcome::Error(raw) => AckOutcome::Error(raw),
                            Outcome::Timeout => AckOutcome::Timeout,
                            Outcome::Closed => AckOutcome::Closed,
                        };
                        let _ = acks.send(Ack { connection, outcome });
                    }
                    Bus::AckDone { .. } => {
                        waiting.remove(&node);
                    }
                    _ => {}
                }
            }
            shared.close_request(id);
        });
        Ok(())
    }

    fn recovery_store(&self) -> Option<Arc<dyn ws_messaging::adapter::RecoveryStore>> {
        // The append script spans an event's partitions: one server only.
        if self.shared().backend.is_cluster() {
            return None;
        }
        Some(Arc::new(store::RedisStore {
            shared: self.handle.shared.clone(),
        }))
    }

    fn close(&self) -> AdapterFuture<'_, ()> {
        Box::pin(async move {
            let shared = self.shared();
            let (flushed, done) = oneshot::channel();
            if shared.send(&shared.all, &Bus::Bye, Some(flushed)).is_ok() {
                let _ = tokio::time::timeout(shared.config.request_timeout, done).await;
            }
            shared.shutdown.send_replace(true);
        })
    }
}

impl<C: Codec> Shared<C> {
    fn is_up(&self) -> bool {
        self.publisher_up.load(Ordering::Acquire) && self.subscriber_up.load(Ordering::Acquire)
    }

    /// Queues a publish; refused while either Redis connection is down or
    /// the queue is full.
    fn send(
        &self,
        channel: &Arc<str>,
        message: &Bus,
        flushed: Option<oneshot::Sender<()>>,
    ) -> Result<(), AdapterError> {
        self.send_on(Channel::Named(channel.clone()), message, flushed)
    }

    /// [`send`](Self::send) on any channel.
    fn send_on(
        &self,
        channel: Channel,
        message: &Bus,
        flushed: Option<oneshot::Sender<()>>,
    ) -> Result<(), AdapterError> {
        if !self.is_up() {
            return Err(AdapterError::Unavailable("the Redis connection is down".into()));
        }
        if let Some(n) = message.target().and_then(bus::oversized) {
            return Err(AdapterError::Other(ws_messaging::SharedError::new(
                Error::TooManyRooms(n),
            )));
        }
        let kind = match message {
            Bus::Heartbeat => Kind::Heartbeat,
            Bus::Bye => Kind::Bye,
            _ => Kind::Other,
        };
        let outgoing = Outgoing {
            command: Command::Publish {
                channel,
                payload: bus::encode(&self.node, message),
            },
            kind,
            flushed,
        };
        self.enqueue(outgoing)
    }

    /// Queues other writes, in order with the publishes; refused as they
    /// are.
    pub(crate) fn queue_command(&self, command: Command) -> Result<(), AdapterError> {
        if !self.is_up() {
            return Err(AdapterError::Unavailable("the Redis connection is down".into()));
        }
        self.enqueue(Outgoing {
            command,
            kind: Kind::Other,
            flushed: None,
        })
    }

    fn enqueue(&self, outgoing: Outgoing) -> Result<(), AdapterError> {
        self.queue.try_send(outgoing).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AdapterError::Full,
            mpsc::error::TrySendError::Closed(_) => AdapterError::Unavailable("the adapter was closed".into()),
        })
    }

    /// Sets a connection's state; reports the change of the whole.
    fn set_up(&self, which: &AtomicBool, up: bool, error: Option<String>) {
        let before = self.is_up();
        which.store(up, Ordering::Release);
        let after = self.is_up();
        #[cfg(feature = "metrics")]
        metrics::gauge!("ws_messaging_adapter_up").set(if after { 1.0 } else { 0.0 });
        if before && !after {
            let _ = self.events.send(AdapterEvent::Disconnected {
                error: error.unwrap_or_else(|| "the Redis connection was lost".into()),
            });
        } else if !before && after {
            let _ = self.events.send(AdapterEvent::Connected);
            // Say so now rather than at the next tick: the others may have
            // forgotten this node during the outage.
            let _ = self.send(&self.all, &Bus::Heartbeat, None);
        }
    }

    /// The connection for reads, connected when first needed.
    pub(crate) async fn reader(&self) -> Result<MultiplexedConnection, Error> {
        if let Some(connection) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(connection);
        }
        let connection = within(self.config.connect_timeout, self.backend.reader(&self.config)).await?;
        *self.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets the read connection (it failed): the next read makes one.
    pub(crate) fn drop_reader(&self) {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn registry(&self) -> Option<Arc<Registry<C>>> {
        self.registry.get()?.upgrade()
    }

    /// The other nodes heard from within the node timeout.
    fn live_nodes(&self) -> HashSet<String> {
        let now = Instant::now();
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) < self.config.node_timeout)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Forgets the nodes not heard from within the node timeout.
    fn expire_nodes(&self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|node, seen| {
                let live = now.duration_since(*seen) < self.config.node_timeout;
                if !live {
                    gone.push(node.clone());
                }
                live
            });
        for node in gone {
            let _ = self.events.send(AdapterEvent::NodeDown(node));
        }
    }

    fn open_request(&self) -> (u64, mpsc::UnboundedReceiver<(String, Bus)>) {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        (id, rx)
    }

    fn close_request(&self, id: u64) {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Asks every live node and gathers the answers that come within the
    /// request timeout.
    async fn query(&self, make: impl FnOnce(u64) -> Bus) -> Result<Vec<Bus>, AdapterError> {
        let mut waiting = self.live_nodes();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let (id, mut answers) = self.open_request();
        struct Close<'a, C: Codec>(&'a Shared<C>, u64);
        impl<C: Codec> Drop for Close<'_, C> {
            fn drop(&mut self) {
                self.0.close_request(self.1);
            }
        }
        let _close = Close(self, id);
        self.send(&self.all, &make(id), None)?;
        let deadline = Instant::now() + self.config.request_timeout;
        let mut out = Vec::new();
        while !waiting.is_empty() {
            match tokio::time::timeout_at(deadline, answers.recv()).await {
                Ok(Some((node, answer))) => {
                    if waiting.remove(&node) {
                        out.push(answer);
                    }
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Handles one message from the bus.
    fn handle(self: &Arc<Self>, payload: Bytes) {
        let Some(Envelope { sender, message }) = bus::decode(payload) else {
            return;
        };
        // A node's own messages come back to it: only its heartbeats (it
        // hears the bus) and its logged events (delivered here too, with
        // their positions) matter.
        if sender == self.node && !matches!(message, Bus::Logged { .. }) {
            if message == Bus::Heartbeat {
                *self.last_own_heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
            return;
        }
        match message {
            Bus::Heartbeat => {
                let new = self
                    .nodes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(sender.clone(), Instant::now())
                    .is_none();
                if new {
                    let _ = self.events.send(AdapterEvent::NodeUp(sender));
                }
            }
            Bus::Bye => {
                let known = self
                    .nodes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&sender)
                    .is_some();
                if known {
                    let _ = self.events.send(AdapterEvent::NodeDown(sender));
                }
            }
            Bus::Broadcast { target, frame } => {
                if let (Some(registry), Ok(message)) = (self.registry(), EncodedMessage::from_bytes::<C>(frame)) {
                    registry.deliver(&target, &message);
                }
            }
            Bus::Logged {
                appended,
                target,
                frame,
                ..
            } => {
                if let (Some(registry), Ok(message)) = (self.registry(), EncodedMessage::from_bytes::<C>(frame)) {
                    registry.deliver_logged(&appended, &target, &message);
                }
            }
            Bus::Disconnect { target, code, reason } => {
                if let Some(registry) = self.registry() {
                    registry.disconnect(&target, code, &reason);
                }
            }
            Bus::Count { request, target } => {
                let count = self.registry().map_or(0, |r| r.count(&target));
                self.answer(
                    &sender,
                    Bus::Counted {
                        request,
                        count: count as u64,
                    },
                );
            }
            Bus::Join { request, target, room } => {
                let Some(registry) = self.registry() else { return };
                let shared = self.clone();
                tokio::spawn(async move {
                    let count = registry.join_selected(&target, &room).await;
                    shared.answer(
                        &sender,
                        Bus::Counted {
                            request,
                            count: count as u64,
                        },
                    );
                });
            }
            Bus::Leave { request, target, room } => {
                let count = self.registry().map_or(0, |r| r.leave_selected(&target, &room));
                self.answer(
                    &sender,
                    Bus::Counted {
                        request,
                        count: count as u64,
                    },
                );
            }
            Bus::Ids { request, target } => {
                let ids = self.registry().map(|r| r.ids(&target)).unwrap_or_default();
                self.answer(&sender, Bus::Listed { request, ids });
            }
            Bus::Describe { request, target } => {
                let connections = self.registry().map(|r| r.describe(&target)).unwrap_or_default();
                self.answer(&sender, Bus::Described { request, connections });
            }
            Bus::Invoke {
                request,
                target,
                id,
                timeout,
                frame,
            } => self.invoke_here(sender, request, target, id, timeout, frame),
            answer @ (Bus::Counted { .. }
            | Bus::Listed { .. }
            | Bus::Described { .. }
            | Bus::Ack { .. }
            | Bus::AckDone { .. }) => {
                let request = match &answer {
                    Bus::Counted { request, .. }
                    | Bus::Listed { request, .. }
                    | Bus::Described { request, .. }
                    | Bus::Ack { request, .. }
                    | Bus::AckDone { request } => *request,
                    _ => return,
                };
                let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tx) = requests.get(&request) {
                    let _ = tx.send((sender, answer));
                }
            }
        }
    }

    /// Sends an answer to the node that asked.
    fn answer(&self, node: &str, message: Bus) {
        let channel: Arc<str> = Arc::from(self.config.node_channel(node));
        let _ = self.send(&channel, &message, None);
    }

    /// Runs another node's broadcast invoke on this node's connections and
    /// sends each answer back, then `AckDone`.
    fn invoke_here(
        self: &Arc<Self>,
        node: String,
        request: u64,
        target: Target,
        id: u64,
        timeout: Duration,
        frame: Bytes,
    ) {
        let (acks, mut answers) = mpsc::unbounded_channel();
        if let (Some(registry), Ok(frame)) = (self.registry(), EncodedMessage::from_bytes::<C>(frame)) {
            registry.invoke(&target, &AckRequest { frame, id, timeout }, acks);
        }
        let shared = self.clone();
        tokio::spawn(async move {
            while let Some(Ack { connection, outcome }) = answers.recv().await {
                let outcome = match outcome {
                    AckOutcome::Result(raw) => Outcome::Result(raw),
                    AckOutcome::Error(raw) => Outcome::Error(raw),
                    AckOutcome::Timeout => Outcome::Timeout,
                    _ => Outcome::Closed,
                };
                shared.answer(
                    &node,
                    Bus::Ack {
                        request,
                        connection,
                        outcome,
                    },
                );
            }
            shared.answer(&node, Bus::AckDone { request });
        });
    }

    /// Sleeps `delay` unless the adapter shuts down first (then false).
    async fn pause(&self, delay: Duration) -> bool {
        let mut shutdown = self.shutdown.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = stopped(&mut shutdown) => false,
        }
    }
}

/// The sum of the `Counted` answers.
fn counted(answers: Vec<Bus>) -> usize {
    answers
        .into_iter()
        .map(|answer| match answer {
            Bus::Counted { count, .. } => usize::try_from(count).unwrap_or(usize::MAX),
            _ => 0,
        })
        .fold(0, usize::saturating_add)
}

/// Resolves once the adapter shuts down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// 16 random hex digits.
fn node_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn within<T, E: Into<Error>>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(Error::Timeout(limit)),
    }
}

/// The adapter as its registry's [`RoomInterest`]: a node subscribes to a
/// room's channel while it has members in the room.
///
/// [`RoomInterest`]: ws_messaging::adapter::RoomInterest
struct Interest<C: Codec> {
    shared: Arc<Shared<C>>,
}

impl<C: Codec> ws_messaging::adapter::RoomInterest for Interest<C> {
    fn joined(&self, room: &str) -> Option<AdapterFuture<'static, ()>> {
        let mut rooms = self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let mut subscribed = match rooms.get(room) {
            // Subscribed, or on its way: every joiner waits for it.
            Some(state) if *state.borrow() => return None,
            Some(state) => state.subscribe(),
            None => {
                let (state, subscribed) = watch::channel(false);
                rooms.insert(room.to_string(), state);
                // Without a runtime it is subscribed at the next
                // connection.
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                runtime.spawn(subscribe_room(self.shared.clone(), room.to_string()));
                subscribed
            }
        };
        Some(Box::pin(async move {
            let _ = subscribed.wait_for(|done| *done).await;
        }))
    }

    fn emptied(&self, room: &str) {
        self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).remove(room);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = self.shared.clone();
        let room = room.to_string();
        runtime.spawn(async move {
            let mut sink = shared.sink.lock().await;
            // Joined again since: stays.
            if shared
                .rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&room)
            {
                return;
            }
            if let Some(sink) = sink.as_mut() {
                let limit = shared.config.response_timeout;
                let _ = tokio::time::timeout(limit, sink.unsubscribe(shared.config.room_channel(&room))).await;
            }
        });
    }
}

/// Subscribes to `room`'s channel (unless it was left since), then says
/// so to its joiners. Answered once Redis has the subscription: what is
/// published on the channel from then on reaches this node. A failure
/// renews the subscribed connection, which subscribes every room.
async fn subscribe_room<C: Codec>(shared: Arc<Shared<C>>, room: String) {
    let mut sink = shared.sink.lock().await;
    let state = shared
        .rooms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&room)
        .cloned();
    let Some(state) = state else { return };
    let subscribed = match sink.as_mut() {
        Some(sink) => {
            let limit = shared.config.response_timeout;
            let channel = shared.config.room_channel(&room);
            matches!(
                tokio::time::timeout(limit, sink.subscribe(vec![channel])).await,
                Ok(Ok(()))
            )
        }
        None => false,
    };
    drop(sink);
    // Its joiners go on either way: after a failure, the renewed
    // connection subscribes it.
    state.send_replace(true);
    if !subscribed {
        shared.resubscribe.notify_one();
    }
}

/// The group of `room`'s channel: FNV-1a of its name, the same in every
/// process and version.
fn room_group(room: &str, groups: u16) -> u64 {
    let hash = room.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % u64::from(groups.max(1))
}

/// The lists every node's answer carries, one after the other.
fn gathered<T>(answers: Vec<Bus>, list: impl Fn(Bus) -> Vec<T>) -> Vec<T> {
    answers.into_iter().flat_map(list).collect()
}

/// Subscribes to `channel` again when this node still wants it: its
/// subscription was dropped by the server (its slot moved to another
/// shard, which the subscription follows). A channel the node left is
/// let go; a failure renews the subscribed connection.
async fn subscribe_again<C: Codec>(shared: Arc<Shared<C>>, channel: Vec<u8>) {
    let mut sink = shared.sink.lock().await;
    let config = &shared.config;
    let wanted = channel == config.all_channel().as_bytes()
        || channel == config.node_channel(&shared.node).as_bytes()
        || config.room_of(&channel).is_some_and(|room| {
            shared
                .rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(room)
        });
    if !wanted {
        return;
    }
    let subscribed = match sink.as_mut() {
        Some(sink) => matches!(
            tokio::time::timeout(config.response_timeout, sink.subscribe(vec![channel])).await,
            Ok(Ok(()))
        ),
        None => false,
    };
    if !subscribed {
        shared.resubscribe.notify_one();
    }
}

/// Writes the queued publishes in order, in batches (one pipeline each);
/// reconnects with backoff when the connection fails. Stops after the batch
/// holding the node's `Bye`, in which no heartbeat follows it.
async fn publisher<C: Codec>(shared: Arc<Shared<C>>, mut queue: mpsc::Receiver<Outgoing>, mut current: Publisher) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            next = queue.recv() => match next {
                Some(first) => first,
                None => return,
            },
            // The subscription broke: Redis went away, so this connection
            // is dead too. Renew it now, before anything is written on it.
            () = shared.publisher_stale.notified() => {
                shared.set_up(&shared.publisher_up, false, Some("the Redis connection was lost".into()));
                let Some(fresh) = reconnect_publisher(&shared, current.identity()).await else {
                    return;
                };
                current = fresh;
                shared.set_up(&shared.publisher_up, true, None);
                continue;
            }
            () = stopped(&mut shutdown) => return,
        };
        let mut farewell = first.kind == Kind::Bye;
        batch.push(first);
        while batch.len() < 512 {
            match queue.try_recv() {
                // Nothing may say this node is alive after it said Bye.
                Ok(next) if farewell && next.kind == Kind::Heartbeat => {}
                Ok(next) => {
                    farewell |= next.kind == Kind::Bye;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // The connection's own response timeout bounds this too; this one
        // only makes the bound plain here.
        let limit = shared.config.response_timeout;
        #[cfg(feature = "metrics")]
        let started = Instant::now();
        let written = tokio::time::timeout(limit, current.write(&batch)).await;
        #[cfg(feature = "metrics")]
        metrics::histogram!("ws_messaging_redis_roundtrip_seconds").record(started.elapsed());
        let failure = match written {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer from Redis within {limit:?}")),
        };
        // Written or lost: either way this batch is done.
        for outgoing in batch.drain(..) {
            if let Some(flushed) = outgoing.flushed {
                let _ = flushed.send(());
            }
        }
        if farewell {
            return;
        }
        if let Some(error) = failure {
            shared.set_up(&shared.publisher_up, false, Some(error));
            let Some(fresh) = reconnect_publisher(&shared, current.identity()).await else {
                return;
            };
            current = fresh;
            shared.set_up(&shared.publisher_up, true, None);
        }
    }
}

/// A new publishing connection that replaces the one `previous`, retried
/// with backoff; `None` when the adapter shuts down first.
async fn reconnect_publisher<C: Codec>(shared: &Shared<C>, previous: Option<&backend::Identity>) -> Option<Publisher> {
    let mut attempt: u32 = 0;
    loop {
        if !shared.pause(shared.config.retry.delay(attempt)).await {
            return None;
        }
        match within(
            shared.config.connect_timeout,
            shared.backend.publisher(&shared.config, previous),
        )
        .await
        {
            Ok(publisher) => return Some(publisher),
            Err(_) => attempt = attempt.saturating_add(1),
        }
    }
}

/// Reads the subscribed channels; resubscribes with backoff when the
/// connection ends, or when this node's own heartbeats stop coming back.
async fn subscriber<C: Codec>(shared: Arc<Shared<C>>, mut stream: Messages) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut check = tokio::time::interval(shared.config.heartbeat_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let lost = tokio::select! {
            message = stream.next() => match message {
                Some(Incoming::Message(payload)) => {
                    shared.received.0.fetch_add(1, Ordering::Relaxed);
                    shared.received.1.fetch_add(payload.len() as u64, Ordering::Relaxed);
                    shared.handle(payload);
                    None
                }
                Some(Incoming::Dropped(channel)) => {
                    tokio::spawn(subscribe_again(shared.clone(), channel));
                    None
                }
                None => Some("the Redis subscription ended".to_string()),
            },
            () = shared.resubscribe.notified() => Some("a room's subscription failed".to_string()),
            _ = check.tick() => {
                shared.expire_nodes();
                let silent = shared.last_own_heartbeat.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
                let deaf = silent > shared.config.node_timeout && shared.publisher_up.load(Ordering::Acquire);
                deaf.then(|| format!("this node's own heartbeats have not come back for {silent:?}"))
            }
            () = stopped(&mut shutdown) => return,
        };
        let Some(error) = lost else { continue };
        shared.publisher_stale.notify_one();
        shared.set_up(&shared.subscriber_up, false, Some(error));
        let mut attempt: u32 = 0;
        stream = loop {
            if !shared.pause(shared.config.retry.delay(attempt)).await {
                return;
            }
            // Held while the rooms are subscribed again: a join meanwhile
            // waits, then subscribes on the new connection.
            let mut sink = shared.sink.lock().await;
            let rooms: Vec<String> = shared
                .rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect();
            match within(
                shared.config.connect_timeout,
                shared.backend.subscribe(&shared.config, &shared.node, &rooms),
            )
            .await
            {
                Ok((fresh, stream)) => {
                    *sink = Some(fresh);
                    // Every room is subscribed now: its joiners go on.
                    let taken: HashSet<&String> = rooms.iter().collect();
                    for (room, state) in shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        if taken.contains(room) {
                            state.send_replace(true);
                        }
                    }
                    break stream;
                }
                Err(_) => attempt = attempt.saturating_add(1),
            }
        };
        *shared.last_own_heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        shared.set_up(&shared.subscriber_up, true, None);
    }
}

/// Says this node is alive, every heartbeat interval.
async fn heartbeat<C: Codec>(shared: Arc<Shared<C>>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = shared.send(&shared.all, &Bus::Heartbeat, None);
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}
