//! The test tiers of the workspace, with plain cargo:
//!
//! - `cargo xtask test`: what needs nothing but Rust: formatting, clippy and
//!   the API docs with warnings denied, then every test that needs no
//!   service (unit, doc, property, hostile-input tests, integration over
//!   loopback, the `echo_server` and `chat` processes included);
//! - `cargo xtask ci`: everything (the README's test command, `.ci/run`):
//!   installs what is missing (the Debian packages `redis-server` and
//!   `chromium`, the npm peers of tests/interop/), then the checks (which
//!   type-check the benchmarks too) and every test of the workspace.
//!
//! The tests that need a service are listed in [`NEEDS_SERVICE`] and
//! [`NEEDS_SERVICE_TESTS`]: `cargo xtask test` leaves them out and says so;
//! `cargo xtask ci` runs everything (`cargo test --workspace`), so nothing
//! is skipped there, and a missing service fails the test that needs it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Test targets (`--test NAME`) that need more than Rust, and what.
const NEEDS_SERVICE: &[(&str, &str)] = &[
    ("redis", "redis-server"),
    ("recovery_nodes", "redis-server"),
    ("cluster", "redis-server and redis-cli"),
    ("multinode", "redis-server, Node.js, the npm peers and ss (iproute2)"),
    ("interop", "Node.js and the npm peers"),
    ("interop_binary", "Node.js and the npm peers"),
    ("interop_protobuf", "Node.js and the npm peers"),
    ("http", "Node.js and the npm peers"),
    ("browser", "Chromium, Node.js and the npm peers"),
];

/// Tests inside otherwise Rust-only test targets that need more: (file,
/// test target, test names, what).
const NEEDS_SERVICE_TESTS: &[(&str, &str, &[&str], &str)] = &[
    (
        "wsm/tests/cli.rs",
        "cli",
        &["listen_resume_prints_each_event_once_moved_between_two_nodes_and_off_a_killed_one"],
        "redis-server",
    ),
    (
        "wsm/tests/cli.rs",
        "cli",
        &[
            "js_server_json",
            "js_server_msgpack",
            "js_server_cbor",
            "a_late_auth_reply_is_a_timeout",
        ],
        "Node.js and the npm peers (the JavaScript server)",
    ),
];

const USAGE: &str = "usage: cargo xtask test|ci
  test  formatting, clippy, docs, and the tests that need nothing but Rust
  ci    everything: installs redis-server, Chromium, iproute2 and the npm peers when
        missing, then the checks (benchmarks type-checked) and
        `cargo test --workspace`";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["test"] => fast(&root),
        ["ci"] => full(&root),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The root of the workspace (this crate is `xtask/` in it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is in the workspace")
        .to_path_buf()
}

/// `cargo xtask test`.
fn fast(root: &Path) -> Result<(), String> {
    checks(root)?;
    let targets = test_targets(root)?;
    for (name, _) in NEEDS_SERVICE {
        if !targets.iter().any(|t| t == name) {
            return Err(format!(
                "NEEDS_SERVICE names `{name}`, which is no test target of the workspace"
            ));
        }
    }
    // The examples the tests start (`echo_server`, `chat`) as plain
    // binaries in target/debug/examples/: `cargo test --examples` would
    // build them as test harnesses instead.
    run(cargo_args(root, &["build", "--workspace", "--examples"]))?;
    let mut test = cargo(root);
    test.args(["test", "--workspace", "--lib", "--bins"]);
    for target in &targets {
        if !NEEDS_SERVICE.iter().any(|(name, _)| name == target) {
            test.args(["--test", target]);
        }
    }
    test.args(["--", "--exact"]);
    for (file, _, tests, _) in NEEDS_SERVICE_TESTS {
        let source = std::fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
        for name in *tests {
            if !source.contains(&format!("fn {name}(")) {
                return Err(format!(
                    "NEEDS_SERVICE_TESTS names `{name}`, which {file} does not define"
                ));
            }
            test.args(["--skip", name]);
        }
    }
    run(test)?;
    run(cargo_args(root, &["test", "--workspace", "--doc"]))?;
    println!("\nxtask test: passed. Left for `cargo xtask ci`, which runs them:");
    for (name, needs) in NEEDS_SERVICE {
        println!("  --test {name}: needs {needs}");
    }
    for (_, target, tests, needs) in NEEDS_SERVICE_TESTS {
        println!("  --test {target}: {}: need {needs}", tests.join(", "));
    }
    Ok(())
}

/// `cargo xtask ci`.
fn full(root: &Path) -> Result<(), String> {
    let have_redis = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .is_ok_and(|o| o.status.success());
    let have_ss = Command::new("sh")
        .args(["-c", "command -v ss"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_redis || !have_ss || !Path::new("/usr/bin/chromium").exists() {
        run(command("apt-get", &["update", "-qq"]))?;
        run(command(
            "apt-get",
            &["install", "-y", "-qq", "redis-server", "chromium", "iproute2"],
        ))?;
    }
    let mut npm = command("npm", &["ci", "--prefix", "tests/interop", "--no-audit", "--no-fund"]);
    npm.current_dir(root);
    run(npm)?;
    // A fresh clone builds everything once: incremental compilation would
    // only add its bookkeeping.
    std::env::set_var("CARGO_INCREMENTAL", "0");
    checks(root)?;
    run(cargo_args(root, &["test", "--workspace"]))?;
    // The benchmarks are not built here: clippy (`--all-targets`, above)
    // has type-checked them, and an optimised build of the whole tree
    // would be a second build of everything. `cargo bench --bench X` builds
    // one.
    println!("\nxtask ci: passed.");
    Ok(())
}

/// Formatting, clippy and rustdoc, warnings denied.
fn checks(root: &Path) -> Result<(), String> {
    run(cargo_args(root, &["fmt", "--all", "--check"]))?;
    run(cargo_args(
        root,
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    ))?;
    let mut doc = cargo_args(root, &["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run(doc)
}

/// The names of the workspace's test targets (`cargo metadata`).
fn test_targets(root: &Path) -> Result<Vec<String>, String> {
    let output = cargo_args(root, &["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    // Each target is an object `{"kind":["test"],"crate_types":[..],"name":"auth",..}`.
    let mut names = Vec::new();
    for object in json.split(r#"{"kind":["test"]"#).skip(1) {
        let name = object
            .split_once(r#""name":""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.to_string())
            .ok_or("cargo metadata: a test target without a name")?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err("cargo metadata lists no test target".into());
    }
    Ok(names)
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

fn cargo_args(root: &Path, args: &[&str]) -> Command {
    let mut command = cargo(root);
    command.args(args);
    command
}

fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// Runs a command to its end, echoing it first; an error unless it exits 0.
fn run(mut command: Command) -> Result<(), String> {
    let shown = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\n$ {shown}");
    let started = std::time::Instant::now();
    let status = command.status().map_err(|e| format!("{shown}: {e}"))?;
    println!("({:.0?} for `{shown}`)", started.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown}: {status}"))
    }
}
