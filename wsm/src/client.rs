//! The client commands `call` (one call, several on one connection, or a
//! script on stdin), `send` and `listen`, and what they share
//! with `repl` and `bench`: building and connecting a [`Client`] from the
//! command line, printing every event it receives, closing it politely.
//!
//! Run e.g. `wsm call ws://127.0.0.1:8000 sum 1 2 3.5`; tested by
//! `wsm/tests/cli.rs` (`cargo test -p wsm`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{broadcast, Notify};
use ws_messaging::{
    AttemptError, Client, CloseCode, EncodedMessage, Endpoint, Frame, LocalEvent, RawArgs, ReceiveHook, RetryConfig,
    RESERVED_NAMES,
};

use crate::model::{self, Model};
use crate::output::{out, Failure, Kind};
use crate::Connect;

/// Called with every event received (name, arguments as JSON).
pub(crate) type EventSink = Arc<dyn Fn(&str, Vec<Json>) + Send + Sync>;

/// A client of `c.url`, not connected yet. `retries`: reconnect attempts in
/// a row (`None`: no reconnection). Every event received goes to `sink`.
pub(crate) fn build<M: Model>(
    c: &Connect,
    retries: Option<u32>,
    sink: Option<EventSink>,
) -> Result<Client<M>, Failure> {
    build_with::<M>(c, retries, sink, false)
}

/// [`build`], asking for session recovery when `resume`.
pub(crate) fn build_with<M: Model>(
    c: &Connect,
    retries: Option<u32>,
    sink: Option<EventSink>,
    resume: bool,
) -> Result<Client<M>, Failure> {
    let hook = sink.map(receive_hook::<M>);
    let timeout = c.timeout;
    let mut builder = Client::<M>::builder(c.url.clone()).recovery(resume).configure(|o| {
        o.ack_timeout = timeout;
        o.receive_hook = hook;
    });
    builder = match retries {
        None => builder.auto_reconnect(false),
        Some(retries) => builder.retry(
            RetryConfig::default()
                .min_timeout(Duration::from_millis(500))
                .max_timeout(Duration::from_secs(5))
                .retries(retries),
        ),
    };
    if let Some(auth) = &c.auth {
        let auth = M::from_json(auth.clone()).map_err(|e| Failure::usage(format!("--auth: {e}")))?;
        builder = builder.auth(&auth);
    }
    for (name, value) in &c.headers {
        builder = builder.header(name, value);
    }
    builder.build().map_err(|e| Failure::connect(&c.url, e))
}

/// A receive hook that hands every event (a message without an id, the
/// runtime's `connect` reply aside) to `sink`, its arguments decoded with
/// the codec and turned into JSON. It sees every frame before dispatch, so
/// it needs no listener per name.
fn receive_hook<M: Model>(sink: EventSink) -> ReceiveHook {
    let codec = M::default();
    Arc::new(move |frame: &Frame| {
        if let Frame::Message { name, args, id: None } = frame {
            if !RESERVED_NAMES.contains(&name.as_str()) {
                sink(name, decode_args::<M>(&codec, args));
            }
        }
        Ok(())
    })
}

/// Raw arguments as JSON (one that does not decode becomes
/// `{"$undecodable": "<why>"}`).
pub(crate) fn decode_args<M: Model>(codec: &M, args: &[ws_messaging::Bytes]) -> Vec<Json> {
    args.iter()
        .map(|raw| match codec.decode_value::<M::Value>(raw) {
            Ok(value) => M::to_json(value),
            Err(e) => json!({ "$undecodable": e.to_string() }),
        })
        .collect()
}

/// Connects a client built with [`build`].
pub(crate) async fn connect<M: Model>(client: &Client<M>, c: &Connect) -> Result<(), Failure> {
    client.connect().await.map_err(|e| Failure::connect(&c.url, e))
}

/// Closes the client with 1000 and waits (at most `within`) for the close
/// handshake, so that everything queued before it has been written.
pub(crate) async fn close<M: Model>(client: &Client<M>, within: Duration) {
    let _ = tokio::time::timeout(within, client.close(CloseCode::NORMAL, "")).await;
}

/// `wsm call`: connect, invoke, print the result.
pub(crate) async fn call<M: Model>(c: &Connect, procedure: &str, args: &[String]) -> Result<(), Failure> {
    let args = model::args::<M>(args).map_err(Failure::usage)?;
    let client = build::<M>(c, None, None)?;
    connect(&client, c).await?;
    let outcome = client
        .invoke_with_timeout::<_, M::Value>(procedure, args, c.timeout)
        .await;
    close(&client, Duration::from_secs(1)).await;
    let result = outcome.map_err(|e| Failure::invoke(procedure, e))?;
    out().result(&M::to_json(result));
    Ok(())
}

/// One call of a sequence: the procedure and its arguments, in the codec's
/// data model.
pub(crate) type Call<M> = (String, Vec<<M as Model>::Value>);

/// Argument words as `wsm call` reads them (each JSON, or text taken as a
/// string), for every way of giving calls: the command line, `--`, the
/// lines of `call -`, `listen --call`.
pub(crate) fn call_args<M: Model>(name: &str, words: &[String]) -> Result<Call<M>, String> {
    Ok((name.to_string(), model::args::<M>(words)?))
}

/// How a sequence of calls went.
#[derive(Default)]
struct Tally {
    run: u64,
    failed: u64,
    first: Option<Failure>,
}

impl Tally {
    /// Prints `failure` as a failed `wsm call` does, and counts it.
    fn fail(&mut self, failure: Failure) {
        out().failure(&failure);
        self.failed += 1;
        self.first.get_or_insert(failure);
    }

    /// `Ok` when every call succeeded; otherwise the first failure (already
    /// printed), after a `wsm: F of N calls failed` note on stderr.
    fn outcome(self) -> Result<(), Failure> {
        match self.first {
            None => Ok(()),
            Some(mut first) => {
                out().note(&format!("wsm: {} of {} calls failed", self.failed, self.run));
                first.reported = true;
                Err(first)
            }
        }
    }
}

/// Runs one call of a sequence on `client`, printing its result or its
/// failure. `false` once the connection is gone: the calls left are not
/// run.
async fn run_call<M: Model>(
    client: &Client<M>,
    c: &Connect,
    call: Result<Call<M>, Failure>,
    tally: &mut Tally,
) -> bool {
    tally.run += 1;
    let (name, args) = match call {
        Ok(call) => call,
        Err(failure) => {
            tally.fail(failure);
            return true;
        }
    };
    match client.invoke_with_timeout::<_, M::Value>(&name, args, c.timeout).await {
        Ok(result) => {
            out().result(&M::to_json(result));
            true
        }
        Err(e) => {
            let failure = Failure::invoke(&name, e);
            let lost = failure.kind == Kind::Connection || !client.is_connected();
            tally.fail(failure);
            !lost
        }
    }
}

/// `wsm call URL a ARGS... -- b ARGS...`: every call in order on one
/// connection, each printed as a single `call` prints it. A failed call is
/// printed and the next one runs; a lost connection ends the run. Every
/// argument is checked before connecting.
pub(crate) async fn call_many<M: Model>(c: &Connect, calls: &[(String, Vec<String>)]) -> Result<(), Failure> {
    let calls = calls
        .iter()
        .map(|(name, words)| call_args::<M>(name, words).map_err(|e| Failure::usage(format!("`{name}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let client = build::<M>(c, None, None)?;
    connect(&client, c).await?;
    let mut tally = Tally::default();
    for call in calls {
        if !run_call(&client, c, Ok(call), &mut tally).await {
            break;
        }
    }
    close(&client, Duration::from_secs(1)).await;
    tally.outcome()
}

/// `wsm call URL -`: connects, then runs the calls read from stdin, one
/// `NAME ARGS...` a line (words split as in `repl`; blank lines and lines
/// starting with `#` skipped), in order, as each line comes. A line that
/// does not parse is a failed call (usage); the run goes on.
pub(crate) async fn call_script<M: Model>(c: &Connect) -> Result<(), Failure> {
    let client = build::<M>(c, None, None)?;
    connect(&client, c).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tally = Tally::default();
    let mut number = 0u64;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tally.run += 1;
                tally.fail(Failure::new(Kind::Other, format!("reading stdin: {e}")));
                break;
            }
        };
        number += 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let call = crate::repl::split(line).and_then(|words| match words.split_first() {
            Some((name, args)) => call_args::<M>(name, args).map_err(|e| format!("`{name}`: {e}")),
            None => Err("no procedure".to_string()),
        });
        let call = call.map_err(|e| Failure::usage(format!("line {number}: {e}")));
        if !run_call(&client, c, call, &mut tally).await {
            break;
        }
    }
    close(&client, Duration::from_secs(1)).await;
    tally.outcome()
}

/// `wsm send`: connect, send, and close once the frame is out.
pub(crate) async fn send<M: Model>(c: &Connect, event: &str, args: &[String]) -> Result<(), Failure> {
    let args = model::args::<M>(args).map_err(Failure::usage)?;
    let client = build::<M>(c, None, None)?;
    connect(&client, c).await?;
    let sent = client.send(event, args).await;
    // The close frame goes out after the event: once the handshake is
    // over, the event has been written.
    close(&client, c.timeout).await;
    sent.map_err(|e| Failure::send(event, e))
}

/// What `wsm listen` does besides printing.
#[derive(Debug, Default)]
pub(crate) struct ListenOptions {
    /// Print only these events (all when empty).
    pub(crate) events: Vec<String>,
    /// Procedures answered with a fixed result.
    pub(crate) register: Vec<(String, Json)>,
    /// Events sent after every (re)connection: a JSON array is the
    /// argument list, any other value the one argument.
    pub(crate) send: Vec<(String, Json)>,
    /// Procedures invoked after every (re)connection, in order: the name
    /// and the argument words (as `wsm call` reads them).
    pub(crate) calls: Vec<(String, Vec<String>)>,
    /// Exit after this many events.
    pub(crate) count: Option<u64>,
    /// Reconnect attempts in a row before giving up (`None`: never).
    pub(crate) retries: Option<u32>,
    /// Resume the session across drops (the recovery extension), and say
    /// when a resume fails.
    pub(crate) resume: bool,
}

/// `wsm listen`: print events until told to stop, reconnecting.
pub(crate) async fn listen<M: Model>(c: &Connect, options: ListenOptions) -> Result<(), Failure> {
    let retries = options.retries.unwrap_or(u32::MAX);
    let wanted: HashSet<String> = options.events.iter().cloned().collect();
    let printed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let sink: EventSink = {
        let (printed, done, count) = (printed.clone(), done.clone(), options.count);
        Arc::new(move |name: &str, args: Vec<Json>| {
            if !wanted.is_empty() && !wanted.contains(name) {
                return;
            }
            if count.is_some_and(|n| printed.load(Ordering::Acquire) >= n) {
                return; // the last one is printed already; exiting
            }
            out().event(name, args);
            let n = printed.fetch_add(1, Ordering::AcqRel) + 1;
            if count == Some(n) {
                done.notify_one();
            }
        })
    };
    let client = build_with::<M>(c, Some(retries), Some(sink), options.resume)?;
    for (name, result) in &options.register {
        register_fixed(&client, name, result)?;
    }
    let sends = options
        .send
        .iter()
        .map(|(name, args)| {
            let args = match args {
                Json::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let args = args
                .into_iter()
                .map(M::from_json)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::usage(format!("--send {name}: {e}")))?;
            EncodedMessage::encode(client.codec(), name, args)
                .map_err(|e| Failure::usage(format!("--send {name}: {e}")))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let calls = options
        .calls
        .iter()
        .map(|(name, words)| call_args::<M>(name, words).map_err(|e| Failure::usage(format!("--call {name}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    report_changes(&client, &c.url, sends);
    if options.resume {
        report_resumes(&client);
    }
    if !calls.is_empty() {
        call_on_connect(&client, calls, c.timeout);
    }

    let mut watcher = tokio::spawn(watch_connection(client.events(), c.url.clone(), retries));
    let outcome = match connect(&client, c).await {
        Err(failure) => Err(failure),
        Ok(()) if options.count == Some(0) => Ok(()),
        Ok(()) => tokio::select! {
            () = done.notified() => Ok(()),
            stopped = &mut watcher => match stopped {
                Ok(failure) => Err(failure),
                Err(e) => Err(Failure::new(Kind::Other, format!("the connection watcher failed: {e}"))),
            },
        },
    };
    watcher.abort();
    // Our own close is not news.
    client.off_all("close");
    close(&client, Duration::from_secs(1)).await;
    outcome
}

/// Registers `name` answering every invoke with `result` (printing each
/// invoke as `{"invoked":..}`).
fn register_fixed<M: Model>(client: &Client<M>, name: &str, result: &Json) -> Result<(), Failure> {
    let value = M::from_json(result.clone()).map_err(|e| Failure::usage(format!("--register {name}: {e}")))?;
    let (shown, codec, label) = (result.clone(), M::default(), name.to_string());
    client
        .register(name, move |RawArgs(raw)| {
            out().invoked(&label, decode_args::<M>(&codec, &raw), &shown);
            let value = value.clone();
            async move { Ok(value) }
        })
        .map_err(|e| Failure::usage(format!("--register {name}: {e}")))
}

/// Reports the connection's changes (connected, closed, retrying, local
/// errors) as they happen, and queues `sends` after each connection. The
/// listeners run on the connection's own task, as the receive hook does,
/// so a `connect` line always comes before the events of that connection,
/// and the `sends` go out before anything else can.
pub(crate) fn report_changes<M: Model>(client: &Client<M>, url: &str, sends: Vec<EncodedMessage>) {
    let at = url.to_string();
    client.on("connect", move |endpoint: Endpoint<M>, RawArgs(raw)| {
        let reply = raw
            .first()
            .and_then(|r| endpoint.decode::<M::Value>(r).ok())
            .map_or(Json::Null, M::to_json);
        out().status(
            "connect",
            &[("url", json!(at)), ("reply", reply.clone())],
            &format!("connected to {at} (auth reply {reply})"),
        );
        for message in &sends {
            if let Err(e) = endpoint.queue_encoded(message) {
                out().note(&format!("wsm: --send not sent: {e}"));
            }
        }
    });
    let at = url.to_string();
    client.on("close", move |(code, reason): (u16, String)| {
        out().status(
            "close",
            &[("code", json!(code)), ("reason", json!(reason))],
            &format!("disconnected from {at} ({})", close_text(code, &reason)),
        );
    });
    let at = url.to_string();
    client.on("retry", move |(attempt,): (u32,)| {
        out().status(
            "retry",
            &[("attempt", json!(attempt))],
            &format!("reconnecting to {at} (attempt {attempt})"),
        );
    });
    client.on("error", move |(message,): (String,)| {
        out().status("error", &[("message", json!(message))], &format!("wsm: {message}"));
    });
}

/// `listen --call`: after each connection (resumed or not), invokes each
/// call in order, one at a time, printing `{"call":..,"result":..}` or
/// `{"call":..,"error":..}` on stdout. The calls run on a task of their
/// own, after the `connect` line and the `--send` events; a round stops
/// at a connection failure (that call's line printed), or before its next
/// call once a newer connection has started its own.
fn call_on_connect<M: Model>(client: &Client<M>, calls: Vec<Call<M>>, timeout: Duration) {
    let calls = Arc::new(calls);
    let round = Arc::new(AtomicU64::new(0));
    client.on("connect", move |endpoint: Endpoint<M>, _: RawArgs| {
        let (calls, round) = (calls.clone(), round.clone());
        let mine = round.fetch_add(1, Ordering::AcqRel) + 1;
        tokio::spawn(async move {
            for (name, args) in calls.iter() {
                if round.load(Ordering::Acquire) != mine {
                    return;
                }
                match endpoint
                    .invoke_with_timeout::<_, M::Value>(name, args.clone(), timeout)
                    .await
                {
                    Ok(result) => out().called(name, Ok(M::to_json(result))),
                    Err(e) => {
                        let failure = Failure::invoke(name, e);
                        out().called(name, Err(&failure));
                        if failure.kind == Kind::Connection {
                            // The next connection runs them all again.
                            return;
                        }
                    }
                }
            }
        });
    });
}

/// With `listen --resume`: after each connection whose session could not
/// be resumed, a line `{"local":"resume","resumed":false,"reason":..}` on
/// stdout (events may be missing from before it), whatever the output
/// mode; a server without the extension gets one such line, reason
/// `unsupported`, at the first connection.
fn report_resumes<M: Model>(client: &Client<M>) {
    let told_unsupported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    client.on("connect", move |endpoint: Endpoint<M>, _: RawArgs| {
        let reason = match endpoint.session_status() {
            Some(ws_messaging::SessionStatus::Failed(reason)) => reason,
            Some(_) => return,
            None if told_unsupported.swap(true, Ordering::AcqRel) => return,
            None => "unsupported".to_string(),
        };
        let line = json!({ "local": "resume", "resumed": false, "reason": reason });
        out().line(&line.to_string());
    });
}

/// Returns why the client stopped for good: refused (4003), or out of
/// reconnect attempts. It mirrors the client's own rule: after a close, a
/// client that had been connected starts counting attempts afresh, and it
/// stops once the attempts in a row reach `retries`.
pub(crate) async fn watch_connection(
    mut events: broadcast::Receiver<LocalEvent>,
    url: String,
    retries: u32,
) -> Failure {
    let (mut attempt, mut opened) = (0u32, false);
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                return Failure::new(Kind::Connection, format!("{url}: the client stopped"));
            }
        };
        match event {
            LocalEvent::Connect(_) => (attempt, opened) = (0, true),
            LocalEvent::Retry(n) => attempt = n,
            LocalEvent::Close { code, reason } => {
                let in_a_row = if std::mem::take(&mut opened) { 0 } else { attempt };
                let last = AttemptError::Closed { code, reason };
                if !CloseCode::from(code).reconnects() {
                    return Failure::attempt(&url, &last);
                }
                if in_a_row >= retries {
                    let mut failure = Failure::attempt(&url, &last);
                    failure.message = format!("gave up reconnecting: {}", failure.message);
                    return failure;
                }
            }
            _ => {}
        }
    }
}

/// `1000`, or `4003 bad token`.
pub(crate) fn close_text(code: u16, reason: &str) -> String {
    if reason.is_empty() {
        code.to_string()
    } else {
        format!("{code} {reason}")
    }
}
