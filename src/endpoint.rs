//! [`Endpoint`]: one end of a connection, the same type on both sides.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::codec::{Codec, FrameKind};
use crate::config::{EndpointOptions, Outgoing, OutgoingKind};
use crate::error::{CodecError, SendError};
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
pub(crate) type Settle = Result<Result<Bytes, Bytes>, ()>;

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
    pub(crate) pending: HashMap<u64, oneshot::Sender<Settle>>,
}

pub(crate) struct Inner<C: Codec> {
    pub(crate) codec: Arc<C>,
    pub(crate) options: EndpointOptions,
    pub(crate) role: Role,
    pub(crate) id: Option<String>,
    pub(crate) counter: AtomicU64,
    pub(crate) state: Mutex<State>,
    /// Set when the user closed the endpoint (or the server refused the
    /// client): a client then does not reconnect.
    pub(crate) terminated: AtomicBool,
    listeners: RwLock<HashMap<String, Arc<Vec<Listener<C>>>>>,
    pub(crate) procedures: RwLock<HashMap<String, Procedure<C>>>,
    pub(crate) next_listener: AtomicU64,
    pub(crate) events: broadcast::Sender<LocalEvent>,
    /// Bumped on every connect and close, so waiters can watch it.
    pub(crate) status: watch::Sender<Status>,
    pub(crate) data: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
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

pub(crate) fn check_name(name: &str) -> Result<(), String> {
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

    /// Drops every handler and listener (breaks reference cycles through
    /// handlers that captured the endpoint). Keeps the `ping` handler.
    pub(crate) fn clear_handlers(&self) {
        self.inner.listeners.write().unwrap().clear();
        self.inner.procedures.write().unwrap().retain(|name, _| name == "ping");
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

    // ----- sending -----------------------------------------------------

    pub(crate) fn run_send_hook(&self, kind: OutgoingKind<'_>, frame: &[u8]) -> Result<(), SendError> {
        match &self.inner.options.send_hook {
            Some(hook) => hook(&Outgoing { kind, frame }).map_err(|e| SendError::Refused(e.to_string())),
            None => Ok(()),
        }
    }

    pub(crate) fn frame(&self, buf: Vec<u8>) -> Result<Message, SendError> {
        to_message::<C>(buf)
    }

    /// The write queue of the current connection, if connected.
    pub(crate) fn sender(&self) -> Result<mpsc::Sender<Message>, SendError> {
        let state = self.inner.state.lock().unwrap();
        match (&state.conn, state.connected) {
            (Some(conn), true) => Ok(conn.tx.clone()),
            _ => Err(SendError::Connection),
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
