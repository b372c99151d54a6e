//! The connection lifecycle of an [`Endpoint`]: attach, connect, close,
//! detach. Each connection has a generation, so a late event of an old
//! connection never touches a newer one.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::codec::Codec;
use crate::endpoint::{truncate_reason, Conn, Endpoint, Link, Status};
use crate::events::LocalEvent;

impl<C: Codec> Endpoint<C> {
    /// Closes the connection with `code` and `reason` (at most 123 bytes;
    /// longer reasons are cut on a character boundary). Every pending invoke
    /// fails at once with a connection error. On a client this is final: it
    /// does not reconnect until [`Client::reconnect`](crate::Client::reconnect).
    pub fn close(&self, code: u16, reason: &str) {
        self.inner.terminated.store(true, Ordering::SeqCst);
        let generation = self.inner.state.lock().unwrap().generation;
        self.close_connection(generation, code, reason);
    }

    /// Starts the close handshake of connection `generation` (if it is still
    /// the current one) and fails its pending invokes.
    pub(crate) fn close_connection(&self, generation: u64, code: u16, reason: &str) {
        let mut state = self.inner.state.lock().unwrap();
        let Some(conn) = state.conn.as_ref().filter(|c| c.generation == generation) else {
            return;
        };
        let reason = truncate_reason(reason).to_string();
        let frame = Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.clone().into(),
        }));
        // The queue may be full: the close frame must not wait behind it.
        let tx = conn.tx.clone();
        conn.closing.send_replace(Some((code, reason)));
        state.connected = false;
        let pending = std::mem::take(&mut state.pending);
        drop(state);
        for (_, settle) in pending {
            let _ = settle.send(Err(()));
        }
        if tx.try_send(frame.clone()).is_err() {
            tokio::spawn(async move {
                let _ = tx.send(frame).await;
            });
        }
    }

    /// Installs a new connection; returns its generation and write queue.
    pub(crate) fn attach(&self) -> Link {
        let (tx, rx) = mpsc::channel(self.inner.options.send_queue.max(1));
        let (closing, closing_rx) = watch::channel(None);
        let mut state = self.inner.state.lock().unwrap();
        state.generation += 1;
        let generation = state.generation;
        state.conn = Some(Conn {
            tx,
            generation,
            tasks: Vec::new(),
            closing,
        });
        state.connected = false;
        Link {
            generation,
            queue: rx,
            closing: closing_rx,
        }
    }

    /// Queues a frame on connection `generation` before it is connected (the
    /// auth frame, the `connect` event).
    pub(crate) fn push_first(&self, generation: u64, message: Message) -> bool {
        let state = self.inner.state.lock().unwrap();
        match &state.conn {
            Some(conn) if conn.generation == generation => conn.tx.try_send(message).is_ok(),
            _ => false,
        }
    }

    /// Ties a task's lifetime to connection `generation`.
    pub(crate) fn add_task(&self, generation: u64, task: AbortHandle) {
        let mut state = self.inner.state.lock().unwrap();
        match state.conn.as_mut() {
            Some(conn) if conn.generation == generation => conn.tasks.push(task),
            _ => task.abort(),
        }
    }

    /// Marks connection `generation` connected and starts its heartbeat.
    pub(crate) fn set_connected(&self, generation: u64, reply: Bytes) -> bool {
        {
            let mut state = self.inner.state.lock().unwrap();
            let already = state.connected;
            match state.conn.as_mut() {
                Some(conn) if conn.generation == generation && !already => {
                    // The auth timer (a client's only task so far) is done.
                    for task in conn.tasks.drain(..) {
                        task.abort();
                    }
                    state.connected = true;
                }
                _ => return false,
            }
        }
        if !self.inner.options.ping_interval.is_zero() {
            let task = tokio::spawn(crate::heartbeat::run(self.downgrade(), generation));
            self.add_task(generation, task.abort_handle());
        }
        self.inner
            .status
            .send_replace(Status::Connected { reply: reply.clone() });
        self.emit(LocalEvent::Connect(reply));
        true
    }

    /// Tears down connection `generation` after its socket ended: fails every
    /// pending invoke, stops its tasks and emits `close`.
    pub(crate) fn detach(&self, generation: u64, code: u16, reason: String) {
        let (pending, tasks) = {
            let mut state = self.inner.state.lock().unwrap();
            match state.conn.take() {
                Some(conn) if conn.generation == generation => {
                    state.connected = false;
                    (std::mem::take(&mut state.pending), conn.tasks)
                }
                other => {
                    state.conn = other;
                    return;
                }
            }
        };
        for (_, settle) in pending {
            let _ = settle.send(Err(()));
        }
        for task in tasks {
            task.abort();
        }
        self.inner.status.send_replace(Status::Closed {
            code,
            reason: reason.clone(),
        });
        self.emit(LocalEvent::Close { code, reason });
    }
}
