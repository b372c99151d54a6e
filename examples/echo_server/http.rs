//! `--http`: the conformance server inside an HTTP server (axum, through
//! the crate `ws-messaging-axum`): ws-messaging at `/ws`, `GET /health` →
//! 200 `ok`, on one port.
//!
//! `cargo run --example echo_server -- --port 0 --http`, then connect to
//! `ws://127.0.0.1:PORT/ws`.

use std::net::SocketAddr;

use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use ws_messaging::{Codec, Server};

/// Serves `server` at `/ws` of an HTTP server on `127.0.0.1:port`; prints
/// the ready line; on SIGINT/SIGTERM stops every ws-messaging connection
/// (closes with 1001, or drains with `--drain-ms`), then the HTTP server.
pub(crate) async fn serve<C: Codec>(server: Server<C>, settings: &crate::Settings) -> Result<(), String> {
    let port = settings.port;
    let drain = settings.drain;
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ws", ws_messaging_axum::route(server.clone()));
    #[cfg(feature = "metrics")]
    let app = match (settings.metrics, RECORDER.get()) {
        (true, Some(handle)) => app.route("/metrics", metrics_route(handle.clone())),
        _ => app,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Small frames go out at once, as on the server's own listener.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("listening on {addr}");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            ws_messaging_conformance::shutdown_signal().await;
            crate::stop(&server, drain).await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// The process's Prometheus recorder, with `--metrics`.
#[cfg(feature = "metrics")]
static RECORDER: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the Prometheus recorder, before the server is built: the
/// library takes its metric handles when connections and procedures are
/// created.
#[cfg(feature = "metrics")]
pub(crate) fn install_metrics() -> Result<(), String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("--metrics: {e}"))?;
    // Histograms are summarised on a schedule of the application's.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let _ = RECORDER.set(handle);
    Ok(())
}

/// `GET /metrics`: the recorder's text.
#[cfg(feature = "metrics")]
fn metrics_route(handle: metrics_exporter_prometheus::PrometheusHandle) -> axum::routing::MethodRouter {
    get(move || {
        let handle = handle.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
        }
    })
}
