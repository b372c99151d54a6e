//! What one client may send: per-connection rate limits
//! ([`RateLimit`], in [`EndpointOptions::rate_limit`]), token buckets on
//! the messages and bytes a server's connection reads.
//!
//! A frame over a limit is refused before dispatch: a call is answered at
//! once with the error `RateLimitError` (a
//! [`InvokeError::RateLimited`](crate::InvokeError::RateLimited) on a Rust
//! client, a rejected promise on a JavaScript one), an event is dropped
//! and reported with a `preprocessingError` event. A client that goes on
//! sending while refused (more refused frames in a row than
//! [`RateLimit::close_after`]) is closed with 1008 `Rate limit exceeded`.
//!
//! [`EndpointOptions::rate_limit`]: crate::EndpointOptions::rate_limit
//!
//! And how many may connect: [`Seats`], the caps of
//! [`ServerBuilder::max_connections`](crate::ServerBuilder::max_connections)
//! and [`max_connections_per_ip`](crate::ServerBuilder::max_connections_per_ip).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// A token bucket's rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    per_second: f64,
    burst: f64,
}

/// Per-connection rate limits on what a client sends a server: messages
/// per second (each frame, events and calls alike), optionally bytes per
/// second, and tighter limits for some names. Each is a token bucket: a
/// client may send `burst` at once, then `per_second` on average.
///
/// ```
/// use ws_messaging::{RateLimit, Server};
/// use ws_messaging_json::Json;
///
/// let limit = RateLimit::messages(100)          // 100 messages/s, bursts of 100
///     .burst(200)                               // bursts of 200
///     .bytes(1 << 20, 4 << 20)                  // 1 MiB/s, bursts of 4 MiB
///     .name("search", 5, 10);                   // `search`: 5/s, bursts of 10
/// let builder = Server::<Json>::builder().configure(|o| o.rate_limit = Some(limit.into()));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    messages: Rate,
    bytes: Option<Rate>,
    names: HashMap<String, Rate>,
    close_after: Option<u32>,
}

impl RateLimit {
    /// `per_second` messages a second, in bursts of as many.
    pub fn messages(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        RateLimit {
            messages: Rate {
                per_second,
                burst: per_second,
            },
            bytes: None,
            names: HashMap::new(),
            close_after: None,
        }
    }

    /// Bursts of `burst` messages (at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.messages.burst = f64::from(burst.max(1));
        self
    }

    /// At most `per_second` bytes of frames a second, in bursts of
    /// `burst` (a frame larger than `burst` is always refused: keep it at
    /// least `max_message_size`, or above the largest frame you expect).
    pub fn bytes(mut self, per_second: u64, burst: u64) -> Self {
        self.bytes = Some(Rate {
            per_second: per_second.max(1) as f64,
            burst: burst.max(1) as f64,
        });
        self
    }

    /// Messages named `name` (events or calls): `per_second`, in bursts of
    /// `burst`, besides the overall limit.
    pub fn name(mut self, name: impl Into<String>, per_second: u32, burst: u32) -> Self {
        self.names.insert(
            name.into(),
            Rate {
                per_second: f64::from(per_second.max(1)),
                burst: f64::from(burst.max(1)),
            },
        );
        self
    }

    /// Closes the connection (1008 `Rate limit exceeded`) once this many
    /// frames in a row were refused. Default: the message burst.
    pub fn close_after(mut self, refused: u32) -> Self {
        self.close_after = Some(refused.max(1));
        self
    }

    fn closing_after(&self) -> u32 {
        self.close_after.unwrap_or(self.messages.burst as u32).max(1)
    }
}

/// What becomes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limits.
    Pass,
    /// Over a limit: refused.
    Refuse,
    /// Over a limit, and too many refused in a row: close.
    Close,
}

/// A bucket's content.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }
}

/// One connection's buckets.
#[derive(Debug)]
pub(crate) struct Limiter {
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    limit: Arc<RateLimit>,
    messages: Bucket,
    bytes: Option<Bucket>,
    names: HashMap<String, Bucket>,
    refused: u32,
}

impl Limiter {
    pub(crate) fn new(limit: Arc<RateLimit>) -> Self {
        let now = Instant::now();
        Limiter {
            state: Mutex::new(LimiterState {
                messages: Bucket::full(limit.messages, now),
                bytes: limit.bytes.map(|rate| Bucket::full(rate, now)),
                names: HashMap::new(),
                refused: 0,
                limit,
            }),
        }
    }

    /// Takes a frame of `len` bytes named `name` from the buckets: all of
    /// them or none.
    pub(crate) fn take(&self, name: &str, len: usize) -> Verdict {
        self.take_at(name, len, Instant::now())
    }

    fn take_at(&self, name: &str, len: usize, now: Instant) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        let limit = &*state.limit;
        state.messages.refill(limit.messages, now);
        let mut fits = state.messages.tokens >= 1.0;
        if let (Some(rate), Some(bucket)) = (limit.bytes, state.bytes.as_mut()) {
            bucket.refill(rate, now);
            fits &= bucket.tokens >= len as f64;
        }
        let named = limit.names.get(name).copied();
        if let Some(rate) = named {
            let bucket = state
                .names
                .entry(name.to_string())
                .or_insert_with(|| Bucket::full(rate, now));
            bucket.refill(rate, now);
            fits &= bucket.tokens >= 1.0;
        }
        if !fits {
            state.refused = state.refused.saturating_add(1);
            return if state.refused >= limit.closing_after() {
                Verdict::Close
            } else {
                Verdict::Refuse
            };
        }
        state.refused = 0;
        state.messages.tokens -= 1.0;
        if let Some(bucket) = state.bytes.as_mut() {
            bucket.tokens -= len as f64;
        }
        if named.is_some() {
            if let Some(bucket) = state.names.get_mut(name) {
                bucket.tokens -= 1.0;
            }
        }
        Verdict::Pass
    }
}

/// A server's connection caps and what is taken of them.
#[derive(Debug, Default)]
pub(crate) struct Seats {
    max_total: Option<usize>,
    max_per_ip: Option<usize>,
    taken: Mutex<Taken>,
}

#[derive(Debug, Default)]
struct Taken {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSeat {
    /// The server holds `max_connections` already.
    Full,
    /// The peer's address holds `max_connections_per_ip` already.
    PerIp,
}

impl NoSeat {
    /// The HTTP status an upgrade is refused with.
    pub(crate) fn status(self) -> u16 {
        match self {
            NoSeat::Full => 503,
            NoSeat::PerIp => 429,
        }
    }

    /// The refusal's label in the metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            NoSeat::Full => "max_connections",
            NoSeat::PerIp => "max_connections_per_ip",
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            NoSeat::Full => "too many connections",
            NoSeat::PerIp => "too many connections from this address",
        }
    }
}

impl Seats {
    pub(crate) fn new(max_total: Option<usize>, max_per_ip: Option<usize>) -> Self {
        Seats {
            max_total,
            max_per_ip,
            taken: Mutex::default(),
        }
    }

    /// A seat for a connection from `ip` (`None`: its address is not
    /// known, and only the server's cap applies), given back on drop.
    pub(crate) fn take(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Seat, NoSeat> {
        if self.max_total.is_none() && self.max_per_ip.is_none() {
            return Ok(Seat { seats: None, ip: None });
        }
        // Addresses are counted only to be capped.
        let ip = ip.filter(|_| self.max_per_ip.is_some());
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total.is_some_and(|max| taken.total >= max) {
            return Err(NoSeat::Full);
        }
        let ip = ip.map(canonical);
        if let (Some(ip), Some(max)) = (ip, self.max_per_ip) {
            if taken.per_ip.get(&ip).copied().unwrap_or(0) >= max {
                return Err(NoSeat::PerIp);
            }
        }
        taken.total += 1;
        if let Some(ip) = ip {
            *taken.per_ip.entry(ip).or_insert(0) += 1;
        }
        Ok(Seat {
            seats: Some(self.clone()),
            ip,
        })
    }
}

/// An IPv4 address mapped into IPv6 counts as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One connection's place under the caps.
#[derive(Debug)]
pub(crate) struct Seat {
    /// `None` when nothing is capped.
    seats: Option<Arc<Seats>>,
    ip: Option<IpAddr>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let Some(seats) = &self.seats else { return };
        let mut taken = seats.taken.lock().unwrap_or_else(|e| e.into_inner());
        taken.total = taken.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = taken.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    taken.per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_a_flood_closes() {
        let limiter = Limiter::new(Arc::new(RateLimit::messages(10).burst(5).close_after(3)));
        let t0 = Instant::now();
        let take = |at: Instant| limiter.take_at("x", 10, at);
        for _ in 0..5 {
            assert_eq!(take(t0), Verdict::Pass);
        }
        assert_eq!(take(t0), Verdict::Refuse);
        assert_eq!(take(t0), Verdict::Refuse);
        // 100 ms: one more token.
        let t1 = t0 + std::time::Duration::from_millis(100);
        assert_eq!(take(t1), Verdict::Pass);
        assert_eq!(take(t1), Verdict::Refuse);
        assert_eq!(take(t1), Verdict::Refuse);
        assert_eq!(take(t1), Verdict::Close);
    }

    #[test]
    fn a_name_and_the_bytes_have_buckets_of_their_own() {
        let limiter = Limiter::new(Arc::new(
            RateLimit::messages(100).bytes(1000, 1000).name("search", 1, 2),
        ));
        let t0 = Instant::now();
        let take = |name: &str, len: usize, at: Instant| limiter.take_at(name, len, at);
        assert_eq!(take("search", 10, t0), Verdict::Pass);
        assert_eq!(take("search", 10, t0), Verdict::Pass);
        assert_eq!(take("search", 10, t0), Verdict::Refuse);
        // Other names still pass; a refused frame took nothing.
        assert_eq!(take("other", 980, t0), Verdict::Pass);
        assert_eq!(take("other", 1, t0), Verdict::Refuse);
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(take("search", 10, t1), Verdict::Pass);
    }

    #[test]
    fn seats_are_capped_per_server_and_per_address_and_given_back() {
        let seats = Arc::new(Seats::new(Some(3), Some(2)));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let first = seats.take(Some(a)).unwrap();
        let _second = seats.take(Some(a)).unwrap();
        assert_eq!(seats.take(Some(a)).unwrap_err(), NoSeat::PerIp);
        let _third = seats.take(Some(b)).unwrap();
        assert_eq!(
            seats.take(Some("127.0.0.2".parse().unwrap())).unwrap_err(),
            NoSeat::Full
        );
        drop(first);
        let _again = seats.take(Some(a)).unwrap();
        assert_eq!(seats.take(None).unwrap_err(), NoSeat::Full);
    }
}
