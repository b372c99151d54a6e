//! The seam through which the recovery extension's history and sessions
//! live outside one node (`docs/recovery.md`, "Across nodes"): an
//! [`Adapter`](crate::adapter::Adapter) that shares them between nodes
//! (`ws-messaging-redis` keeps them in Redis) returns a [`RecoveryStore`]
//! from [`Adapter::recovery_store`](crate::adapter::Adapter::recovery_store).

use std::time::Duration;

use bytes::Bytes;

use crate::adapter::{AdapterFuture, Target};
use crate::error::AdapterError;
use crate::EncodedMessage;

/// Where a recoverable event was appended: one partition's log, that
/// log's epoch, and the event's offset in it (1, 2, 3… without gaps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The partition.
    pub partition: u16,
    /// The log's epoch: letters, digits, `-`, `_`, 32 at most.
    pub epoch: String,
    /// The event's offset in the log.
    pub offset: u64,
}

/// One recoverable event read back from a partition's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Where it was appended: each partition of its target.
    pub appended: Vec<Appended>,
    /// When it was appended, in microseconds of the store's clock: orders
    /// the events of several partitions on replay.
    pub time: u64,
    /// Who it was sent to.
    pub target: Target,
    /// The event frame, as encoded once for every recipient.
    pub frame: EncodedMessage,
}

/// What [`RecoveryStore::read`] found in a partition's log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRead {
    /// The log's epoch (`None`: the log has no events and no epoch yet, as
    /// after a store that lost its data).
    pub epoch: Option<String>,
    /// The offset of the newest event appended before the read.
    pub top: u64,
    /// The events after the offset asked for, oldest first, as many as
    /// asked for at most. The first one's offset is the next one after the
    /// offset asked for, unless the log was trimmed since.
    pub events: Vec<LoggedEvent>,
}

/// A session as stored: the node that holds its connection (or held it
/// last) and its record, opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The node ([`RecoveryStore::node`]) that wrote it last.
    pub owner: String,
    /// The record.
    pub record: Bytes,
}

/// Recoverable events' logs and sessions shared by every node of a
/// cluster.
///
/// The server calls it; an adapter implements it. Events: the server
/// [`append`](Self::append)s a recoverable event to each of its
/// partitions instead of delivering and publishing it; the store gives it
/// the partition's next offset and hands it, with its position, to the
/// registry of **every** node, this one included, with
/// [`Registry::deliver_logged`](crate::adapter::Registry::deliver_logged),
/// in offset order per partition. Sessions: records under keys the server
/// derives from the session's secret (never the secret itself), written
/// only by the node that owns them.
pub trait RecoveryStore: Send + Sync + 'static {
    /// This node's name in the cluster.
    fn node(&self) -> &str;

    /// Whether `node` is alive (heard from lately).
    fn is_live(&self, node: &str) -> bool;

    /// Appends `frame`, sent to `target`, to the log of each of
    /// `partitions` (the event's offset in each is the log's next), keeping
    /// `history_len` events per log at most and each log for `keep` after
    /// its last append. Must not wait: queues, or refuses (then nothing was
    /// appended). Per caller, order holds.
    fn append(
        &self,
        partitions: &[u16],
        target: &Target,
        frame: &EncodedMessage,
        history_len: usize,
        keep: Duration,
    ) -> Result<(), AdapterError>;

    /// The events of `partition`'s log after `after`, `max` at most (0:
    /// only the epoch and top).
    fn read(&self, partition: u16, after: u64, max: usize) -> AdapterFuture<'_, Result<LogRead, AdapterError>>;

    /// Each partition's epoch and newest offset, without events, the
    /// `partitions` room partitions and everyone's (numbered
    /// `partitions`), in order: where a node starts.
    fn tops(&self, partitions: u16) -> AdapterFuture<'_, Result<Vec<LogRead>, AdapterError>>;

    /// Stores the session `key` as this node's, for `ttl` (while `open`,
    /// refreshed by the store until the session is saved closed or
    /// removed). `claim`: whoever owned it before; otherwise only if this
    /// node owns it still. Queued, in order with appends.
    fn save_session(
        &self,
        key: &str,
        record: Bytes,
        open: bool,
        ttl: Duration,
        claim: bool,
    ) -> Result<(), AdapterError>;

    /// The session `key`, if it lives.
    fn load_session<'a>(&'a self, key: &'a str) -> AdapterFuture<'a, Result<Option<StoredSession>, AdapterError>>;

    /// Forgets the session `key` (its secret was replaced). Queued.
    fn remove_session(&self, key: &str) -> Result<(), AdapterError>;

    /// Asks the other nodes to close the connection `id` (its session
    /// resumed here), with 4003 `session resumed elsewhere`.
    fn release(&self, id: &str) -> Result<(), AdapterError>;
}
