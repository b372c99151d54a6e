//! The server-side seam for broadcasts and sends to one connection.
//!
//! A [`Server`](crate::Server) keeps its connections in a [`Registry`] and
//! delivers [`Server::broadcast`](crate::Server::broadcast) and
//! [`Server::send_to`](crate::Server::send_to) through a [`Fanout`]. The
//! default, [`LocalFanout`], delivers to the connections of this process. A
//! multi-node deployment plugs in its own `Fanout` (say, over Redis
//! pub/sub): it publishes the encoded frame to the bus, and each node hands
//! what it receives to `LocalFanout` with its own registry. Dispatch does
//! not change.
//!
//! ```
//! use ws_messaging::fanout::{Fanout, FanoutFuture, LocalFanout, Registry};
//! use ws_messaging::{Codec, EncodedMessage};
//!
//! /// Counts broadcasts, then delivers them locally.
//! struct Counted(std::sync::atomic::AtomicUsize);
//!
//! impl<C: Codec> Fanout<C> for Counted {
//!     fn broadcast<'a>(&'a self, local: &'a Registry<C>, message: EncodedMessage) -> FanoutFuture<'a, usize> {
//!         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         Fanout::<C>::broadcast(&LocalFanout, local, message)
//!     }
//!     fn send_to<'a>(&'a self, local: &'a Registry<C>, id: &'a str, message: EncodedMessage) -> FanoutFuture<'a, bool> {
//!         Fanout::<C>::send_to(&LocalFanout, local, id, message)
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::codec::Codec;
use crate::endpoint::{EncodedMessage, Endpoint};

/// What a [`Fanout`] returns.
pub type FanoutFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The open connections of this process, by id.
pub struct Registry<C: Codec> {
    connections: Mutex<HashMap<String, Endpoint<C>>>,
}

impl<C: Codec> std::fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("connections", &self.len()).finish()
    }
}

impl<C: Codec> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            connections: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: Codec> Registry<C> {
    /// The connection with this id.
    pub fn get(&self, id: &str) -> Option<Endpoint<C>> {
        self.connections.lock().unwrap().get(id).cloned()
    }

    /// Every connection (a snapshot).
    pub fn connections(&self) -> Vec<Endpoint<C>> {
        self.connections.lock().unwrap().values().cloned().collect()
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn insert(&self, id: String, endpoint: Endpoint<C>) {
        self.connections.lock().unwrap().insert(id, endpoint);
    }

    pub(crate) fn remove(&self, id: &str) {
        let mut map = self.connections.lock().unwrap();
        map.remove(id);
        if map.is_empty() && map.capacity() > 1024 {
            *map = HashMap::new();
        }
    }

    /// Calls `f` on every connection, under the registry's lock: `f` must
    /// not wait or touch the registry.
    pub fn for_each(&self, mut f: impl FnMut(&Endpoint<C>)) {
        for endpoint in self.connections.lock().unwrap().values() {
            f(endpoint);
        }
    }
}

/// Delivers a server's broadcasts and sends to one connection.
///
/// An implementation should never wait on one connection: queue with
/// [`Endpoint::queue_encoded`], which closes a slow consumer instead of
/// waiting for it.
pub trait Fanout<C: Codec>: Send + Sync + 'static {
    /// Sends `message` to every connection; resolves to how many it was
    /// queued for.
    fn broadcast<'a>(&'a self, local: &'a Registry<C>, message: EncodedMessage) -> FanoutFuture<'a, usize>;

    /// Sends `message` to the connection `id`; resolves to whether it was
    /// queued.
    fn send_to<'a>(&'a self, local: &'a Registry<C>, id: &'a str, message: EncodedMessage) -> FanoutFuture<'a, bool>;
}

/// Delivers to the connections of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFanout;

impl<C: Codec> Fanout<C> for LocalFanout {
    fn broadcast<'a>(&'a self, local: &'a Registry<C>, message: EncodedMessage) -> FanoutFuture<'a, usize> {
        // Never waits: each connection gets the frame queued, or is closed as
        // a slow consumer if its backlog is past its limits.
        let mut sent = 0;
        local.for_each(|endpoint| {
            if endpoint.queue_encoded(&message).is_ok() {
                sent += 1;
            }
        });
        Box::pin(std::future::ready(sent))
    }

    fn send_to<'a>(&'a self, local: &'a Registry<C>, id: &'a str, message: EncodedMessage) -> FanoutFuture<'a, bool> {
        let sent = local
            .get(id)
            .is_some_and(|endpoint| endpoint.queue_encoded(&message).is_ok());
        Box::pin(std::future::ready(sent))
    }
}
