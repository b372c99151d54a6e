//! The recovery extension across nodes on Redis (`docs/recovery.md`,
//! "Across nodes"), and where a resume must fail: `echo_server --recovery
//! --redis` processes behind a proxy that cuts and moves the client's
//! connection, a node SIGKILLed, a Redis restarted. Needs `redis-server`.

mod common;

use std::time::Duration;

use common::cutter::Cutter;
use common::peers::{echo_server_path, spawn_listening};
use common::redis::RedisServer;
use common::*;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use ws_messaging::{Client, LocalEvent, SessionStatus};
use ws_messaging_json::Json;

/// One test at a time: each runs several processes on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `echo_server --recovery --redis URL`: the child and its address.
async fn node(redis: &RedisServer) -> (Child, String) {
    let mut command = Command::new(echo_server_path());
    command.args(["--port", "0", "--recovery", "--redis", &redis.url()]);
    let (child, url) = spawn_listening(command).await;
    let addr = url.strip_prefix("ws://").unwrap().to_string();
    (child, addr)
}

/// A member through `proxy`, in `lobby`, whose `room` numbers arrive on
/// the receiver.
async fn member(proxy: &Cutter) -> (Client<Json>, mpsc::UnboundedReceiver<u64>) {
    let member = Client::<Json>::builder(&proxy.url)
        .recovery(true)
        .auth(&json!({ "token": "secret" }))
        .retry(fast_retry())
        .build()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    member.on("room", move |(_, n): (String, u64)| {
        let _ = tx.send(n);
    });
    tokio::time::timeout(WAIT, member.connect()).await.unwrap().unwrap();
    assert_eq!(member.session_status(), Some(SessionStatus::New));
    assert!(member.invoke::<_, bool>("join", ("lobby",)).await.unwrap());
    (member, rx)
}

/// A plain client straight to the node at `addr`.
async fn plain(addr: &str) -> Client<Json> {
    Client::<Json>::builder(format!("ws://{addr}"))
        .auth(&json!({ "token": "secret" }))
        .connect()
        .await
        .unwrap()
}

async fn next_number(rx: &mut mpsc::UnboundedReceiver<u64>, after: Option<u64>) -> u64 {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("stuck after {after:?}"))
        .unwrap()
}

#[tokio::test]
async fn a_member_moved_between_two_nodes_and_off_a_killed_one_gets_every_room_event_once_in_order() {
    const EVENTS: u64 = 400;
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    let (mut a, a_addr) = node(&redis).await;
    let (_b, b_addr) = node(&redis).await;
    let proxy = Cutter::start(&a_addr).await;
    let (member, mut rx) = member(&proxy).await;
    // The sender is on the other node, and speaks the plain protocol.
    let sender = plain(&b_addr).await;
    let sending = tokio::spawn(async move {
        for n in 1..=EVENTS {
            sender.send("to-room", ("lobby", n)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sender
    });
    let mut got = Vec::new();
    let mut on_a = true;
    let mut killed = false;
    while got.len() < EVENTS as usize {
        got.push(next_number(&mut rx, got.last().copied()).await);
        if got.len() % 50 == 0 && got.len() < EVENTS as usize {
            if got.len() == 200 {
                // The member's node dies; it resumes on the other one.
                proxy.point_to(&b_addr);
                a.kill().await.unwrap();
                killed = true;
                on_a = false;
            } else if !killed {
                on_a = !on_a;
                proxy.point_to(if on_a { &a_addr } else { &b_addr });
                proxy.cut();
            } else {
                proxy.cut();
            }
        }
    }
    let _sender = sending.await.unwrap();
    assert_eq!(got, (1..=EVENTS).collect::<Vec<_>>(), "every event once, in order");
    assert_eq!(member.session_status(), Some(SessionStatus::Recovered));
    // Nothing more arrives (no event twice, late).
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err());
}

#[tokio::test]
async fn a_members_own_sends_reach_the_room_once_in_order_while_it_moves_between_nodes() {
    const SENDS: u64 = 300;
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    let (_a, a_addr) = node(&redis).await;
    let (_b, b_addr) = node(&redis).await;
    let proxy = Cutter::start(&a_addr).await;
    let (mover, _) = member(&proxy).await;
    // A plain member of the room on the other node counts what arrives.
    let watcher = plain(&b_addr).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    watcher.on("room", move |(_, n): (String, u64)| {
        let _ = tx.send(n);
    });
    assert!(watcher.invoke::<_, bool>("join", ("lobby",)).await.unwrap());
    let sending = tokio::spawn(async move {
        for n in 1..=SENDS {
            // Sent while connected or not: kept until the server has it.
            mover.send("to-room", ("lobby", n)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        mover
    });
    let mut got = Vec::new();
    let mut on_a = true;
    while got.len() < SENDS as usize {
        got.push(next_number(&mut rx, got.last().copied()).await);
        if got.len() % 40 == 0 {
            on_a = !on_a;
            proxy.point_to(if on_a { &a_addr } else { &b_addr });
            proxy.cut();
        }
    }
    let mover = sending.await.unwrap();
    assert_eq!(got, (1..=SENDS).collect::<Vec<_>>(), "every send once, in order");
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err());
    assert_eq!(mover.session_status(), Some(SessionStatus::Recovered));
}

#[tokio::test]
async fn a_redis_that_lost_its_data_gives_a_failed_recovery_not_a_gap() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisServer::start().await;
    let (_a, a_addr) = node(&redis).await;
    let proxy = Cutter::start(&a_addr).await;
    let (member, _rx) = member(&proxy).await;
    let mut events = member.events();
    redis.restart().await;
    proxy.cut();
    // The next connection says the session is not recovered, and why.
    let status = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(LocalEvent::Connect(_)) = events.recv().await {
                let status = member.session_status();
                if status != Some(SessionStatus::Recovered) {
                    return status;
                }
                // Resumed before the node noticed Redis was gone: cut again.
                proxy.cut();
            }
        }
    })
    .await
    .expect("a connection after the restart");
    assert!(matches!(status, Some(SessionStatus::Failed(_))), "{status:?}");
}

#[tokio::test]
async fn invokes_through_moves_between_two_nodes_run_once_and_are_all_answered() {
    const INVOKES: u64 = 200;
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start().await;
    let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut servers = Vec::new();
    for _ in 0..2 {
        let adapter = ws_messaging_redis::RedisAdapter::<Json>::connect(&redis.url())
            .await
            .unwrap();
        let server = start(
            ws_messaging::Server::<Json>::builder()
                .adapter(adapter)
                .recovery(ws_messaging::RecoveryConfig::default()),
        )
        .await;
        server
            .register("once", {
                let ran = ran.clone();
                move |(n,): (u64,)| {
                    ran.lock().unwrap().push(n);
                    async move {
                        // Some are still running when their connection moves.
                        tokio::time::sleep(Duration::from_millis(n % 5)).await;
                        Ok(n * 10)
                    }
                }
            })
            .unwrap();
        servers.push(server);
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.local_addr().unwrap().to_string()).collect();
    let proxy = std::sync::Arc::new(Cutter::start(&addrs[0]).await);
    let client = Client::<Json>::builder(&proxy.url)
        .recovery(true)
        .auth(&json!({ "token": "secret" }))
        .retry(fast_retry())
        .connect()
        .await
        .unwrap();
    let mut workers = Vec::new();
    for worker in 0..4u64 {
        let client = client.clone();
        let proxy = proxy.clone();
        let addrs = addrs.clone();
        workers.push(tokio::spawn(async move {
            for n in (worker..INVOKES).step_by(4) {
                let answer: u64 = client.invoke("once", (n,)).await.unwrap_or_else(|e| panic!("{n}: {e}"));
                assert_eq!(answer, n * 10);
                if worker == 0 && n % 40 == 0 {
                    proxy.point_to(&addrs[(n / 40) as usize % 2]);
                    proxy.cut();
                }
            }
        }));
    }
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .expect("the invokes end")
            .unwrap();
    }
    let mut ran = ran.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, (0..INVOKES).collect::<Vec<_>>(), "each invoke ran once");
    assert_eq!(client.session_status(), Some(SessionStatus::Recovered));
}
