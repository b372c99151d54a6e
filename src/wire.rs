//! The runtime's own wire rules: which names an application may use,
//! which received events stay local, how long a close reason may be, and an
//! argument list as the sequence a codec encodes.

use serde::{Serialize, Serializer};

use crate::protocol::RESERVED_NAMES;
use crate::Args;

/// Events with these names are local-only: received ones are dropped.
pub(crate) const LOCAL_ONLY: [&str; 5] = ["close", "open", "error", "pong", "retry"];

/// Whether `name` can be used for an application's event or procedure.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || RESERVED_NAMES.contains(&name) {
        Err(name.to_string())
    } else {
        Ok(())
    }
}

/// Cuts a close reason to the 123 bytes a close frame can carry, on a
/// character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Serializes an [`Args`] as its sequence (what a codec's `encode_message`
/// receives).
pub(crate) struct AsSeq<'a, A: ?Sized>(pub(crate) &'a A);

impl<A: Args + ?Sized> Serialize for AsSeq<'_, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_args(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_reason;

    #[test]
    fn reasons_are_cut_on_char_boundaries() {
        assert_eq!(truncate_reason("short"), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len(), 122);
    }
}
