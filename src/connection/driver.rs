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

use super::{Closed, Link, Owner, Phase, Settings, Settle, Transport};
use crate::events::LocalEvent;
use crate::protocol::CloseCode;

/// How long a close handshake may take before the socket is dropped. A
/// close of this side's that is still queued behind frames the peer has
/// not taken when it runs out is sent at once, ahead of them, and gets a
/// grace of its own: a peer that reads gets the close frame, whatever
/// the backlog in front of it.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

pub(super) struct Ping {
    id: u64,
    reply: oneshot::Receiver<Settle>,
    deadline: Instant,
}

pub(super) struct Driver<'a, O: Owner, T> {
    pub(super) owner: &'a O,
    pub(super) link: &'a Arc<Link>,
    pub(super) ws: T,
    pub(super) unflushed: bool,
    pub(super) close_sent: bool,
    pub(super) write_done: bool,
    pub(super) read_done: bool,
    pub(super) peer_close: Option<(u16, String)>,
    pub(super) error_close: Option<(u16, String)>,
    pub(super) close_deadline: Option<Instant>,
    /// The close frame was sent ahead of the backlog after a close grace.
    pub(super) close_jumped: bool,
    /// The last read stopped at the backlog's soft mark.
    pub(super) reads_paused: bool,
    /// Reads pause at the backlog's soft mark (a server's connections).
    pub(super) pause_reads: bool,
    pub(super) auth_deadline: Option<Instant>,
    pub(super) next_ping: Option<Instant>,
    pub(super) ping: Option<Ping>,
    pub(super) stall_since: Option<Instant>,
    pub(super) write_timeout: Duration,
    pub(super) ping_interval: Duration,
    pub(super) ping_timeout: Duration,
    pub(super) deadline: Option<Instant>,
    /// What was counted since the last report (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(super) counts: super::Counts,
}

/// Runs one connection for `owner` until its socket ends, and gives the
/// socket back. The caller detaches the link afterwards
/// (`Endpoint::detach`, which fails what is still pending).
pub(crate) async fn drive<O: Owner, T: Transport>(
    owner: &O,
    link: &Arc<Link>,
    ws: T,
    settings: Settings,
) -> (Closed, T) {
    let now = Instant::now();
    let mut driver = Driver {
        owner,
        link,
        ws,
        unflushed: false,
        close_sent: false,
        write_done: false,
        read_done: false,
        peer_close: None,
        error_close: None,
        close_deadline: None,
        close_jumped: false,
        reads_paused: false,
        pause_reads: settings.pause_reads,
        auth_deadline: settings.auth_wait.map(|d| now + d),
        next_ping: None,
        ping: None,
        stall_since: None,
        write_timeout: settings.write_timeout,
        ping_interval: settings.ping_interval,
        ping_timeout: settings.ping_timeout,
        deadline: None,
        #[cfg(feature = "metrics")]
        counts: super::Counts::default(),
    };
    let sleep = tokio::time::sleep_until(now + Duration::from_secs(86_400));
    tokio::pin!(sleep);
    let closed = poll_fn(|cx| {
        let polled = driver.poll(cx, sleep.as_mut());
        driver.report();
        polled
    })
    .await;
    // What this connection's backlog counted is taken back.
    #[cfg(feature = "metrics")]
    driver
        .owner
        .count(&super::Counts::default(), -(driver.counts.backlog as i64));
    (closed, driver.ws)
}

impl<O: Owner, T: Transport> Driver<'_, O, T> {
    /// Counts a data frame of `bytes` read.
    #[inline]
    pub(super) fn counted_in(&mut self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.counts.frames_in += 1;
            self.counts.bytes_in += bytes as u64;
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// Counts a data frame of `bytes` written.
    #[inline]
    pub(super) fn counted_out(&mut self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.counts.frames_out += 1;
            self.counts.bytes_out += bytes as u64;
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// Reports what was counted since the last report, and the backlog's
    /// change, once per wake-up.
    #[inline]
    fn report(&mut self) {
        #[cfg(feature = "metrics")]
        {
            let backlog = self.link.backlog().0;
            let delta = backlog as i64 - self.counts.backlog as i64;
            if self.counts.frames_in != 0 || self.counts.frames_out != 0 || delta != 0 {
                self.owner.count(&self.counts, delta);
                self.counts = super::Counts {
                    backlog,
                    ..super::Counts::default()
                };
            }
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>, mut sleep: Pin<&mut Sleep>) -> Poll<Closed> {
        loop {
            let now = Instant::now();
            if let Some(closed) = self.timers(now) {
                return Poll::Ready(closed);
            }
            self.poll_ping(cx, now);
            let mut wrote_all = self.write(cx, now);
            // What the frames read now produce (replies, reports) goes out
            // in the write right after, not through a wake-up of this task.
            self.link.unpark();
            let read_all = self.read(cx);
            wrote_all &= self.write(cx, now);
            if let Some(closed) = self.ended() {
                return Poll::Ready(closed);
            }
            if !wrote_all || !read_all {
                // Budget spent: let other tasks run, then carry on.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.reads_paused && !self.link.reads_paused() {
                // Reads stopped at the backlog's soft mark, and the write
                // just took it below: read now, for no read waker is
                // registered while they are paused.
                continue;
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
            if self.close_jumped || self.close_sent || self.write_done || !self.link.close_now() {
                return Some(self.closed());
            }
            // Our close frame is still behind frames the peer has not
            // taken: it goes next, and the handshake gets a grace of its own.
            self.close_jumped = true;
            self.close_deadline = Some(now + CLOSE_GRACE);
        }
        if self.auth_deadline.is_some_and(|at| at <= now) {
            self.auth_deadline = None;
            self.link.close(CloseCode::TIMEOUT, "Auth timeout", false);
        }
        if let Some(since) = self.stall_since {
            if since + self.write_timeout <= now {
                // The peer has not taken a byte for the whole write timeout.
                self.owner
                    .emit(LocalEvent::Error("write timeout: the peer stopped reading".into()));
                self.link.close(CloseCode::SLOW_CONSUMER, "Write timeout", true);
                return Some(Closed::new(CloseCode::SLOW_CONSUMER, "Write timeout"));
            }
        }
        if self.next_ping.is_some_and(|at| at <= now) {
            self.next_ping = None;
            self.send_ping(now);
        }
        if self.reads_paused {
            // The pong cannot be read while reads are paused: the ping's
            // clock restarts once they go on (the write stall timer
            // watches the peer meanwhile).
            if let Some(ping) = &mut self.ping {
                ping.deadline = ping.deadline.max(now + self.ping_timeout);
            }
        }
        if self.ping.as_ref().is_some_and(|p| p.deadline <= now) {
            if let Some(ping) = self.ping.take() {
                self.link.forget(ping.id);
            }
            self.link.close(CloseCode::TIMEOUT, "Ping timeout", false);
        }
        None
    }

    fn send_ping(&mut self, now: Instant) {
        let Some((id, message)) = self.owner.ping_message() else {
            // The send hook refused it: try again next interval.
            self.next_ping = Some(now + self.ping_interval);
            return;
        };
        let (tx, rx) = oneshot::channel();
        if !self.link.add_pending(id, tx) {
            return;
        }
        self.owner.emit(LocalEvent::Ping);
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
                self.owner.emit(LocalEvent::Pong);
                if self.link.phase() == Phase::Open {
                    self.next_ping = Some(now + self.ping_interval);
                }
            }
        }
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
            .unwrap_or((CloseCode::ABNORMAL.0, String::new()));
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
