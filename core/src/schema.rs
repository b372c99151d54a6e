//! Schema-validating codecs: wrap any codec with per-name validation that
//! runs before dispatch.
//!
//! [`Validated`] delegates every encode and decode to the codec it wraps and
//! adds a rule per event or procedure name. A frame whose arguments break
//! its rule is refused before any handler sees it: the peer gets a
//! `preprocessingError` event with the rule's message, and the connection
//! carries on ([protocol § Validation](crate::protocol#validation)).
//!
//! ```
//! use ws_messaging_core::schema::Validated;
//! use ws_messaging_json::Json;
//!
//! let codec = Validated::new(Json)
//!     // `sum` takes numbers only.
//!     .typed::<Vec<f64>>("sum")
//!     // `greet` takes one non-empty string.
//!     .rule("greet", |codec, args| {
//!         let name: String = ws_messaging_core::Codec::decode_value(codec, args.first().ok_or("one argument")?)?;
//!         if name.is_empty() { Err("the name is empty".into()) } else { Ok(()) }
//!     })
//!     // Any other name is refused.
//!     .refuse_unknown();
//! # let _ = codec;
//! ```
//! A ws-messaging server then runs with it: `ServerBuilder::new(codec)`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{Codec, FrameKind};
use crate::envelope::{Frame, RawEnvelope};
use crate::error::{BoxError, CheckError, CodecError, SharedError};
use crate::payload::FromArgs;
use crate::protocol::RUNTIME_NAMES;
use crate::writer::MapWriter;

/// Checks the raw arguments of one event or procedure; `Err` is what the
/// peer is told is wrong (any error, or a message: `Err("too long".into())`).
pub type Rule<C> = Arc<dyn Fn(&C, &[Bytes]) -> Result<(), BoxError> + Send + Sync>;

/// A codec that validates each frame against the rule of its name.
pub struct Validated<C> {
    inner: C,
    rules: HashMap<String, Rule<C>>,
    refuse_unknown: bool,
}

impl<C: std::fmt::Debug> std::fmt::Debug for Validated<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Validated<C> {
    /// Wraps `inner`; with no rules it accepts everything.
    pub fn new(inner: C) -> Self {
        Validated {
            inner,
            rules: HashMap::new(),
            refuse_unknown: false,
        }
    }

    /// Adds the rule for `name` (replacing an earlier one).
    pub fn rule<F>(mut self, name: &str, rule: F) -> Self
    where
        F: Fn(&C, &[Bytes]) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.rules.insert(name.to_string(), Arc::new(rule));
        self
    }

    /// The arguments of `name` must decode as `A` (a tuple, a `Vec`, ...).
    pub fn typed<A: FromArgs>(self, name: &str) -> Self {
        self.rule(name, |codec, args| {
            A::from_args(codec, args.iter().cloned().collect())
                .map(drop)
                .map_err(Into::into)
        })
    }

    /// Refuses events and calls whose name has no rule (the runtime's own
    /// `ping`, `connect` and `preprocessingError` still pass).
    pub fn refuse_unknown(mut self) -> Self {
        self.refuse_unknown = true;
        self
    }

    /// The wrapped codec.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: Codec> Codec for Validated<C> {
    const FRAME_KIND: FrameKind = C::FRAME_KIND;
    const MAP_WRITER: Option<MapWriter> = C::MAP_WRITER;

    fn encode_value<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.inner.encode_value(value, out)
    }

    fn decode_value<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        self.inner.decode_value(data)
    }

    fn decode_enveloped<T: DeserializeOwned>(&self, data: &[u8]) -> Result<T, CodecError> {
        self.inner.decode_enveloped(data)
    }

    fn encode_message<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
        id: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        self.inner.encode_message(name, args, id, out)
    }

    fn encode_reply<T: Serialize + ?Sized>(
        &self,
        id: u64,
        reply: Result<&T, &serde_json::Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        self.inner.encode_reply(id, reply, out)
    }

    fn encode_raw_reply(&self, id: u64, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.inner.encode_raw_reply(id, raw, out)
    }

    fn decode_error(&self, data: &[u8]) -> Result<serde_json::Value, CodecError> {
        self.inner.decode_error(data)
    }

    fn decode_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        self.inner.decode_envelope(frame)
    }

    fn decode_text_envelope(&self, frame: &Bytes) -> Result<RawEnvelope, CodecError> {
        self.inner.decode_text_envelope(frame)
    }

    fn check(&self, frame: &Frame) -> Result<(), CheckError> {
        self.inner.check(frame)?;
        let Frame::Message { name, args, .. } = frame else {
            return Ok(());
        };
        match self.rules.get(name.as_str()) {
            Some(rule) => rule(&self.inner, args).map_err(|e| CheckError::Arguments {
                name: name.to_string(),
                source: SharedError::new(e),
            }),
            None if self.refuse_unknown && !RUNTIME_NAMES.contains(&name.as_str()) => {
                Err(CheckError::UnknownName(name.to_string()))
            }
            None => Ok(()),
        }
    }
}
