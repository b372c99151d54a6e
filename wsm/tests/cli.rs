//! The `wsm` binary, run as a user runs it, against the project's server
//! (`wsm serve`) and the JavaScript `ws-messaging` 2.0.0 server
//! (`tests/interop/js_server.js`, Node.js), over loopback, for the json,
//! msgpack and cbor codecs: call, send, listen (with a server-initiated
//! invoke answered by `--register`), repl, bench, errors and their exit
//! codes, auth refusal, timeouts, reconnection. Against an in-process
//! library server (`Recorder`): `--header` and `--cookie` as the connection
//! hook sees them, several calls on one connection (`call A -- B`,
//! `call URL -`), `listen --call` after reconnections and resumes.
//!
//! Run: `npm ci --prefix tests/interop --no-audit --no-fund` once (the
//! JavaScript peers), then `cargo test -p wsm`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};

/// The longest any one step may take.
#[path = "../../tests/common/cutter.rs"]
mod cutter;
#[path = "../../tests/common/redis.rs"]
#[allow(dead_code)]
mod redis;

use cutter::Cutter;

const WAIT: Duration = Duration::from_secs(20);
/// The auth value both conformance servers accept.
const AUTH: &str = r#"{"token":"secret"}"#;

/// A `wsm` command, killed if the test ends first.
fn wsm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsm"));
    command.kill_on_drop(true);
    command
}

/// How a `wsm` run ended.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The single stdout line, as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code: {self:?}");
        assert!(!self.stdout.contains('\x1b'), "no colour when piped: {self:?}");
        self
    }
}

/// Runs `wsm ARGS` with `input` on stdin, to its end.
async fn run_with(args: &[&str], input: Option<&str>) -> Ran {
    let mut child = wsm()
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsm");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
    }
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("wsm {args:?} did not finish in time"))
        .unwrap();
    Ran {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

async fn run(args: &[&str]) -> Ran {
    run_with(args, None).await
}

async fn run_owned(args: Vec<String>) -> Ran {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args).await
}

/// A server process and its `ws://` URL.
#[derive(Debug)]
struct Server {
    child: Child,
    url: String,
}

/// Starts a process that prints `listening on 127.0.0.1:PORT` when ready.
async fn listening(mut command: Command, what: &str) -> Server {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} did not print its address in time"))
        .unwrap()
        .unwrap_or_else(|| panic!("{what} exited before listening"));
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{what}: unexpected line {line:?}"));
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // Keep the pipe open (and drained) so that later prints never block.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        url: format!("ws://{addr}"),
    }
}

/// `wsm serve` with the conformance token, on `port` (0: a free one).
async fn rust_server(codec: &str, port: u16) -> Server {
    let mut command = wsm();
    let port = port.to_string();
    command.args(["--codec", codec, "serve", "--port", &port, "--auth-token", "secret"]);
    listening(command, "wsm serve").await
}

/// tests/interop/, with its npm packages installed.
fn interop_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    assert!(
        dir.join("node_modules/ws-messaging").is_dir(),
        "the JavaScript peers are not installed: run `npm ci --prefix tests/interop --no-audit --no-fund` \
         at the root of the workspace (Node.js is needed)"
    );
    dir
}

/// The JavaScript ws-messaging 2.0.0 conformance server.
async fn js_server(codec: &str) -> Server {
    let mut command = Command::new("node");
    command
        .current_dir(interop_dir())
        .args(["js_server.js", "--port", "0", "--codec", codec]);
    listening(command, "node js_server.js (is Node.js installed?)").await
}

/// A long-running `wsm listen` or `wsm repl`, read line by line.
struct Listener {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Listener {
    async fn start(args: &[&str]) -> Self {
        let mut child = wsm()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wsm");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Listener { child, lines }
    }

    /// Writes a line on its stdin.
    async fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next stdout line, as JSON.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("wsm listen printed a line in time")
            .unwrap()
            .expect("wsm listen is still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Skips status lines up to the next `{"local":WHAT}`; there must be
    /// no other line on the way.
    async fn local(&mut self, what: &str) -> Value {
        loop {
            let line = self.next().await;
            if line["local"] == what {
                return line;
            }
            assert!(line.get("local").is_some(), "waiting for {what}, got {line}");
        }
    }

    /// Skips status lines up to the next `{"local":"connect"}`.
    async fn connected(&mut self) -> Value {
        self.local("connect").await
    }
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The conformance contract, through `wsm`, against a server speaking `codec`.
async fn conformance(server: &Server, codec: &str, js: bool) {
    let url = server.url.as_str();
    let c = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--codec", codec];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect()
    };
    let call = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--codec", codec, "call", url];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--auth", AUTH]);
        all.into_iter().map(String::from).collect()
    };

    // A result, bare arguments as JSON or text.
    let ran = run_owned(call(&["sum", "1", "2", "3.5"])).await;
    assert_eq!(number(&ran.assert_code(0).json()), 6.5);
    let ran = run_owned(call(&["sum", "-1", "-2.5"])).await;
    assert_eq!(number(&ran.assert_code(0).json()), -3.5);
    let value = json!({"a": [1, "x", null, true, {"b": -2.5}], "s": "two words"});
    let ran = run_owned(call(&["echo", &value.to_string()])).await;
    assert_eq!(ran.assert_code(0).json(), value);
    let ran = run_owned(call(&["echo", "plain text"])).await;
    assert_eq!(ran.assert_code(0).json(), json!("plain text"));
    let ran = run_owned(call(&["whoami"])).await;
    assert_eq!(ran.assert_code(0).json().as_str().map(str::len), Some(24), "{ran:?}");

    // Binary both ways in the binary formats.
    if codec != "json" {
        let bytes = json!({"$bytes": "AAEC/w=="});
        let ran = run_owned(call(&["echo", &bytes.to_string()])).await;
        assert_eq!(ran.assert_code(0).json(), bytes);
        if js {
            let ran = run_owned(call(&["describe", &bytes.to_string(), "1", "x"])).await;
            assert_eq!(ran.assert_code(0).json(), json!(["Buffer", "number", "string"]));
        }
    }

    // Script mode: one JSON object per line.
    let ran = run_owned(call(&["sum", "1", "2", "--json"])).await;
    assert_eq!(number(&ran.assert_code(0).json()["result"]), 3.0);

    // A remote error: exit 1, the peer's error on stderr.
    let ran = run_owned(call(&["fail", "boom"])).await;
    assert!(ran.assert_code(1).stderr.contains("Error: boom"), "{ran:?}");
    assert!(ran.stdout.is_empty(), "{ran:?}");
    let ran = run_owned(call(&["fail", "boom", "--json"])).await;
    let error = &ran.assert_code(1).json()["error"];
    assert_eq!(
        (&error["kind"], &error["value"], &error["exit"]),
        (&json!("remote"), &json!("Error: boom"), &json!(1))
    );
    let ran = run_owned(call(&["no-such-procedure"])).await;
    assert!(ran.assert_code(1).stderr.contains("NoProcedureError"), "{ran:?}");

    // No reply in time: exit 4.
    let ran = run_owned(call(&["sleep", "3000", "1", "--timeout", "200"])).await;
    assert!(ran.assert_code(4).stderr.contains("no reply in time"), "{ran:?}");

    // Refused: exit 3, with the close code and the server's reason.
    let ran = run_owned(c(&["call", url, "sum", "1", "--auth", r#"{"token":"nope"}"#])).await;
    assert!(ran.assert_code(3).stderr.contains("(4003): bad token"), "{ran:?}");
    let ran = run_owned(c(&["call", url, "sum", "1", "--json"])).await;
    let error = &ran.assert_code(3).json()["error"];
    assert_eq!((&error["code"], &error["reason"]), (&json!(4003), &json!("bad token")));
    let ran = run_owned(c(&["send", url, "shout", "x", "--auth", r#"{"token":"nope"}"#])).await;
    ran.assert_code(3);
    let ran = run_owned(c(&["listen", url, "--auth", r#"{"token":"nope"}"#])).await;
    ran.assert_code(3);

    // `--auth @file`.
    let file = std::env::temp_dir().join(format!("wsm-auth-{}-{codec}-{js}.json", std::process::id()));
    std::fs::write(&file, AUTH).unwrap();
    let at_file = format!("@{}", file.display());
    let ran = run(&["--codec", codec, "call", url, "sum", "2", "2", "--auth", &at_file]).await;
    assert_eq!(number(&ran.assert_code(0).json()), 4.0);
    std::fs::remove_file(&file).unwrap();

    // listen, every event: the server's own invoke answered by --register,
    // and an event another client triggers.
    let mut all = Listener::start(&[
        "--codec",
        codec,
        "listen",
        url,
        "--auth",
        AUTH,
        "--json",
        "--register",
        "double=42",
        "--send",
        r#"say=["x"]"#,
        "--send",
        r#"call-me=["double",21]"#,
    ])
    .await;
    let connected = all.connected().await;
    assert_eq!(connected["reply"], json!({"user": "alice"}));
    assert_eq!(all.next().await, json!({"event": "said", "args": ["x"]}));
    assert_eq!(
        all.next().await,
        json!({"invoked": "double", "args": [21], "result": 42})
    );
    assert_eq!(all.next().await, json!({"event": "called", "args": [42]}));
    let ran = run_owned(c(&["send", url, "shout", "hello", "2", "--auth", AUTH])).await;
    assert!(ran.assert_code(0).stdout.is_empty(), "{ran:?}");
    assert_eq!(all.next().await, json!({"event": "shouted", "args": ["hello", 2]}));

    // listen, named events only: `said` comes before `called` and is not
    // printed; --count ends it.
    let ran = run_owned(c(&[
        "listen",
        url,
        "called",
        "--auth",
        AUTH,
        "--register",
        "double=[7]",
        "--send",
        r#"say=["x"]"#,
        "--send",
        r#"call-me=["double",{"$bytes":"AQ=="}]"#,
        "--count",
        "1",
    ]))
    .await;
    let lines: Vec<Value> = ran
        .assert_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Binary in msgpack and cbor, an object in JSON: printed back the same.
    let sent_back = json!({"$bytes": "AQ=="});
    assert_eq!(
        lines,
        [
            json!({"invoked": "double", "args": [sent_back], "result": [7]}),
            json!({"event": "called", "args": [[7]]})
        ],
        "{ran:?}"
    );

    // repl, scripted through a pipe.
    let script = "call sum 1 2\nsend say 'two words' {\"a\": [1, 2]}\nwait said\ncall fail oops\n\
                  call\nbogus\n!1\nquit\ncall sum 5 5\n";
    let ran = run_with(&["--codec", codec, "repl", url, "--auth", AUTH], Some(script)).await;
    let lines: Vec<&str> = ran.assert_code(0).stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{ran:?}");
    assert_eq!(number(&serde_json::from_str(lines[0]).unwrap()), 3.0);
    assert_eq!(
        serde_json::from_str::<Value>(lines[1]).unwrap(),
        json!({"event": "said", "args": ["two words", {"a": [1, 2]}]})
    );
    assert_eq!(number(&serde_json::from_str(lines[2]).unwrap()), 3.0);
    assert!(ran.stderr.contains("Error: oops"), "{ran:?}");
    assert!(ran.stderr.contains("call needs a name"), "{ran:?}");
    assert!(ran.stderr.contains("unknown command `bogus`"), "{ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_server_json() {
    let server = rust_server("json", 0).await;
    conformance(&server, "json", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_server_msgpack() {
    let server = rust_server("msgpack", 0).await;
    conformance(&server, "msgpack", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_server_cbor() {
    let server = rust_server("cbor", 0).await;
    conformance(&server, "cbor", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_json() {
    let server = js_server("json").await;
    conformance(&server, "json", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_msgpack() {
    let server = js_server("msgpack").await;
    conformance(&server, "msgpack", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_cbor() {
    let server = js_server("cbor").await;
    conformance(&server, "cbor", true).await;
}

/// The JavaScript server answers `{"token":"slow"}` after 500 ms: past
/// `--timeout`, that is a timeout (exit 4), not a refusal.
#[tokio::test]
async fn a_late_auth_reply_is_a_timeout() {
    let server = js_server("json").await;
    let ran = run(&[
        "call",
        &server.url,
        "sum",
        "1",
        "--auth",
        r#"{"token":"slow"}"#,
        "--timeout",
        "150",
    ])
    .await;
    assert!(ran.assert_code(4).stderr.contains("no auth reply in time"), "{ran:?}");
    let ran = run(&[
        "call",
        &server.url,
        "sum",
        "1",
        "--auth",
        r#"{"token":"slow"}"#,
        "--timeout",
        "5000",
    ])
    .await;
    assert_eq!(number(&ran.assert_code(0).json()), 1.0);
}

/// Nobody listening: exit 5, for every client command.
#[tokio::test]
async fn an_unreachable_server_is_a_connection_failure() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}");
    let ran = run(&["call", &url, "sum", "1"]).await;
    assert!(ran.assert_code(5).stderr.contains("could not connect"), "{ran:?}");
    run(&["send", &url, "say", "x"]).await.assert_code(5);
    run(&["listen", &url, "--retries", "0"]).await.assert_code(5);
    run(&["repl", &url]).await.assert_code(5);
    let ran = run(&["--json", "call", &port.to_string(), "sum", "1"]).await;
    assert_eq!(ran.assert_code(5).json()["error"]["kind"], "connection");
}

/// A socket that accepts but never answers the WebSocket handshake: the
/// socket does not open within `--timeout` (exit 4).
#[tokio::test]
async fn a_silent_server_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let ran = run(&["call", &url, "sum", "1", "--timeout", "300"]).await;
    assert!(ran.assert_code(4).stderr.contains("did not open"), "{ran:?}");
    holder.abort();
}

/// Command-line mistakes: exit 2, with the reason.
#[tokio::test]
async fn usage_errors() {
    let ran = run(&[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    let ran = run(&["call", "8000"]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    let ran = run(&["--codec", "yaml", "call", "8000", "sum"]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    let ran = run(&["call", "8000", "sum", "--auth", "{not json"]).await;
    assert!(ran.assert_code(2).stderr.contains("--auth: not JSON"), "{ran:?}");
    let ran = run(&["call", "8000", "sum", "--auth", "@/nonexistent/wsm-auth.json"]).await;
    assert!(ran.assert_code(2).stderr.contains("--auth @/nonexistent"), "{ran:?}");
    let ran = run(&["--codec", "msgpack", "call", "8000", "echo", r#"{"$bytes":"%%"}"#]).await;
    assert!(ran.assert_code(2).stderr.contains("invalid base64"), "{ran:?}");
    let ran = run(&["call", "ws://[::1", "sum"]).await;
    assert!(ran.assert_code(2).stderr.contains("invalid URL"), "{ran:?}");
    let ran = run(&["listen", "8000", "--register", "no-equals-sign"]).await;
    assert!(ran.assert_code(2).stderr.contains("expected NAME=JSON"), "{ran:?}");
    let ran = run(&["bench", "8000", "--duration", "0"]).await;
    assert_eq!(ran.assert_code(2).code, 2);
    let ran = run(&["bench"]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
}

/// `--help` documents the exit codes.
#[tokio::test]
async fn help_lists_the_exit_codes() {
    let ran = run(&["--help"]).await;
    let help = &ran.assert_code(0).stdout;
    for line in [
        "1  the peer answered with an error",
        "3  refused by the server",
        "4  timeout",
        "5  connection failure",
    ] {
        assert!(help.contains(line), "{line:?} missing from:\n{help}");
    }
    for command in ["call", "send", "listen", "repl", "serve", "bench"] {
        assert!(
            help.contains(&format!("  {command} ")),
            "{command} missing from:\n{help}"
        );
    }
}

/// `listen` reconnects when its server goes away and comes back, and its
/// `--send` events go out again.
#[tokio::test]
async fn listen_reconnects() {
    let mut server = rust_server("json", 0).await;
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut listener = Listener::start(&[
        "listen",
        &server.url,
        "--auth",
        AUTH,
        "--json",
        "--send",
        r#"say=["again"]"#,
    ])
    .await;
    listener.connected().await;
    assert_eq!(listener.next().await, json!({"event": "said", "args": ["again"]}));
    server.child.start_kill().unwrap();
    tokio::time::timeout(WAIT, server.child.wait()).await.unwrap().unwrap();
    listener.local("close").await;

    let server = rust_server("json", port).await;
    listener.connected().await;
    assert_eq!(listener.next().await, json!({"event": "said", "args": ["again"]}));
    run(&["send", &server.url, "shout", "back", "--auth", AUTH])
        .await
        .assert_code(0);
    assert_eq!(listener.next().await, json!({"event": "shouted", "args": ["back"]}));
}

/// `wsm serve` on a port already taken: exit 6.
#[tokio::test]
async fn serve_on_a_taken_port_fails() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let ran = run(&["serve", "--port", &port]).await;
    assert!(ran.assert_code(6).stderr.contains("cannot listen"), "{ran:?}");
}

/// `wsm serve` without `--auth-token` accepts every client.
#[tokio::test]
async fn serve_without_a_token_accepts_everyone() {
    let mut command = wsm();
    command.args(["serve", "--port", "0"]);
    let server = listening(command, "wsm serve").await;
    let ran = run(&["call", &server.url, "whoami"]).await;
    assert!(ran.assert_code(0).json().is_string(), "{ran:?}");
    let ran = run(&["call", &server.url, "echo", "--auth", r#"{"token":"anything"}"#]).await;
    assert_eq!(ran.assert_code(0).json(), Value::Null);
}

/// `bench` reports consistently (speed is not asserted): in-process, and
/// against a server process, for each codec.
#[tokio::test]
async fn bench_reports_percentiles() {
    for codec in ["json", "msgpack", "cbor"] {
        let ran = run(&[
            "--codec",
            codec,
            "--json",
            "bench",
            "--self",
            "--duration",
            "0.3",
            "-n",
            "4",
        ])
        .await;
        let report = ran.assert_code(0).json();
        assert_eq!(report["codec"], codec);
        assert_eq!(report["in_flight"], 4);
        assert_eq!(report["errors"], 0);
        assert!(report["calls"].as_u64().unwrap() > 0, "{report}");
        let latency = &report["latency_us"];
        let [p50, p90, p99, max] = ["p50", "p90", "p99", "max"].map(|p| latency[p].as_u64().unwrap());
        assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{report}");
    }
    let server = rust_server("msgpack", 0).await;
    let ran = run(&[
        "--codec",
        "msgpack",
        "bench",
        &server.url,
        "--auth",
        AUTH,
        "--duration",
        "0.3",
        "-n",
        "8",
        "--payload",
        r#"{"$bytes":"AAEC"}"#,
    ])
    .await;
    let table = &ran.assert_code(0).stdout;
    for column in ["calls/s", "p50", "p90", "p99", "max", "8 in flight"] {
        assert!(table.contains(column), "{column:?} missing from:\n{table}");
    }
    let ran = run(&["--codec", "msgpack", "bench", &server.url, "--duration", "0.3"]).await;
    assert!(ran.assert_code(3).stderr.contains("bad token"), "{ran:?}");
}

/// A `repl` whose server went away connects again for the next command.
#[tokio::test]
async fn repl_reconnects_for_the_next_command() {
    let mut server = rust_server("msgpack", 0).await;
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut repl = Listener::start(&["--codec", "msgpack", "--json", "repl", &server.url, "--auth", AUTH]).await;
    repl.connected().await;
    repl.type_line("call sum 1 2").await;
    assert_eq!(number(&repl.next().await["result"]), 3.0);
    server.child.start_kill().unwrap();
    tokio::time::timeout(WAIT, server.child.wait()).await.unwrap().unwrap();
    repl.local("close").await;

    let _server = rust_server("msgpack", port).await;
    repl.type_line("call sum 2 2").await;
    repl.connected().await;
    assert_eq!(number(&repl.next().await["result"]), 4.0);
    repl.type_line("quit").await;
    let status = tokio::time::timeout(WAIT, repl.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A URL of another scheme than ws:// or wss://, and a bench duration no
/// clock can count, are usage errors (exit 2) for every command, not a
/// connection failure or a crash.
#[tokio::test]
async fn a_url_of_another_scheme_and_an_endless_duration_are_usage_errors() {
    for args in [
        &["call", "http://127.0.0.1:1", "sum"][..],
        &["send", "https://127.0.0.1:1", "say"],
        &["listen", "http://127.0.0.1:1"],
        &["repl", "ftp://127.0.0.1:1"],
        &["bench", "http://127.0.0.1:1", "--duration", "0.1"],
    ] {
        let ran = run(args).await;
        assert!(
            ran.assert_code(2).stderr.contains("ws:// or wss://"),
            "{args:?}: {ran:?}"
        );
    }
    for duration in ["1e20", "1e300", "inf", "1e-12"] {
        let ran = run(&["bench", "8000", "--duration", duration]).await;
        assert!(ran.assert_code(2).stderr.contains("--duration"), "{duration}: {ran:?}");
        let ran = run(&["bench", "--self", "-d", duration]).await;
        ran.assert_code(2);
    }
}

/// `tell(id, ..)` on `wsm serve` reaches the connection `id` only: a client
/// that joins a room named like that id gets nothing of it.
#[tokio::test]
async fn serve_tells_the_connection_and_not_a_room_named_like_its_id() {
    let server = rust_server("json", 0).await;
    let url = server.url.as_str();
    let mut victim = Listener::start(&["--json", "repl", url, "--auth", AUTH]).await;
    victim.connected().await;
    victim.type_line("call whoami").await;
    let id = victim.next().await["result"].as_str().expect("an id").to_string();
    let mut attacker = Listener::start(&["--json", "repl", url, "--auth", AUTH]).await;
    attacker.connected().await;
    // As a JSON string: an id may look like a number.
    attacker.type_line(&format!("call join \"{id}\"")).await;
    assert_eq!(attacker.next().await, json!({"result": true}));
    // Then a marker from the same connection: anything the server sent
    // the attacker for the `tell` would come before it.
    attacker.type_line(&format!("send tell \"{id}\" secret")).await;
    attacker.type_line("send shout end").await;
    assert_eq!(victim.next().await, json!({"event": "told", "args": ["secret"]}));
    assert_eq!(victim.next().await, json!({"event": "shouted", "args": ["end"]}));
    assert_eq!(attacker.next().await, json!({"event": "shouted", "args": ["end"]}));
    // `to-room` with that name still reaches the room's member, not the
    // connection.
    attacker.type_line(&format!("send to-room \"{id}\" hi")).await;
    attacker.type_line("send shout end2").await;
    assert_eq!(attacker.next().await, json!({"event": "room", "args": [id, "hi"]}));
    assert_eq!(attacker.next().await, json!({"event": "shouted", "args": ["end2"]}));
    assert_eq!(victim.next().await, json!({"event": "shouted", "args": ["end2"]}));
}

/// The workspace's `echo_server` example (built by `cargo test` and both
/// test tiers), beside this test binary's directory.
fn echo_server_path() -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let profile = exe.parent().and_then(Path::parent).expect("target/PROFILE/deps/this");
    let path = profile.join("examples").join("echo_server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --example echo_server` first",
        path.display()
    );
    path
}

/// `listen --resume` through a proxy that cuts the connection: each
/// `shouted` printed once, in order; against a server that lost the
/// session (restarted), a `"resumed":false` line.
#[tokio::test]
async fn listen_resume_prints_each_event_once_through_cuts() {
    const EVENTS: u64 = 120;
    let start_server = |port: u16| {
        let mut command = Command::new(echo_server_path());
        command.args(["--port", &port.to_string(), "--recovery"]);
        listening(command, "echo_server --recovery")
    };
    let mut server = start_server(0).await;
    let addr = server.url.strip_prefix("ws://").unwrap().to_string();
    let proxy = Cutter::start(&addr).await;
    let mut listener = Listener::start(&["listen", &proxy.url, "--resume", "--auth", AUTH, "--json"]).await;
    listener.connected().await;
    let sender = ws_messaging::Client::<ws_messaging_json::Json>::builder(server.url.clone())
        .auth(&json!({ "token": "secret" }))
        .connect()
        .await
        .unwrap();
    let sending = tokio::spawn(async move {
        for n in 1..=EVENTS {
            sender.send("shout", (n,)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sender
    });
    let mut got = Vec::new();
    while got.len() < EVENTS as usize {
        let line = listener.next().await;
        if line.get("local").is_some() {
            assert_ne!(line["resumed"], json!(false), "{line}");
            continue;
        }
        assert_eq!(line["event"], "shouted", "{line}");
        got.push(line["args"][0].as_u64().unwrap());
        if got.len() % 30 == 0 {
            proxy.cut();
        }
    }
    let _sender = sending.await.unwrap();
    assert_eq!(got, (1..=EVENTS).collect::<Vec<_>>(), "each event once, in order");

    // The server restarts: the session is gone, and the listener says so.
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    server.child.start_kill().unwrap();
    tokio::time::timeout(WAIT, server.child.wait()).await.unwrap().unwrap();
    let _server = start_server(port).await;
    assert_eq!(
        listener.local("resume").await,
        json!({"local": "resume", "resumed": false, "reason": "unknown"})
    );
}

#[tokio::test]
async fn listen_resume_prints_each_event_once_moved_between_two_nodes_and_off_a_killed_one() {
    const EVENTS: u64 = 150;
    let redis = redis::RedisServer::start().await;
    let node = || {
        let mut command = Command::new(echo_server_path());
        command.args(["--port", "0", "--recovery", "--redis", &redis.url()]);
        listening(command, "echo_server --recovery --redis")
    };
    let mut a = node().await;
    let b = node().await;
    let a_addr = a.url.strip_prefix("ws://").unwrap().to_string();
    let b_addr = b.url.strip_prefix("ws://").unwrap().to_string();
    let proxy = Cutter::start(&a_addr).await;
    let mut listener = Listener::start(&["listen", &proxy.url, "--resume", "--auth", AUTH, "--json"]).await;
    listener.connected().await;
    // The sender is on the other node.
    let sender = ws_messaging::Client::<ws_messaging_json::Json>::builder(b.url.clone())
        .auth(&json!({ "token": "secret" }))
        .connect()
        .await
        .unwrap();
    let sending = tokio::spawn(async move {
        for n in 1..=EVENTS {
            sender.send("shout", (n,)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sender
    });
    let mut got = Vec::new();
    while got.len() < EVENTS as usize {
        let line = listener.next().await;
        if line.get("local").is_some() {
            assert_ne!(line["resumed"], json!(false), "{line}");
            continue;
        }
        assert_eq!(line["event"], "shouted", "{line}");
        got.push(line["args"][0].as_u64().unwrap());
        match got.len() {
            30 => {
                proxy.point_to(&b_addr);
                proxy.cut();
            }
            60 => {
                proxy.point_to(&a_addr);
                proxy.cut();
            }
            // Its node dies: it resumes on the other one.
            90 => {
                proxy.point_to(&b_addr);
                a.child.start_kill().unwrap();
            }
            120 => proxy.cut(),
            _ => {}
        }
    }
    let _sender = sending.await.unwrap();
    assert_eq!(got, (1..=EVENTS).collect::<Vec<_>>(), "each event once, in order");
}

/// What one connection's upgrade request said, as the server's connection
/// hook saw it.
#[derive(Debug, Clone, PartialEq)]
struct Upgrade {
    tenant: Option<String>,
    trace: Option<String>,
    session: Option<String>,
    theme: Option<String>,
}

/// An in-process server (the library's own) with the conformance
/// handlers, plus `kick()` (closes the caller's connection, 4000): it
/// records each connection's upgrade request and keeps its endpoint, so a
/// test can count connections and close them from the server side.
struct Recorder {
    server: ws_messaging::Server<ws_messaging_json::Json>,
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Upgrade>>>,
    endpoints: std::sync::Arc<std::sync::Mutex<Vec<ws_messaging::Endpoint<ws_messaging_json::Json>>>>,
}

impl Recorder {
    async fn start(recovery: bool) -> Self {
        use ws_messaging::{Endpoint, HandlerError, RecoveryConfig, Server};
        use ws_messaging_json::Json;
        let seen: std::sync::Arc<std::sync::Mutex<Vec<Upgrade>>> = Default::default();
        let endpoints: std::sync::Arc<std::sync::Mutex<Vec<Endpoint<Json>>>> = Default::default();
        let (seen_in, endpoints_in) = (seen.clone(), endpoints.clone());
        let mut builder = Server::<Json>::builder().on_connection(move |endpoint: Endpoint<Json>, _auth: Value| {
            let (seen, endpoints) = (seen_in.clone(), endpoints_in.clone());
            async move {
                let request = endpoint.request().expect("the upgrade request, in the hook");
                let owned = |v: Option<&str>| v.map(str::to_string);
                seen.lock().unwrap().push(Upgrade {
                    tenant: owned(request.header("x-tenant")),
                    trace: owned(request.header("x-trace")),
                    session: owned(request.cookie("session")),
                    theme: owned(request.cookie("theme")),
                });
                endpoints.lock().unwrap().push(endpoint.clone());
                Ok::<_, HandlerError>(json!({"user": "guest"}))
            }
        });
        if recovery {
            builder = builder.recovery(RecoveryConfig::default());
        }
        let server = builder.bind("127.0.0.1:0").await.unwrap();
        ws_messaging_conformance::register::<Json, Value>(&server, false).unwrap();
        server
            .register("kick", |me: Endpoint<Json>, ()| async move {
                me.close(4000, "kicked");
                Ok::<_, HandlerError>(true)
            })
            .unwrap();
        let url = format!("ws://{}", server.local_addr().unwrap());
        Recorder {
            server,
            url,
            seen,
            endpoints,
        }
    }

    /// The connections made so far.
    fn connections(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Upgrade {
        self.seen.lock().unwrap().last().cloned().expect("a connection")
    }

    /// Closes the latest connection from the server side, with a code
    /// after which clients reconnect.
    fn kick_last(&self) {
        let endpoint = self.endpoints.lock().unwrap().last().cloned().expect("a connection");
        endpoint.close(4000, "kicked by the test");
    }
}

/// `--header` (repeatable) and `--cookie` reach the server's connection
/// hook on the upgrade request, for every command that connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_cookies_reach_the_connection_hook() {
    let server = Recorder::start(false).await;
    let url = server.url.as_str();
    let flags = [
        "-H",
        "X-Tenant: acme",
        "--header",
        "X-Trace:t-1",
        "--cookie",
        "session=abc; theme=dark",
    ];
    let commands: [(&[&str], Option<&str>); 5] = [
        (&["call", url, "sum", "1", "2"], None),
        (&["send", url, "say", "hi"], None),
        (&["listen", url, "--count", "0"], None),
        (&["repl", url], Some("call sum 1\nquit\n")),
        (&["bench", url, "--duration", "0.2", "-n", "1"], None),
    ];
    for (i, (command, input)) in commands.into_iter().enumerate() {
        let mut args = command.to_vec();
        args.extend_from_slice(&flags);
        let ran = run_with(&args, input).await;
        ran.assert_code(0);
        assert_eq!(server.connections(), i + 1, "{args:?}: {ran:?}");
        assert_eq!(
            server.last(),
            Upgrade {
                tenant: Some("acme".into()),
                trace: Some("t-1".into()),
                session: Some("abc".into()),
                theme: Some("dark".into()),
            },
            "{args:?}"
        );
    }
    // Cookies given apart are one `Cookie` header; without the flags the
    // request has none of them.
    let ran = run(&[
        "call",
        url,
        "whoami",
        "--cookie",
        "session=s2",
        "--cookie",
        "theme=light",
    ])
    .await;
    ran.assert_code(0);
    assert_eq!(
        server.last(),
        Upgrade {
            tenant: None,
            trace: None,
            session: Some("s2".into()),
            theme: Some("light".into()),
        }
    );
    run(&["call", url, "whoami"]).await.assert_code(0);
    assert_eq!(
        server.last(),
        Upgrade {
            tenant: None,
            trace: None,
            session: None,
            theme: None
        }
    );
}

/// A malformed `--header` (no colon, empty or invalid name, a handshake
/// header, a value HTTP cannot carry) or an empty `--cookie` is a usage
/// error (exit 2) with the reason, for every command that connects, before
/// any connection is tried.
#[tokio::test]
async fn a_malformed_header_is_a_usage_error() {
    let url = "ws://127.0.0.1:1";
    let commands: [&[&str]; 5] = [
        &["call", url, "sum", "1"],
        &["send", url, "say"],
        &["listen", url],
        &["repl", url],
        &["bench", url, "--duration", "0.1"],
    ];
    let bad: [(&[&str], &str); 6] = [
        (&["--header", "no-colon"], "expected NAME:VALUE"),
        (&["--header", ": value"], "the name before the colon is empty"),
        (&["-H", "X Tenant: acme"], "is not a header name"),
        (&["--header", "Sec-WebSocket-Key: x"], "set by the WebSocket handshake"),
        (&["--header", "X-Tenant: caf\u{e9}"], "cannot be sent in a header"),
        (&["--cookie", ""], "--cookie: the value is empty"),
    ];
    for command in commands {
        for (flags, reason) in bad {
            let mut args = command.to_vec();
            args.extend_from_slice(flags);
            let ran = run(&args).await;
            assert!(ran.assert_code(2).stderr.contains(reason), "{args:?}: {ran:?}");
            assert!(!ran.stderr.contains("panicked"), "{args:?}: {ran:?}");
        }
    }
    let ran = run(&["--json", "call", url, "sum", "--header", "nocolon"]).await;
    let error = &ran.assert_code(2).json()["error"];
    assert_eq!((&error["kind"], &error["exit"]), (&json!("usage"), &json!(2)));
    assert!(error["message"].as_str().unwrap().starts_with("--header"), "{error}");
}

/// `wsm call URL a ARGS -- b ARGS -- ...`: the calls in order, on one
/// connection, each printed as a single call prints it; a failure is
/// printed and the next call runs; the exit code is the first failure's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runs_a_sequence_on_one_connection() {
    let server = Recorder::start(false).await;
    let url = server.url.as_str();
    // One call: the output as it always was.
    let ran = run(&["call", url, "sum", "1", "2.5"]).await;
    assert_eq!((ran.assert_code(0).stdout.as_str(), ran.stderr.as_str()), ("3.5\n", ""));
    assert_eq!(server.connections(), 1);

    let ran = run(&[
        "call",
        url,
        "whoami",
        "--auth",
        "{}",
        "--",
        "sum",
        "1",
        "-2",
        "--",
        "echo",
        "two words",
        "--",
        "whoami",
    ])
    .await;
    let lines: Vec<Value> = ran
        .assert_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{ran:?}");
    assert!(lines[0].is_string(), "{ran:?}");
    assert_eq!(&lines[1..3], [json!(-1.0), json!("two words")], "{ran:?}");
    assert_eq!(lines[3], lines[0], "both `whoami` on the same connection: {ran:?}");
    assert_eq!(server.connections(), 2, "exactly one connection for the sequence");

    // A failure in the middle: printed, the next call runs, exit 1.
    let ran = run(&[
        "--json", "call", url, "sum", "1", "--", "fail", "boom", "--", "sum", "2",
    ])
    .await;
    let lines: Vec<Value> = ran
        .assert_code(1)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{ran:?}");
    assert_eq!(
        (&lines[0], &lines[2]),
        (&json!({"result": 1.0}), &json!({"result": 2.0}))
    );
    assert_eq!(
        lines[1],
        json!({"error": {"kind": "remote", "message": "Error: boom", "exit": 1, "value": "Error: boom"}})
    );
    assert!(ran.stderr.contains("wsm: Error: boom"), "{ran:?}");
    assert!(ran.stderr.contains("1 of 3 calls failed"), "{ran:?}");
    assert_eq!(server.connections(), 3);

    // A lost connection ends the run: the calls left are not sent (exit 5).
    let ran = run(&["call", url, "sum", "7", "--", "kick", "--", "sum", "8"]).await;
    assert_eq!(ran.assert_code(5).stdout, "7.0\n", "{ran:?}");
    assert_eq!(server.connections(), 4);

    // Argument mistakes are found before connecting; options go before
    // the first `--`.
    let ran = run(&[
        "--codec",
        "msgpack",
        "call",
        url,
        "sum",
        "1",
        "--",
        "echo",
        r#"{"$bytes":"%%"}"#,
    ])
    .await;
    assert!(ran.assert_code(2).stderr.contains("invalid base64"), "{ran:?}");
    let ran = run(&["call", url, "sum", "1", "--", "sum", "2", "--auth", "{}"]).await;
    assert!(
        ran.assert_code(2).stderr.contains("options go before the first `--`"),
        "{ran:?}"
    );
    let ran = run(&["call", url, "sum", "1", "--", "--", "sum"]).await;
    ran.assert_code(2);
    assert_eq!(server.connections(), 4, "no connection for a usage error");
}

/// `wsm call URL -`: one call per line of stdin, blank lines and `#`
/// comments skipped, on one connection; a line that does not parse is a
/// failed call and the next one runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_dash_runs_a_script_from_stdin() {
    let server = Recorder::start(false).await;
    let url = server.url.as_str();
    let script = "# a script\n\nwhoami\n  sum 1 2 -0.5  \necho 'two words'\necho {\"a\": [1, \"x y\"]}\n\
                  fail oops\necho \"unclosed\n   # indented comment\nwhoami\n";
    let ran = run_with(&["call", url, "-", "--auth", "{}"], Some(script)).await;
    let lines: Vec<Value> = ran
        .assert_code(1)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{ran:?}");
    assert!(lines[0].is_string(), "{ran:?}");
    assert_eq!(
        &lines[1..4],
        [json!(2.5), json!("two words"), json!({"a": [1, "x y"]})],
        "{ran:?}"
    );
    assert_eq!(lines[4], lines[0], "one connection: {ran:?}");
    assert!(ran.stderr.contains("wsm: Error: oops"), "{ran:?}");
    assert!(ran.stderr.contains("line 8: a \" is not closed"), "{ran:?}");
    assert!(ran.stderr.contains("2 of 7 calls failed"), "{ran:?}");
    assert_eq!(server.connections(), 1);

    // Only usage failures: exit 2; every call succeeded: exit 0.
    let ran = run_with(&["--json", "call", url, "-"], Some("echo [1\nsum 2 2\n")).await;
    let lines: Vec<&str> = ran.assert_code(2).stdout.lines().collect();
    assert_eq!(
        serde_json::from_str::<Value>(lines[0]).unwrap()["error"]["kind"],
        "usage"
    );
    assert_eq!(lines[1], r#"{"result":4.0}"#, "{ran:?}");
    let ran = run_with(&["call", url, "-"], Some("")).await;
    assert_eq!(ran.assert_code(0).stdout, "");
    let ran = run(&["call", url, "-", "1"]).await;
    ran.assert_code(2);
    assert_eq!(server.connections(), 3);
}

/// `listen --call`: the calls run after the first connection and again
/// after a reconnection (the server closed the first connection), each
/// printed as `{"call":..,"result":..}` or `{"call":..,"error":..}`; a
/// failing call does not stop listen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_call_runs_after_each_connection() {
    let server = Recorder::start(false).await;
    let mut listener = Listener::start(&[
        "--json",
        "listen",
        &server.url,
        "--call",
        "sum=1 2 3.5",
        "--call",
        "fail=boom",
        "--call",
        "whoami",
        "--header",
        "X-Tenant: acme",
    ])
    .await;
    let mut ids = Vec::new();
    for connection in 1..=2 {
        listener.connected().await;
        assert_eq!(listener.next().await, json!({"call": "sum", "result": 6.5}));
        assert_eq!(
            listener.next().await,
            json!({"call": "fail", "error": {"kind": "remote", "message": "Error: boom", "value": "Error: boom"}})
        );
        let whoami = listener.next().await;
        assert_eq!(whoami["call"], "whoami", "{whoami}");
        ids.push(whoami["result"].as_str().expect("an id").to_string());
        assert_eq!(server.connections(), connection);
        assert_eq!(server.last().tenant.as_deref(), Some("acme"), "the header again");
        if connection == 1 {
            server.kick_last();
            assert_eq!(listener.local("close").await["code"], 4000);
        }
    }
    assert_ne!(ids[0], ids[1], "a new connection");
    server.server.close(1001).await;
}

/// `listen --resume --call`: a resumed session runs the calls again (and
/// keeps its connection id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_call_runs_again_after_a_resume() {
    let server = Recorder::start(true).await;
    let proxy = Cutter::start(server.url.strip_prefix("ws://").unwrap()).await;
    let mut listener = Listener::start(&["--json", "listen", &proxy.url, "--resume", "--call", "whoami"]).await;
    listener.connected().await;
    let first = listener.next().await;
    assert_eq!(first["call"], "whoami", "{first}");
    proxy.cut();
    listener.local("close").await;
    loop {
        let line = listener.next().await;
        assert!(
            line.get("local").is_some(),
            "only status lines before the reconnection: {line}"
        );
        assert_ne!(line["resumed"], json!(false), "{line}");
        if line["local"] == "connect" {
            break;
        }
    }
    let again = listener.next().await;
    assert_eq!(again, first, "called again, on the resumed session");
}
