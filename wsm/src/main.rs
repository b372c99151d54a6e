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

With several calls (`call URL a ARGS -- b ARGS`, `call URL -`): the code of the
first call that failed (the others still run, unless the connection is lost).

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
    ///
    /// `wsm call URL a ARGS... -- b ARGS... -- c` runs the calls in order on
    /// one connection (options go before the first `--`); `wsm call URL -`
    /// reads the calls from stdin, one `NAME ARGS...` a line (blank lines
    /// and `#` comments skipped). Each result is printed as one call's is;
    /// a failed call is reported and the next one runs; the exit code is
    /// that of the first failure (0 if none); a lost connection ends the
    /// run.
    #[command(allow_negative_numbers = true)]
    Call {
        /// The server, `ws://HOST:PORT[/PATH]` (`HOST:PORT` and a bare port
        /// on 127.0.0.1 work too).
        url: String,
        /// The procedure (`-`: read the calls from stdin).
        procedure: String,
        /// Its arguments: JSON, or text taken as a string.
        args: Vec<String>,
        /// More calls on the same connection: `-- PROCEDURE ARGS... [-- PROCEDURE
        /// ARGS...]...`.
        #[arg(last = true, value_name = "CALLS")]
        more: Vec<String>,
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
        /// Invoke NAME with ARGS (words as on `wsm call`'s command line:
        /// `--call 'sum=1 2 3.5'`) after every (re)connection and print
        /// `{"call":NAME,"result":..}` or `{"call":NAME,"error":{..}}`.
        /// Repeatable, run in order.
        #[arg(long, value_name = "NAME[=ARGS]")]
        call: Vec<String>,
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
    /// A header for the WebSocket upgrade request (`--header 'X-Tenant:
    /// acme'`). Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// The `Cookie` header of the upgrade request (`--cookie
    /// 'session=abc; theme=dark'`). Repeatable: joined with `; `.
    #[arg(long = "cookie", value_name = "VALUE")]
    cookies: Vec<String>,
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
    /// `--header` and `--cookie`: the upgrade request's extra headers.
    pub(crate) headers: Vec<(String, String)>,
}

impl ConnectArgs {
    fn resolve(&self, url: &str) -> Result<Connect, Failure> {
        let auth = match self.auth.as_deref() {
            None => None,
            Some(text) => Some(auth_value(text)?),
        };
        let mut headers = self.headers.iter().map(|h| header(h)).collect::<Result<Vec<_>, _>>()?;
        if !self.cookies.is_empty() {
            let cookies = self
                .cookies
                .iter()
                .map(|cookie| match cookie.trim() {
                    "" => Err(Failure::usage("--cookie: the value is empty")),
                    cookie => header_value(cookie, "--cookie").map(|()| cookie),
                })
                .collect::<Result<Vec<_>, _>>()?;
            headers.push(("Cookie".to_string(), cookies.join("; ")));
        }
        Ok(Connect {
            url: normalize_url(url)?,
            auth,
            timeout: Duration::from_millis(self.timeout.max(1)),
            headers,
        })
    }
}

/// Headers the WebSocket handshake sets itself: a second one would break
/// the upgrade.
const HANDSHAKE_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// `--header NAME:VALUE`, split at the first colon; blanks around the value
/// are dropped (`X-Tenant: acme`). The name must be an HTTP token, the
/// value visible ASCII, spaces and tabs.
fn header(text: &str) -> Result<(String, String), Failure> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(Failure::usage(format!(
            "--header {text:?}: expected NAME:VALUE (e.g. --header 'X-Tenant: acme')"
        )));
    };
    if name.is_empty() {
        return Err(Failure::usage(format!(
            "--header {text:?}: the name before the colon is empty (expected NAME:VALUE)"
        )));
    }
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return Err(Failure::usage(format!(
            "--header {text:?}: `{name}` is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        )));
    }
    if HANDSHAKE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(Failure::usage(format!(
            "--header {text:?}: `{name}` is set by the WebSocket handshake itself"
        )));
    }
    let value = value.trim_matches([' ', '\t']);
    header_value(value, &format!("--header {name}"))?;
    Ok((name.to_string(), value.to_string()))
}

/// A header value: visible ASCII, spaces and tabs (what HTTP carries as
/// text).
fn header_value(value: &str, flag: &str) -> Result<(), Failure> {
    match value
        .chars()
        .find(|&c| !(c == ' ' || c == '\t' || c.is_ascii_graphic()))
    {
        None => Ok(()),
        Some(c) => Err(Failure::usage(format!(
            "{flag}: {c:?} cannot be sent in a header (visible ASCII, spaces and tabs only)"
        ))),
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
            if !failure.reported {
                out().failure(&failure);
            }
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
            more,
            connect,
        } => {
            let c = connect.resolve(&url)?;
            if procedure == "-" {
                if !args.is_empty() || !more.is_empty() {
                    return Err(Failure::usage(
                        "`wsm call URL -` reads the calls from stdin: it takes no arguments and no `--`",
                    ));
                }
                client::call_script::<M>(&c).await
            } else if more.is_empty() {
                client::call::<M>(&c, &procedure, &args).await
            } else {
                client::call_many::<M>(&c, &calls(procedure, args, &more)?).await
            }
        }
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
            call,
            count,
            retries,
            resume,
            connect,
        } => {
            let options = client::ListenOptions {
                events,
                register: pairs(&register, "--register")?,
                send: pairs(&send, "--send")?,
                calls: listen_calls(&call)?,
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

/// `wsm call URL a ARGS... -- b ARGS...`: the first call and the words
/// after the first `--` (clap keeps the later `--` as words), as
/// `(procedure, argument words)`. Options go before the first `--`: a
/// word after it that looks like one (`--auth`, `-t`) is a usage error
/// rather than an argument sent by mistake (a text argument starting with
/// `-` is written as a JSON string: `'"-x"'`).
fn calls(procedure: String, args: Vec<String>, more: &[String]) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let mut calls = vec![(procedure, args)];
    for words in more.split(|word| word == "--") {
        let Some((name, args)) = words.split_first() else {
            return Err(Failure::usage("`--` must be followed by a procedure and its arguments"));
        };
        if name == "-" {
            return Err(Failure::usage("`-` (the calls from stdin) must be the only call"));
        }
        let number = |word: &str| word[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
        if let Some(option) = words.iter().find(|w| w.len() > 1 && w.starts_with('-') && !number(w)) {
            return Err(Failure::usage(format!(
                "`{option}` after `--`: options go before the first `--` \
                 (an argument starting with `-` is written as a JSON string: '\"{option}\"')"
            )));
        }
        calls.push((name.clone(), args.to_vec()));
    }
    Ok(calls)
}

/// `listen --call NAME=ARGS` (or `NAME` alone): the procedure and its
/// argument words, split as a line of `repl` or of `call -` is.
fn listen_calls(items: &[String]) -> Result<Vec<(String, Vec<String>)>, Failure> {
    items
        .iter()
        .map(|item| {
            let (name, args) = item.split_once('=').unwrap_or((item, ""));
            if name.is_empty() {
                return Err(Failure::usage(format!("--call {item:?}: expected NAME=ARGS")));
            }
            let words = repl::split(args).map_err(|e| Failure::usage(format!("--call {name}: {e}")))?;
            Ok((name.to_string(), words))
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

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(header("X-Tenant: acme").unwrap(), ("X-Tenant".into(), "acme".into()));
        assert_eq!(header("x-a:b:c").unwrap(), ("x-a".into(), "b:c".into()));
        assert_eq!(header("X-Empty:").unwrap(), ("X-Empty".into(), String::new()));
        for bad in [
            "no-colon",
            ":value",
            " X: v",
            "X Y: v",
            "X\u{e9}: v",
            "Host: h",
            "Sec-WebSocket-Key: k",
            "X: caf\u{e9}",
            "X: a\nb",
        ] {
            let failure = header(bad).unwrap_err();
            assert_eq!(failure.kind, output::Kind::Usage, "{bad}");
            assert!(failure.message.starts_with("--header"), "{bad}: {}", failure.message);
        }
    }

    #[test]
    fn cookies_are_one_cookie_header() {
        let cli = Cli::try_parse_from([
            "wsm",
            "call",
            "8000",
            "f",
            "--cookie",
            "a=1",
            "--cookie",
            " b=2; c=3 ",
            "-H",
            "X-A: 1",
        ])
        .unwrap();
        let Command::Call { connect, .. } = cli.command else {
            panic!("not a call")
        };
        let c = connect.resolve("8000").unwrap();
        assert_eq!(
            c.headers,
            [("X-A".into(), "1".into()), ("Cookie".into(), "a=1; b=2; c=3".into())]
        );
        let cli = Cli::try_parse_from(["wsm", "send", "8000", "e", "--cookie", " "]).unwrap();
        let Command::Send { connect, .. } = cli.command else {
            panic!("not a send")
        };
        assert_eq!(connect.resolve("8000").unwrap_err().kind, output::Kind::Usage);
    }

    #[test]
    fn calls_are_split_at_double_dashes() {
        let cli = Cli::try_parse_from([
            "wsm", "call", "8000", "a", "1", "--auth", "{}", "-2", "--", "b", "--", "c", "x", "-3.5",
        ])
        .unwrap();
        let Command::Call {
            procedure, args, more, ..
        } = cli.command
        else {
            panic!("not a call")
        };
        assert_eq!(args, ["1", "-2"]);
        assert_eq!(
            calls(procedure, args, &more).unwrap(),
            [
                ("a".into(), strings(&["1", "-2"])),
                ("b".into(), vec![]),
                ("c".into(), strings(&["x", "-3.5"]))
            ]
        );
        let cli = Cli::try_parse_from(["wsm", "call", "8000", "a", "1"]).unwrap();
        let Command::Call { more, .. } = cli.command else {
            panic!("not a call")
        };
        assert!(more.is_empty());
        for bad in [
            &["b", "--", "--", "c"][..],
            &["b", "--"],
            &["b", "--auth", "{}"],
            &["b", "-t"],
            &["-"],
        ] {
            let failure = calls("a".into(), vec![], &strings(bad)).unwrap_err();
            assert_eq!(failure.kind, output::Kind::Usage, "{bad:?}");
        }
    }

    #[test]
    fn listen_calls_split_their_arguments_into_words() {
        let parsed = listen_calls(&strings(&[
            "sum=1 2  3.5",
            "whoami",
            "echo='two words' {\"a\": [1, 2]}",
            "x=a=b",
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            [
                ("sum".into(), strings(&["1", "2", "3.5"])),
                ("whoami".into(), vec![]),
                ("echo".into(), strings(&["two words", "{\"a\": [1, 2]}"])),
                ("x".into(), strings(&["a=b"])),
            ]
        );
        assert!(listen_calls(&strings(&["=1"])).is_err());
        assert!(listen_calls(&strings(&["echo='open"])).is_err());
    }
}
