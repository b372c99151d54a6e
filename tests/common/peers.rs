//! Processes the interop tests run: the npm peers of tests/interop/ and the
//! `echo_server` example.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::WAIT;

/// tests/interop/, with its npm packages installed.
pub(crate) fn interop_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/ws-messaging").is_dir(),
        "the npm peers are not installed: run `npm ci --prefix tests/interop` (`cargo xtask ci` does)"
    );
    dir
}

/// The `echo_server` example built beside this test binary.
pub(crate) fn echo_server_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("echo_server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it (cargo build --example echo_server)",
        path.display()
    );
    path
}

/// Starts a peer process and waits for its `listening on HOST:PORT` line;
/// returns the process and the `ws://` URL.
pub(crate) async fn spawn_listening(mut command: Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the peer");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the peer printed its address in time")
        .unwrap()
        .expect("a line on stdout");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    (child, format!("ws://{addr}"))
}

/// Sends SIGTERM and waits for the exit.
pub(crate) async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap()
}

/// Runs `node ARGS` in `dir` to its end; asserts it printed
/// `N passed, 0 failed` and exited 0.
pub(crate) async fn node_cases(dir: &Path, args: &[&str]) {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("node").current_dir(dir).args(args).output(),
    )
    .await
    .expect("the JavaScript test finished in time")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "JavaScript cases failed ({args:?}):\n{stdout}");
    assert!(stdout.lines().any(|l| l.ends_with(" passed, 0 failed")), "{stdout}");
}
