//! The connection's single task: reads and dispatches, writes the backlog,
//! and keeps the timers, all in one poll loop (no task per direction, no
//! task for the heartbeat), so an idle connection costs one small future.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::Message;

use super::{Closed, Link, Phase, Settle, Transport};
use crate::codec::Codec;
use crate::endpoint::Endpoint;
use crate::events::LocalEvent;
use crate::protocol::{CLOSE_INVALID_DATA, CLOSE_PROTOCOL_ERROR, CLOSE_SLOW_CONSUMER, CLOSE_TIMEOUT, CLOSE_TOO_BIG};

/// How long a close handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Incoming messages handled per wake-up before the task yields.
const READ_BUDGET: usize = 64;
/// Outgoing frames handed to the socket per wake-up before the task yields.
const WRITE_BUDGET: usize = 256;

struct Ping {
    id: u64,
    reply: oneshot::Receiver<Settle>,
    deadline: Instant,
}

struct Driver<'a, C: Codec, T> {
    endpoint: &'a Endpoint<C>,
    link: &'a Arc<Link>,
    ws: T,
    unflushed: bool,
    close_sent: bool,
    write_done: bool,
    read_done: bool,
    peer_close: Option<(u16, String)>,
    error_close: Option<(u16, String)>,
    close_deadline: Option<Instant>,
    auth_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    ping: Option<Ping>,
    stall_since: Option<Instant>,
    write_timeout: Duration,
    ping_interval: Duration,
    ping_timeout: Duration,
    deadline: Option<Instant>,
}

/// The close code and reason for a WebSocket-level error of the peer's;
/// `None` for errors that leave nothing to send (the socket is gone).
pub(crate) fn protocol_close(error: &WsError) -> Option<(u16, String)> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some((CLOSE_TOO_BIG, "Message too big".into())),
        WsError::Capacity(e) => Some((CLOSE_TOO_BIG, e.to_string())),
        WsError::Utf8(_) => Some((CLOSE_INVALID_DATA, "Invalid UTF-8".into())),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(e) => Some((CLOSE_PROTOCOL_ERROR, e.to_string())),
        _ => None,
    }
}

/// Runs one connection until its socket ends, and gives the socket back.
/// `auth_wait` is a client's wait for the `connect` event (closed with 4008
/// `Auth timeout` after it). The caller detaches the link afterwards
/// (`Endpoint::detach`, which fails what is still pending).
pub(crate) async fn drive<C: Codec, T: Transport>(
    endpoint: &Endpoint<C>,
    link: &Arc<Link>,
    ws: T,
    auth_wait: Option<Duration>,
) -> (Closed, T) {
    let options = endpoint.options();
    let now = Instant::now();
    let mut driver = Driver {
        endpoint,
        link,
        ws,
        unflushed: false,
        close_sent: false,
        write_done: false,
        read_done: false,
        peer_close: None,
        error_close: None,
        close_deadline: None,
        auth_deadline: auth_wait.map(|d| now + d),
        next_ping: None,
        ping: None,
        stall_since: None,
        write_timeout: options.write_timeout,
        ping_interval: options.ping_interval,
        ping_timeout: options.ping_timeout,
        deadline: None,
    };
    let sleep = tokio::time::sleep_until(now + Duration::from_secs(86_400));
    tokio::pin!(sleep);
    let closed = poll_fn(|cx| driver.poll(cx, sleep.as_mut())).await;
    (closed, driver.ws)
}

impl<C: Codec, T: Transport> Driver<'_, C, T> {
    fn poll(&mut self, cx: &mut Context<'_>, mut sleep: Pin<&mut Sleep>) -> Poll<Closed> {
        loop {
            let now = Instant::now();
            if let Some(closed) = self.timers(now) {
                return Poll::Ready(closed);
            }
            self.poll_ping(cx, now);
            let mut wrote_all = self.write(cx, now);
            let (read_all, handled) = self.read(cx);
            if handled > 0 {
                // What the frames just read produced (replies, reports) goes
                // out now, not after another trip through the scheduler.
                wrote_all &= self.write(cx, now);
            }
            if let Some(closed) = self.ended() {
                return Poll::Ready(closed);
            }
            if !wrote_all || !read_all {
                // Budget spent: let other tasks run, then carry on.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.arm(now);
            let next = self.next_deadline();
            if next != self.deadline {
                self.deadline = next;
                let at = next.unwrap_or_else(|| now + Duration::from_secs(86_400));
                sleep.as_mut().reset(at);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.deadline = None;
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Sets the deadlines the connection's phase calls for.
    fn arm(&mut self, now: Instant) {
        let phase = self.link.phase();
        if matches!(phase, Phase::Closing | Phase::Closed) || self.peer_close.is_some() || self.read_done {
            self.close_deadline.get_or_insert(now + CLOSE_GRACE);
            self.next_ping = None;
            self.auth_deadline = None;
        }
        if phase != Phase::Authenticating {
            self.auth_deadline = None;
        }
        if phase == Phase::Open && self.next_ping.is_none() && self.ping.is_none() && !self.ping_interval.is_zero() {
            self.next_ping = Some(now + self.ping_interval);
        }
    }

    /// Runs the timers that are due; `Some` when the connection must end now.
    fn timers(&mut self, now: Instant) -> Option<Closed> {
        self.arm(now);
        if self.close_deadline.is_some_and(|at| at <= now) {
            return Some(self.closed());
        }
        if self.auth_deadline.is_some_and(|at| at <= now) {
            self.auth_deadline = None;
            self.link.close(CLOSE_TIMEOUT, "Auth timeout", false);
        }
        if let Some(since) = self.stall_since {
            if since + self.write_timeout <= now {
                // The peer has not taken a byte for the whole write timeout.
                self.endpoint
                    .emit(LocalEvent::Error("write timeout: the peer stopped reading".into()));
                self.link.close(CLOSE_SLOW_CONSUMER, "Write timeout", true);
                return Some(Closed::new(CLOSE_SLOW_CONSUMER, "Write timeout"));
            }
        }
        if self.next_ping.is_some_and(|at| at <= now) {
            self.next_ping = None;
            self.send_ping(now);
        }
        if self.ping.as_ref().is_some_and(|p| p.deadline <= now) {
            if let Some(ping) = self.ping.take() {
                self.link.forget(ping.id);
            }
            self.link.close(CLOSE_TIMEOUT, "Ping timeout", false);
        }
        None
    }

    fn send_ping(&mut self, now: Instant) {
        let Some((id, message)) = self.endpoint.ping_message() else {
            // The send hook refused it: try again next interval.
            self.next_ping = Some(now + self.ping_interval);
            return;
        };
        let (tx, rx) = oneshot::channel();
        if !self.link.add_pending(id, tx) {
            return;
        }
        self.endpoint.emit(LocalEvent::Ping);
        if self.link.push_now(message).is_ok() {
            self.ping = Some(Ping {
                id,
                reply: rx,
                deadline: now + self.ping_timeout,
            });
        } else {
            self.link.forget(id);
        }
    }

    fn poll_ping(&mut self, cx: &mut Context<'_>, now: Instant) {
        let Some(ping) = &mut self.ping else { return };
        if let Poll::Ready(outcome) = Pin::new(&mut ping.reply).poll(cx) {
            self.ping = None;
            if let Ok(Ok(_)) = outcome {
                self.endpoint.emit(LocalEvent::Pong);
                if self.link.phase() == Phase::Open {
                    self.next_ping = Some(now + self.ping_interval);
                }
            }
        }
    }

    /// Hands queued frames to the socket and flushes. False when the write
    /// budget ran out with frames left.
    fn write(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        if self.write_done {
            return true;
        }
        let mut progress = false;
        let mut blocked = false;
        let mut sent = 0;
        while !self.close_sent {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.write_done = true;
                    return true;
                }
                Poll::Pending => {
                    blocked = true;
                    break;
                }
            }
            let Some(message) = self.link.pop(cx.waker()) else {
                break;
            };
            let is_close = message.is_close();
            if Pin::new(&mut self.ws).start_send(message).is_err() {
                self.write_done = true;
                return true;
            }
            self.unflushed = true;
            progress = true;
            self.close_sent |= is_close;
            sent += 1;
            if sent == WRITE_BUDGET {
                break;
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.unflushed = false;
                    progress = true;
                }
                Poll::Ready(Err(_)) => {
                    self.write_done = true;
                    return true;
                }
                Poll::Pending => blocked = true,
            }
        }
        if blocked && (self.unflushed || self.link.has_backlog()) {
            // The socket takes no more for now: time how long it stays so,
            // and have a close or a new frame wake the task meanwhile.
            self.link.park(cx.waker());
            if progress {
                self.stall_since = Some(now);
            } else {
                self.stall_since.get_or_insert(now);
            }
        } else {
            self.stall_since = None;
        }
        sent < WRITE_BUDGET
    }

    /// Reads and dispatches what has arrived: whether everything was read
    /// (false when the read budget ran out), and how many messages.
    fn read(&mut self, cx: &mut Context<'_>) -> (bool, usize) {
        let mut handled = 0;
        while !self.read_done {
            if handled == READ_BUDGET {
                return (false, handled);
            }
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.read_done = true,
                Poll::Ready(Some(Ok(message))) => {
                    handled += 1;
                    match message {
                        Message::Text(text) => self.endpoint.receive(self.link, text.into()),
                        Message::Binary(data) => self.endpoint.receive(self.link, data),
                        Message::Close(frame) => {
                            self.peer_close = Some(match frame {
                                Some(f) => (f.code.into(), f.reason.to_string()),
                                None => (1005, String::new()),
                            });
                        }
                        _ => {} // pings and pongs: tungstenite answers pings itself
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    self.read_done = true;
                    self.refuse(error);
                }
            }
        }
        (true, handled)
    }

    /// The peer sent something the WebSocket layer refuses: close with the
    /// matching code (the socket is not read any further).
    fn refuse(&mut self, error: WsError) {
        if matches!(error, WsError::ConnectionClosed | WsError::AlreadyClosed) {
            return;
        }
        let Some((code, reason)) = protocol_close(&error) else {
            if !matches!(error, WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) {
                self.endpoint.emit(LocalEvent::Error(error.to_string()));
            }
            self.write_done = true;
            return;
        };
        self.endpoint
            .emit(LocalEvent::Error(format!("the peer broke the protocol: {error}")));
        self.error_close = Some((code, reason.clone()));
        self.link.close(code, &reason, true);
    }

    /// `Some` once there is nothing left to do on this socket.
    fn ended(&mut self) -> Option<Closed> {
        let over = if self.read_done {
            // Nothing more comes in: finish once our close frame (if any) is
            // out, or the socket cannot take it.
            self.write_done || self.error_close.is_none() || (self.close_sent && !self.unflushed)
        } else {
            self.write_done
        };
        over.then(|| self.closed())
    }

    fn closed(&self) -> Closed {
        let (code, reason) = self
            .peer_close
            .clone()
            .or_else(|| self.link.requested_close())
            .or_else(|| self.error_close.clone())
            .unwrap_or((1006, String::new()));
        Closed {
            code,
            reason,
            drain: self.error_close.is_some(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let stall = self.stall_since.map(|s| s + self.write_timeout);
        [
            self.close_deadline,
            self.auth_deadline,
            self.next_ping,
            self.ping.as_ref().map(|p| p.deadline),
            stall,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
