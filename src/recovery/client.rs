//! The client's half of the recovery extension (`docs/recovery.md`): the
//! session's token, the positions received, and the rule that an event
//! is applied once.

use super::position::Position;

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
}

impl ClientSession {
    /// The arguments of `wsm.resume`: none for a new session, else the
    /// token, the positions and the pending invokes (none yet).
    pub(crate) fn resume_args(&self) -> Vec<String> {
        match &self.token {
            None => Vec::new(),
            Some(token) => vec![token.clone(), Position::format_list(&self.positions), String::new()],
        }
    }

    /// `wsm.session [token, status, received]`.
    pub(crate) fn on_session(&mut self, args: &[String]) {
        let [token, status, _received] = args else {
            return;
        };
        let status = SessionStatus::parse(status);
        if status != SessionStatus::Recovered {
            self.positions.clear();
        }
        self.token = Some(token.clone());
        self.status = Some(status);
        self.next = None;
        self.skip_next = false;
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
