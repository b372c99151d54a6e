//! Session recovery (`docs/recovery.md`): the pieces the negotiated
//! `ws-messaging.resume.1` extension is built from.

pub(crate) mod client;
pub(crate) mod log;
pub(crate) mod position;
pub(crate) mod record;
pub(crate) mod route;
pub(crate) mod serve;
pub(crate) mod session;
pub(crate) mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::adapter::Target;
use crate::EncodedMessage;

use log::{LogLimits, PartitionLog};
use position::Epoch;

/// The recovery extension's settings (`ServerBuilder::recovery`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// How long a dropped connection's session waits for its client, and
    /// the oldest history kept (default 2 minutes).
    pub session_time: Duration,
    /// Room partitions (default 64; the same on every node).
    pub partitions: u16,
    /// Events kept per partition at most (default 10,000).
    pub history_len: usize,
    /// Bytes of events kept per partition at most (default 16 MiB).
    pub history_bytes: usize,
    /// Dropped sessions kept at most (default 100,000; the oldest go
    /// first).
    pub max_waiting_sessions: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            session_time: Duration::from_secs(120),
            partitions: position::DEFAULT_PARTITIONS,
            history_len: 10_000,
            history_bytes: 16 << 20,
            max_waiting_sessions: 100_000,
        }
    }
}

impl RecoveryConfig {
    /// Sets how long a dropped connection's session waits for its client
    /// (and the oldest history kept).
    pub fn with_session_time(mut self, time: Duration) -> Self {
        self.session_time = time;
        self
    }

    /// Sets the number of room partitions (the same on every node).
    pub fn with_partitions(mut self, partitions: u16) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets the events (and bytes, in memory) kept per partition.
    pub fn with_history(mut self, len: usize, bytes: usize) -> Self {
        self.history_len = len;
        self.history_bytes = bytes;
        self
    }
}

/// A recoverable event as logged: its target (for the delivery rule on
/// replay), its frame, its offset in each partition it was appended to,
/// and when (orders the events of several partitions on replay).
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) target: Target,
    pub(crate) message: EncodedMessage,
    pub(crate) offsets: Vec<(u16, u64)>,
    pub(crate) time: u64,
}

impl Logged {
    /// The partition a connection `id` receives this event from, given
    /// what it held and since when (`membership`). A key counts only if it
    /// was held before this event was appended to the key's partition.
    pub(crate) fn source_for(&self, id: &str, membership: &Membership, partitions: u16) -> Option<u16> {
        let offset_in = |p: u16| self.offsets.iter().find(|(q, _)| *q == p).map(|(_, o)| *o);
        let before = |p: u16, at: u64| offset_in(p).is_some_and(|o| at < o);
        let held: Vec<&str> = membership
            .rooms
            .iter()
            .filter(|(_, p, at)| before(*p, *at))
            .map(|(room, _, _)| &**room)
            .collect();
        let source = route::source_of(&self.target, id, &held, partitions)?;
        // Through its own id or everyone: only from where it started.
        let through_room = held.iter().any(|room| {
            self.target.rooms().iter().any(|r| r == room) && position::partition_of(room, partitions) == source
        });
        if through_room {
            return Some(source);
        }
        membership
            .started
            .iter()
            .any(|(p, at)| *p == source && before(*p, *at))
            .then_some(source)
    }
}

/// What a recovery session keeps of a connection's membership: each room
/// with its partition and that partition's offset when the room was
/// joined, the starting offsets of its own id's and everyone's
/// partitions, and the epoch each of those offsets belongs to (`None`: the
/// partition had no log yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Membership {
    pub(crate) rooms: Vec<(Arc<str>, u16, u64)>,
    pub(crate) started: Vec<(u16, u64)>,
    pub(crate) epochs: Vec<(u16, Option<Epoch>)>,
}

impl Membership {
    /// Records that an offset of partition `p` was taken under `epoch`;
    /// two different epochs for one partition make it unrecoverable
    /// (`Epoch::lost`).
    pub(crate) fn note_epoch(epochs: &mut Vec<(u16, Option<Epoch>)>, p: u16, epoch: Option<&Epoch>) {
        match epochs.iter_mut().find(|(q, _)| *q == p) {
            Some((_, held)) if held.as_ref() == epoch => {}
            // Offset 0 before the log existed is offset 0 of its first
            // epoch.
            Some((_, held)) if held.is_none() => *held = epoch.cloned(),
            Some((_, held)) => *held = Some(Epoch::lost()),
            None => epochs.push((p, epoch.cloned())),
        }
    }
}

/// Where recoverable events are logged, as one node sees it: each
/// partition's epoch and newest offset, and the events themselves when
/// this node keeps them (no shared store).
#[derive(Debug)]
pub(crate) struct History {
    partitions: u16,
    /// Each partition's epoch and the offset of the newest event seen here.
    tops: Vec<(Option<Epoch>, u64)>,
    /// This node's own logs; `None` when a shared store keeps them.
    local: Option<Vec<PartitionLog<Arc<Logged>>>>,
    /// Appends made here: the order of local events on replay.
    clock: u64,
}

impl History {
    /// The partition logs of one node, in memory.
    pub(crate) fn local(config: &RecoveryConfig) -> Self {
        let limits = LogLimits {
            len: config.history_len,
            bytes: config.history_bytes,
            age: config.session_time,
        };
        let partitions = config.partitions.clamp(1, u16::MAX - 1);
        // One epoch for every partition of this node's run.
        let epoch = Epoch::random();
        History {
            partitions,
            tops: vec![(Some(epoch.clone()), 0); usize::from(partitions) + 1],
            local: Some(
                (0..=partitions)
                    .map(|_| PartitionLog::new(epoch.clone(), limits))
                    .collect(),
            ),
            clock: 0,
        }
    }

    /// What a node sees of logs a shared store keeps.
    pub(crate) fn shared(config: &RecoveryConfig) -> Self {
        let partitions = config.partitions.clamp(1, u16::MAX - 1);
        History {
            partitions,
            tops: vec![(None, 0); usize::from(partitions) + 1],
            local: None,
            clock: 0,
        }
    }

    /// The number of room partitions (everyone's is this number).
    pub(crate) fn partitions(&self) -> u16 {
        self.partitions
    }

    /// Appends an event to each partition of its target in this node's
    /// logs; `None` when a shared store keeps them.
    pub(crate) fn append_local(
        &mut self,
        target: &Target,
        message: &EncodedMessage,
        now: Instant,
    ) -> Option<Vec<(u16, Epoch, u64)>> {
        let logs = self.local.as_mut()?;
        self.clock += 1;
        let offsets: Vec<(u16, u64)> = route::partitions_of(target, self.partitions)
            .into_iter()
            .map(|p| (p, logs[usize::from(p)].top() + 1))
            .collect();
        let logged = Arc::new(Logged {
            target: target.clone(),
            message: message.clone(),
            offsets,
            time: self.clock,
        });
        let size = message.as_bytes().len() + target.rooms().iter().map(String::len).sum::<usize>() + 64;
        for (p, offset) in &logged.offsets {
            let appended = logs[usize::from(*p)].append(logged.clone(), size, now);
            debug_assert_eq!(appended, *offset);
            self.tops[usize::from(*p)].1 = *offset;
        }
        Some(
            logged
                .offsets
                .iter()
                .map(|(p, offset)| (*p, logs[usize::from(*p)].epoch().clone(), *offset))
                .collect(),
        )
    }

    /// An event of partition `p` at `offset` under `epoch` was seen here:
    /// the newest, unless an older one arrives late.
    pub(crate) fn seen(&mut self, p: u16, epoch: &Epoch, offset: u64) {
        let Some(top) = self.tops.get_mut(usize::from(p)) else {
            return;
        };
        if top.0.as_ref() != Some(epoch) {
            *top = (Some(epoch.clone()), offset);
        } else if offset > top.1 {
            top.1 = offset;
        }
    }

    /// Partition `p`'s epoch and newest offset, as this node knows them.
    pub(crate) fn top(&self, p: u16) -> (Option<&Epoch>, u64) {
        self.tops
            .get(usize::from(p))
            .map_or((None, 0), |(epoch, top)| (epoch.as_ref(), *top))
    }

    /// Partition `p`'s log on this node, if it keeps it.
    pub(crate) fn log_mut(&mut self, p: u16) -> Option<&mut PartitionLog<Arc<Logged>>> {
        self.local.as_mut()?.get_mut(usize::from(p))
    }
}

/// Why a session could not be recovered (`failed:REASON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No such session (or it is not waiting).
    Unknown,
    /// Another identity's session.
    Identity,
    /// Its time ran out.
    Expired,
    /// The history no longer holds the gap.
    Trimmed,
    /// The history is another incarnation's.
    Epoch,
    /// The gap is larger than a resume replays.
    Limit,
    /// The shared store could not be read.
    Unavailable,
}

impl Failure {
    /// The reason's word on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Unknown => "unknown",
            Failure::Identity => "identity",
            Failure::Expired => "expired",
            Failure::Trimmed => "trimmed",
            Failure::Epoch => "epoch",
            Failure::Limit => "limit",
            Failure::Unavailable => "unavailable",
        }
    }
}

/// The event that gives the position of the recoverable event after it.
pub(crate) const AT: &str = "wsm.at";
/// The replies of a session's invokes, kept until the client no longer
/// waits for them (bounded), and the connection the session is on now:
/// a handler that ends after its connection dropped answers there.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    current: std::sync::Weak<crate::connection::Link>,
    kept: std::collections::VecDeque<(u64, tokio_tungstenite::tungstenite::Message)>,
    bytes: usize,
}

/// Replies kept per session at most, and their bytes.
const KEPT_REPLIES: usize = 256;
const KEPT_REPLY_BYTES: usize = 256 << 10;

impl Replies {
    /// Keeps the reply to `id`; returns the session's current connection
    /// when it is not `from` (the reply goes there too).
    pub(crate) fn keep(
        &mut self,
        id: u64,
        reply: &tokio_tungstenite::tungstenite::Message,
        from: &crate::connection::Link,
    ) -> Option<Arc<crate::connection::Link>> {
        self.kept.push_back((id, reply.clone()));
        self.bytes += reply.len();
        while self.kept.len() > KEPT_REPLIES || self.bytes > KEPT_REPLY_BYTES {
            match self.kept.pop_front() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
        self.current.upgrade().filter(|l| !std::ptr::eq(&**l, from))
    }

    /// Replies kept elsewhere (a session's record from another node).
    pub(crate) fn from_kept(kept: Vec<(u64, tokio_tungstenite::tungstenite::Message)>) -> Self {
        let bytes = kept.iter().map(|(_, m)| m.len()).sum();
        Replies {
            current: std::sync::Weak::new(),
            kept: kept.into(),
            bytes,
        }
    }

    /// The kept replies, for a session's record.
    pub(crate) fn kept(&self) -> Vec<(u64, tokio_tungstenite::tungstenite::Message)> {
        self.kept.iter().cloned().collect()
    }

    /// The session moves to `link`: the kept replies to the invokes the
    /// client still waits for (`pending`), to send there; the others are
    /// forgotten (the client has them).
    pub(crate) fn resume(
        &mut self,
        link: &Arc<crate::connection::Link>,
        pending: &[u64],
    ) -> Vec<tokio_tungstenite::tungstenite::Message> {
        self.current = Arc::downgrade(link);
        self.kept.retain(|(id, _)| pending.contains(id));
        self.bytes = self.kept.iter().map(|(_, m)| m.len()).sum();
        self.kept.iter().map(|(_, m)| m.clone()).collect()
    }
}

/// A session's replies, shared by its connections.
pub(crate) type SharedReplies = Arc<std::sync::Mutex<Replies>>;

/// How many of the client's events the server has received.
pub(crate) const ACK: &str = "wsm.ack";
/// The client's second frame: a new session, or the one to resume.
pub(crate) const RESUME: &str = "wsm.resume";
/// The server's first frame: the session's token, status and count.
pub(crate) const SESSION: &str = "wsm.session";
