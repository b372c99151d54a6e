//! A `redis-server` of its own for a test: a free loopback port, no
//! persistence, killed when dropped; SIGKILL and restart on the same port
//! for outage tests. Needs `redis-server` on the PATH (`apt-get install
//! redis-server`; the README's test command installs it).

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// How long a starting `redis-server` may take to answer `PING`.
const READY: Duration = Duration::from_secs(10);

/// A running `redis-server` on 127.0.0.1.
#[derive(Debug)]
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a `redis-server` on a free loopback port and waits until it
    /// answers `PING`.
    pub(crate) async fn start() -> Self {
        // The port is free when probed; another process may take it before
        // redis-server binds it, so a failed start tries another one.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = {
                let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
                probe.local_addr().unwrap().port()
            };
            let mut server = RedisServer { port, child: None };
            match server.spawn_ready().await {
                Ok(()) => return server,
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!("redis-server did not start: {failures:?}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILLs the server and waits for its exit.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL redis-server");
        }
    }

    /// Starts the server again on the same port (killing it first if it
    /// still runs) and waits until it answers `PING`. Its data is gone.
    pub(crate) async fn restart(&mut self) {
        self.kill().await;
        if let Err(e) = self.spawn_ready().await {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    async fn spawn_ready(&mut self) -> Result<(), String> {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--loglevel", "warning", "--protected-mode", "yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: `apt-get install redis-server` (the README's test command installs it)"
            ),
            Err(e) => panic!("start redis-server: {e}"),
        };
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("redis-server exited with {status}"));
            }
            if ping(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(format!("no answer to PING within {READY:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether `PING` on 127.0.0.1:`port` is answered with `+PONG` within 1 s.
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Some(true))
    )
}
