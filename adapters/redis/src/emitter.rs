//! [`RedisEmitter`]: sends to a cluster's rooms and connections from a
//! process that has no WebSocket clients of its own.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use ws_messaging::adapter::Target;
use ws_messaging::{Args, Codec, EncodedMessage};

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
pub struct RedisEmitter<C: Codec> {
    codec: Arc<C>,
    connection: MultiplexedConnection,
    channel: String,
    id: String,
}

impl<C: Codec> std::fmt::Debug for RedisEmitter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEmitter")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Clone for RedisEmitter<C> {
    fn clone(&self) -> Self {
        RedisEmitter {
            codec: self.codec.clone(),
            connection: self.connection.clone(),
            channel: self.channel.clone(),
            id: self.id.clone(),
        }
    }
}

impl<C: Codec> RedisEmitter<C> {
    /// Connects to Redis at `url`, for the cluster of the default prefix.
    pub async fn connect(url: &str, codec: C) -> Result<Self, Error> {
        Self::with_config(url, codec, &RedisConfig::default()).await
    }

    /// Connects for the cluster of `config.prefix`.
    pub async fn with_config(url: &str, codec: C, config: &RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(Error::Url)?;
        let connection = within(config.connect_timeout, client.get_multiplexed_async_connection()).await?;
        Ok(RedisEmitter {
            codec: Arc::new(codec),
            connection,
            channel: config.all_channel(),
            id: format!("emitter-{}", crate::node_id()),
        })
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
        let payload = bus::encode(&self.id, message);
        let mut connection = self.connection.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(&payload[..])
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
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
        let message = EncodedMessage::encode(&*self.emitter.codec, name, args)?;
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
