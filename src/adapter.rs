//! Rooms, presence and many nodes: the server's [`Registry`] of
//! connections and the [`Adapter`] seam.
//!
//! A [`Server`](crate::Server) keeps its connections, and the rooms they
//! joined, in a [`Registry`]. Every send to a [`Target`] (everyone, some
//! rooms, minus some rooms) is encoded once and queued, without waiting, on
//! each matching connection of this node; the server's [`Adapter`] then
//! carries it to the other nodes. The default, [`LocalAdapter`], knows no
//! other node. A multi-node adapter (the `ws-messaging-redis` crate)
//! publishes the encoded frame on a bus, and each node hands what it
//! receives to its own registry with [`Registry::deliver`]. Presence
//! ([`Adapter::count`], [`Adapter::ids`]), remote disconnects and
//! broadcasts with acks ([`Adapter::invoke`]) go the same way.
//!
//! Rooms and connection ids never mix: a [`Target`] names rooms
//! ([`Target::with_room`]) and connections by id
//! ([`Target::with_connection`]) apart, so a room that happens to be named
//! like a connection id reaches the members of that room only, and a
//! connection id reaches that connection only, on every node. Only
//! [`except`](Target::except) matches both: it leaves out the members of a
//! room of that name and the connection of that id (leaving out more is
//! never a leak).
//!
//! ```
//! use ws_messaging::adapter::{Adapter, Registry, Target};
//! use ws_messaging::{AdapterError, Codec, EncodedMessage};
//!
//! /// Counts what would go to other nodes.
//! #[derive(Default)]
//! struct Counted(std::sync::atomic::AtomicUsize);
//!
//! impl<C: Codec> Adapter<C> for Counted {
//!     fn publish(&self, _: &Target, _: &EncodedMessage) -> Result<(), AdapterError> {
//!         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//! let server = ws_messaging::Server::<ws_messaging_json::Json>::builder().adapter(Counted::default());
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::codec::Codec;
use crate::endpoint::{EncodedMessage, Endpoint};
use crate::error::AdapterError;
pub use crate::recovery::store::{Appended, LogRead, LoggedEvent, RecoveryStore, StoredSession};

/// What an [`Adapter`]'s asynchronous methods return.
pub type AdapterFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who a send goes to: every connection in any of `rooms`, and every
/// connection named in `connections` (everyone when both are empty), minus
/// the members of any room in `except` and the connections whose id is in
/// `except`.
///
/// A room is only a room: a connection whose id is `x` is not in the room
/// `x`, and a room named like a connection id does not reach that
/// connection. Private sends name the connection
/// ([`Target::connection`], [`Server::send_to`](crate::Server::send_to)).
///
/// ```
/// use ws_messaging::adapter::Target;
///
/// // The members of `lobby` and the connection `c1`, but not `muted`.
/// let target = Target::new(["lobby"], ["muted"]).with_connection("c1");
/// assert_eq!(target.rooms(), ["lobby"]);
/// assert_eq!(target.connections(), ["c1"]);
/// assert_eq!(target.except(), ["muted"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    rooms: Vec<String>,
    connections: Vec<String>,
    except: Vec<String>,
}

impl Target {
    /// Everyone.
    pub fn all() -> Self {
        Target::default()
    }

    /// The members of any of `rooms` (everyone when empty), minus the
    /// members of any of `except` (and the connections whose ids are in
    /// `except`).
    pub fn new<R, E>(rooms: impl IntoIterator<Item = R>, except: impl IntoIterator<Item = E>) -> Self
    where
        R: Into<String>,
        E: Into<String>,
    {
        Target {
            rooms: unique(rooms),
            connections: Vec::new(),
            except: unique(except),
        }
    }

    /// The connection `id` only, whatever rooms exist.
    pub fn connection(id: impl Into<String>) -> Self {
        Target::default().with_connection(id)
    }

    /// Adds the members of `room` (never a connection by its id).
    pub fn with_room(mut self, room: impl Into<String>) -> Self {
        self.add_room(room.into());
        self
    }

    /// Adds the connection `id` (never the members of a room of that
    /// name).
    pub fn with_connection(mut self, id: impl Into<String>) -> Self {
        self.add_connection(id.into());
        self
    }

    /// Adds the connections `ids` (never the members of rooms of those
    /// names); linear in their number, repeats counted once.
    pub fn with_connections<I: Into<String>>(mut self, ids: impl IntoIterator<Item = I>) -> Self {
        let mut all = std::mem::take(&mut self.connections);
        all.extend(ids.into_iter().map(Into::into));
        self.connections = unique(all);
        self
    }

    /// Leaves out the members of the room `room` and the connection whose
    /// id is `room`.
    pub fn without(mut self, room: impl Into<String>) -> Self {
        self.add_except(room.into());
        self
    }

    /// The rooms addressed.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// The connections addressed by id.
    pub fn connections(&self) -> &[String] {
        &self.connections
    }

    /// Whether it addresses everyone (no room, no connection), before
    /// [`except`](Self::except).
    pub fn is_everyone(&self) -> bool {
        self.rooms.is_empty() && self.connections.is_empty()
    }

    /// The rooms, and connection ids, left out.
    pub fn except(&self) -> &[String] {
        &self.except
    }

    pub(crate) fn add_room(&mut self, room: String) {
        if !self.rooms.contains(&room) {
            self.rooms.push(room);
        }
    }

    pub(crate) fn add_connection(&mut self, id: String) {
        if !self.connections.contains(&id) {
            self.connections.push(id);
        }
    }

    pub(crate) fn add_except(&mut self, room: String) {
        if !self.except.contains(&room) {
            self.except.push(room);
        }
    }
}

/// `items` without repeats, in their first order; linear in their number
/// (a target read off the bus may name many rooms).
fn unique<T: Into<String>>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    let all: Vec<String> = items.into_iter().map(Into::into).collect();
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(all.len());
        all.iter().map(|item| seen.insert(item.as_str())).collect()
    };
    all.into_iter()
        .zip(keep)
        .filter_map(|(item, keep)| keep.then_some(item))
        .collect()
}

/// A broadcast invoke, as an [`Adapter`] carries it to other nodes: the
/// invoke frame, encoded once with the invoke id `id` that every recipient
/// answers with, and how long to wait for the answers.
#[derive(Debug, Clone, PartialEq)]
pub struct AckRequest {
    /// The invoke frame (`{name, args, id}`).
    pub frame: EncodedMessage,
    /// The invoke id inside `frame`.
    pub id: u64,
    /// How long each recipient has to answer.
    pub timeout: Duration,
}

/// One recipient's answer to a broadcast invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The recipient's connection id.
    pub connection: String,
    /// What it answered.
    pub outcome: AckOutcome,
}

/// What one recipient of a broadcast invoke answered, still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckOutcome {
    /// The result, in the codec's format.
    Result(Bytes),
    /// The error value, in the codec's format.
    Error(Bytes),
    /// No answer within the timeout.
    Timeout,
    /// The connection closed before it answered (or could not be sent to).
    Closed,
}

/// Where the answers of a broadcast invoke go.
pub type AckSender = mpsc::UnboundedSender<Ack>;

/// The connections of one node, by id, and the rooms they joined.
pub struct Registry<C: Codec> {
    state: Mutex<State<C>>,
    /// With recovery on: held from a recoverable event's append to the
    /// end of its queueing, so that every connection gets a partition's
    /// events in offset order.
    publishing: Mutex<()>,
    /// Recovery is on (the logs exist); fixed at construction.
    recovers: bool,
    /// With recovery on: how much history to keep.
    recovery: Option<crate::recovery::RecoveryConfig>,
    /// The store shared by every node, when the adapter has one.
    store: std::sync::OnceLock<Arc<dyn RecoveryStore>>,
    /// Set once this node knows where the shared logs stand.
    ready: tokio::sync::watch::Sender<bool>,
    /// Told when a session's membership changes (its token): a shared
    /// store keeps it for a resume on another node.
    on_membership: std::sync::OnceLock<MembershipSink>,
    /// Told when a room gains its first local member or loses its last.
    interest: std::sync::OnceLock<Arc<dyn RoomInterest>>,
    /// Held from a membership's snapshot to its sink: the sink sees each
    /// session's changes in order.
    membership_order: Mutex<()>,
}

/// Told the token and membership of a session whose rooms changed.
pub(crate) type MembershipSink = Box<dyn Fn(&Arc<str>, Membership) + Send + Sync>;

struct State<C: Codec> {
    connections: HashMap<Arc<str>, Member<C>>,
    rooms: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Where the partition logs stand, with recovery on.
    history: Option<Box<History>>,
}

/// A connection as any node can list it ([`Broadcast::connections`]
/// decodes it): its id, its rooms, and the info it shows
/// ([`Endpoint::set_info`]) as its node's codec encoded it.
///
/// [`Broadcast::connections`]: crate::Broadcast::connections
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The connection's id.
    pub id: String,
    /// The rooms it is in.
    pub rooms: Vec<String>,
    /// Its info, encoded by the codec; `None` when it set none.
    pub info: Option<Bytes>,
}

struct Member<C: Codec> {
    endpoint: Endpoint<C>,
    rooms: Vec<Arc<str>>,
    /// What the connection shows every node ([`Endpoint::set_info`]), as
    /// the codec encoded it.
    info: Option<Bytes>,
    /// A connection that speaks the recovery extension: where each room's
    /// partition stood when it joined (beside `rooms`), and where its own
    /// id's and everyone's stood when it connected.
    recovery: Option<Box<MemberRecovery>>,
}

#[derive(Debug, Default)]
struct MemberRecovery {
    joined_at: Vec<u64>,
    started: Vec<(u16, u64)>,
    epochs: Vec<(u16, Option<Epoch>)>,
    /// While its missed events are read: the live ones, held back.
    buffer: Option<Vec<Buffered>>,
    /// Its session's token, where a shared store keeps the membership.
    session: Option<Arc<str>>,
}

/// A live event held back while a resume reads what was missed.
type Buffered = (Position, EncodedMessage);

use crate::recovery::position::{partition_of, Epoch, Position};
use crate::recovery::{Failure, History, Logged, Membership};

impl<C: Codec> std::fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Registry")
            .field("connections", &state.connections.len())
            .field("rooms", &state.rooms.len())
            .finish()
    }
}

impl<C: Codec> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            state: Mutex::new(State {
                connections: HashMap::new(),
                rooms: HashMap::new(),
                history: None,
            }),
            publishing: Mutex::new(()),
            recovers: false,
            recovery: None,
            store: std::sync::OnceLock::new(),
            ready: tokio::sync::watch::channel(true).0,
            on_membership: std::sync::OnceLock::new(),
            interest: std::sync::OnceLock::new(),
            membership_order: Mutex::new(()),
        }
    }
}

impl<C: Codec> State<C> {
    /// Calls `f` once on every connection `target` selects.
    fn select(&self, target: &Target, mut f: impl FnMut(&Arc<str>, &Member<C>)) {
        let excluded = |id: &str, member: &Member<C>| {
            target
                .except
                .iter()
                .any(|room| room.as_str() == id || member.rooms.iter().any(|r| **r == **room))
        };
        let mut visit = |id: &Arc<str>, member: &Member<C>| {
            if !excluded(id, member) {
                f(id, member);
            }
        };
        match (target.rooms.as_slice(), target.connections.as_slice()) {
            ([], []) => {
                for (id, member) in &self.connections {
                    visit(id, member);
                }
            }
            ([room], []) => self.room(room, |id, member| visit(id, member)),
            ([], [id]) => {
                if let Some((id, member)) = self.connections.get_key_value(id.as_str()) {
                    visit(id, member);
                }
            }
            (rooms, ids) => {
                let mut seen = HashSet::new();
                for room in rooms {
                    self.room(room, |id, member| {
                        if seen.insert(id.clone()) {
                            visit(id, member);
                        }
                    });
                }
                for id in ids {
                    if let Some((id, member)) = self.connections.get_key_value(id.as_str()) {
                        if seen.insert(id.clone()) {
                            visit(id, member);
                        }
                    }
                }
            }
        }
    }

    /// Calls `f` on every member of the joined room `room` (never the
    /// connection whose id is `room`).
    fn room(&self, room: &str, mut f: impl FnMut(&Arc<str>, &Member<C>)) {
        for id in self.rooms.get(room).into_iter().flatten() {
            if let Some(member) = self.connections.get(id) {
                f(id, member);
            }
        }
    }
}

impl<C: Codec> Registry<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A registry that logs recoverable events (the recovery extension),
    /// in memory until [`use_store`](Self::use_store) gives it a shared
    /// store.
    pub(crate) fn with_recovery(config: &crate::recovery::RecoveryConfig) -> Self {
        let mut registry = Registry::default();
        registry.lock().history = Some(Box::new(History::local(config)));
        registry.recovers = true;
        registry.recovery = Some(config.clone());
        registry
    }

    /// Whether recoverable events are logged here.
    pub(crate) fn recovers(&self) -> bool {
        self.recovers
    }

    /// Logs recoverable events in `store`, shared with the other nodes,
    /// instead of this node's memory; where the logs stand is read in the
    /// background (connections wait for it: [`ready`](Self::ready)).
    pub(crate) fn use_store(self: &Arc<Self>, store: Arc<dyn RecoveryStore>) {
        let Some(config) = self.recovery.clone() else {
            return;
        };
        if self.store.set(store.clone()).is_err() {
            return;
        }
        self.lock().history = Some(Box::new(History::shared(&config)));
        self.ready.send_replace(false);
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                let partitions = match registry.upgrade() {
                    Some(registry) => registry.lock().history.as_ref().map_or(0, |h| h.partitions()),
                    None => return,
                };
                match store.tops(partitions).await {
                    Ok(tops) => {
                        let Some(registry) = registry.upgrade() else { return };
                        {
                            let _order = registry.hold_publishing();
                            let mut state = registry.lock();
                            if let Some(history) = state.history.as_deref_mut() {
                                for (p, top) in (0..=partitions).zip(tops) {
                                    if let Some(epoch) = top.epoch.as_deref().and_then(Epoch::parse) {
                                        history.seen(p, &epoch, top.top);
                                    }
                                }
                            }
                        }
                        registry.ready.send_replace(true);
                        return;
                    }
                    Err(_) => {
                        attempt = attempt.saturating_add(1);
                        let delay = crate::RetryConfig::default().delay(attempt);
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
    }

    /// Resolves once this node knows where the logs stand (at once without
    /// a shared store).
    pub(crate) async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Where the rooms' first joins and last leaves are told (set once).
    pub(crate) fn use_interest(&self, interest: Arc<dyn RoomInterest>) {
        let _ = self.interest.set(interest);
    }

    /// Holds the connection `endpoint`'s writes until `arrived` (what the
    /// interest gave for its join) resolves, 10 s at most; returns what
    /// says it has.
    fn hold_until(&self, endpoint: &Endpoint<C>, arrived: AdapterFuture<'static, ()>) -> Option<oneshot::Receiver<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let link = endpoint.life().link().cloned();
        if let Some(link) = &link {
            link.hold();
        }
        let (done, heard) = oneshot::channel();
        runtime.spawn(async move {
            let _ = tokio::time::timeout(INTEREST_WAIT, arrived).await;
            if let Some(link) = link {
                link.release();
            }
            let _ = done.send(());
        });
        Some(heard)
    }

    /// Tells the interest (under the state's lock, so that it sees joins
    /// and leaves in their order) that a connection joined `room`.
    fn tell_joined(&self, room: &str) -> Option<AdapterFuture<'static, ()>> {
        self.interest.get()?.joined(room)
    }

    /// Tells the interest (under the state's lock) that `room` has no
    /// member here any more.
    fn tell_emptied(&self, room: &str) {
        if let Some(interest) = self.interest.get() {
            interest.emptied(room);
        }
    }

    /// Where a session's membership changes go (set once).
    pub(crate) fn on_membership(&self, sink: MembershipSink) {
        let _ = self.on_membership.set(sink);
    }

    /// Marks the connection `id` as one that speaks the recovery
    /// extension, its own id's and everyone's partitions starting where
    /// they stand now (or at `membership`'s, for a resumed session, whose
    /// rooms it joins again: returned, those it was not in). `buffer`:
    /// live events are held back until [`finish_resume`](Self::finish_resume).
    /// `session`: its token, where a shared store keeps its membership.
    pub(crate) fn set_resumable(
        &self,
        id: &str,
        membership: Option<&Membership>,
        buffer: bool,
        session: Option<Arc<str>>,
    ) -> Vec<Arc<str>> {
        let (restored, waits) = self.set_resumable_locked(id, membership, buffer, session);
        if let Some(endpoint) = waits.first().and_then(|_| self.get(id)) {
            for arrived in waits {
                let _ = self.hold_until(&endpoint, arrived);
            }
        }
        restored
    }

    /// [`set_resumable`](Self::set_resumable) under the lock; also returns
    /// what the joins of the restored rooms wait for.
    fn set_resumable_locked(
        &self,
        id: &str,
        membership: Option<&Membership>,
        buffer: bool,
        session: Option<Arc<str>>,
    ) -> (Vec<Arc<str>>, Vec<AdapterFuture<'static, ()>>) {
        let state = &mut *self.lock();
        let Some(history) = state.history.as_deref() else {
            return (Vec::new(), Vec::new());
        };
        let Some((id, member)) = state.connections.get_key_value(id) else {
            return (Vec::new(), Vec::new());
        };
        let id = id.clone();
        let (started, epochs) = match membership {
            Some(m) => (m.started.clone(), m.epochs.clone()),
            None => {
                let mut epochs = Vec::new();
                let started = [partition_of(&id, history.partitions()), history.partitions()]
                    .into_iter()
                    .map(|p| {
                        let (epoch, top) = history.top(p);
                        Membership::note_epoch(&mut epochs, p, epoch);
                        (p, top)
                    })
                    .collect();
                (started, epochs)
            }
        };
        // Rooms the hook joined already: from where they stand now.
        let mut joined_at = Vec::with_capacity(member.rooms.len());
        let mut epochs = epochs;
        for room in &member.rooms {
            let p = partition_of(room, history.partitions());
            let (epoch, top) = history.top(p);
            Membership::note_epoch(&mut epochs, p, epoch);
            joined_at.push(top);
        }
        let member = state.connections.get_mut(&id).expect("found above");
        member.recovery = Some(Box::new(MemberRecovery {
            joined_at,
            started,
            epochs,
            buffer: buffer.then(Vec::new),
            session,
        }));
        let mut restored = Vec::new();
        let mut waits = Vec::new();
        for (room, _, at) in membership.map(|m| m.rooms.as_slice()).unwrap_or_default() {
            let member = state.connections.get_mut(&id).expect("found above");
            if member.rooms.iter().any(|r| r == room) {
                continue;
            }
            member.rooms.push(room.clone());
            if let Some(recovery) = member.recovery.as_mut() {
                recovery.joined_at.push(*at);
            }
            state.rooms.entry(room.clone()).or_default().insert(id.clone());
            waits.extend(self.tell_joined(room));
            restored.push(room.clone());
        }
        (restored, waits)
    }

    /// A resume that failed: the rooms it `restored` are left, the live
    /// events held back dropped, and its partitions start now (a new
    /// session).
    pub(crate) fn abandon_resume(&self, id: &str, restored: &[Arc<str>], session: Option<Arc<str>>) {
        for room in restored {
            self.leave_quietly(id, room);
        }
        self.set_resumable(id, None, false, session);
    }

    /// Held while a resumed or new recovery session is set up (replay
    /// queued, then connected), so that no recoverable event falls
    /// between what is replayed and what is delivered live.
    pub(crate) fn hold_publishing(&self) -> MutexGuard<'_, ()> {
        self.publishing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the connection `id`, whose session kept `membership`, missed
    /// after the positions the client `presented`: each event with its
    /// position, oldest first (by append time, then partition and
    /// offset), `max` at most (more: `Failure::Limit`). An event reaches
    /// it only through a key it held then (a room joined, its own id,
    /// everyone, each from where it started).
    pub(crate) async fn replay(
        &self,
        id: &str,
        membership: &Membership,
        presented: &[Position],
        max: usize,
    ) -> Result<Vec<(Position, EncodedMessage)>, Failure> {
        let partitions = self.lock().history.as_ref().ok_or(Failure::Epoch)?.partitions();
        // Where each key started: rooms by their joins, the id's and
        // everyone's by the connection's start.
        let mut wanted: Vec<(u16, u64)> = membership.rooms.iter().map(|(_, p, at)| (*p, *at)).collect();
        wanted.extend(membership.started.iter().copied());
        let mut from: Vec<(u16, u64)> = Vec::new();
        for (p, at) in &wanted {
            match from.iter_mut().find(|(q, _)| q == p) {
                Some((_, start)) => *start = (*start).min(*at),
                None => from.push((*p, *at)),
            }
        }
        let mut out: Vec<(u64, u16, u64, EncodedMessage, Epoch)> = Vec::new();
        for (p, joined) in from {
            let recorded = membership.epochs.iter().find(|(q, _)| *q == p).map(|(_, e)| e.clone());
            let (epoch, events) = self
                .read(p, presented, recorded.flatten().as_ref(), joined, max)
                .await?;
            let Some(epoch) = epoch else { continue };
            for logged in events {
                let Some(offset) = logged.offsets.iter().find(|(q, _)| *q == p).map(|(_, o)| *o) else {
                    continue;
                };
                if logged.source_for(id, membership, partitions) == Some(p) {
                    out.push((logged.time, p, offset, logged.message.clone(), epoch.clone()));
                }
            }
            if out.len() > max {
                return Err(Failure::Limit);
            }
        }
        out.sort_by_key(|(time, p, offset, _, _)| (*time, *p, *offset));
        Ok(out
            .into_iter()
            .map(|(_, partition, offset, message, epoch)| {
                (
                    Position {
                        partition,
                        epoch,
                        offset,
                    },
                    message,
                )
            })
            .collect())
    }

    /// Partition `p`'s events after where the session stands: the
    /// client's position when it `presented` one, else where the session
    /// joined (`joined`, taken under `recorded`). Returns the log's epoch
    /// (`None`: no log, nothing to read) and the events.
    async fn read(
        &self,
        p: u16,
        presented: &[Position],
        recorded: Option<&Epoch>,
        joined: u64,
        max: usize,
    ) -> Result<(Option<Epoch>, Vec<Arc<Logged>>), Failure> {
        use crate::recovery::log::Gap;
        let presented = presented.iter().find(|q| q.partition == p);
        let check = |epoch: Option<&Epoch>| -> Result<u64, Failure> {
            // Offsets taken under another incarnation of the log are
            // meaningless in this one.
            if let Some(recorded) = recorded {
                if Some(recorded) != epoch {
                    return Err(Failure::Epoch);
                }
            }
            match presented {
                Some(q) if Some(&q.epoch) != epoch => Err(Failure::Epoch),
                Some(q) => Ok(q.offset.max(joined)),
                None => Ok(if recorded.is_some() { joined } else { 0 }),
            }
        };
        let Some(store) = self.store.get() else {
            let now = std::time::Instant::now();
            let mut state = self.lock();
            let history = state.history.as_deref_mut().ok_or(Failure::Epoch)?;
            let epoch = history.top(p).0.cloned();
            let start = check(epoch.as_ref())?;
            let log = history.log_mut(p).ok_or(Failure::Epoch)?;
            let events = log
                .after(start, now)
                .map_err(|gap| match gap {
                    Gap::Trimmed => Failure::Trimmed,
                    Gap::Ahead => Failure::Epoch,
                })?
                .take(max.saturating_add(1))
                .map(|e| e.item.clone())
                .collect::<Vec<_>>();
            if events.len() > max {
                return Err(Failure::Limit);
            }
            return Ok((epoch, events));
        };
        // The epoch first: where to start depends on it.
        let head = store.read(p, u64::MAX, 0).await.map_err(|_| Failure::Unavailable)?;
        let epoch = head.epoch.as_deref().and_then(Epoch::parse);
        let start = check(epoch.as_ref())?;
        if start > head.top {
            return Err(Failure::Epoch);
        }
        let read = store
            .read(p, start, max.saturating_add(1))
            .await
            .map_err(|_| Failure::Unavailable)?;
        if read.epoch.as_deref() != epoch.as_ref().map(Epoch::as_str) {
            return Err(Failure::Epoch);
        }
        // More than a resume replays (the partition's other rooms count:
        // what is past the read would be missing).
        if read.events.len() > max {
            return Err(Failure::Limit);
        }
        let first = read
            .events
            .first()
            .and_then(|e| e.appended.iter().find(|a| a.partition == p).map(|a| a.offset));
        let trimmed = match first {
            Some(first) => first != start + 1,
            None => read.top > start,
        };
        if trimmed {
            return Err(Failure::Trimmed);
        }
        let events = read
            .events
            .into_iter()
            .map(|e| {
                Arc::new(Logged {
                    offsets: e.appended.iter().map(|a| (a.partition, a.offset)).collect(),
                    target: e.target,
                    message: e.frame,
                    time: e.time,
                })
            })
            .collect();
        Ok((epoch, events))
    }

    /// The end of a resume: the live events held back while it read, minus
    /// those `replayed` already, after them; live delivery starts. Call
    /// with [`hold_publishing`](Self::hold_publishing) held, and queue the
    /// result before anything else.
    pub(crate) fn finish_resume(
        &self,
        id: &str,
        mut replayed: Vec<(Position, EncodedMessage)>,
    ) -> Vec<(Position, EncodedMessage)> {
        let held = {
            let mut state = self.lock();
            state
                .connections
                .get_mut(id)
                .and_then(|m| m.recovery.as_mut())
                .and_then(|r| r.buffer.take())
                .unwrap_or_default()
        };
        for (position, message) in held {
            let covered = replayed.iter().any(|(q, _)| {
                q.partition == position.partition && q.epoch == position.epoch && q.offset >= position.offset
            });
            if !covered {
                replayed.push((position, message));
            }
        }
        replayed
    }

    /// The membership a recovery session keeps of the connection `id`,
    /// if it is `endpoint`.
    pub(crate) fn membership(&self, id: &str, endpoint: &Endpoint<C>) -> Option<Membership> {
        let state = self.lock();
        let member = state.connections.get(id).filter(|m| m.endpoint.same(endpoint))?;
        Self::membership_of(&state, member)
    }

    fn membership_of(state: &State<C>, member: &Member<C>) -> Option<Membership> {
        let history = state.history.as_deref()?;
        let recovery = member.recovery.as_deref()?;
        let rooms = member
            .rooms
            .iter()
            .zip(&recovery.joined_at)
            .map(|(room, at)| (room.clone(), partition_of(room, history.partitions()), *at))
            .collect();
        Some(Membership {
            rooms,
            started: recovery.started.clone(),
            epochs: recovery.epochs.clone(),
        })
    }

    /// Tells the membership sink of the change of `id`'s rooms.
    fn membership_changed(&self, id: &str) {
        let Some(sink) = self.on_membership.get() else {
            return;
        };
        let _order = self.membership_order.lock().unwrap_or_else(|e| e.into_inner());
        let changed = {
            let state = self.lock();
            state.connections.get(id).and_then(|member| {
                let session = member.recovery.as_ref()?.session.clone()?;
                Some((session, Self::membership_of(&state, member)?))
            })
        };
        if let Some((session, membership)) = changed {
            sink(&session, membership);
        }
    }

    /// The connection with this id.
    pub fn get(&self, id: &str) -> Option<Endpoint<C>> {
        self.lock().connections.get(id).map(|m| m.endpoint.clone())
    }

    /// Every connection (a snapshot), authenticated or not yet.
    pub fn connections(&self) -> Vec<Endpoint<C>> {
        self.lock().connections.values().map(|m| m.endpoint.clone()).collect()
    }

    /// How many connections there are, authenticated or not yet.
    pub fn len(&self) -> usize {
        self.lock().connections.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every connection (a snapshot, taken first: `f` runs
    /// without the registry's lock and may use the server).
    pub fn for_each(&self, mut f: impl FnMut(&Endpoint<C>)) {
        for endpoint in self.connections() {
            f(&endpoint);
        }
    }

    pub(crate) fn insert(&self, id: &str, endpoint: Endpoint<C>) {
        let member = Member {
            endpoint,
            rooms: Vec::new(),
            info: None,
            recovery: None,
        };
        self.lock().connections.insert(Arc::from(id), member);
    }

    /// Forgets the connection `id` and its rooms if it is `endpoint` (not
    /// a newer connection that took its id over: a resumed session's).
    pub(crate) fn remove_endpoint(&self, id: &str, endpoint: &Endpoint<C>) {
        self.remove_if(id, |member| member.endpoint.same(endpoint));
    }

    fn remove_if(&self, id: &str, which: impl FnOnce(&Member<C>) -> bool) {
        let mut state = self.lock();
        if !state.connections.get(id).is_some_and(which) {
            return;
        }
        let Some(member) = state.connections.remove(id) else {
            return;
        };
        for room in member.rooms {
            if leave_room(&mut state.rooms, &room, id) {
                self.tell_emptied(&room);
            }
        }
        if state.connections.is_empty() && state.connections.capacity() > 1024 {
            state.connections = HashMap::new();
            state.rooms = HashMap::new();
        }
    }

    /// Puts the connection `id` in `room`; false when there is no such
    /// connection. Joining twice is joining once. Any name is a room's
    /// only: a room named like a connection id does not reach that
    /// connection's private sends, which name it by id.
    pub fn join(&self, id: &str, room: &str) -> bool {
        self.join_heard(id, room).0
    }

    /// Puts every connection of this node that `target` selects in `room`
    /// and resolves once the room's traffic from the other nodes reaches
    /// them (10 s at most; at once without an adapter that routes rooms by
    /// interest). Returns how many it selected.
    pub async fn join_selected(&self, target: &Target, room: &str) -> usize {
        let ids = self.ids(target);
        let mut heard = Vec::new();
        for id in &ids {
            if let (true, Some(subscribed)) = self.join_heard(id, room) {
                heard.push(subscribed);
            }
        }
        for subscribed in heard {
            let _ = tokio::time::timeout(INTEREST_WAIT, subscribed).await;
        }
        ids.len()
    }

    /// Takes every connection of this node that `target` selects out of
    /// `room`; returns how many it selected.
    pub fn leave_selected(&self, target: &Target, room: &str) -> usize {
        let ids = self.ids(target);
        for id in &ids {
            self.leave(id, room);
        }
        ids.len()
    }

    /// [`join`](Self::join), and what says when its room's traffic reaches
    /// this node if it gave the room its first member here.
    fn join_heard(&self, id: &str, room: &str) -> (bool, Option<oneshot::Receiver<()>>) {
        let arrived;
        let endpoint;
        {
            let state = &mut *self.lock();
            let Some(id) = state.connections.get_key_value(id).map(|(id, _)| id.clone()) else {
                return (false, None);
            };
            let Some(member) = state.connections.get_mut(&id) else {
                return (false, None);
            };
            if member.rooms.iter().any(|r| &**r == room) {
                return (true, None);
            }
            if let (Some(recovery), Some(history)) = (member.recovery.as_mut(), state.history.as_deref()) {
                // Whatever is appended from now on reaches it, live or
                // replayed.
                let p = partition_of(room, history.partitions());
                let (epoch, top) = history.top(p);
                Membership::note_epoch(&mut recovery.epochs, p, epoch);
                recovery.joined_at.push(top);
            }
            let room: Arc<str> = state
                .rooms
                .get_key_value(room)
                .map_or_else(|| Arc::from(room), |(r, _)| r.clone());
            member.rooms.push(room.clone());
            endpoint = member.endpoint.clone();
            state.rooms.entry(room.clone()).or_default().insert(id);
            arrived = self.tell_joined(&room);
        }
        let heard = arrived.and_then(|arrived| self.hold_until(&endpoint, arrived));
        self.membership_changed(id);
        (true, heard)
    }

    /// Takes the connection `id` out of `room`; false when there is no
    /// such connection. Leaving a room never joined does nothing.
    pub fn leave(&self, id: &str, room: &str) -> bool {
        match self.leave_quietly(id, room) {
            Some(true) => {
                self.membership_changed(id);
                true
            }
            Some(false) => true,
            None => false,
        }
    }

    /// [`leave`](Self::leave) without telling the membership sink: whether
    /// it left (`None`: no such connection).
    fn leave_quietly(&self, id: &str, room: &str) -> Option<bool> {
        let state = &mut *self.lock();
        let member = state.connections.get_mut(id)?;
        let Some(at) = member.rooms.iter().position(|r| &**r == room) else {
            return Some(false);
        };
        let room = member.rooms.swap_remove(at);
        if let Some(recovery) = member.recovery.as_mut() {
            recovery.joined_at.swap_remove(at);
        }
        if leave_room(&mut state.rooms, &room, id) {
            self.tell_emptied(&room);
        }
        Some(true)
    }

    /// The rooms the connection `id` joined (not its own id).
    pub fn rooms_of(&self, id: &str) -> Vec<String> {
        self.lock()
            .connections
            .get(id)
            .map(|m| m.rooms.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    /// The rooms with at least one member on this node.
    pub fn rooms(&self) -> Vec<String> {
        self.lock().rooms.keys().map(|r| r.to_string()).collect()
    }

    /// Queues `message` on every authenticated connection `target` selects,
    /// without waiting (a connection whose backlog is past its limits is
    /// closed as a slow consumer instead: see
    /// [`Endpoint::queue_encoded`]). Returns how many it was queued for.
    ///
    /// The recipients are chosen under the registry's lock and queued on
    /// after it is released, so a send hook (or anything a send runs) may
    /// use the server. Two deliveries made one after the other reach every
    /// connection in that order.
    pub fn deliver(&self, target: &Target, message: &EncodedMessage) -> usize {
        if self.recovers() && self.store.get().is_none() {
            let _order = self.hold_publishing();
            let logged = self
                .lock()
                .history
                .as_deref_mut()
                .and_then(|h| h.append_local(target, message, std::time::Instant::now()));
            if let Some(appended) = logged {
                return self.deliver_positions(&appended, target, message);
            }
        }
        let mut recipients = Vec::new();
        self.lock()
            .select(target, |_, member| recipients.push(member.endpoint.clone()));
        recipients
            .iter()
            .filter(|endpoint| endpoint.queue_encoded(message).is_ok())
            .count()
    }

    /// Sends a recoverable event through the shared store, when there is
    /// one: it is appended to its partitions and comes back to every node
    /// (this one too) through [`deliver_logged`](Self::deliver_logged).
    /// Returns how many of this node's connections it addresses now;
    /// `None` without a shared store.
    pub(crate) fn publish_logged(
        &self,
        target: &Target,
        message: &EncodedMessage,
    ) -> Option<Result<usize, AdapterError>> {
        let store = self.store.get()?;
        let config = self.recovery.as_ref()?;
        let partitions = self.lock().history.as_deref()?.partitions();
        let parts = crate::recovery::route::partitions_of(target, partitions);
        Some(
            store
                .append(&parts, target, message, config.history_len, config.session_time)
                .map(|()| self.count(target)),
        )
    }

    /// Delivers a recoverable event that a shared store logged at
    /// `appended` (each partition of its target, with the log's epoch and
    /// the event's offset) to the connections of this node `target`
    /// selects: a connection that speaks the recovery extension gets it
    /// after its position, from the one partition the delivery rule names
    /// for it. A store calls this on every node, in offset order per
    /// partition. Returns how many it was queued for; an `appended` with a
    /// malformed epoch delivers nothing.
    pub fn deliver_logged(&self, appended: &[Appended], target: &Target, message: &EncodedMessage) -> usize {
        let mut positions = Vec::with_capacity(appended.len());
        for a in appended {
            let Some(epoch) = Epoch::parse(&a.epoch) else {
                return 0;
            };
            positions.push((a.partition, epoch, a.offset));
        }
        let _order = self.hold_publishing();
        if let Some(history) = self.lock().history.as_deref_mut() {
            for (p, epoch, offset) in &positions {
                history.seen(*p, epoch, *offset);
            }
        }
        self.deliver_positions(&positions, target, message)
    }

    /// Queues a logged event on the connections `target` selects, with
    /// `wsm.at` before it for those that speak the extension. Call with
    /// [`hold_publishing`](Self::hold_publishing) held.
    fn deliver_positions(&self, appended: &[(u16, Epoch, u64)], target: &Target, message: &EncodedMessage) -> usize {
        use crate::recovery::route::source_of;
        let mut recipients: Vec<(Endpoint<C>, Option<Position>)> = Vec::new();
        {
            let state = &mut *self.lock();
            let partitions = state.history.as_deref().map_or(0, |h| h.partitions());
            let mut held: Vec<(Arc<str>, Buffered)> = Vec::new();
            state.select(target, |id, member| {
                let Some(recovery) = member.recovery.as_ref() else {
                    recipients.push((member.endpoint.clone(), None));
                    return;
                };
                // From the one partition the rule names, or not at all.
                let Some(p) = source_of(target, id, &member.rooms, partitions) else {
                    return;
                };
                let Some((_, epoch, offset)) = appended.iter().find(|(q, _, _)| *q == p) else {
                    return;
                };
                let position = Position {
                    partition: p,
                    epoch: epoch.clone(),
                    offset: *offset,
                };
                if recovery.buffer.is_some() {
                    held.push((id.clone(), (position, message.clone())));
                } else {
                    recipients.push((member.endpoint.clone(), Some(position)));
                }
            });
            for (id, buffered) in held {
                if let Some(buffer) = state
                    .connections
                    .get_mut(&id)
                    .and_then(|m| m.recovery.as_mut())
                    .and_then(|r| r.buffer.as_mut())
                {
                    buffer.push(buffered);
                }
            }
        }
        let mut delivered = 0;
        // One `wsm.at` frame per partition, encoded once.
        let mut ats: Vec<(Position, EncodedMessage)> = Vec::new();
        for (endpoint, position) in &recipients {
            let queued = match position {
                None => endpoint.queue_encoded(message),
                Some(position) => {
                    let at = match ats.iter().find(|(p, _)| p == position) {
                        Some((_, at)) => at.clone(),
                        None => {
                            match EncodedMessage::encode(endpoint.codec(), crate::recovery::AT, (position.to_string(),))
                            {
                                Ok(at) => {
                                    ats.push((position.clone(), at.clone()));
                                    at
                                }
                                Err(_) => continue,
                            }
                        }
                    };
                    endpoint.queue_tagged(&at, message)
                }
            };
            delivered += usize::from(queued.is_ok());
        }
        delivered
    }

    /// The authenticated connections `target` selects.
    pub fn members(&self, target: &Target) -> Vec<Endpoint<C>> {
        let mut out = Vec::new();
        self.lock().select(target, |_, member| {
            if member.endpoint.is_connected() {
                out.push(member.endpoint.clone());
            }
        });
        out
    }

    /// Sets (or, with `None`, clears) the info the connection `id` shows
    /// every node; false when it is not one of this node's.
    pub(crate) fn set_info(&self, id: &str, info: Option<Bytes>) -> bool {
        match self.lock().connections.get_mut(id) {
            Some(member) => {
                member.info = info;
                true
            }
            None => false,
        }
    }

    /// The info the connection `id` shows, as encoded.
    pub(crate) fn info(&self, id: &str) -> Option<Bytes> {
        self.lock().connections.get(id).and_then(|m| m.info.clone())
    }

    /// The authenticated connections `target` selects: id, rooms and
    /// info, as encoded.
    pub fn describe(&self, target: &Target) -> Vec<Described> {
        let mut out = Vec::new();
        self.lock().select(target, |id, member| {
            if member.endpoint.is_connected() {
                out.push(Described {
                    id: id.to_string(),
                    rooms: member.rooms.iter().map(|r| r.to_string()).collect(),
                    info: member.info.clone(),
                });
            }
        });
        out
    }

    /// The ids of the authenticated connections `target` selects.
    pub fn ids(&self, target: &Target) -> Vec<String> {
        let mut out = Vec::new();
        self.lock().select(target, |id, member| {
            if member.endpoint.is_connected() {
                out.push(id.to_string());
            }
        });
        out
    }

    /// How many authenticated connections `target` selects.
    pub fn count(&self, target: &Target) -> usize {
        let mut n = 0;
        self.lock().select(target, |_, member| {
            if member.endpoint.is_connected() {
                n += 1;
            }
        });
        n
    }

    /// Closes every connection `target` selects with `code` and `reason`;
    /// returns how many.
    pub fn disconnect(&self, target: &Target, code: u16, reason: &str) -> usize {
        let members = self.members(target);
        for endpoint in &members {
            endpoint.close(code, reason);
        }
        members.len()
    }

    /// Sends the invoke `request.frame` to every authenticated connection
    /// `target` selects and reports each answer to `acks` as it comes
    /// (a timeout or a closed connection included), then drops `acks`.
    /// Returns how many connections it was sent to. Needs a tokio runtime.
    ///
    /// Once the receiver of `acks` is dropped, the invoke is forgotten on
    /// every connection that has not answered yet: a late answer is then
    /// ignored, and nothing is kept for it.
    pub fn invoke(&self, target: &Target, request: &AckRequest, acks: AckSender) -> usize {
        let (invoke_id, timeout) = (request.id, request.timeout);
        let waiting = FuturesUnordered::new();
        for endpoint in self.members(target) {
            let Some(id) = endpoint.id().map(str::to_string) else {
                continue;
            };
            match endpoint.push_invoke(&request.frame, invoke_id) {
                Some((link, answer)) => {
                    // Forgets the pending entry when the wait ends, or when
                    // it is dropped unfinished (nobody listens any more).
                    let pending = Forget { link, id: invoke_id };
                    waiting.push(async move {
                        let outcome = match tokio::time::timeout(timeout, answer).await {
                            Ok(Ok(Ok(Ok(result)))) => AckOutcome::Result(result),
                            Ok(Ok(Ok(Err(error)))) => AckOutcome::Error(error),
                            Ok(_) => AckOutcome::Closed,
                            Err(_) => AckOutcome::Timeout,
                        };
                        drop(pending);
                        Ack {
                            connection: id,
                            outcome,
                        }
                    });
                }
                None => {
                    let _ = acks.send(Ack {
                        connection: id,
                        outcome: AckOutcome::Closed,
                    });
                }
            }
        }
        let sent = waiting.len();
        if sent > 0 {
            tokio::spawn(async move {
                let mut waiting = waiting;
                loop {
                    tokio::select! {
                        ack = waiting.next() => match ack {
                            Some(ack) => {
                                if acks.send(ack).is_err() {
                                    break;
                                }
                            }
                            None => break,
                        },
                        // Nobody listens any more: dropping the waits
                        // forgets their pending entries now, not at their
                        // timeout.
                        () = acks.closed() => break,
                    }
                }
            });
        }
        sent
    }
}

/// A broadcast invoke's pending entry on one link, forgotten when this is
/// dropped.
struct Forget {
    link: Arc<crate::connection::Link>,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.link.forget(self.id);
    }
}

/// Takes `id` out of `room`'s members; whether that left the room empty
/// (it is then forgotten).
fn leave_room(rooms: &mut HashMap<Arc<str>, HashSet<Arc<str>>>, room: &str, id: &str) -> bool {
    if let Some(members) = rooms.get_mut(room) {
        members.remove(id);
        if members.is_empty() {
            rooms.remove(room);
            return true;
        }
    }
    false
}

/// Carries a server's sends, presence queries and broadcast invokes to the
/// other nodes of a cluster.
///
/// The server delivers to its own connections itself; an adapter only
/// deals with the other nodes. Every method has a default that knows no
/// other node, so [`LocalAdapter`] implements none. A method that sends
/// ([`publish`](Self::publish), [`disconnect`](Self::disconnect),
/// [`invoke`](Self::invoke)) must not wait: it queues, or refuses with an
/// [`AdapterError`] (the server then sends nothing at all).
///
/// Per sender, order must hold: two `publish` calls from one thread reach
/// every other node in the order they were made.
pub trait Adapter<C: Codec>: Send + Sync + 'static {
    /// Called once, when the server starts, with its registry: where the
    /// adapter delivers what other nodes send ([`Registry::deliver`]) and
    /// answers their queries.
    fn start(&self, local: Arc<Registry<C>>) {
        let _ = local;
    }

    /// Sends `message` to the connections `target` selects on the other
    /// nodes.
    fn publish(&self, target: &Target, message: &EncodedMessage) -> Result<(), AdapterError> {
        let _ = (target, message);
        Ok(())
    }

    /// Closes the connections `target` selects on the other nodes.
    fn disconnect(&self, target: &Target, code: u16, reason: &str) -> Result<(), AdapterError> {
        let _ = (target, code, reason);
        Ok(())
    }

    /// How many authenticated connections `target` selects on the other
    /// live nodes.
    fn count<'a>(&'a self, target: &'a Target) -> AdapterFuture<'a, Result<usize, AdapterError>> {
        let _ = target;
        Box::pin(std::future::ready(Ok(0)))
    }

    /// The ids of the authenticated connections `target` selects on the
    /// other live nodes.
    fn ids<'a>(&'a self, target: &'a Target) -> AdapterFuture<'a, Result<Vec<String>, AdapterError>> {
        let _ = target;
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// The authenticated connections `target` selects on the other live
    /// nodes, with their rooms and info ([`Registry::describe`] on each).
    fn describe<'a>(&'a self, target: &'a Target) -> AdapterFuture<'a, Result<Vec<Described>, AdapterError>> {
        let _ = target;
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Puts the connections `target` selects on the other live nodes in
    /// `room`; resolves once each node has done so and hears the room's
    /// traffic. Returns how many connections they selected.
    fn join<'a>(&'a self, target: &'a Target, room: &'a str) -> AdapterFuture<'a, Result<usize, AdapterError>> {
        let _ = (target, room);
        Box::pin(std::future::ready(Ok(0)))
    }

    /// Takes the connections `target` selects on the other live nodes out
    /// of `room`. Returns how many connections they selected.
    fn leave<'a>(&'a self, target: &'a Target, room: &'a str) -> AdapterFuture<'a, Result<usize, AdapterError>> {
        let _ = (target, room);
        Box::pin(std::future::ready(Ok(0)))
    }

    /// Sends a broadcast invoke to the connections `target` selects on the
    /// other live nodes; their answers go to `acks`, which the adapter
    /// drops once every node has answered (or at the request's timeout,
    /// with some margin).
    fn invoke(&self, target: &Target, request: &AckRequest, acks: AckSender) -> Result<(), AdapterError> {
        let _ = (target, request, acks);
        Ok(())
    }

    /// Where this node's rooms are told as they gain their first local
    /// member and lose their last: an adapter that routes room traffic by
    /// interest (every node hears only the rooms its connections are in)
    /// subscribes accordingly. `None` (the default): every node hears
    /// every send.
    fn room_interest(&self) -> Option<Arc<dyn RoomInterest>> {
        None
    }

    /// The store in which this adapter shares the recovery extension's
    /// history and sessions between nodes, if it has one
    /// (`docs/recovery.md`, "Across nodes"). Without one, a server with
    /// recovery on keeps them in its own memory: a client then resumes on
    /// the same node only.
    fn recovery_store(&self) -> Option<Arc<dyn RecoveryStore>> {
        None
    }

    /// Called when the server closes: leave the cluster.
    fn close(&self) -> AdapterFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Told, by a node's [`Registry`], which rooms have members on this node
/// ([`Adapter::room_interest`]). Both methods are called under the
/// registry's lock, in the order of the joins and leaves: they must not
/// wait, nor call the registry.
pub trait RoomInterest: Send + Sync + 'static {
    /// A connection of this node joined `room`. The future, if any,
    /// resolves once the room's traffic from the other nodes reaches this
    /// node (`None`: it does already): until then (10 s at most) the
    /// joining connection's outgoing frames wait, so that whatever is sent
    /// to the room after it hears the reply to its join reaches it.
    fn joined(&self, room: &str) -> Option<AdapterFuture<'static, ()>>;

    /// `room` has no member on this node any more.
    fn emptied(&self, room: &str);
}

/// How long a join waits for its room's traffic to reach this node.
const INTEREST_WAIT: Duration = Duration::from_secs(10);

/// Knows no other node: the server's sends reach its own connections only.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAdapter;

impl<C: Codec> Adapter<C> for LocalAdapter {}

/// An answer to a pending invoke registered by [`Endpoint::push_invoke`].
pub(crate) type Answer = oneshot::Receiver<crate::connection::Settle>;
