//! Positions in the partitioned event log of the recovery extension
//! (`docs/recovery.md`, "Positions"): which partition a target key is in,
//! and the text forms `P:EPOCH:OFFSET` (one position, the argument of
//! `wsm.at`) and comma-separated lists of them (`wsm.resume`).

use std::fmt;

/// The number of room partitions unless configured otherwise; the
/// partition numbered `partitions` holds the events to everyone.
pub(crate) const DEFAULT_PARTITIONS: u16 = 64;

/// The most positions a `wsm.resume` may list: one per partition and the
/// everyone partition.
pub(crate) const MAX_POSITIONS: usize = u16::MAX as usize + 1;

/// The longest epoch text accepted.
pub(crate) const MAX_EPOCH_LEN: usize = 32;

/// FNV-1a, 64 bits, over the key's UTF-8 bytes: the same partition for a
/// room on every node, whatever its build.
pub(crate) fn fnv1a64(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The partition of a room or a connection id among `partitions` (at least
/// one).
pub(crate) fn partition_of(key: &str, partitions: u16) -> u16 {
    (fnv1a64(key) % u64::from(partitions.max(1))) as u16
}

/// Where an event stands in its partition's log: the partition, the
/// incarnation of that log (its epoch) and the event's offset (1, 2, 3…).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Position {
    pub(crate) partition: u16,
    pub(crate) epoch: Epoch,
    pub(crate) offset: u64,
}

/// The name of one incarnation of a partition's log: letters, digits, `-`
/// and `_`, 1 to [`MAX_EPOCH_LEN`] of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Epoch(Box<str>);

impl Epoch {
    /// A fresh epoch: 64 random bits, 16 hexadecimal digits.
    pub(crate) fn random() -> Self {
        Epoch(format!("{:016x}", rand::random::<u64>()).into())
    }

    /// Stands for offsets taken under two epochs of one partition: never a
    /// log's epoch (a log's is never `-`), so it matches none.
    pub(crate) fn lost() -> Self {
        Epoch("-".into())
    }

    /// `text` when it is a well-formed epoch.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let ok = (1..=MAX_EPOCH_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Epoch(text.into()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.partition, self.epoch.as_str(), self.offset)
    }
}

/// Why a position's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PositionError {
    /// Not `P:EPOCH:OFFSET`.
    #[error("a position is PARTITION:EPOCH:OFFSET, not `{0}`")]
    Shape(String),
    /// More positions than partitions.
    #[error("more than {MAX_POSITIONS} positions")]
    TooMany,
    /// Two positions for one partition.
    #[error("partition {0} listed twice")]
    Repeated(u16),
}

impl Position {
    /// Parses `P:EPOCH:OFFSET`.
    pub(crate) fn parse(text: &str) -> Result<Self, PositionError> {
        let shape = || PositionError::Shape(text.chars().take(64).collect());
        let mut parts = text.split(':');
        let (Some(p), Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        let partition = digits(p).ok_or_else(shape)?;
        let partition = u16::try_from(partition).map_err(|_| shape())?;
        let epoch = Epoch::parse(epoch).ok_or_else(shape)?;
        let offset = digits(offset).ok_or_else(shape)?;
        Ok(Position {
            partition,
            epoch,
            offset,
        })
    }

    /// Parses a comma-separated list (empty text: none), one position per
    /// partition at most.
    pub(crate) fn parse_list(text: &str) -> Result<Vec<Self>, PositionError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<Position> = Vec::new();
        for item in text.split(',') {
            if out.len() == MAX_POSITIONS {
                return Err(PositionError::TooMany);
            }
            let position = Position::parse(item)?;
            if out.iter().any(|p| p.partition == position.partition) {
                return Err(PositionError::Repeated(position.partition));
            }
            out.push(position);
        }
        Ok(out)
    }

    /// The comma-separated text of `positions`.
    pub(crate) fn format_list<'a>(positions: impl IntoIterator<Item = &'a Position>) -> String {
        let mut out = String::new();
        for (i, position) in positions.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&position.to_string());
        }
        out
    }
}

/// A decimal number without sign or leading `+`, at most 20 digits,
/// that fits in a `u64`.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_key_has_one_partition_below_the_count() {
        for key in ["lobby", "room:42", "", "é"] {
            let p = partition_of(key, DEFAULT_PARTITIONS);
            assert!(p < DEFAULT_PARTITIONS);
            assert_eq!(p, partition_of(key, DEFAULT_PARTITIONS));
        }
        assert_eq!(partition_of("anything", 0), 0, "no partitions is one");
    }

    #[test]
    fn positions_round_trip_through_their_text() {
        let epoch = Epoch::random();
        assert_eq!(epoch.as_str().len(), 16);
        let list = vec![
            Position {
                partition: 3,
                epoch: epoch.clone(),
                offset: 17,
            },
            Position {
                partition: 64,
                epoch,
                offset: u64::MAX,
            },
        ];
        let text = Position::format_list(&list);
        assert_eq!(Position::parse_list(&text).unwrap(), list);
        assert_eq!(Position::parse_list("").unwrap(), Vec::new());
    }

    #[test]
    fn malformed_positions_are_refused_with_their_text() {
        for bad in [
            "3:e",
            "3:e:1:2",
            "x:e:1",
            "3::1",
            "3:e:-1",
            "3:e:+1",
            "70000:e:1",
            "3:e:18446744073709551616",
            "3:e!:1",
            " 3:e:1",
        ] {
            assert!(matches!(Position::parse(bad), Err(PositionError::Shape(_))), "{bad}");
        }
        let long_epoch = format!("1:{}:1", "a".repeat(MAX_EPOCH_LEN + 1));
        assert!(Position::parse(&long_epoch).is_err());
        assert_eq!(Position::parse_list("1:e:1,1:e:2"), Err(PositionError::Repeated(1)));
    }
}
