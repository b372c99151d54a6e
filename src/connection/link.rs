//! The [`Link`]: what one connection shares with the rest of the crate
//! (its phase, its outgoing backlog, its pending invokes), behind one lock.

use crate::limits::{Limiter, Verdict};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::config::EndpointOptions;
use crate::{wire::truncate_reason, CloseCode};

/// The outcome a pending invoke is settled with: the raw reply, or `Err`
/// when the connection went away.
pub(crate) type Settle = Result<Result<Bytes, Bytes>, ()>;

/// A pending invoke's entry in the link's map.
enum Pending {
    /// Answered through a channel (the heartbeat's ping, a broadcast
    /// invoke's answer).
    Channel(oneshot::Sender<Settle>),
    /// An invoke's future waits on the link itself (see
    /// [`Link::poll_settled`]): the waker of its last poll.
    Waiting(Option<Waker>),
    /// The outcome, kept until the invoke's future takes it.
    Settled(Settle),
}

/// An empty pending map keeps at most this many bytes of entries for the
/// next invokes (beyond it, it is freed).
const KEEP_PENDING_BYTES: usize = 1024;

/// What a close takes from the pending map, to be failed once the lock is
/// released.
struct Failed {
    channels: Vec<oneshot::Sender<Settle>>,
    wakers: Vec<Waker>,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// The WebSocket is open; auth is under way (nothing but the auth frame
    /// and the `connect` reply may be sent).
    Authenticating,
    /// Authenticated: anything may be sent.
    Open,
    /// A close was started on this side: nothing more is queued.
    Closing,
    /// The socket ended.
    Closed,
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The connection is not open (or no longer).
    Closed,
    /// The backlog was past its limit (its frames and bytes then): the
    /// connection was closed (4009).
    SlowConsumer { frames: usize, bytes: usize },
}

struct LinkState {
    phase: Phase,
    queue: VecDeque<Message>,
    /// Payload bytes of the frames in `queue`.
    bytes: usize,
    /// The driver's waker, taken by the first push after it parked.
    writer: Option<Waker>,
    /// The close this side asked for, once it did.
    close: Option<(u16, String)>,
    pending: HashMap<u64, Pending>,
    /// This side has invoked on this link (not only pinged): its empty
    /// pending map is kept for the next invokes (see `shrink_pending`).
    invoked: bool,
    /// Procedure handlers running now.
    calls: u32,
    /// Holds on writing (a join waiting for its room's traffic to reach
    /// this node): nothing but a close is written while any is on.
    holds: u32,
}

/// The state one connection shares: phase, backlog, pending invokes.
pub(crate) struct Link {
    state: Mutex<LinkState>,
    /// Wakes `send().await` callers waiting for room in the backlog.
    room: Notify,
    /// Set once the connection was authenticated (survives its close).
    was_open: AtomicBool,
    /// The phase, readable without the lock (the driver checks it on every
    /// wake-up); changed only under the lock, with `LinkState::phase`.
    phase: AtomicU8,
    max_frames: usize,
    max_bytes: usize,
    /// The backlog is past its soft mark (half its limits): the driver
    /// stops reading this connection's frames until it is written down
    /// below it again. Changed only under the lock.
    over_soft_mark: AtomicBool,
    /// The connection speaks the recovery extension.
    resumable: AtomicBool,
    /// With the extension, on a server: the client's events received in
    /// its session.
    received: AtomicU64,
    /// On a server with a rate limit: this connection's buckets.
    limiter: Option<Box<Limiter>>,
    /// Set when the peers negotiated the trace-context extension: on a
    /// server, the trace contexts waiting for their calls.
    traces: std::sync::OnceLock<Box<crate::tracecontext::Waiting>>,
}

/// The bit of `received` that marks a connection whose session a newer
/// connection took over.
const TAKEN_OVER: u64 = 1 << 63;

fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

/// A cut frame queued behind this many others is copied out of its chunk:
/// a connection that is behind holds at most this many chunks through the
/// frames it has yet to write, whoever else's frames those chunks hold.
const DETACH_AFTER: usize = 16;

/// The frame with bytes of its own, no longer a slice of a shared chunk.
pub(crate) fn detach(message: Message) -> Message {
    match message {
        Message::Text(text) => Message::Text(Utf8Bytes::from(text.as_str().to_owned())),
        Message::Binary(bytes) => Message::Binary(Bytes::copy_from_slice(&bytes)),
        other => other,
    }
}

fn close_message(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.0.into(),
        reason: truncate_reason(reason).to_string().into(),
    }))
}

impl Link {
    pub(crate) fn new(options: &EndpointOptions) -> Self {
        Link {
            state: Mutex::new(LinkState {
                phase: Phase::Authenticating,
                queue: VecDeque::new(),
                bytes: 0,
                writer: None,
                close: None,
                pending: HashMap::new(),
                invoked: false,
                calls: 0,
                holds: 0,
            }),
            room: Notify::new(),
            was_open: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Authenticating as u8),
            max_frames: options.max_backlog_frames.max(1),
            max_bytes: options.max_backlog_bytes.max(1),
            over_soft_mark: AtomicBool::new(false),
            resumable: AtomicBool::new(false),
            received: AtomicU64::new(0),
            limiter: None,
            traces: std::sync::OnceLock::new(),
        }
    }

    /// The peers negotiated the trace-context extension.
    pub(crate) fn set_traced(&self) {
        let _ = self.traces.set(Box::default());
    }

    /// The trace contexts of a connection that negotiated the extension.
    pub(crate) fn traces(&self) -> Option<&crate::tracecontext::Waiting> {
        self.traces.get().map(|b| &**b)
    }

    /// A server's link: rate-limited when `options` say so.
    pub(crate) fn for_server(options: &EndpointOptions) -> Self {
        let mut link = Link::new(options);
        link.limiter = options.rate_limit.clone().map(|limit| Box::new(Limiter::new(limit)));
        link
    }

    /// Whether the client may send this frame now (always, without a
    /// rate limit).
    pub(crate) fn admit(&self, name: &str, len: usize) -> Verdict {
        match &self.limiter {
            Some(limiter) => limiter.take(name, len),
            None => Verdict::Pass,
        }
    }

    /// Whether the connection speaks the recovery extension.
    pub(crate) fn resumable(&self) -> bool {
        self.resumable.load(Ordering::Relaxed)
    }

    /// The client's events received in its session (with the extension).
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire) & !TAKEN_OVER
    }

    /// Starts the count of the client's events at `n` (a resumed session's).
    pub(crate) fn set_received(&self, n: u64) {
        self.received.store(n & !TAKEN_OVER, Ordering::Release);
    }

    /// Counts one more event from the client; returns the count, or `None`
    /// once the session was taken over by a newer connection (the event
    /// is then not this connection's to handle: its client sends it again).
    pub(crate) fn count_received(&self) -> Option<u64> {
        self.received
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & TAKEN_OVER == 0).then_some(n + 1)
            })
            .ok()
            .map(|n| n + 1)
    }

    /// Hands the session over to a newer connection: returns the final
    /// count; from now on this connection handles nothing its client
    /// sends.
    pub(crate) fn take_over(&self) -> u64 {
        self.received.fetch_or(TAKEN_OVER, Ordering::AcqRel) & !TAKEN_OVER
    }

    /// Whether the session was taken over by a newer connection.
    pub(crate) fn taken_over(&self) -> bool {
        self.received.load(Ordering::Acquire) & TAKEN_OVER != 0
    }

    /// Marks the connection as one that speaks the recovery extension.
    pub(crate) fn set_resumable(&self) {
        self.resumable.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        // A panic never happens while the lock is held; recover regardless.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Authenticating,
            1 => Phase::Open,
            2 => Phase::Closing,
            _ => Phase::Closed,
        }
    }

    fn set_phase(&self, state: &mut LinkState, phase: Phase) {
        state.phase = phase;
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn is_open(&self) -> bool {
        self.phase() == Phase::Open
    }

    /// Whether this connection was ever authenticated.
    pub(crate) fn was_open(&self) -> bool {
        self.was_open.load(Ordering::SeqCst)
    }

    /// The close this side asked for, if any.
    pub(crate) fn requested_close(&self) -> Option<(u16, String)> {
        self.lock().close.clone()
    }

    /// Authenticating → open. False if the link is closing or closed.
    pub(crate) fn open(&self) -> bool {
        let mut state = self.lock();
        if state.phase != Phase::Authenticating {
            return false;
        }
        self.set_phase(&mut state, Phase::Open);
        self.was_open.store(true, Ordering::SeqCst);
        true
    }

    fn full(&self, state: &LinkState) -> bool {
        state.queue.len() >= self.max_frames || state.bytes >= self.max_bytes
    }

    /// Past half the backlog's limits (in frames or bytes).
    fn past_soft_mark(&self, state: &LinkState) -> bool {
        state.queue.len() >= self.max_frames.div_ceil(2) || state.bytes >= self.max_bytes.div_ceil(2)
    }

    /// Whether the backlog is past its soft mark, half its limits: the
    /// driver then reads none of this connection's frames (TCP slows the
    /// peer down) until the backlog is written down below the mark. A peer
    /// that floods and reads what its own frames produce (echoes, replies)
    /// is slowed, not closed as a slow consumer.
    pub(crate) fn reads_paused(&self) -> bool {
        self.over_soft_mark.load(Ordering::Relaxed)
    }

    /// Updates the soft-mark flag after the backlog changed.
    fn mark(&self, state: &LinkState) {
        let over = self.past_soft_mark(state);
        if over != self.over_soft_mark.load(Ordering::Relaxed) {
            self.over_soft_mark.store(over, Ordering::Relaxed);
        }
    }

    /// Queues `message`; `cut` when its bytes are a slice of a thread's
    /// shared chunk ([`cut_frame`](crate::buffers::cut_frame)), which a
    /// frame that is going to wait gives up for a copy of its own.
    fn enqueue(&self, state: &mut LinkState, message: Message, cut: bool) {
        let message = if cut && state.queue.len() >= DETACH_AFTER {
            detach(message)
        } else {
            message
        };
        state.bytes += payload_len(&message);
        state.queue.push_back(message);
        self.mark(state);
        if let Some(waker) = state.writer.take() {
            waker.wake();
        }
    }

    /// Queues a frame before the link is open (the auth frame, the
    /// `connect` event), ignoring the limits.
    pub(crate) fn push_first(&self, message: Message) -> bool {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Closing | Phase::Closed) {
            return false;
        }
        self.enqueue(&mut state, message, false);
        true
    }

    /// Queues a frame without waiting (replies, broadcasts, pings). A link
    /// whose backlog is already past its limits is closed as a slow
    /// consumer instead.
    pub(crate) fn push_now(&self, message: Message) -> Result<(), PushError> {
        self.push_now_with(message, None, false)
    }

    /// [`push_now`](Self::push_now) for a frame cut from a shared chunk (a
    /// reply).
    pub(crate) fn push_cut_now(&self, message: Message) -> Result<(), PushError> {
        self.push_now_with(message, None, true)
    }

    /// [`push_now`](Self::push_now), registering an invoke under `id` in
    /// the same step (a broadcast invoke, whose id every recipient shares).
    /// Refused as closed when an invoke already waits under `id`.
    pub(crate) fn push_now_pending(
        &self,
        message: Message,
        pending: Option<(u64, oneshot::Sender<Settle>)>,
    ) -> Result<(), PushError> {
        self.push_now_with(message, pending, false)
    }

    fn push_now_with(
        &self,
        message: Message,
        pending: Option<(u64, oneshot::Sender<Settle>)>,
        cut: bool,
    ) -> Result<(), PushError> {
        let state = self.lock();
        if state.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        if pending.as_ref().is_some_and(|(id, _)| state.pending.contains_key(id)) {
            return Err(PushError::Closed);
        }
        let mut state = self.room_now(state)?;
        if let Some((id, settle)) = pending {
            state.pending.insert(id, Pending::Channel(settle));
        }
        self.enqueue(&mut state, message, cut);
        Ok(())
    }

    /// The lock back when the backlog has room for a frame that cannot
    /// wait; past its limits, the link is closed as a slow consumer.
    fn room_now<'a>(
        &self,
        mut state: std::sync::MutexGuard<'a, LinkState>,
    ) -> Result<std::sync::MutexGuard<'a, LinkState>, PushError> {
        if !self.full(&state) {
            return Ok(state);
        }
        let (frames, bytes) = (state.queue.len(), state.bytes);
        crate::meter::slow_consumer();
        let failed = self.start_close(&mut state, CloseCode::SLOW_CONSUMER, "Slow consumer", true);
        drop(state);
        self.after_close(failed);
        Err(PushError::SlowConsumer { frames, bytes })
    }

    /// Queues `first` and `second` next to each other, nothing between
    /// them (a position and its event), without waiting; limits as for
    /// [`push_now`](Self::push_now).
    pub(crate) fn push_pair_now(&self, first: Message, second: Message) -> Result<(), PushError> {
        let state = self.lock();
        if state.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        let mut state = self.room_now(state)?;
        self.enqueue(&mut state, first, false);
        self.enqueue(&mut state, second, false);
        Ok(())
    }

    /// Queues a frame, waiting while the backlog is full (backpressure).
    /// With `pending`, registers an invoke under that id in the same step;
    /// its outcome is then waited for with [`poll_settled`](Self::poll_settled).
    /// `cut` as for [`enqueue`](Self::enqueue): a cut frame that has to
    /// wait for room is copied out of its chunk first.
    pub(crate) async fn push_wait(&self, message: Message, pending: Option<u64>, cut: bool) -> Result<(), PushError> {
        let mut message = Some(message);
        let mut pending = pending;
        let mut cut = cut;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.phase != Phase::Open {
                    return Err(PushError::Closed);
                }
                if !self.full(&state) {
                    if let Some(id) = pending.take() {
                        state.pending.insert(id, Pending::Waiting(None));
                        state.invoked = true;
                    }
                    self.enqueue(&mut state, message.take().expect("queued once"), cut);
                    return Ok(());
                }
            }
            if cut {
                message = message.map(detach);
                cut = false;
            }
            room.await;
        }
    }

    /// Settles the pending invoke `id` with the peer's reply; false when no
    /// invoke waits under that id (unknown ids, and replies to an invoke
    /// already settled, are ignored).
    pub(crate) fn settle(&self, id: u64, outcome: Result<Bytes, Bytes>) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.pending.get_mut(&id) else {
            return false;
        };
        match entry {
            Pending::Settled(_) => false,
            Pending::Waiting(waker) => {
                let waker = waker.take();
                *entry = Pending::Settled(Ok(outcome));
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                true
            }
            Pending::Channel(_) => {
                let Some(Pending::Channel(tx)) = state.pending.remove(&id) else {
                    unreachable!("the entry is a channel");
                };
                Self::shrink_pending(&mut state);
                drop(state);
                let _ = tx.send(Ok(outcome));
                true
            }
        }
    }

    /// The outcome of the invoke registered under `id` by
    /// [`push_wait`](Self::push_wait), once it is settled (the entry is then
    /// removed); until then, has the settling wake `cx`'s task. `Err` when
    /// the connection went away, or no such invoke waits.
    pub(crate) fn poll_settled(&self, id: u64, cx: &mut Context<'_>) -> Poll<Settle> {
        let mut state = self.lock();
        match state.pending.get_mut(&id) {
            Some(Pending::Waiting(waker)) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Pending::Settled(_)) => {
                let Some(Pending::Settled(outcome)) = state.pending.remove(&id) else {
                    unreachable!("the entry is settled");
                };
                Self::shrink_pending(&mut state);
                Poll::Ready(outcome)
            }
            Some(Pending::Channel(_)) | None => Poll::Ready(Err(())),
        }
    }

    /// Registers a pending invoke without queuing anything (the heartbeat
    /// queues its ping itself).
    pub(crate) fn add_pending(&self, id: u64, settle: oneshot::Sender<Settle>) -> bool {
        let mut state = self.lock();
        if state.phase != Phase::Open {
            return false;
        }
        state.pending.insert(id, Pending::Channel(settle));
        true
    }

    /// Forgets a pending invoke, whatever its state (its caller gave up).
    pub(crate) fn forget(&self, id: u64) {
        let mut state = self.lock();
        state.pending.remove(&id);
        Self::shrink_pending(&mut state);
    }

    /// Frees the pending map once it is empty: at once on a link with
    /// nothing but heartbeat pings and broadcast invokes (an idle server
    /// connection keeps none), and on one that invokes only beyond
    /// `KEEP_PENDING_BYTES` (kept below, for its next invokes).
    fn shrink_pending(state: &mut LinkState) {
        if state.pending.is_empty()
            && (!state.invoked || state.pending.capacity() * size_of::<(u64, Pending)>() > KEEP_PENDING_BYTES)
        {
            state.pending = HashMap::new();
        }
    }

    /// Takes a slot for a procedure handler; false when `max` run already.
    pub(crate) fn start_call(&self, max: usize) -> bool {
        let mut state = self.lock();
        if state.calls as usize >= max {
            return false;
        }
        state.calls += 1;
        true
    }

    pub(crate) fn end_call(&self) {
        let idle = {
            let mut state = self.lock();
            state.calls = state.calls.saturating_sub(1);
            state.calls == 0
        };
        if idle {
            // `calls_settled` waits on it too (senders re-check their room).
            self.room.notify_waiters();
        }
    }

    /// Waits until no procedure handler of this link runs, `limit` at
    /// most; whether none does.
    pub(crate) async fn calls_settled(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let woken = self.room.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.lock().calls == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return self.lock().calls == 0;
            }
        }
    }

    /// Starts the close handshake with `code` and `reason`: queues the close
    /// frame (after the backlog, or instead of it when `discard`), fails every
    /// pending invoke and wakes every waiting sender. Returns false if a
    /// close was already under way.
    pub(crate) fn close(&self, code: CloseCode, reason: &str, discard: bool) -> bool {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Closing | Phase::Closed) {
            return false;
        }
        let failed = self.start_close(&mut state, code, reason, discard);
        drop(state);
        self.after_close(failed);
        true
    }

    /// The peer sent its close frame: it answers nothing more, so every
    /// pending invoke fails at once (not when the socket ends, which may
    /// be a close grace later), and nothing more is queued. The answer to
    /// its close frame is the WebSocket layer's.
    pub(crate) fn peer_closed(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Closed {
            return;
        }
        self.set_phase(&mut state, Phase::Closing);
        let failed = Self::fail_pending(&mut state);
        drop(state);
        self.after_close(failed);
    }

    /// The close this side asked for is still queued behind frames the
    /// peer has not taken within a close grace: drops those frames, so the
    /// close frame is the next one written. False when no close frame of
    /// this side waits in the backlog.
    pub(crate) fn close_now(&self) -> bool {
        let mut state = self.lock();
        if state.close.is_none() || !matches!(state.queue.back(), Some(Message::Close(_))) {
            return false;
        }
        let close = state.queue.pop_back();
        state.queue = close.into_iter().collect();
        state.bytes = 0;
        self.mark(&state);
        true
    }

    fn start_close(&self, state: &mut LinkState, code: CloseCode, reason: &str, discard: bool) -> Failed {
        self.set_phase(state, Phase::Closing);
        state.close = Some((code.0, truncate_reason(reason).to_string()));
        if discard {
            state.queue = VecDeque::new();
            state.bytes = 0;
        }
        self.enqueue(state, close_message(code, reason), false);
        Self::fail_pending(state)
    }

    /// Fails every invoke still waiting: an invoke's own entry is settled
    /// with `Err` (its future takes it), a channel's entry is removed (its
    /// sender is failed once the lock is released). Outcomes already
    /// settled stay.
    fn fail_pending(state: &mut LinkState) -> Failed {
        let mut failed = Failed {
            channels: Vec::new(),
            wakers: Vec::new(),
        };
        state.pending.retain(|_, entry| match entry {
            Pending::Settled(_) => true,
            Pending::Waiting(waker) => {
                failed.wakers.extend(waker.take());
                *entry = Pending::Settled(Err(()));
                true
            }
            Pending::Channel(_) => {
                if let Pending::Channel(tx) = std::mem::replace(entry, Pending::Settled(Err(()))) {
                    failed.channels.push(tx);
                }
                false
            }
        });
        failed
    }

    fn after_close(&self, failed: Failed) {
        for tx in failed.channels {
            let _ = tx.send(Err(()));
        }
        for waker in failed.wakers {
            waker.wake();
        }
        self.room.notify_waiters();
    }

    /// The socket ended: nothing more is queued, every pending invoke fails.
    pub(crate) fn finish(&self) {
        let failed = {
            let mut state = self.lock();
            self.set_phase(&mut state, Phase::Closed);
            state.queue = VecDeque::new();
            state.bytes = 0;
            state.writer = None;
            self.mark(&state);
            Self::fail_pending(&mut state)
        };
        self.after_close(failed);
    }

    /// The next frame to write; when there is none, parks the driver's
    /// `waker` so the next push wakes it.
    pub(crate) fn pop(&self, waker: &Waker) -> Option<Message> {
        let mut state = self.lock();
        if state.holds > 0 && state.close.is_none() {
            Self::park_writer(&mut state, waker);
            return None;
        }
        let was_full = self.full(&state);
        match state.queue.pop_front() {
            Some(message) => {
                state.bytes -= payload_len(&message);
                if state.queue.is_empty() && state.queue.capacity() > 64 {
                    state.queue = VecDeque::new();
                }
                if was_full && !self.full(&state) {
                    self.room.notify_waiters();
                }
                self.mark(&state);
                Some(message)
            }
            None => {
                Self::park_writer(&mut state, waker);
                None
            }
        }
    }

    /// Holds writing until [`release`](Self::release): what is queued
    /// meanwhile waits (a close does not).
    pub(crate) fn hold(&self) {
        self.lock().holds += 1;
    }

    /// Ends a [`hold`](Self::hold); the driver writes again when none is
    /// left.
    pub(crate) fn release(&self) {
        let writer = {
            let mut state = self.lock();
            state.holds = state.holds.saturating_sub(1);
            if state.holds == 0 {
                state.writer.take()
            } else {
                None
            }
        };
        if let Some(writer) = writer {
            writer.wake();
        }
    }

    /// Has the next push (or a close) wake the driver.
    pub(crate) fn park(&self, waker: &Waker) {
        Self::park_writer(&mut self.lock(), waker);
    }

    /// Forgets the parked writer: the driver is about to read and writes
    /// right after, so the frames its reads produce (replies) need not wake
    /// its own task, and frames other tasks queue meanwhile are picked up
    /// by that write.
    pub(crate) fn unpark(&self) {
        self.lock().writer = None;
    }

    fn park_writer(state: &mut LinkState, waker: &Waker) {
        match &mut state.writer {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Whether frames are waiting to be written.
    pub(crate) fn has_backlog(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    /// The backlog's size: frames and payload bytes.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        let state = self.lock();
        (state.queue.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    //! The pending map's entries: how an invoke's slot is settled, woken,
    //! failed on close and forgotten. `cargo test -p ws-messaging --lib link`.

    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        fn woken(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn open_link() -> Link {
        let link = Link::new(&EndpointOptions::default());
        assert!(link.open());
        link
    }

    fn frame() -> Message {
        Message::Text("{}".into())
    }

    fn poll(link: &Link, id: u64, waker: &Arc<Count>) -> Poll<Settle> {
        link.poll_settled(id, &mut Context::from_waker(&Waker::from(waker.clone())))
    }

    fn pending_len(link: &Link) -> usize {
        link.lock().pending.len()
    }

    #[tokio::test]
    async fn a_reply_wakes_the_last_waker_and_is_taken_once() {
        let link = open_link();
        link.push_wait(frame(), Some(7), false).await.unwrap();
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        assert!(poll(&link, 7, &first).is_pending());
        // Polled again from elsewhere: the new waker replaces the old one.
        assert!(poll(&link, 7, &second).is_pending());
        assert!(link.settle(7, Ok(Bytes::from_static(b"1"))));
        assert_eq!((first.woken(), second.woken()), (0, 1));
        // A second reply under the same id changes nothing.
        assert!(!link.settle(7, Ok(Bytes::from_static(b"2"))));
        assert_eq!(poll(&link, 7, &second), Poll::Ready(Ok(Ok(Bytes::from_static(b"1")))));
        assert_eq!(pending_len(&link), 0);
        // Taken: the id is unknown now.
        assert_eq!(poll(&link, 7, &second), Poll::Ready(Err(())));
    }

    #[tokio::test]
    async fn a_reply_before_the_first_poll_is_kept() {
        let link = open_link();
        link.push_wait(frame(), Some(1), false).await.unwrap();
        assert!(link.settle(1, Err(Bytes::from_static(b"\"no\""))));
        let waker = Arc::new(Count::default());
        assert_eq!(
            poll(&link, 1, &waker),
            Poll::Ready(Ok(Err(Bytes::from_static(b"\"no\""))))
        );
    }

    #[tokio::test]
    async fn a_close_fails_every_waiting_invoke_and_keeps_settled_outcomes() {
        let link = open_link();
        for id in 1..=3 {
            link.push_wait(frame(), Some(id), false).await.unwrap();
        }
        let (tx, mut rx) = oneshot::channel();
        link.push_now_pending(frame(), Some((4, tx))).unwrap();
        let waker = Arc::new(Count::default());
        assert!(poll(&link, 1, &waker).is_pending());
        assert!(poll(&link, 2, &waker).is_pending());
        assert!(link.settle(3, Ok(Bytes::from_static(b"3"))));
        assert!(link.close(CloseCode::NORMAL, "", false));
        // Both waiting invokes were woken, the channel failed at once.
        assert_eq!(waker.woken(), 2);
        assert_eq!(rx.try_recv(), Ok(Err(())));
        assert_eq!(poll(&link, 1, &waker), Poll::Ready(Err(())));
        assert_eq!(poll(&link, 2, &waker), Poll::Ready(Err(())));
        // The reply that came before the close is still delivered.
        assert_eq!(poll(&link, 3, &waker), Poll::Ready(Ok(Ok(Bytes::from_static(b"3")))));
        assert_eq!(pending_len(&link), 0);
        // Nothing more is registered once closing.
        assert_eq!(link.push_wait(frame(), Some(5), false).await, Err(PushError::Closed));
        link.finish();
        assert_eq!(pending_len(&link), 0);
    }

    #[tokio::test]
    async fn an_invoke_still_waiting_when_the_socket_ends_fails() {
        let link = open_link();
        link.push_wait(frame(), Some(1), false).await.unwrap();
        let waker = Arc::new(Count::default());
        assert!(poll(&link, 1, &waker).is_pending());
        link.finish();
        assert_eq!(waker.woken(), 1);
        assert_eq!(poll(&link, 1, &waker), Poll::Ready(Err(())));
    }

    #[tokio::test]
    async fn a_forgotten_invoke_leaves_nothing_and_its_late_reply_is_ignored() {
        let link = open_link();
        // Waiting, settled but not taken, and never polled: each is removed.
        for id in 1..=3 {
            link.push_wait(frame(), Some(id), false).await.unwrap();
        }
        let waker = Arc::new(Count::default());
        assert!(poll(&link, 1, &waker).is_pending());
        assert!(link.settle(2, Ok(Bytes::new())));
        for id in 1..=3 {
            link.forget(id);
        }
        assert_eq!(pending_len(&link), 0);
        assert!(!link.settle(1, Ok(Bytes::new())));
        assert_eq!(pending_len(&link), 0);
        assert_eq!(waker.woken(), 0);
    }

    #[tokio::test]
    async fn an_empty_map_keeps_little_memory() {
        let link = open_link();
        for id in 0..200 {
            link.push_wait(frame(), Some(id), false).await.unwrap();
        }
        for id in 0..200 {
            link.forget(id);
        }
        let kept = link.lock().pending.capacity() * size_of::<(u64, Pending)>();
        assert!(kept <= KEEP_PENDING_BYTES, "{kept} bytes kept");
        // A few at a time: the map stays for the next invokes.
        for id in 0..3 {
            link.push_wait(frame(), Some(id), false).await.unwrap();
        }
        for id in 0..3 {
            link.forget(id);
        }
        assert!(link.lock().pending.capacity() > 0);
    }

    #[tokio::test]
    async fn a_link_that_only_pings_keeps_no_pending_map() {
        let link = open_link();
        for id in 1..=3 {
            let (settle, answer) = oneshot::channel();
            assert!(link.add_pending(id, settle));
            assert!(link.settle(id, Ok(Bytes::new())));
            assert!(answer.await.unwrap().is_ok());
            assert_eq!(link.lock().pending.capacity(), 0, "after ping {id}");
        }
        let (settle, _answer) = oneshot::channel();
        assert!(link.add_pending(9, settle));
        link.forget(9);
        assert_eq!(link.lock().pending.capacity(), 0);
    }

    #[test]
    fn cut_frames_that_wait_behind_others_get_bytes_of_their_own() {
        let link = open_link();
        let chunk = crate::buffers::cut_frame(b"x");
        let in_chunk = |message: &Message| {
            let at = message_ptr(message);
            at >= chunk.as_ptr() as usize && at < chunk.as_ptr() as usize + 4096
        };
        for i in 0..DETACH_AFTER + 4 {
            let text = format!("{{\"n\":{i:03}}}");
            let cut = Utf8Bytes::try_from(crate::buffers::cut_frame(text.as_bytes())).unwrap();
            link.push_cut_now(Message::Text(cut)).unwrap();
        }
        // A frame that is not cut is queued as it is, wherever it goes.
        let shared = Message::Binary(crate::buffers::cut_frame(b"shared"));
        link.push_now(shared.clone()).unwrap();
        let mut popped = Vec::new();
        while let Some(message) = link.pop(Waker::noop()) {
            popped.push(message);
        }
        assert_eq!(popped.len(), DETACH_AFTER + 5);
        for (i, message) in popped[..DETACH_AFTER + 4].iter().enumerate() {
            assert_eq!(message.to_text().unwrap(), format!("{{\"n\":{i:03}}}"));
            assert_eq!(in_chunk(message), i < DETACH_AFTER, "frame {i}");
        }
        assert_eq!(message_ptr(&popped[DETACH_AFTER + 4]), message_ptr(&shared));
    }

    fn message_ptr(message: &Message) -> usize {
        match message {
            Message::Text(text) => text.as_str().as_ptr() as usize,
            Message::Binary(bytes) => bytes.as_ptr() as usize,
            _ => 0,
        }
    }
}
