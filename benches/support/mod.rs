//! Shared by the benchmarks: the payload shapes, a ws-messaging echo server,
//! the raw tokio-tungstenite echo baseline, and the measured loops.
#![allow(dead_code, clippy::approx_constant)] // the small object has score 3.14

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use ws_messaging::{Client, Codec, ServerBuilder};

pub(crate) mod redis;
pub(crate) mod remote;

/// The small object: about 100 bytes as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Small {
    pub id: u32,
    pub name: String,
    pub tags: Vec<String>,
    pub score: f64,
    pub active: bool,
}

pub(crate) fn small() -> Small {
    Small {
        id: 123,
        name: "alice".into(),
        tags: vec!["a".into(), "b".into(), "c".into()],
        score: 3.14,
        active: true,
    }
}

/// A 4 KiB string.
pub(crate) fn text_4k() -> String {
    "lorem ipsum dolor sit amet ".chars().cycle().take(4096).collect()
}

/// A 64 KiB binary blob (bytes on the wire where the format has them; an
/// array of numbers in JSON).
pub(crate) fn blob_64k() -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(
        (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// 1,000 small records.
pub(crate) fn records_1k() -> Vec<Small> {
    (0..1000).map(|i| Small { id: i, ..small() }).collect()
}

/// The shapes as protobuf messages, for the protobuf codec (its arguments
/// and results are the user's prost messages).
pub(crate) mod pb {
    use ws_messaging_protobuf::Proto;

    /// [`super::Small`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Small {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, repeated, tag = "3")]
        pub tags: Vec<String>,
        #[prost(double, tag = "4")]
        pub score: f64,
        #[prost(bool, tag = "5")]
        pub active: bool,
    }

    /// A text payload.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Text {
        #[prost(string, tag = "1")]
        pub text: String,
    }

    /// A binary payload.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Blob {
        #[prost(bytes = "vec", tag = "1")]
        pub data: Vec<u8>,
    }

    /// Many records.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Records {
        #[prost(message, repeated, tag = "1")]
        pub records: Vec<Small>,
    }

    fn convert(s: super::Small) -> Small {
        Small {
            id: s.id,
            name: s.name,
            tags: s.tags,
            score: s.score,
            active: s.active,
        }
    }

    pub(crate) fn small() -> Proto<Small> {
        Proto(convert(super::small()))
    }

    pub(crate) fn text_4k() -> Proto<Text> {
        Proto(Text { text: super::text_4k() })
    }

    pub(crate) fn blob_64k() -> Proto<Blob> {
        Proto(Blob {
            data: super::blob_64k().into_vec(),
        })
    }

    pub(crate) fn records_1k() -> Proto<Records> {
        Proto(Records {
            records: super::records_1k().into_iter().map(convert).collect(),
        })
    }
}

/// A ws-messaging server on a loopback port whose `echo` procedure returns
/// its argument (decoded into `P` and encoded again) and whose `ev` event
/// counts into `events`.
pub(crate) async fn echo_server<C, P>(codec: C, events: Arc<Counter>) -> ws_messaging::Server<C>
where
    C: Codec,
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    ServerBuilder::new(codec)
        .on_connection(move |endpoint, _: ()| {
            let events = events.clone();
            async move {
                endpoint.register("echo", |(p,): (P,)| async move { Ok(p) })?;
                endpoint.on("ev", move |(_p,): (P,)| events.add());
                Ok(())
            }
        })
        .bind("127.0.0.1:0")
        .await
        .expect("bind")
}

pub(crate) async fn client<C: Codec>(codec: C, server: &ws_messaging::Server<C>) -> Client<C> {
    ws_messaging::ClientBuilder::new(format!("ws://{}", server.local_addr().unwrap()), codec)
        .auth(&())
        .connect()
        .await
        .expect("connect")
}

/// Counts events and wakes a waiter at a target.
#[derive(Default)]
pub(crate) struct Counter {
    count: AtomicU64,
    reached: Notify,
    target: AtomicU64,
}

impl Counter {
    pub(crate) fn add(&self) {
        let n = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// Waits until `n` more have been counted.
    pub(crate) async fn wait_for(&self, n: u64, start: impl std::future::Future<Output = ()>) {
        let target = self.count.load(Ordering::Acquire) + n;
        self.target.store(target, Ordering::Release);
        let reached = self.reached.notified();
        tokio::pin!(reached);
        reached.as_mut().enable();
        start.await;
        if self.count.load(Ordering::Acquire) < target {
            reached.await;
        }
    }
}

/// `n` invokes of `echo`, one at a time.
pub(crate) async fn invoke_serial<C: Codec, P>(client: &Client<C>, payload: &P, n: u64) -> Duration
where
    P: Serialize + DeserializeOwned + Send + Sync,
{
    let start = Instant::now();
    for _ in 0..n {
        let _: P = client.invoke("echo", (payload,)).await.expect("echo");
    }
    start.elapsed()
}

/// `n` invokes of `echo` with `window` in flight on one connection.
pub(crate) async fn invoke_pipelined<C: Codec, P>(
    client: &Client<C>,
    payload: &Arc<P>,
    n: u64,
    window: usize,
) -> Duration
where
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let start = Instant::now();
    let per_task = n / window as u64;
    let tasks: Vec<_> = (0..window)
        .map(|_| {
            let client = client.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let _: P = client.invoke("echo", (&*payload,)).await.expect("echo");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

/// `n` fire-and-forget events, timed until the server has received them all.
pub(crate) async fn events<C: Codec, P>(client: &Client<C>, counter: &Counter, payload: &P, n: u64) -> Duration
where
    P: Serialize + Send + Sync,
{
    let start = Instant::now();
    counter
        .wait_for(n, async {
            for _ in 0..n {
                client.send("ev", (payload,)).await.expect("send");
            }
        })
        .await;
    start.elapsed()
}

/// The transport floor: a raw tokio-tungstenite peer with no RPC layer.
/// In echo mode the server sends every data frame back; in sink mode it
/// only counts them (the fire-and-forget baseline).
pub(crate) struct RawPeer {
    tx: futures_util::stream::SplitSink<WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>, Message>,
    rx: futures_util::stream::SplitStream<WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>>,
    received: Arc<Counter>,
}

/// Sends every data frame back as it is, batching what is already read into
/// one flush (as the ws-messaging writer does).
pub(crate) async fn echo_frames(ws: WebSocketStream<TcpStream>) {
    let (mut tx, mut rx) = ws.split();
    while let Some(Ok(message)) = rx.next().await {
        if !(message.is_text() || message.is_binary()) {
            continue;
        }
        if tx.feed(message).await.is_err() {
            return;
        }
        while let Some(Some(Ok(more))) = rx.next().now_or_never() {
            if (more.is_text() || more.is_binary()) && tx.feed(more).await.is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
}

impl RawPeer {
    /// Starts a raw server (echo or sink) and connects to it.
    pub(crate) async fn start(echo: bool) -> RawPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Counter::default());
        let counter = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                    if echo {
                        return echo_frames(ws).await;
                    }
                    let (_, mut rx) = ws.split();
                    while let Some(Ok(message)) = rx.next().await {
                        if message.is_text() || message.is_binary() {
                            counter.add();
                        }
                    }
                });
            }
        });
        let (ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), None, true)
            .await
            .unwrap();
        let (tx, rx) = ws.split();
        RawPeer { tx, rx, received }
    }

    /// `n` echoes of `frame`, one at a time.
    pub(crate) async fn serial(&mut self, frame: &Message, n: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            self.tx.send(frame.clone()).await.unwrap();
            self.rx.next().await.unwrap().unwrap();
        }
        start.elapsed()
    }

    /// `n` echoes of `frame` with `window` in flight.
    pub(crate) async fn pipelined(&mut self, frame: &Message, n: u64, window: usize) -> Duration {
        let start = Instant::now();
        let permits = Arc::new(Semaphore::new(window));
        let reader = {
            let permits = permits.clone();
            let rx = &mut self.rx;
            async move {
                for _ in 0..n {
                    rx.next().await.unwrap().unwrap();
                    permits.add_permits(1);
                }
            }
        };
        let writer = {
            let tx = &mut self.tx;
            async move {
                for _ in 0..n {
                    permits.acquire().await.unwrap().forget();
                    tx.feed(frame.clone()).await.unwrap();
                    if permits.available_permits() == 0 {
                        tx.flush().await.unwrap();
                    }
                }
                tx.flush().await.unwrap();
            }
        };
        tokio::join!(reader, writer);
        start.elapsed()
    }

    /// `n` fire-and-forget frames, timed until the server has them all.
    pub(crate) async fn events(&mut self, frame: &Message, n: u64) -> Duration {
        let start = Instant::now();
        let received = self.received.clone();
        let tx = &mut self.tx;
        received
            .wait_for(n, async move {
                for _ in 0..n {
                    tx.feed(frame.clone()).await.unwrap();
                }
                tx.flush().await.unwrap();
            })
            .await;
        start.elapsed()
    }
}

/// The frame of an invoke of `echo` with `payload` in codec `C`: what the
/// raw baseline moves, so both sides move the same bytes.
pub(crate) fn call_frame<C: Codec, P: Serialize>(codec: &C, payload: &P) -> Message {
    let mut out = Vec::new();
    codec.encode_message("echo", &(payload,), Some(1), &mut out).unwrap();
    match C::FRAME_KIND {
        ws_messaging::FrameKind::Text => Message::text(String::from_utf8(out).unwrap()),
        ws_messaging::FrameKind::Binary => Message::binary(out),
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
