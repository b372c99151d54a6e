//! Request-reply on an [`Endpoint`]: procedures, invokes and their replies.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::buffers::scratch;
use crate::codec::Codec;
use crate::config::OutgoingKind;
use crate::connection::Link;
use crate::endpoint::{encode_event, message_bytes, Endpoint, Handler, Procedure};
use crate::error::{CodecError, HandlerError, InvokeError, RegisterError, SendError};
use crate::events::LocalEvent;
use crate::trace;
use crate::wire::{check_name, AsSeq};
use crate::{Args, FromArgs, RawValue};

impl<C: Codec> Endpoint<C> {
    /// Registers the procedure `name` on this connection (one handler per
    /// name). The handler gets the call's arguments decoded into its last
    /// parameter's type (any [`FromArgs`]: a tuple, a `Vec`, `RawArgs`),
    /// after what it takes from the connection
    /// ([`FromEndpoint`](crate::FromEndpoint): this [`Endpoint`], a
    /// [`State`](crate::State), the server), and returns the result, or a
    /// [`HandlerError`] that goes to the caller through the error
    /// formatter. Handlers run concurrently, each in its own task (one
    /// that finishes without waiting is answered inline). At most
    /// `max_concurrent_calls` run per connection; a call past that is
    /// answered at once with a `BusyError`, and the connection keeps
    /// being read. The reply goes out on the connection the call came in
    /// on; if that connection is gone by then, the reply is dropped.
    ///
    /// On a server, [`Server::register`](crate::Server::register)
    /// registers a procedure once for every connection, which costs the
    /// connections nothing; a connection's own procedure of the same name
    /// is called instead of it.
    ///
    /// ```
    /// # fn f(endpoint: ws_messaging::Endpoint<ws_messaging_json::Json>) {
    /// use ws_messaging::Endpoint;
    /// use ws_messaging_json::Json;
    ///
    /// endpoint
    ///     .register("sum", |numbers: Vec<f64>| async move { Ok(numbers.iter().fold(0.0, |a, b| a + b)) })
    ///     .unwrap();
    /// // The connection as an argument: nothing captured.
    /// endpoint
    ///     .register("whoami", |me: Endpoint<Json>, (): ()| async move { Ok(me.id().map(str::to_owned)) })
    ///     .unwrap();
    /// # }
    /// ```
    pub fn register<M, H: Handler<C, M>>(&self, name: &str, handler: H) -> Result<(), RegisterError> {
        check_name(name).map_err(RegisterError::ReservedName)?;
        let mut map = self.procedures().write().unwrap();
        if map.contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        map.insert(name.to_string(), procedure(name, handler));
        Ok(())
    }

    /// Removes this connection's procedure `name`; returns whether it was
    /// registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.procedures().write().unwrap().remove(name).is_some()
    }

    /// The procedure a call of `name` runs: this connection's own, else the
    /// one registered for every connection of its server.
    pub(crate) fn procedure(&self, name: &str) -> Option<Procedure<C>> {
        if let Some(own) = self.procedures().read().unwrap().get(name) {
            return Some(own.clone());
        }
        self.shared().procedures.read().unwrap().get(name).cloned()
    }

    pub(crate) fn encode_reply<T: Serialize + ?Sized>(
        &self,
        id: u64,
        result: Result<&T, &serde_json::Value>,
    ) -> Result<Message, SendError> {
        self.reply_frame(id, |codec, buf| codec.encode_reply(id, result, buf))
    }

    /// The reply whose result is already encoded (a [`RawValue`]).
    fn encode_raw_reply(&self, id: u64, raw: &RawValue) -> Result<Message, SendError> {
        self.reply_frame(id, |codec, buf| codec.encode_raw_reply(id, &raw.0, buf))
    }

    /// Encodes a reply with `encode`; when that fails, the caller gets an
    /// error reply saying so.
    fn reply_frame(
        &self,
        id: u64,
        encode: impl FnOnce(&C, &mut Vec<u8>) -> Result<(), CodecError>,
    ) -> Result<Message, SendError> {
        let mut buf = scratch();
        match encode(self.codec(), &mut buf) {
            Ok(()) => self.frame(buf),
            Err(e) => {
                let error = HandlerError::new(format!("could not encode the result: {e}"));
                let value = (self.options().error_formatter)(&error);
                buf.clear();
                self.codec()
                    .encode_reply::<()>(id, Err(&value), &mut buf)
                    .map_err(SendError::Encode)?;
                self.frame(buf)
            }
        }
    }

    pub(crate) fn encode_error_reply(&self, id: u64, error: &HandlerError) -> Result<Message, SendError> {
        let value = (self.options().error_formatter)(error);
        self.encode_reply::<()>(id, Err(&value))
    }

    /// Queues a reply on the connection its call came in on; dropped if
    /// that connection is gone.
    pub(crate) fn send_reply(&self, link: &Link, id: u64, reply: Result<Message, SendError>) {
        let sent = reply.and_then(|message| {
            self.run_send_hook(OutgoingKind::Reply { id }, message_bytes(&message))?;
            if link.resumable() && self.role() == super::Role::Server {
                // Kept for the session; on its newer connection too.
                let replies = self.life().replies.clone();
                if let Some(replies) = replies {
                    let message = crate::connection::detach(message);
                    let current = replies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .keep(id, &message, link);
                    if let Some(current) = current {
                        let _ = current.push_now(message.clone());
                    }
                    return self.push_cut_now(link, message);
                }
            }
            self.push_cut_now(link, message)
        });
        match sent {
            Ok(()) | Err(SendError::Connection | SendError::SlowConsumer) => {}
            Err(e) => {
                trace::warn!(id, error = %e, "reply not sent");
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
        self.invoke_with_timeout(name, args, self.options().ack_timeout).await
    }

    /// [`invoke`](Self::invoke) with its own timeout.
    pub async fn invoke_with_timeout<A: Args, R: DeserializeOwned>(
        &self,
        name: &str,
        args: A,
        timeout: Duration,
    ) -> Result<R, InvokeError> {
        check_name(name).map_err(|name| InvokeError::Send(SendError::ReservedName(name)))?;
        let raw = self.invoke_raw(name, &args, timeout).await?;
        // The result is a slice of the reply's frame, checked by the
        // codec's envelope reader.
        self.codec().decode_enveloped(&raw).map_err(InvokeError::Decode)
    }

    /// Invokes and returns the result still encoded (or the remote error).
    pub(crate) async fn invoke_raw<A: Args + ?Sized>(
        &self,
        name: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<Bytes, InvokeError> {
        let id = self.next_id();
        let mut buf = scratch();
        self.codec()
            .encode_message(name, &AsSeq(args), Some(id), &mut buf)
            .map_err(|e| InvokeError::Send(SendError::Encode(e)))?;
        self.run_send_hook(OutgoingKind::Message { name, id: Some(id) }, &buf)
            .map_err(|e| InvokeError::from_send(e, Some(id)))?;
        let message = self.frame(buf).map_err(|e| InvokeError::from_send(e, Some(id)))?;
        if let Some(kept) = self.invoke_kept(name, id, message.clone(), timeout).await {
            return kept;
        }
        let link = self.open_link().map_err(|e| InvokeError::from_send(e, Some(id)))?;
        // The reply is waited for in the link's pending map (no channel per
        // invoke); the guard removes the entry however this ends, unless
        // taking the outcome removed it already.
        let mut guard = PendingGuard {
            link: &link,
            id,
            armed: true,
        };
        if link.traces().is_some() {
            self.send_trace(&link, id);
        }
        let wait = async {
            // Refused only when the link is no longer open: nothing was queued.
            link.push_wait(message, Some(id), true)
                .await
                .map_err(|_| InvokeError::NotConnected)?;
            let settled = std::future::poll_fn(|cx| link.poll_settled(id, cx)).await;
            guard.armed = false;
            match settled {
                Ok(outcome) => Ok(outcome),
                Err(()) => Err(InvokeError::Connection { id: Some(id) }),
            }
        };
        #[cfg(feature = "tracing")]
        let started = trace::debug_clock();
        let clock = crate::meter::Clock::start();
        let outcome = match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(InvokeError::Timeout { id }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => Err(InvokeError::remote(
                name,
                self.codec().decode_error(&error).map_err(InvokeError::Decode)?,
            )),
        };
        #[cfg(feature = "tracing")]
        match &outcome {
            Ok(_) => trace::debug!(name, id, elapsed = ?trace::since(started), "invoke answered"),
            Err(error) => trace::debug!(name, id, %error, elapsed = ?trace::since(started), "invoke failed"),
        }
        let counted = match &outcome {
            Ok(_) => "ok",
            Err(InvokeError::Timeout { .. }) => "timeout",
            Err(InvokeError::Connection { .. }) => "connection",
            Err(InvokeError::NotConnected) => "not_sent",
            Err(_) => "error",
        };
        crate::meter::invoke(name, counted, clock);
        outcome
    }
}

impl<C: Codec> Endpoint<C> {
    /// Sends the trace context of the invoke `id` (a connection that
    /// negotiated the extension, a client with a source of it): the
    /// `wsm.trace` event, queued before the invoke.
    fn send_trace(&self, link: &Link, id: u64) {
        let Some(source) = &self.options().trace_context else {
            return;
        };
        let Some(traceparent) = source().filter(|tp| crate::tracecontext::valid(tp)) else {
            return;
        };
        if let Ok(event) = encode_event(self.codec(), crate::tracecontext::EVENT, &(id.to_string(), traceparent)) {
            let _ = self.push_now(link, event.0);
        }
    }
}

impl<C: Codec> Endpoint<C> {
    /// An invoke of a client's recovery session: numbered and kept with
    /// its events, waited for in the session, across connections, until
    /// its timeout. `None` without such a session (or on a connection
    /// that did not negotiate the extension).
    async fn invoke_kept(
        &self,
        name: &str,
        id: u64,
        message: Message,
        timeout: Duration,
    ) -> Option<Result<Bytes, InvokeError>> {
        if self.role() != super::Role::Client {
            return None;
        }
        let reply = {
            let mut life = self.life();
            if life
                .link()
                .is_some_and(|l| l.phase() == crate::connection::Phase::Open && !l.resumable())
            {
                return None;
            }
            let session = life.client.session.as_mut().filter(|s| s.keeps())?;
            let message = crate::connection::detach(message);
            if !session.keep(&message) {
                return Some(Err(InvokeError::Send(SendError::Backlog)));
            }
            let reply = session.wait(id);
            self.queue_kept(&mut life);
            reply
        };
        Some(match tokio::time::timeout(timeout, reply).await {
            Err(_) => {
                if let Some(session) = self.life().client.session.as_mut() {
                    session.forget(id);
                }
                Err(InvokeError::Timeout { id })
            }
            Ok(Err(_)) => Err(InvokeError::Connection { id: Some(id) }),
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => self
                .codec()
                .decode_error(&error)
                .map_err(InvokeError::Decode)
                .and_then(|error| Err(InvokeError::remote(name, error))),
        })
    }
}

/// `handler` as the endpoint's procedure type: decodes the arguments,
/// takes what the handler takes from the connection, runs it (a panic is
/// answered as an error) and queues the reply on the call's connection.
pub(crate) fn procedure<C: Codec, M, H: Handler<C, M>>(name: &str, handler: H) -> Procedure<C> {
    // The handler and its counters, shared by its calls (one clone each).
    let procedure = Arc::new((handler, crate::meter::Calls::of(name)));
    Arc::new(move |endpoint: Endpoint<C>, link: Arc<Link>, id, args| {
        let procedure = procedure.clone();
        Box::pin(async move {
            let (handler, calls) = &*procedure;
            let clock = crate::meter::Clock::start();
            #[cfg(feature = "tracing")]
            let started = trace::debug_clock();
            let outcome = match H::Args::from_args(endpoint.codec(), args) {
                Ok(args) => match handler.call(&endpoint, args) {
                    Ok(call) => {
                        // A panicking handler still answers, with an error.
                        match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(call)).await {
                            Ok(outcome) => outcome,
                            Err(_) => {
                                trace::warn!("the procedure panicked: answered with an error");
                                Err(HandlerError::new("the handler panicked"))
                            }
                        }
                    }
                    Err(error) => Err(error),
                },
                Err(e) => Err(HandlerError::named("TypeError", format!("invalid arguments: {e}"))),
            };
            let reply = match &outcome {
                Ok(result) => match (result as &dyn Any).downcast_ref::<RawValue>() {
                    Some(raw) => endpoint.encode_raw_reply(id, raw),
                    None => endpoint.encode_reply(id, Ok(result)),
                },
                Err(error) => endpoint.encode_error_reply(id, error),
            };
            #[cfg(feature = "tracing")]
            match &outcome {
                Ok(_) => trace::debug!(elapsed = ?trace::since(started), "call answered"),
                Err(error) => trace::debug!(%error, elapsed = ?trace::since(started), "call failed"),
            }
            calls.answered(outcome.is_ok(), clock);
            endpoint.send_reply(&link, id, reply);
        })
    })
}

/// Removes a pending invoke when its future ends or is dropped (a
/// timeout, a caller that gave up), whatever the entry's state; disarmed
/// once the outcome was taken, which removed the entry.
struct PendingGuard<'a> {
    link: &'a Link,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.link.forget(self.id);
        }
    }
}
