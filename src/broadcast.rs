//! [`Broadcast`]: a send, a query or an invoke addressed to rooms of a
//! [`Server`], on every node.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::adapter::{Ack, AckOutcome, AckRequest, Described, Target};
use crate::buffers::{scratch, to_message};
use crate::codec::Codec;
use crate::endpoint::{encode_event, EncodedMessage};
use crate::error::{AdapterError, InvokeError, SendError};
use crate::server::Server;
use crate::wire::{check_name, AsSeq};
use crate::Args;

/// A connection as [`Broadcast::connections`] lists it, on whichever node
/// it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo<T> {
    /// Its id.
    pub id: String,
    /// The rooms it is in.
    pub rooms: Vec<String>,
    /// The info it shows ([`Endpoint::set_info`](crate::Endpoint::set_info)).
    pub info: Option<T>,
}

/// Who a send goes to, built from [`Server::everyone`], [`Server::to`],
/// [`Server::to_connection`], [`Server::except`] or [`Server::local`]:
/// every connection in any of the rooms named with [`to`](Self::to) and
/// every connection named with [`to_connection`](Self::to_connection)
/// (everyone when none is), minus those in any room named with
/// [`except`](Self::except) (and the connection of that id), on every node
/// unless [`local`](Self::local).
///
/// Rooms and connection ids never mix (see [`Target`]): `to(x)` reaches
/// the members of the room `x` only, never the connection whose id is `x`.
///
/// ```no_run
/// # async fn f(server: ws_messaging::Server<ws_messaging_json::Json>) -> Result<(), Box<dyn std::error::Error>> {
/// // An event, encoded once, to two rooms but not to the muted.
/// server.to("lobby").to("games").except("muted").emit("news", ("hello",))?;
///
/// // Presence, across nodes.
/// let players = server.to("games").count().await?;
///
/// // Ask every member of a room, and take the answers as they come.
/// let mut acks = server.to("games").invoke::<_, bool>("ready?", ())?;
/// while let Some((connection, answer)) = acks.next().await {
///     println!("{connection}: {answer:?}");
/// }
/// # Ok(()) }
/// ```
#[must_use = "a Broadcast does nothing until it emits, counts, invokes or disconnects"]
pub struct Broadcast<C: Codec> {
    server: Server<C>,
    target: Target,
    local: bool,
    timeout: Option<Duration>,
}

impl<C: Codec> Clone for Broadcast<C> {
    fn clone(&self) -> Self {
        Broadcast {
            server: self.server.clone(),
            target: self.target.clone(),
            local: self.local,
            timeout: self.timeout,
        }
    }
}

impl<C: Codec> std::fmt::Debug for Broadcast<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast")
            .field("target", &self.target)
            .field("local", &self.local)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Broadcast<C> {
    pub(crate) fn new(server: Server<C>, target: Target) -> Self {
        Broadcast {
            server,
            target,
            local: false,
            timeout: None,
        }
    }

    /// Adds the members of the room `room` (one joined with
    /// [`Endpoint::join`](crate::Endpoint::join)). A connection id is not a
    /// room: use [`to_connection`](Self::to_connection) for a connection.
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.target.add_room(room.into());
        self
    }

    /// Adds the connection `id`, on whichever node it is (and never the
    /// members of a room named like it).
    pub fn to_connection(mut self, id: impl Into<String>) -> Self {
        self.target.add_connection(id.into());
        self
    }

    /// Leaves out the members of the room `room`, and the connection whose
    /// id is `room` (`server.except(my_id)`: everyone but me). Leaving out
    /// more than meant is never a leak: a room named like an id only
    /// leaves out its members as well.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.target.add_except(room.into());
        self
    }

    /// This node only: the adapter is not used.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// How long [`invoke`](Self::invoke) waits for each answer (default:
    /// the server's `ack_timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Who it goes to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends the event `name(args)`, encoded once, without waiting on any
    /// connection (one whose backlog is past its limits is closed as a slow
    /// consumer instead). Returns how many connections of this node it was
    /// queued for. Two emits made one after the other reach every
    /// connection, on every node, in that order.
    ///
    /// When the adapter cannot carry it to the other nodes
    /// ([`SendError::Adapter`]), it is sent nowhere.
    pub fn emit<A: Args>(&self, name: &str, args: A) -> Result<usize, SendError> {
        let message = encode_event(self.server.codec(), name, &args)?;
        self.emit_encoded(&message)
    }

    /// [`emit`](Self::emit) for a frame encoded already
    /// ([`EncodedMessage::encode`] with the server's codec).
    ///
    /// With recovery on an adapter that shares its history
    /// ([`Adapter::recovery_store`](crate::adapter::Adapter::recovery_store)),
    /// the event is logged there first and delivered, to this node's
    /// connections too, when it comes back with its position: the count is
    /// of the connections it addresses here now. A [`local`](Self::local)
    /// send is then not recoverable.
    pub fn emit_encoded(&self, message: &EncodedMessage) -> Result<usize, SendError> {
        if !self.local {
            if let Some(logged) = self.server.registry().publish_logged(&self.target, message) {
                let delivered = logged?;
                crate::meter::broadcast(delivered);
                return Ok(delivered);
            }
            self.server.adapter_ref().publish(&self.target, message)?;
        }
        let delivered = self.server.registry().deliver(&self.target, message);
        crate::meter::broadcast(delivered);
        Ok(delivered)
    }

    /// How many authenticated connections it selects, on every live node.
    pub async fn count(&self) -> Result<usize, AdapterError> {
        let here = self.server.registry().count(&self.target);
        if self.local {
            return Ok(here);
        }
        Ok(here + self.server.adapter_ref().count(&self.target).await?)
    }

    /// The ids of the authenticated connections it selects, on every live
    /// node.
    pub async fn ids(&self) -> Result<Vec<String>, AdapterError> {
        let mut ids = self.server.registry().ids(&self.target);
        if !self.local {
            ids.extend(self.server.adapter_ref().ids(&self.target).await?);
        }
        Ok(ids)
    }

    /// The authenticated connections it selects, on every live node (each
    /// answers within the adapter's request timeout, or is left out): id,
    /// rooms, and the info each shows ([`Endpoint::set_info`]) read as
    /// `T` (`None` where a connection set none, or set one that does not
    /// read as `T`).
    ///
    /// [`Endpoint::set_info`]: crate::Endpoint::set_info
    ///
    /// ```
    /// # async fn f(server: ws_messaging::Server<ws_messaging_json::Json>) -> Result<(), ws_messaging::AdapterError> {
    /// #[derive(serde::Deserialize)]
    /// struct Player { name: String }
    /// for player in server.to("games").connections::<Player>().await? {
    ///     let name = player.info.map_or("(anonymous)".to_string(), |p| p.name);
    ///     println!("{} {name} in {:?}", player.id, player.rooms);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn connections<T: DeserializeOwned>(&self) -> Result<Vec<ConnectionInfo<T>>, AdapterError> {
        let mut described = self.server.registry().describe(&self.target);
        if !self.local {
            described.extend(self.server.adapter_ref().describe(&self.target).await?);
        }
        let codec = self.server.codec();
        Ok(described
            .into_iter()
            .map(|Described { id, rooms, info }| ConnectionInfo {
                id,
                rooms,
                info: info.and_then(|raw| codec.decode_value(&raw).ok()),
            })
            .collect())
    }

    /// Puts the connections it selects in `room`, wherever they are: on
    /// every live node (each answers within the adapter's request timeout,
    /// or is left out). Once it returns, a send to `room` reaches them.
    /// Returns how many connections were selected.
    ///
    /// ```
    /// # async fn f(server: ws_messaging::Server<ws_messaging_json::Json>, id: &str) -> Result<(), ws_messaging::AdapterError> {
    /// // The connection `id`, on whichever node it is, joins `vip`.
    /// server.to_connection(id).join("vip").await?;
    /// // Everyone in `lobby` leaves it for `hall`.
    /// server.to("lobby").join("hall").await?;
    /// server.to("hall").leave("lobby").await?;
    /// # Ok(()) }
    /// ```
    pub async fn join(&self, room: &str) -> Result<usize, AdapterError> {
        let here = self.server.registry().join_selected(&self.target, room).await;
        if self.local {
            return Ok(here);
        }
        Ok(here + self.server.adapter_ref().join(&self.target, room).await?)
    }

    /// Takes the connections it selects out of `room`, on every live node.
    /// Returns how many connections were selected.
    pub async fn leave(&self, room: &str) -> Result<usize, AdapterError> {
        let here = self.server.registry().leave_selected(&self.target, room);
        if self.local {
            return Ok(here);
        }
        Ok(here + self.server.adapter_ref().leave(&self.target, room).await?)
    }

    /// Closes the connections it selects with `code` and `reason`, on every
    /// node. Returns how many of this node's were closed.
    pub fn disconnect(&self, code: u16, reason: &str) -> Result<usize, AdapterError> {
        if !self.local {
            self.server.adapter_ref().disconnect(&self.target, code, reason)?;
        }
        Ok(self.server.registry().disconnect(&self.target, code, reason))
    }

    /// Invokes the procedure `name(args)` on every connection it selects,
    /// with one frame encoded once, and gives the answers as they come,
    /// each with its connection id. Every answer ends: a result, the
    /// remote error, a timeout ([`timeout`](Self::timeout)) or a
    /// connection error; the [`Acks`] end once every connection has
    /// answered.
    pub fn invoke<A: Args, R: DeserializeOwned>(&self, name: &str, args: A) -> Result<Acks<C, R>, SendError> {
        check_name(name).map_err(SendError::ReservedName)?;
        // One id for every recipient, above the ids a connection's own
        // counter hands out, and within JavaScript's safe integers.
        let id = (1u64 << 52) | (rand::random::<u64>() & ((1u64 << 52) - 1));
        let mut buf = scratch();
        self.server
            .codec()
            .encode_message(name, &AsSeq(&args), Some(id), &mut buf)
            .map_err(SendError::Encode)?;
        let request = AckRequest {
            frame: EncodedMessage(to_message::<C>(buf)?),
            id,
            timeout: self.timeout.unwrap_or(self.server.endpoint_options().ack_timeout),
        };
        let (acks, answers) = mpsc::unbounded_channel();
        if !self.local {
            self.server.adapter_ref().invoke(&self.target, &request, acks.clone())?;
        }
        self.server.registry().invoke(&self.target, &request, acks);
        Ok(Acks {
            answers,
            server: self.server.clone(),
            id,
            result: PhantomData,
        })
    }
}

/// The answers to a [`Broadcast::invoke`], as they come: a [`Stream`] of
/// `(connection id, answer)`, or [`next`](Self::next) in a loop.
///
/// Dropping it before the end gives up on the answers still to come: the
/// invoke is forgotten at once on every connection of this node that has
/// not answered (a late answer is ignored), and other nodes forget it at
/// its timeout.
pub struct Acks<C: Codec, R> {
    answers: mpsc::UnboundedReceiver<Ack>,
    server: Server<C>,
    id: u64,
    result: PhantomData<fn() -> R>,
}

impl<C: Codec, R> std::fmt::Debug for Acks<C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<C: Codec, R: DeserializeOwned> Acks<C, R> {
    /// The next answer; `None` once every connection has answered.
    pub async fn next(&mut self) -> Option<(String, Result<R, InvokeError>)> {
        std::future::poll_fn(|cx| self.poll_answer(cx)).await
    }

    /// Every answer, once all have come.
    pub async fn collect(mut self) -> Vec<(String, Result<R, InvokeError>)> {
        let mut all = Vec::new();
        while let Some(answer) = self.next().await {
            all.push(answer);
        }
        all
    }

    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Option<(String, Result<R, InvokeError>)>> {
        self.answers.poll_recv(cx).map(|ack| {
            ack.map(|Ack { connection, outcome }| {
                let codec = self.server.codec();
                let answer = match outcome {
                    AckOutcome::Result(raw) => codec.decode_value(&raw).map_err(InvokeError::Decode),
                    AckOutcome::Error(raw) => match codec.decode_error(&raw) {
                        Ok(error) => Err(InvokeError::Remote(error)),
                        Err(e) => Err(InvokeError::Decode(e)),
                    },
                    AckOutcome::Timeout => Err(InvokeError::Timeout { id: self.id }),
                    AckOutcome::Closed => Err(InvokeError::Connection { id: Some(self.id) }),
                };
                (connection, answer)
            })
        })
    }
}

impl<C: Codec, R: DeserializeOwned> Stream for Acks<C, R> {
    type Item = (String, Result<R, InvokeError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_answer(cx)
    }
}
