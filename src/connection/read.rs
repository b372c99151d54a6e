//! Reading: frames taken from the socket and handed to
//! [`Endpoint::receive`](crate::Endpoint) (decode, validate, dispatch), a
//! bounded number per wake-up; the peer's close frame; WebSocket-level
//! errors turned into close codes (1002, 1007, 1009).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::Message;

use super::driver::Driver;
use super::{Owner, Transport};
use crate::events::LocalEvent;
use crate::protocol::CloseCode;

/// Incoming messages handled per wake-up before the task yields.
const READ_BUDGET: usize = 64;

/// The close code and reason for a WebSocket-level error of the peer's;
/// `None` for errors that leave nothing to send (the socket is gone).
pub(crate) fn protocol_close(error: &WsError) -> Option<(CloseCode, String)> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some((CloseCode::TOO_BIG, "Message too big".into())),
        WsError::Capacity(e) => Some((CloseCode::TOO_BIG, e.to_string())),
        WsError::Utf8(_) => Some((CloseCode::INVALID_DATA, "Invalid UTF-8".into())),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(e) => Some((CloseCode::PROTOCOL_ERROR, e.to_string())),
        _ => None,
    }
}

impl<O: Owner, T: Transport> Driver<'_, O, T> {
    /// Reads and dispatches what has arrived: whether everything was read
    /// (false when the read budget ran out).
    ///
    /// On a server, while the connection's own backlog is past its soft
    /// mark, nothing is read (see [`Link::reads_paused`](super::Link::reads_paused)): the
    /// frames waiting are the peer's own doing as often as not (echoes,
    /// replies), and TCP slows a peer that sends faster than it reads. The
    /// driver reads again once its writes took the backlog below the mark.
    /// A client always reads: were both sides to pause, each could wait
    /// for the other to read.
    pub(super) fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut handled = 0;
        while !self.read_done {
            if handled == READ_BUDGET {
                return false;
            }
            if self.pause_reads && self.link.reads_paused() {
                self.reads_paused = true;
                return true;
            }
            self.reads_paused = false;
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.read_done = true,
                Poll::Ready(Some(Ok(message))) => {
                    handled += 1;
                    match message {
                        Message::Text(text) => {
                            self.counted_in(text.len());
                            self.owner.receive(self.link, text.into(), true);
                        }
                        Message::Binary(data) => {
                            self.counted_in(data.len());
                            self.owner.receive(self.link, data, false);
                        }
                        Message::Close(frame) => {
                            self.peer_close = Some(match frame {
                                Some(f) => (f.code.into(), f.reason.to_string()),
                                None => (CloseCode::NO_STATUS.0, String::new()),
                            });
                            // Nothing pending can be answered any more.
                            self.link.peer_closed();
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
        true
    }

    /// The peer sent something the WebSocket layer refuses: close with the
    /// matching code (the socket is not read any further).
    fn refuse(&mut self, error: WsError) {
        if matches!(error, WsError::ConnectionClosed | WsError::AlreadyClosed) {
            return;
        }
        let Some((code, reason)) = protocol_close(&error) else {
            if !matches!(error, WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) {
                self.owner.emit(LocalEvent::Error(error.to_string()));
            }
            self.write_done = true;
            return;
        };
        self.owner
            .emit(LocalEvent::Error(format!("the peer broke the protocol: {error}")));
        self.error_close = Some((code.0, reason.clone()));
        self.link.close(code, &reason, true);
    }
}
