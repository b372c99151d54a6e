//! A `redis-server` child process for the benchmarks that run nodes over
//! Redis (cluster, interest).

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `redis-server` child process on a loopback port (killed on drop).
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
}

impl Redis {
    /// Starts `redis-server` on a free port, without persistence, with
    /// `extra` arguments, and waits until it says it accepts connections.
    pub(crate) async fn start(extra: &[&str]) -> Result<Redis, String> {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "redis-server is not installed (or not on the PATH): apt-get install redis-server".to_string()
                }
                _ => format!("start redis-server: {e}"),
            })?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut said = Vec::new();
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
                if line.contains("Ready to accept connections") {
                    return Ok(());
                }
                said.push(line);
            }
            Err("it exited".to_string())
        })
        .await;
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "redis-server on port {port}: {e}; it said:\n{}",
                    said.join("\n")
                ))
            }
            Err(_) => return Err(format!("redis-server on port {port} was not ready within 10 s")),
        }
        // It logs little from now on; keep its pipe drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Redis { child, port })
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("redis-server exited: {status}")),
            Err(e) => Err(format!("wait for redis-server: {e}")),
        }
    }
}
