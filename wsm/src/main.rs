//! `wsm`: a command-line client and demo server for ws-messaging endpoints,
//! Rust or JavaScript (`ws-messaging` 2.0.0): call procedures, send and
//! listen to events, an interactive session, a ready-made server, and a
//! round-trip benchmark.
//!
//! Install with `cargo install --path wsm`; run `wsm --help`, or see
//! `wsm/README.md`. Tests: `cargo test -p wsm` (they start `wsm serve` and
//! the JavaScript server of `tests/interop/`, which needs
//! `npm ci --prefix tests/interop`).

mod bench;
mod client;
mod model;
mod output;
mod repl;
mod serve;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ws_messaging_cbor::Cbor;
use ws_messaging_json::Json;
use ws_messaging_msgpack::MsgPack;

use crate::model::Model;
use crate::output::{out, Failure};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the peer answered with an error (printed on stderr)
  2  usage: bad command line, JSON or URL
  3  refused by the server: close code 4003 and its reason (e.g. `bad token`)
  4  timeout: no reply within --timeout, or the WebSocket or auth reply did not come in time
  5  connection failure: unreachable, or the connection was lost
  6  anything else (e.g. `serve` could not listen)

Arguments: each is parsed as JSON when it is valid JSON, as a string otherwise
(`wsm call ws://127.0.0.1:8000 sum 1 2 3.5`, `wsm send URL say hello`).
With --codec msgpack or cbor, {\"$bytes\":\"<base64>\"} is binary, both ways.";

/// A command-line client and demo server for ws-messaging endpoints (Rust
/// or JavaScript).
#[derive(Debug, Parser)]
#[command(name = "wsm", version, after_help = EXIT_CODES, allow_negative_numbers = true)]
struct Cli {
    /// The wire format; both ends must use the same.
    #[arg(long, short = 'c', value_enum, default_value_t = CodecName::Json, global = true)]
    codec: CodecName,
    /// Print one JSON object per stdout line (results, events, status and
    /// errors), never coloured: for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The codecs `wsm` speaks (those with a JavaScript peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CodecName {
    /// JSON text frames (the JavaScript package's default).
    Json,
    /// MessagePack binary frames (msgpack-lite on the JavaScript side).
    Msgpack,
    /// CBOR binary frames (cbor-x on the JavaScript side).
    Cbor,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Invoke a procedure and print its result as JSON.
    #[command(allow_negative_numbers = true)]
    Call {
        /// The server, `ws://HOST:PORT[/PATH]` (`HOST:PORT` and a bare port
        /// on 127.0.0.1 work too).
        url: String,
        /// The procedure.
        procedure: String,
        /// Its arguments: JSON, or text taken as a string.
        args: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Send an event and exit once it is out.
    #[command(allow_negative_numbers = true)]
    Send {
        /// The server.
        url: String,
        /// The event.
        event: String,
        /// Its arguments: JSON, or text taken as a string.
        args: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Stay connected (reconnecting when the connection drops) and print
    /// every event received as one JSON line `{"event":..,"args":[..]}`.
    Listen {
        /// The server.
        url: String,
        /// Only these events (default: every event).
        events: Vec<String>,
        /// Answer the server's invokes of NAME with this fixed result
        /// (JSON or text); each is printed as `{"invoked":..}`. Repeatable.
        #[arg(long, value_name = "NAME=RESULT")]
        register: Vec<String>,
        /// Send the event NAME with these arguments (a JSON array, or one
        /// value) after every (re)connection. Repeatable, sent in order.
        #[arg(long, value_name = "NAME=ARGS")]
        send: Vec<String>,
        /// Exit (0) after printing this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Reconnect attempts in a row before giving up (default: never
        /// give up).
        #[arg(long, value_name = "N")]
        retries: Option<u32>,
        /// Resume the session after a drop (the recovery extension): the
        /// events sent meanwhile are printed once, in order; a resume that
        /// fails prints `{"local":"resume","resumed":false,"reason":..}`.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// An interactive session: `call NAME ARGS...`, `send NAME ARGS...`,
    /// `wait EVENT`, `history`, `help`, `quit`; events are printed as they
    /// arrive; a lost connection is made again by the next command. Reads
    /// commands from stdin, so it can be scripted with a pipe.
    Repl {
        /// The server.
        url: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Run a demo server: procedures echo, sum, sleep, fail, whoami, join,
    /// leave, count; events say→said, shout→shouted (to everyone),
    /// call-me, to-room→room, tell→told.
    Serve {
        /// The address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The port (0 picks a free one).
        #[arg(long, short = 'p', default_value_t = 8000)]
        port: u16,
        /// Accept only clients whose auth is `{"token":T}` (others are
        /// refused with 4003 `bad token`); without it every client is
        /// accepted.
        #[arg(long, value_name = "T")]
        auth_token: Option<String>,
    },
    /// Drive `echo` round trips with N in flight on one connection, then
    /// print throughput and latency percentiles.
    Bench {
        /// The server (or --self).
        #[arg(required_unless_present = "self_server", conflicts_with = "self_server")]
        url: Option<String>,
        /// Start a server in this process and benchmark it.
        #[arg(long = "self")]
        self_server: bool,
        /// Invokes in flight at once.
        #[arg(long, short = 'n', default_value_t = 64, value_name = "N")]
        in_flight: usize,
        /// How long to run, in seconds.
        #[arg(long, short = 'd', default_value_t = 5.0, value_name = "S")]
        duration: f64,
        /// The argument of each `echo` (JSON).
        #[arg(
            long,
            default_value = r#"{"id":123,"name":"alice","tags":["a","b","c"],"score":3.14,"active":true}"#
        )]
        payload: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// How a client connects.
#[derive(Debug, Clone, Args)]
struct ConnectArgs {
    /// The auth value: JSON, or @FILE to read it from a file (default `{}`).
    #[arg(long, short = 'a', value_name = "JSON|@FILE")]
    auth: Option<String>,
    /// Milliseconds to wait for the socket, the auth reply and each reply.
    #[arg(long, short = 't', default_value_t = 10_000, value_name = "MS")]
    timeout: u64,
}

/// What every client command gets.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    /// The `ws://` URL.
    pub(crate) url: String,
    /// The auth value as JSON, if given.
    pub(crate) auth: Option<serde_json::Value>,
    /// `--timeout`.
    pub(crate) timeout: Duration,
}

impl ConnectArgs {
    fn resolve(&self, url: &str) -> Result<Connect, Failure> {
        let auth = match self.auth.as_deref() {
            None => None,
            Some(text) => Some(auth_value(text)?),
        };
        Ok(Connect {
            url: normalize_url(url)?,
            auth,
            timeout: Duration::from_millis(self.timeout.max(1)),
        })
    }
}

/// `--auth`: JSON, or `@FILE` holding JSON.
fn auth_value(text: &str) -> Result<serde_json::Value, Failure> {
    let (json, source) = match text.strip_prefix('@') {
        Some(path) => {
            let path = PathBuf::from(path);
            let json = std::fs::read_to_string(&path)
                .map_err(|e| Failure::usage(format!("--auth @{}: {e}", path.display())))?;
            (json, format!("--auth @{}", path.display()))
        }
        None => (text.to_string(), "--auth".to_string()),
    };
    serde_json::from_str(&json).map_err(|e| Failure::usage(format!("{source}: not JSON: {e}")))
}

/// `ws://...` and `wss://...` as given (the scheme in lower case);
/// `HOST:PORT` gets `ws://`, a bare port is on 127.0.0.1. Any other scheme
/// (`http://`) is a usage error.
pub(crate) fn normalize_url(url: &str) -> Result<String, Failure> {
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "ws" && scheme != "wss" {
            return Err(Failure::usage(format!(
                "invalid URL `{url}`: the scheme must be ws:// or wss://"
            )));
        }
        Ok(format!("{scheme}://{rest}"))
    } else if !url.is_empty() && url.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("ws://127.0.0.1:{url}"))
    } else {
        Ok(format!("ws://{url}"))
    }
}

/// `bench --duration`: a positive number of seconds that a clock can add
/// to now.
fn bench_duration(seconds: f64) -> Result<Duration, Failure> {
    let duration = (seconds.is_finite() && seconds > 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).ok())
        .flatten()
        .filter(|d| std::time::Instant::now().checked_add(*d).is_some())
        .filter(|d| !d.is_zero());
    duration.ok_or_else(|| {
        Failure::usage(format!(
            "--duration {seconds}: must be a positive number of seconds, not too large to count"
        ))
    })
}

fn main() {
    let cli = Cli::parse();
    output::init(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            out().failure(&Failure::new(output::Kind::Other, format!("could not start: {e}")));
            std::process::exit(output::Kind::Other.code());
        }
    };
    let result = runtime.block_on(async {
        match cli.codec {
            CodecName::Json => run::<Json>(cli.command).await,
            CodecName::Msgpack => run::<MsgPack>(cli.command).await,
            CodecName::Cbor => run::<Cbor>(cli.command).await,
        }
    });
    // Do not wait for tasks still running (a server's connections, a
    // reader of stdin): the outcome is known.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::exit(0),
        Err(failure) => {
            out().failure(&failure);
            std::process::exit(failure.kind.code());
        }
    }
}

async fn run<M: Model>(command: Command) -> Result<(), Failure> {
    match command {
        Command::Call {
            url,
            procedure,
            args,
            connect,
        } => client::call::<M>(&connect.resolve(&url)?, &procedure, &args).await,
        Command::Send {
            url,
            event,
            args,
            connect,
        } => client::send::<M>(&connect.resolve(&url)?, &event, &args).await,
        Command::Listen {
            url,
            events,
            register,
            send,
            count,
            retries,
            resume,
            connect,
        } => {
            let options = client::ListenOptions {
                events,
                register: pairs(&register, "--register")?,
                send: pairs(&send, "--send")?,
                count,
                retries,
                resume,
            };
            client::listen::<M>(&connect.resolve(&url)?, options).await
        }
        Command::Repl { url, connect } => repl::run::<M>(&connect.resolve(&url)?).await,
        Command::Serve { host, port, auth_token } => serve::run::<M>(&host, port, auth_token).await,
        Command::Bench {
            url,
            self_server: _,
            in_flight,
            duration,
            payload,
            connect,
        } => {
            let duration = bench_duration(duration)?;
            let payload: serde_json::Value =
                serde_json::from_str(&payload).map_err(|e| Failure::usage(format!("--payload: not JSON: {e}")))?;
            let options = bench::Options {
                in_flight: in_flight.max(1),
                duration,
                payload,
            };
            // Without a URL it is `--self` (clap requires one of the two).
            let url = url.unwrap_or_default();
            bench::run::<M>(&connect.resolve(&url)?, url.is_empty(), options).await
        }
    }
}

/// `NAME=JSON` options, split at the first `=`; the value is JSON, or text
/// taken as a string.
fn pairs(items: &[String], flag: &str) -> Result<Vec<(String, serde_json::Value)>, Failure> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_string(), model::bare(value))),
            _ => Err(Failure::usage(format!("{flag} {item:?}: expected NAME=JSON"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn urls() {
        let url = |u: &str| normalize_url(u).unwrap();
        assert_eq!(url("ws://h:1/p"), "ws://h:1/p");
        assert_eq!(url("WSS://h:1/p"), "wss://h:1/p");
        assert_eq!(url("8000"), "ws://127.0.0.1:8000");
        assert_eq!(url("localhost:8000"), "ws://localhost:8000");
        for bad in ["http://h:1", "https://h", "ftp://h", "://h"] {
            let failure = normalize_url(bad).unwrap_err();
            assert_eq!(failure.kind, output::Kind::Usage, "{bad}");
        }
    }

    #[test]
    fn bench_durations() {
        assert_eq!(bench_duration(0.5).unwrap(), Duration::from_millis(500));
        for bad in [0.0, -1.0, 1e-12, 1e20, 1e300, f64::INFINITY, f64::NAN] {
            assert!(bench_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn negative_numbers_are_arguments() {
        let cli = Cli::try_parse_from(["wsm", "call", "8000", "sum", "-1", "2.5", "--timeout", "5"]).unwrap();
        let Command::Call { args, connect, .. } = cli.command else {
            panic!("not a call")
        };
        assert_eq!(args, ["-1", "2.5"]);
        assert_eq!(connect.timeout, 5);
    }

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        let parsed = pairs(&["a=1".into(), "b=x=y".into()], "--register").unwrap();
        assert_eq!(
            parsed,
            [
                ("a".to_string(), serde_json::json!(1)),
                ("b".to_string(), serde_json::json!("x=y"))
            ]
        );
        assert!(pairs(&["=1".into()], "--register").is_err());
        assert!(pairs(&["nothing".into()], "--register").is_err());
    }
}
