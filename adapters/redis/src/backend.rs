//! A node's Redis connections, on one Redis server or on a Redis Cluster:
//! the only place that knows which. On one server, sends are `PUBLISH`ed
//! on a connection of their own, in pipelines, and a `SUBSCRIBE`d
//! connection reads the channels. On a cluster, every channel is a sharded
//! one (`SPUBLISH`, `SSUBSCRIBE`, Redis 7+): a channel lives on the shard
//! of its slot, so room traffic spreads over the shards. When a slot
//! moves, its old shard drops the channel's subscription and the node
//! subscribes again (the cluster client follows the `MOVED` answer to the
//! new shard); when a shard's connection breaks (a master died), the
//! subscribed connection ends and the node subscribes again on a new one,
//! which asks the cluster where every slot is now.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use tokio::sync::mpsc;

use crate::{store, Command, Outgoing, RedisConfig};

/// Where a node's Redis is.
pub(crate) enum Backend {
    /// One Redis server (or a primary with its replicas behind one
    /// address).
    Standalone(redis::Client),
    /// A Redis Cluster, found from any of its nodes.
    Cluster(Box<ClusterClient>),
}

impl Backend {
    /// One Redis server at `url`.
    pub(crate) fn standalone(url: &str) -> redis::RedisResult<Self> {
        redis::Client::open(url).map(Backend::Standalone)
    }

    /// The Redis Cluster that `urls` (some of its nodes) belong to.
    pub(crate) fn cluster(urls: &[String], config: &RedisConfig) -> redis::RedisResult<Self> {
        ClusterClient::builder(urls.to_vec())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            .build()
            .map(|client| Backend::Cluster(Box::new(client)))
    }

    /// Whether it is a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(_))
    }

    /// A publishing connection, in place of `previous` (see [`take_over`]).
    pub(crate) async fn publisher(
        &self,
        config: &RedisConfig,
        previous: Option<&Identity>,
    ) -> redis::RedisResult<Publisher> {
        match self {
            Backend::Standalone(client) => {
                let mut connection = client
                    .get_multiplexed_async_connection_with_config(&config.connection_config())
                    .await?;
                let identity = take_over(&mut connection, previous).await?;
                let scripts = store::load_scripts(&mut connection).await?;
                Ok(Publisher::Standalone {
                    connection,
                    identity,
                    scripts,
                })
            }
            Backend::Cluster(client) => Ok(Publisher::Cluster {
                connection: client.get_async_connection().await?,
            }),
        }
    }

    /// A subscribed connection: the cluster's channel, this node's, and
    /// the channels of `rooms`.
    pub(crate) async fn subscribe(
        &self,
        config: &RedisConfig,
        node: &str,
        rooms: &[String],
    ) -> redis::RedisResult<(Sink, Messages)> {
        let (mut sink, messages) = match self {
            Backend::Standalone(client) => {
                let (sink, stream) = client.get_async_pubsub().await?.split();
                (Sink::Plain(sink), Messages::Plain(stream))
            }
            Backend::Cluster(client) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let connection =
                    client.get_async_connection_with_config(redis::cluster::ClusterConfig::new().set_push_sender(tx));
                (Sink::Sharded(connection.await?), Messages::Sharded(rx))
            }
        };
        sink.subscribe(vec![config.all_channel().into_bytes()]).await?;
        sink.subscribe(vec![config.node_channel(node).into_bytes()]).await?;
        for chunk in rooms.chunks(1024) {
            sink.subscribe(chunk.iter().map(|room| config.room_channel(room)).collect())
                .await?;
        }
        Ok((sink, messages))
    }

    /// A connection for reads and commands answered at once (one Redis
    /// server only).
    pub(crate) async fn reader(&self, config: &RedisConfig) -> redis::RedisResult<MultiplexedConnection> {
        match self {
            Backend::Standalone(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&config.connection_config())
                    .await
            }
            Backend::Cluster(_) => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the recovery store needs one Redis server, not a cluster",
            ))),
        }
    }
}

/// A publishing connection.
pub(crate) enum Publisher {
    Standalone {
        connection: MultiplexedConnection,
        /// Who it is on the Redis server.
        identity: Option<Identity>,
        /// The recovery scripts' names on its Redis.
        scripts: store::Scripts,
    },
    Cluster {
        connection: ClusterConnection,
    },
}

impl Publisher {
    /// Who it is on the Redis server (one server only).
    pub(crate) fn identity(&self) -> Option<&Identity> {
        match self {
            Publisher::Standalone { identity, .. } => identity.as_ref(),
            Publisher::Cluster { .. } => None,
        }
    }

    /// The recovery scripts' names (none on a cluster).
    pub(crate) fn scripts(&self) -> store::Scripts {
        match self {
            Publisher::Standalone { scripts, .. } => scripts.clone(),
            Publisher::Cluster { .. } => store::Scripts::default(),
        }
    }

    /// Writes `batch` in order: on one server, one pipeline; on a cluster,
    /// one pipeline per slot, all at once (order holds per channel).
    pub(crate) async fn write(&mut self, batch: &[Outgoing]) -> redis::RedisResult<()> {
        match self {
            Publisher::Standalone { connection, .. } => {
                // A command Redis refuses (out of memory, say) loses that
                // command only; a broken connection fails the batch.
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for outgoing in batch {
                    match &outgoing.command {
                        Command::Publish { channel, payload } => {
                            pipe.cmd("PUBLISH").arg(channel.bytes()).arg(&payload[..]).ignore();
                        }
                        Command::Cmds(cmds) => {
                            for cmd in cmds {
                                pipe.add_command(cmd.clone()).ignore();
                            }
                        }
                    }
                }
                pipe.query_async::<()>(connection).await
            }
            Publisher::Cluster { connection } => {
                let mut pipes: Vec<redis::Pipeline> = Vec::new();
                let mut slots: HashMap<Slot, usize> = HashMap::new();
                for outgoing in batch {
                    // Only publishes: the recovery store is not used on a
                    // cluster.
                    let Command::Publish { channel, payload } = &outgoing.command else {
                        continue;
                    };
                    let at = *slots.entry(Slot::for_key(channel.bytes())).or_insert_with(|| {
                        pipes.push(redis::pipe());
                        pipes.len() - 1
                    });
                    pipes[at]
                        .cmd("SPUBLISH")
                        .arg(channel.bytes())
                        .arg(&payload[..])
                        .ignore();
                }
                let written = futures_util::future::join_all(pipes.iter().map(|pipe| {
                    let mut connection = connection.clone();
                    async move { pipe.query_async::<()>(&mut connection).await }
                }))
                .await;
                written.into_iter().collect()
            }
        }
    }
}

/// Changes the channels a subscribed connection reads.
pub(crate) enum Sink {
    Plain(PubSubSink),
    Sharded(ClusterConnection),
}

impl Sink {
    pub(crate) async fn subscribe(&mut self, channels: Vec<Vec<u8>>) -> redis::RedisResult<()> {
        match self {
            Sink::Plain(sink) => sink.subscribe(channels).await,
            // Sharded channels of different slots: one at a time.
            Sink::Sharded(connection) => {
                for channel in channels {
                    connection.ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    pub(crate) async fn unsubscribe(&mut self, channel: Vec<u8>) -> redis::RedisResult<()> {
        match self {
            Sink::Plain(sink) => sink.unsubscribe(channel).await,
            Sink::Sharded(connection) => connection.sunsubscribe(channel).await,
        }
    }
}

/// What the subscribed channels carry.
pub(crate) enum Messages {
    Plain(PubSubStream),
    Sharded(mpsc::UnboundedReceiver<redis::PushInfo>),
}

/// One thing a subscribed connection hears.
pub(crate) enum Incoming {
    /// A message's payload.
    Message(Bytes),
    /// The server dropped this channel's subscription (on a cluster, when
    /// the channel's slot moved to another shard), or confirmed an
    /// unsubscription of the node's own.
    Dropped(Vec<u8>),
}

impl Messages {
    /// What comes next; `None` when the connection ended.
    pub(crate) async fn next(&mut self) -> Option<Incoming> {
        match self {
            Messages::Plain(stream) => stream
                .next()
                .await
                .map(|message| Incoming::Message(Bytes::copy_from_slice(message.get_payload_bytes()))),
            Messages::Sharded(pushes) => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    // [channel, payload].
                    redis::PushKind::SMessage => {
                        if let Some(redis::Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                            return Some(Incoming::Message(Bytes::from(payload)));
                        }
                    }
                    // [channel, count].
                    redis::PushKind::SUnsubscribe => {
                        if let Some(redis::Value::BulkString(channel)) = push.data.into_iter().next() {
                            return Some(Incoming::Dropped(channel));
                        }
                    }
                    // A shard's connection broke: its master may have
                    // failed over, which this idle connection would not
                    // learn until a command of its own failed. Ended here,
                    // the node subscribes again on a fresh connection
                    // that asks the cluster where every slot is now.
                    redis::PushKind::Disconnection => return None,
                    // Subscription confirmations carry nothing to deliver.
                    _ => {}
                }
            },
        }
    }
}

/// A connection as the Redis server knows it: `CLIENT ID` is unique only
/// within one run of the server, told apart by its `run_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    run_id: String,
    client: i64,
}

/// Whether a command failed because the connection did (rather than
/// because the server refused the command).
pub(crate) fn lost(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_timeout() || error.is_connection_dropped()
}

/// This connection's identity; `None` when the server does not tell it
/// (before Redis 5, or the commands are not allowed).
async fn identify(connection: &mut MultiplexedConnection) -> Result<Option<Identity>, redis::RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("CLIENT").arg("ID").cmd("INFO").arg("server");
    match pipe.query_async::<(i64, String)>(connection).await {
        Ok((client, info)) => Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|run_id| Identity {
                run_id: run_id.trim().to_string(),
                client,
            })),
        Err(error) if lost(&error) => Err(error),
        Err(_) => Ok(None),
    }
}

/// Makes a new `connection` the successor of the lost one `previous`: when
/// the same Redis process still runs, `previous` is killed on the server
/// first, so a command it still holds (written before a response timeout)
/// either ran already or never runs, and cannot run after the commands of
/// the new connection. Returns the new connection's identity.
pub(crate) async fn take_over(
    connection: &mut MultiplexedConnection,
    previous: Option<&Identity>,
) -> Result<Option<Identity>, redis::RedisError> {
    let identity = identify(connection).await?;
    if let (Some(previous), Some(identity)) = (previous, &identity) {
        if previous.run_id == identity.run_id {
            let killed = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(previous.client)
                .query_async::<redis::Value>(connection)
                .await;
            // "No such client": the server closed it already. Refused (an
            // ACL without CLIENT): ordering is then as good as the
            // response timeout.
            if let Err(error) = killed {
                if lost(&error) {
                    return Err(error);
                }
            }
        }
    }
    Ok(identity)
}
