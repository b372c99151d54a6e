//! Encodes an argument sequence as `count` + length-prefixed values.

use serde::ser::{self, Serialize};
use ws_messaging_core::writer::args::{self, ArgSink};
use ws_messaging_core::CodecError;

use crate::config;

/// Writes `args` (a serde sequence) into `out` as a `u32` count followed by
/// each element's `u32` length and bincode encoding.
pub(crate) fn encode_args<A: Serialize + ?Sized>(args: &A, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let count = args::split(args, &mut LengthPrefixed { out }).map_err(|e| CodecError::encode(e.0))?;
    let count = u32::try_from(count).map_err(|_| CodecError::encode("too many arguments"))?;
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

#[derive(Debug)]
pub(crate) struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Writes each argument as its `u32` length and its bincode encoding.
struct LengthPrefixed<'a> {
    out: &'a mut Vec<u8>,
}

impl ArgSink for LengthPrefixed<'_> {
    type Error = Error;

    fn arg<T: Serialize + ?Sized>(&mut self, _: usize, value: &T) -> Result<(), Error> {
        let len_at = self.out.len();
        self.out.extend_from_slice(&0u32.to_le_bytes());
        bincode::serde::encode_into_std_write(value, &mut *self.out, config()).map_err(|e| Error(e.to_string()))?;
        let len = u32::try_from(self.out.len() - len_at - 4).map_err(|_| Error("argument too large".into()))?;
        self.out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_sequences_are_refused() {
        let mut out = Vec::new();
        assert!(super::encode_args(&5u32, &mut out).is_err());
    }
}
