//! A TCP proxy on a loopback port that can cut every connection through
//! it at once (both sides see the TCP connection end): the drops the
//! recovery tests survive. Shared with `wsm/tests/cli.rs`.

/// The proxy, in front of one target address at a time.
pub(crate) struct Cutter {
    /// `ws://127.0.0.1:PORT` of the proxy.
    pub(crate) url: String,
    cuts: tokio::sync::watch::Sender<u64>,
    target: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Cutter {
    /// Starts a proxy to `target` (`127.0.0.1:PORT`).
    pub(crate) async fn start(target: impl ToString) -> Self {
        let target = std::sync::Arc::new(std::sync::Mutex::new(target.to_string()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (cuts, watch) = tokio::sync::watch::channel(0u64);
        let targets = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = watch.clone();
                cut.mark_unchanged();
                let target = targets.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Cutter { url, cuts, target }
    }

    /// New connections go to `target` from now on (those open stay).
    #[allow(dead_code)]
    pub(crate) fn point_to(&self, target: impl ToString) {
        *self.target.lock().unwrap() = target.to_string();
    }

    /// Cuts every connection through the proxy now.
    pub(crate) fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}
