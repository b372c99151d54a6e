//! The codec-side errors: what a codec, a rule or the envelope validation
//! fails with.
//!
//! Every error keeps what caused it: a codec error holds the format
//! library's own error (reach it with [`SharedError::downcast_ref`] or
//! [`std::error::Error::source`]).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A boxed error: what a rule or a custom codec returns. Strings convert
/// into it (`"bad value".into()`), and so does any error, through `?`.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// An error kept behind an `Arc`, so that the error holding it stays
/// `Clone`. It displays as the error it wraps, its `source` is the wrapped
/// error's source, and two compare equal when their messages do.
///
/// ```
/// use ws_messaging_core::{Codec, CodecError};
/// let error = ws_messaging_json::Json.decode_value::<u32>(b"\"x\"").unwrap_err();
/// let CodecError::Decode(source) = &error else { panic!("{error:?}") };
/// assert!(source.downcast_ref::<serde_json::Error>().is_some());
/// ```
#[derive(Clone)]
pub struct SharedError(Arc<dyn Error + Send + Sync>);

impl SharedError {
    /// Wraps an error, or a message (`&str`, `String`).
    pub fn new(error: impl Into<BoxError>) -> Self {
        SharedError(Arc::from(error.into()))
    }

    /// The wrapped error.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The wrapped error as a `T`, when it is one.
    pub fn downcast_ref<T: Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for SharedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl Eq for SharedError {}

impl PartialEq for SharedError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

/// A codec could not encode or decode a value. It holds the format
/// library's error (serde_json's, rmp-serde's...) or the codec's own
/// message for what the library does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A value could not be encoded in the codec's format.
    #[error("encode error: {0}")]
    Encode(#[source] SharedError),
    /// Bytes could not be decoded as the codec's format or as the requested type.
    #[error("decode error: {0}")]
    Decode(#[source] SharedError),
}

impl CodecError {
    /// An encode error caused by `error` (an error or a message).
    pub fn encode(error: impl Into<BoxError>) -> Self {
        CodecError::Encode(SharedError::new(error))
    }

    /// A decode error caused by `error` (an error or a message).
    ///
    /// ```
    /// let e = ws_messaging_core::CodecError::decode("trailing bytes");
    /// assert_eq!(e.to_string(), "decode error: trailing bytes");
    /// ```
    pub fn decode(error: impl Into<BoxError>) -> Self {
        CodecError::Decode(SharedError::new(error))
    }

    /// A decode error that says `context` before `error`, and keeps
    /// `error` as its source.
    ///
    /// ```
    /// let utf8 = std::str::from_utf8(b"\xff").unwrap_err();
    /// let e = ws_messaging_core::CodecError::decode_in("the error value is not UTF-8 text", utf8);
    /// assert!(e.to_string().starts_with("decode error: the error value is not UTF-8 text: invalid utf-8"));
    /// ```
    pub fn decode_in(context: impl fmt::Display, error: impl Into<BoxError>) -> Self {
        CodecError::decode(InContext {
            context: context.to_string(),
            source: error.into(),
        })
    }

    /// What caused it.
    pub fn cause(&self) -> &SharedError {
        match self {
            CodecError::Encode(e) | CodecError::Decode(e) => e,
        }
    }
}

/// An error with a word on where it happened.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
struct InContext {
    context: String,
    #[source]
    source: BoxError,
}

/// A schema-validating codec refused a well-formed frame
/// ([`Codec::check`](crate::Codec::check)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The arguments of `name` break its rule.
    #[error("invalid arguments for `{name}`: {source}")]
    Arguments {
        /// The event or procedure name.
        name: String,
        /// What the rule said.
        #[source]
        source: SharedError,
    },
    /// No rule has this name, and unknown names are refused.
    #[error("unknown event or procedure `{0}`")]
    UnknownName(String),
    /// Any other refusal.
    #[error("{0}")]
    Other(#[source] SharedError),
}

impl CheckError {
    /// A refusal with this cause (an error or a message).
    pub fn new(error: impl Into<BoxError>) -> Self {
        CheckError::Other(SharedError::new(error))
    }
}

/// Why a received frame was refused before dispatch.
///
/// The refusal is reported to the peer as a `preprocessingError` event whose
/// argument is the formatted error, and the connection carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// The frame is not valid in the codec's format.
    #[error("{0}")]
    Decode(#[source] CodecError),
    /// The frame decoded but is not a valid envelope.
    #[error("Validation error")]
    Validation,
    /// A schema-validating codec refused the frame.
    #[error("{0}")]
    Check(#[source] CheckError),
}
