//! [`Endpoint`]: one end of a connection, the same type on both sides.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{broadcast, Notify};
use tokio_tungstenite::tungstenite::Message;

use crate::codec::{Codec, FrameKind};
use crate::config::{EndpointOptions, Outgoing, OutgoingKind};
use crate::connection::{Closed, Link, Phase, PushError};
use crate::error::{AttemptError, CodecError, SendError};
use crate::events::LocalEvent;
use crate::payload::{Args, AsSeq, FromArgs};
use crate::protocol::{check_name, CLOSE_SLOW_CONSUMER};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub(crate) type Procedure<C> = Arc<dyn Fn(Endpoint<C>, Arc<Link>, u64, Vec<Bytes>) -> BoxFuture<()> + Send + Sync>;
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

/// The endpoint's side of the connection state machine: which connection
/// is current, and (on a client) whether the connect loop should run.
/// Guarded by one lock; every change wakes `Inner::life_changed`.
#[derive(Default)]
pub(crate) struct Life {
    /// The current connection (authenticating, open or closing).
    pub(crate) link: Option<Arc<Link>>,
    /// The auth reply of the last accepted connection.
    pub(crate) reply: Bytes,
    /// How the last connection ended.
    pub(crate) last_close: Option<AttemptError>,
    /// Closed by the user (or refused with 4003): a client does not reconnect.
    pub(crate) terminated: bool,
    /// Whether a client's connect loop is running.
    pub(crate) running: bool,
    /// Bumped by `Client::reconnect`, so a running loop starts afresh.
    pub(crate) epoch: u64,
}

pub(crate) struct Inner<C: Codec> {
    pub(crate) codec: Arc<C>,
    pub(crate) options: Arc<EndpointOptions>,
    pub(crate) role: Role,
    id: Option<Box<str>>,
    counter: AtomicU64,
    life: Mutex<Life>,
    life_changed: Notify,
    listeners: RwLock<HashMap<String, Arc<Vec<Listener<C>>>>>,
    procedures: RwLock<HashMap<String, Procedure<C>>>,
    next_listener: AtomicU64,
    /// Created by the first `events()` call.
    events: OnceLock<broadcast::Sender<LocalEvent>>,
    data: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
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

/// A message encoded once by [`Endpoint::encode_message`] (or the server's
/// broadcast), to be sent to many peers with [`Endpoint::send_encoded`].
/// Cloning it is cheap.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedMessage(pub(crate) Message);

impl EncodedMessage {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        message_bytes(&self.0)
    }
}

impl<C: Codec> Endpoint<C> {
    pub(crate) fn new(codec: Arc<C>, options: Arc<EndpointOptions>, role: Role, id: Option<String>) -> Self {
        Endpoint {
            inner: Arc::new(Inner {
                codec,
                role,
                id: id.map(String::into_boxed_str),
                counter: AtomicU64::new(1),
                life: Mutex::new(Life::default()),
                life_changed: Notify::new(),
                listeners: RwLock::new(HashMap::new()),
                procedures: RwLock::new(HashMap::new()),
                next_listener: AtomicU64::new(1),
                events: OnceLock::new(),
                data: Mutex::new(HashMap::new()),
                options,
            }),
        }
    }

    /// The server-side connection id (24 URL-safe characters); `None` on a
    /// client.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// Whether the connection is open and authenticated.
    pub fn is_connected(&self) -> bool {
        self.life().link.as_ref().is_some_and(|link| link.is_open())
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

    /// The current connection's outgoing backlog: frames queued and their
    /// payload bytes (both `0` when not connected).
    pub fn backlog(&self) -> (usize, usize) {
        self.life().link.as_ref().map_or((0, 0), |link| link.backlog())
    }

    /// Subscribes to local events: `connect`, `close`, `error`, `retry`,
    /// `ping`, `pong`, `preprocessingError`, `slowConsumer` (see
    /// [`LocalEvent`]). Each receiver sees every event sent after it
    /// subscribed (up to 256 buffered). Listeners added with
    /// [`on`](Self::on) under a reserved name get the same events.
    pub fn events(&self) -> broadcast::Receiver<LocalEvent> {
        self.inner.events.get_or_init(|| broadcast::channel(256).0).subscribe()
    }

    /// Emits a local event: to listeners of its reserved name, then to
    /// every `events()` receiver.
    pub(crate) fn emit(&self, event: LocalEvent) {
        self.emit_to_listeners(&event);
        if let Some(events) = self.inner.events.get() {
            let _ = events.send(event);
        }
    }

    fn emit_to_listeners(&self, event: &LocalEvent) {
        let name = match event {
            LocalEvent::Open => "open",
            LocalEvent::Connect(_) => "connect",
            LocalEvent::Close { .. } => "close",
            LocalEvent::Error(_) => "error",
            LocalEvent::Retry(_) => "retry",
            LocalEvent::Ping => "ping",
            LocalEvent::Pong => "pong",
            LocalEvent::PreprocessingError(_) | LocalEvent::SlowConsumer { .. } => return,
        };
        if !self.inner.listeners.read().unwrap().contains_key(name) {
            return;
        }
        let codec = &*self.inner.codec;
        let args = match event {
            LocalEvent::Connect(reply) => vec![reply.clone()],
            LocalEvent::Close { code, reason } => vec![encode_arg(codec, code), encode_arg(codec, reason)],
            LocalEvent::Error(message) => vec![encode_arg(codec, message)],
            LocalEvent::Retry(attempt) => vec![encode_arg(codec, attempt)],
            _ => Vec::new(),
        };
        self.call_listeners(name, args);
    }

    // ----- the connection state machine ----------------------------------

    pub(crate) fn life(&self) -> MutexGuard<'_, Life> {
        self.inner.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the life state under its lock and wakes its waiters.
    pub(crate) fn update_life<R>(&self, f: impl FnOnce(&mut Life) -> R) -> R {
        let out = f(&mut self.life());
        self.inner.life_changed.notify_waiters();
        out
    }

    /// Waits until `done` holds for the life state, and returns its answer.
    pub(crate) async fn wait_life<R>(&self, mut done: impl FnMut(&Life) -> Option<R>) -> R {
        loop {
            let changed = self.inner.life_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(out) = done(&self.life()) {
                return out;
            }
            changed.await;
        }
    }

    /// Installs a new connection, unless the endpoint was closed for good.
    pub(crate) fn attach(&self) -> Option<Arc<Link>> {
        self.update_life(|life| {
            if life.terminated {
                return None;
            }
            let link = Arc::new(Link::new(&self.inner.options));
            life.link = Some(link.clone());
            Some(link)
        })
    }

    /// Marks `link` authenticated with the peer's auth `reply`.
    pub(crate) fn set_connected(&self, link: &Arc<Link>, reply: Bytes) -> bool {
        if !link.open() {
            return false;
        }
        self.update_life(|life| life.reply = reply.clone());
        self.emit(LocalEvent::Connect(reply));
        true
    }

    /// Tears `link` down after its socket ended: emits `close`.
    pub(crate) fn detach(&self, link: &Arc<Link>, closed: &Closed) {
        link.finish();
        self.update_life(|life| {
            if life.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                life.link = None;
            }
            life.last_close = Some(AttemptError::Closed {
                code: closed.code,
                reason: closed.reason.clone(),
            });
        });
        self.emit(LocalEvent::Close {
            code: closed.code,
            reason: closed.reason.clone(),
        });
    }

    /// Closes the connection with `code` and `reason` (at most 123 bytes;
    /// longer reasons are cut on a character boundary). Every pending invoke
    /// fails at once with a connection error. On a client this is final: it
    /// does not reconnect until [`Client::reconnect`](crate::Client::reconnect).
    /// Inside a server's connection hook, the client is refused with this
    /// code and reason whatever the hook returns.
    ///
    /// It never blocks and needs no runtime: the close frame is queued for
    /// the connection's task.
    pub fn close(&self, code: u16, reason: &str) {
        let link = self.update_life(|life| {
            life.terminated = true;
            life.link.clone()
        });
        if let Some(link) = link {
            link.close(code, reason, false);
        }
    }

    /// The current connection, if it is open.
    pub(crate) fn open_link(&self) -> Result<Arc<Link>, SendError> {
        match &self.life().link {
            Some(link) if link.phase() == Phase::Open => Ok(link.clone()),
            _ => Err(SendError::Connection),
        }
    }

    pub(crate) fn procedures(&self) -> &RwLock<HashMap<String, Procedure<C>>> {
        &self.inner.procedures
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A heartbeat ping, `ping()` as an invoke: its id and frame. `None`
    /// when it cannot be encoded or the send hook refuses it.
    pub(crate) fn ping_message(&self) -> Option<(u64, Message)> {
        let id = self.next_id();
        let mut buf = Vec::with_capacity(32);
        self.inner
            .codec
            .encode_message("ping", &AsSeq(&()), Some(id), &mut buf)
            .ok()?;
        self.run_send_hook(
            OutgoingKind::Message {
                name: "ping",
                id: Some(id),
            },
            &buf,
        )
        .ok()?;
        Some((id, self.frame(buf).ok()?))
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
    /// A reserved name gets the local event of that name, as in the
    /// JavaScript package: `connect` (the auth reply), `close` (code,
    /// reason), `open`, `error` (message), `retry` (attempt), `ping`, `pong`.
    ///
    /// ```
    /// # fn f(client: ws_messaging::Endpoint<ws_messaging_json::Json>) {
    /// client.on("close", |(code, reason): (u16, String)| println!("closed: {code} {reason}"));
    /// # }
    /// ```
    ///
    /// Listeners are called in order on the connection's task: keep them
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

    /// Drops every handler, listener and stored value (breaks reference
    /// cycles through handlers that captured the endpoint).
    pub(crate) fn clear_handlers(&self) {
        self.inner.listeners.write().unwrap().clear();
        self.inner.procedures.write().unwrap().clear();
        self.inner.data.lock().unwrap().clear();
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
            let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("listener of `{name}`: {e}"),
                Err(_) => format!("listener of `{name}` panicked"),
            };
            if name == "error" {
                // Do not report an `error` listener's failure to itself.
                if let Some(events) = self.inner.events.get() {
                    let _ = events.send(LocalEvent::Error(failure));
                }
            } else {
                self.emit(LocalEvent::Error(failure));
            }
        }
    }

    /// Sends the event `name` with `args` (a tuple, a `Vec`, ...). Resolves
    /// when the frame is queued for writing; waits while the connection's
    /// backlog is full (backpressure), at most the `write_timeout`, after
    /// which the peer is closed (4009) and this fails with
    /// [`SendError::Timeout`].
    ///
    /// Fails with [`SendError::Connection`] when not connected.
    pub async fn send<A: Args>(&self, name: &str, args: A) -> Result<(), SendError> {
        let message = encode_event(&*self.inner.codec, name, &args)?;
        self.run_send_hook(OutgoingKind::Message { name, id: None }, message.as_bytes())?;
        let link = self.open_link()?;
        self.push_wait(&link, message.0).await
    }

    /// Queues `message` on `link`, waiting for room at most `write_timeout`.
    async fn push_wait(&self, link: &Link, message: Message) -> Result<(), SendError> {
        match tokio::time::timeout(self.inner.options.write_timeout, link.push_wait(message, None)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Connection),
            Err(_) => {
                link.close(CLOSE_SLOW_CONSUMER, "Write timeout", true);
                Err(SendError::Timeout)
            }
        }
    }

    /// Encodes the event `name(args)` once, to send it to many peers with
    /// [`send_encoded`](Self::send_encoded).
    pub fn encode_message<A: Args>(&self, name: &str, args: A) -> Result<EncodedMessage, SendError> {
        encode_event(&*self.inner.codec, name, &args)
    }

    /// Sends a frame made by [`encode_message`](Self::encode_message),
    /// waiting while the backlog is full (as [`send`](Self::send)).
    pub async fn send_encoded(&self, message: &EncodedMessage) -> Result<(), SendError> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes())?;
        let link = self.open_link()?;
        self.push_wait(&link, message.0.clone()).await
    }

    /// Queues a frame made by [`encode_message`](Self::encode_message)
    /// without waiting: what broadcasts use, so one slow peer never holds
    /// up the others. A connection whose backlog is already past its
    /// limits (`max_backlog_frames`, `max_backlog_bytes`) is closed with
    /// 4009 `Slow consumer` instead (a [`LocalEvent::SlowConsumer`] is
    /// emitted) and this fails with [`SendError::SlowConsumer`].
    pub fn queue_encoded(&self, message: &EncodedMessage) -> Result<(), SendError> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes())?;
        let link = self.open_link()?;
        self.push_now(&link, message.0.clone())
    }

    /// Queues on `link` without waiting (replies, broadcasts, reports).
    pub(crate) fn push_now(&self, link: &Link, message: Message) -> Result<(), SendError> {
        match link.push_now(message) {
            Ok(()) => Ok(()),
            Err(PushError::Closed) => Err(SendError::Connection),
            Err(PushError::SlowConsumer { frames, bytes }) => {
                self.emit(LocalEvent::SlowConsumer { frames, bytes });
                Err(SendError::SlowConsumer)
            }
        }
    }

    // ----- sending -----------------------------------------------------

    pub(crate) fn run_send_hook(&self, kind: OutgoingKind<'_>, frame: &[u8]) -> Result<(), SendError> {
        match &self.inner.options.send_hook {
            Some(hook) => hook(&Outgoing { kind, frame }).map_err(SendError::Refused),
            None => Ok(()),
        }
    }

    pub(crate) fn frame(&self, buf: Vec<u8>) -> Result<Message, SendError> {
        to_message::<C>(buf)
    }
}

/// Encodes one local event argument for listeners of a reserved name.
fn encode_arg<C: Codec, T: Serialize + ?Sized>(codec: &C, value: &T) -> Bytes {
    let mut buf = Vec::new();
    match codec.encode_value(value, &mut buf) {
        Ok(()) => buf.into(),
        Err(_) => Bytes::new(),
    }
}

pub(crate) fn to_message<C: Codec>(mut buf: Vec<u8>) -> Result<Message, SendError> {
    // A frame can wait in backlogs for a while: do not let it hold the
    // encoder's doubling slack (up to twice its size) meanwhile.
    if buf.capacity() > 4096 && buf.capacity() - buf.len() > buf.len() / 8 {
        buf.shrink_to_fit();
    }
    match C::FRAME_KIND {
        FrameKind::Binary => Ok(Message::Binary(buf.into())),
        FrameKind::Text => String::from_utf8(buf)
            .map(|s| Message::Text(s.into()))
            .map_err(|_| SendError::Encode(CodecError::encode("a text codec produced invalid UTF-8"))),
    }
}

/// Encodes the event `name(args)`; reserved names are refused.
pub(crate) fn encode_event<C: Codec, A: Args + ?Sized>(
    codec: &C,
    name: &str,
    args: &A,
) -> Result<EncodedMessage, SendError> {
    check_name(name).map_err(SendError::ReservedName)?;
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
