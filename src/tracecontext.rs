//! Trace context across the wire, for peers that negotiate it: an invoke
//! carries its caller's W3C `traceparent`, and the handler it runs reads it
//! with [`traceparent`] (its `ws_messaging.call` span records it), so the
//! handler's work joins the caller's trace.
//!
//! Negotiated on the WebSocket upgrade: a client that asks
//! ([`ClientBuilder::trace_context`](crate::ClientBuilder::trace_context))
//! sends the header `ws-messaging-trace: 1`; a server of this crate answers
//! it in its `101` response. Only then, before an invoke, the client sends
//! the event `wsm.trace(ID, TRACEPARENT)`, `ID` the invoke's id in decimal;
//! the server applies it to the call of that id and forgets it. Peers that
//! do not ask (the JavaScript client) see exactly the ws-messaging 2.0.0
//! protocol. See `docs/protocol.md`, "Extension: trace context".

use std::collections::VecDeque;
use std::sync::Mutex;

pub(crate) use crate::protocol::TRACE_HEADER as HEADER;

/// The event that carries an invoke's trace context.
pub(crate) const EVENT: &str = "wsm.trace";

/// The most trace contexts a connection holds for calls it has not seen
/// yet; older ones are dropped.
const MAX_WAITING: usize = 64;

tokio::task_local! {
    static CURRENT: Option<Box<str>>;
}

/// The W3C `traceparent` of the call whose handler is running, when its
/// caller sent one (a client with
/// [`ClientBuilder::trace_context`](crate::ClientBuilder::trace_context));
/// `None` elsewhere.
///
/// Give it to an OpenTelemetry propagator to make the handler's span a
/// child of the caller's, and to a client's `trace_context` to carry the
/// trace on to the next service:
///
/// ```no_run
/// # fn f(builder: ws_messaging::ClientBuilder<ws_messaging_json::Json>) {
/// // Calls made from a handler carry that handler's caller's trace on.
/// let builder = builder.trace_context(ws_messaging::traceparent);
/// # let _ = builder; }
/// ```
pub fn traceparent() -> Option<String> {
    CURRENT.try_with(|tp| tp.as_deref().map(str::to_string)).ok().flatten()
}

/// Runs `future` as the handler of a call whose caller sent `traceparent`.
pub(crate) async fn scope<F: std::future::Future>(traceparent: Option<Box<str>>, future: F) -> F::Output {
    CURRENT.scope(traceparent, future).await
}

/// Whether `value` is a W3C `traceparent`: `VERSION-TRACEID-PARENTID-FLAGS`,
/// lower-case hex of 2, 32, 16 and 2 digits, the ids not all zero.
pub(crate) fn valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// A server connection's trace contexts, by the invoke id they are for.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    entries: Mutex<VecDeque<(u64, Box<str>)>>,
}

impl Waiting {
    /// Keeps `traceparent` for the call `id` (a malformed one is dropped).
    pub(crate) fn put(&self, id: u64, traceparent: &str) {
        if !valid(traceparent) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == MAX_WAITING {
            entries.pop_front();
        }
        entries.push_back((id, traceparent.into()));
    }

    /// The trace context for the call `id`, taken.
    pub(crate) fn take(&self, id: u64) -> Option<Box<str>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let at = entries.iter().position(|(waiting, _)| *waiting == id)?;
        entries.remove(at).map(|(_, tp)| tp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked_and_kept_by_call() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(valid(tp));
        assert!(!valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
        assert!(!valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
        assert!(!valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"));
        let waiting = Waiting::default();
        waiting.put(7, tp);
        waiting.put(8, "nonsense");
        assert_eq!(waiting.take(8), None);
        assert_eq!(waiting.take(7).as_deref(), Some(tp));
        assert_eq!(waiting.take(7), None);
        for id in 0..100 {
            waiting.put(id, tp);
        }
        assert_eq!(waiting.take(0), None, "the oldest were dropped");
        assert!(waiting.take(99).is_some());
    }
}
