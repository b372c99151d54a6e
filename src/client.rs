//! [`Client`]: connects, authenticates, and reconnects with backoff.

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::codec::Codec;
use crate::config::{EndpointOptions, OutgoingKind, RetryConfig};
use crate::connection::{drive, Closed};
use crate::endpoint::{to_message, Endpoint, Role, Status};
use crate::error::{ConnectError, SendError};
use crate::events::LocalEvent;
use crate::server::{CLOSE_FORBIDDEN, CLOSE_TIMEOUT, SUBPROTOCOL};

/// Configures a [`Client`].
pub struct ClientBuilder<C: Codec> {
    url: String,
    codec: C,
    options: EndpointOptions,
    auth: Result<Option<Vec<u8>>, String>,
    auto_reconnect: bool,
    retry: RetryConfig,
}

impl<C: Codec> ClientBuilder<C> {
    /// A builder for a client of `url` (`ws://host:port/path`) speaking `codec`.
    pub fn new(url: impl Into<String>, codec: C) -> Self {
        ClientBuilder {
            url: url.into(),
            codec,
            options: EndpointOptions::default(),
            auth: Ok(None),
            auto_reconnect: true,
            retry: RetryConfig::default(),
        }
    }

    /// The auth value sent as the first frame (default `{}`).
    pub fn auth<T: Serialize + ?Sized>(mut self, auth: &T) -> Self {
        let mut buf = Vec::new();
        self.auth = self
            .codec
            .encode_value(auth, &mut buf)
            .map(|()| Some(buf))
            .map_err(|e| format!("the auth value does not encode: {e}"));
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
        let auth = match self.auth.map_err(ConnectError::Config)? {
            Some(auth) => auth,
            None => {
                let mut buf = Vec::new();
                self.codec
                    .encode_value(&serde_json::Map::new(), &mut buf)
                    .map_err(|e| ConnectError::Config(e.to_string()))?;
                buf
            }
        };
        // Reject a bad URL now rather than on every reconnect attempt.
        self.url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Config(format!("bad url `{}`: {e}", self.url)))?;
        let endpoint = Endpoint::new(Arc::new(self.codec), self.options, Role::Client, None);
        Ok(Client {
            alive: Arc::new(Alive(endpoint.downgrade())),
            endpoint,
            shared: Arc::new(Shared {
                url: self.url,
                auth: auth.into(),
                auto_reconnect: self.auto_reconnect,
                retry: self.retry,
                running: watch::channel(false).0,
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

struct Shared {
    url: String,
    auth: Bytes,
    auto_reconnect: bool,
    retry: RetryConfig,
    /// Whether the connect loop runs; false once it stopped for good.
    running: watch::Sender<bool>,
}

/// Marks the connect loop stopped when it ends, however it ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.send_replace(false);
    }
}

/// A ws-messaging client: an [`Endpoint`] (it derefs to one) plus the
/// connect, auth and reconnect logic of PROTOCOL.md §5 and §7.
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
/// A clone is the same client. When the last `Client` handle is dropped,
/// the connection is closed (1000) and the client stops.
pub struct Client<C: Codec> {
    endpoint: Endpoint<C>,
    shared: Arc<Shared>,
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
struct Alive<C: Codec>(crate::endpoint::WeakEndpoint<C>);

impl<C: Codec> Drop for Alive<C> {
    fn drop(&mut self) {
        if let Some(endpoint) = self.0.upgrade() {
            endpoint.close(1000, "");
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
    /// accepts the auth value, or the client stops for good: refused (4003),
    /// closed by the user, or out of reconnect attempts.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        let mut status = self.endpoint.inner.status.subscribe();
        let mut running = self.shared.running.subscribe();
        if self.endpoint.is_connected() {
            return Ok(());
        }
        self.reconnect();
        loop {
            if self.endpoint.is_connected() {
                return Ok(());
            }
            if !*running.borrow_and_update() {
                return Err(self.stop_reason());
            }
            tokio::select! {
                _ = status.changed() => {}
                _ = running.changed() => {}
            }
        }
    }

    /// The server's auth reply of the current connection, decoded.
    pub fn auth_reply<T: DeserializeOwned>(&self) -> Option<T> {
        match &*self.endpoint.inner.status.borrow() {
            Status::Connected { reply } => self.endpoint.decode(reply).ok(),
            _ => None,
        }
    }

    fn stop_reason(&self) -> ConnectError {
        match &*self.endpoint.inner.status.borrow() {
            Status::Closed { code, reason } if *code == CLOSE_FORBIDDEN => ConnectError::Refused {
                code: *code,
                reason: reason.clone(),
            },
            Status::Closed { code, reason } => ConnectError::GaveUp {
                last: format!("closed with {code} {reason}"),
            },
            _ => ConnectError::GaveUp {
                last: "could not connect".into(),
            },
        }
    }

    /// Starts the connect loop if it is not running (after a terminating
    /// close, or after the retries ran out). Does nothing while a connection
    /// is open or being attempted. Returns a handle to watch the loop.
    ///
    /// Must be called within a tokio runtime.
    pub fn reconnect(&self) {
        // Atomically: start only if not running.
        let started = self
            .shared
            .running
            .send_if_modified(|running| !std::mem::replace(running, true));
        if !started {
            return;
        }
        self.endpoint.inner.terminated.store(false, Ordering::SeqCst);
        let running = Running(self.shared.clone());
        let endpoint = self.endpoint.downgrade();
        tokio::spawn(async move {
            supervise(endpoint, &running.0).await;
            drop(running);
        });
    }

    /// Whether the connect loop is running (connected, connecting, or
    /// waiting to retry).
    pub fn is_running(&self) -> bool {
        *self.shared.running.borrow()
    }

    /// Whether the client stopped for good: refused by the server (4003) or
    /// closed by the user. [`reconnect`](Self::reconnect) starts it again.
    pub fn is_terminated(&self) -> bool {
        self.endpoint.inner.terminated.load(Ordering::SeqCst)
    }

    /// Closes the connection for good (no reconnect) with `code` and `reason`.
    pub fn close(&self, code: u16, reason: &str) {
        self.endpoint.close(code, reason);
    }
}

/// Connects, runs the connection, and reconnects with backoff until
/// terminated or out of retries.
async fn supervise<C: Codec>(endpoint: crate::endpoint::WeakEndpoint<C>, shared: &Shared) {
    let mut attempt: u32 = 0;
    loop {
        let Some(ep) = endpoint.upgrade() else { return };
        if attempt > 0 {
            ep.emit(LocalEvent::Retry(attempt));
        }
        let (closed, was_connected) = connect_once(&ep, shared).await;
        if was_connected {
            attempt = 0;
        }
        if closed.code == CLOSE_FORBIDDEN {
            ep.inner.terminated.store(true, Ordering::SeqCst);
        }
        if ep.inner.terminated.load(Ordering::SeqCst) || !shared.auto_reconnect || attempt >= shared.retry.retries {
            return;
        }
        let delay = shared.retry.delay(attempt);
        attempt += 1;
        let mut status = ep.inner.status.subscribe();
        drop(ep);
        // Sleep, but wake at once if the user closes the client meanwhile.
        let _ = tokio::time::timeout(delay, status.wait_for(|_| false)).await;
        match endpoint.upgrade() {
            Some(ep) if !ep.inner.terminated.load(Ordering::SeqCst) => {}
            _ => return,
        }
    }
}

/// One connection attempt, start to end. Returns how it ended and whether
/// it got connected.
async fn connect_once<C: Codec>(endpoint: &Endpoint<C>, shared: &Shared) -> (Closed, bool) {
    let failed = |endpoint: &Endpoint<C>, reason: String| {
        endpoint.emit(LocalEvent::Error(reason.clone()));
        endpoint.emit(LocalEvent::Close {
            code: 1006,
            reason: reason.clone(),
        });
        endpoint.inner.status.send_replace(Status::Closed {
            code: 1006,
            reason: reason.clone(),
        });
        (Closed { code: 1006, reason }, false)
    };
    let mut request = match shared.url.as_str().into_client_request() {
        Ok(request) => request,
        Err(e) => return failed(endpoint, e.to_string()),
    };
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    let options = endpoint.options();
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(options.websocket_config()), true);
    let ws = match tokio::time::timeout(options.ack_timeout, connecting).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return failed(endpoint, e.to_string()),
        Err(_) => return failed(endpoint, "connect timeout".into()),
    };
    endpoint.emit(LocalEvent::Open);
    let link = endpoint.attach();
    let generation = link.generation;
    let auth_sent = send_auth(endpoint, shared, generation);
    if let Err(e) = auth_sent {
        endpoint.emit(LocalEvent::Error(e.to_string()));
        endpoint.close_connection(generation, 1000, "");
    }
    let timer = {
        let endpoint = endpoint.downgrade();
        let timeout = options.ack_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(endpoint) = endpoint.upgrade() {
                endpoint.close_connection(generation, CLOSE_TIMEOUT, "Auth timeout");
            }
        })
    };
    endpoint.add_task(generation, timer.abort_handle());
    let mut connected = endpoint.inner.status.subscribe();
    let was_connected = async move {
        connected
            .wait_for(|s| matches!(s, Status::Connected { .. }))
            .await
            .is_ok()
    };
    let closed = drive(endpoint, link, ws);
    tokio::pin!(was_connected);
    tokio::pin!(closed);
    let mut connected_seen = false;
    let closed = loop {
        tokio::select! {
            closed = &mut closed => break closed,
            ok = &mut was_connected, if !connected_seen => connected_seen = ok,
        }
    };
    (closed, connected_seen)
}

fn send_auth<C: Codec>(endpoint: &Endpoint<C>, shared: &Shared, generation: u64) -> Result<(), SendError> {
    if let Some(hook) = &endpoint.options().send_hook {
        hook(&crate::config::Outgoing {
            kind: OutgoingKind::Auth,
            frame: &shared.auth,
        })
        .map_err(|e| SendError::Refused(e.to_string()))?;
    }
    let message = to_message::<C>(shared.auth.to_vec())?;
    endpoint.push_first(generation, message);
    Ok(())
}
