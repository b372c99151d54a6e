//! Rooms helpers shared by the rooms and Redis tests: clients that record
//! every `news(tag)` they get.

use tokio::sync::mpsc;
use ws_messaging::{Client, Server};
use ws_messaging_json::Json;

use super::{url, WAIT};

/// A connected client recording every `news(tag)` it gets, and its id.
pub(crate) struct Peer {
    pub(crate) client: Client<Json>,
    pub(crate) id: String,
    pub(crate) news: mpsc::UnboundedReceiver<String>,
}

pub(crate) async fn peer(server: &Server<Json>) -> Peer {
    let client = Client::<Json>::builder(url(server)).connect().await.unwrap();
    let (tx, news) = mpsc::unbounded_channel();
    client.on("news", move |(tag,): (String,)| {
        let _ = tx.send(tag);
    });
    let id: String = client.invoke("whoami", ()).await.unwrap();
    Peer { client, id, news }
}

/// The next item of `rx`, within the tests' bound.
pub(crate) async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

/// Every `news` each peer got before the marker `end`, which `from` sends
/// to everyone after the sends under test (a connection gets its frames in
/// order, and a node publishes in order).
pub(crate) async fn news_until_end(from: &Server<Json>, peers: &mut [Peer]) -> Vec<Vec<String>> {
    from.broadcast("news", ("end",)).unwrap();
    let mut all = Vec::new();
    for peer in peers {
        let mut got = Vec::new();
        loop {
            match recv(&mut peer.news).await {
                tag if tag == "end" => break,
                tag => got.push(tag),
            }
        }
        all.push(got);
    }
    all
}
