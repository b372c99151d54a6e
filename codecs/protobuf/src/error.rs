//! The error of the serde shims, turned into a [`CodecError`] at the codec's
//! boundary.

use std::fmt;

use ws_messaging_core::CodecError;

/// What protobuf values can be, for error messages.
pub(crate) const SHAPES: &str = "a protobuf value is bytes: a prost message as `Proto<M>`, \
text as a string, raw bytes as `Vec<u8>`, or nothing as `()`";

/// A serde error of the value shims.
#[derive(Debug)]
pub(crate) struct ValueError(pub(crate) String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

impl ValueError {
    pub(crate) fn into_encode(self) -> CodecError {
        CodecError::encode(self)
    }

    pub(crate) fn into_decode(self) -> CodecError {
        CodecError::decode(self)
    }
}
