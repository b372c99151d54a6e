//! Options and their defaults (the JavaScript package's, where it has one).

use crate::limits::RateLimit;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::Frame;
use crate::error::HandlerError;

/// Runs on every valid incoming frame before dispatch; an `Err` refuses the
/// frame (nothing is dispatched, the peer gets a `preprocessingError`).
///
/// It runs after the codec's own check ([`Codec::check`](crate::Codec::check),
/// where a schema such as [`schema::Validated`](crate::schema::Validated)
/// refuses frames). The two stay apart on purpose: the codec's check is the
/// wire format's and travels with the codec value (every endpoint speaking
/// that codec applies it); this hook is the application's, set per client
/// or server, for rules about who may send what (permissions, rate limits).
/// See [`Codec::check`](crate::Codec::check) ("`check` and the receive hook").
pub type ReceiveHook = Arc<dyn Fn(&Frame) -> Result<(), HandlerError> + Send + Sync>;

/// Runs on every outgoing frame before it is queued; an `Err` refuses it
/// (the `send` or `invoke` fails with `Refused`).
pub type SendHook = Arc<dyn Fn(&Outgoing<'_>) -> Result<(), HandlerError> + Send + Sync>;

/// Turns a handler's (or a refused frame's) error into the wire value sent
/// to the peer.
pub type ErrorFormatter = Arc<dyn Fn(&HandlerError) -> serde_json::Value + Send + Sync>;

/// An outgoing frame, as the send hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// What the frame is.
    pub kind: OutgoingKind<'a>,
    /// The encoded frame.
    pub frame: &'a [u8],
}

/// What an outgoing frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingKind<'a> {
    /// The client's auth value.
    Auth,
    /// An event (`id` is `None`) or an invoke call.
    Message {
        /// The event or procedure name.
        name: &'a str,
        /// The invoke id.
        id: Option<u64>,
    },
    /// A reply to an invoke.
    Reply {
        /// The id of the invoke being answered.
        id: u64,
    },
    /// A frame encoded once with [`EncodedMessage::encode`](crate::EncodedMessage::encode)
    /// (sent with `send_encoded`).
    Encoded,
}

/// The JavaScript default error formatter, `String(error)`: `"Error: msg"`,
/// or the handler's explicit wire value.
pub fn default_error_formatter(error: &HandlerError) -> serde_json::Value {
    match error.wire_value() {
        Some(v) => v.clone(),
        None => serde_json::Value::String(error.to_string()),
    }
}

/// Options every connection has, on both sides.
///
/// Start from the defaults and change what you need (new options may come
/// in any release, so the struct cannot be built field by field):
///
/// ```
/// use std::time::Duration;
/// let mut options = ws_messaging::EndpointOptions::default();
/// options.ack_timeout = Duration::from_secs(5);
/// # let _ = options;
/// ```
/// or, on a builder, `.configure(|o| o.ack_timeout = Duration::from_secs(5))`.
#[derive(Clone)]
#[non_exhaustive]
pub struct EndpointOptions {
    /// How long an invoke waits for its reply (and a client for the
    /// `connect` event after sending auth). Default 20 s.
    pub ack_timeout: Duration,
    /// How often to invoke `ping`. Default 20 s; `Duration::ZERO` disables
    /// this side's pings (the peer's are still answered).
    pub ping_interval: Duration,
    /// How long a ping waits for its reply before the connection is closed
    /// with 4008 `Ping timeout`. Default 20 s.
    pub ping_timeout: Duration,
    /// Skip the envelope validation rules. Default `false`.
    pub skip_validation: bool,
    /// Optional receive hook: the application's check of each incoming
    /// frame, after the codec's ([`Codec::check`](crate::Codec::check)).
    pub receive_hook: Option<ReceiveHook>,
    /// Optional send hook.
    pub send_hook: Option<SendHook>,
    /// The error formatter. Default [`default_error_formatter`].
    pub error_formatter: ErrorFormatter,
    /// Frames a connection's outgoing backlog holds before it counts as
    /// full. Default 8192. See [`max_backlog_bytes`](Self::max_backlog_bytes).
    pub max_backlog_frames: usize,
    /// Payload bytes a connection's outgoing backlog holds before it counts
    /// as full. Default 16 MiB. While the backlog is full, `send().await`
    /// and `invoke` wait (backpressure, at most `write_timeout`), and a
    /// frame queued without waiting (a broadcast, a reply) closes the
    /// connection with 4009 `Slow consumer` instead of growing the backlog.
    pub max_backlog_bytes: usize,
    /// How long a send may wait for room in the backlog, and how long the
    /// socket may take no byte at all while frames wait; past it the peer
    /// is closed. Default 30 s.
    pub write_timeout: Duration,
    /// Largest incoming message in bytes; a larger one closes the
    /// connection with 1009 `Message too big`. Default 100 MiB, as the
    /// JavaScript `ws` package.
    pub max_message_size: usize,
    /// Procedure handlers running at once on one connection; a call past
    /// that is answered at once with a `BusyError` (the connection keeps
    /// being read). Default 1024.
    pub max_concurrent_calls: usize,
    /// On a server's connections: how fast a client may send (messages,
    /// bytes, per name); a frame over the limit is refused and a flood
    /// closes the connection with 1008 (see [`RateLimit`]). Default none.
    pub rate_limit: Option<Arc<RateLimit>>,
    /// A client's source of its invokes' trace context
    /// ([`ClientBuilder::trace_context`](crate::ClientBuilder::trace_context)).
    pub(crate) trace_context: Option<TraceContext>,
}

/// Where a client takes the W3C `traceparent` of its invokes from.
pub(crate) type TraceContext = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            ack_timeout: Duration::from_secs(20),
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(20),
            skip_validation: false,
            receive_hook: None,
            send_hook: None,
            error_formatter: Arc::new(default_error_formatter),
            max_backlog_frames: 8192,
            max_backlog_bytes: 16 << 20,
            write_timeout: Duration::from_secs(30),
            max_message_size: 100 << 20,
            max_concurrent_calls: 1024,
            rate_limit: None,
            trace_context: None,
        }
    }
}

impl std::fmt::Debug for EndpointOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointOptions")
            .field("ack_timeout", &self.ack_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("skip_validation", &self.skip_validation)
            .field("receive_hook", &self.receive_hook.is_some())
            .field("send_hook", &self.send_hook.is_some())
            .field("max_backlog_frames", &self.max_backlog_frames)
            .field("max_backlog_bytes", &self.max_backlog_bytes)
            .field("write_timeout", &self.write_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("rate_limit", &self.rate_limit)
            .field("trace_context", &self.trace_context.is_some())
            .finish()
    }
}

impl EndpointOptions {
    pub(crate) fn websocket_config(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

/// The reconnect backoff, one type for every reconnect loop: the client's
/// ([`ClientBuilder::retry`](crate::ClientBuilder::retry)) and the Redis
/// adapter's (`RedisConfig::retry` in `ws-messaging-redis`).
///
/// Attempt `n` (0-based) waits `min((1 + r) * min_timeout * factor^n,
/// max_timeout)`, `r` uniform in `[0, 1)` when `randomize` is on. The
/// defaults are the client's (and the JavaScript package's); the Redis
/// adapter's are [`RetryConfig::doubling`]`(50 ms, 2 s)`.
///
/// Start from the defaults and change what you need:
///
/// ```
/// use std::time::Duration;
/// let retry = ws_messaging::RetryConfig::default()
///     .min_timeout(Duration::from_millis(100))
///     .max_timeout(Duration::from_secs(5))
///     .retries(20);
/// assert_eq!(retry.retries, 20);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Growth factor. Default 2.
    pub factor: f64,
    /// First delay. Default 1 s.
    pub min_timeout: Duration,
    /// Upper bound of a delay. Default none.
    pub max_timeout: Option<Duration>,
    /// Add jitter. Default on.
    pub randomize: bool,
    /// Attempts before giving up. Default 10. (A Redis adapter or emitter
    /// never gives up while it runs: it does not read this.)
    pub retries: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            factor: 2.0,
            min_timeout: Duration::from_secs(1),
            max_timeout: None,
            randomize: true,
            retries: 10,
        }
    }
}

impl RetryConfig {
    /// A delay that doubles from `min` up to `max` (at least `min`), with
    /// no jitter, retried without limit: the Redis adapter's backoff
    /// (`doubling(50 ms, 2 s)` by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = ws_messaging::RetryConfig::doubling(Duration::from_millis(50), Duration::from_secs(2));
    /// assert_eq!(backoff.delay(0), Duration::from_millis(50));
    /// assert_eq!(backoff.delay(2), Duration::from_millis(200));
    /// assert_eq!(backoff.delay(9), Duration::from_secs(2));
    /// ```
    pub fn doubling(min: Duration, max: Duration) -> Self {
        RetryConfig {
            factor: 2.0,
            min_timeout: min,
            max_timeout: Some(max.max(min)),
            randomize: false,
            retries: u32::MAX,
        }
    }

    /// Sets the growth factor.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the first delay.
    pub fn min_timeout(mut self, delay: Duration) -> Self {
        self.min_timeout = delay;
        self
    }

    /// Sets the upper bound of a delay.
    pub fn max_timeout(mut self, delay: Duration) -> Self {
        self.max_timeout = Some(delay);
        self
    }

    /// Turns the jitter on or off.
    pub fn randomize(mut self, on: bool) -> Self {
        self.randomize = on;
        self
    }

    /// Sets the attempts before giving up.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The delay before reconnect attempt `attempt` (0-based). Never
    /// panics: a delay that does not fit is cut to a day.
    ///
    /// ```
    /// use std::time::Duration;
    /// let retry = ws_messaging::RetryConfig::default().randomize(false);
    /// assert_eq!(retry.delay(0), Duration::from_secs(1));
    /// assert_eq!(retry.delay(3), Duration::from_secs(8));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let rand = if self.randomize { rand::random::<f64>() } else { 0.0 };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let ms = (1.0 + rand) * self.min_timeout.as_secs_f64() * 1000.0 * self.factor.powi(exponent);
        // A zero first delay times an infinite factor is NaN: no delay.
        let ms = if ms.is_nan() { 0.0 } else { ms };
        let ms = match self.max_timeout {
            Some(max) => ms.min(max.as_secs_f64() * 1000.0),
            None => ms,
        };
        // Clamp to a day so an absurd factor cannot overflow a Duration.
        Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 86_400.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_is_bounded_whatever_the_settings() {
        let absurd = RetryConfig::default()
            .min_timeout(Duration::ZERO)
            .factor(f64::INFINITY)
            .randomize(false);
        assert_eq!(absurd.delay(3), Duration::ZERO);
        let huge = RetryConfig::default().factor(10.0).randomize(false);
        assert_eq!(huge.delay(u32::MAX), Duration::from_secs(86_400));
    }

    #[test]
    fn the_doubling_backoff_is_the_redis_adapters_old_one() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        let backoff = RetryConfig::doubling(min, max);
        // The adapter's own loop was: `min`, then doubled up to `max`.
        let mut expected = min;
        for attempt in 0..40 {
            assert_eq!(backoff.delay(attempt), expected, "attempt {attempt}");
            expected = (expected * 2).min(max);
        }
        // A `max` below `min` is `min`.
        assert_eq!(RetryConfig::doubling(max, min).delay(5), max);
    }
}
