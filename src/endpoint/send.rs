//! Sending: events, pre-encoded frames and the heartbeat ping, through the
//! send hook into the current connection's backlog.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::Endpoint;
use crate::adapter::Answer;
use crate::buffers::{bytes_to_message, cut_frame, recycle, scratch, to_message, CUT_LIMIT};
use crate::codec::{Codec, FrameKind};
use crate::config::{Outgoing, OutgoingKind};
use crate::connection::{Link, Phase, PushError};
use crate::error::{CodecError, SendError};
use crate::events::LocalEvent;
use crate::trace;
use crate::wire::{check_name, AsSeq};
use crate::{Args, CloseCode};

/// An event encoded once, to be sent to many peers with
/// [`Endpoint::send_encoded`] or [`queue_encoded`](Endpoint::queue_encoded),
/// or to a server's targets with
/// [`Broadcast::emit_encoded`](crate::Broadcast::emit_encoded). Made by
/// [`EncodedMessage::encode`], the one way to encode once (with
/// `endpoint.codec()` or `server.codec()`). Cloning it is cheap.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedMessage(pub(crate) Message);

impl EncodedMessage {
    /// Encodes the event `name(args)` with `codec`, once. Reserved names
    /// are refused. On a connection or a server, pass its codec
    /// (`EncodedMessage::encode(endpoint.codec(), ...)`); a process with no
    /// connections of its own (a worker publishing through an adapter's
    /// bus) passes a codec value.
    ///
    /// ```
    /// use ws_messaging::EncodedMessage;
    /// let message = EncodedMessage::encode(&ws_messaging_json::Json, "news", ("hi",)).unwrap();
    /// assert_eq!(message.as_bytes(), br#"{"name":"news","args":["hi"]}"#);
    /// ```
    pub fn encode<C: Codec, A: Args>(codec: &C, name: &str, args: A) -> Result<Self, SendError> {
        encode_event(codec, name, &args)
    }

    /// A frame of codec `C` received from elsewhere (an adapter's bus), as
    /// it is: a text frame for a text codec (it must be UTF-8), a binary
    /// frame otherwise. The bytes are not decoded.
    pub fn from_bytes<C: Codec>(bytes: Bytes) -> Result<Self, SendError> {
        match C::FRAME_KIND {
            FrameKind::Binary => Ok(EncodedMessage(Message::Binary(bytes))),
            FrameKind::Text => Utf8Bytes::try_from(bytes)
                .map(|text| EncodedMessage(Message::Text(text)))
                .map_err(|_| SendError::Encode(CodecError::encode("a text frame must be UTF-8"))),
        }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        message_bytes(&self.0)
    }

    /// The encoded bytes, shared (no copy).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Message::Text(t) => Bytes::from(t.clone()),
            Message::Binary(b) => b.clone(),
            _ => Bytes::new(),
        }
    }
}

impl<C: Codec> Endpoint<C> {
    /// A heartbeat ping, `ping()` as an invoke: its id and frame. `None`
    /// when it cannot be encoded or the send hook refuses it.
    pub(crate) fn ping_message(&self) -> Option<(u64, Message)> {
        let id = self.next_id();
        let mut buf = scratch();
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
        Some((id, to_message::<C>(buf).ok()?))
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
        match self.route(&message.0)? {
            Route::Kept => Ok(()),
            Route::Link(link) => self.push_wait(&link, message.0).await,
        }
    }

    /// Where a client's frame goes, decided under one lock: kept by its
    /// recovery session (numbered, kept until the server has it, queued
    /// now when connected, else on resume; [`SendError::Backlog`] when the
    /// outbox is full), or the current connection.
    fn route(&self, message: &Message) -> Result<Route, SendError> {
        let mut life = self.life();
        // A connection that did not negotiate the extension: a plain send.
        let plain = life
            .link
            .as_ref()
            .is_some_and(|l| l.phase() == Phase::Open && !l.resumable());
        if self.role() == super::Role::Client && !plain {
            if let Some(session) = life.client.session.as_mut().filter(|s| s.keeps()) {
                if !session.keep(message) {
                    return Err(SendError::Backlog);
                }
                self.queue_kept(&mut life);
                return Ok(Route::Kept);
            }
        }
        match &life.link {
            Some(link) if link.phase() == Phase::Open => Ok(Route::Link(link.clone())),
            _ => Err(SendError::Connection),
        }
    }

    /// Queues the kept events not yet queued on the current connection,
    /// in order, when it is open and speaks the extension (the outbox
    /// bounds them; under the endpoint's lock, so in number order).
    pub(crate) fn queue_kept(&self, life: &mut super::Life) {
        let Some(link) = life.link.clone().filter(|l| l.phase() == Phase::Open && l.resumable()) else {
            return;
        };
        let Some(session) = life.client.session.as_mut() else {
            return;
        };
        for message in session.take_unqueued() {
            link.push_first(message);
        }
    }

    /// Queues `message` on `link`, waiting for room at most `write_timeout`.
    async fn push_wait(&self, link: &Link, message: Message) -> Result<(), SendError> {
        match tokio::time::timeout(self.inner.options.write_timeout, link.push_wait(message, None, false)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Connection),
            Err(_) => {
                link.close(CloseCode::SLOW_CONSUMER, "Write timeout", true);
                Err(SendError::Timeout)
            }
        }
    }

    /// Sends a frame made by [`EncodedMessage::encode`],
    /// waiting while the backlog is full (as [`send`](Self::send)).
    pub async fn send_encoded(&self, message: &EncodedMessage) -> Result<(), SendError> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes())?;
        match self.route(&message.0)? {
            Route::Kept => Ok(()),
            Route::Link(link) => self.push_wait(&link, message.0.clone()).await,
        }
    }

    /// Queues a frame made by [`EncodedMessage::encode`]
    /// without waiting: what broadcasts use, so one slow peer never holds
    /// up the others. A connection whose backlog is already past its
    /// limits (`max_backlog_frames`, `max_backlog_bytes`) is closed with
    /// 4009 `Slow consumer` instead (a [`LocalEvent::SlowConsumer`] is
    /// emitted) and this fails with [`SendError::SlowConsumer`].
    pub fn queue_encoded(&self, message: &EncodedMessage) -> Result<(), SendError> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes())?;
        // A client's frame may be its recovery session's to keep.
        if self.role() == super::Role::Client {
            return match self.route(&message.0)? {
                Route::Kept => Ok(()),
                Route::Link(link) => self.pushed(link.push_now(message.0.clone())),
            };
        }
        // One step under the endpoint's lock: the link's own check of its
        // phase is the only one (this runs once per recipient of a
        // broadcast).
        let pushed = match &self.life().link {
            Some(link) => link.push_now(message.0.clone()),
            None => Err(PushError::Closed),
        };
        self.pushed(pushed)
    }

    /// Queues the recoverable event `message` after its position `at`
    /// (`wsm.at`), the two frames next to each other (the recovery
    /// extension; `docs/recovery.md`).
    pub(crate) fn queue_tagged(&self, at: &EncodedMessage, message: &EncodedMessage) -> Result<(), SendError> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes())?;
        let pushed = match &self.life().link {
            Some(link) => link.push_pair_now(at.0.clone(), message.0.clone()),
            None => Err(PushError::Closed),
        };
        self.pushed(pushed)
    }

    /// Queues a broadcast invoke's frame (its id is `id`) without waiting,
    /// as [`queue_encoded`](Self::queue_encoded) does, with a pending
    /// invoke under `id`: the link it went on and where its answer comes.
    /// `None` when it could not be queued.
    pub(crate) fn push_invoke(&self, message: &EncodedMessage, id: u64) -> Option<(Arc<Link>, Answer)> {
        self.run_send_hook(OutgoingKind::Encoded, message.as_bytes()).ok()?;
        let link = self.life().link.clone()?;
        let (settle, answer) = oneshot::channel();
        let pushed = link.push_now_pending(message.0.clone(), Some((id, settle)));
        self.pushed(pushed).ok()?;
        Some((link, answer))
    }

    /// Queues on `link` without waiting (replies, broadcasts, reports).
    pub(crate) fn push_now(&self, link: &Link, message: Message) -> Result<(), SendError> {
        self.pushed(link.push_now(message))
    }

    /// [`push_now`](Self::push_now) for a frame made by
    /// [`frame`](Self::frame) (a reply).
    pub(crate) fn push_cut_now(&self, link: &Link, message: Message) -> Result<(), SendError> {
        self.pushed(link.push_cut_now(message))
    }

    /// What a push without waiting comes to (a slow consumer is reported).
    fn pushed(&self, pushed: Result<(), PushError>) -> Result<(), SendError> {
        match pushed {
            Ok(()) => Ok(()),
            Err(PushError::Closed) => Err(SendError::Connection),
            Err(PushError::SlowConsumer { frames, bytes }) => {
                trace::warn!(id = self.id(), frames, bytes, "slow consumer closed (4009)");
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

    /// The frame of an invoke, a reply or a ping: bound for one connection
    /// and dropped once written, so a small one is cut from this thread's
    /// frame chunk (see [`cut_frame`]).
    pub(crate) fn frame(&self, buf: Vec<u8>) -> Result<Message, SendError> {
        if buf.len() > CUT_LIMIT {
            return to_message::<C>(buf);
        }
        let bytes = cut_frame(&buf);
        recycle(buf);
        bytes_to_message::<C>(bytes)
    }
}

/// Encodes the event `name(args)`; reserved names are refused.
pub(crate) fn encode_event<C: Codec, A: Args + ?Sized>(
    codec: &C,
    name: &str,
    args: &A,
) -> Result<EncodedMessage, SendError> {
    check_name(name).map_err(SendError::ReservedName)?;
    let mut buf = scratch();
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

/// Where a frame goes (see `Endpoint::route`).
enum Route {
    /// Kept by a client's recovery session (and queued if connected).
    Kept,
    /// On this open connection.
    Link(Arc<Link>),
}
