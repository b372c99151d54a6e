//! Events, listeners, broadcast and per-connection data (docs/protocol.md,
//! Dispatch and Server side).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use ws_messaging::{Client, Endpoint, HandlerError, LocalEvent, SendError, Server};
use ws_messaging_json::Json;

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

/// A server handing each connected endpoint to the test.
async fn handing_server() -> (Server<Json>, mpsc::UnboundedReceiver<Endpoint<Json>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = start(Server::<Json>::builder().on_connection(move |endpoint, _: Value| {
        let tx = tx.clone();
        async move {
            tx.send(endpoint).unwrap();
            Ok(())
        }
    }))
    .await;
    (server, rx)
}

#[tokio::test]
async fn events_flow_both_ways_to_every_listener() {
    let (server, mut endpoints) = handing_server().await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let endpoint = recv(&mut endpoints).await;

    // Client → server, two listeners with their own types.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    endpoint.on("note", move |(text, n): (String, u32)| {
        tx.send(format!("typed {text} {n}")).unwrap();
    });
    endpoint.on("note", move |all: Vec<Value>| {
        tx2.send(format!("all {}", all.len())).unwrap();
    });
    client.send("note", ("hi", 3)).await.unwrap();
    assert_eq!(recv(&mut rx).await, "typed hi 3");
    assert_eq!(recv(&mut rx).await, "all 2");

    // Server → client.
    let (tx, mut rx) = mpsc::unbounded_channel();
    client.on("news", move |(v,): (Value,)| tx.send(v).unwrap());
    endpoint.send("news", (json!({"k": [1, 2]}),)).await.unwrap();
    assert_eq!(recv(&mut rx).await, json!({"k": [1, 2]}));

    // A conformance round trip: say → said.
    let (tx, mut rx) = mpsc::unbounded_channel();
    client.on("said", move |args: Vec<Value>| tx.send(args).unwrap());
    client.send("say", (1, "two", Value::Null)).await.unwrap();
    assert_eq!(recv(&mut rx).await, vec![json!(1), json!("two"), Value::Null]);
}

#[tokio::test]
async fn once_and_off() {
    let (server, mut endpoints) = handing_server().await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let endpoint = recv(&mut endpoints).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
    endpoint.once("e", move |(n,): (u32,)| a.lock().unwrap().push(format!("once {n}")));
    let id = endpoint.on("e", move |(n,): (u32,)| b.lock().unwrap().push(format!("on {n}")));
    let (done, mut synced) = mpsc::unbounded_channel();
    endpoint.on("sync", move |(n,): (u32,)| done.send(n).unwrap());
    client.send("e", (1,)).await.unwrap();
    client.send("e", (2,)).await.unwrap();
    client.send("sync", (1,)).await.unwrap();
    recv(&mut synced).await;
    assert!(endpoint.off("e", id));
    assert!(!endpoint.off("e", id));
    endpoint.on("e", move |(n,): (u32,)| c.lock().unwrap().push(format!("later {n}")));
    client.send("e", (3,)).await.unwrap();
    client.send("sync", (2,)).await.unwrap();
    recv(&mut synced).await;
    assert_eq!(*seen.lock().unwrap(), vec!["once 1", "on 1", "on 2", "later 3"]);
}

#[tokio::test]
async fn undecodable_event_arguments_are_reported_locally() {
    let (server, mut endpoints) = handing_server().await;
    let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
    let endpoint = recv(&mut endpoints).await;
    let mut events = endpoint.events();
    endpoint.on("n", |(_n,): (u32,)| {});
    client.send("n", ("not a number",)).await.unwrap();
    let LocalEvent::Error(text) = wait_event(&mut events, |e| matches!(e, LocalEvent::Error(_))).await else {
        unreachable!()
    };
    assert!(text.contains("listener of `n`"), "{text}");
}

#[tokio::test]
async fn blacklisted_events_are_dropped() {
    let (server, mut endpoints) = handing_server().await;
    let mut ws = raw_connect(&url(&server)).await;
    ws.send(Message::text("{}")).await.unwrap();
    next_json(&mut ws).await;
    let endpoint = recv(&mut endpoints).await;
    let fired = Arc::new(Mutex::new(Vec::new()));
    for name in ["close", "open", "error", "pong", "retry", "connect"] {
        let fired = fired.clone();
        endpoint.on(name, move |_: ws_messaging::RawArgs| fired.lock().unwrap().push(name));
    }
    let (done, mut synced) = mpsc::unbounded_channel();
    endpoint.on("sync", move |()| done.send(()).unwrap());
    for name in ["close", "open", "error", "pong", "retry", "connect"] {
        ws.send(Message::text(format!(r#"{{"name":"{name}","args":[]}}"#)))
            .await
            .unwrap();
    }
    ws.send(Message::text(r#"{"name":"sync","args":[]}"#)).await.unwrap();
    recv(&mut synced).await;
    assert!(fired.lock().unwrap().is_empty(), "{:?}", fired.lock().unwrap());
    assert!(endpoint.is_connected());
    // Reserved names cannot be sent either.
    assert_eq!(
        endpoint.send("close", ()).await,
        Err(SendError::ReservedName("close".into()))
    );
}

#[tokio::test]
async fn broadcast_reaches_every_client_encoded_once() {
    let (server, _endpoints) = handing_server().await;
    let mut receivers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        client.on("shouted", move |args: Vec<Value>| tx.send(args).unwrap());
        receivers.push(rx);
        clients.push(client);
    }
    assert_eq!(server.broadcast("shouted", ("hi", 1)).unwrap(), 3);
    for rx in &mut receivers {
        assert_eq!(recv(rx).await, vec![json!("hi"), json!(1)]);
    }
    // EncodedMessage::encode / send_encoded: the same bytes to each peer.
    let message = ws_messaging::EncodedMessage::encode(server.codec(), "shouted", ("again",)).unwrap();
    assert_eq!(message.as_bytes(), br#"{"name":"shouted","args":["again"]}"#);
    for endpoint in server.connections() {
        endpoint.send_encoded(&message).await.unwrap();
    }
    for rx in &mut receivers {
        assert_eq!(recv(rx).await, vec![json!("again")]);
    }
}

#[tokio::test]
async fn per_connection_data() {
    #[derive(Clone, Debug, PartialEq)]
    struct User(String);
    let server = start(
        Server::<Json>::builder().on_connection(|endpoint, auth: Value| async move {
            endpoint.set_data(User(auth["name"].as_str().unwrap_or("?").to_string()));
            let me = endpoint.downgrade();
            endpoint.register("me", move |()| {
                let user = me.upgrade().and_then(|e| e.data::<User>());
                async move { Ok(user.map(|u| u.0)) }
            })?;
            Ok(())
        }),
    )
    .await;
    let client = Client::<Json>::builder(url(&server))
        .auth(&json!({"name": "bob"}))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.invoke::<_, String>("me", ()).await.unwrap(), "bob");
    let endpoint = &server.connections()[0];
    assert_eq!(endpoint.data::<User>(), Some(User("bob".into())));
    assert_eq!(endpoint.take_data::<User>(), Some(User("bob".into())));
    assert_eq!(endpoint.data::<User>(), None);
}

#[tokio::test]
async fn send_hook_sees_and_may_refuse_outgoing_frames() {
    let (server, _endpoints) = handing_server().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = Client::<Json>::builder(url(&server))
        .configure(move |o| {
            o.send_hook = Some(Arc::new(move |out: &ws_messaging::Outgoing<'_>| {
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(out.frame).into_owned());
                match out.kind {
                    ws_messaging::OutgoingKind::Message { name: "forbidden", .. } => {
                        Err(HandlerError::new("not allowed"))
                    }
                    _ => Ok(()),
                }
            }));
        })
        .connect()
        .await
        .unwrap();
    assert_eq!(
        client.send("forbidden", ()).await,
        Err(SendError::Refused(HandlerError::new("not allowed")))
    );
    client.send("fine", ()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], "{}"); // the auth frame
    assert!(seen.contains(&r#"{"name":"fine","args":[]}"#.to_string()));
}

#[tokio::test]
async fn broadcasts_and_sends_to_one_go_through_the_adapter() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use ws_messaging::adapter::{Adapter, Target};
    use ws_messaging::{AdapterError, EncodedMessage};

    /// Records what would go to other nodes.
    #[derive(Clone, Default)]
    struct Recording(Arc<(AtomicUsize, Mutex<Vec<Target>>)>);

    impl Adapter<Json> for Recording {
        fn publish(&self, target: &Target, _: &EncodedMessage) -> Result<(), AdapterError> {
            self.0 .0.fetch_add(1, Ordering::SeqCst);
            self.0 .1.lock().unwrap().push(target.clone());
            Ok(())
        }
    }

    let recording = Recording::default();
    let server = start(
        Server::<Json>::builder()
            .adapter(recording.clone())
            .on_connection(|_, _: Value| async move { Ok(()) }),
    )
    .await;
    let (a, b) = (
        Client::<Json>::builder(url(&server)).connect().await.unwrap(),
        Client::<Json>::builder(url(&server)).connect().await.unwrap(),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (who, client) in [("a", &a), ("b", &b)] {
        let tx = tx.clone();
        client.on("news", move |(text,): (String,)| tx.send((who, text)).unwrap());
    }
    assert_eq!(server.broadcast("news", ("all",)).unwrap(), 2);
    let mut got = vec![recv(&mut rx).await, recv(&mut rx).await];
    got.sort();
    assert_eq!(got, vec![("a", "all".to_string()), ("b", "all".to_string())]);

    let b_id: String = b.invoke("whoami", ()).await.unwrap();
    assert_eq!(server.send_to(&b_id, "news", ("just b",)).unwrap(), 1);
    assert_eq!(recv(&mut rx).await, ("b", "just b".to_string()));
    assert_eq!(server.send_to("no-such-id", "news", ("x",)).unwrap(), 0);
    // This node only: the adapter is not asked.
    assert_eq!(server.local().emit("news", ("here",)).unwrap(), 2);
    assert_eq!(server.registry().len(), 2);
    assert_eq!(recording.0 .0.load(Ordering::SeqCst), 3);
    assert_eq!(
        *recording.0 .1.lock().unwrap(),
        vec![
            Target::all(),
            Target::connection(b_id.as_str()),
            Target::connection("no-such-id")
        ]
    );
}
