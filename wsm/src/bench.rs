//! `wsm bench URL|--self`: `echo` round trips with N invokes in flight on
//! one connection for a while, then throughput and latency percentiles.
//!
//! A live progress line goes to stderr when it is a terminal; the table (or
//! with `--json` one JSON object) to stdout. `--self` benchmarks a `wsm
//! serve` started in this process. Run: `wsm bench --self --duration 3`;
//! tested by `wsm/tests/cli.rs` (`cargo test -p wsm`). The numbers are for
//! reading, not asserting: the tests check only that the run reports
//! consistently.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde_json::{json, Value as Json};

use crate::client;
use crate::model::Model;
use crate::output::{object, out, Failure};
use crate::serve;
use crate::Connect;

/// `wsm bench`'s settings.
#[derive(Debug)]
pub(crate) struct Options {
    /// Invokes in flight at once.
    pub(crate) in_flight: usize,
    /// How long to run.
    pub(crate) duration: Duration,
    /// The argument of each `echo`.
    pub(crate) payload: Json,
}

/// Runs the benchmark against `c.url`, or an in-process server.
pub(crate) async fn run<M: Model>(c: &Connect, self_server: bool, options: Options) -> Result<(), Failure> {
    let server = match self_server {
        true => Some(serve::start::<M>("127.0.0.1", 0, None, false).await?),
        false => None,
    };
    let c = match &server {
        Some(server) => Connect {
            url: format!("ws://{}", server.local_addr().expect("a bound server")),
            ..c.clone()
        },
        None => c.clone(),
    };
    let payload = Arc::new(M::from_json(options.payload).map_err(|e| Failure::usage(format!("--payload: {e}")))?);
    let client = client::build::<M>(&c, None, None)?;
    client::connect(&client, &c).await?;
    // One call first: a server without `echo` fails here, not in the table.
    client
        .invoke_with_timeout::<_, IgnoredAny>("echo", (&*payload,), c.timeout)
        .await
        .map_err(|e| Failure::invoke("echo", e))?;

    let done = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<Failure>>> = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start
        .checked_add(options.duration)
        .ok_or_else(|| Failure::usage("--duration: too large to count"))?;
    let workers: Vec<_> = (0..options.in_flight)
        .map(|_| {
            let (client, payload, done) = (client.clone(), payload.clone(), done.clone());
            let (errors, first_error, timeout) = (errors.clone(), first_error.clone(), c.timeout);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match client
                        .invoke_with_timeout::<_, IgnoredAny>("echo", (&*payload,), timeout)
                        .await
                    {
                        Ok(_) => {
                            latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap()
                                .get_or_insert_with(|| Failure::invoke("echo", e));
                            break;
                        }
                    }
                }
                latencies
            })
        })
        .collect();

    let progress = (!out().json && std::io::stderr().is_terminal()).then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let elapsed = start.elapsed().as_secs_f64();
                let calls = done.load(Ordering::Relaxed);
                eprint!(
                    "\r\x1b[2K{elapsed:5.1} s  {:>10} calls  {:>9}/s",
                    thousands(calls),
                    thousands((calls as f64 / elapsed.max(1e-9)) as u64)
                );
            }
        })
    });

    let mut latencies = Vec::new();
    for worker in workers {
        if let Ok(mut l) = worker.await {
            latencies.append(&mut l);
        }
    }
    let elapsed = start.elapsed();
    if let Some(progress) = progress {
        progress.abort();
        eprint!("\r\x1b[2K");
    }
    client::close(&client, Duration::from_secs(1)).await;
    if let Some(server) = server {
        server.close(ws_messaging::CloseCode::GOING_AWAY).await;
    }

    latencies.sort_unstable();
    let report = Report {
        url: c.url.clone(),
        codec: M::NAME,
        in_flight: options.in_flight,
        seconds: elapsed.as_secs_f64(),
        calls: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        p50: percentile(&latencies, 0.50),
        p90: percentile(&latencies, 0.90),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or(0),
    };
    report.print(self_server);
    let failure = first_error.lock().unwrap().take();
    failure.map_or(Ok(()), Err)
}

/// The nearest-rank percentile `q` of sorted `values` (0 when empty).
fn percentile(values: &[u32], q: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// What a run measured.
#[derive(Debug)]
struct Report {
    url: String,
    codec: &'static str,
    in_flight: usize,
    seconds: f64,
    calls: u64,
    errors: u64,
    /// Latencies in microseconds.
    p50: u32,
    p90: u32,
    p99: u32,
    max: u32,
}

impl Report {
    fn throughput(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }

    fn print(&self, self_server: bool) {
        if out().json {
            let latency = object(
                &[
                    ("p50", json!(self.p50)),
                    ("p90", json!(self.p90)),
                    ("p99", json!(self.p99)),
                    ("max", json!(self.max)),
                ],
                false,
            );
            let fields = [
                ("url", json!(self.url)),
                ("codec", json!(self.codec)),
                ("in_flight", json!(self.in_flight)),
                ("seconds", json!(self.seconds)),
                ("calls", json!(self.calls)),
                ("errors", json!(self.errors)),
                ("throughput", json!(self.throughput())),
            ];
            let line = object(&fields, false);
            out().line(&format!("{},\"latency_us\":{latency}}}", &line[..line.len() - 1]));
            return;
        }
        let server = if self_server { " (in-process server)" } else { "" };
        out().line(&format!(
            "echo round trips on {}{server}, {}, {} in flight",
            self.url, self.codec, self.in_flight
        ));
        out().line(&format!(
            "  {:>12} {:>8} {:>9} {:>12}",
            "calls", "errors", "seconds", "calls/s"
        ));
        out().line(&format!(
            "  {:>12} {:>8} {:>9.2} {:>12}",
            thousands(self.calls),
            thousands(self.errors),
            self.seconds,
            thousands(self.throughput().round() as u64)
        ));
        out().line(&format!(
            "  {:>12} {:>10} {:>10} {:>10} {:>10}",
            "latency", "p50", "p90", "p99", "max"
        ));
        out().line(&format!(
            "  {:>12} {:>10} {:>10} {:>10} {:>10}",
            "",
            micros(self.p50),
            micros(self.p90),
            micros(self.p99),
            micros(self.max)
        ));
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds for a person: `850 µs`, `1.25 ms`, `2.10 s`.
fn micros(us: u32) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.2} ms", f64::from(us) / 1e3),
        _ => format!("{:.2} s", f64::from(us) / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 50);
        assert_eq!(percentile(&values, 0.9), 90);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[7], 0.5), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(1250), "1.25 ms");
        assert_eq!(micros(2_100_000), "2.10 s");
    }
}
