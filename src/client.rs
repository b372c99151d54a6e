//! [`Client`]: connects, authenticates, and reconnects with backoff.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::buffers::to_message;
use crate::codec::Codec;
use crate::config::{EndpointOptions, OutgoingKind, RetryConfig};
use crate::connection::driver::drive;
use crate::connection::{Closed, Link};
use crate::endpoint::{BoxFuture, ConnectHook, Endpoint, Handlers, Life, Role, StateMap, WeakEndpoint};
use crate::error::{AttemptError, CodecError, ConnectError, HandlerError, SendError, SharedError};
use crate::events::LocalEvent;
use crate::protocol::{CloseCode, SUBPROTOCOL};
use crate::trace::{self, Instrument};
use crate::EncodedMessage;

/// Produces the auth value of each connection attempt (see
/// [`ClientBuilder::auth_with`]).
type AuthProvider<C> = Arc<dyn Fn(Endpoint<C>) -> BoxFuture<Result<Vec<u8>, SharedError>> + Send + Sync>;

/// Configures a [`Client`].
pub struct ClientBuilder<C: Codec> {
    url: String,
    codec: C,
    options: EndpointOptions,
    auth: Result<Option<Vec<u8>>, CodecError>,
    auth_provider: Option<AuthProvider<C>>,
    on_connect: Option<ConnectHook<C>>,
    headers: Vec<(String, String)>,
    subprotocols: Vec<String>,
    connect_timeout: Option<Duration>,
    fail_fast: bool,
    auto_reconnect: bool,
    retry: RetryConfig,
    state: StateMap,
    recovery: bool,
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl<C: Codec> std::fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("auto_reconnect", &self.auto_reconnect)
            .field("retry", &self.retry)
            .field("headers", &self.headers.len())
            .field("subprotocols", &self.subprotocols)
            .field("connect_timeout", &self.connect_timeout)
            .field("fail_fast", &self.fail_fast)
            .field("auth_with", &self.auth_provider.is_some())
            .field("on_connect", &self.on_connect.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Codec> ClientBuilder<C> {
    /// A builder for a client of `url` (`ws://host:port/path`) speaking `codec`.
    pub fn new(url: impl Into<String>, codec: C) -> Self {
        ClientBuilder {
            url: url.into(),
            codec,
            options: EndpointOptions::default(),
            auth: Ok(None),
            auth_provider: None,
            on_connect: None,
            headers: Vec::new(),
            subprotocols: Vec::new(),
            connect_timeout: None,
            fail_fast: false,
            auto_reconnect: true,
            retry: RetryConfig::default(),
            state: StateMap::new(),
            recovery: false,
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }

    /// Asks the server for session recovery (the `ws-messaging.resume.1`
    /// subprotocol, offered before `ws-messaging`; `docs/recovery.md`).
    /// A server that has it on keeps this client's session when its
    /// connection drops, and on reconnect gives back its rooms and id and
    /// replays, in order, the events it missed; the client applies each
    /// event once.
    /// [`Endpoint::session_status`](crate::Endpoint::session_status) says
    /// how the last connection went. A server without it (the JavaScript
    /// one included) is spoken to in the 2.0.0 protocol, as without this
    /// option.
    pub fn recovery(mut self, on: bool) -> Self {
        self.recovery = on;
        self
    }

    /// Application state the client's handlers can take as a
    /// [`State<S>`](crate::State) argument (and [`Endpoint::state`]
    /// returns). One value per type; a second of the same type replaces
    /// the first.
    pub fn state<S: Clone + Send + Sync + 'static>(mut self, value: S) -> Self {
        self.state.insert(std::any::TypeId::of::<S>(), Box::new(value));
        self
    }

    /// The rustls configuration for `wss://` URLs (feature `rustls`): its
    /// root certificates, client certificate and crypto provider are used
    /// for every connection attempt.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # fn f(roots: rustls::RootCertStore) {
    /// let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    /// let builder = ws_messaging::Client::<ws_messaging_json::Json>::builder("wss://example.test/ws")
    ///     .tls_config(Arc::new(tls));
    /// # }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Computes the auth value anew for every connection attempt (a fresh
    /// token after the last one expired): `provider` is called before each
    /// attempt, and the value it returns is sent as the first frame. An
    /// `Err` fails that attempt (retried with backoff like any other).
    /// Replaces [`auth`](Self::auth).
    ///
    /// ```no_run
    /// # use ws_messaging::{Client, HandlerError};
    /// # use ws_messaging_json::Json;
    /// # async fn fresh_token() -> Result<String, HandlerError> { Ok("t".into()) }
    /// # async fn run() -> Result<(), ws_messaging::ConnectError> {
    /// let client = Client::<Json>::builder("ws://127.0.0.1:8000")
    ///     .auth_with(|| async { Ok(serde_json::json!({ "token": fresh_token().await? })) })
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn auth_with<T, F, Fut>(mut self, provider: F) -> Self
    where
        T: Serialize + Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'static,
    {
        self.auth_provider = Some(Arc::new(move |endpoint: Endpoint<C>| {
            let value = provider();
            Box::pin(async move {
                let value = value.await.map_err(SharedError::new)?;
                let mut buf = Vec::new();
                endpoint
                    .codec()
                    .encode_value(&value, &mut buf)
                    .map_err(SharedError::new)?;
                Ok(buf)
            })
        }));
        self
    }

    /// Runs `hook` on every (re)connection, once the server accepted the
    /// auth value and before the client counts as connected:
    /// [`Client::connect`] resolves and [`LocalEvent::Connect`] fires only
    /// after it returns `Ok`. The place to join rooms again, subscribe,
    /// register: the connection is open while it runs, so the hook can
    /// invoke and send. An `Err` closes that connection (1000) and the
    /// client tries again with backoff.
    ///
    /// ```no_run
    /// # use ws_messaging::Client;
    /// # use ws_messaging_json::Json;
    /// # async fn run() -> Result<(), ws_messaging::ConnectError> {
    /// let client = Client::<Json>::builder("ws://127.0.0.1:8000")
    ///     .on_connect(|endpoint| async move {
    ///         let _joined: bool = endpoint.invoke("join", ("lobby",)).await?;
    ///         Ok(())
    ///     })
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_connect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Endpoint<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.on_connect = Some(Arc::new(move |endpoint| Box::pin(hook(endpoint))));
        self
    }

    /// Adds a header to the WebSocket upgrade request (a cookie, an
    /// `Authorization` header, ...). Checked by [`build`](Self::build).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Carries the caller's trace into the server's handlers: before each
    /// invoke, `source` gives its W3C `traceparent` (`None`, or a malformed
    /// one, sends nothing), which the handler reads with
    /// [`traceparent`](crate::traceparent). Negotiated: the client asks
    /// with the upgrade header `ws-messaging-trace: 1`, and sends trace
    /// contexts only to a server that answered it (servers of this crate
    /// do; the JavaScript server does not, and sees no change). Invokes
    /// kept by a recovery session for a later connection carry none.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), ws_messaging::ConnectError> {
    /// use ws_messaging::Client;
    /// use ws_messaging_json::Json;
    /// // From an OpenTelemetry propagator, or, inside a handler, the trace
    /// // of the call being handled:
    /// let client = Client::<Json>::builder("ws://127.0.0.1:8000")
    ///     .trace_context(ws_messaging::traceparent)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn trace_context(mut self, source: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        self.options.trace_context = Some(Arc::new(source));
        self
    }

    /// Subprotocols to offer after `ws-messaging` (always offered first).
    pub fn subprotocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.subprotocols.extend(protocols.into_iter().map(Into::into));
        self
    }

    /// How long opening the WebSocket (TCP, TLS, HTTP upgrade) may take in
    /// each attempt. Default: the `ack_timeout`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// When on, a first connection attempt that fails ends
    /// [`Client::connect`] at once with [`ConnectError::GaveUp`] instead of
    /// retrying (a server that is down is reported in one connect timeout,
    /// not after every retry). Once a connection has been made (since the
    /// client was built), reconnects follow the retry policy as usual,
    /// also after [`Client::reconnect`] or a [`close`](Client::close) and
    /// `reconnect`. Default off.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// The auth value sent as the first frame (default `{}`).
    pub fn auth<T: Serialize + ?Sized>(mut self, auth: &T) -> Self {
        let mut buf = Vec::new();
        self.auth = self.codec.encode_value(auth, &mut buf).map(|()| Some(buf));
        self
    }

    /// Endpoint options (timeouts, hooks, ...).
    pub fn options(mut self, options: EndpointOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes the endpoint options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut EndpointOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// Whether to reconnect after a non-terminating close. Default on.
    pub fn auto_reconnect(mut self, on: bool) -> Self {
        self.auto_reconnect = on;
        self
    }

    /// The reconnect backoff.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the client without connecting: register handlers and
    /// listeners, then call [`Client::connect`].
    pub fn build(self) -> Result<Client<C>, ConnectError> {
        let auth = match self.auth.map_err(ConnectError::Auth)? {
            Some(auth) => auth,
            None => {
                let mut buf = Vec::new();
                self.codec
                    .encode_value(&serde_json::Map::new(), &mut buf)
                    .map_err(ConnectError::Auth)?;
                buf
            }
        };
        // Reject a bad URL or header now rather than on every attempt.
        self.url.as_str().into_client_request().map_err(|e| ConnectError::Url {
            url: self.url.clone(),
            source: SharedError::new(e),
        })?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(SharedError::new)
                .and_then(|n| Ok((n, HeaderValue::from_str(value).map_err(SharedError::new)?)));
            match parsed {
                Ok(header) => headers.push(header),
                Err(source) => {
                    return Err(ConnectError::Header {
                        name: name.clone(),
                        source,
                    })
                }
            }
        }
        let offered = self
            .recovery
            .then_some(crate::protocol::RESUME_SUBPROTOCOL)
            .into_iter()
            .chain(std::iter::once(SUBPROTOCOL))
            .chain(
                self.subprotocols
                    .iter()
                    .map(String::as_str)
                    .filter(|p| *p != SUBPROTOCOL),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let subprotocols = HeaderValue::from_str(&offered).map_err(|e| ConnectError::Header {
            name: "sec-websocket-protocol".into(),
            source: SharedError::new(e),
        })?;
        let connect_timeout = self.connect_timeout.unwrap_or(self.options.ack_timeout);
        let shared = Arc::new(Handlers::with_state(self.state));
        let endpoint = Endpoint::new(Arc::new(self.codec), Arc::new(self.options), Role::Client, None, shared);
        if let Some(hook) = self.on_connect {
            endpoint.set_connect_hook(hook);
        }
        if self.recovery {
            endpoint.life().client.session = Some(Box::default());
        }
        Ok(Client {
            alive: Arc::new(Alive(endpoint.downgrade())),
            endpoint,
            shared: Arc::new(Shared {
                url: self.url,
                auth: auth.into(),
                auth_provider: self.auth_provider,
                headers,
                subprotocols,
                connect_timeout,
                #[cfg(feature = "rustls")]
                tls: self.tls,
                fail_fast: self.fail_fast,
                auto_reconnect: self.auto_reconnect,
                retry: self.retry,
            }),
        })
    }

    /// Builds the client and connects (see [`Client::connect`]).
    pub async fn connect(self) -> Result<Client<C>, ConnectError> {
        let client = self.build()?;
        client.connect().await?;
        Ok(client)
    }
}

struct Shared<C: Codec> {
    url: String,
    auth: Bytes,
    auth_provider: Option<AuthProvider<C>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    subprotocols: HeaderValue,
    connect_timeout: Duration,
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    fail_fast: bool,
    auto_reconnect: bool,
    retry: RetryConfig,
}

/// A ws-messaging client: an [`Endpoint`] (it derefs to one) plus the
/// connect, auth and reconnect logic.
///
/// ```no_run
/// use ws_messaging::Client;
/// use ws_messaging_json::Json;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::<Json>::builder("ws://127.0.0.1:8000")
///     .auth(&serde_json::json!({ "token": "secret" }))
///     .connect()
///     .await?;
/// let sum: f64 = client.invoke("sum", (1, 2, 3.5)).await?;
/// client.on("said", |(text,): (String,)| println!("server said {text}"));
/// client.send("say", ("hello",)).await?;
/// # Ok(()) }
/// ```
///
/// A clone is the same client.
///
/// # While disconnected
///
/// Between connections (the server went away, the client waits to retry),
/// [`send`](Endpoint::send) fails with [`SendError::Connection`] and
/// [`invoke`](Endpoint::invoke) with [`InvokeError::NotConnected`]: nothing
/// was sent. To wait until the client is connected again, await
/// [`connected`](Self::connected) (it does not start connecting).
///
/// # Closing
///
/// [`close`](Self::close) starts the close handshake at once; await it to
/// know the handshake is over (a program that exits right after should).
/// When the last `Client` handle is dropped, the same close starts (1000)
/// and the client stops; dropping it needs no runtime. The handshake then
/// finishes in the background only if the runtime keeps running: a
/// runtime that is shut down right after (returning from `main`) never
/// writes the close frame, and the server sees the connection break
/// (1006).
///
/// [`InvokeError::NotConnected`]: crate::InvokeError::NotConnected
pub struct Client<C: Codec> {
    endpoint: Endpoint<C>,
    shared: Arc<Shared<C>>,
    alive: Arc<Alive<C>>,
}

impl<C: Codec> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            endpoint: self.endpoint.clone(),
            shared: self.shared.clone(),
            alive: self.alive.clone(),
        }
    }
}

/// Held by the user's handles only: its drop closes the client.
struct Alive<C: Codec>(WeakEndpoint<C>);

impl<C: Codec> Drop for Alive<C> {
    fn drop(&mut self) {
        if let Some(endpoint) = self.0.upgrade() {
            endpoint.close(CloseCode::NORMAL, "");
        }
    }
}

impl<C: Codec> std::fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shared.url)
            .field("connected", &self.endpoint.is_connected())
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

impl<C: Codec> Deref for Client<C> {
    type Target = Endpoint<C>;
    fn deref(&self) -> &Endpoint<C> {
        &self.endpoint
    }
}

impl<C: Codec + Default> Client<C> {
    /// A builder with the codec's default settings.
    pub fn builder(url: impl Into<String>) -> ClientBuilder<C> {
        ClientBuilder::new(url, C::default())
    }
}

impl<C: Codec> Client<C> {
    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint<C> {
        &self.endpoint
    }

    /// Starts connecting (if not already running) and waits until the server
    /// accepts the auth value (and the [`on_connect`](ClientBuilder::on_connect)
    /// hook returned), or the client stops for good: refused (4003), closed
    /// by the user, out of reconnect attempts, or a first attempt failed
    /// with [`fail_fast`](ClientBuilder::fail_fast) on.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        if self.endpoint.is_ready() {
            return Ok(());
        }
        self.reconnect();
        self.connected().await
    }

    /// Waits until the client is connected (authenticated and past the
    /// [`on_connect`](ClientBuilder::on_connect) hook), without starting
    /// anything: resolves at once when it is, and when it is reconnecting,
    /// once it is connected again. Fails when the client stops instead
    /// (refused, closed, out of retries, as [`connect`](Self::connect)),
    /// and at once with [`ConnectError::NotStarted`] when it was never
    /// started. Put a [`tokio::time::timeout`] around it for a bound of
    /// your own; without one it waits as long as the retry policy lets
    /// the client try.
    ///
    /// ```no_run
    /// # use ws_messaging::{Client, InvokeError};
    /// # use ws_messaging_json::Json;
    /// # async fn f(client: Client<Json>) -> Result<(), Box<dyn std::error::Error>> {
    /// let sum: f64 = match client.invoke("sum", (1, 2)).await {
    ///     Err(InvokeError::NotConnected) => {
    ///         // Nothing was sent: wait for the connection, then try again.
    ///         client.connected().await?;
    ///         client.invoke("sum", (1, 2)).await?
    ///     }
    ///     other => other?,
    /// };
    /// # Ok(()) }
    /// ```
    pub async fn connected(&self) -> Result<(), ConnectError> {
        self.endpoint
            .wait_life(|life| {
                if life.is_ready() {
                    Some(Ok(()))
                } else if !life.client.running {
                    Some(Err(stop_reason(life)))
                } else {
                    None
                }
            })
            .await
    }

    /// The server's auth reply of the current connection, decoded.
    pub fn auth_reply<T: DeserializeOwned>(&self) -> Option<T> {
        let reply = self.endpoint.life().open_reply()?;
        self.endpoint.decode(&reply).ok()
    }

    /// Starts the connect loop if it is not running (after a terminating
    /// close, or after the retries ran out). If the loop is still running —
    /// a close handshake or a backoff wait under way after [`close`](Self::close)
    /// — it carries on and connects again at once. Does nothing while a
    /// connection is open.
    ///
    /// Must be called within a tokio runtime.
    pub fn reconnect(&self) {
        let start = self.endpoint.update_life(|life| {
            life.set_terminated(false);
            life.client.epoch += 1;
            !std::mem::replace(&mut life.client.running, true)
        });
        if start {
            let guard = RunGuard {
                endpoint: self.endpoint.downgrade(),
                armed: true,
            };
            let shared = self.shared.clone();
            tokio::spawn(run(guard, shared));
        }
    }

    /// Whether the connect loop is running (connected, connecting, or
    /// waiting to retry).
    pub fn is_running(&self) -> bool {
        self.endpoint.life().client.running
    }

    /// Whether the client stopped for good: refused by the server (4003) or
    /// closed by the user. [`reconnect`](Self::reconnect) starts it again.
    pub fn is_terminated(&self) -> bool {
        self.endpoint.life().is_terminated()
    }

    /// Closes the connection for good (no reconnect) with `code` and
    /// `reason`. Works in every state: while connecting (the attempt is
    /// abandoned), while connected (close handshake), while waiting to
    /// retry (the wait ends at once).
    ///
    /// The close starts when this is called, whether or not the returned
    /// future is awaited. Awaiting it waits until the close handshake is
    /// over and the client has stopped (the server saw `code`): at most
    /// 5 s when the server does not answer the close (the connection is
    /// dropped 3 s after the close frame went out). Await it before a
    /// program exits.
    ///
    /// ```no_run
    /// # async fn f(client: ws_messaging::Client<ws_messaging_json::Json>) {
    /// use ws_messaging::CloseCode;
    /// client.close(CloseCode::NORMAL, "bye").await;
    /// # }
    /// ```
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> impl Future<Output = ()> + Send + 'static {
        self.endpoint.close(code, reason);
        let endpoint = self.endpoint.clone();
        async move {
            let stopped = endpoint.wait_life(|life| (!life.client.running).then_some(()));
            let _ = tokio::time::timeout(CLOSE_WAIT, stopped).await;
        }
    }
}

/// The longest [`Client::close`] waits for the close handshake (the
/// connection's own task gives its peer 3 s to answer the close frame).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

fn stop_reason(life: &Life) -> ConnectError {
    match life.last_close() {
        Some(AttemptError::Closed { code, reason }) if !CloseCode::from(*code).reconnects() => ConnectError::Refused {
            code: *code,
            reason: reason.clone(),
        },
        _ if life.is_terminated() => ConnectError::Closed,
        Some(last) => ConnectError::GaveUp { last: last.clone() },
        // `reconnect()` bumps the epoch: never called.
        None if life.client.epoch == 0 => ConnectError::NotStarted,
        None => ConnectError::GaveUp {
            last: AttemptError::Closed {
                code: CloseCode::ABNORMAL.0,
                reason: String::new(),
            },
        },
    }
}

/// Marks the connect loop stopped if its task ends abnormally (a panic, a
/// runtime shut down); a normal stop disarms it.
struct RunGuard<C: Codec> {
    endpoint: WeakEndpoint<C>,
    armed: bool,
}

impl<C: Codec> Drop for RunGuard<C> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(endpoint) = self.endpoint.upgrade() {
            endpoint.update_life(|life| life.client.running = false);
        }
    }
}

/// The client's own connection state, kept in the endpoint's [`Life`]
/// (one lock, and its waiters wake on every change) but read and changed
/// by this module only.
#[derive(Debug, Default)]
pub(crate) struct ClientLife {
    /// Whether the connect loop is running.
    running: bool,
    /// Bumped by [`Client::reconnect`], so a running loop starts afresh;
    /// 0 until the client is first started.
    epoch: u64,
    /// A connection was made at least once since the client was built:
    /// from then on `fail_fast` no longer applies.
    connected_once: bool,
    /// With recovery asked for: the session, kept across connections.
    pub(crate) session: Option<Box<crate::recovery::client::ClientSession>>,
}

/// What the connect loop does after an attempt.
enum Next {
    /// [`Client::reconnect`] asked for a fresh start: attempt again at
    /// once, counting from zero.
    Restart,
    /// Wait this long (zero included), then make the next attempt, which
    /// counts as a retry.
    Wait(Duration),
    /// Closed, refused, or out of retries.
    Stop,
}

/// Connects, runs the connection, and reconnects with backoff until
/// closed, refused or out of retries.
async fn run<C: Codec>(mut guard: RunGuard<C>, shared: Arc<Shared<C>>) {
    let weak = guard.endpoint.clone();
    let mut attempt: u32 = 0;
    let mut epoch = None;
    loop {
        let Some(endpoint) = weak.upgrade() else { return };
        let go = endpoint.update_life(|life| {
            if life.is_terminated() {
                life.client.running = false;
                return false;
            }
            if epoch != Some(life.client.epoch) {
                epoch = Some(life.client.epoch);
                attempt = 0;
            }
            true
        });
        if !go {
            guard.armed = false;
            return;
        }
        if attempt > 0 {
            endpoint.emit(LocalEvent::Retry(attempt));
        }
        let (closed, was_open) = connect_once(&endpoint, &shared)
            .await
            .unwrap_or((Closed::new(CloseCode::NORMAL, ""), false));
        if was_open {
            attempt = 0;
        }
        let next = endpoint.update_life(|life| {
            if was_open {
                life.client.connected_once = true;
            }
            if epoch != Some(life.client.epoch) {
                return Next::Restart;
            }
            // The one rule of what a close means for a client.
            if !CloseCode::from(closed.code).reconnects() {
                life.set_terminated(true);
            }
            // `fail_fast` is for a client that never connected: one that
            // did (before a `reconnect()` too) follows the retry policy.
            let given_up = shared.fail_fast && !life.client.connected_once;
            let terminated = life.is_terminated();
            if terminated || !shared.auto_reconnect || attempt >= shared.retry.retries || given_up {
                if !terminated {
                    trace::info!(url = %shared.url, attempts = attempt + 1, "gave up connecting");
                }
                life.client.running = false;
                return Next::Stop;
            }
            Next::Wait(shared.retry.delay(attempt))
        });
        match next {
            Next::Restart => continue,
            Next::Stop => {
                guard.armed = false;
                return;
            }
            Next::Wait(delay) => {
                attempt += 1;
                // Wait, but wake at once if the client is closed or restarted.
                let interrupted =
                    endpoint.wait_life(|life| (life.is_terminated() || epoch != Some(life.client.epoch)).then_some(()));
                let _ = tokio::time::timeout(delay, interrupted).await;
            }
        }
    }
}

/// One connection attempt, start to end. Returns how it ended and whether
/// it was authenticated; `None` when the client was closed before a
/// connection was set up.
async fn connect_once<C: Codec>(endpoint: &Endpoint<C>, shared: &Shared<C>) -> Option<(Closed, bool)> {
    let failed = |error: AttemptError| {
        let reason = error.to_string();
        endpoint.emit(LocalEvent::Error(reason.clone()));
        endpoint.update_life(|life| life.set_last_close(error));
        endpoint.emit(LocalEvent::Close {
            code: CloseCode::ABNORMAL.0,
            reason: reason.clone(),
        });
        Some((Closed::new(CloseCode::ABNORMAL, reason), false))
    };
    // The auth value of this attempt, before any socket is opened.
    let auth = match &shared.auth_provider {
        None => shared.auth.clone(),
        Some(provider) => {
            let closed_meanwhile = endpoint.wait_life(|life| life.is_terminated().then_some(()));
            tokio::select! {
                auth = tokio::time::timeout(shared.connect_timeout, provider(endpoint.clone())) => match auth {
                    Ok(Ok(auth)) => Bytes::from(auth),
                    Ok(Err(e)) => return failed(AttemptError::Auth(e)),
                    Err(_) => return failed(AttemptError::Auth(SharedError::new(format!(
                        "the auth provider did not answer within {:?}",
                        shared.connect_timeout
                    )))),
                },
                () = closed_meanwhile => return None,
            }
        }
    };
    let mut request = match shared.url.as_str().into_client_request() {
        Ok(request) => request,
        Err(e) => return failed(AttemptError::Open(SharedError::new(e))),
    };
    for (name, value) in &shared.headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    if endpoint.options().trace_context.is_some() {
        request
            .headers_mut()
            .insert(crate::tracecontext::HEADER, HeaderValue::from_static("1"));
    }
    request
        .headers_mut()
        .insert("sec-websocket-protocol", shared.subprotocols.clone());
    let options = endpoint.options();
    #[cfg(feature = "rustls")]
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(options.websocket_config()),
        true,
        shared.tls.clone().map(tokio_tungstenite::Connector::Rustls),
    );
    #[cfg(not(feature = "rustls"))]
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(options.websocket_config()), true);
    let closed_meanwhile = endpoint.wait_life(|life| life.is_terminated().then_some(()));
    let (ws, response) = tokio::select! {
        connected = tokio::time::timeout(shared.connect_timeout, connecting) => match connected {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(e)) => return failed(AttemptError::Open(SharedError::new(e))),
            Err(_) => return failed(AttemptError::OpenTimeout(shared.connect_timeout)),
        },
        () = closed_meanwhile => return None,
    };
    endpoint.emit(LocalEvent::Open);
    let Some(link) = endpoint.attach() else {
        // Closed while the socket was being set up: end it politely.
        let mut ws = ws;
        let _ = tokio::time::timeout(Duration::from_secs(1), futures_util::SinkExt::close(&mut ws)).await;
        return None;
    };
    let resumable = response
        .headers()
        .get("sec-websocket-protocol")
        .is_some_and(|p| p.as_bytes() == crate::protocol::RESUME_SUBPROTOCOL.as_bytes());
    if let Some(session) = endpoint.life().client.session.as_mut() {
        session.active = resumable;
    }
    if endpoint.options().trace_context.is_some() && response.headers().contains_key(crate::tracecontext::HEADER) {
        link.set_traced();
    }
    if let Err(e) = send_auth(endpoint, &auth, &link) {
        endpoint.emit(LocalEvent::Error(e.to_string()));
        link.close(CloseCode::NORMAL, "", false);
    } else if resumable {
        // The extension's second frame: the session to resume, if any.
        link.set_resumable();
        let args = endpoint
            .life()
            .client
            .session
            .as_ref()
            .map(|s| s.resume_args())
            .unwrap_or_default();
        match EncodedMessage::encode(endpoint.codec(), crate::recovery::RESUME, args) {
            Ok(resume) => {
                link.push_first(resume.0);
            }
            Err(e) => {
                endpoint.emit(LocalEvent::Error(e.to_string()));
                link.close(CloseCode::NORMAL, "", false);
            }
        }
    }
    let span = trace::debug_span!("ws_messaging.connection", url = %shared.url);
    let (closed, _) = drive(
        endpoint,
        &link,
        ws,
        endpoint.connection_settings(Some(options.ack_timeout)),
    )
    .instrument(span)
    .await;
    endpoint.detach(&link, &closed);
    Some((closed, link.was_open()))
}

fn send_auth<C: Codec>(endpoint: &Endpoint<C>, auth: &Bytes, link: &Link) -> Result<(), SendError> {
    if let Some(hook) = &endpoint.options().send_hook {
        hook(&crate::config::Outgoing {
            kind: OutgoingKind::Auth,
            frame: auth,
        })
        .map_err(SendError::Refused)?;
    }
    let message = to_message::<C>(auth.to_vec())?;
    link.push_first(message);
    Ok(())
}
