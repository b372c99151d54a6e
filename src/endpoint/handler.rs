//! Handler context: procedures and listeners take what they need as
//! arguments, axum-style — their connection ([`Endpoint`]), shared app
//! state ([`State`]), the [`Server`] — before the call's own arguments.
//!
//! A handler is a function of its arguments (anything [`FromArgs`]),
//! optionally preceded by up to three values [`FromEndpoint`]:
//!
//! ```
//! use ws_messaging::{Endpoint, HandlerError, State};
//! use ws_messaging_json::Json;
//!
//! #[derive(Clone)]
//! struct App {
//!     greeting: String,
//! }
//!
//! // A named function works as well as a closure.
//! async fn greet(
//!     endpoint: Endpoint<Json>,
//!     State(app): State<App>,
//!     (name,): (String,),
//! ) -> Result<String, HandlerError> {
//!     Ok(format!("{}, {name} (connection {:?})", app.greeting, endpoint.id()))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ws_messaging::Server::<Json>::builder()
//!     .state(App { greeting: "hello".into() })
//!     .bind("127.0.0.1:0")
//!     .await?;
//! // Once for every connection of the server:
//! server.register("greet", greet)?;
//! server.on_async("say", |endpoint: Endpoint<Json>, (text,): (String,)| async move {
//!     let _ = endpoint.send("said", (text,)).await;
//! });
//! # Ok(()) }
//! ```
//!
//! The connection comes as an argument, so a handler never needs to capture
//! it (no `downgrade()`), and one handler serves every connection: see
//! [`Server::register`] and [`Server::on`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::{ByName, Endpoint, Procedure};
use crate::codec::Codec;
use crate::envelope::ArgList;
use crate::error::HandlerError;
use crate::server::Server;
use crate::FromArgs;

/// A value a handler takes from the connection its call or event came in
/// on, before the call's own arguments: the [`Endpoint`] itself, a
/// [`State`], the [`Server`].
///
/// When it cannot be had (a [`State`] of a type that was never given), a
/// call is answered with the error, and an event's listener is not called
/// (reported as a local [`LocalEvent::Error`](crate::LocalEvent::Error)).
pub trait FromEndpoint<C: Codec>: Sized + Send + 'static {
    /// The value, for a call or event on `endpoint`.
    fn from_endpoint(endpoint: &Endpoint<C>) -> Result<Self, HandlerError>;
}

/// The connection the call or event came in on (on a client: the client's
/// endpoint). Passed as an argument, it needs no `downgrade()`: the handler
/// holds it only while it runs.
impl<C: Codec> FromEndpoint<C> for Endpoint<C> {
    fn from_endpoint(endpoint: &Endpoint<C>) -> Result<Self, HandlerError> {
        Ok(endpoint.clone())
    }
}

/// The server the connection belongs to (server side only: on a client,
/// or once the server is gone, the handler is not called).
impl<C: Codec> FromEndpoint<C> for Server<C> {
    fn from_endpoint(endpoint: &Endpoint<C>) -> Result<Self, HandlerError> {
        endpoint
            .server()
            .ok_or_else(|| HandlerError::new("this handler needs a server, and the connection has none"))
    }
}

/// Shared application state, given once to
/// [`ServerBuilder::state`](crate::ServerBuilder::state) or
/// [`ClientBuilder::state`](crate::ClientBuilder::state), and cloned into
/// each handler that takes it (put what is large or mutable behind an
/// `Arc`). Several types of state may be given; each is looked up by type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<S>(pub S);

impl<C: Codec, S: Clone + Send + Sync + 'static> FromEndpoint<C> for State<S> {
    fn from_endpoint(endpoint: &Endpoint<C>) -> Result<Self, HandlerError> {
        endpoint.state::<S>().map(State).ok_or_else(|| {
            HandlerError::new(format!(
                "no state of type `{}`: give it to the server's or client's builder with `.state(..)`",
                std::any::type_name::<S>()
            ))
        })
    }
}

/// A procedure: an `async` function of the call's arguments (`A:`
/// [`FromArgs`]), optionally preceded by up to three [`FromEndpoint`]
/// values, returning `Result<R, HandlerError>` with `R: Serialize`.
/// Implemented for every such function and closure; `M` only tells the
/// shapes apart.
pub trait Handler<C: Codec, M>: Send + Sync + 'static {
    /// The call's arguments.
    type Args: FromArgs;
    /// The result.
    type Output: Serialize + Send + 'static;
    /// The handler's future.
    type Future: Future<Output = Result<Self::Output, HandlerError>> + Send + 'static;
    /// Runs the handler for a call on `endpoint` (an error when a value it
    /// takes from the endpoint cannot be had).
    fn call(&self, endpoint: &Endpoint<C>, args: Self::Args) -> Result<Self::Future, HandlerError>;
}

/// An event listener: a function of the event's arguments (`A:`
/// [`FromArgs`]), optionally preceded by up to three [`FromEndpoint`]
/// values. Implemented for every such function and closure; `M` only tells
/// the shapes apart.
pub trait Listener<C: Codec, M>: Send + Sync + 'static {
    /// The event's arguments.
    type Args: FromArgs;
    /// Calls the listener for an event on `endpoint`.
    fn call(&self, endpoint: &Endpoint<C>, args: Self::Args) -> Result<(), HandlerError>;
}

/// An asynchronous event listener: as [`Listener`], returning a future that
/// runs in a task of its own.
pub trait AsyncListener<C: Codec, M>: Send + Sync + 'static {
    /// The event's arguments.
    type Args: FromArgs;
    /// The listener's future.
    type Future: Future<Output = ()> + Send + 'static;
    /// Starts the listener for an event on `endpoint`.
    fn call(&self, endpoint: &Endpoint<C>, args: Self::Args) -> Result<Self::Future, HandlerError>;
}

macro_rules! shapes {
    ($($e:ident),*) => {
        impl<C, F, Fut, $($e,)* A, R> Handler<C, ($($e,)* A,)> for F
        where
            C: Codec,
            F: Fn($($e,)* A) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
            $($e: FromEndpoint<C>,)*
            A: FromArgs,
            R: Serialize + Send + 'static,
        {
            type Args = A;
            type Output = R;
            type Future = Fut;
            #[allow(unused_variables)]
            fn call(&self, endpoint: &Endpoint<C>, args: A) -> Result<Fut, HandlerError> {
                Ok(self($($e::from_endpoint(endpoint)?,)* args))
            }
        }

        impl<C, F, $($e,)* A> Listener<C, ($($e,)* A,)> for F
        where
            C: Codec,
            F: Fn($($e,)* A) + Send + Sync + 'static,
            $($e: FromEndpoint<C>,)*
            A: FromArgs,
        {
            type Args = A;
            #[allow(unused_variables)]
            fn call(&self, endpoint: &Endpoint<C>, args: A) -> Result<(), HandlerError> {
                self($($e::from_endpoint(endpoint)?,)* args);
                Ok(())
            }
        }

        impl<C, F, Fut, $($e,)* A> AsyncListener<C, ($($e,)* A,)> for F
        where
            C: Codec,
            F: Fn($($e,)* A) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            $($e: FromEndpoint<C>,)*
            A: FromArgs,
        {
            type Args = A;
            type Future = Fut;
            #[allow(unused_variables)]
            fn call(&self, endpoint: &Endpoint<C>, args: A) -> Result<Fut, HandlerError> {
                Ok(self($($e::from_endpoint(endpoint)?,)* args))
            }
        }
    };
}

shapes!();
shapes!(E1);
shapes!(E1, E2);
shapes!(E1, E2, E3);

/// A listener, its arguments' type erased: `Err` with what went wrong
/// (arguments that do not decode, a value it takes that cannot be had).
pub(crate) type ListenerFn<C> = Arc<dyn Fn(&Endpoint<C>, ArgList) -> Result<(), String> + Send + Sync>;

/// One listener of an event name.
pub(crate) struct Entry<C: Codec> {
    pub(crate) id: u64,
    pub(crate) once: bool,
    pub(crate) call: ListenerFn<C>,
}

impl<C: Codec> Clone for Entry<C> {
    fn clone(&self) -> Self {
        Entry {
            id: self.id,
            once: self.once,
            call: self.call.clone(),
        }
    }
}

/// `listener` with its arguments' type erased.
pub(crate) fn erase<C: Codec, M, L: Listener<C, M>>(listener: L) -> ListenerFn<C> {
    Arc::new(move |endpoint: &Endpoint<C>, args| {
        let args = L::Args::from_args(endpoint.codec(), args).map_err(|e| e.to_string())?;
        listener.call(endpoint, args).map_err(|e| e.to_string())
    })
}

/// An asynchronous listener as a listener that spawns its future.
pub(crate) fn spawning<C: Codec, M, L: AsyncListener<C, M>>(listener: L) -> ListenerFn<C> {
    Arc::new(move |endpoint: &Endpoint<C>, args| {
        let args = L::Args::from_args(endpoint.codec(), args).map_err(|e| e.to_string())?;
        tokio::spawn(listener.call(endpoint, args).map_err(|e| e.to_string())?);
        Ok(())
    })
}

/// A listener for every connection of a server.
pub(crate) fn shared_entry<C: Codec, M, L: Listener<C, M>>(id: u64, listener: L) -> Entry<C> {
    Entry {
        id,
        once: false,
        call: erase(listener),
    }
}

/// An asynchronous listener for every connection of a server.
pub(crate) fn shared_async_entry<C: Codec, M, L: AsyncListener<C, M>>(id: u64, listener: L) -> Entry<C> {
    Entry {
        id,
        once: false,
        call: spawning(listener),
    }
}

/// What every connection of a server (or a client's one endpoint) shares:
/// the procedures and listeners registered once for all of them, and the
/// application state. One `Arc` per connection.
pub(crate) struct Handlers<C: Codec> {
    pub(crate) procedures: RwLock<ByName<Procedure<C>>>,
    pub(crate) listeners: RwLock<ByName<Arc<Vec<Entry<C>>>>>,
    state: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl<C: Codec> Default for Handlers<C> {
    fn default() -> Self {
        Handlers {
            procedures: RwLock::new(ByName::default()),
            listeners: RwLock::new(ByName::default()),
            state: HashMap::new(),
        }
    }
}

impl<C: Codec> Handlers<C> {
    /// Shared handlers with this application state.
    pub(crate) fn with_state(state: HashMap<TypeId, Box<dyn Any + Send + Sync>>) -> Self {
        Handlers {
            state,
            ..Handlers::default()
        }
    }

    pub(crate) fn state<S: Clone + 'static>(&self) -> Option<S> {
        self.state.get(&TypeId::of::<S>())?.downcast_ref::<S>().cloned()
    }
}

/// Application state by type, as the builders gather it.
pub(crate) type StateMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;
