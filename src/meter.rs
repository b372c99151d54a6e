//! What the library counts, through the `metrics` facade (feature
//! `metrics`; the application installs a recorder, such as
//! `metrics-exporter-prometheus`). Without the feature every function here
//! is empty and inlined away. The metrics, all prefixed `ws_messaging_`,
//! are listed in the README's "Operating it".
//!
//! Procedure names label only registered procedures (a call of any other
//! name counts as `(unregistered)`), so that a client cannot grow the
//! number of series.

use std::time::Duration;

/// A start time, when the feature is on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(#[cfg(feature = "metrics")] std::time::Instant);

impl Clock {
    #[inline]
    pub(crate) fn start() -> Self {
        Clock(
            #[cfg(feature = "metrics")]
            std::time::Instant::now(),
        )
    }

    #[inline]
    fn elapsed(self) -> Duration {
        #[cfg(feature = "metrics")]
        return self.0.elapsed();
        #[cfg(not(feature = "metrics"))]
        Duration::ZERO
    }
}

/// The codec's label: its type's last path segment, lower case (`json`).
#[cfg(feature = "metrics")]
fn codec_label<C: ?Sized>() -> String {
    let name = std::any::type_name::<C>();
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base).to_ascii_lowercase()
}

/// A server connection was accepted by the connection hook.
#[inline]
pub(crate) fn connection_opened() {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("ws_messaging_connections_opened_total").increment(1);
        metrics::gauge!("ws_messaging_connections").increment(1.0);
    }
}

/// An accepted server connection ended with `code`.
#[inline]
pub(crate) fn connection_closed(code: u16) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("ws_messaging_connections_closed_total", "code" => code.to_string()).increment(1);
        metrics::gauge!("ws_messaging_connections").decrement(1.0);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = code;
}

/// A connection was refused before it opened: `auth` (the connection hook
/// or the auth timeout), `origin`, `max_connections`,
/// `max_connections_per_ip`, `draining`.
#[inline]
pub(crate) fn connection_refused(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("ws_messaging_connections_refused_total", "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// A data frame of `bytes` was read.
#[inline]
pub(crate) fn frame_in<C: ?Sized>(bytes: usize) {
    #[cfg(feature = "metrics")]
    {
        let codec = codec_label::<C>();
        metrics::counter!("ws_messaging_frames_received_total", "codec" => codec.clone()).increment(1);
        metrics::counter!("ws_messaging_bytes_received_total", "codec" => codec).increment(bytes as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = bytes;
}

/// A data frame of `bytes` was written.
#[inline]
pub(crate) fn frame_out<C: ?Sized>(bytes: usize) {
    #[cfg(feature = "metrics")]
    {
        let codec = codec_label::<C>();
        metrics::counter!("ws_messaging_frames_sent_total", "codec" => codec.clone()).increment(1);
        metrics::counter!("ws_messaging_bytes_sent_total", "codec" => codec).increment(bytes as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = bytes;
}

/// A call of the peer's was answered: `outcome` is `ok`, `error`,
/// `no_procedure`, `busy` or `rate_limited`; `since` when a handler ran.
#[inline]
pub(crate) fn call(name: &str, outcome: &'static str, since: Option<Clock>) {
    #[cfg(feature = "metrics")]
    {
        let name = name.to_string();
        metrics::counter!("ws_messaging_calls_total", "name" => name.clone(), "outcome" => outcome).increment(1);
        if let Some(since) = since {
            metrics::histogram!("ws_messaging_call_duration_seconds", "name" => name).record(since.elapsed());
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (name, outcome, since.map(Clock::elapsed));
}

/// An invoke of ours ended: `outcome` is `ok`, `error`, `timeout`,
/// `connection` or `not_sent`.
#[inline]
pub(crate) fn invoke(name: &str, outcome: &'static str, since: Clock) {
    #[cfg(feature = "metrics")]
    {
        let name = name.to_string();
        metrics::counter!("ws_messaging_invokes_total", "name" => name.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("ws_messaging_invoke_duration_seconds", "name" => name).record(since.elapsed());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (name, outcome, since.elapsed());
}

/// A frame over a rate limit was refused (`kind`: `call` or `event`).
#[inline]
pub(crate) fn rate_limited(kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("ws_messaging_rate_limited_total", "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// Frames entered (`+n`) or left (`-n`) the outgoing backlogs.
#[inline]
pub(crate) fn backlog(frames: i64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("ws_messaging_backlog_frames").increment(frames as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = frames;
}

/// A connection was closed as a slow consumer (4009).
#[inline]
pub(crate) fn slow_consumer() {
    #[cfg(feature = "metrics")]
    metrics::counter!("ws_messaging_slow_consumer_closes_total").increment(1);
}

/// A broadcast reached `deliveries` connections of this node.
#[inline]
pub(crate) fn broadcast(deliveries: usize) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("ws_messaging_broadcasts_total").increment(1);
        metrics::counter!("ws_messaging_deliveries_total").increment(deliveries as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = deliveries;
}
