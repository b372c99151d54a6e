//! What the library counts, through the `metrics` facade (feature
//! `metrics`; the application installs a recorder, such as
//! `metrics-exporter-prometheus`). Without the feature every function here
//! is empty and inlined away. The metrics, all prefixed `ws_messaging_`,
//! are listed in the README's "Operating it".
//!
//! Procedure names label only registered procedures (a call of any other
//! name counts as `(unregistered)`), so that a client cannot grow the
//! number of series. Handles are taken from the recorder once (per codec,
//! per procedure at its registration, per metric): install the recorder
//! before building the server.

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

/// A metric without labels, its handle taken from the recorder once (the
/// application installs its recorder before it starts serving).
#[cfg(feature = "metrics")]
macro_rules! once {
    (counter $name:literal) => {{
        static HANDLE: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
        HANDLE.get_or_init(|| metrics::counter!($name))
    }};
    (gauge $name:literal) => {{
        static HANDLE: std::sync::OnceLock<metrics::Gauge> = std::sync::OnceLock::new();
        HANDLE.get_or_init(|| metrics::gauge!($name))
    }};
}

/// A connection's frame counters, for its codec: taken from the recorder
/// once per codec, shared by its connections.
#[cfg(feature = "metrics")]
#[derive(Clone, Default)]
pub(crate) struct Frames {
    counters: Option<std::sync::Arc<FrameCounters>>,
}

#[cfg(feature = "metrics")]
struct FrameCounters {
    frames_in: metrics::Counter,
    bytes_in: metrics::Counter,
    frames_out: metrics::Counter,
    bytes_out: metrics::Counter,
}

#[cfg(feature = "metrics")]
impl Frames {
    /// The counters of codec `C`.
    pub(crate) fn of<C: 'static>() -> Self {
        {
            use std::any::TypeId;
            use std::collections::HashMap;
            use std::sync::{Arc, Mutex, OnceLock};
            static BY_CODEC: OnceLock<Mutex<HashMap<TypeId, Arc<FrameCounters>>>> = OnceLock::new();
            let mut by_codec = BY_CODEC
                .get_or_init(Mutex::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let counters = by_codec.entry(TypeId::of::<C>()).or_insert_with(|| {
                let codec = codec_label::<C>();
                Arc::new(FrameCounters {
                    frames_in: metrics::counter!("ws_messaging_frames_received_total", "codec" => codec.clone()),
                    bytes_in: metrics::counter!("ws_messaging_bytes_received_total", "codec" => codec.clone()),
                    frames_out: metrics::counter!("ws_messaging_frames_sent_total", "codec" => codec.clone()),
                    bytes_out: metrics::counter!("ws_messaging_bytes_sent_total", "codec" => codec),
                })
            });
            Frames {
                counters: Some(counters.clone()),
            }
        }
    }

    /// What a connection's task counted since its last report, and the
    /// change of its backlog's length.
    #[inline]
    pub(crate) fn report(&self, counts: &crate::connection::Counts, backlog: i64) {
        {
            if let Some(counters) = &self.counters {
                if counts.frames_in != 0 {
                    counters.frames_in.increment(counts.frames_in);
                    counters.bytes_in.increment(counts.bytes_in);
                }
                if counts.frames_out != 0 {
                    counters.frames_out.increment(counts.frames_out);
                    counters.bytes_out.increment(counts.bytes_out);
                }
            }
            if backlog != 0 {
                once!(gauge "ws_messaging_backlog_frames").increment(backlog as f64);
            }
        }
    }
}

/// A procedure's call counters, taken when it is registered.
#[derive(Clone)]
pub(crate) struct Calls {
    #[cfg(feature = "metrics")]
    ok: metrics::Counter,
    #[cfg(feature = "metrics")]
    error: metrics::Counter,
    #[cfg(feature = "metrics")]
    duration: std::sync::Arc<Durations>,
}

impl Calls {
    /// The counters of the procedure `name`.
    pub(crate) fn of(name: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let name = name.to_string();
            Calls {
                ok: metrics::counter!("ws_messaging_calls_total", "name" => name.clone(), "outcome" => "ok"),
                error: metrics::counter!("ws_messaging_calls_total", "name" => name.clone(), "outcome" => "error"),
                duration: Durations::new(metrics::histogram!("ws_messaging_call_duration_seconds", "name" => name)),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = name;
            Calls {}
        }
    }

    /// A call of it was answered, `ok` or not, its handler started at
    /// `since`.
    #[inline]
    pub(crate) fn answered(&self, ok: bool, since: Clock) {
        #[cfg(feature = "metrics")]
        {
            if ok { &self.ok } else { &self.error }.increment(1);
            self.duration.record(since.elapsed());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (ok, since.elapsed());
    }
}

/// Durations of one metric, aggregated before the recorder sees them: one
/// atomic add per value into log-linear buckets (four per power of two of
/// nanoseconds, each value within 12.5% of its bucket's middle), handed
/// to the recorder's histogram (`record_many`, each bucket's middle) by a
/// thread of the library's once a second. A recorder's own histogram is
/// several times dearer per value than the call it measures is cheap.
#[cfg(feature = "metrics")]
pub(crate) struct Durations {
    histogram: metrics::Histogram,
    buckets: Box<[std::sync::atomic::AtomicU64]>,
}

#[cfg(feature = "metrics")]
impl Durations {
    const BUCKETS: usize = 64 * 4;

    /// Durations for `histogram`, flushed once a second from now on.
    fn new(histogram: metrics::Histogram) -> std::sync::Arc<Self> {
        use std::sync::{Arc, Mutex, OnceLock, Weak};
        static ALL: OnceLock<Mutex<Vec<Weak<Durations>>>> = OnceLock::new();
        let durations = Arc::new(Durations {
            histogram,
            buckets: (0..Self::BUCKETS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        });
        let all = ALL.get_or_init(|| {
            let _ = std::thread::Builder::new()
                .name("ws-messaging-metrics".into())
                .spawn(|| loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Some(all) = ALL.get() else { continue };
                    let live: Vec<Arc<Durations>> = {
                        let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
                        all.retain(|d| d.strong_count() > 0);
                        all.iter().filter_map(Weak::upgrade).collect()
                    };
                    for durations in live {
                        durations.flush();
                    }
                });
            Mutex::default()
        });
        all.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&durations));
        durations
    }

    /// Counts `duration` in its bucket.
    #[inline]
    fn record(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket(nanos)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The bucket of `nanos`: below 4 ns, one each; above, four per power
    /// of two.
    fn bucket(nanos: u64) -> usize {
        if nanos < 4 {
            return nanos as usize;
        }
        let power = 63 - nanos.leading_zeros() as usize;
        let quarter = ((nanos >> (power - 2)) & 3) as usize;
        (power * 4 + quarter).min(Self::BUCKETS - 1)
    }

    /// The middle of bucket `index`, in seconds.
    fn middle(index: usize) -> f64 {
        if index < 8 {
            // Buckets 0..3 are exact; 4..7 are never used (power 1 would
            // be below 4 ns).
            return index as f64 / 1e9;
        }
        let (power, quarter) = (index / 4, (index % 4) as u64);
        let width = 1u64 << (power - 2);
        let low = (4 + quarter) << (power - 2);
        (low as f64 + width as f64 / 2.0) / 1e9
    }

    /// Hands what was counted to the recorder.
    fn flush(&self) {
        for (index, bucket) in self.buckets.iter().enumerate() {
            let n = bucket.swap(0, std::sync::atomic::Ordering::Relaxed);
            if n > 0 {
                self.histogram.record_many(Self::middle(index), n as usize);
            }
        }
    }
}

/// A server connection was accepted by the connection hook.
#[inline]
pub(crate) fn connection_opened() {
    #[cfg(feature = "metrics")]
    {
        once!(counter "ws_messaging_connections_opened_total").increment(1);
        once!(gauge "ws_messaging_connections").increment(1.0);
    }
}

/// An accepted server connection ended with `code`.
#[inline]
pub(crate) fn connection_closed(code: u16) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("ws_messaging_connections_closed_total", "code" => code.to_string()).increment(1);
        once!(gauge "ws_messaging_connections").decrement(1.0);
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

/// A call of the peer's was refused before a handler ran: `outcome` is
/// `no_procedure` or `busy` (see [`Calls`] for the others).
#[inline]
pub(crate) fn call_refused(name: &str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("ws_messaging_calls_total", "name" => name.to_string(), "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, outcome);
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

/// A connection was closed as a slow consumer (4009).
#[inline]
pub(crate) fn slow_consumer() {
    #[cfg(feature = "metrics")]
    once!(counter "ws_messaging_slow_consumer_closes_total").increment(1);
}

/// A broadcast reached `deliveries` connections of this node.
#[inline]
pub(crate) fn broadcast(deliveries: usize) {
    #[cfg(feature = "metrics")]
    {
        once!(counter "ws_messaging_broadcasts_total").increment(1);
        once!(counter "ws_messaging_deliveries_total").increment(deliveries as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = deliveries;
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::Durations;

    #[test]
    fn a_duration_lands_in_a_bucket_whose_middle_is_within_an_eighth() {
        for nanos in [4u64, 5, 7, 8, 100, 999, 23_456, 1_000_000, 3_000_000_000] {
            let middle = Durations::middle(Durations::bucket(nanos)) * 1e9;
            let error = (middle - nanos as f64).abs() / nanos as f64;
            assert!(error <= 0.125 + 1e-9, "{nanos} ns -> {middle} ns");
        }
        assert_eq!(Durations::middle(Durations::bucket(3)), 3e-9);
    }
}
