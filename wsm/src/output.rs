//! What `wsm` prints, and how it fails.
//!
//! Results and events go to stdout, one JSON text per line (pretty-printed
//! and coloured for a person when stdout is a terminal and `--json` is not
//! given); status and errors go to stderr. With `--json` every stdout line
//! is one JSON object a script can parse — results, events, status changes
//! and errors alike — and nothing is coloured. Failures carry their exit
//! code (see [`Kind`]). Unit tests: `cargo test -p wsm`.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde_json::{json, Value as Json};
use ws_messaging::{AttemptError, CloseCode, ConnectError, InvokeError, SendError};

/// The kinds of failure, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The peer answered with an error (exit 1).
    Remote,
    /// Bad command line or input (exit 2, as clap's own usage errors).
    Usage,
    /// The server refused the connection: close code 4003 and its reason
    /// (exit 3).
    Refused,
    /// No answer in time: an invoke, opening the socket, the auth reply
    /// (exit 4).
    Timeout,
    /// The server could not be reached, or the connection was lost
    /// (exit 5).
    Connection,
    /// Anything else: the port of `serve` is taken, an I/O error (exit 6).
    Other,
}

impl Kind {
    /// The process exit code.
    pub(crate) fn code(self) -> i32 {
        match self {
            Kind::Remote => 1,
            Kind::Usage => 2,
            Kind::Refused => 3,
            Kind::Timeout => 4,
            Kind::Connection => 5,
            Kind::Other => 6,
        }
    }

    /// The name used in `--json` error lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Remote => "remote",
            Kind::Usage => "usage",
            Kind::Refused => "refused",
            Kind::Timeout => "timeout",
            Kind::Connection => "connection",
            Kind::Other => "other",
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// What kind of failure (the exit code).
    pub(crate) kind: Kind,
    /// One line for a person.
    pub(crate) message: String,
    /// The peer's error value (remote errors), or the close code and
    /// reason (refusals).
    pub(crate) detail: Option<Json>,
    /// Already printed (each failed call of `wsm call A -- B` is printed
    /// as it happens): `main` only exits with its code.
    pub(crate) reported: bool,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            detail: None,
            reported: false,
        }
    }

    /// Bad command line or input.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// A client could not connect to `url`.
    pub(crate) fn connect(url: &str, error: ConnectError) -> Self {
        match error {
            ConnectError::Refused { code, reason } => Failure {
                kind: Kind::Refused,
                message: format!("{url} refused the connection ({code}): {reason}"),
                detail: Some(json!({ "code": code, "reason": reason })),
                reported: false,
            },
            ConnectError::GaveUp { last } => Self::attempt(url, &last),
            ConnectError::Closed => Self::new(Kind::Connection, format!("{url}: the client was closed")),
            ConnectError::Url { url, source } => Self::usage(format!("invalid URL `{url}`: {source}")),
            ConnectError::Auth(e) => Self::usage(format!("the auth value does not encode: {e}")),
            ConnectError::Header { name, source } => Self::usage(format!("--header {name}: {source}")),
            other => Self::new(Kind::Connection, format!("{url}: {other}")),
        }
    }

    /// How one connection attempt to `url` ended.
    pub(crate) fn attempt(url: &str, last: &AttemptError) -> Self {
        match last {
            AttemptError::OpenTimeout(d) => {
                Self::new(Kind::Timeout, format!("{url}: the WebSocket did not open within {d:?}"))
            }
            AttemptError::Closed { code, reason } if *code == CloseCode::TIMEOUT => Self::new(
                Kind::Timeout,
                format!("{url}: no auth reply in time (closed with {code} {reason})"),
            ),
            AttemptError::Closed { code, reason } if *code == CloseCode::FORBIDDEN => Failure {
                kind: Kind::Refused,
                message: format!("{url} refused the connection ({code}): {reason}"),
                detail: Some(json!({ "code": code, "reason": reason })),
                reported: false,
            },
            AttemptError::Open(e) => Self::new(Kind::Connection, format!("could not connect to {url}: {e}")),
            AttemptError::Closed { code, reason } => Self::new(
                Kind::Connection,
                format!("{url} closed the connection ({code} {reason})"),
            ),
            other => Self::new(Kind::Connection, format!("{url}: {other}")),
        }
    }

    /// An invoke of `name` failed.
    pub(crate) fn invoke(name: &str, error: InvokeError) -> Self {
        // The peer's error as it was on the wire (`NoProcedureError` too).
        if let Some(value) = error.remote_value() {
            return Failure {
                kind: Kind::Remote,
                message: match &value {
                    Json::String(text) => text.clone(),
                    other => other.to_string(),
                },
                detail: Some(value),
                reported: false,
            };
        }
        match error {
            InvokeError::Timeout { .. } => Self::new(Kind::Timeout, format!("`{name}`: no reply in time")),
            InvokeError::NotConnected => {
                Self::new(Kind::Connection, format!("`{name}`: not connected, nothing was sent"))
            }
            InvokeError::Connection { .. } => Self::new(
                Kind::Connection,
                format!("`{name}`: the connection closed before the reply"),
            ),
            InvokeError::Send(e) => Self::send(name, e),
            other => Self::new(Kind::Other, format!("`{name}`: {other}")),
        }
    }

    /// Sending `name` failed.
    pub(crate) fn send(name: &str, error: SendError) -> Self {
        match error {
            SendError::Connection | SendError::SlowConsumer => {
                Self::new(Kind::Connection, format!("`{name}`: not connected, nothing was sent"))
            }
            SendError::Timeout => Self::new(Kind::Timeout, format!("`{name}`: the server did not read in time")),
            e @ (SendError::ReservedName(_) | SendError::Encode(_)) => Self::usage(e.to_string()),
            other => Self::new(Kind::Other, format!("`{name}`: {other}")),
        }
    }

    /// As a `--json` line: `{"error":{"kind":..,"message":..,"exit":..}}`
    /// plus the remote value (`value`) or the close code and reason.
    fn to_json_line(&self) -> String {
        format!("{{\"error\":{}}}", object(&self.fields(true), false))
    }

    /// The fields of the `error` object: `kind`, `message`, `exit` (when
    /// `exit`), then `value` (a remote error) or `code` and `reason` (a
    /// refusal).
    fn fields(&self, exit: bool) -> Vec<(&'static str, Json)> {
        let mut error = vec![("kind", json!(self.kind.name())), ("message", json!(self.message))];
        if exit {
            error.push(("exit", json!(self.kind.code())));
        }
        match (&self.detail, self.kind) {
            (Some(value), Kind::Remote) => error.push(("value", value.clone())),
            (Some(Json::Object(fields)), _) => {
                for (k, v) in fields {
                    let key: &'static str = match k.as_str() {
                        "code" => "code",
                        "reason" => "reason",
                        _ => continue,
                    };
                    error.push((key, v.clone()));
                }
            }
            _ => {}
        }
        error
    }
}

/// Where and how output is written.
#[derive(Debug)]
pub(crate) struct Out {
    /// `--json`: one JSON object per stdout line, for scripts.
    pub(crate) json: bool,
    /// Colour and pretty-print stdout (a terminal, no `--json`).
    color: bool,
    /// Colour stderr (a terminal).
    err_color: bool,
}

static OUT: OnceLock<Out> = OnceLock::new();

/// Sets the output mode, once, at start.
pub(crate) fn init(json: bool) {
    let _ = OUT.set(Out {
        json,
        color: !json && std::io::stdout().is_terminal(),
        err_color: std::io::stderr().is_terminal(),
    });
}

/// The output mode.
pub(crate) fn out() -> &'static Out {
    OUT.get_or_init(|| Out {
        json: false,
        color: false,
        err_color: false,
    })
}

impl Out {
    /// Writes one line on stdout and flushes it. A closed stdout (the
    /// reader of a pipe went away) ends the program quietly.
    pub(crate) fn line(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{text}").and_then(|()| stdout.flush()).is_err() {
            std::process::exit(0);
        }
    }

    /// Writes one line on stderr.
    pub(crate) fn note(&self, text: &str) {
        if self.err_color {
            eprintln!("\x1b[2m{text}\x1b[0m");
        } else {
            eprintln!("{text}");
        }
    }

    /// The result of a call.
    pub(crate) fn result(&self, value: &Json) {
        if self.json {
            self.line(&object(&[("result", value.clone())], false));
        } else if self.color {
            self.line(&paint(value, true));
        } else {
            self.line(&value.to_string());
        }
    }

    /// A received event: `{"event":NAME,"args":[...]}`.
    pub(crate) fn event(&self, name: &str, args: Vec<Json>) {
        self.line(&object(
            &[("event", json!(name)), ("args", Json::Array(args))],
            self.color,
        ));
    }

    /// An invoke from the peer that a fixed result answered:
    /// `{"invoked":NAME,"args":[...],"result":...}`.
    pub(crate) fn invoked(&self, name: &str, args: Vec<Json>, result: &Json) {
        let fields = [
            ("invoked", json!(name)),
            ("args", Json::Array(args)),
            ("result", result.clone()),
        ];
        self.line(&object(&fields, self.color));
    }

    /// The outcome of a `listen --call`, on stdout whatever the mode:
    /// `{"call":NAME,"result":...}`, or
    /// `{"call":NAME,"error":{"kind":..,"message":..}}` (plus `value`, the
    /// peer's error, for a remote error).
    pub(crate) fn called(&self, name: &str, outcome: Result<Json, &Failure>) {
        let color = self.color;
        let value = match outcome {
            Ok(result) => ("result", render(&result, color)),
            Err(failure) => ("error", object(&failure.fields(false), color)),
        };
        self.line(&object_of(&[("call", render(&json!(name), color)), value], color));
    }

    /// A change of the connection (`connect`, `close`, `retry`, ...): with
    /// `--json`, `{"local":WHAT,...fields}` on stdout; otherwise `human` on
    /// stderr.
    pub(crate) fn status(&self, what: &str, fields: &[(&str, Json)], human: &str) {
        if self.json {
            let mut line = vec![("local", json!(what))];
            line.extend(fields.iter().cloned());
            self.line(&object(&line, false));
        } else {
            self.note(human);
        }
    }

    /// A failure: `wsm: MESSAGE` on stderr (and the `--json` error line on
    /// stdout).
    pub(crate) fn failure(&self, failure: &Failure) {
        if self.json {
            self.line(&failure.to_json_line());
        }
        if self.err_color {
            eprintln!("\x1b[31mwsm: {}\x1b[0m", failure.message);
        } else {
            eprintln!("wsm: {}", failure.message);
        }
    }
}

/// A JSON object with its keys in this order (serde_json's own map sorts
/// them), on one line, coloured or not.
pub(crate) fn object(fields: &[(&str, Json)], color: bool) -> String {
    let rendered: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, render(v, color))).collect();
    object_of(&rendered, color)
}

/// [`object`] of values already rendered (by [`render`] or [`object`]).
fn object_of(fields: &[(&str, String)], color: bool) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let key = Json::String((*key).to_string()).to_string();
        if color {
            out.push_str(&format!("\x1b[1;36m{key}\x1b[0m:"));
        } else {
            out.push_str(&format!("{key}:"));
        }
        out.push_str(value);
    }
    out.push('}');
    out
}

/// `value` on one line, coloured or not.
fn render(value: &Json, color: bool) -> String {
    if color {
        paint(value, false)
    } else {
        value.to_string()
    }
}

/// `value` as JSON text with ANSI colours, pretty-printed or on one line.
pub(crate) fn paint(value: &Json, pretty: bool) -> String {
    let mut out = String::new();
    paint_into(&mut out, value, pretty, 0);
    out
}

fn paint_into(out: &mut String, value: &Json, pretty: bool, depth: usize) {
    const KEY: &str = "\x1b[34m";
    const STRING: &str = "\x1b[32m";
    const NUMBER: &str = "\x1b[33m";
    const LITERAL: &str = "\x1b[35m";
    const RESET: &str = "\x1b[0m";
    let newline = |out: &mut String, depth: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
    };
    match value {
        Json::Null | Json::Bool(_) => {
            out.push_str(LITERAL);
            out.push_str(&value.to_string());
            out.push_str(RESET);
        }
        Json::Number(_) => {
            out.push_str(NUMBER);
            out.push_str(&value.to_string());
            out.push_str(RESET);
        }
        Json::String(_) => {
            out.push_str(STRING);
            out.push_str(&value.to_string());
            out.push_str(RESET);
        }
        Json::Array(items) if items.is_empty() => out.push_str("[]"),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                paint_into(out, item, pretty, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Json::Object(map) if map.is_empty() => out.push_str("{}"),
        Json::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                out.push_str(KEY);
                out.push_str(&Json::String(k.clone()).to_string());
                out.push_str(RESET);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                paint_into(out, v, pretty, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` without its ANSI colour codes.
    fn strip(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn painted_json_is_the_same_json() {
        let value = json!({"a": [1, "x\"y", null, true, {}], "b": {"c": 2.5}, "d": []});
        let compact = paint(&value, false);
        assert!(compact.contains("\x1b[32m"));
        assert_eq!(strip(&compact), value.to_string());
        let pretty = strip(&paint(&value, true));
        assert_eq!(pretty, serde_json::to_string_pretty(&value).unwrap());
    }

    #[test]
    fn objects_keep_their_key_order() {
        let fields = [("event", json!("said")), ("args", json!(["x", {"b": 1, "a": 2}]))];
        assert_eq!(object(&fields, false), r#"{"event":"said","args":["x",{"a":2,"b":1}]}"#);
        assert_eq!(strip(&object(&fields, true)), object(&fields, false));
    }

    #[test]
    fn nested_objects_keep_their_key_order_too() {
        let failure = Failure::invoke("f", InvokeError::Remote(json!({"z": 1, "a": 2})));
        let inner = object(&failure.fields(false), false);
        assert_eq!(
            inner,
            r#"{"kind":"remote","message":"{\"a\":2,\"z\":1}","value":{"a":2,"z":1}}"#
        );
        let line = object_of(&[("call", render(&json!("f"), false)), ("error", inner)], false);
        assert_eq!(
            strip(&object_of(
                &[
                    ("call", render(&json!("f"), true)),
                    ("error", object(&failure.fields(false), true))
                ],
                true
            )),
            line
        );
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["error"]["value"], json!({"a": 2, "z": 1}));
        assert!(parsed["error"].get("exit").is_none());
    }

    #[test]
    fn exit_codes_are_distinct() {
        let kinds = [
            Kind::Remote,
            Kind::Usage,
            Kind::Refused,
            Kind::Timeout,
            Kind::Connection,
            Kind::Other,
        ];
        let mut codes: Vec<i32> = kinds.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn refusals_carry_code_and_reason() {
        let failure = Failure::connect(
            "ws://x",
            ConnectError::Refused {
                code: 4003,
                reason: "bad token".into(),
            },
        );
        assert_eq!(failure.kind, Kind::Refused);
        assert_eq!(
            failure.to_json_line(),
            format!(
                r#"{{"error":{{"kind":"refused","message":{},"exit":3,"code":4003,"reason":"bad token"}}}}"#,
                json!(failure.message)
            )
        );
        let remote = Failure::invoke("f", InvokeError::Remote(json!("Error: boom")));
        assert_eq!(remote.kind, Kind::Remote);
        assert_eq!(remote.message, "Error: boom");
        let line: Json = serde_json::from_str(&remote.to_json_line()).unwrap();
        assert_eq!(line["error"]["value"], json!("Error: boom"));
    }
}
