//! Sessions of the recovery extension, in memory (`docs/recovery.md`,
//! "Handshake", "Tokens", "Sessions and history"): what a connection that
//! drops leaves behind for the session time, found again by its secret
//! token and only by the identity the connection hook accepted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Failure;

/// How long sessions live and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    /// How long a dropped session waits for its client.
    pub(crate) time: Duration,
    /// Dropped sessions kept at most (the oldest go first).
    pub(crate) max_waiting: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            time: Duration::from_secs(120),
            max_waiting: 100_000,
        }
    }
}

/// What a session keeps for its next connection.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The public connection id, kept across resumes.
    pub(crate) id: Arc<str>,
    /// What the connection hook accepted (by default its encoded reply).
    pub(crate) identity: Box<[u8]>,
    /// The rooms joined (each with the top offset its partition had when
    /// the join took effect) and where replay starts for the partitions
    /// of its own id and of everyone when the client presents no position
    /// for them.
    pub(crate) membership: super::Membership,
    /// How many of the client's messages the server has received.
    pub(crate) received: u64,
    /// The replies of its invokes, shared with its connections.
    pub(crate) replies: super::SharedReplies,
}

#[derive(Debug)]
struct Slot {
    session: Session,
    /// When its connection dropped; `None` while one is open.
    dropped: Option<Instant>,
}

/// The sessions of one node.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    limits: SessionLimits,
    slots: HashMap<Box<str>, Slot>,
    /// Dropped sessions in the order they dropped (a token may stand here
    /// after its session resumed or dropped again: checked when popped).
    waiting: VecDeque<(Instant, Box<str>)>,
    waiting_count: usize,
}

impl Sessions {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Sessions {
            limits,
            ..Sessions::default()
        }
    }

    /// A new session for a connection that has just been accepted; returns
    /// its token.
    pub(crate) fn start(&mut self, session: Session) -> String {
        let token = new_token();
        self.slots.insert(token.clone().into(), Slot { session, dropped: None });
        token
    }

    /// The session of `token`, for a connection the hook accepted as
    /// `identity`, at `now`: its state and a new token (the old one stops
    /// working). A failure leaves a session of another identity as it was.
    pub(crate) fn resume(
        &mut self,
        token: &str,
        identity: &[u8],
        id: &str,
        now: Instant,
    ) -> Result<(String, Session), Failure> {
        self.expire(now);
        let Some(slot) = self.slots.get(token) else {
            return Err(Failure::Unknown);
        };
        // Only a connection that got the session's id takes it over (the
        // id was free when it came).
        if *slot.session.id != *id {
            return Err(Failure::Unknown);
        }
        if *slot.session.identity != *identity {
            return Err(Failure::Identity);
        }
        if slot
            .dropped
            .is_some_and(|at| now.saturating_duration_since(at) > self.limits.time)
        {
            self.slots.remove(token);
            return Err(Failure::Expired);
        }
        let slot = self.slots.remove(token).expect("looked up above");
        if slot.dropped.is_some() {
            self.waiting_count -= 1;
        }
        let new = new_token();
        let session = slot.session.clone();
        self.slots.insert(
            new.clone().into(),
            Slot {
                session: slot.session,
                dropped: None,
            },
        );
        Ok((new, session))
    }

    /// The public id of the session of `token` while it lives (open, or
    /// dropped within its time at `now`).
    pub(crate) fn session_id(&self, token: &str, now: Instant) -> Option<Arc<str>> {
        let slot = self.slots.get(token)?;
        let alive = slot
            .dropped
            .is_none_or(|at| now.saturating_duration_since(at) <= self.limits.time);
        alive.then(|| slot.session.id.clone())
    }

    /// The session of `token` with its connection gone at `now`: it waits
    /// for its client for the session time.
    pub(crate) fn dropped(&mut self, token: &str, now: Instant) {
        let Some(slot) = self.slots.get_mut(token) else {
            return;
        };
        if slot.dropped.is_none() {
            slot.dropped = Some(now);
            self.waiting.push_back((now, token.into()));
            self.waiting_count += 1;
        }
        self.expire(now);
    }

    /// How many of the client's messages the session of `token` has
    /// received (0 for none).
    pub(crate) fn received(&self, token: &str) -> u64 {
        self.slots.get(token).map_or(0, |s| s.session.received)
    }

    /// The record of the session `token` for a shared store, as `open` or
    /// not.
    pub(crate) fn record(&self, token: &str, open: bool) -> Option<super::record::Record> {
        let session = &self.slots.get(token)?.session;
        Some(super::record::Record {
            id: session.id.clone(),
            identity: session.identity.clone(),
            membership: session.membership.clone(),
            received: session.received,
            open,
            // A closed session's replies travel with it.
            replies: if open {
                Vec::new()
            } else {
                session.replies.lock().unwrap_or_else(|e| e.into_inner()).kept()
            },
        })
    }

    /// The replies of the session `token`.
    pub(crate) fn replies(&self, token: &str) -> Option<super::SharedReplies> {
        Some(self.slots.get(token)?.session.replies.clone())
    }

    /// Updates the session of an open connection.
    pub(crate) fn update(&mut self, token: &str, f: impl FnOnce(&mut Session)) {
        if let Some(slot) = self.slots.get_mut(token) {
            f(&mut slot.session);
        }
    }

    /// Forgets the sessions whose time has run out at `now`, and the
    /// oldest dropped ones past the count.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, token)) = self.waiting.front() {
            let overdue = now.saturating_duration_since(*at) > self.limits.time;
            if !overdue && self.waiting_count <= self.limits.max_waiting {
                break;
            }
            let (at, token) = (*at, token.clone());
            self.waiting.pop_front();
            // Only if it is still the same drop (not resumed since).
            if self.slots.get(&token).is_some_and(|s| s.dropped == Some(at)) {
                self.slots.remove(&token);
                self.waiting_count -= 1;
            }
        }
        // Entries of sessions that resumed: do not let them pile up.
        if self.waiting.len() > 2 * self.waiting_count + 64 {
            let slots = &self.slots;
            self.waiting
                .retain(|(at, token)| slots.get(token).is_some_and(|s| s.dropped == Some(*at)));
        }
    }

    /// Sessions held: (with an open connection, waiting).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.slots.len() - self.waiting_count, self.waiting_count)
    }
}

/// A new secret token: 144 bits from a cryptographically secure
/// generator (seeded by the operating system), base64url, as connection
/// ids are made (and as unrelated to them).
fn new_token() -> String {
    crate::server::random_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(identity: &str) -> Session {
        Session {
            id: "c1".into(),
            identity: identity.as_bytes().into(),
            membership: super::super::Membership {
                rooms: vec![("lobby".into(), 3, 17)],
                started: vec![(64, 5)],
                epochs: Vec::new(),
            },
            received: 9,
            replies: Default::default(),
        }
    }

    fn sessions(secs: u64, max_waiting: usize) -> Sessions {
        Sessions::new(SessionLimits {
            time: Duration::from_secs(secs),
            max_waiting,
        })
    }

    #[test]
    fn a_dropped_session_resumes_once_with_its_state_and_a_new_token() {
        let now = Instant::now();
        let mut all = sessions(120, 10);
        let token = all.start(session("alice"));
        assert_eq!(token.len(), 24);
        all.dropped(&token, now);
        assert_eq!(all.counts(), (0, 1));
        let (new, resumed) = all
            .resume(&token, b"alice", "c1", now + Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            (resumed.id, resumed.membership, resumed.received),
            ("c1".into(), session("alice").membership, 9)
        );
        assert_ne!(new, token);
        assert_eq!(all.counts(), (1, 0));
        assert_eq!(
            all.resume(&token, b"alice", "c1", now).err(),
            Some(Failure::Unknown),
            "the old token stops working"
        );
    }

    #[test]
    fn another_identity_gets_nothing_and_leaves_the_session_in_place() {
        let now = Instant::now();
        let mut all = sessions(120, 10);
        let token = all.start(session("alice"));
        all.dropped(&token, now);
        assert_eq!(all.resume(&token, b"mallory", "c1", now).err(), Some(Failure::Identity));
        assert_eq!(all.resume("forged", b"alice", "c1", now).err(), Some(Failure::Unknown));
        assert!(all.resume(&token, b"alice", "c1", now).is_ok());
    }

    #[test]
    fn sessions_past_their_time_or_the_count_are_forgotten() {
        let now = Instant::now();
        let mut all = sessions(2, 2);
        let a = all.start(session("a"));
        let b = all.start(session("b"));
        let c = all.start(session("c"));
        all.dropped(&a, now);
        all.dropped(&b, now);
        all.dropped(&c, now);
        assert_eq!(all.counts(), (0, 2), "the oldest dropped went first");
        assert_eq!(all.resume(&a, b"a", "c1", now).err(), Some(Failure::Unknown));
        let later = now + Duration::from_secs(3);
        assert!(all.resume(&b, b"b", "c1", later).is_err());
        all.expire(later);
        assert_eq!(all.counts(), (0, 0), "nothing left after the session time");
    }

    #[test]
    fn an_open_session_is_never_expired_and_updates_stick() {
        let now = Instant::now();
        let mut all = sessions(1, 1);
        let token = all.start(session("a"));
        all.update(&token, |s| s.received = 42);
        all.expire(now + Duration::from_secs(3600));
        all.dropped(&token, now + Duration::from_secs(3600));
        let (_, resumed) = all.resume(&token, b"a", "c1", now + Duration::from_secs(3600)).unwrap();
        assert_eq!(resumed.received, 42);
    }
}
