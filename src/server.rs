//! [`Server`]: accepts connections, runs the auth handshake and keeps a
//! registry of connected endpoints.

use std::any::TypeId;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as UpgradeRequest, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::{Adapter, LocalAdapter, Registry, Target};
use crate::broadcast::Broadcast;
use crate::codec::Codec;
use crate::config::{EndpointOptions, OutgoingKind};
use crate::connection::driver::drive;
use crate::connection::lean_io::{server_config, LeanIo};
use crate::connection::read::protocol_close;
use crate::connection::Transport;
use crate::endpoint::{
    add_entry, message_bytes, remove_entry, shared_async_entry, shared_entry, AsyncListener, BoxFuture, Endpoint,
    Handler, Handlers, Listener, ListenerId, Role, StateMap,
};
use crate::error::{AdapterError, HandlerError, RegisterError, SendError, ServeError};
use crate::limits::{Seat, Seats};
use crate::protocol::{choose_subprotocol_with, RESUME_SUBPROTOCOL};
use crate::recovery::serve::{parse_resume, ServerRecovery};
use crate::recovery::RecoveryConfig;
use crate::request::Request;
use crate::trace::{self, Instrument};
use crate::wire::{check_name, truncate_reason};
use crate::{Args, CloseCode};

type Hook<C> = Arc<dyn Fn(Endpoint<C>, Bytes) -> BoxFuture<Result<Message, HandlerError>> + Send + Sync>;
type DisconnectHook<C> = Arc<dyn Fn(Endpoint<C>, u16, String) -> BoxFuture<()> + Send + Sync>;

/// Configures and starts a [`Server`].
pub struct ServerBuilder<C: Codec> {
    codec: Arc<C>,
    options: EndpointOptions,
    auth_timeout: Duration,
    hook_timeout: Duration,
    hook: Option<Hook<C>>,
    disconnect: Option<DisconnectHook<C>>,
    adapter: Arc<dyn Adapter<C>>,
    origins: Option<Vec<String>>,
    state: StateMap,
    recovery: Option<RecoveryConfig>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
}

impl<C: Codec> std::fmt::Debug for ServerBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("options", &self.options)
            .field("auth_timeout", &self.auth_timeout)
            .field("on_connection", &self.hook.is_some())
            .field("on_disconnect", &self.disconnect.is_some())
            .field("allowed_origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> ServerBuilder<C> {
    /// A builder for a server speaking `codec`.
    pub fn new(codec: C) -> Self {
        ServerBuilder {
            codec: Arc::new(codec),
            options: EndpointOptions::default(),
            auth_timeout: Duration::from_secs(20),
            hook_timeout: Duration::from_secs(30),
            hook: None,
            disconnect: None,
            adapter: Arc::new(LocalAdapter),
            origins: None,
            state: StateMap::new(),
            recovery: None,
            max_connections: None,
            max_connections_per_ip: None,
        }
    }

    /// At most `max` connections at once (from the WebSocket upgrade to
    /// the connection's end); the next upgrade is refused with HTTP 503
    /// (an upgrade answered elsewhere, `serve_upgraded`, is closed with
    /// 1013 instead). Default: no cap.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// At most `max` connections at once from one peer IP address (an
    /// IPv4 address mapped into IPv6 counts as itself); the next upgrade
    /// from it is refused with HTTP 429 (1013 for `serve_upgraded`).
    /// Connections whose address is unknown (`serve_stream`) are not
    /// counted per address. Behind a proxy every client has the proxy's
    /// address: cap there instead. Default: no cap.
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.max_connections_per_ip = Some(max);
        self
    }

    /// Turns on session recovery for the clients that negotiate it (the
    /// `ws-messaging.resume.1` subprotocol; others see the 2.0.0 protocol
    /// unchanged): events sent through the server (to everyone, to rooms,
    /// to a connection id) are logged and replayed, in order, to a client
    /// that resumes its session within `config.session_time`. One node,
    /// in memory; see `docs/recovery.md`. On the server's own listener,
    /// `serve_stream*` and `serve_upgraded` (`ws-messaging-axum`); a
    /// connection handed over already upgraded
    /// ([`Server::serve_websocket`]) speaks 2.0.0.
    pub fn recovery(mut self, config: RecoveryConfig) -> Self {
        self.recovery = Some(config);
        self
    }

    /// Application state every handler can take as a [`State<S>`](crate::State)
    /// argument (and [`Endpoint::state`] returns), cloned for each handler
    /// that takes it: put what is large or changes behind an `Arc`. One
    /// value per type; a second of the same type replaces the first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ws_messaging::RegisterError> {
    /// use std::sync::{Arc, Mutex};
    /// use ws_messaging::{Server, State};
    /// use ws_messaging_json::Json;
    ///
    /// #[derive(Clone, Default)]
    /// struct Bids(Arc<Mutex<Vec<u64>>>);
    ///
    /// let server = Server::<Json>::builder().state(Bids::default()).build();
    /// server.register("bid", |State(bids): State<Bids>, (amount,): (u64,)| async move {
    ///     bids.0.lock().unwrap().push(amount);
    ///     Ok(true)
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(mut self, value: S) -> Self {
        self.state.insert(TypeId::of::<S>(), Box::new(value));
        self
    }

    /// The web pages allowed to connect, by origin (`https://app.example`,
    /// `http://127.0.0.1:3000`: scheme, host and port, as browsers send
    /// them in the `Origin` header). An upgrade whose `Origin` is not in the
    /// list is refused with `403 Forbidden` (by the built-in listener,
    /// [`serve_stream`](Server::serve_stream) and `ws-messaging-axum`; a
    /// connection handed to [`serve_upgraded`](Server::serve_upgraded),
    /// already upgraded, is refused with 4003 `origin not allowed`). A request without an `Origin` header is
    /// not from a browser page (the Rust client, Node.js, `wsm`) and is
    /// let through. Compared without regard to ASCII case. Default: every
    /// origin is allowed.
    ///
    /// **Set it whenever connections are authenticated by a cookie** (or
    /// anything else a browser attaches by itself): a browser sends the
    /// site's cookies with a WebSocket upgrade made by *any* page, and
    /// WebSocket has no same-origin policy, so without this check a page on
    /// another site can open a connection as the logged-in user (cross-site
    /// WebSocket hijacking). Auth values sent in the first frame (a token
    /// the page holds) are not exposed to this.
    ///
    /// ```
    /// # use ws_messaging::Server;
    /// # use ws_messaging_json::Json;
    /// let builder = Server::<Json>::builder().allowed_origins(["https://app.example"]);
    /// ```
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let origins = origins.into_iter().map(|o| normal_origin(&o.into()));
        self.origins = Some(origins.collect());
        self
    }

    /// How sends, presence queries and broadcast invokes reach the other
    /// nodes of a cluster (default [`LocalAdapter`]: there are none). See
    /// the [`adapter`](crate::adapter) module.
    pub fn adapter(mut self, adapter: impl Adapter<C>) -> Self {
        self.adapter = Arc::new(adapter);
        self
    }

    /// How long to wait for a client's auth frame before closing with 4003.
    /// The HTTP upgrade is bounded by it too. Default 20 s.
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.auth_timeout = timeout;
        self
    }

    /// How long the [connection hook](Self::on_connection) may take to
    /// decide; past it the client is refused with 4003 (no wait before a
    /// connection is accepted is unbounded). Default 30 s.
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = timeout;
        self
    }

    /// Options of every connection's endpoint.
    pub fn options(mut self, options: EndpointOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes the endpoint options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut EndpointOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// The connection hook: called with each new connection's endpoint and
    /// its auth value decoded into `A`. `Ok(reply)` accepts the client (it
    /// gets the `connect` event with `reply`); `Err` refuses it: the
    /// connection closes with 4003 and the error's text as the reason. Set up
    /// the connection's handlers here; frames that arrive before the hook
    /// returns are dropped, as in the JavaScript server.
    ///
    /// An auth value that does not decode into `A` is refused the same way.
    ///
    /// The endpoint's [`close`](Endpoint::close) inside the hook refuses the
    /// client with that code and reason, whatever the hook returns. If the
    /// client's socket closes (or the server closes) while the hook runs,
    /// the hook is cancelled: its future is dropped at its next await.
    pub fn on_connection<A, R, F, Fut>(mut self, hook: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Endpoint<C>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let hook = Arc::new(hook);
        self.hook = Some(Arc::new(move |endpoint: Endpoint<C>, raw: Bytes| {
            let hook = hook.clone();
            Box::pin(async move {
                let auth: A = endpoint
                    .decode(&raw)
                    .map_err(|e| HandlerError::new(format!("invalid auth: {e}")))?;
                let reply = hook(endpoint.clone(), auth).await?;
                connect_event(&endpoint, &reply)
            })
        }));
        self
    }

    /// The disconnect hook: called once per accepted connection after it
    /// ended, with its endpoint (its [`data`](Endpoint::data) still there),
    /// the close code and the reason. The connection is already out of the
    /// registry; its handlers and data are dropped when the hook returns.
    /// [`Server::close`] waits for running disconnect hooks.
    ///
    /// ```
    /// # use ws_messaging::Server;
    /// # use ws_messaging_json::Json;
    /// #[derive(Clone)]
    /// struct User(String);
    /// let builder = Server::<Json>::builder().on_disconnect(|endpoint, code, _reason| async move {
    ///     if let Some(User(name)) = endpoint.data::<User>() {
    ///         println!("{name} left ({code})");
    ///     }
    /// });
    /// ```
    pub fn on_disconnect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Endpoint<C>, u16, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.disconnect = Some(Arc::new(move |endpoint, code, reason| {
            Box::pin(hook(endpoint, code, reason))
        }));
        self
    }

    /// Binds `addr` and starts accepting.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<Server<C>, ServeError> {
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener)
    }

    /// Starts accepting on a bound listener.
    pub fn serve(self, listener: TcpListener) -> Result<Server<C>, ServeError> {
        let local_addr = listener.local_addr()?;
        let server = self.start(Some(local_addr));
        tokio::spawn(accept_loop(server.inner.clone(), listener));
        Ok(server)
    }

    /// A server with no listener of its own: connections come from
    /// elsewhere, through [`Server::serve_upgraded`] (a web framework's
    /// route, such as the `ws-messaging-axum` crate's),
    /// [`Server::serve_stream`] or [`Server::serve_websocket`]. Needs a
    /// tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let server = ws_messaging::Server::<ws_messaging_json::Json>::builder().build();
    /// assert_eq!(server.local_addr(), None);
    /// # }
    /// ```
    pub fn build(self) -> Server<C> {
        self.start(None)
    }

    fn start(self, local_addr: Option<SocketAddr>) -> Server<C> {
        let hook_timeout = self.hook_timeout;
        let (shutdown, _) = watch::channel(None);
        let (draining, _) = watch::channel(false);
        let inner = Arc::new(ServerInner {
            seats: Arc::new(Seats::new(self.max_connections, self.max_connections_per_ip)),
            draining,
            codec: self.codec,
            options: Arc::new(self.options),
            auth_timeout: self.auth_timeout,
            hook_timeout,
            hook: self.hook,
            disconnect: self.disconnect,
            clients: Arc::new(match &self.recovery {
                Some(config) => Registry::with_recovery(config),
                None => Registry::default(),
            }),
            recovery: self.recovery.map(ServerRecovery::new),
            adapter: self.adapter,
            local_addr,
            shutdown,
            live: Mutex::new(0),
            drained: Notify::new(),
            origins: self.origins,
            shared: Arc::new(Handlers::with_state(self.state)),
            next_listener: AtomicU64::new(1),
        });
        inner.adapter.start(inner.clients.clone());
        // With a shared recovery store, logged events still reach every
        // node (each must know every partition's position); other sends to
        // one room (an emitter's) travel on the room's channel.
        let store = inner.recovery.as_ref().and(inner.adapter.recovery_store());
        if let Some(interest) = inner.adapter.room_interest() {
            inner.clients.use_interest(interest);
        }
        if let (Some(recovery), Some(store)) = (&inner.recovery, store) {
            recovery.use_store(store.clone());
            inner.clients.use_store(store);
            let weak = Arc::downgrade(&inner);
            inner.clients.on_membership(Box::new(move |session, membership| {
                if let Some(recovery) = weak.upgrade().as_ref().and_then(|inner| inner.recovery.as_ref()) {
                    recovery.membership_changed(session, membership);
                }
            }));
        }
        Server { inner }
    }
}

fn connect_event<C: Codec, R: Serialize>(endpoint: &Endpoint<C>, reply: &R) -> Result<Message, HandlerError> {
    let mut buf = crate::buffers::scratch();
    endpoint
        .codec()
        .encode_message("connect", &(reply,), None, &mut buf)
        .map_err(|e| HandlerError::new(format!("could not encode the auth reply: {e}")))?;
    crate::buffers::to_message::<C>(buf).map_err(HandlerError::from)
}

pub(crate) struct ServerInner<C: Codec> {
    codec: Arc<C>,
    options: Arc<EndpointOptions>,
    auth_timeout: Duration,
    hook_timeout: Duration,
    hook: Option<Hook<C>>,
    disconnect: Option<DisconnectHook<C>>,
    clients: Arc<Registry<C>>,
    adapter: Arc<dyn Adapter<C>>,
    local_addr: Option<SocketAddr>,
    /// The close code, once `close` was called.
    shutdown: watch::Sender<Option<CloseCode>>,
    live: Mutex<usize>,
    drained: Notify,
    /// The allowed origins; `None`: all.
    origins: Option<Vec<String>>,
    /// The handlers every connection shares, and the application state.
    shared: Arc<Handlers<C>>,
    next_listener: AtomicU64,
    /// Sessions, with recovery on.
    recovery: Option<ServerRecovery>,
    /// The connection caps.
    seats: Arc<Seats>,
    /// Set by `drain`: no new connection is accepted.
    draining: watch::Sender<bool>,
}

/// An origin as compared: ASCII lower case, no trailing `/`.
fn normal_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl<C: Codec> ServerInner<C> {
    fn allows_origin(&self, origin: Option<&str>) -> bool {
        match (&self.origins, origin) {
            (None, _) | (_, None) => true,
            (Some(allowed), Some(origin)) => {
                let origin = normal_origin(origin);
                allowed.contains(&origin)
            }
        }
    }
}

/// A ws-messaging server.
///
/// ```no_run
/// use ws_messaging::{HandlerError, Server};
/// use ws_messaging_json::Json;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::<Json>::builder()
///     .on_connection(|endpoint, auth: serde_json::Value| async move {
///         if auth["token"] != "secret" {
///             return Err(HandlerError::new("bad token"));
///         }
///         endpoint.register("echo", |(x,): (serde_json::Value,)| async move { Ok(x) })?;
///         Ok(serde_json::json!({ "user": "alice" }))
///     })
///     .bind("127.0.0.1:8000")
///     .await?;
/// println!("listening on {:?}", server.local_addr());
/// # Ok(()) }
/// ```
///
/// It is a cheap `Clone`. Dropping it does not stop it: call
/// [`close`](Self::close).
pub struct Server<C: Codec> {
    inner: Arc<ServerInner<C>>,
}

impl<C: Codec> std::fmt::Debug for Server<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.inner.local_addr)
            .field("connections", &self.inner.clients.len())
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Clone for Server<C> {
    fn clone(&self) -> Self {
        Server {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec + Default> Server<C> {
    /// A builder with the codec's default settings.
    pub fn builder() -> ServerBuilder<C> {
        ServerBuilder::new(C::default())
    }
}

impl<C: Codec> Server<C> {
    /// The address the server listens on; `None` for a server built
    /// without a listener ([`ServerBuilder::build`]).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// The connection with this id, if it is open.
    pub fn get(&self, id: &str) -> Option<Endpoint<C>> {
        self.inner.clients.get(id)
    }

    /// Every open connection (a snapshot).
    pub fn connections(&self) -> Vec<Endpoint<C>> {
        self.inner.clients.connections()
    }

    /// How many connections are open (authenticated or in auth).
    pub fn connection_count(&self) -> usize {
        self.inner.clients.len()
    }

    /// This server's connections.
    pub fn registry(&self) -> &Registry<C> {
        &self.inner.clients
    }

    /// Whether an upgrade request with this `Origin` header value (`None`:
    /// no such header) may connect, by
    /// [`allowed_origins`](ServerBuilder::allowed_origins). For a web
    /// framework's route that answers the upgrade itself, before it does
    /// (`ws-messaging-axum` answers `403 Forbidden` when this is false).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use ws_messaging::Server;
    /// # use ws_messaging_json::Json;
    /// let server = Server::<Json>::builder().allowed_origins(["https://app.example"]).build();
    /// assert!(server.allows_origin(Some("https://app.example")));
    /// assert!(!server.allows_origin(Some("https://evil.example")));
    /// assert!(server.allows_origin(None)); // not a browser
    /// # }
    /// ```
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        self.inner.allows_origin(origin)
    }

    /// Registers the procedure `name` once for every connection of this
    /// server, present and future: the handler takes its connection (and
    /// the [`State`](crate::State), the server) as arguments, so nothing is
    /// kept per connection. A connection's own procedure of the same name
    /// ([`Endpoint::register`]) is called instead. See
    /// [`Endpoint::register`] for how calls run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ws_messaging::RegisterError> {
    /// use ws_messaging::{Endpoint, Server};
    /// use ws_messaging_json::Json;
    ///
    /// let server = Server::<Json>::builder().build();
    /// server.register("echo", |(x,): (serde_json::Value,)| async move { Ok(x) })?;
    /// server.register("join", |me: Endpoint<Json>, (room,): (String,)| async move { Ok(me.join(&room)) })?;
    /// # Ok(()) }
    /// ```
    pub fn register<M, H: Handler<C, M>>(&self, name: &str, handler: H) -> Result<(), RegisterError> {
        check_name(name).map_err(RegisterError::ReservedName)?;
        let mut map = self.inner.shared.procedures.write().unwrap();
        if map.contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        map.insert(name.to_string(), crate::endpoint::procedure(name, handler));
        Ok(())
    }

    /// Removes the procedure `name` registered for every connection;
    /// returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.shared.procedures.write().unwrap().remove(name).is_some()
    }

    /// Adds a listener of the event `name` for every connection of this
    /// server, present and future, called before the connection's own
    /// ([`Endpoint::on`], which says how listeners run). It takes its
    /// connection as an argument when it needs it:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ws_messaging::{Endpoint, Server};
    /// use ws_messaging_json::Json;
    ///
    /// let server = Server::<Json>::builder().build();
    /// server.on("shout", |server: Server<Json>, args: Vec<serde_json::Value>| {
    ///     let _ = server.broadcast("shouted", args);
    /// });
    /// # }
    /// ```
    pub fn on<M, L: Listener<C, M>>(&self, name: &str, listener: L) -> ListenerId {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        add_entry(
            &mut self.inner.shared.listeners.write().unwrap(),
            name,
            shared_entry(id, listener),
        );
        ListenerId(id)
    }

    /// [`Endpoint::on_async`] for every connection of this server.
    pub fn on_async<M, L: AsyncListener<C, M>>(&self, name: &str, listener: L) -> ListenerId {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        add_entry(
            &mut self.inner.shared.listeners.write().unwrap(),
            name,
            shared_async_entry(id, listener),
        );
        ListenerId(id)
    }

    /// Removes a listener added with [`on`](Self::on) or
    /// [`on_async`](Self::on_async); returns whether it was there.
    pub fn off(&self, name: &str, id: ListenerId) -> bool {
        remove_entry(&mut self.inner.shared.listeners.write().unwrap(), name, id)
    }

    /// Sends the event `name(args)` to every connected client on every
    /// node, encoded once. Returns how many clients of this node it was
    /// queued for. It never waits on a client (one whose backlog is past
    /// its limits is closed with 4009 `Slow consumer` instead, see
    /// [`Endpoint::queue_encoded`]), so it can be called from an event
    /// listener, and two broadcasts made one after the other reach every
    /// client in that order.
    ///
    /// The same as `server.everyone().emit(name, args)`; see
    /// [`to`](Self::to) for rooms.
    pub fn broadcast<A: Args>(&self, name: &str, args: A) -> Result<usize, SendError> {
        self.everyone().emit(name, args)
    }

    /// Sends the event `name(args)` to the connection `id`, on whichever
    /// node it is, and to no other: a room named like `id` is not reached.
    /// Returns how many connections of this node it was queued for (0 or
    /// 1). Like [`broadcast`](Self::broadcast), it never waits.
    ///
    /// The same as `server.to_connection(id).emit(name, args)`.
    pub fn send_to<A: Args>(&self, id: &str, name: &str, args: A) -> Result<usize, SendError> {
        self.to_connection(id).emit(name, args)
    }

    /// Everyone, on every node: a [`Broadcast`] to narrow down or send to.
    pub fn everyone(&self) -> Broadcast<C> {
        Broadcast::new(self.clone(), Target::all())
    }

    /// The members of the room `room` (joined with [`Endpoint::join`]), on
    /// every node. A connection id is not a room: `to(id)` reaches the
    /// members of a room named like it, not the connection (see
    /// [`to_connection`](Self::to_connection)).
    ///
    /// ```no_run
    /// # fn f(server: ws_messaging::Server<ws_messaging_json::Json>) -> Result<(), ws_messaging::SendError> {
    /// server.to("lobby").to("games").except("muted").emit("news", ("hello",))?;
    /// # Ok(()) }
    /// ```
    pub fn to(&self, room: impl Into<String>) -> Broadcast<C> {
        self.everyone().to(room)
    }

    /// The connection `id` only, on whichever node it is: a
    /// [`Broadcast`] to send to, count or invoke.
    pub fn to_connection(&self, id: impl Into<String>) -> Broadcast<C> {
        Broadcast::new(self.clone(), Target::connection(id))
    }

    /// Everyone but the members of the room `room` and the connection
    /// whose id is `room` (see [`Broadcast::except`]).
    pub fn except(&self, room: impl Into<String>) -> Broadcast<C> {
        self.everyone().except(room)
    }

    /// Everyone on this node only.
    pub fn local(&self) -> Broadcast<C> {
        self.everyone().local()
    }

    /// How many authenticated connections there are on every live node.
    pub async fn count(&self) -> Result<usize, AdapterError> {
        self.everyone().count().await
    }

    /// Puts the connection `id` of this node in `room`; false when this
    /// node has no such connection. The same as [`Endpoint::join`]. Any
    /// name is a room's only: joining a room named like another
    /// connection's id gives nothing of that connection's private sends
    /// ([`send_to`](Self::send_to) goes by id, never by room).
    pub fn join(&self, id: &str, room: &str) -> bool {
        self.inner.clients.join(id, room)
    }

    /// Takes the connection `id` of this node out of `room`; false when
    /// this node has no such connection.
    pub fn leave(&self, id: &str, room: &str) -> bool {
        self.inner.clients.leave(id, room)
    }

    pub(crate) fn adapter_ref(&self) -> &dyn Adapter<C> {
        &*self.inner.adapter
    }

    /// The codec every connection of this server speaks.
    pub fn codec(&self) -> &C {
        &self.inner.codec
    }

    pub(crate) fn endpoint_options(&self) -> &EndpointOptions {
        &self.inner.options
    }

    pub(crate) fn from_inner(inner: Arc<ServerInner<C>>) -> Self {
        Server { inner }
    }

    /// Stops accepting and closes every connection with `code` (a
    /// [`CloseCode`] or a bare `u16`: `close(CloseCode::GOING_AWAY)`,
    /// `close(1001)`); resolves when every connection has ended (their
    /// close handshakes are bounded).
    pub async fn close(&self, code: impl Into<CloseCode>) {
        let code = code.into();
        let first = self.inner.shutdown.send_replace(Some(code)).is_none();
        if first {
            self.inner.adapter.close().await;
        }
        for endpoint in self.connections() {
            endpoint.close(code, "");
        }
        loop {
            let drained = self.inner.drained.notified();
            if *self.inner.live.lock().unwrap() == 0 {
                return;
            }
            drained.await;
        }
    }

    /// Drains the server for a restart, within `window`: stops accepting
    /// (new upgrades get HTTP 503, or 1012 through `serve_upgraded`), then
    /// closes each connection with 1012 `Service Restart` at a random
    /// moment of the window's first half, once its in-flight calls have
    /// answered (they have until the window's end), so that its clients
    /// reconnect (elsewhere, behind a load balancer) spread over the
    /// window rather than all at once. At the window's end whatever is
    /// left is closed, as [`close`](Self::close)`(1012)` does; resolves
    /// when every connection has ended.
    ///
    /// ```no_run
    /// # async fn run(server: ws_messaging::Server<ws_messaging_json::Json>) {
    /// // On SIGTERM: clients move over 10 s, calls in flight finish.
    /// server.drain(std::time::Duration::from_secs(10)).await;
    /// # }
    /// ```
    pub async fn drain(&self, window: Duration) {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        self.inner.draining.send_replace(true);
        let start = tokio::time::Instant::now();
        let deadline = start + window;
        trace::info!(connections = self.connection_count(), ?window, "draining");
        let mut turns: FuturesUnordered<_> = self
            .connections()
            .into_iter()
            .map(|endpoint| {
                let at = start + window.mul_f64(rand::random::<f64>() / 2.0);
                async move {
                    tokio::time::sleep_until(at).await;
                    let link = endpoint.life().link().cloned();
                    if let Some(link) = link {
                        link.calls_settled(deadline.saturating_duration_since(tokio::time::Instant::now()))
                            .await;
                    }
                    endpoint.close(CloseCode::SERVICE_RESTART, "Service Restart");
                }
            })
            .collect();
        let _ = tokio::time::timeout_at(deadline, async { while turns.next().await.is_some() {} }).await;
        self.close(CloseCode::SERVICE_RESTART).await;
    }

    /// Serves one connection accepted elsewhere, before its WebSocket
    /// upgrade — a TLS stream from tokio-rustls or tokio-native-tls, say:
    /// runs the upgrade (echoing the `ws-messaging` subprotocol), the auth
    /// handshake and the connection until it ends.
    ///
    /// ```no_run
    /// # async fn run(server: ws_messaging::Server<ws_messaging_json::Json>) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
    /// loop {
    ///     let (tcp, _) = listener.accept().await?;
    ///     // let tls = acceptor.accept(tcp).await?;   // your TLS acceptor
    ///     let server = server.clone();
    ///     tokio::spawn(async move { server.serve_stream(tcp).await });
    /// }
    /// # }
    /// ```
    pub async fn serve_stream<S>(&self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let _live = LiveGuard::new(&self.inner);
        upgrade_and_serve(&self.inner, stream, None).await;
    }

    /// [`serve_stream`](Self::serve_stream) for a stream from `peer`: the
    /// connection hook sees the address in
    /// [`Request::peer_addr`](crate::Request::peer_addr).
    pub async fn serve_stream_from<S>(&self, stream: S, peer: SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let _live = LiveGuard::new(&self.inner);
        upgrade_and_serve(&self.inner, stream, Some(peer)).await;
    }

    /// Serves a connection whose HTTP upgrade was answered elsewhere (a web
    /// framework's route answered `101 Switching Protocols`, echoing the
    /// `ws-messaging` subprotocol): `io` is the upgraded byte stream,
    /// `request` what the upgrade request said (the connection hook reads
    /// it). Runs the WebSocket protocol, the auth handshake and the
    /// connection until it ends. This is what the `ws-messaging-axum`
    /// crate calls.
    pub async fn serve_upgraded<S>(&self, io: S, request: Request)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let _live = LiveGuard::new(&self.inner);
        let config = server_config(self.inner.options.max_message_size);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            LeanIo::new(io),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            Some(config),
        )
        .await;
        if !self.allows_origin(request.header("origin")) {
            trace::info!(origin = ?request.header("origin"), "upgrade from an origin not allowed: refused (4003)");
            crate::meter::connection_refused("origin");
            refuse(&mut ws, CloseCode::FORBIDDEN, "origin not allowed").await;
            return;
        }
        if *self.inner.draining.borrow() {
            crate::meter::connection_refused("draining");
            refuse(&mut ws, CloseCode::SERVICE_RESTART, "Service Restart").await;
            return;
        }
        let _seat = match self.inner.seats.take(request.peer_addr().map(|a| a.ip())) {
            Ok(seat) => seat,
            Err(no) => {
                trace::info!(peer = ?request.peer_addr(), reason = no.reason(), "connection over a cap: refused (1013)");
                crate::meter::connection_refused(no.label());
                refuse(&mut ws, CloseCode::TRY_AGAIN_LATER, no.reason()).await;
                return;
            }
        };
        let offered: Vec<&str> = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let resumable = self.subprotocol_for(offered) == Some(RESUME_SUBPROTOCOL);
        if let Some(mut ws) = serve_connection(&self.inner, ws, Some(Box::new(request)), resumable).await {
            drain(ws.get_mut()).await;
        }
    }

    /// The subprotocol this server answers an upgrade offering `offered`
    /// with (the values of its `Sec-WebSocket-Protocol` headers):
    /// `ws-messaging.resume.1` when recovery is on
    /// ([`ServerBuilder::recovery`]) and the client offers it, else what
    /// [`choose_subprotocol`](crate::protocol::choose_subprotocol) picks.
    /// What an upgrade answered elsewhere (a web framework's route) must
    /// echo for [`serve_upgraded`](Self::serve_upgraded), which decides
    /// the same way.
    pub fn subprotocol_for<'a>(&self, offered: impl IntoIterator<Item = &'a str> + Clone) -> Option<&'a str> {
        choose_subprotocol_with(offered, self.inner.recovery.is_some())
    }

    /// Serves one WebSocket that was already upgraded elsewhere (a web
    /// framework's upgrade): runs the auth handshake and the connection until
    /// it ends. The upgrade should have echoed the `ws-messaging` subprotocol.
    pub async fn serve_websocket<T: Transport>(&self, ws: T) {
        let _live = LiveGuard::new(&self.inner);
        serve_connection(&self.inner, ws, None, false).await;
    }
}

struct LiveGuard<'a, C: Codec>(&'a ServerInner<C>);

impl<'a, C: Codec> LiveGuard<'a, C> {
    fn new(inner: &'a ServerInner<C>) -> Self {
        *inner.live.lock().unwrap() += 1;
        LiveGuard(inner)
    }
}

impl<C: Codec> Drop for LiveGuard<'_, C> {
    fn drop(&mut self) {
        let mut live = self.0.live.lock().unwrap();
        *live -= 1;
        if *live == 0 {
            self.0.drained.notify_waiters();
        }
    }
}

async fn accept_loop<C: Codec>(inner: Arc<ServerInner<C>>, listener: TcpListener) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut draining = inner.draining.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let inner = inner.clone();
                    let live = LiveCount::new(&inner);
                    tokio::spawn(async move {
                        let _live = live;
                        let _ = stream.set_nodelay(true);
                        upgrade_and_serve(&inner, stream, Some(peer)).await;
                    });
                }
                // Out of file descriptors and the like: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            () = stopped(&mut shutdown) => break,
            () = flagged(&mut draining) => break,
        }
    }
}

async fn flagged(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|on| *on).await;
}

async fn stopped(shutdown: &mut watch::Receiver<Option<CloseCode>>) {
    let _ = shutdown.wait_for(|code| code.is_some()).await;
}

/// Like `LiveGuard`, but owning, so it can move into a task.
struct LiveCount<C: Codec>(Arc<ServerInner<C>>);

impl<C: Codec> LiveCount<C> {
    fn new(inner: &Arc<ServerInner<C>>) -> Self {
        *inner.live.lock().unwrap() += 1;
        LiveCount(inner.clone())
    }
}

impl<C: Codec> Drop for LiveCount<C> {
    fn drop(&mut self) {
        let mut live = self.0.live.lock().unwrap();
        *live -= 1;
        if *live == 0 {
            self.0.drained.notify_waiters();
        }
    }
}

/// The WebSocket upgrade (subprotocol echoed), then the connection. The
/// socket runs over [`LeanIo`], so an idle connection holds no buffers.
async fn upgrade_and_serve<C, S>(inner: &Arc<ServerInner<C>>, stream: S, peer: Option<SocketAddr>)
where
    C: Codec,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = server_config(inner.options.max_message_size);
    let mut request = None;
    let mut resumable = false;
    let mut seat: Option<Seat> = None;
    #[allow(clippy::result_large_err)] // tungstenite's callback type
    let seen = |upgrade: &UpgradeRequest, response: Response| {
        let origin = upgrade
            .headers()
            .get("origin")
            .map(|o| o.to_str().unwrap_or("\u{fffd}"));
        if !inner.allows_origin(origin) {
            trace::info!(?origin, "upgrade from an origin not allowed: refused (403)");
            crate::meter::connection_refused("origin");
            let mut refusal = ErrorResponse::new(Some("origin not allowed".into()));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        if *inner.draining.borrow() {
            crate::meter::connection_refused("draining");
            let mut refusal = ErrorResponse::new(Some("the server is restarting".into()));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE;
            return Err(refusal);
        }
        match inner.seats.take(peer.map(|p| p.ip())) {
            Ok(taken) => seat = Some(taken),
            Err(no) => {
                trace::info!(
                    ?peer,
                    reason = no.reason(),
                    "connection over a cap: refused ({})",
                    no.status()
                );
                crate::meter::connection_refused(no.label());
                let mut refusal = ErrorResponse::new(Some(no.reason().into()));
                *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::from_u16(no.status())
                    .unwrap_or(tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE);
                return Err(refusal);
            }
        }
        request = Some(Box::new(Request::new(
            upgrade.uri().clone(),
            upgrade.headers().clone(),
            peer,
        )));
        let (mut response, chosen) = echo_subprotocol(upgrade, response, inner.recovery.is_some());
        if upgrade.headers().contains_key(crate::tracecontext::HEADER) {
            if let Ok(response) = response.as_mut() {
                response
                    .headers_mut()
                    .insert(crate::tracecontext::HEADER, HeaderValue::from_static("1"));
            }
        }
        resumable = chosen == Some(RESUME_SUBPROTOCOL);
        response
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(LeanIo::new(stream), seen, Some(config));
    let mut shutdown = inner.shutdown.subscribe();
    // A peer that never finishes the HTTP upgrade is dropped after the auth
    // timeout, or at once when the server closes.
    let ws = tokio::select! {
        upgraded = tokio::time::timeout(inner.auth_timeout, handshake) => match upgraded {
            Ok(Ok(ws)) => ws,
            _ => return,
        },
        () = stopped(&mut shutdown) => return,
    };
    let _seat = seat;
    if let Some(mut ws) = serve_connection(inner, ws, request, resumable).await {
        drain(ws.get_mut()).await;
    }
}

/// Reads and discards what a peer that broke the protocol is still
/// sending, so that it gets our close frame instead of a reset (as the
/// JavaScript `ws` server does). Bounded in time and bytes.
///
/// Our side of the TCP connection is shut first (the server closes the TCP
/// connection after the close handshake, RFC 6455 § 7.1.1): a peer that
/// answered our close frame and waits for the end of the stream sees it at
/// once, instead of after the drain's bound.
async fn drain<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(io: &mut S) {
    let _ = tokio::time::timeout(REFUSE_GRACE, tokio::io::AsyncWriteExt::shutdown(io)).await;
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    let discard = std::future::poll_fn(|cx| loop {
        if total >= 256 << 20 {
            return std::task::Poll::Ready(());
        }
        let mut read = tokio::io::ReadBuf::new(&mut buf);
        match std::pin::Pin::new(&mut *io).poll_read(cx, &mut read) {
            std::task::Poll::Ready(Ok(())) if !read.filled().is_empty() => total += read.filled().len(),
            std::task::Poll::Ready(_) => return std::task::Poll::Ready(()),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(2), discard).await;
}

/// Echoes the subprotocol [`choose_subprotocol_with`] picks (the recovery
/// extension's when `resume` and offered); returns it too when it is one
/// of ours.
#[allow(clippy::result_large_err)]
fn echo_subprotocol(
    request: &UpgradeRequest,
    mut response: Response,
    resume: bool,
) -> (Result<Response, ErrorResponse>, Option<&'static str>) {
    let offered = request.headers().get_all("sec-websocket-protocol");
    let offered: Vec<&str> = offered.iter().filter_map(|v| v.to_str().ok()).collect();
    let chosen = choose_subprotocol_with(offered.iter().copied(), resume);
    let known = match chosen {
        Some(RESUME_SUBPROTOCOL) => Some(RESUME_SUBPROTOCOL),
        Some(crate::protocol::SUBPROTOCOL) => Some(crate::protocol::SUBPROTOCOL),
        _ => None,
    };
    if let Some(protocol) = chosen.and_then(|p| HeaderValue::from_str(p).ok()) {
        response.headers_mut().insert("sec-websocket-protocol", protocol);
    }
    (Ok(response), known)
}

/// Serves one upgraded connection to its end. Returns the socket when it
/// should be drained before it is dropped (this side closed it because the
/// peer broke the protocol).
async fn serve_connection<C: Codec, T: Transport>(
    inner: &Arc<ServerInner<C>>,
    mut ws: T,
    // Boxed: the connection's task keeps this slot for its whole life.
    request: Option<Box<Request>>,
    // The client negotiated the recovery extension.
    resumable: bool,
) -> Option<T> {
    let mut shutdown = inner.shutdown.subscribe();

    // 1. The first data frame is the auth value.
    let first = tokio::select! {
        first = tokio::time::timeout(inner.auth_timeout, next_data(&mut ws)) => first,
        () = stopped(&mut shutdown) => Ok(First::Ended),
    };
    let auth = match first {
        Err(_) => {
            crate::meter::connection_refused("auth");
            refuse(&mut ws, CloseCode::FORBIDDEN, "").await;
            return None;
        }
        Ok(First::Ended) => {
            let code = *shutdown.borrow();
            match code {
                Some(code) => {
                    refuse(&mut ws, code, "").await;
                    return None;
                }
                None => return None,
            }
        }
        Ok(First::Broken(code, reason)) => {
            refuse(&mut ws, code, &reason).await;
            return Some(ws);
        }
        Ok(First::Data(auth)) => auth,
    };
    // 1b. With the recovery extension, the second frame is `wsm.resume`.
    let recovery = inner.recovery.as_ref().filter(|_| resumable);
    let mut resume = None;
    if recovery.is_some() {
        let second = tokio::select! {
            second = tokio::time::timeout(inner.auth_timeout, next_data(&mut ws)) => second,
            () = stopped(&mut shutdown) => Ok(First::Ended),
        };
        match second {
            Ok(First::Data(data)) => match parse_resume(&*inner.codec, &data) {
                Ok(asked) => resume = asked,
                Err(error) => {
                    trace::info!(%error, "bad resume frame: refused (4003)");
                    refuse(&mut ws, CloseCode::FORBIDDEN, "bad resume").await;
                    return Some(ws);
                }
            },
            Ok(First::Broken(code, reason)) => {
                refuse(&mut ws, code, &reason).await;
                return Some(ws);
            }
            Err(_) | Ok(First::Ended) => {
                refuse(&mut ws, CloseCode::FORBIDDEN, "").await;
                return None;
            }
        }
    }
    // Where the shared logs stand is known before a session opens. Boxed,
    // as the other steps of recovery: the connection's task keeps room for
    // its largest step for its whole life.
    let found = match recovery {
        Some(recovery) => {
            let mut shutdown = inner.shutdown.subscribe();
            let resume = resume.as_ref();
            Box::pin(async move {
                let looked_up = async {
                    inner.clients.ready().await;
                    recovery.lookup(resume, &inner.clients).await
                };
                tokio::select! {
                    found = tokio::time::timeout(inner.auth_timeout, looked_up) => found.ok().flatten().map(Box::new),
                    () = stopped(&mut shutdown) => None,
                }
            })
            .await
        }
        None => None,
    };
    let id = found.as_ref().map_or_else(random_id, |f| f.id.to_string());
    let token = std::sync::OnceLock::<String>::new();
    let span = trace::debug_span!(
        "ws_messaging.connection",
        id = %id,
        peer = ?request.as_ref().and_then(|r| r.peer_addr())
    );
    let endpoint = Endpoint::new(
        inner.codec.clone(),
        inner.options.clone(),
        Role::Server,
        Some(id.clone()),
        inner.shared.clone(),
    );
    endpoint.set_server(Arc::downgrade(inner));
    let traced = request
        .as_ref()
        .is_some_and(|r| r.header(crate::tracecontext::HEADER).is_some());
    endpoint.set_request(request);
    let link = endpoint.attach()?;
    if traced {
        link.set_traced();
    }
    if recovery.is_some() {
        link.set_resumable();
    }
    inner.clients.insert(&id, endpoint.clone());
    let _registered = Registered {
        inner,
        id: &id,
        endpoint: &endpoint,
        token: &token,
    };

    // 2. The connection hook decides; frames arriving meanwhile are dropped.
    let accepted = match &inner.hook {
        None => connect_event(&endpoint, &()),
        Some(hook) => {
            let mut hook = hook(endpoint.clone(), auth).instrument(span.clone());
            // No path before acceptance is unbounded: nor is the hook.
            let decide_by = tokio::time::sleep(inner.hook_timeout);
            tokio::pin!(decide_by);
            loop {
                tokio::select! {
                    accepted = &mut hook => break accepted,
                    frame = ws.next() => match frame {
                        // The client left (or broke the protocol): the hook
                        // is cancelled.
                        Some(Err(error)) => {
                            let (code, reason) = protocol_close(&error)?;
                            refuse(&mut ws, code, &reason).await;
                            return Some(ws);
                        }
                        Some(Ok(Message::Close(_))) | None => return None,
                        Some(Ok(_)) => {}
                    },
                    // The server is closing: do not wait for a slow hook.
                    () = stopped(&mut shutdown) => break Err(HandlerError::new("the server is closing")),
                    () = &mut decide_by => break Err(HandlerError::new(format!(
                        "the connection hook did not decide within {:?} (hook_timeout)",
                        inner.hook_timeout
                    ))),
                }
            }
        }
    };
    // The request was for the hook only.
    endpoint.set_request(None);
    let closing = *shutdown.borrow();
    if let Some(code) = closing {
        {
            refuse(&mut ws, code, "").await;
            return None;
        }
    }
    if let Some((code, reason)) = link.requested_close() {
        {
            refuse(&mut ws, code.into(), &reason).await;
            return None;
        } // the hook closed it
    }
    let connect = match accepted {
        Ok(connect) => connect,
        Err(error) => {
            trace::info!(parent: &span, %error, "client refused (4003)");
            crate::meter::connection_refused("auth");
            refuse(&mut ws, CloseCode::FORBIDDEN, &error.to_string()).await;
            return None;
        }
    };
    let kind = OutgoingKind::Message {
        name: "connect",
        id: None,
    };
    if let Err(error) = endpoint.run_send_hook(kind, message_bytes(&connect)) {
        {
            refuse(&mut ws, CloseCode::FORBIDDEN, &error.to_string()).await;
            return None;
        }
    }

    // 3. Connected: `connect` goes out first (after `wsm.session` with
    // recovery, and before what a resumed session missed), then the
    // connection runs.
    match recovery {
        None => {
            link.push_first(connect);
            endpoint.set_connected(&link, Bytes::new());
        }
        Some(recovery) => {
            let opened = recovery.open(&inner.clients, &endpoint, &link, &id, connect, resume, found);
            match Box::pin(opened.instrument(span.clone())).await {
                Ok((session, status)) => {
                    trace::debug!(parent: &span, ?status, "session");
                    let _ = token.set(session);
                }
                Err(_) => {
                    refuse(&mut ws, CloseCode::FORBIDDEN, "bad resume").await;
                    return None;
                }
            }
        }
    }
    // `close` may have run since the check above.
    let closing = *shutdown.borrow();
    if let Some(code) = closing {
        endpoint.close(code, "");
    }
    let settings = endpoint.connection_settings(None);
    crate::meter::connection_opened();
    let (closed, ws) = drive(&endpoint, &link, ws, settings).instrument(span.clone()).await;
    crate::meter::connection_closed(closed.code);
    // The socket is given up now, not after the disconnect hook: the peer
    // waits for the end of the TCP connection to finish its close. One to
    // drain is the caller's, after the hook.
    let ws = if closed.drain {
        Some(ws)
    } else {
        drop(ws);
        None
    };

    // 4. Out of the registry (its session, if any, kept), `close` emitted,
    // then the disconnect hook.
    if let (Some(recovery), Some(token)) = (&inner.recovery, token.get()) {
        recovery.closed(&inner.clients, &endpoint, &id, token, link.received());
    }
    inner.clients.remove_endpoint(&id, &endpoint);
    endpoint.detach(&link, &closed);
    if let Some(hook) = &inner.disconnect {
        hook(endpoint.clone(), closed.code, closed.reason).await;
    }
    ws
}

/// Removes a connection from the registry and drops its handlers when it ends.
struct Registered<'a, C: Codec> {
    inner: &'a ServerInner<C>,
    id: &'a str,
    endpoint: &'a Endpoint<C>,
    /// The recovery session's token, once it has one.
    token: &'a std::sync::OnceLock<String>,
}

impl<C: Codec> Drop for Registered<'_, C> {
    fn drop(&mut self) {
        if let (Some(recovery), Some(token)) = (&self.inner.recovery, self.token.get()) {
            // Unless step 4 (or a newer connection's takeover) kept it already.
            if self.inner.clients.get(self.id).is_some_and(|e| e.same(self.endpoint)) {
                let received = self.endpoint.life().link().map_or(0, |l| l.received());
                recovery.closed(&self.inner.clients, self.endpoint, self.id, token, received);
            }
        }
        self.inner.clients.remove_endpoint(self.id, self.endpoint);
        if let Some(link) = self.endpoint.life().link().cloned() {
            link.finish();
        }
        self.endpoint.clear_handlers();
    }
}

/// What came first on a fresh connection.
enum First {
    /// A text or binary frame's payload: the auth value.
    Data(Bytes),
    /// The socket ended (or closed) first.
    Ended,
    /// The peer broke the protocol: close with this code and reason.
    Broken(CloseCode, String),
}

/// The next text or binary frame's payload.
async fn next_data<T: Transport>(ws: &mut T) -> First {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return First::Data(text.into()),
            Some(Ok(Message::Binary(data))) => return First::Data(data),
            Some(Ok(Message::Close(_))) | None => return First::Ended,
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                return match protocol_close(&error) {
                    Some((code, reason)) => First::Broken(code, reason),
                    None => First::Ended,
                }
            }
        }
    }
}

/// Closes a connection that never became connected.
/// How long a refusal may take to write its close frame, and then how long
/// the peer has to answer it: a peer that stops reading (or floods pings
/// and never reads their pongs) cannot hold the connection's task, nor
/// [`Server::close`], any longer.
const REFUSE_GRACE: Duration = Duration::from_secs(3);

/// Closes a connection that was not accepted with `code` and `reason`,
/// bounded: the close frame gets [`REFUSE_GRACE`] to be written, the
/// peer's answer as long again; then the socket is dropped.
async fn refuse<T: Transport>(ws: &mut T, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code: code.0.into(),
        reason: truncate_reason(reason).into(),
    };
    match tokio::time::timeout(REFUSE_GRACE, ws.send(Message::Close(Some(frame)))).await {
        Ok(Ok(())) => {}
        // The socket failed, or the peer took nothing for the whole grace.
        Ok(Err(_)) | Err(_) => return,
    }
    // Let the peer answer the close handshake, briefly.
    let _ = tokio::time::timeout(REFUSE_GRACE, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

/// 18 random bytes (a cryptographically secure generator seeded by the
/// operating system), base64url without padding: 24 URL-safe characters,
/// as the JavaScript server's ids. Connection ids and session tokens.
pub(crate) fn random_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 18] = rand::random();
    let mut id = String::with_capacity(24);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32;
        for shift in [18, 12, 6, 0] {
            id.push(ALPHABET[(n >> shift) as usize & 63] as char);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_24_url_safe_chars() {
        let a = super::random_id();
        let b = super::random_id();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
