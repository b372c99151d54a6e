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
        self.connections.lock().unwrap().remove(id);
    }
}

/// Delivers a server's broadcasts and sends to one connection.
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
        Box::pin(async move {
            let mut sent = 0;
            for endpoint in local.connections() {
                if endpoint.send_encoded(&message).await.is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    }

    fn send_to<'a>(&'a self, local: &'a Registry<C>, id: &'a str, message: EncodedMessage) -> FanoutFuture<'a, bool> {
        Box::pin(async move {
            match local.get(id) {
                Some(endpoint) => endpoint.send_encoded(&message).await.is_ok(),
                None => false,
            }
        })
    }
}
