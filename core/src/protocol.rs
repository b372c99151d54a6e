#![doc = include_str!("../../docs/protocol.md")]

/// The WebSocket subprotocol of ws-messaging; a server echoes it
/// ([protocol § Transport](crate::protocol#transport)).
pub const SUBPROTOCOL: &str = "ws-messaging";

/// The subprotocol a server answers an upgrade with, given the values of
/// its `Sec-WebSocket-Protocol` headers: `ws-messaging` when the client
/// offers it (browsers fail the connection otherwise), else, like the
/// JavaScript `ws` package, the first protocol offered; `None` when none is.
///
/// ```
/// use ws_messaging_core::protocol::choose_subprotocol;
/// assert_eq!(choose_subprotocol(["chat, ws-messaging"]), Some("ws-messaging"));
/// assert_eq!(choose_subprotocol(["chat", "other"]), Some("chat"));
/// assert_eq!(choose_subprotocol([]), None);
/// ```
pub fn choose_subprotocol<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut first = None;
    for protocol in offered.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        if protocol == SUBPROTOCOL {
            return Some(protocol);
        }
        if first.is_none() && !protocol.is_empty() {
            first = Some(protocol);
        }
    }
    first
}

/// Normal closure (a user's own `close`).
pub const CLOSE_NORMAL: u16 = 1000;
/// The server is going away (`Server::close(1001)`).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket protocol (bad opcode, unmasked client frame, ...).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text frame that is not UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// A message larger than `max_message_size`.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Auth refused, or no auth frame within the auth timeout: a client that
/// sees it stops for good ([protocol § Auth handshake](crate::protocol#auth-handshake)).
pub const CLOSE_FORBIDDEN: u16 = 4003;
/// Auth or ping timeout; the client reconnects
/// ([protocol § Close codes](crate::protocol#close-codes)).
pub const CLOSE_TIMEOUT: u16 = 4008;
/// The connection's outgoing backlog passed its limit (`max_backlog_frames`
/// or `max_backlog_bytes`; reason `Slow consumer`), or a send waited
/// `write_timeout` for room (reason `Write timeout`): the peer does not read
/// fast enough. The JavaScript client reconnects
/// ([protocol § Limits](crate::protocol#limits)).
pub const CLOSE_SLOW_CONSUMER: u16 = 4009;

/// Names applications must not use for their own events or procedures.
/// Listeners added with these names get the local events of the same name
/// ([protocol § Reserved names](crate::protocol#reserved-names)).
pub const RESERVED_NAMES: [&str; 7] = ["connect", "close", "open", "error", "ping", "pong", "retry"];

/// Names the runtime itself sends (the heartbeat `ping`, the auth reply
/// `connect`, the `preprocessingError` report): a schema that refuses
/// unknown names still lets them through.
pub const RUNTIME_NAMES: [&str; 3] = ["ping", "connect", "preprocessingError"];
