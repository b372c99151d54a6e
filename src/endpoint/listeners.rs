//! Event listeners (`on`, `once`, `off`) and local events (`events()`,
//! and listeners of the reserved names).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use super::handler::{erase, spawning, AsyncListener, Entry, Listener, ListenerFn};
use super::{ByName, Endpoint};
use crate::codec::Codec;
use crate::envelope::ArgList;
use crate::events::LocalEvent;
use crate::trace;

/// Adds `entry` to the listeners of `name` in `map`.
pub(crate) fn add_entry<C: Codec>(map: &mut ByName<Arc<Vec<Entry<C>>>>, name: &str, entry: Entry<C>) {
    let list = map.entry(name.to_string()).or_default();
    let mut next = (**list).clone();
    next.push(entry);
    *list = Arc::new(next);
}

/// Removes the listener `id` of `name` from `map`; whether it was there.
pub(crate) fn remove_entry<C: Codec>(map: &mut ByName<Arc<Vec<Entry<C>>>>, name: &str, id: ListenerId) -> bool {
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

/// Identifies a listener added with [`Endpoint::on`], to remove it with
/// [`Endpoint::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) u64);
impl<C: Codec> Endpoint<C> {
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
        if !self.inner.listeners.read().unwrap().contains_key(name)
            && !self.shared().listeners.read().unwrap().contains_key(name)
        {
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
        self.call_listeners(name, args.into());
    }

    // ----- events ------------------------------------------------------

    /// Adds a listener for the event `name` on this connection; many
    /// listeners may listen to one name. The listener gets the event's
    /// arguments decoded into its last parameter's type (a tuple, a `Vec`,
    /// or [`RawArgs`](crate::RawArgs)), after what it takes from the
    /// connection ([`FromEndpoint`](crate::FromEndpoint): this
    /// [`Endpoint`], a [`State`](crate::State), the server). Arguments
    /// that do not decode are reported as a local [`LocalEvent::Error`].
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
    /// short, or use [`on_async`](Self::on_async). On a server,
    /// [`Server::on`](crate::Server::on) adds a listener once for every
    /// connection (called before the connection's own).
    pub fn on<M, L: Listener<C, M>>(&self, name: &str, listener: L) -> ListenerId {
        self.add_listener(name, erase(listener), false)
    }

    /// An asynchronous listener: each event's arguments are decoded on the
    /// connection's task, then `listener`'s future runs in a task of its
    /// own, so it may wait (send, invoke, query a database) without holding
    /// up the connection. Futures of successive events run concurrently:
    /// use [`on`](Self::on) with your own queue where order matters.
    ///
    /// ```
    /// # fn f(endpoint: ws_messaging::Endpoint<ws_messaging_json::Json>) {
    /// use ws_messaging::Endpoint;
    /// use ws_messaging_json::Json;
    ///
    /// endpoint.on_async("say", |me: Endpoint<Json>, (text,): (String,)| async move {
    ///     let _ = me.send("said", (text,)).await;
    /// });
    /// # }
    /// ```
    pub fn on_async<M, L: AsyncListener<C, M>>(&self, name: &str, listener: L) -> ListenerId {
        self.add_listener(name, spawning(listener), false)
    }

    /// Like [`on`](Self::on), but the listener is removed after its first call.
    pub fn once<M, L: Listener<C, M>>(&self, name: &str, listener: L) -> ListenerId {
        self.add_listener(name, erase(listener), true)
    }

    fn add_listener(&self, name: &str, call: ListenerFn<C>, once: bool) -> ListenerId {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        add_entry(
            &mut self.inner.listeners.write().unwrap(),
            name,
            Entry { id, once, call },
        );
        ListenerId(id)
    }

    /// Removes one listener; returns whether it was there.
    pub fn off(&self, name: &str, id: ListenerId) -> bool {
        remove_entry(&mut self.inner.listeners.write().unwrap(), name, id)
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
    pub(crate) fn call_listeners(&self, name: &str, args: ArgList) {
        // The server's listeners (for every connection), then this
        // connection's own.
        let shared = self.shared().listeners.read().unwrap().get(name).cloned();
        let own = self.inner.listeners.read().unwrap().get(name).cloned();
        let all = shared.iter().chain(own.iter()).flat_map(|list| list.iter());
        let count = shared.as_ref().map_or(0, |l| l.len()) + own.as_ref().map_or(0, |l| l.len());
        if count == 0 {
            trace::debug!(event = name, "event with no listener: dropped");
            return;
        }
        let mut args = Some(args);
        for (i, listener) in all.enumerate() {
            if listener.once && !self.off(name, ListenerId(listener.id)) {
                continue; // another reader already fired it
            }
            // The last listener takes the arguments; earlier ones get copies.
            let args = if i + 1 == count {
                args.take().unwrap_or_default()
            } else {
                args.clone().unwrap_or_default()
            };
            let call = || (listener.call)(self, args);
            let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("listener of `{name}`: {e}"),
                Err(_) => format!("listener of `{name}` panicked"),
            };
            trace::warn!(event = name, "{failure}");
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
}
/// Encodes one local event argument for listeners of a reserved name.
fn encode_arg<C: Codec, T: Serialize + ?Sized>(codec: &C, value: &T) -> Bytes {
    let mut buf = Vec::new();
    match codec.encode_value(value, &mut buf) {
        Ok(()) => buf.into(),
        Err(_) => Bytes::new(),
    }
}
