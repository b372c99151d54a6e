//! Drives one WebSocket connection: a reader loop on the current task and
//! a writer task that owns the sink and drains the endpoint's bounded queue.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::codec::Codec;
use crate::endpoint::{Endpoint, Link};
use crate::events::LocalEvent;

/// How long a close handshake we started may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Any WebSocket: a stream and sink of tungstenite messages. Plain TCP,
/// TLS, or an upgrade done by a web framework all fit.
pub trait Transport:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin + 'static
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin + 'static
{
}

/// The end of a connection: its close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// Runs connection `generation` until the socket ends, then detaches it
/// from the endpoint (failing pending invokes, emitting `close`).
pub(crate) async fn drive<C: Codec, T: Transport>(endpoint: &Endpoint<C>, link: Link, ws: T) -> Closed {
    let Link {
        generation,
        queue,
        mut closing,
    } = link;
    let (sink, mut stream) = ws.split();
    let writer = tokio::spawn(write_loop(sink, queue));
    let mut peer_close: Option<(u16, String)> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            Ok(()) = closing.changed(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                continue;
            }
            () = sleep_until(deadline) => break,
        };
        match next {
            Some(Ok(Message::Text(text))) => endpoint.receive(generation, text.into()).await,
            Some(Ok(Message::Binary(data))) => endpoint.receive(generation, data).await,
            Some(Ok(Message::Close(frame))) => {
                peer_close = Some(match frame {
                    Some(f) => (f.code.into(), f.reason.to_string()),
                    None => (1005, String::new()),
                });
                if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
            }
            Some(Ok(_)) => {} // ping, pong: tungstenite answers pings itself
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => break,
            Some(Err(e)) => {
                endpoint.emit(LocalEvent::Error(e.to_string()));
                break;
            }
        }
    }
    writer.abort();
    let local_close = closing.borrow().clone();
    let (code, reason) = peer_close.or(local_close).unwrap_or((1006, String::new()));
    endpoint.detach(generation, code, reason.clone());
    Closed { code, reason }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes queued frames, batching whatever is already waiting into one
/// flush. Stops after a close frame or a write error.
async fn write_loop<S>(mut sink: S, mut queue: mpsc::Receiver<Message>)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    while let Some(message) = queue.recv().await {
        let mut closing = message.is_close();
        if sink.feed(message).await.is_err() {
            return;
        }
        while !closing {
            match queue.try_recv() {
                Ok(message) => {
                    closing = message.is_close();
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        if sink.flush().await.is_err() || closing {
            return;
        }
    }
}
