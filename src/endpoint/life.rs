//! The endpoint's side of the connection state machine: which connection
//! is current, how the last one ended, and whether a client should go on.

use std::sync::{Arc, MutexGuard};

use bytes::Bytes;
use tokio::task::AbortHandle;

use super::{Endpoint, Role};
use crate::client::ClientLife;
use crate::codec::Codec;
use crate::connection::{Closed, Link, Phase};
use crate::error::{AttemptError, SendError};
use crate::events::LocalEvent;
use crate::protocol::CloseCode;
use crate::trace;

/// The endpoint's side of the connection state machine: which connection
/// is current and how the last one ended; on a client, also the connect
/// loop's own state ([`ClientLife`], owned by `client.rs`). Guarded by one
/// lock; every change wakes `Inner::life_changed`. Outside the endpoint it
/// is read and changed through its methods.
#[derive(Default)]
pub(crate) struct Life {
    /// The current connection (authenticating, open or closing).
    pub(super) link: Option<Arc<Link>>,
    /// The auth reply of the last accepted connection.
    reply: Bytes,
    /// How the last connection ended.
    last_close: Option<AttemptError>,
    /// Closed by the user (or refused with 4003): a client does not reconnect.
    terminated: bool,
    /// The current connection is authenticated and past the client's
    /// `on_connect` hook (`Client::connect` waits for this).
    ready: bool,
    /// The `on_connect` hook running for a connection: it belongs to that
    /// connection and is aborted when the connection ends.
    hook: Option<(Arc<Link>, AbortHandle)>,
    /// The client's connect loop state (unused on a server's endpoints),
    /// under the same lock so its waiters wake on every change.
    pub(crate) client: ClientLife,
    /// With recovery, on a server: the replies of the connection's
    /// session.
    pub(crate) replies: Option<crate::recovery::SharedReplies>,
}

impl Life {
    /// The current connection (authenticating, open or closing).
    pub(crate) fn link(&self) -> Option<&Arc<Link>> {
        self.link.as_ref()
    }

    /// The current connection is open, authenticated and past the
    /// `on_connect` hook.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready && self.link.as_ref().is_some_and(|link| link.is_open())
    }

    /// The auth reply of the current connection, while it is open.
    pub(crate) fn open_reply(&self) -> Option<Bytes> {
        match &self.link {
            Some(link) if link.is_open() => Some(self.reply.clone()),
            _ => None,
        }
    }

    /// How the last connection (or connection attempt) ended.
    pub(crate) fn last_close(&self) -> Option<&AttemptError> {
        self.last_close.as_ref()
    }

    /// Records how a connection attempt ended before it had a connection.
    pub(crate) fn set_last_close(&mut self, error: AttemptError) {
        self.last_close = Some(error);
    }

    /// Closed for good: no new connection is attached.
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// Closes for good (`on` true), or allows connections again.
    pub(crate) fn set_terminated(&mut self, on: bool) {
        self.terminated = on;
    }

    /// Aborts the `on_connect` hook of `link` (of any connection when
    /// `None`), if one runs.
    fn abort_hook(&mut self, link: Option<&Arc<Link>>) {
        let ours = match (&self.hook, link) {
            (Some((hooked, _)), Some(link)) => Arc::ptr_eq(hooked, link),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if ours {
            if let Some((_, handle)) = self.hook.take() {
                handle.abort();
            }
        }
    }
}
impl<C: Codec> Endpoint<C> {
    // ----- the connection state machine ----------------------------------

    pub(crate) fn life(&self) -> MutexGuard<'_, Life> {
        self.inner.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the life state under its lock and wakes its waiters.
    pub(crate) fn update_life<R>(&self, f: impl FnOnce(&mut Life) -> R) -> R {
        let out = f(&mut self.life());
        self.inner.life_changed.notify_waiters();
        out
    }

    /// Waits until `done` holds for the life state, and returns its answer.
    pub(crate) async fn wait_life<R>(&self, mut done: impl FnMut(&Life) -> Option<R>) -> R {
        loop {
            let changed = self.inner.life_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(out) = done(&self.life()) {
                return out;
            }
            changed.await;
        }
    }

    /// Installs a new connection, unless the endpoint was closed for good.
    pub(crate) fn attach(&self) -> Option<Arc<Link>> {
        self.update_life(|life| {
            if life.terminated {
                return None;
            }
            let link = Arc::new(match self.role() {
                Role::Server => Link::for_server(&self.inner.options),
                Role::Client => Link::new(&self.inner.options),
            });
            // A hook still running belongs to a connection that is gone.
            life.abort_hook(None);
            life.link = Some(link.clone());
            life.ready = false;
            Some(link)
        })
    }

    /// Marks `link` authenticated with the peer's auth `reply`. A client's
    /// `on_connect` hook then runs (in a task: the connection goes on
    /// meanwhile, so the hook can invoke) before the connection counts as
    /// ready and `connect` is emitted. The hook belongs to `link`: it is
    /// aborted when `link` ends (see [`detach`](Self::detach)), so it never
    /// sends on a later connection nor marks one ready.
    pub(crate) fn set_connected(&self, link: &Arc<Link>, reply: Bytes) -> bool {
        if !link.open() {
            return false;
        }
        self.update_life(|life| life.reply = reply.clone());
        match self.connect_hook() {
            None => self.set_ready(link, reply),
            Some(hook) => {
                let endpoint = self.clone();
                let hooked = link.clone();
                // Registered under the lock before the task can run, so an
                // end of `link` meanwhile either finds the handle or is
                // seen here (and the task is aborted at once).
                let mut life = self.life();
                let task = tokio::spawn(async move {
                    let link = hooked;
                    let outcome = hook(endpoint.clone()).await;
                    endpoint.update_life(|life| {
                        if life.hook.as_ref().is_some_and(|(l, _)| Arc::ptr_eq(l, &link)) {
                            life.hook = None;
                        }
                    });
                    match outcome {
                        Ok(()) => endpoint.set_ready(&link, reply),
                        Err(error) => {
                            trace::warn!(%error, "the on_connect hook failed: closing, to try again");
                            endpoint.emit(LocalEvent::Error(format!("the on_connect hook failed: {error}")));
                            link.close(CloseCode::NORMAL, "on_connect hook failed", false);
                        }
                    }
                });
                let current = life.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link));
                if current {
                    life.abort_hook(None);
                    life.hook = Some((link.clone(), task.abort_handle()));
                } else {
                    task.abort();
                }
            }
        }
        true
    }

    /// The connection `link` counts as connected: `connect` is emitted.
    /// Changes nothing when `link` is no longer the current connection.
    fn set_ready(&self, link: &Arc<Link>, reply: Bytes) {
        let current = self.update_life(|life| {
            let current = life.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) && link.is_open();
            if current {
                life.ready = true;
            }
            current
        });
        if current {
            trace::debug!("connected");
            self.emit(LocalEvent::Connect(reply));
        }
    }

    /// Tears `link` down after its socket ended: emits `close`.
    pub(crate) fn detach(&self, link: &Arc<Link>, closed: &Closed) {
        trace::debug!(code = closed.code, reason = %closed.reason, "connection closed");
        link.finish();
        self.update_life(|life| {
            // Its `on_connect` hook ends with it.
            life.abort_hook(Some(link));
            if life.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                life.link = None;
            }
            life.last_close = Some(AttemptError::Closed {
                code: closed.code,
                reason: closed.reason.clone(),
            });
        });
        self.emit(LocalEvent::Close {
            code: closed.code,
            reason: closed.reason.clone(),
        });
    }

    /// On a client: how the server decided its session on its current (or
    /// last) connection: `None` before the first, without
    /// [`ClientBuilder::recovery`](crate::ClientBuilder::recovery), or when
    /// the server did not speak the recovery extension.
    pub fn session_status(&self) -> Option<crate::SessionStatus> {
        let life = self.life();
        let session = life.client.session.as_ref().filter(|s| s.active)?;
        session.status().cloned()
    }

    /// Closes the connection with `code` and `reason` (at most 123 bytes;
    /// longer reasons are cut on a character boundary). Every pending invoke
    /// fails at once with a connection error. On a client this is final: it
    /// does not reconnect until [`Client::reconnect`](crate::Client::reconnect).
    /// Inside a server's connection hook, the client is refused with this
    /// code and reason whatever the hook returns.
    ///
    /// It never blocks and needs no runtime: the close frame is queued for
    /// the connection's task.
    ///
    /// `code` is a [`CloseCode`] or a bare `u16`: `close(CloseCode::NORMAL, "bye")`,
    /// `close(4000, "moved")`.
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) {
        let code = code.into();
        let link = self.update_life(|life| {
            life.terminated = true;
            life.link.clone()
        });
        if let Some(link) = link {
            link.close(code, reason, false);
        }
    }

    /// The current connection, if it is open.
    pub(crate) fn open_link(&self) -> Result<Arc<Link>, SendError> {
        match &self.life().link {
            Some(link) if link.phase() == Phase::Open => Ok(link.clone()),
            _ => Err(SendError::Connection),
        }
    }
}
