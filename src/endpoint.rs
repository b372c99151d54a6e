//! [`Endpoint`]: one end of a connection, the same type on both sides.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::codec::{Codec, FrameKind};
use crate::config::{EndpointOptions, Outgoing, OutgoingKind};
use crate::error::{CodecError, HandlerError, InvokeError, RegisterError, SendError};
use crate::events::LocalEvent;
use crate::payload::{Args, AsSeq, FromArgs};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Names applications must not use for their own events or procedures.
pub const RESERVED_NAMES: [&str; 7] = ["connect", "close", "open", "error", "ping", "pong", "retry"];

/// Events with these names are local-only: received ones are dropped.
pub(crate) const BLACKLIST: [&str; 5] = ["close", "open", "error", "pong", "retry"];

pub(crate) type Procedure<C> = Arc<dyn Fn(Endpoint<C>, u64, Vec<Bytes>) -> BoxFuture<()> + Send + Sync>;
type ListenerFn<C> = Arc<dyn Fn(&C, Vec<Bytes>) -> Result<(), CodecError> + Send + Sync>;

struct Listener<C> {
    id: u64,
    once: bool,
    call: ListenerFn<C>,
}

impl<C> Clone for Listener<C> {
    fn clone(&self) -> Self {
        Listener {
            id: self.id,
            once: self.once,
            call: self.call.clone(),
        }
    }
}

/// Identifies a listener added with [`Endpoint::on`], to remove it with
/// [`Endpoint::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// Which side of the connection an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// The outcome a pending invoke is settled with: the raw reply, or `Err`
/// when the connection went away.
type Settle = Result<Result<Bytes, Bytes>, ()>;

/// What the connection driver needs of a freshly attached connection.
pub(crate) struct Link {
    pub(crate) generation: u64,
    /// The write queue's receiving end, for the writer task.
    pub(crate) queue: mpsc::Receiver<Message>,
    /// Set to the code and reason when a close is started on this side.
    pub(crate) closing: watch::Receiver<Option<(u16, String)>>,
}

pub(crate) struct Conn {
    pub(crate) tx: mpsc::Sender<Message>,
    pub(crate) generation: u64,
    pub(crate) tasks: Vec<AbortHandle>,
    pub(crate) closing: watch::Sender<Option<(u16, String)>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) conn: Option<Conn>,
    pub(crate) connected: bool,
    pub(crate) generation: u64,
    pending: HashMap<u64, oneshot::Sender<Settle>>,
}

pub(crate) struct Inner<C: Codec> {
    pub(crate) codec: Arc<C>,
    pub(crate) options: EndpointOptions,
    pub(crate) role: Role,
    id: Option<String>,
    counter: AtomicU64,
    pub(crate) state: Mutex<State>,
    /// Set when the user closed the endpoint (or the server refused the
    /// client): a client then does not reconnect.
    pub(crate) terminated: AtomicBool,
    listeners: RwLock<HashMap<String, Arc<Vec<Listener<C>>>>>,
    procedures: RwLock<HashMap<String, Procedure<C>>>,
    next_listener: AtomicU64,
    events: broadcast::Sender<LocalEvent>,
    /// Bumped on every connect and close, so waiters can watch it.
    pub(crate) status: watch::Sender<Status>,
    data: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// Permits for concurrently running procedure handlers.
    pub(crate) calls: Arc<Semaphore>,
}

/// Connection status, observable through a watch channel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    Idle,
    Connected { reply: Bytes },
    Closed { code: u16, reason: String },
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
/// needs the endpoint should capture a [`WeakEndpoint`] (from
/// [`downgrade`](Self::downgrade)) so the endpoint does not keep itself
/// alive; a server clears a connection's handlers when it closes.
pub struct Endpoint<C: Codec> {
    pub(crate) inner: Arc<Inner<C>>,
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

/// A message encoded once by [`Endpoint::encode_message`] (or the server's
/// broadcast), to be sent to many peers with [`Endpoint::send_encoded`].
/// Cloning it is cheap.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedMessage(pub(crate) Message);

impl EncodedMessage {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => &[],
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || RESERVED_NAMES.contains(&name) {
        Err(name.to_string())
    } else {
        Ok(())
    }
}

impl<C: Codec> Endpoint<C> {
    pub(crate) fn new(codec: Arc<C>, options: EndpointOptions, role: Role, id: Option<String>) -> Self {
        let (events, _) = broadcast::channel(256);
        let (status, _) = watch::channel(Status::Idle);
        let endpoint = Endpoint {
            inner: Arc::new(Inner {
                codec,
                role,
                id,
                counter: AtomicU64::new(1),
                state: Mutex::new(State::default()),
                terminated: AtomicBool::new(false),
                listeners: RwLock::new(HashMap::new()),
                procedures: RwLock::new(HashMap::new()),
                next_listener: AtomicU64::new(1),
                events,
                status,
                data: Mutex::new(HashMap::new()),
                calls: Arc::new(Semaphore::new(options.max_concurrent_calls.max(1))),
                options,
            }),
        };
        // Every endpoint answers the peer's heartbeat (PROTOCOL.md §6).
        endpoint.insert_procedure("ping", |()| async { Ok(()) });
        endpoint
    }

    /// The server-side connection id (24 URL-safe characters); `None` on a
    /// client.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// Whether the connection is open and authenticated.
    pub fn is_connected(&self) -> bool {
        self.inner.state.lock().unwrap().connected
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.inner.codec
    }

    /// The options this endpoint runs with.
    pub fn options(&self) -> &EndpointOptions {
        &self.inner.options
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

    /// Subscribes to local events: `connect`, `close`, `error`, `retry`,
    /// `ping`, `pong`, `preprocessingError` (see [`LocalEvent`]). Each
    /// receiver sees every event sent after it subscribed (up to 256
    /// buffered).
    pub fn events(&self) -> broadcast::Receiver<LocalEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, event: LocalEvent) {
        let _ = self.inner.events.send(event);
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

    // ----- events ------------------------------------------------------

    /// Adds a listener for the event `name`; many listeners may listen to one
    /// name. The listener gets the event's arguments decoded into `A` (a
    /// tuple, a `Vec`, or [`RawArgs`](crate::RawArgs)). Arguments that do not
    /// decode into `A` are reported as a local [`LocalEvent::Error`].
    ///
    /// Listeners are called in order on the connection's reader: keep them
    /// short, or spawn.
    pub fn on<A, F>(&self, name: &str, listener: F) -> ListenerId
    where
        A: FromArgs,
        F: Fn(A) + Send + Sync + 'static,
    {
        self.add_listener(name, listener, false)
    }

    /// Like [`on`](Self::on), but the listener is removed after its first call.
    pub fn once<A, F>(&self, name: &str, listener: F) -> ListenerId
    where
        A: FromArgs,
        F: Fn(A) + Send + Sync + 'static,
    {
        self.add_listener(name, listener, true)
    }

    fn add_listener<A, F>(&self, name: &str, listener: F, once: bool) -> ListenerId
    where
        A: FromArgs,
        F: Fn(A) + Send + Sync + 'static,
    {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        let call: ListenerFn<C> = Arc::new(move |codec: &C, args| {
            listener(A::from_args(codec, args)?);
            Ok(())
        });
        let mut map = self.inner.listeners.write().unwrap();
        let list = map.entry(name.to_string()).or_default();
        let mut next = (**list).clone();
        next.push(Listener { id, once, call });
        *list = Arc::new(next);
        ListenerId(id)
    }

    /// Removes one listener; returns whether it was there.
    pub fn off(&self, name: &str, id: ListenerId) -> bool {
        let mut map = self.inner.listeners.write().unwrap();
        let Some(list) = map.get_mut(name) else { return false };
        let before = list.len();
        let next: Vec<_> = list.iter().filter(|l| l.id != id.0).cloned().collect();
        let removed = next.len() != before;
        if next.is_empty() {
            map.remove(name);
        } else {
            *list = Arc::new(next);
        }
        removed
    }

    /// Removes every listener of `name`.
    pub fn off_all(&self, name: &str) {
        self.inner.listeners.write().unwrap().remove(name);
    }

    /// Calls the listeners of `name`.
    pub(crate) fn call_listeners(&self, name: &str, args: Vec<Bytes>) {
        let list = match self.inner.listeners.read().unwrap().get(name) {
            Some(list) => list.clone(),
            None => return,
        };
        let mut args = Some(args);
        for (i, listener) in list.iter().enumerate() {
            if listener.once && !self.off(name, ListenerId(listener.id)) {
                continue; // another reader already fired it
            }
            // The last listener takes the arguments; earlier ones get copies.
            let args = if i + 1 == list.len() {
                args.take().unwrap_or_default()
            } else {
                args.clone().unwrap_or_default()
            };
            let call = || (listener.call)(&self.inner.codec, args);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.emit(LocalEvent::Error(format!("listener of `{name}`: {e}"))),
                Err(_) => self.emit(LocalEvent::Error(format!("listener of `{name}` panicked"))),
            }
        }
    }

    /// Sends the event `name` with `args` (a tuple, a `Vec`, ...). Resolves
    /// when the frame is queued for writing; waits while the queue is full.
    ///
    /// Fails with [`SendError::Connection`] when not connected.
    pub async fn send<A: Args>(&self, name: &str, args: A) -> Result<(), SendError> {
        check_name(name).map_err(SendError::ReservedName)?;
        self.send_unchecked(name, &args).await
    }

    pub(crate) async fn send_unchecked<A: Args + ?Sized>(&self, name: &str, args: &A) -> Result<(), SendError> {
        let mut buf = Vec::with_capacity(64);
        self.inner
            .codec
            .encode_message(name, &AsSeq(args), None, &mut buf)
            .map_err(SendError::Encode)?;
        self.run_send_hook(OutgoingKind::Message { name, id: None }, &buf)?;
        let message = self.frame(buf)?;
        let tx = self.sender()?;
        tx.send(message).await.map_err(|_| SendError::Connection)
    }

    /// Encodes the event `name(args)` once, to send it to many peers with
    /// [`send_encoded`](Self::send_encoded).
    pub fn encode_message<A: Args>(&self, name: &str, args: A) -> Result<EncodedMessage, SendError> {
        check_name(name).map_err(SendError::ReservedName)?;
        encode_event(&*self.inner.codec, name, &args)
    }

    /// Sends a frame made by [`encode_message`](Self::encode_message).
    pub async fn send_encoded(&self, message: &EncodedMessage) -> Result<(), SendError> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes())?;
        let tx = self.sender()?;
        tx.send(message.0.clone()).await.map_err(|_| SendError::Connection)
    }

    // ----- RPC ---------------------------------------------------------

    /// Registers the procedure `name` (one handler per name). The handler
    /// gets the call's arguments decoded into `A` and returns the result, or
    /// a [`HandlerError`] that goes to the caller through the error
    /// formatter. Handlers run concurrently, each in its own task.
    ///
    /// ```
    /// # fn f(endpoint: ws_messaging::Endpoint<ws_messaging_json::Json>) {
    /// endpoint
    ///     .register("sum", |numbers: Vec<f64>| async move { Ok(numbers.iter().fold(0.0, |a, b| a + b)) })
    ///     .unwrap();
    /// endpoint
    ///     .register("greet", |(name,): (String,)| async move { Ok(format!("hello {name}")) })
    ///     .unwrap();
    /// # }
    /// ```
    pub fn register<A, R, F, Fut>(&self, name: &str, handler: F) -> Result<(), RegisterError>
    where
        A: FromArgs,
        R: Serialize + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        check_name(name).map_err(RegisterError::ReservedName)?;
        if self.inner.procedures.read().unwrap().contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        self.insert_procedure(name, handler)
            .then_some(())
            .ok_or_else(|| RegisterError::Duplicate(name.to_string()))
    }

    fn insert_procedure<A, R, F, Fut>(&self, name: &str, handler: F) -> bool
    where
        A: FromArgs,
        R: Serialize + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let procedure: Procedure<C> = Arc::new(move |endpoint: Endpoint<C>, id, args| {
            let handler = handler.clone();
            Box::pin(async move {
                let outcome = match A::from_args(&*endpoint.inner.codec, args) {
                    Ok(args) => {
                        // A panicking handler still answers, with an error.
                        let call = std::panic::AssertUnwindSafe(async move { handler(args).await });
                        match futures_util::FutureExt::catch_unwind(call).await {
                            Ok(outcome) => outcome,
                            Err(_) => Err(HandlerError::new("the handler panicked")),
                        }
                    }
                    Err(e) => Err(HandlerError::named("TypeError", format!("invalid arguments: {e}"))),
                };
                let reply = match &outcome {
                    Ok(result) => endpoint.encode_reply(id, Ok(result)),
                    Err(error) => endpoint.encode_error_reply(id, error),
                };
                endpoint.send_reply(id, reply).await;
            })
        });
        let mut map = self.inner.procedures.write().unwrap();
        if map.contains_key(name) {
            return false;
        }
        map.insert(name.to_string(), procedure);
        true
    }

    /// Removes the procedure `name`; returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.procedures.write().unwrap().remove(name).is_some()
    }

    pub(crate) fn procedure(&self, name: &str) -> Option<Procedure<C>> {
        self.inner.procedures.read().unwrap().get(name).cloned()
    }

    /// Drops every handler and listener (breaks reference cycles through
    /// handlers that captured the endpoint). Keeps the `ping` handler.
    pub(crate) fn clear_handlers(&self) {
        self.inner.listeners.write().unwrap().clear();
        self.inner.procedures.write().unwrap().retain(|name, _| name == "ping");
        self.inner.data.lock().unwrap().clear();
    }

    pub(crate) fn encode_reply<T: Serialize + ?Sized>(
        &self,
        id: u64,
        result: Result<&T, &serde_json::Value>,
    ) -> Result<Message, SendError> {
        let mut buf = Vec::with_capacity(32);
        match self.inner.codec.encode_reply(id, result, &mut buf) {
            Ok(()) => self.frame(buf),
            Err(e) => {
                let error = HandlerError::new(format!("could not encode the result: {e}"));
                let value = (self.inner.options.error_formatter)(&error);
                buf.clear();
                self.inner
                    .codec
                    .encode_reply::<()>(id, Err(&value), &mut buf)
                    .map_err(SendError::Encode)?;
                self.frame(buf)
            }
        }
    }

    pub(crate) fn encode_error_reply(&self, id: u64, error: &HandlerError) -> Result<Message, SendError> {
        let value = (self.inner.options.error_formatter)(error);
        self.encode_reply::<()>(id, Err(&value))
    }

    pub(crate) async fn send_reply(&self, id: u64, reply: Result<Message, SendError>) {
        let sent = match reply {
            Ok(message) => match self.run_send_hook(OutgoingKind::Reply { id }, message_bytes(&message)) {
                Ok(()) => match self.sender() {
                    Ok(tx) => tx.send(message).await.map_err(|_| SendError::Connection),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            if e != SendError::Connection {
                self.emit(LocalEvent::Error(format!("reply to invoke #{id} not sent: {e}")));
            }
        }
    }

    /// Invokes the peer's procedure `name` with `args` and waits for the
    /// reply, at most the endpoint's `ack_timeout`.
    ///
    /// ```no_run
    /// # async fn f(client: ws_messaging::Endpoint<ws_messaging_json::Json>) -> Result<(), ws_messaging::InvokeError> {
    /// let sum: f64 = client.invoke("sum", (1, 2, 3.5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invoke<A: Args, R: DeserializeOwned>(&self, name: &str, args: A) -> Result<R, InvokeError> {
        self.invoke_with_timeout(name, args, self.inner.options.ack_timeout)
            .await
    }

    /// [`invoke`](Self::invoke) with its own timeout.
    pub async fn invoke_with_timeout<A: Args, R: DeserializeOwned>(
        &self,
        name: &str,
        args: A,
        timeout: Duration,
    ) -> Result<R, InvokeError> {
        check_name(name).map_err(InvokeError::ReservedName)?;
        let raw = self.invoke_raw(name, &args, timeout).await?;
        self.decode(&raw).map_err(InvokeError::Decode)
    }

    /// Invokes and returns the result still encoded (or the remote error).
    pub(crate) async fn invoke_raw<A: Args + ?Sized>(
        &self,
        name: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<Bytes, InvokeError> {
        let id = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::with_capacity(64);
        self.inner
            .codec
            .encode_message(name, &AsSeq(args), Some(id), &mut buf)
            .map_err(InvokeError::Encode)?;
        self.run_send_hook(OutgoingKind::Message { name, id: Some(id) }, &buf)
            .map_err(|e| InvokeError::from_send(e, Some(id)))?;
        let message = self.frame(buf).map_err(|e| InvokeError::from_send(e, Some(id)))?;
        let (settle_tx, settle_rx) = oneshot::channel();
        let tx = {
            let mut state = self.inner.state.lock().unwrap();
            match (&state.conn, state.connected) {
                (Some(conn), true) => {
                    let tx = conn.tx.clone();
                    state.pending.insert(id, settle_tx);
                    tx
                }
                _ => return Err(InvokeError::Connection { id: Some(id) }),
            }
        };
        let _guard = PendingGuard { inner: &self.inner, id };
        let wait = async {
            tx.send(message)
                .await
                .map_err(|_| InvokeError::Connection { id: Some(id) })?;
            match settle_rx.await {
                Ok(Ok(outcome)) => Ok(outcome),
                _ => Err(InvokeError::Connection { id: Some(id) }),
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(InvokeError::Timeout { id }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => Err(InvokeError::Remote(
                self.inner.codec.decode_error(&error).map_err(InvokeError::Decode)?,
            )),
        }
    }

    /// Settles the pending invoke `id`; an unknown id is ignored.
    pub(crate) fn settle(&self, id: u64, outcome: Result<Bytes, Bytes>) {
        let pending = self.inner.state.lock().unwrap().pending.remove(&id);
        if let Some(tx) = pending {
            let _ = tx.send(Ok(outcome));
        }
    }

    // ----- sending -----------------------------------------------------

    fn run_send_hook(&self, kind: OutgoingKind<'_>, frame: &[u8]) -> Result<(), SendError> {
        match &self.inner.options.send_hook {
            Some(hook) => hook(&Outgoing { kind, frame }).map_err(|e| SendError::Refused(e.to_string())),
            None => Ok(()),
        }
    }

    pub(crate) fn frame(&self, buf: Vec<u8>) -> Result<Message, SendError> {
        to_message::<C>(buf)
    }

    /// The write queue of the current connection, if connected.
    fn sender(&self) -> Result<mpsc::Sender<Message>, SendError> {
        let state = self.inner.state.lock().unwrap();
        match (&state.conn, state.connected) {
            (Some(conn), true) => Ok(conn.tx.clone()),
            _ => Err(SendError::Connection),
        }
    }

    // ----- connection lifecycle ---------------------------------------

    /// Closes the connection with `code` and `reason` (at most 123 bytes;
    /// longer reasons are cut on a character boundary). Every pending invoke
    /// fails at once with a connection error. On a client this is final: it
    /// does not reconnect until [`Client::reconnect`](crate::Client::reconnect).
    pub fn close(&self, code: u16, reason: &str) {
        self.inner.terminated.store(true, Ordering::SeqCst);
        let generation = self.inner.state.lock().unwrap().generation;
        self.close_connection(generation, code, reason);
    }

    /// Starts the close handshake of connection `generation` (if it is still
    /// the current one) and fails its pending invokes.
    pub(crate) fn close_connection(&self, generation: u64, code: u16, reason: &str) {
        let mut state = self.inner.state.lock().unwrap();
        let Some(conn) = state.conn.as_ref().filter(|c| c.generation == generation) else {
            return;
        };
        let reason = truncate_reason(reason).to_string();
        let frame = Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.clone().into(),
        }));
        // The queue may be full: the close frame must not wait behind it.
        let tx = conn.tx.clone();
        conn.closing.send_replace(Some((code, reason)));
        state.connected = false;
        let pending = std::mem::take(&mut state.pending);
        drop(state);
        for (_, settle) in pending {
            let _ = settle.send(Err(()));
        }
        if tx.try_send(frame.clone()).is_err() {
            tokio::spawn(async move {
                let _ = tx.send(frame).await;
            });
        }
    }

    /// Installs a new connection; returns its generation and write queue.
    pub(crate) fn attach(&self) -> Link {
        let (tx, rx) = mpsc::channel(self.inner.options.send_queue.max(1));
        let (closing, closing_rx) = watch::channel(None);
        let mut state = self.inner.state.lock().unwrap();
        state.generation += 1;
        let generation = state.generation;
        state.conn = Some(Conn {
            tx,
            generation,
            tasks: Vec::new(),
            closing,
        });
        state.connected = false;
        Link {
            generation,
            queue: rx,
            closing: closing_rx,
        }
    }

    /// Queues a frame on connection `generation` before it is connected (the
    /// auth frame, the `connect` event).
    pub(crate) fn push_first(&self, generation: u64, message: Message) -> bool {
        let state = self.inner.state.lock().unwrap();
        match &state.conn {
            Some(conn) if conn.generation == generation => conn.tx.try_send(message).is_ok(),
            _ => false,
        }
    }

    /// Ties a task's lifetime to connection `generation`.
    pub(crate) fn add_task(&self, generation: u64, task: AbortHandle) {
        let mut state = self.inner.state.lock().unwrap();
        match state.conn.as_mut() {
            Some(conn) if conn.generation == generation => conn.tasks.push(task),
            _ => task.abort(),
        }
    }

    /// Marks connection `generation` connected and starts its heartbeat.
    pub(crate) fn set_connected(&self, generation: u64, reply: Bytes) -> bool {
        {
            let mut state = self.inner.state.lock().unwrap();
            let already = state.connected;
            match state.conn.as_mut() {
                Some(conn) if conn.generation == generation && !already => {
                    // The auth timer (a client's only task so far) is done.
                    for task in conn.tasks.drain(..) {
                        task.abort();
                    }
                    state.connected = true;
                }
                _ => return false,
            }
        }
        if !self.inner.options.ping_interval.is_zero() {
            let task = tokio::spawn(crate::heartbeat::run(self.downgrade(), generation));
            self.add_task(generation, task.abort_handle());
        }
        self.inner
            .status
            .send_replace(Status::Connected { reply: reply.clone() });
        self.emit(LocalEvent::Connect(reply));
        true
    }

    /// Tears down connection `generation` after its socket ended: fails every
    /// pending invoke, stops its tasks and emits `close`.
    pub(crate) fn detach(&self, generation: u64, code: u16, reason: String) {
        let (pending, tasks) = {
            let mut state = self.inner.state.lock().unwrap();
            match state.conn.take() {
                Some(conn) if conn.generation == generation => {
                    state.connected = false;
                    (std::mem::take(&mut state.pending), conn.tasks)
                }
                other => {
                    state.conn = other;
                    return;
                }
            }
        };
        for (_, settle) in pending {
            let _ = settle.send(Err(()));
        }
        for task in tasks {
            task.abort();
        }
        self.inner.status.send_replace(Status::Closed {
            code,
            reason: reason.clone(),
        });
        self.emit(LocalEvent::Close { code, reason });
    }
}

/// Removes a pending invoke when its future ends or is dropped.
struct PendingGuard<'a, C: Codec> {
    inner: &'a Inner<C>,
    id: u64,
}

impl<C: Codec> Drop for PendingGuard<'_, C> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.inner.state.lock() {
            state.pending.remove(&self.id);
        }
    }
}

pub(crate) fn to_message<C: Codec>(buf: Vec<u8>) -> Result<Message, SendError> {
    match C::FRAME_KIND {
        FrameKind::Binary => Ok(Message::Binary(buf.into())),
        FrameKind::Text => String::from_utf8(buf)
            .map(|s| Message::Text(s.into()))
            .map_err(|_| SendError::Encode(CodecError::Encode("a text codec produced invalid UTF-8".into()))),
    }
}

pub(crate) fn encode_event<C: Codec, A: Args + ?Sized>(
    codec: &C,
    name: &str,
    args: &A,
) -> Result<EncodedMessage, SendError> {
    let mut buf = Vec::with_capacity(64);
    codec
        .encode_message(name, &AsSeq(args), None, &mut buf)
        .map_err(SendError::Encode)?;
    Ok(EncodedMessage(to_message::<C>(buf)?))
}

pub(crate) fn message_bytes(message: &Message) -> &[u8] {
    match message {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        _ => &[],
    }
}

/// Cuts a close reason to the 123 bytes a close frame can carry, on a
/// character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate_reason;

    #[test]
    fn reasons_are_cut_on_char_boundaries() {
        assert_eq!(truncate_reason("short"), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len(), 122);
    }
}
