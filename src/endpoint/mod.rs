//! [`Endpoint`]: one end of a connection, the same type on both sides.
//!
//! Its state is private to this module; the rest of the crate reaches it
//! through methods:
//! - `life`: the connection state machine (current link, attach, detach,
//!   close);
//! - `listeners`: event listeners and local events;
//! - `send`: events and frames out, through the send hook;
//! - `receive`: frames in (decode → validate → hooks → route);
//! - `rpc`: procedures, invokes and replies;
//! - `handler`: what handlers take as arguments, and the handlers and state
//!   every connection of a server shares.

mod handler;
mod life;
mod listeners;
mod receive;
mod rpc;
mod send;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, Notify};

use crate::codec::Codec;
use crate::config::EndpointOptions;
use crate::connection::Link;
use crate::envelope::ArgList;
use crate::error::CodecError;
use crate::events::LocalEvent;
use crate::request::Request;
use crate::server::{Server, ServerInner};

pub(crate) use handler::{shared_async_entry, shared_entry};
pub use handler::{AsyncListener, FromEndpoint, Handler, Listener, State};
pub(crate) use handler::{Handlers, StateMap};
pub(crate) use life::Life;
pub use listeners::ListenerId;
pub(crate) use listeners::{add_entry, remove_entry};
pub(crate) use rpc::procedure;
pub use send::EncodedMessage;
pub(crate) use send::{encode_event, message_bytes};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A client's hook run on every (re)connection before it counts as
/// connected.
pub(crate) type ConnectHook<C> =
    Arc<dyn Fn(Endpoint<C>) -> BoxFuture<Result<(), crate::error::HandlerError>> + Send + Sync>;

pub(crate) type Procedure<C> = Arc<dyn Fn(Endpoint<C>, Arc<Link>, u64, ArgList) -> BoxFuture<()> + Send + Sync>;

/// Handlers and listeners by event or procedure name. Every frame looks its
/// name up here, so the hash is FNV-1a rather than SipHash: names are
/// short, and a peer can only look names up, never add any, so there is no
/// table for it to flood.
pub(crate) type ByName<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;

/// The FNV-1a hash.
#[derive(Debug)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Which side of the connection an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

struct Inner<C: Codec> {
    codec: Arc<C>,
    options: Arc<EndpointOptions>,
    role: Role,
    id: Option<Box<str>>,
    counter: AtomicU64,
    life: Mutex<Life>,
    life_changed: Notify,
    listeners: RwLock<ByName<Arc<Vec<handler::Entry<C>>>>>,
    procedures: RwLock<ByName<Procedure<C>>>,
    /// What every connection of the server shares: its handlers and the
    /// application state.
    shared: Arc<Handlers<C>>,
    next_listener: AtomicU64,
    /// Created by the first `events()` call.
    events: OnceLock<broadcast::Sender<LocalEvent>>,
    data: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// The server a server-side endpoint belongs to.
    server: OnceLock<Weak<ServerInner<C>>>,
    /// The upgrade request, while the connection hook runs.
    request: Mutex<Option<Arc<Request>>>,
    /// A client's `on_connect` hook.
    connect_hook: OnceLock<ConnectHook<C>>,
    /// The frame counters of its codec.
    #[cfg(feature = "metrics")]
    frames: crate::meter::Frames,
}

/// One end of a ws-messaging connection: events, RPC and local events.
///
/// The same type serves both sides: a [`Server`](crate::Server) hands one to
/// its connection hook for every client, and a [`Client`](crate::Client)
/// derefs to one. It is a cheap `Clone` (an `Arc` inside); every clone is the
/// same endpoint.
///
/// - Events: [`on`](Self::on) / [`once`](Self::once) / [`off`](Self::off)
///   and [`send`](Self::send).
/// - RPC: [`register`](Self::register) / [`unregister`](Self::unregister)
///   and [`invoke`](Self::invoke).
/// - Local events (connect, close, ping, ...): [`events`](Self::events).
///
/// Handlers and listeners live as long as the endpoint. A handler that
/// needs the endpoint takes it as an argument (see
/// [`register`](Self::register) and [`FromEndpoint`]) rather than
/// capturing it, which would keep the endpoint alive through itself; a
/// server clears a connection's handlers when it closes.
pub struct Endpoint<C: Codec> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Endpoint<C> {
    /// Whether `other` is this same connection's endpoint (not a clone of
    /// another one with the same id).
    pub(crate) fn same(&self, other: &Endpoint<C>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<C: Codec> Clone for Endpoint<C> {
    fn clone(&self) -> Self {
        Endpoint {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> std::fmt::Debug for Endpoint<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.inner.id)
            .field("role", &self.inner.role)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// A weak handle to an [`Endpoint`], for handlers that need their endpoint
/// without keeping it alive.
pub struct WeakEndpoint<C: Codec>(Weak<Inner<C>>);

impl<C: Codec> std::fmt::Debug for WeakEndpoint<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.upgrade() {
            Some(endpoint) => f.debug_tuple("WeakEndpoint").field(&endpoint).finish(),
            None => f.write_str("WeakEndpoint(gone)"),
        }
    }
}

impl<C: Codec> Clone for WeakEndpoint<C> {
    fn clone(&self) -> Self {
        WeakEndpoint(self.0.clone())
    }
}

impl<C: Codec> WeakEndpoint<C> {
    /// The endpoint, if it still exists.
    pub fn upgrade(&self) -> Option<Endpoint<C>> {
        self.0.upgrade().map(|inner| Endpoint { inner })
    }
}

impl<C: Codec> Endpoint<C> {
    pub(crate) fn new(
        codec: Arc<C>,
        options: Arc<EndpointOptions>,
        role: Role,
        id: Option<String>,
        shared: Arc<Handlers<C>>,
    ) -> Self {
        Endpoint {
            inner: Arc::new(Inner {
                codec,
                role,
                id: id.map(String::into_boxed_str),
                counter: AtomicU64::new(1),
                life: Mutex::new(Life::default()),
                life_changed: Notify::new(),
                listeners: RwLock::new(ByName::default()),
                procedures: RwLock::new(ByName::default()),
                shared,
                next_listener: AtomicU64::new(1),
                events: OnceLock::new(),
                data: Mutex::new(HashMap::new()),
                server: OnceLock::new(),
                request: Mutex::new(None),
                connect_hook: OnceLock::new(),
                #[cfg(feature = "metrics")]
                frames: crate::meter::Frames::of::<C>(),
                options,
            }),
        }
    }

    /// The server-side connection id (24 URL-safe characters); `None` on a
    /// client.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// Whether the connection is open and authenticated. (On a client
    /// with an [`on_connect`](crate::ClientBuilder::on_connect) hook, it is
    /// open while the hook runs, before the client counts as connected.)
    pub fn is_connected(&self) -> bool {
        self.life().link.as_ref().is_some_and(|link| link.is_open())
    }

    /// Open, authenticated, and past the client's `on_connect` hook.
    pub(crate) fn is_ready(&self) -> bool {
        let life = self.life();
        life.is_ready()
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.inner.codec
    }

    /// The options this endpoint runs with.
    pub fn options(&self) -> &EndpointOptions {
        &self.inner.options
    }

    /// Which side this endpoint is.
    pub(crate) fn role(&self) -> Role {
        self.inner.role
    }

    /// A weak handle, for handlers that need the endpoint.
    pub fn downgrade(&self) -> WeakEndpoint<C> {
        WeakEndpoint(Arc::downgrade(&self.inner))
    }

    /// Decodes a raw value (an auth reply, a [`RawArgs`](crate::RawArgs)
    /// element) with this endpoint's codec.
    pub fn decode<T: DeserializeOwned>(&self, raw: &[u8]) -> Result<T, CodecError> {
        self.inner.codec.decode_value(raw)
    }

    /// The current connection's outgoing backlog: frames queued and their
    /// payload bytes (both `0` when not connected).
    pub fn backlog(&self) -> (usize, usize) {
        self.life().link.as_ref().map_or((0, 0), |link| link.backlog())
    }

    pub(crate) fn procedures(&self) -> &RwLock<ByName<Procedure<C>>> {
        &self.inner.procedures
    }

    pub(crate) fn shared(&self) -> &Handlers<C> {
        &self.inner.shared
    }

    /// A clone of the application state of type `S` given to the server's
    /// or client's builder (`.state(..)`), if any: what the
    /// [`State`] argument of a handler gets.
    pub fn state<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.inner.shared.state::<S>()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.counter.fetch_add(1, Ordering::Relaxed)
    }

    // ----- the server and rooms -----------------------------------------

    pub(crate) fn set_server(&self, server: Weak<ServerInner<C>>) {
        let _ = self.inner.server.set(server);
    }

    pub(crate) fn set_connect_hook(&self, hook: ConnectHook<C>) {
        let _ = self.inner.connect_hook.set(hook);
    }

    pub(crate) fn connect_hook(&self) -> Option<ConnectHook<C>> {
        self.inner.connect_hook.get().cloned()
    }

    pub(crate) fn set_request(&self, request: Option<Box<Request>>) {
        *self.inner.request.lock().unwrap_or_else(|e| e.into_inner()) = request.map(Arc::from);
    }

    /// The HTTP upgrade request this connection came with (path, query,
    /// headers, cookies, peer address): on a server, while the connection
    /// hook runs; `None` afterwards and on a client. See [`Request`].
    pub fn request(&self) -> Option<Arc<Request>> {
        self.inner.request.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The server this connection belongs to (on a server; `None` on a
    /// client, or once the server is gone): for broadcasts, rooms and
    /// presence from inside a handler.
    ///
    /// ```
    /// # fn f(endpoint: ws_messaging::Endpoint<ws_messaging_json::Json>) {
    /// use ws_messaging::Server;
    /// use ws_messaging_json::Json;
    ///
    /// // Or take the server as the listener's argument.
    /// endpoint.on("shout", |server: Server<Json>, args: Vec<serde_json::Value>| {
    ///     // Never waits: fine inside a listener, and shouts keep their order.
    ///     let _ = server.broadcast("shouted", args);
    /// });
    /// # }
    /// ```
    pub fn server(&self) -> Option<Server<C>> {
        self.inner.server.get()?.upgrade().map(Server::from_inner)
    }

    /// Puts this connection in `room` (on a server): sends to the room
    /// ([`Server::to`]) reach it from the moment this returns, on every
    /// node. Joining twice is joining once. Membership ends with the
    /// connection. False when this is not a live server-side connection.
    ///
    /// A room is only a room: joining one named like another connection's
    /// id gives nothing of that connection's private sends
    /// ([`Server::send_to`] goes by id, never by room).
    pub fn join(&self, room: &str) -> bool {
        match (self.server(), self.id()) {
            (Some(server), Some(id)) => server.join(id, room),
            _ => false,
        }
    }

    /// Takes this connection out of `room`. Leaving a room never joined
    /// does nothing (and is true); false when this is not a live
    /// server-side connection.
    pub fn leave(&self, room: &str) -> bool {
        match (self.server(), self.id()) {
            (Some(server), Some(id)) => server.leave(id, room),
            _ => false,
        }
    }

    /// The rooms this connection joined.
    pub fn rooms(&self) -> Vec<String> {
        match (self.server(), self.id()) {
            (Some(server), Some(id)) => server.registry().rooms_of(id),
            _ => Vec::new(),
        }
    }

    /// Sets the info this connection shows every node: what
    /// [`Broadcast::connections`](crate::Broadcast::connections) lists
    /// beside its id and rooms, on whichever node asks (the JavaScript
    /// servers' `socket.data` as `fetchSockets` returns it). Encoded once,
    /// with the codec; replaces any earlier info. Returns false when this
    /// is not a live server-side connection.
    ///
    /// ```
    /// # async fn f(me: ws_messaging::Endpoint<ws_messaging_json::Json>) -> Result<(), ws_messaging::CodecError> {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Player { name: String, score: u32 }
    /// me.set_info(&Player { name: "alice".into(), score: 3 })?;
    /// # Ok(()) }
    /// ```
    pub fn set_info<T: serde::Serialize + ?Sized>(&self, info: &T) -> Result<bool, CodecError> {
        let mut out = Vec::new();
        self.codec().encode_value(info, &mut out)?;
        Ok(match (self.server(), self.id()) {
            (Some(server), Some(id)) => server.registry().set_info(id, Some(out.into())),
            _ => false,
        })
    }

    /// The info this connection shows ([`set_info`](Self::set_info)), read
    /// as `T`: `None` when it set none, an error when it does not read as
    /// `T`.
    pub fn info<T: DeserializeOwned>(&self) -> Result<Option<T>, CodecError> {
        let info = match (self.server(), self.id()) {
            (Some(server), Some(id)) => server.registry().info(id),
            _ => None,
        };
        info.map(|raw| self.codec().decode_value(&raw)).transpose()
    }

    // ----- per-connection user data ------------------------------------

    /// Stores a value of type `T` on this endpoint (the JavaScript
    /// `client.data`), replacing any earlier `T`.
    ///
    /// ```
    /// # async fn f(endpoint: ws_messaging::Endpoint<ws_messaging_json::Json>) {
    /// #[derive(Clone)]
    /// struct User(String);
    /// endpoint.set_data(User("alice".into()));
    /// assert_eq!(endpoint.data::<User>().unwrap().0, "alice");
    /// # }
    /// ```
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) {
        self.inner
            .data
            .lock()
            .unwrap()
            .insert(TypeId::of::<T>(), Box::new(value));
    }

    /// A clone of the stored `T`, if any.
    pub fn data<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        self.inner
            .data
            .lock()
            .unwrap()
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<T>())
            .cloned()
    }

    /// Removes and returns the stored `T`.
    pub fn take_data<T: Any + Send + Sync>(&self) -> Option<T> {
        self.inner
            .data
            .lock()
            .unwrap()
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast::<T>().ok())
            .map(|b| *b)
    }
}

impl<C: Codec> crate::connection::Owner for Endpoint<C> {
    fn receive(&self, link: &Arc<Link>, data: bytes::Bytes, text: bool) {
        Endpoint::receive(self, link, data, text);
    }

    fn emit(&self, event: LocalEvent) {
        Endpoint::emit(self, event);
    }

    fn ping_message(&self) -> Option<(u64, tokio_tungstenite::tungstenite::Message)> {
        Endpoint::ping_message(self)
    }

    #[cfg(feature = "metrics")]
    #[inline]
    fn count(&self, counts: &crate::connection::Counts, backlog: i64) {
        self.inner.frames.report(counts, backlog);
    }
}

impl<C: Codec> Endpoint<C> {
    /// How this endpoint's connection task runs; `auth_wait`: a client's
    /// wait for the `connect` event.
    pub(crate) fn connection_settings(&self, auth_wait: Option<std::time::Duration>) -> crate::connection::Settings {
        let options = self.options();
        crate::connection::Settings {
            write_timeout: options.write_timeout,
            ping_interval: options.ping_interval,
            ping_timeout: options.ping_timeout,
            pause_reads: self.role() == Role::Server,
            auth_wait,
        }
    }
}
