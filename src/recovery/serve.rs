//! The server's half of the recovery extension (`docs/recovery.md`,
//! "Handshake"): reading `wsm.resume`, deciding the session, queueing
//! `wsm.session`, `connect` and the replay before the connection is
//! connected, and keeping the session when the connection ends.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::Registry;
use crate::codec::Codec;
use crate::connection::Link;
use crate::envelope::{validate, Frame};
use crate::{CloseCode, EncodedMessage, Endpoint};

use super::position::Position;
use super::record::{session_key, Record};
use super::session::{Session, SessionLimits, Sessions};
use super::store::RecoveryStore;
use super::{Failure, Membership, RecoveryConfig, AT, RESUME, SESSION};

/// The most ids a `wsm.resume` may list as pending.
const MAX_PENDING: usize = 65_536;

/// A server's sessions and settings, with recovery on.
#[derive(Debug)]
pub(crate) struct ServerRecovery {
    config: RecoveryConfig,
    sessions: Mutex<Sessions>,
    /// The store shared with the other nodes, when the adapter has one.
    store: OnceLock<Arc<dyn RecoveryStore>>,
}

impl std::fmt::Debug for dyn RecoveryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryStore").field("node", &self.node()).finish()
    }
}

/// What a client asks for in `wsm.resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) token: String,
    pub(crate) positions: Vec<Position>,
    pub(crate) pending: Vec<u64>,
}

/// Reads a client's `wsm.resume` frame: `None` for a new session. An
/// error says what is wrong with it (the connection is then refused).
pub(crate) fn parse_resume<C: Codec>(codec: &C, data: &Bytes) -> Result<Option<Resume>, String> {
    let raw = codec.decode_envelope(data).map_err(|e| e.to_string())?;
    let frame = validate(raw, true).map_err(|e| e.to_string())?;
    let Frame::Message { name, args, id: None } = frame else {
        return Err(format!("the second frame is not the event {RESUME}"));
    };
    if name.as_str() != RESUME {
        return Err(format!("the second frame is not the event {RESUME}"));
    }
    let texts = args
        .iter()
        .map(|arg| codec.decode_value::<String>(arg))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{RESUME}: {e}"))?;
    match texts.as_slice() {
        [] => Ok(None),
        [token, positions, pending] => {
            let positions = Position::parse_list(positions).map_err(|e| format!("{RESUME}: {e}"))?;
            let pending = if pending.is_empty() {
                Vec::new()
            } else {
                pending
                    .split(',')
                    .take(MAX_PENDING + 1)
                    .map(|id| id.parse::<u64>().map_err(|_| format!("{RESUME}: a pending id `{id}`")))
                    .collect::<Result<Vec<_>, _>>()?
            };
            if pending.len() > MAX_PENDING {
                return Err(format!("{RESUME}: more than {MAX_PENDING} pending ids"));
            }
            Ok(Some(Resume {
                token: token.clone(),
                positions,
                pending,
            }))
        }
        _ => Err(format!("{RESUME} takes no arguments or three")),
    }
}

/// How a connection's session was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    New,
    Recovered,
    Failed(Failure),
}

impl Status {
    fn text(&self) -> String {
        match self {
            Status::New => "new".into(),
            Status::Recovered => "recovered".into(),
            Status::Failed(failure) => format!("failed:{}", failure.as_str()),
        }
    }
}

/// What a resume found before the connection hook ran: the session's
/// public id, and its record when another node held it last.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) id: Arc<str>,
    shared: Option<Record>,
}

/// How long a resume waits for another live node to give up the
/// session's previous connection (its final count) before it goes on
/// with the record as stored.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl ServerRecovery {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        let limits = SessionLimits {
            time: config.session_time,
            max_waiting: config.max_waiting_sessions,
        };
        ServerRecovery {
            config,
            sessions: Mutex::new(Sessions::new(limits)),
            store: OnceLock::new(),
        }
    }

    /// Keeps sessions in `store` too, shared with the other nodes.
    pub(crate) fn use_store(&self, store: Arc<dyn RecoveryStore>) {
        let _ = self.store.set(store);
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session a resume asks for, before the connection hook runs:
    /// its public id, which the connection keeps. A connection of the
    /// session that is still there (its client went away without the
    /// server noticing: no close, a ping not yet late) is taken over: on
    /// this node its membership and count go into the session, it leaves
    /// the registry at once and is closed with 4003 `session resumed
    /// elsewhere` (its client, if any, does not come back); on another live
    /// node, that node is asked to close it, and the resume waits (2 s at
    /// most) for its final count. Only the holder of the session's secret
    /// token gets here; the identity is checked after the connection hook,
    /// as for every resume.
    pub(crate) async fn lookup<C: Codec>(&self, resume: Option<&Resume>, registry: &Registry<C>) -> Option<Found> {
        let token = &resume?.token;
        let Some(store) = self.store.get() else {
            return self.lookup_here(token, registry).map(|id| Found { id, shared: None });
        };
        let key = session_key(token);
        let mut stored = store.load_session(&key).await.ok()??;
        if stored.owner == store.node() {
            return self.lookup_here(token, registry).map(|id| Found { id, shared: None });
        }
        let mut record = Record::decode(stored.record.clone())?;
        if record.open && store.is_live(&stored.owner) {
            let _ = store.release(&record.id);
            let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
            while record.open && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
                stored = store.load_session(&key).await.ok()??;
                record = Record::decode(stored.record.clone())?;
            }
        }
        // A connection of this id still here (the session was here before
        // it moved): it handles nothing more.
        if let Some(old) = registry.get(&record.id) {
            if let Some(link) = old.life().link() {
                link.take_over();
            }
            registry.remove_endpoint(&record.id, &old);
            old.close(CloseCode::FORBIDDEN, "session resumed elsewhere");
        }
        Some(Found {
            id: record.id.clone(),
            shared: Some(record),
        })
    }

    /// [`lookup`](Self::lookup) among this node's sessions.
    fn lookup_here<C: Codec>(&self, token: &str, registry: &Registry<C>) -> Option<Arc<str>> {
        let now = Instant::now();
        let id = self.sessions().session_id(token, now)?;
        if let Some(old) = registry.get(&id) {
            // Its final count: what it reads from now on is not handled.
            let received = old.life().link().map_or(0, |l| l.take_over());
            self.closed(registry, &old, &id, token, received);
            registry.remove_endpoint(&id, &old);
            old.close(CloseCode::FORBIDDEN, "session resumed elsewhere");
        }
        Some(id)
    }

    /// Decides the session of the accepted connection `id` (its hook
    /// replied `connect`, which is also its identity), reads what it
    /// missed, and queues, before anything else, `wsm.session`, `connect`
    /// and the replay; then the connection is connected. Returns the
    /// session's token and its status; `Err` when the connection holds
    /// another identity's id and must be refused.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open<C: Codec>(
        &self,
        registry: &Registry<C>,
        endpoint: &Endpoint<C>,
        link: &Arc<Link>,
        id: &str,
        connect: Message,
        resume: Option<Resume>,
        found: Option<Box<Found>>,
    ) -> Result<(String, Status), Failure> {
        let codec = endpoint.codec();
        let identity: Box<[u8]> = crate::endpoint::message_bytes(&connect).into();
        let store = self.store.get();
        let (token, status, resumed) = match resume {
            None => (self.start(id, identity, None), Status::New, None),
            Some(resume) => match self.take(&resume, found, &identity, id)? {
                Ok((token, kept)) => {
                    if let Some(store) = store {
                        let _ = store.remove_session(&session_key(&resume.token));
                    }
                    (token, Status::Recovered, Some((kept, resume)))
                }
                Err(failure) => (self.start(id, identity, None), Status::Failed(failure), None),
            },
        };
        let session: Arc<str> = token.as_str().into();
        let shared = store.map(|_| session.clone());
        let (status, replayed, kept) = match resumed {
            None => {
                registry.set_resumable(id, None, false, shared);
                (status, Vec::new(), None)
            }
            Some((kept, resume)) => {
                let restored = registry.set_resumable(id, Some(&kept.membership), true, shared.clone());
                // The rooms the connection hook joined too: their events
                // since are replayed in order with the rest.
                let membership = registry
                    .membership(id, endpoint)
                    .unwrap_or_else(|| kept.membership.clone());
                let max = self.config.history_len;
                match registry.replay(id, &membership, &resume.positions, max).await {
                    Ok(missed) => (Status::Recovered, missed, Some((kept, resume.pending))),
                    Err(failure) => {
                        registry.abandon_resume(id, &restored, shared);
                        (Status::Failed(failure), Vec::new(), None)
                    }
                }
            }
        };
        // The session's replies: those the client still waits for go now;
        // replies of handlers still running will come here.
        let (replies, pending) = match kept {
            Some((kept, pending)) => {
                link.set_received(kept.received);
                let replies = kept.replies.unwrap_or_default();
                (replies, pending)
            }
            None => (super::SharedReplies::default(), Vec::new()),
        };
        let received = {
            let mut sessions = self.sessions();
            sessions.update(&token, |s| {
                s.replies = replies.clone();
                if status != Status::Recovered {
                    // A new session: nothing kept, counted from zero.
                    s.membership = Membership::default();
                    s.received = 0;
                }
            });
            sessions.received(&token)
        };
        let frame = EncodedMessage::encode(codec, SESSION, (token.clone(), status.text(), received.to_string()))
            .map_err(|_| Failure::Unknown)?;
        {
            // No recoverable event between the replay and the first live one.
            let _order = registry.hold_publishing();
            let replay = if status == Status::Recovered {
                registry.finish_resume(id, replayed)
            } else {
                Vec::new()
            };
            link.push_first(frame.0);
            link.push_first(connect);
            for (position, message) in replay {
                if let Ok(at) = EncodedMessage::encode(codec, AT, (position.to_string(),)) {
                    link.push_first(at.0);
                    link.push_first(message.0);
                }
            }
            let resent = replies.lock().unwrap_or_else(|e| e.into_inner()).resume(link, &pending);
            for reply in resent {
                link.push_first(reply);
            }
            endpoint.life().replies = Some(replies);
            endpoint.set_connected(link, Bytes::new());
        }
        self.save(registry, endpoint, id, &token, true);
        Ok((token, status))
    }

    /// The session `resume` asks for, if this connection (`id`, accepted
    /// as `identity`) may have it: its new token and what it kept. The
    /// outer `Err`: the connection holds another identity's id and must be
    /// refused.
    #[allow(clippy::type_complexity)]
    fn take(
        &self,
        resume: &Resume,
        found: Option<Box<Found>>,
        identity: &[u8],
        id: &str,
    ) -> Result<Result<(String, Kept), Failure>, Failure> {
        let now = Instant::now();
        // With a shared store, only what it holds is a session: a token
        // this node still knows but the store does not (resumed elsewhere
        // since, or lost with the store's data) resumes nothing.
        if self.store.get().is_some() && found.is_none() {
            return Ok(Err(Failure::Unknown));
        }
        match found.and_then(|f| f.shared) {
            // Held last by another node: its record is the session.
            Some(record) if *record.id == *id => {
                if *record.identity != *identity {
                    return Err(Failure::Identity);
                }
                let token = self.start(id, identity.into(), Some(&record));
                let replies = Arc::new(Mutex::new(super::Replies::from_kept(record.replies)));
                Ok(Ok((
                    token,
                    Kept {
                        membership: record.membership,
                        received: record.received,
                        replies: Some(replies),
                    },
                )))
            }
            Some(_) => Ok(Err(Failure::Unknown)),
            None => {
                let resumed = self.sessions().resume(&resume.token, identity, id, now);
                match resumed {
                    Ok((token, session)) if &*session.id == id => Ok(Ok((
                        token,
                        Kept {
                            membership: session.membership,
                            received: session.received,
                            replies: Some(session.replies),
                        },
                    ))),
                    // The id was kept for this session: another identity
                    // must not have it.
                    Err(Failure::Identity) if self.sessions().session_id(&resume.token, now).as_deref() == Some(id) => {
                        Err(Failure::Identity)
                    }
                    Ok(_) => Ok(Err(Failure::Unknown)),
                    Err(failure) => Ok(Err(failure)),
                }
            }
        }
    }

    /// A new session for the connection `id` (or one taken over from
    /// another node's `record`); returns its token.
    fn start(&self, id: &str, identity: Box<[u8]>, record: Option<&Record>) -> String {
        self.sessions().start(Session {
            id: id.into(),
            identity,
            membership: record.map(|r| r.membership.clone()).unwrap_or_default(),
            received: record.map_or(0, |r| r.received),
            replies: Default::default(),
        })
    }

    /// Writes the session `token` to the shared store, if there is one:
    /// open (claimed by this node) or closed.
    fn save<C: Codec>(&self, registry: &Registry<C>, endpoint: &Endpoint<C>, id: &str, token: &str, open: bool) {
        let Some(store) = self.store.get() else {
            return;
        };
        let membership = registry.membership(id, endpoint);
        let record = {
            let mut sessions = self.sessions();
            if let Some(membership) = membership {
                sessions.update(token, |s| s.membership = membership);
            }
            sessions.record(token, open)
        };
        if let Some(record) = record {
            let ttl = self.config.session_time;
            let _ = store.save_session(&session_key(token), record.encode(), open, ttl, open);
        }
    }

    /// The membership of the open session `token` changed: the shared
    /// store keeps it.
    pub(crate) fn membership_changed(&self, token: &str, membership: Membership) {
        let Some(store) = self.store.get() else {
            return;
        };
        let record = {
            let mut sessions = self.sessions();
            sessions.update(token, |s| s.membership = membership);
            sessions.record(token, true)
        };
        if let Some(record) = record {
            let ttl = self.config.session_time;
            let _ = store.save_session(&session_key(token), record.encode(), true, ttl, false);
        }
    }

    /// The connection of the session `token` (id `id`) has ended: its
    /// membership is kept, and the session waits for its client. With a
    /// shared store, the record is written once the connection's running
    /// handlers have ended (1 s at most), so that their replies travel
    /// with the session to another node.
    pub(crate) fn closed<C: Codec>(
        &self,
        registry: &Registry<C>,
        endpoint: &Endpoint<C>,
        id: &str,
        token: &str,
        received: u64,
    ) {
        let membership = registry.membership(id, endpoint);
        let (record, replies) = {
            let mut sessions = self.sessions();
            sessions.update(token, |session| {
                if let Some(membership) = membership {
                    session.membership = membership;
                }
                session.received = received;
            });
            let record = sessions.record(token, false);
            let replies = sessions.replies(token);
            sessions.dropped(token, Instant::now());
            (record, replies)
        };
        let (Some(store), Some(mut record)) = (self.store.get().cloned(), record) else {
            return;
        };
        let key = session_key(token);
        let ttl = self.config.session_time;
        let link = endpoint.life().link().cloned();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let _ = store.save_session(&key, record.encode(), false, ttl, false);
            return;
        };
        runtime.spawn(async move {
            if let Some(link) = link {
                link.calls_settled(Duration::from_secs(1)).await;
            }
            if let Some(replies) = replies {
                record.replies = replies.lock().unwrap_or_else(|e| e.into_inner()).kept();
            }
            let _ = store.save_session(&key, record.encode(), false, ttl, false);
        });
    }
}

/// What a resumed session kept.
#[derive(Debug)]
struct Kept {
    membership: Membership,
    received: u64,
    /// Its replies.
    replies: Option<super::SharedReplies>,
}
