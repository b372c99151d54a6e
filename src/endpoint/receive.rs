//! The receive path: decode → validate → receive hook → dispatch (see
//! [protocol § Validation](crate::protocol#validation) and
//! [protocol § Dispatch](crate::protocol#dispatch)). It runs on the
//! connection's task and never waits: replies are queued, handlers that
//! need to wait continue in tasks of their own.

use std::sync::Arc;
use std::task::{Context, Waker};

use bytes::Bytes;

use crate::codec::Codec;
use crate::config::OutgoingKind;
use crate::connection::{Link, Phase};
use crate::endpoint::{encode_event, Endpoint, Role};
use crate::envelope::{validate, Frame};
use crate::error::{HandlerError, PreprocessError};
use crate::events::LocalEvent;
use crate::limits::Verdict;
use crate::protocol::CloseCode;
use crate::trace::{self, Instrument};
use crate::wire::LOCAL_ONLY;

impl<C: Codec> Endpoint<C> {
    /// Handles one incoming data frame of connection `link`.
    /// `text`: the frame came in a text frame, whose UTF-8 the WebSocket
    /// layer has checked already.
    pub(crate) fn receive(&self, link: &Arc<Link>, data: Bytes, text: bool) {
        match self.preprocess(link, &data, text) {
            Ok(frame) => {
                if let Frame::Message { name, id, .. } = &frame {
                    // The heartbeat is never limited.
                    if name.as_str() != "ping" && !self.admitted(link, name, *id, data.len()) {
                        return;
                    }
                }
                self.dispatch(link, frame);
            }
            Err(error) => {
                // Refused frames count against the limit too.
                if link.admit("", data.len()) == Verdict::Close {
                    self.close_flooding(link);
                    return;
                }
                self.report_preprocessing_error(link, &error);
            }
        }
    }

    /// Whether the frame named `name` (a call when `id`) is within the
    /// connection's rate limit; a refused call is answered with
    /// `RateLimitError`, a refused event reported with
    /// `preprocessingError`, a flood closed with 1008.
    fn admitted(&self, link: &Arc<Link>, name: &str, id: Option<u64>, len: usize) -> bool {
        let verdict = link.admit(name, len);
        if verdict == Verdict::Pass {
            return true;
        }
        // A recovery session's client numbers what it sends: a refused
        // frame still counts as received (it is not sent again).
        if link.resumable() && !name.starts_with("wsm.") {
            let _ = self.count_event(link);
        }
        crate::meter::rate_limited(if id.is_some() { "call" } else { "event" });
        if verdict == Verdict::Close {
            self.close_flooding(link);
            return false;
        }
        trace::debug!(name = %name, ?id, "frame over the connection's rate limit: refused");
        match id {
            Some(id) => {
                let reply = self.encode_error_reply(id, &HandlerError::rate_limited());
                self.send_reply(link, id, reply);
            }
            None => self.report_preprocessing_error(link, &HandlerError::rate_limited()),
        }
        false
    }

    fn close_flooding(&self, link: &Link) {
        trace::info!("a client flooded past its rate limit: closed (1008)");
        // After what is queued: the client gets the refusals first.
        link.close(CloseCode::POLICY_VIOLATION, "Rate limit exceeded", false);
    }

    fn preprocess(&self, link: &Link, data: &Bytes, text: bool) -> Result<Frame, HandlerError> {
        let codec = self.codec();
        let raw = if text {
            codec.decode_text_envelope(data)
        } else {
            codec.decode_envelope(data)
        };
        let raw = raw.map_err(|e| HandlerError::from(PreprocessError::Decode(e)))?;
        let frame = validate(raw, !self.options().skip_validation)?;
        codec
            .check(&frame)
            .map_err(|e| HandlerError::from(PreprocessError::Check(e)))?;
        if let Some(hook) = &self.options().receive_hook {
            if !self.recovery_frame(link, &frame) {
                hook(&frame)?;
            }
        }
        Ok(frame)
    }

    fn report_preprocessing_error(&self, link: &Link, error: &HandlerError) {
        trace::warn!(%error, "frame refused before dispatch (preprocessingError)");
        let value = (self.options().error_formatter)(error);
        let name = "preprocessingError";
        let Ok(message) = encode_event(self.codec(), name, &(value,)) else {
            return;
        };
        if self
            .run_send_hook(OutgoingKind::Message { name, id: None }, message.as_bytes())
            .is_ok()
        {
            // Like the JavaScript package: only a connected side reports it.
            let _ = self.push_now(link, message.0);
        }
    }

    fn dispatch(&self, link: &Arc<Link>, frame: Frame) {
        // A session taken over by a newer connection: nothing more here.
        if link.resumable() && link.taken_over() {
            return;
        }
        let (name, args, id) = match frame {
            Frame::Reply { id, outcome } => {
                // A recovery session's invoke waits in the session.
                let outcome = if self.role() == Role::Client && link.resumable() {
                    let mut life = self.life();
                    match life.client.session.as_mut() {
                        Some(session) => match session.answer(id, outcome) {
                            None => return,
                            Some(outcome) => outcome,
                        },
                        None => outcome,
                    }
                } else {
                    outcome
                };
                link.settle(id, outcome);
                return;
            }
            Frame::Message { name, args, id } => (name, args, id),
        };
        if LOCAL_ONLY.contains(&name.as_str()) {
            return;
        }
        if name == "connect" {
            if self.role() == Role::Client && link.phase() == Phase::Authenticating {
                let reply = match args.into_iter().next() {
                    Some(reply) => reply,
                    None => null_value(self.codec()),
                };
                self.set_connected(link, reply);
                if link.resumable() {
                    // What the session kept goes first.
                    let mut life = self.life();
                    self.queue_kept(&mut life);
                }
            }
            return;
        }
        let Some(id) = id else {
            if name.as_str() == crate::tracecontext::EVENT && self.role() == Role::Server {
                if let Some(traces) = link.traces() {
                    let args: Vec<String> = args
                        .iter()
                        .filter_map(|arg| self.codec().decode_value::<String>(arg).ok())
                        .collect();
                    if let [call, traceparent] = &args[..] {
                        if let Ok(call) = call.parse() {
                            traces.put(call, traceparent);
                        }
                    }
                    return;
                }
            }
            if link.resumable() {
                match self.role() {
                    Role::Client => {
                        self.receive_recoverable(&name, args);
                        return;
                    }
                    Role::Server => {
                        if name.as_str().starts_with("wsm.") {
                            return;
                        }
                        // What a client's application sends (the runtime's
                        // own reports are not numbered).
                        if !crate::protocol::RUNTIME_NAMES.contains(&name.as_str()) && !self.count_event(link) {
                            return;
                        }
                    }
                }
            }
            self.apply_event(&name, args);
            return;
        };
        if name == "ping" {
            // Every endpoint answers the peer's heartbeat with `null`.
            let reply = self.encode_reply(id, Ok(&()));
            self.send_reply(link, id, reply);
            return;
        }
        // A recovery session's client numbers its invokes with its events.
        if link.resumable() && self.role() == Role::Server && !self.count_event(link) {
            return;
        }
        let Some(procedure) = self.procedure(&name) else {
            trace::debug!(name = %name, id, "call of a procedure that is not registered: answered NoProcedureError");
            let reply = self.encode_error_reply(id, &HandlerError::no_procedure());
            self.send_reply(link, id, reply);
            crate::meter::call_refused("(unregistered)", "no_procedure");
            return;
        };
        let max = self.options().max_concurrent_calls.max(1);
        if !link.start_call(max) {
            let busy = HandlerError::named(
                "BusyError",
                format!("too many calls in progress on this connection (max_concurrent_calls = {max})"),
            );
            let reply = self.encode_error_reply(id, &busy);
            self.send_reply(link, id, reply);
            crate::meter::call_refused(&name, "busy");
            return;
        }
        let slot = CallSlot(link.clone());
        let traceparent = link.traces().and_then(|traces| traces.take(id));
        let span = trace::debug_span!("ws_messaging.call", name = %name, id, traceparent = ?traceparent);
        let mut call = procedure(self.clone(), link.clone(), id, args);
        if traceparent.is_some() {
            call = Box::pin(crate::tracecontext::scope(traceparent, call));
        }
        // A handler that finishes at once (no await point pending) is
        // answered right here, saving a task; any other continues in a task
        // of its own, which polls it again with its own waker.
        let mut cx = Context::from_waker(Waker::noop());
        let pending = {
            let _entered = span.enter();
            call.as_mut().poll(&mut cx).is_pending()
        };
        if pending {
            tokio::spawn(
                async move {
                    call.await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
    }
}

impl<C: Codec> Endpoint<C> {
    /// An event to the listeners (a peer's `preprocessingError` report
    /// is also a local event).
    fn apply_event(&self, name: &str, args: crate::envelope::ArgList) {
        if name == "preprocessingError" {
            let value = args
                .first()
                .and_then(|raw| self.codec().decode_error(raw).ok())
                .unwrap_or(serde_json::Value::Null);
            self.emit(LocalEvent::PreprocessingError(value));
        }
        self.call_listeners(name, args);
    }

    /// Counts an event of a recovery session's client (`received`), and
    /// tells the client every [`ACK_EVERY`] events (`wsm.ack`), so that
    /// it can forget what the server has.
    /// False when the session was taken over by a newer connection: the
    /// event is not handled here.
    fn count_event(&self, link: &Link) -> bool {
        let Some(received) = link.count_received() else {
            return false;
        };
        if received % ACK_EVERY == 0 {
            if let Ok(ack) = encode_event(self.codec(), crate::recovery::ACK, &(received.to_string(),)) {
                let _ = self.push_now(link, ack.0);
            }
        }
        true
    }

    /// Whether `frame` is the recovery extension's business alone on this
    /// client connection (a `wsm.*` event, or an event received already):
    /// the application's receive hook does not see it.
    fn recovery_frame(&self, link: &Link, frame: &Frame) -> bool {
        if self.role() != Role::Client || !link.resumable() {
            return false;
        }
        match frame {
            Frame::Message { name, id: None, .. } => {
                name.as_str().starts_with("wsm.") || self.life().client.session.as_ref().is_some_and(|s| s.repeats())
            }
            _ => false,
        }
    }

    /// An event on a client connection that speaks the recovery extension:
    /// the extension's own (`wsm.*`), or an application event applied once
    /// and its position (from the `wsm.at` before it) held.
    fn receive_recoverable(&self, name: &str, args: crate::envelope::ArgList) {
        let text = |args: &crate::envelope::ArgList| -> Vec<String> {
            args.iter()
                .filter_map(|arg| self.codec().decode_value::<String>(arg).ok())
                .collect()
        };
        match name {
            crate::recovery::SESSION => {
                let args = text(&args);
                if let Some(session) = self.life().client.session.as_mut() {
                    session.on_session(&args);
                }
            }
            crate::recovery::ACK => {
                let args = text(&args);
                if let Some(session) = self.life().client.session.as_mut() {
                    session.on_ack(args.first().map_or("", String::as_str));
                }
            }
            crate::recovery::AT => {
                let args = text(&args);
                if let Some(session) = self.life().client.session.as_mut() {
                    session.on_at(args.first().map_or("", String::as_str));
                }
            }
            _ if name.starts_with("wsm.") => {}
            _ => {
                let apply = self.life().client.session.as_mut().is_none_or(|s| s.take_event());
                if !apply {
                    return;
                }
                self.apply_event(name, args);
                if let Some(session) = self.life().client.session.as_mut() {
                    session.applied();
                }
            }
        }
    }
}

/// How many client events between two `wsm.ack`s.
const ACK_EVERY: u64 = 16;

/// A running handler's slot in `max_concurrent_calls`, freed on drop.
struct CallSlot(Arc<Link>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.end_call();
    }
}

/// The codec's encoding of `null`, for an auth reply that is missing.
fn null_value<C: Codec>(codec: &C) -> Bytes {
    let mut buf = Vec::new();
    match codec.encode_value(&(), &mut buf) {
        Ok(()) => buf.into(),
        Err(_) => Bytes::new(),
    }
}
