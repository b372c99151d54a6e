//! Logging through [`tracing`](https://docs.rs/tracing) (the crate feature
//! `tracing`, on by default). Without the feature every macro here expands
//! to nothing.
//!
//! What is logged, and at which level:
//! - a span `ws_messaging.connection` per connection (`id`, `peer` on a
//!   server; `url` on a client) around everything the connection does;
//! - `debug`: connections opened and closed (code, reason), each handled
//!   call (span `ws_messaging.call` with `name` and `id`; its outcome and
//!   duration when it ends), each invoke (name, id, outcome, duration),
//!   calls of a procedure that is not registered (`name`, `id`: the peer
//!   got `NoProcedureError`), events that no listener takes (`event`);
//! - `warn`: frames refused before dispatch (`preprocessingError`),
//!   listeners whose arguments do not decode or that panic, procedures
//!   that panic (inside their call span: name and id), slow consumers
//!   closed, replies that could not be sent;
//! - `info`: a client giving up, a server refusing a client (the
//!   connection hook's error, or the auth value that did not decode);
//! - nothing per frame at `info` or above: a peer cannot flood the logs
//!   unless `debug` is on.
//!
//! Every event's target starts with `ws_messaging`. To find a typo in an
//! event or procedure name, or why a client is refused:
//! `RUST_LOG=ws_messaging=debug` (with `tracing-subscriber`'s `EnvFilter`);
//! `RUST_LOG=ws_messaging=info` shows refusals and give-ups only.

#[cfg(feature = "tracing")]
pub(crate) use tracing::{debug, debug_span, info, warn, Instrument};

/// The time now if `debug` events are logged, to report a duration with
/// [`since`]; otherwise `None`, and no clock is read.
#[cfg(feature = "tracing")]
pub(crate) fn debug_clock() -> Option<std::time::Instant> {
    tracing::enabled!(tracing::Level::DEBUG).then(std::time::Instant::now)
}

/// The time since `started` (zero when the clock was not read).
#[cfg(feature = "tracing")]
pub(crate) fn since(started: Option<std::time::Instant>) -> std::time::Duration {
    started.map_or(std::time::Duration::ZERO, |at| at.elapsed())
}

#[cfg(not(feature = "tracing"))]
mod off {
    macro_rules! nothing {
        ($($t:tt)*) => {{}};
    }
    macro_rules! no_span {
        ($($t:tt)*) => {
            $crate::trace::Span
        };
    }
    pub(crate) use no_span as debug_span;
    pub(crate) use nothing as debug;
    pub(crate) use nothing as info;
    pub(crate) use nothing as warn;

    /// Stands in for `tracing::Span`.
    #[derive(Debug, Clone)]
    pub(crate) struct Span;

    impl Span {
        pub(crate) fn enter(&self) -> Entered {
            Entered
        }
    }

    /// Stands in for `tracing::span::Entered`.
    #[derive(Debug)]
    pub(crate) struct Entered;

    /// Stands in for `tracing::Instrument`.
    pub(crate) trait Instrument: Sized {
        fn instrument(self, _: Span) -> Self {
            self
        }
    }

    impl<T> Instrument for T {}
}

#[cfg(not(feature = "tracing"))]
pub(crate) use off::{debug, debug_span, info, warn, Instrument, Span};
