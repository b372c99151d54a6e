#![doc = include_str!("../../docs/protocol.md")]

/// The WebSocket subprotocol of ws-messaging; a server echoes it
/// ([protocol § Transport](crate::protocol#transport)).
pub const SUBPROTOCOL: &str = "ws-messaging";

/// The subprotocol of the session recovery extension (`docs/recovery.md`):
/// a client that wants it offers it before [`SUBPROTOCOL`]; a server that
/// has recovery on selects it, any other selects [`SUBPROTOCOL`], so that
/// the client speaks the 2.0.0 protocol.
pub const RESUME_SUBPROTOCOL: &str = "ws-messaging.resume.1";

/// The upgrade header with which a client asks for the trace-context
/// extension (value `1`), and a server grants it (the same header in its
/// `101` response): invokes then carry their caller's W3C `traceparent`
/// in a `wsm.trace(ID, TRACEPARENT)` event sent before them.
pub const TRACE_HEADER: &str = "ws-messaging-trace";

/// [`choose_subprotocol`] for a server that speaks the recovery extension
/// when `resume` is true: [`RESUME_SUBPROTOCOL`] when the client offers it,
/// otherwise what [`choose_subprotocol`] picks.
///
/// ```
/// use ws_messaging_core::protocol::choose_subprotocol_with;
/// let offer = ["ws-messaging.resume.1, ws-messaging"];
/// assert_eq!(choose_subprotocol_with(offer, true), Some("ws-messaging.resume.1"));
/// assert_eq!(choose_subprotocol_with(offer, false), Some("ws-messaging"));
/// assert_eq!(choose_subprotocol_with(["ws-messaging"], true), Some("ws-messaging"));
/// ```
pub fn choose_subprotocol_with<'a>(
    offered: impl IntoIterator<Item = &'a str> + Clone,
    resume: bool,
) -> Option<&'a str> {
    let resumable = resume
        && offered
            .clone()
            .into_iter()
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == RESUME_SUBPROTOCOL);
    if resumable {
        return Some(RESUME_SUBPROTOCOL);
    }
    choose_subprotocol(offered)
}

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

/// A WebSocket close code, with the codes ws-messaging sends or reports
/// named ([protocol § Close codes](crate::protocol#close-codes)).
///
/// Any `u16` converts into one (`CloseCode::from(4000)`, or `4000.into()`),
/// so APIs that take `impl Into<CloseCode>` accept a bare number too; and a
/// `CloseCode` compares with a `u16` both ways, as events and errors carry
/// the bare number.
///
/// # Reconnecting
/// What a client does after a connection ends is
/// [`reconnects`](Self::reconnects): 4003 ([`FORBIDDEN`](Self::FORBIDDEN))
/// stops it for good, every other code (sent by the server, or 1005/1006
/// reported locally) lets it reconnect with backoff when auto-reconnect is
/// on. The client's own close (`close(code, reason)`, whatever the code)
/// stops it too, because it was asked to, not because of the code.
///
/// ```
/// use ws_messaging_core::protocol::CloseCode;
/// assert!(!CloseCode::FORBIDDEN.reconnects());
/// assert!(CloseCode::GOING_AWAY.reconnects());
/// assert!(CloseCode::from(4000).reconnects());
/// assert_eq!(CloseCode::TIMEOUT, 4008);
/// assert_eq!(CloseCode::SLOW_CONSUMER.to_string(), "4009 (slow consumer)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000, normal closure: an application's own `close`.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001, going away: a server shutting down (`Server::close(CloseCode::GOING_AWAY)`).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the WebSocket protocol (bad opcode, unmasked
    /// client frame, ...).
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1005, never sent: reported when the peer's close frame had no code.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006, never sent: reported when the connection ended without a close
    /// frame (it broke, or an attempt failed before it opened).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text frame that is not UTF-8 (reason `Invalid UTF-8`).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1009: a message larger than `max_message_size` (reason `Message too big`).
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1008 `Rate limit exceeded`: the peer sent faster than its rate
    /// limit allows and went on while refused (the client reconnects).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1012 `Service Restart`: the server drains for a restart
    /// (`Server::drain`); the client reconnects, to another node or to
    /// this one once it is back.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013 `Try Again Later`: the server is at its connection cap (an
    /// upgrade answered elsewhere, which could not be refused with an
    /// HTTP status); the client reconnects.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 4003: auth refused, or no auth frame within the auth timeout. The
    /// only code after which a client stops for good
    /// ([protocol § Auth handshake](crate::protocol#auth-handshake)).
    pub const FORBIDDEN: CloseCode = CloseCode(4003);
    /// 4008: auth or ping timeout (reason `Auth timeout` / `Ping timeout`);
    /// the client reconnects.
    pub const TIMEOUT: CloseCode = CloseCode(4008);
    /// 4009: the connection's outgoing backlog passed its limit
    /// (`max_backlog_frames` or `max_backlog_bytes`; reason `Slow consumer`),
    /// or a send waited `write_timeout` for room (reason `Write timeout`):
    /// the peer does not read fast enough. The client reconnects
    /// ([protocol § Limits](crate::protocol#limits)).
    pub const SLOW_CONSUMER: CloseCode = CloseCode(4009);

    /// Whether a client with auto-reconnect on reconnects after a
    /// connection ended with this code: every code but
    /// [`FORBIDDEN`](Self::FORBIDDEN) (4003).
    pub const fn reconnects(self) -> bool {
        self.0 != Self::FORBIDDEN.0
    }

    /// What the code means, for the codes named here.
    pub const fn meaning(self) -> Option<&'static str> {
        Some(match self {
            Self::NORMAL => "normal closure",
            Self::GOING_AWAY => "going away",
            Self::PROTOCOL_ERROR => "protocol error",
            Self::NO_STATUS => "no status code",
            Self::ABNORMAL => "closed abnormally",
            Self::INVALID_DATA => "invalid data",
            Self::TOO_BIG => "message too big",
            Self::POLICY_VIOLATION => "policy violation",
            Self::SERVICE_RESTART => "service restart",
            Self::TRY_AGAIN_LATER => "try again later",
            Self::FORBIDDEN => "forbidden",
            Self::TIMEOUT => "timeout",
            Self::SLOW_CONSUMER => "slow consumer",
            _ => return None,
        })
    }
}

/// The number and, for a named code, its meaning: `4003 (forbidden)`,
/// `4000`.
impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.meaning() {
            Some(meaning) => write!(f, "{} ({meaning})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl PartialEq<u16> for CloseCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl PartialEq<CloseCode> for u16 {
    fn eq(&self, other: &CloseCode) -> bool {
        *self == other.0
    }
}

/// Names applications must not use for their own events or procedures.
/// Listeners added with these names get the local events of the same name
/// ([protocol § Reserved names](crate::protocol#reserved-names)).
pub const RESERVED_NAMES: [&str; 7] = ["connect", "close", "open", "error", "ping", "pong", "retry"];

/// Names the runtime itself sends (the heartbeat `ping`, the auth reply
/// `connect`, the `preprocessingError` report): a schema that refuses
/// unknown names still lets them through.
pub const RUNTIME_NAMES: [&str; 3] = ["ping", "connect", "preprocessingError"];

#[cfg(test)]
mod tests {
    use super::CloseCode;

    #[test]
    fn only_forbidden_stops_a_reconnecting_client() {
        let named = [
            (CloseCode::NORMAL, 1000, true),
            (CloseCode::GOING_AWAY, 1001, true),
            (CloseCode::PROTOCOL_ERROR, 1002, true),
            (CloseCode::NO_STATUS, 1005, true),
            (CloseCode::ABNORMAL, 1006, true),
            (CloseCode::INVALID_DATA, 1007, true),
            (CloseCode::TOO_BIG, 1009, true),
            (CloseCode::FORBIDDEN, 4003, false),
            (CloseCode::TIMEOUT, 4008, true),
            (CloseCode::SLOW_CONSUMER, 4009, true),
        ];
        for (code, number, reconnects) in named {
            assert_eq!(code, number);
            assert_eq!(code.reconnects(), reconnects, "{code}");
            assert!(code.meaning().is_some(), "{code}");
        }
        // Codes of the application's own (and any other) reconnect.
        assert!(CloseCode(4000).reconnects());
        assert!(CloseCode(1008).reconnects());
    }

    #[test]
    fn a_close_code_displays_its_number_and_meaning() {
        assert_eq!(CloseCode::FORBIDDEN.to_string(), "4003 (forbidden)");
        assert_eq!(CloseCode::ABNORMAL.to_string(), "1006 (closed abnormally)");
        assert_eq!(CloseCode(4000).to_string(), "4000");
        assert_eq!(u16::from(CloseCode::NORMAL), 1000);
        assert_eq!(CloseCode::from(4008), CloseCode::TIMEOUT);
    }
}
