//! Writing: the backlog's frames handed to the socket in batches, one
//! flush per batch, and the write-stall clock for a peer that stops reading.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::driver::Driver;
use super::{Owner, Transport};

/// Outgoing frames handed to the socket per wake-up before the task yields.
const WRITE_BUDGET: usize = 256;

impl<O: Owner, T: Transport> Driver<'_, O, T> {
    /// Hands queued frames to the socket and flushes. False when the write
    /// budget ran out with frames left.
    pub(super) fn write(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
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
            match &message {
                Message::Text(text) => self.counted_out(text.len()),
                Message::Binary(data) => self.counted_out(data.len()),
                _ => {}
            }
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
}
