//! Rooms, presence and broadcast invokes on one server, over real sockets:
//! who a send reaches, that membership ends with the connection, that
//! broadcasts made from a listener keep their order, and that a broadcast
//! invoke always ends.
//!
//! `cargo test --test rooms`

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::rooms::*;
use common::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use ws_messaging::adapter::{Adapter, Target};
use ws_messaging::{AdapterError, Client, EncodedMessage, HandlerError, InvokeError, SendError, Server, ServerBuilder};
use ws_messaging_json::Json;

/// The test server: with `start`, the conformance contract's `join(room)`
/// / `leave(room)` procedures (through the connection's endpoint) and
/// `shout(...)` rebroadcast from the listener itself.
fn rooms_builder() -> ServerBuilder<Json> {
    Server::<Json>::builder().on_connection(|_, _: Value| async move { Ok(()) })
}

#[tokio::test]
async fn sends_reach_exactly_the_members_of_their_rooms() {
    let server = start(rooms_builder()).await;
    let mut peers = Vec::new();
    for _ in 0..4 {
        peers.push(peer(&server).await);
    }
    // a, b in red; b, c in blue; d in none. Joined through the endpoint
    // (a procedure) and through the server.
    assert!(peers[0].client.invoke::<_, bool>("join", ("red",)).await.unwrap());
    assert!(peers[1].client.invoke::<_, bool>("join", ("red",)).await.unwrap());
    assert!(server.join(&peers[1].id, "blue"));
    assert!(server.join(&peers[2].id, "blue"));
    assert!(!server.join("no-such-id", "blue"));

    assert_eq!(server.to("red").emit("news", ("red",)).unwrap(), 2);
    assert_eq!(server.to("red").to("blue").emit("news", ("red+blue",)).unwrap(), 3);
    assert_eq!(server.to("red").except("blue").emit("news", ("red-blue",)).unwrap(), 1);
    assert_eq!(server.except("red").emit("news", ("not red",)).unwrap(), 2);
    let d = peers[3].id.clone();
    assert_eq!(server.to_connection(d.as_str()).emit("news", ("d",)).unwrap(), 1);
    // An id and a room it is in: still once.
    let a = peers[0].id.clone();
    assert_eq!(
        server
            .to_connection(a.as_str())
            .to("red")
            .emit("news", ("a+red",))
            .unwrap(),
        2
    );
    assert_eq!(server.to("nobody").emit("news", ("none",)).unwrap(), 0);

    let got = news_until_end(&server, &mut peers).await;
    assert_eq!(got[0], ["red", "red+blue", "red-blue", "a+red"]);
    assert_eq!(got[1], ["red", "red+blue", "a+red"]);
    assert_eq!(got[2], ["red+blue", "not red"]);
    assert_eq!(got[3], ["not red", "d"]);

    let mut b_rooms = server.registry().rooms_of(&peers[1].id);
    b_rooms.sort();
    assert_eq!(b_rooms, ["blue", "red"]);
}

#[tokio::test]
async fn joining_twice_is_once_and_leaving_stops_delivery() {
    let server = start(rooms_builder()).await;
    let mut peers = vec![peer(&server).await, peer(&server).await];
    for _ in 0..2 {
        assert!(peers[0].client.invoke::<_, bool>("join", ("red",)).await.unwrap());
    }
    assert_eq!(server.to("red").emit("news", ("once",)).unwrap(), 1);
    // Leaving a room never joined is fine.
    assert!(peers[1].client.invoke::<_, bool>("leave", ("red",)).await.unwrap());
    assert!(peers[0].client.invoke::<_, bool>("leave", ("red",)).await.unwrap());
    assert_eq!(server.to("red").emit("news", ("after leave",)).unwrap(), 0);
    let got = news_until_end(&server, &mut peers).await;
    assert_eq!(got, [vec!["once".to_string()], vec![]]);
    assert!(server.registry().rooms().is_empty());
}

#[tokio::test]
async fn membership_ends_with_the_connection() {
    let (gone_tx, mut gone) = mpsc::unbounded_channel();
    let server = start(rooms_builder().on_disconnect(move |endpoint, _, _| {
        let gone_tx = gone_tx.clone();
        async move {
            // Out of the registry and its rooms before the hook runs.
            let _ = gone_tx.send(endpoint.id().unwrap().to_string());
        }
    }))
    .await;
    let a = peer(&server).await;
    let b = peer(&server).await;
    assert!(a.client.invoke::<_, bool>("join", ("red",)).await.unwrap());
    assert!(b.client.invoke::<_, bool>("join", ("red",)).await.unwrap());
    assert_eq!(server.to("red").count().await.unwrap(), 2);
    a.client.close(1000, "bye").await;
    assert_eq!(recv(&mut gone).await, a.id);
    assert_eq!(server.to("red").count().await.unwrap(), 1);
    assert_eq!(server.to("red").ids().await.unwrap(), std::slice::from_ref(&b.id));
    assert!(server.registry().rooms_of(&a.id).is_empty());
    assert!(!server.join(&a.id, "red"));
    b.client.close(1000, "bye").await;
    assert_eq!(recv(&mut gone).await, b.id);
    assert!(server.registry().rooms().is_empty());
    assert_eq!(server.count().await.unwrap(), 0);
}

#[tokio::test]
async fn presence_counts_authenticated_connections_by_room() {
    let server = start(rooms_builder()).await;
    let peers = [peer(&server).await, peer(&server).await, peer(&server).await];
    assert!(server.join(&peers[0].id, "red"));
    assert!(server.join(&peers[1].id, "red"));
    assert_eq!(server.count().await.unwrap(), 3);
    assert_eq!(server.to("red").count().await.unwrap(), 2);
    assert_eq!(server.except("red").count().await.unwrap(), 1);
    let mut ids = server.everyone().ids().await.unwrap();
    ids.sort();
    let mut expected: Vec<String> = peers.iter().map(|p| p.id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn broadcasts_from_a_listener_keep_their_order() {
    const SHOUTS: u64 = 2000;
    let server = start(rooms_builder()).await;
    let mut receivers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = Client::<Json>::builder(url(&server)).connect().await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        client.on("shouted", move |(n,): (u64,)| {
            let _ = tx.send(n);
        });
        receivers.push(rx);
        clients.push(client);
    }
    for n in 0..SHOUTS {
        clients[0].send("shout", (n,)).await.unwrap();
    }
    for rx in &mut receivers {
        for n in 0..SHOUTS {
            assert_eq!(recv(rx).await, n);
        }
    }
}

#[tokio::test]
async fn a_broadcast_invoke_gives_every_answer_with_its_connection() {
    let server = start(rooms_builder()).await;
    let ok = peer(&server).await;
    ok.client
        .register("vote", |(x,): (u32,)| async move { Ok(x + 1) })
        .unwrap();
    let refuses = peer(&server).await;
    refuses
        .client
        .register(
            "vote",
            |_: (u32,)| async move { Err::<u32, _>(HandlerError::new("no")) },
        )
        .unwrap();
    let silent = peer(&server).await;
    silent
        .client
        .register("vote", |_: (u32,)| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(0u32)
        })
        .unwrap();
    let outsider = peer(&server).await;
    outsider
        .client
        .register("vote", |_: (u32,)| async move { Ok(99u32) })
        .unwrap();
    for p in [&ok, &refuses, &silent] {
        assert!(server.join(&p.id, "voters"));
    }

    let acks = server
        .to("voters")
        .timeout(Duration::from_millis(300))
        .invoke::<_, u32>("vote", (41,))
        .unwrap();
    let answers = tokio::time::timeout(WAIT, acks.collect())
        .await
        .expect("every answer ends");
    assert_eq!(answers.len(), 3);
    for (connection, answer) in answers {
        if connection == ok.id {
            assert_eq!(answer, Ok(42));
        } else if connection == refuses.id {
            assert!(
                matches!(answer, Err(InvokeError::Remote(ref e)) if e == &json!("Error: no")),
                "{answer:?}"
            );
        } else if connection == silent.id {
            assert!(matches!(answer, Err(InvokeError::Timeout { .. })), "{answer:?}");
        } else {
            panic!("{connection} is not a voter");
        }
    }

    // A connection that closes before answering ends with a connection error.
    let acks = server
        .to_connection(silent.id.as_str())
        .invoke::<_, u32>("vote", (1,))
        .unwrap();
    silent.client.close(1000, "bye").await;
    let answers = tokio::time::timeout(WAIT, acks.collect()).await.expect("ends");
    assert!(
        matches!(answers.as_slice(), [(id, Err(InvokeError::Connection { .. }))] if *id == silent.id),
        "{answers:?}"
    );

    // No recipient: the stream ends at once.
    let none = server.to("nobody").invoke::<_, u32>("vote", (1,)).unwrap();
    assert!(tokio::time::timeout(WAIT, none.collect()).await.unwrap().is_empty());
}

#[tokio::test]
async fn disconnect_closes_the_members_of_a_room() {
    let server = start(rooms_builder()).await;
    let a = peer(&server).await;
    let b = peer(&server).await;
    let mut a_events = a.client.events();
    assert!(server.join(&a.id, "kicked"));
    assert_eq!(server.to("kicked").disconnect(4000, "bye").unwrap(), 1);
    let closed = wait_event(&mut a_events, |e| matches!(e, ws_messaging::LocalEvent::Close { .. })).await;
    assert!(
        matches!(&closed, ws_messaging::LocalEvent::Close { code: 4000, reason } if reason == "bye"),
        "{closed:?}"
    );
    assert!(b.client.invoke::<_, String>("whoami", ()).await.is_ok());
}

/// An adapter whose bus is down.
struct Down;

impl Adapter<Json> for Down {
    fn publish(&self, _: &Target, _: &EncodedMessage) -> Result<(), AdapterError> {
        Err(AdapterError::Unavailable("test bus down".into()))
    }
}

#[tokio::test]
async fn a_send_the_adapter_refuses_goes_nowhere() {
    let server = start(rooms_builder().adapter(Down)).await;
    let mut peers = [peer(&server).await];
    let refused = server.broadcast("news", ("lost",));
    assert!(
        matches!(refused, Err(SendError::Adapter(AdapterError::Unavailable(_)))),
        "{refused:?}"
    );
    // What stays on this node still goes.
    assert_eq!(server.local().emit("news", ("here",)).unwrap(), 1);
    assert_eq!(recv(&mut peers[0].news).await, "here");
}

#[tokio::test]
async fn a_room_named_like_a_connection_id_gets_none_of_its_private_sends() {
    let server = start(rooms_builder()).await;
    let mut peers = vec![peer(&server).await, peer(&server).await, peer(&server).await];
    let victim = peers[1].id.clone();
    // The attacker learns the victim's id and joins a room of that name,
    // through the usual procedure.
    assert!(peers[0]
        .client
        .invoke::<_, bool>("join", (victim.as_str(),))
        .await
        .unwrap());

    // A private send reaches the victim only.
    assert_eq!(server.send_to(&victim, "news", ("private",)).unwrap(), 1);
    assert_eq!(
        server
            .to_connection(victim.as_str())
            .emit("news", ("private 2",))
            .unwrap(),
        1
    );
    // The room of that name is only a room: its member, not the victim.
    assert_eq!(server.to(victim.as_str()).emit("news", ("room",)).unwrap(), 1);
    // Excluding by id still leaves the victim out (and the room's members
    // too: leaving out more is no leak).
    assert_eq!(server.except(victim.as_str()).emit("news", ("others",)).unwrap(), 1);
    // Presence by id counts the connection, not the room.
    assert_eq!(server.to_connection(victim.as_str()).count().await.unwrap(), 1);
    assert_eq!(
        server.to_connection(victim.as_str()).ids().await.unwrap(),
        std::slice::from_ref(&victim)
    );
    assert_eq!(server.to_connection("no-such-id").emit("news", ("nobody",)).unwrap(), 0);

    let got = news_until_end(&server, &mut peers).await;
    assert_eq!(got[0], ["room"]);
    assert_eq!(got[1], ["private", "private 2"]);
    assert_eq!(got[2], ["others"]);
}

#[tokio::test]
async fn dropping_the_acks_of_a_broadcast_invoke_forgets_it_on_every_silent_connection() {
    let server = server().await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(raw_authed(&server).await);
    }
    let acks = server
        .everyone()
        .timeout(Duration::from_secs(60))
        .invoke::<_, Value>("ask", ())
        .unwrap();
    let mut frame = Value::Null;
    for ws in &mut silent {
        let got = next_json(ws).await;
        assert_eq!((&got["name"], &got["args"]), (&json!("ask"), &json!([])), "{got}");
        frame = got;
    }
    let id = frame["id"].as_u64().expect("an invoke id");
    drop(acks);

    // The same invoke id again: a connection still holding the first
    // invoke's entry refuses it, so it reaches them all only once every
    // entry is gone (with the entries kept, never).
    let request = ws_messaging::adapter::AckRequest {
        frame: EncodedMessage::from_bytes::<Json>(frame.to_string().into()).unwrap(),
        id,
        timeout: Duration::from_secs(60),
    };
    let mut answers = tokio::time::timeout(WAIT, async {
        loop {
            let (tx, rx) = mpsc::unbounded_channel();
            if server.registry().invoke(&Target::all(), &request, tx) == silent.len() {
                return rx;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the dropped invoke's entries are forgotten");
    for ws in &mut silent {
        assert_eq!(next_json(ws).await, frame);
    }
    // And the new one is answered as usual.
    use futures_util::SinkExt;
    silent[0]
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"id": id, "result": 7}).to_string(),
        ))
        .await
        .unwrap();
    let ack = recv(&mut answers).await;
    assert_eq!(
        ack.outcome,
        ws_messaging::adapter::AckOutcome::Result(bytes::Bytes::from_static(b"7"))
    );
}

/// The sends of `a_send_hook_may_use_the_server_while_a_broadcast_is_delivered`.
async fn sends_with_a_hook_that_uses_the_server() {
    let cell: Arc<OnceLock<Server<Json>>> = Arc::default();
    let in_hook = cell.clone();
    let server = start(rooms_builder().configure(move |o| {
        o.send_hook = Some(Arc::new(move |_: &ws_messaging::Outgoing<'_>| {
            if let Some(server) = in_hook.get() {
                // Both take the registry's lock.
                let _ = server.connection_count();
                let _ = server.get("no-such-id");
            }
            Ok(())
        }));
    }))
    .await;
    let mut peers = vec![peer(&server).await, peer(&server).await];
    assert!(server.join(&peers[0].id, "red"));
    assert!(cell.set(server.clone()).is_ok(), "set once");
    let victim = peers[1].id.clone();
    assert_eq!(server.broadcast("news", ("all",)).unwrap(), 2);
    assert_eq!(server.to("red").emit("news", ("red",)).unwrap(), 1);
    assert_eq!(server.send_to(&victim, "news", ("one",)).unwrap(), 1);
    let got = news_until_end(&server, &mut peers).await;
    assert_eq!(got, [vec!["all", "red"], vec!["all", "one"]]);
}

#[test]
fn a_send_hook_may_use_the_server_while_a_broadcast_is_delivered() {
    // On a runtime and thread of their own: a deadlock fails the test
    // instead of hanging it.
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(sends_with_a_hook_that_uses_the_server());
        let _ = done_tx.send(());
    });
    done.recv_timeout(WAIT * 3)
        .expect("the sends end while the hook uses the server");
}
