//! The client's half of the recovery extension (`docs/recovery.md`): the
//! session's token, the positions received, and the rule that an event
//! is applied once.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Message;

use super::position::Position;

/// Events kept for a resume at most, and their bytes.
pub(crate) const OUTBOX_FRAMES: usize = 1_000;
pub(crate) const OUTBOX_BYTES: usize = 1 << 20;

/// How the server decided a client's session on its last connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// A new session (the first connection, or the server does not know
    /// the last one).
    New,
    /// The session resumed: its rooms and id are back, and what it missed
    /// was replayed before anything new.
    Recovered,
    /// The session could not be resumed (`expired`, `unknown`, `trimmed`,
    /// `epoch`, `limit`): this is a new one, and what was sent meanwhile
    /// may be missing: refetch.
    Failed(String),
}

impl SessionStatus {
    fn parse(text: &str) -> Self {
        match text {
            "new" => SessionStatus::New,
            "recovered" => SessionStatus::Recovered,
            other => SessionStatus::Failed(other.strip_prefix("failed:").unwrap_or(other).to_string()),
        }
    }
}

/// A client's session state, kept across its connections.
#[derive(Debug, Default)]
pub(crate) struct ClientSession {
    /// The current connection speaks the extension.
    pub(crate) active: bool,
    token: Option<String>,
    status: Option<SessionStatus>,
    /// The newest position received, per partition.
    positions: Vec<Position>,
    /// The position `wsm.at` gave for the next event.
    next: Option<Position>,
    /// The next event was received already: drop it.
    skip_next: bool,
    /// The events this client sent in the session (numbered 1, 2, 3…)
    /// that the server has not said it received: resent on resume.
    outbox: VecDeque<(u64, Message)>,
    outbox_bytes: usize,
    /// The number of the last event sent in the session.
    sent: u64,
    /// The number of the last event queued on the current connection.
    queued: u64,
    /// The session's invokes waiting for their reply, across connections.
    waiting: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<Result<bytes::Bytes, bytes::Bytes>>>,
}

impl ClientSession {
    /// The arguments of `wsm.resume`: none for a new session, else the
    /// token, the positions and the pending invokes (none yet).
    pub(crate) fn resume_args(&self) -> Vec<String> {
        match &self.token {
            None => Vec::new(),
            Some(token) => {
                let mut pending: Vec<u64> = self.waiting.keys().copied().collect();
                pending.sort_unstable();
                let pending = pending.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                vec![token.clone(), Position::format_list(&self.positions), pending]
            }
        }
    }

    /// `wsm.session [token, status, received]`: after a resume, the kept
    /// events the server has not received are queued again
    /// ([`take_unqueued`](Self::take_unqueued)); a new session forgets them.
    pub(crate) fn on_session(&mut self, args: &[String]) {
        let [token, status, received] = args else {
            return;
        };
        let status = SessionStatus::parse(status);
        if status == SessionStatus::Recovered {
            self.on_ack(received);
            // What the server has not received goes again, in order.
            self.queued = received.parse().unwrap_or(0);
        } else {
            // A new session counts from zero; what was kept is lost, and
            // the invokes waiting end (a connection error).
            self.positions.clear();
            self.waiting.clear();
            self.outbox.clear();
            self.outbox_bytes = 0;
            self.sent = 0;
            self.queued = 0;
        }
        self.token = Some(token.clone());
        self.status = Some(status);
        self.next = None;
        self.skip_next = false;
    }

    /// The kept events not yet queued on the current connection, in order,
    /// now counted as queued.
    pub(crate) fn take_unqueued(&mut self) -> Vec<Message> {
        let queued = self.queued;
        let out: Vec<Message> = self
            .outbox
            .iter()
            .filter(|(n, _)| *n > queued)
            .map(|(_, m)| m.clone())
            .collect();
        self.queued = self.sent;
        out
    }

    /// `wsm.ack [received]`: the server has received the first `received`
    /// events of the session.
    pub(crate) fn on_ack(&mut self, received: &str) {
        let Ok(received) = received.parse::<u64>() else {
            return;
        };
        while self.outbox.front().is_some_and(|(n, _)| *n <= received) {
            if let Some((_, message)) = self.outbox.pop_front() {
                self.outbox_bytes -= message.len();
            }
        }
    }

    /// Waits for the reply to the session's invoke `id` across connections.
    pub(crate) fn wait(&mut self, id: u64) -> tokio::sync::oneshot::Receiver<Result<bytes::Bytes, bytes::Bytes>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.insert(id, tx);
        rx
    }

    /// No longer waits for `id` (it timed out).
    pub(crate) fn forget(&mut self, id: u64) {
        self.waiting.remove(&id);
    }

    /// A reply: taken when the session waits for it (`None`), else given
    /// back.
    pub(crate) fn answer(
        &mut self,
        id: u64,
        outcome: Result<bytes::Bytes, bytes::Bytes>,
    ) -> Option<Result<bytes::Bytes, bytes::Bytes>> {
        match self.waiting.remove(&id) {
            Some(waiting) => {
                let _ = waiting.send(outcome);
                None
            }
            None => Some(outcome),
        }
    }

    /// Whether the session has a token (the server gave one): events are
    /// then numbered and kept until the server has them.
    pub(crate) fn keeps(&self) -> bool {
        self.token.is_some()
    }

    /// Numbers an event and keeps it; `false` when the outbox is full.
    pub(crate) fn keep(&mut self, message: &Message) -> bool {
        if self.outbox.len() >= OUTBOX_FRAMES || self.outbox_bytes + message.len() > OUTBOX_BYTES {
            return false;
        }
        self.sent += 1;
        self.outbox_bytes += message.len();
        self.outbox.push_back((self.sent, message.clone()));
        true
    }

    /// `wsm.at [position]`: the next event's position.
    pub(crate) fn on_at(&mut self, text: &str) {
        let Ok(position) = Position::parse(text) else {
            self.next = None;
            self.skip_next = false;
            return;
        };
        self.skip_next = self
            .positions
            .iter()
            .any(|p| p.partition == position.partition && p.epoch == position.epoch && p.offset >= position.offset);
        self.next = Some(position);
    }

    /// Whether the next event is one received already.
    pub(crate) fn repeats(&self) -> bool {
        self.skip_next
    }

    /// Whether the event that just came is to be applied (not a repeat).
    pub(crate) fn take_event(&mut self) -> bool {
        !std::mem::take(&mut self.skip_next)
    }

    /// The event after `wsm.at` has been applied: its position is now held.
    pub(crate) fn applied(&mut self) {
        let Some(position) = self.next.take() else {
            return;
        };
        match self.positions.iter_mut().find(|p| p.partition == position.partition) {
            Some(held) => *held = position,
            None => self.positions.push(position),
        }
    }

    /// How the last connection's session was decided.
    pub(crate) fn status(&self) -> Option<&SessionStatus> {
        self.status.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_events_go_again_after_what_the_server_received() {
        let mut session = ClientSession::default();
        session.on_session(&["t".into(), "new".into(), "0".into()]);
        assert!(session.keeps());
        for n in 1..=3 {
            assert!(session.keep(&Message::text(format!("e{n}"))));
        }
        assert_eq!(session.take_unqueued().len(), 3);
        for n in 4..=5 {
            assert!(session.keep(&Message::text(format!("e{n}"))));
        }
        session.on_ack("2");
        session.on_session(&["t".into(), "recovered".into(), "4".into()]);
        assert_eq!(session.take_unqueued(), [Message::text("e5")]);
        assert!(session.take_unqueued().is_empty());
        session.on_session(&["u".into(), "failed:expired".into(), "0".into()]);
        assert!(session.take_unqueued().is_empty());
    }

    #[test]
    fn an_event_is_applied_once_and_its_position_held() {
        let mut session = ClientSession::default();
        assert!(session.resume_args().is_empty());
        session.on_session(&["t1".into(), "new".into(), "0".into()]);
        session.on_at("3:e:1");
        assert!(session.take_event());
        session.applied();
        session.on_at("3:e:1");
        assert!(!session.take_event(), "a repeat");
        session.on_at("3:e:2");
        assert!(session.take_event());
        session.applied();
        assert_eq!(session.resume_args(), ["t1", "3:e:2", ""]);
        // Another epoch is not a repeat; a new session forgets positions.
        session.on_at("3:f:1");
        assert!(session.take_event());
        session.on_session(&["t2".into(), "failed:expired".into(), "0".into()]);
        assert_eq!(session.status(), Some(&SessionStatus::Failed("expired".into())));
        assert_eq!(session.resume_args(), ["t2", "", ""]);
    }
}
