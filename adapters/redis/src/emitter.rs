//! [`RedisEmitter`]: sends to a cluster's rooms and connections from a
//! process that has no WebSocket clients of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::ConnectionAddr;
use tokio::time::Instant;
use ws_messaging::adapter::Target;
use ws_messaging::{Args, Codec, EncodedMessage};

use crate::backend::{lost, take_over, Backend, Identity};
use crate::bus::{self, Bus};
use crate::{within, Error, RedisConfig};

/// Sends events (and disconnects) to the connections of every node of a
/// cluster through Redis, from a process with no server: a worker, a cron
/// job. It speaks the cluster's codec and prefix.
///
/// ```no_run
/// use ws_messaging_json::Json;
/// use ws_messaging_redis::RedisEmitter;
///
/// # async fn run() -> Result<(), ws_messaging_redis::Error> {
/// let emitter = RedisEmitter::connect("redis://127.0.0.1:6379", Json).await?;
/// emitter.to("lobby").emit("news", ("the job is done",)).await?;
/// emitter.everyone().emit("maintenance", (5,)).await?;
/// # Ok(()) }
/// ```
///
/// Each `emit` is one Redis PUBLISH, answered before it returns: emits
/// awaited one after the other arrive in that order.
///
/// # When Redis is down
/// The emitter notices a lost connection as soon as Redis closes it, and
/// opens a new one on the next send, so the first send after Redis is back
/// goes through. While Redis cannot be reached, a send fails with
/// [`Error::Unavailable`] and publishes nothing; reconnect attempts are
/// spaced like the adapter's ([`RedisConfig::retry`]), and sends in
/// between fail at once. A send
/// whose connection breaks while it waits for Redis's answer fails with
/// [`Error::Redis`] (or [`Error::Timeout`] after
/// [`RedisConfig::response_timeout`]): it may or may not have been
/// published, but never after a later send (the next connection first
/// kills that one on the server). Clones share one connection.
///
/// # On a Redis Cluster
/// [`RedisEmitter::cluster`] sends with `SPUBLISH`, each room's channel on
/// its shard, as the adapter's nodes do. The cluster client follows slot
/// moves and failovers, retrying a send meanwhile; a send that fails after
/// [`RedisConfig::response_timeout`] may still be published later.
pub struct RedisEmitter<C: Codec> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Codec> {
    codec: C,
    config: RedisConfig,
    channel: String,
    id: String,
    redis: Remote,
}

/// Where the emitter publishes.
enum Remote {
    /// One Redis server: a connection renewed by hand (see [`Link`]).
    Server {
        client: Box<redis::Client>,
        link: Mutex<Link>,
    },
    /// A Redis Cluster: its client renews connections and follows slots.
    Cluster(ClusterConnection),
}

/// The emitter's connection, or when to try again.
struct Link {
    live: Option<Live>,
    /// After a failed attempt: no new one before this.
    retry_at: Option<Instant>,
    /// Why the last attempt failed.
    error: String,
    /// Failed attempts since the last connection: the next failure waits
    /// `config.retry.delay(failures)`.
    failures: u32,
    /// The connection given up on last: the next one kills it first.
    previous: Option<Identity>,
}

#[derive(Clone)]
struct Live {
    connection: MultiplexedConnection,
    /// Set when the connection ended (Redis closed it, or went away).
    closed: Arc<AtomicBool>,
    identity: Option<Identity>,
}

impl<C: Codec> std::fmt::Debug for RedisEmitter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEmitter")
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Clone for RedisEmitter<C> {
    fn clone(&self) -> Self {
        RedisEmitter {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> RedisEmitter<C> {
    /// Connects to Redis at `url`, for the cluster of the default prefix.
    pub async fn connect(url: &str, codec: C) -> Result<Self, Error> {
        Self::with_config(url, codec, &RedisConfig::default()).await
    }

    /// Connects for the cluster of `config.prefix`, with its timeouts and
    /// backoff. Fails when Redis cannot be reached now.
    pub async fn with_config(url: &str, codec: C, config: &RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(Error::Url)?;
        let live = within(config.connect_timeout, open(&client, config, None)).await?;
        let link = Mutex::new(Link {
            live: Some(live),
            retry_at: None,
            error: String::new(),
            failures: 0,
            previous: None,
        });
        Ok(Self::over(
            Remote::Server {
                client: Box::new(client),
                link,
            },
            codec,
            config,
        ))
    }

    /// Connects to the Redis Cluster that `urls` (`redis://HOST:PORT`, one
    /// or more of its nodes) belong to, for the nodes that share it with
    /// [`RedisAdapter::cluster`](crate::RedisAdapter::cluster) and
    /// `config.prefix`. Fails when the cluster cannot be reached now.
    ///
    /// ```no_run
    /// use ws_messaging_json::Json;
    /// use ws_messaging_redis::{RedisConfig, RedisEmitter};
    ///
    /// # async fn run() -> Result<(), ws_messaging_redis::Error> {
    /// let nodes = ["redis://127.0.0.1:7000".to_string(), "redis://127.0.0.1:7001".to_string()];
    /// let emitter = RedisEmitter::cluster(&nodes, Json, &RedisConfig::default()).await?;
    /// emitter.to("lobby").emit("news", ("the job is done",)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cluster(urls: &[String], codec: C, config: &RedisConfig) -> Result<Self, Error> {
        let Backend::Cluster(client) = Backend::cluster(urls, config).map_err(Error::Url)? else {
            unreachable!("Backend::cluster makes a cluster backend")
        };
        let connection = within(config.connect_timeout, async {
            client.get_async_connection().await.map_err(Error::from)
        })
        .await?;
        Ok(Self::over(Remote::Cluster(connection), codec, config))
    }

    fn over(redis: Remote, codec: C, config: &RedisConfig) -> Self {
        RedisEmitter {
            inner: Arc::new(Inner {
                codec,
                config: config.clone(),
                channel: config.all_channel(),
                id: format!("emitter-{}", crate::node_id()),
                redis,
            }),
        }
    }

    /// Every connection of the cluster.
    pub fn everyone(&self) -> Emit<'_, C> {
        Emit {
            emitter: self,
            target: Target::all(),
        }
    }

    /// The members of the room `room` (never the connection whose id is
    /// `room`: see [`to_connection`](Self::to_connection)).
    pub fn to(&self, room: impl Into<String>) -> Emit<'_, C> {
        self.everyone().to(room)
    }

    /// The connection `id` only, on whichever node it is.
    pub fn to_connection(&self, id: impl Into<String>) -> Emit<'_, C> {
        Emit {
            emitter: self,
            target: Target::connection(id),
        }
    }

    /// Everyone but the members of the room `room` and the connection
    /// whose id is `room`.
    pub fn except(&self, room: impl Into<String>) -> Emit<'_, C> {
        self.everyone().except(room)
    }

    async fn publish(&self, message: &Bus) -> Result<(), Error> {
        if let Some(n) = message.target().and_then(bus::oversized) {
            return Err(Error::TooManyRooms(n));
        }
        let payload = bus::encode(&self.inner.id, message);
        let limit = self.inner.config.response_timeout;
        let (client, link) = match &self.inner.redis {
            Remote::Server { client, link } => (client, link),
            Remote::Cluster(connection) => {
                let mut publish = redis::cmd("SPUBLISH");
                publish.arg(self.channel(message)).arg(&payload[..]);
                let mut connection = connection.clone();
                return match tokio::time::timeout(limit, publish.query_async::<()>(&mut connection)).await {
                    Ok(published) => published.map_err(Error::from),
                    Err(_) => Err(Error::Timeout(limit)),
                };
            }
        };
        let mut live = self.live(client, link).await?;
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.channel(message)).arg(&payload[..]);
        match tokio::time::timeout(limit, publish.query_async::<()>(&mut live.connection)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                if lost(&error) {
                    forget(link, &live);
                }
                Err(error.into())
            }
            Err(_) => {
                forget(link, &live);
                Err(Error::Timeout(limit))
            }
        }
    }

    /// Where `message` is published: a send to one room goes on that
    /// room's channel, as a node's does.
    fn channel(&self, message: &Bus) -> Vec<u8> {
        let room = match message {
            Bus::Broadcast { target, .. } => self.inner.config.channel_for(target),
            _ => None,
        };
        room.unwrap_or_else(|| self.inner.channel.clone().into_bytes())
    }

    /// The connection, renewed when it ended; an error while Redis cannot
    /// be reached.
    async fn live(&self, client: &redis::Client, link: &Mutex<Link>) -> Result<Live, Error> {
        let inner = &*self.inner;
        let previous = {
            let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(live) = &link.live {
                if !live.closed.load(Ordering::Acquire) {
                    return Ok(live.clone());
                }
                link.previous = live.identity.clone();
                link.live = None;
            }
            if let Some(retry_at) = link.retry_at {
                let now = Instant::now();
                if now < retry_at {
                    return Err(Error::Unavailable {
                        reason: link.error.clone(),
                        retry_in: retry_at - now,
                    });
                }
            }
            link.previous.clone()
        };
        let opened = within(
            inner.config.connect_timeout,
            open(client, &inner.config, previous.as_ref()),
        )
        .await;
        let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
        match opened {
            Ok(live) => {
                link.previous = None;
                link.retry_at = None;
                link.failures = 0;
                link.live = Some(live.clone());
                Ok(live)
            }
            Err(error) => {
                let retry_in = inner.config.retry.delay(link.failures);
                link.retry_at = Some(Instant::now() + retry_in);
                link.failures = link.failures.saturating_add(1);
                link.error = error.to_string();
                Err(Error::Unavailable {
                    reason: link.error.clone(),
                    retry_in,
                })
            }
        }
    }
}

/// Drops `live` (if it is still `link`'s connection): the next send opens
/// a new one, which first kills this one on the server, so that a PUBLISH
/// it still holds cannot run after a later one.
fn forget(link: &Mutex<Link>, live: &Live) {
    live.closed.store(true, Ordering::Release);
    let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
    if link.live.as_ref().is_some_and(|l| Arc::ptr_eq(&l.closed, &live.closed)) {
        link.live = None;
        link.previous = live.identity.clone();
    }
}

/// Opens a connection with `config`'s timeouts, in place of `previous`,
/// whose end is noticed: its driver runs in a task of ours that marks it
/// closed when Redis closes it.
async fn open(
    client: &redis::Client,
    config: &RedisConfig,
    previous: Option<&Identity>,
) -> Result<Live, redis::RedisError> {
    let info = client.get_connection_info();
    let settings = info.redis_settings();
    let closed = Arc::new(AtomicBool::new(false));
    let mut connection = match info.addr() {
        ConnectionAddr::Tcp(host, port) => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            let (connection, driver) =
                MultiplexedConnection::new_with_config(settings, stream, config.connection_config()).await?;
            drive(driver, closed.clone());
            connection
        }
        #[cfg(unix)]
        ConnectionAddr::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let (connection, driver) =
                MultiplexedConnection::new_with_config(settings, stream, config.connection_config()).await?;
            drive(driver, closed.clone());
            connection
        }
        // Not built with TLS; whatever else comes is left to the client,
        // and a lost connection is then noticed when a send fails on it.
        _ => {
            client
                .get_multiplexed_async_connection_with_config(&config.connection_config())
                .await?
        }
    };
    let identity = take_over(&mut connection, previous).await?;
    Ok(Live {
        connection,
        closed,
        identity,
    })
}

/// Runs a connection's driver; marks the connection closed when it ends.
fn drive(driver: impl std::future::Future<Output = ()> + Send + 'static, closed: Arc<AtomicBool>) {
    tokio::spawn(async move {
        driver.await;
        closed.store(true, Ordering::Release);
    });
}

/// Who an emitter's send goes to; see [`RedisEmitter::to`].
#[derive(Debug)]
#[must_use = "an Emit does nothing until it emits or disconnects"]
pub struct Emit<'a, C: Codec> {
    emitter: &'a RedisEmitter<C>,
    target: Target,
}

impl<C: Codec> Emit<'_, C> {
    /// Adds the members of the room `room`.
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.target = self.target.with_room(room);
        self
    }

    /// Adds the connection `id`.
    pub fn to_connection(mut self, id: impl Into<String>) -> Self {
        self.target = self.target.with_connection(id);
        self
    }

    /// Leaves out the members of the room `room` and the connection whose
    /// id is `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.target = self.target.without(room);
        self
    }

    /// Sends the event `name(args)`, encoded once, to every node.
    pub async fn emit<A: Args>(&self, name: &str, args: A) -> Result<(), Error> {
        let message = EncodedMessage::encode(&self.emitter.inner.codec, name, args)?;
        self.emitter
            .publish(&Bus::Broadcast {
                target: self.target.clone(),
                frame: message.to_bytes(),
            })
            .await
    }

    /// Closes the selected connections with `code` and `reason`, on every
    /// node.
    pub async fn disconnect(&self, code: u16, reason: &str) -> Result<(), Error> {
        self.emitter
            .publish(&Bus::Disconnect {
                target: self.target.clone(),
                code,
                reason: reason.to_string(),
            })
            .await
    }
}
