//! The real npm client `ws-messaging@2.0.0` in headless Chromium against
//! `echo_server --http` (ws-messaging at `/ws` of an axum server).
//!
//! This test serves the page tests/interop/browser/ and the client's
//! unmodified npm sources from a small axum server of its own on a loopback
//! port; tests/interop/browser.js opens the page in Debian's Chromium through
//! playwright-core, with the echo_server's `ws://127.0.0.1:PORT/ws` in the
//! query string (a cross-origin WebSocket), and reports the page's checks.
//!
//! `cargo test --test browser` (needs `npm ci --prefix tests/interop` and
//! `/usr/bin/chromium`: `apt-get install chromium`).

mod common;

use std::path::Path;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use common::peers::{echo_server_path, interop_dir, node_cases, spawn_listening, terminate};
use tokio::process::Command;

/// Debian's Chromium, the browser tests/interop/browser.js drives.
const CHROMIUM: &str = "/usr/bin/chromium";

/// What the page server serves: URL path, file under tests/interop/,
/// content type. Nothing else is served.
const FILES: &[(&str, &str, &str)] = &[
    ("/", "browser/index.html", "text/html; charset=utf-8"),
    ("/require.js", "browser/require.js", "text/javascript; charset=utf-8"),
    ("/checks.js", "browser/checks.js", "text/javascript; charset=utf-8"),
    (
        "/node_modules/eventemitter3/index.js",
        "node_modules/eventemitter3/index.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/node_modules/ws-messaging/src/Client.js",
        "node_modules/ws-messaging/src/Client.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/node_modules/ws-messaging/src/utils.js",
        "node_modules/ws-messaging/src/utils.js",
        "text/javascript; charset=utf-8",
    ),
];

/// Serves [`FILES`] from `dir` on a free loopback port until the test's
/// runtime ends; the page's URL, `http://127.0.0.1:PORT/`.
async fn serve_page(dir: &Path) -> String {
    let mut app = Router::new();
    for &(path, file, content_type) in FILES {
        let body = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("read tests/interop/{file}: {e}"));
        app = app.route(path, get(move || async move { ([(CONTENT_TYPE, content_type)], body) }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

#[tokio::test]
async fn javascript_client_in_chromium_against_echo_server_http() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Chromium with `apt-get install chromium` (`cargo xtask ci` does)"
    );
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/interop` (`cargo xtask ci` does)"
    );

    let mut server = Command::new(echo_server_path());
    server.args([
        "--port",
        "0",
        "--http",
        "--ping-interval-ms",
        "200",
        "--auth-timeout-ms",
        "300",
    ]);
    let (server, base) = spawn_listening(server).await;
    let page = serve_page(&dir).await;

    node_cases(&dir, &["browser.js", &page, &format!("{base}/ws")]).await;

    assert!(terminate(server).await.success());
}
