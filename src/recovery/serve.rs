//! The server's half of the recovery extension (`docs/recovery.md`,
//! "Handshake"): reading `wsm.resume`, deciding the session, queueing
//! `wsm.session`, `connect` and the replay before the connection is
//! connected, and keeping the session when the connection ends.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::Registry;
use crate::codec::Codec;
use crate::connection::Link;
use crate::envelope::{validate, Frame};
use crate::{CloseCode, EncodedMessage, Endpoint};

use super::position::Position;
use super::session::{Session, SessionLimits, Sessions};
use super::{Failure, RecoveryConfig, AT, RESUME, SESSION};

/// The most ids a `wsm.resume` may list as pending.
const MAX_PENDING: usize = 65_536;

/// A server's sessions and settings, with recovery on.
#[derive(Debug)]
pub(crate) struct ServerRecovery {
    config: RecoveryConfig,
    sessions: Mutex<Sessions>,
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

impl ServerRecovery {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        let limits = SessionLimits {
            time: config.session_time,
            max_waiting: config.max_waiting_sessions,
        };
        ServerRecovery {
            config,
            sessions: Mutex::new(Sessions::new(limits)),
        }
    }

    pub(crate) fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection id a resume asks to keep: its session's, while the
    /// session lives. A connection of the session that is still there (its
    /// client went away without the server noticing: no close, a ping not
    /// yet late) is taken over: its membership and count go into the
    /// session, it leaves the registry at once and is closed with 4003
    /// `session resumed elsewhere` (its client, if any, does not come
    /// back). Only the holder of the session's secret token gets here; the
    /// identity is checked after the connection hook, as for every resume.
    pub(crate) fn resumed_id<C: Codec>(&self, resume: Option<&Resume>, registry: &Registry<C>) -> Option<Arc<str>> {
        let token = &resume?.token;
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
    /// replied `connect`, which is also its identity) and queues, before
    /// anything else, `wsm.session`, `connect` and what it missed. Call
    /// with the registry's publishing held until the connection is
    /// connected. Returns the session's token and its status; `Err` when
    /// the connection holds another identity's id and must be refused.
    pub(crate) fn open<C: Codec>(
        &self,
        registry: &Registry<C>,
        endpoint: &Endpoint<C>,
        link: &Arc<Link>,
        id: &str,
        connect: Message,
        resume: Option<Resume>,
    ) -> Result<(String, Status), Failure> {
        let pending = resume.as_ref().map(|r| r.pending.clone()).unwrap_or_default();
        let codec = endpoint.codec();
        let identity: Box<[u8]> = crate::endpoint::message_bytes(&connect).into();
        let now = Instant::now();
        let mut replay = Vec::new();
        let mut replies: Option<super::SharedReplies> = None;
        let (token, status) = match resume {
            None => (self.start(id, identity), Status::New),
            Some(resume) => {
                let resumed = self.sessions().resume(&resume.token, &identity, id, now);
                match resumed {
                    Ok((token, session)) if &*session.id == id => {
                        let membership = (session.rooms.clone(), session.started.clone());
                        match registry.replay(id, &membership, &resume.positions) {
                            Ok(missed) if missed.len() > self.config.history_len => {
                                registry.set_resumable(id, None);
                                (token, Status::Failed(Failure::Limit))
                            }
                            Ok(missed) => {
                                registry.set_resumable(id, Some(&membership));
                                replay = missed;
                                link.set_received(session.received);
                                replies = Some(session.replies.clone());
                                (token, Status::Recovered)
                            }
                            Err(failure) => {
                                registry.set_resumable(id, None);
                                (token, Status::Failed(failure))
                            }
                        }
                    }
                    // The id was kept for this session: another identity
                    // must not have it.
                    Err(Failure::Identity) if self.sessions().session_id(&resume.token, now).as_deref() == Some(id) => {
                        return Err(Failure::Identity)
                    }
                    Ok(_) | Err(_) => {
                        let failure = resumed.err().unwrap_or(Failure::Unknown);
                        (self.start(id, identity), Status::Failed(failure))
                    }
                }
            }
        };
        if status == Status::New {
            registry.set_resumable(id, None);
        }
        let received = self.sessions().received(&token);
        let session = EncodedMessage::encode(codec, SESSION, (token.clone(), status.text(), received.to_string()))
            .map_err(|_| Failure::Unknown)?;
        link.push_first(session.0);
        link.push_first(connect);
        for (position, message) in replay {
            if let Ok(at) = EncodedMessage::encode(codec, AT, (position.to_string(),)) {
                link.push_first(at.0);
                link.push_first(message.0);
            }
        }
        // The session's replies: those the client still waits for go now;
        // replies of handlers still running will come here.
        let replies = match replies {
            Some(replies) => replies,
            None => {
                let fresh = super::SharedReplies::default();
                self.sessions().update(&token, |s| s.replies = fresh.clone());
                fresh
            }
        };
        let resent = replies.lock().unwrap_or_else(|e| e.into_inner()).resume(link, &pending);
        for reply in resent {
            link.push_first(reply);
        }
        endpoint.life().replies = Some(replies);
        Ok((token, status))
    }

    fn start(&self, id: &str, identity: Box<[u8]>) -> String {
        self.sessions().start(Session {
            id: id.into(),
            identity,
            rooms: Vec::new(),
            started: Vec::new(),
            received: 0,
            replies: Default::default(),
        })
    }

    /// The connection of the session `token` (id `id`) has ended: its
    /// membership is kept, and the session waits for its client.
    pub(crate) fn closed<C: Codec>(
        &self,
        registry: &Registry<C>,
        endpoint: &Endpoint<C>,
        id: &str,
        token: &str,
        received: u64,
    ) {
        let membership = registry.membership(id, endpoint);
        let mut sessions = self.sessions();
        sessions.update(token, |session| {
            if let Some((rooms, started)) = membership {
                session.rooms = rooms;
                session.started = started;
            }
            session.received = received;
        });
        sessions.dropped(token, Instant::now());
    }
}
