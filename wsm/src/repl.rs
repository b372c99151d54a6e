//! `wsm repl URL`: an interactive session on one connection.
//!
//! Lines read from stdin (a terminal or a pipe): `call NAME ARGS...`,
//! `send NAME ARGS...`, `wait EVENT [MS]`, `history`, `!!` / `!N`,
//! `help`, `quit`. Events are printed as they arrive. A session whose
//! connection was lost connects again when the next command needs it.
//! History is kept in memory for the session (for line editing, run it
//! under `rlwrap`).
//! Try `printf 'call sum 1 2\nquit\n' | wsm repl 8000`; tested by
//! `wsm/tests/cli.rs` (`cargo test -p wsm`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

use crate::client::{self, EventSink};
use crate::model::{self, Model};
use crate::output::{out, Failure, Kind};
use crate::Connect;

const HELP: &str = "\
commands:
  call NAME ARGS...   invoke NAME and print its result
  send NAME ARGS...   send the event NAME
  wait EVENT [MS]     wait for the next EVENT not waited for yet (default: --timeout)
  history             the lines run so far; !N runs line N again, !! the last one
  help                this text
  quit                end the session (so does end of input)
ARGS: each is JSON, or text taken as a string; quote text with spaces ('two words'),
JSON with spaces needs no quotes ({\"a\": [1, 2]}).";

/// Events received per name, and how many of them `wait` has taken.
#[derive(Default)]
struct Seen {
    counts: Mutex<HashMap<String, (u64, u64)>>,
    arrived: Notify,
}

impl Seen {
    fn record(&self, name: &str) {
        self.counts.lock().unwrap().entry(name.to_string()).or_default().0 += 1;
        self.arrived.notify_waiters();
    }

    /// Takes one `name` event not waited for yet, if there is one.
    fn take(&self, name: &str) -> bool {
        let mut counts = self.counts.lock().unwrap();
        let (received, taken) = counts.entry(name.to_string()).or_default();
        if *received > *taken {
            *taken += 1;
            true
        } else {
            false
        }
    }

    async fn wait(&self, name: &str) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.take(name) {
                return;
            }
            arrived.await;
        }
    }
}

/// Runs the session until `quit`, the end of input, or the client stopping
/// for good (refused, out of reconnect attempts).
pub(crate) async fn run<M: Model>(c: &Connect) -> Result<(), Failure> {
    let seen = Arc::new(Seen::default());
    let sink: EventSink = {
        let seen = seen.clone();
        Arc::new(move |name: &str, args: Vec<Json>| {
            out().event(name, args);
            seen.record(name);
        })
    };
    // No reconnect loop: a session that lost its connection connects
    // again when the next command needs it, and says so if it cannot.
    let client = client::build::<M>(c, None, Some(sink))?;
    client::report_changes(&client, &c.url, Vec::new());
    client::connect(&client, c).await?;

    let interactive = std::io::stdin().is_terminal();
    if interactive {
        out().note("`help` lists the commands");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut history: Vec<String> = Vec::new();
    // A line to run again once reconnected.
    let mut pending: Option<String> = None;
    let outcome = loop {
        let rerun = pending.is_some();
        let line = match pending.take() {
            Some(line) => line,
            None => {
                if interactive {
                    print!("wsm> ");
                    let _ = std::io::stdout().flush();
                }
                match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(Failure::new(Kind::Other, format!("reading stdin: {e}"))),
                }
            }
        };
        let line = match expand(line.trim(), &history) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(message) => {
                out().failure(&Failure::usage(message));
                continue;
            }
        };
        let words = match split(&line) {
            Ok(words) => words,
            Err(message) => {
                out().failure(&Failure::usage(message));
                continue;
            }
        };
        let Some((command, rest)) = words.split_first() else {
            continue;
        };
        if command != "history" && !rerun {
            history.push(line.clone());
        }
        match command.as_str() {
            "quit" | "exit" => break Ok(()),
            "help" => out().note(HELP),
            "history" => {
                for (i, line) in history.iter().enumerate() {
                    out().note(&format!("{:>4}  {line}", i + 1));
                }
            }
            "call" | "send" | "wait" if rest.is_empty() => {
                out().failure(&Failure::usage(format!("{command} needs a name; try `help`")));
            }
            "call" | "send" | "wait" if !client.is_connected() => {
                out().note(&format!("reconnecting to {}", c.url));
                match client::connect(&client, c).await {
                    // Run the line again, now connected.
                    Ok(()) => pending = Some(line),
                    Err(failure) => out().failure(&failure),
                }
            }
            "call" => {
                let (name, args) = (&rest[0], &rest[1..]);
                let outcome = match model::args::<M>(args) {
                    Ok(args) => client
                        .invoke_with_timeout::<_, M::Value>(name, args, c.timeout)
                        .await
                        .map_err(|e| Failure::invoke(name, e)),
                    Err(e) => Err(Failure::usage(e)),
                };
                match outcome {
                    Ok(result) => out().result(&M::to_json(result)),
                    Err(failure) => out().failure(&failure),
                }
            }
            "send" => {
                let (name, args) = (&rest[0], &rest[1..]);
                let sent = match model::args::<M>(args) {
                    Ok(args) => client.send(name, args).await.map_err(|e| Failure::send(name, e)),
                    Err(e) => Err(Failure::usage(e)),
                };
                if let Err(failure) = sent {
                    out().failure(&failure);
                }
            }
            "wait" => {
                let within = match rest.get(1).map(|ms| ms.parse::<u64>()) {
                    None => c.timeout,
                    Some(Ok(ms)) => Duration::from_millis(ms),
                    Some(Err(_)) => {
                        out().failure(&Failure::usage(format!("wait: {:?} is not milliseconds", rest[1])));
                        continue;
                    }
                };
                if tokio::time::timeout(within, seen.wait(&rest[0])).await.is_err() {
                    out().failure(&Failure::new(
                        Kind::Timeout,
                        format!("no `{}` event within {within:?}", rest[0]),
                    ));
                }
            }
            other => out().failure(&Failure::usage(format!("unknown command `{other}`; try `help`"))),
        }
    };
    client.off_all("close");
    client::close(&client, Duration::from_secs(1)).await;
    outcome
}

/// History expansion: `!!` is the last line, `!N` line N. `None` for an
/// empty line.
fn expand(line: &str, history: &[String]) -> Result<Option<String>, String> {
    if line.is_empty() {
        return Ok(None);
    }
    let Some(reference) = line.strip_prefix('!') else {
        return Ok(Some(line.to_string()));
    };
    let index = if reference == "!" {
        history.len()
    } else {
        reference
            .parse::<usize>()
            .map_err(|_| format!("`{line}`: use !! or !N (see `history`)"))?
    };
    match index.checked_sub(1).and_then(|i| history.get(i)) {
        Some(found) => {
            out().note(found);
            Ok(Some(found.clone()))
        }
        None => Err(format!("`{line}`: no such line in the history")),
    }
}

/// Splits a command line into words: blanks separate words, except inside
/// 'single quotes' (removed), "JSON strings" (kept, quotes and all) and
/// JSON arrays and objects (kept whole). Also the lines of `wsm call URL -`
/// and the ARGS of `listen --call NAME=ARGS`.
pub(crate) fn split(line: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut word = String::new();
        while i < chars.len() && !chars[i].is_whitespace() {
            match chars[i] {
                '\'' => {
                    let end = chars[i + 1..]
                        .iter()
                        .position(|&c| c == '\'')
                        .ok_or("a ' is not closed")?;
                    word.extend(&chars[i + 1..i + 1 + end]);
                    i += end + 2;
                }
                '"' => {
                    let end = string_end(&chars, i).ok_or("a \" is not closed")?;
                    word.extend(&chars[i..=end]);
                    i = end + 1;
                }
                '{' | '[' => {
                    let end = nested_end(&chars, i).ok_or("a { or [ is not closed")?;
                    word.extend(&chars[i..=end]);
                    i = end + 1;
                }
                c => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// The index of the `"` closing the JSON string opened at `start`.
fn string_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The index of the bracket closing the array or object opened at `start`.
fn nested_end(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' => i = string_end(chars, i)?,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_json_whole() {
        assert_eq!(split("call sum 1 2   3.5").unwrap(), ["call", "sum", "1", "2", "3.5"]);
        assert_eq!(
            split(r#"call echo {"a": [1, "x y"], "b": "}"} [1, 2]"#).unwrap(),
            ["call", "echo", r#"{"a": [1, "x y"], "b": "}"}"#, "[1, 2]"]
        );
        assert_eq!(
            split(r#"send say "two words" 'more words' it's"#).unwrap_err(),
            "a ' is not closed"
        );
        assert_eq!(
            split(r#"send say "two \"quoted\" words" 'more words'"#).unwrap(),
            ["send", "say", r#""two \"quoted\" words""#, "more words"]
        );
        assert!(split("call echo {\"a\": 1").is_err());
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn history_expansion() {
        let history = vec!["call a".to_string(), "send b".to_string()];
        assert_eq!(expand("!!", &history).unwrap().unwrap(), "send b");
        assert_eq!(expand("!1", &history).unwrap().unwrap(), "call a");
        assert!(expand("!3", &history).is_err());
        assert!(expand("!0", &history).is_err());
        assert!(expand("!x", &history).is_err());
        assert_eq!(expand("", &history).unwrap(), None);
        assert_eq!(expand("call c", &history).unwrap().unwrap(), "call c");
    }

    #[tokio::test]
    async fn wait_takes_each_event_once() {
        let seen = Seen::default();
        seen.record("a");
        tokio::time::timeout(Duration::from_secs(5), seen.wait("a"))
            .await
            .unwrap();
        assert!(!seen.take("a"));
        assert!(tokio::time::timeout(Duration::from_millis(20), seen.wait("a"))
            .await
            .is_err());
    }
}
