//! Session recovery (`docs/recovery.md`): the pieces the negotiated
//! `ws-messaging.resume.1` extension is built from. Work in progress: not
//! yet wired into the server or the client.
#![allow(dead_code)]

pub(crate) mod log;
pub(crate) mod position;
pub(crate) mod route;
pub(crate) mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::adapter::Target;
use crate::EncodedMessage;

use log::{LogLimits, PartitionLog};
use position::{Epoch, Position};

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

/// A recoverable event as logged: its target (for the delivery rule on
/// replay) and its frame.
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) target: Target,
    pub(crate) message: EncodedMessage,
}

/// The partition logs of one node (in memory).
#[derive(Debug)]
pub(crate) struct Logs {
    partitions: u16,
    logs: Vec<PartitionLog<Arc<Logged>>>,
}

impl Logs {
    pub(crate) fn new(config: &RecoveryConfig) -> Self {
        let limits = LogLimits {
            len: config.history_len,
            bytes: config.history_bytes,
            age: config.session_time,
        };
        let partitions = config.partitions.clamp(1, u16::MAX - 1);
        // One epoch for every partition of this node's run.
        let epoch = Epoch::random();
        Logs {
            partitions,
            logs: (0..=partitions)
                .map(|_| PartitionLog::new(epoch.clone(), limits))
                .collect(),
        }
    }

    /// The number of room partitions (everyone's is this number).
    pub(crate) fn partitions(&self) -> u16 {
        self.partitions
    }

    /// Appends an event to each partition of its target; returns the
    /// offsets, by partition.
    pub(crate) fn append(&mut self, target: &Target, message: &EncodedMessage, now: Instant) -> Vec<(u16, u64)> {
        let logged = Arc::new(Logged {
            target: target.clone(),
            message: message.clone(),
        });
        let size = message.as_bytes().len() + target.rooms().iter().map(String::len).sum::<usize>() + 64;
        route::partitions_of(target, self.partitions)
            .into_iter()
            .map(|p| (p, self.logs[usize::from(p)].append(logged.clone(), size, now)))
            .collect()
    }

    /// The position of `offset` in partition `p`.
    pub(crate) fn position(&self, p: u16, offset: u64) -> Position {
        Position {
            partition: p,
            epoch: self.logs[usize::from(p)].epoch().clone(),
            offset,
        }
    }

    /// The offset of partition `p`'s newest event.
    pub(crate) fn top(&self, p: u16) -> u64 {
        self.logs[usize::from(p)].top()
    }

    /// Partition `p`'s log.
    pub(crate) fn log_mut(&mut self, p: u16) -> &mut PartitionLog<Arc<Logged>> {
        &mut self.logs[usize::from(p)]
    }
}

/// The event that gives the position of the recoverable event after it.
pub(crate) const AT: &str = "wsm.at";
/// The client's second frame: a new session, or the one to resume.
pub(crate) const RESUME: &str = "wsm.resume";
/// The server's first frame: the session's token, status and count.
pub(crate) const SESSION: &str = "wsm.session";
