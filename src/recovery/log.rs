//! One partition's log of recoverable events, in memory: offsets 1, 2, 3…
//! under one epoch, bounded by count, bytes and age (`docs/recovery.md`,
//! "Sessions and history").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::position::Epoch;

/// How much history a partition keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogLimits {
    /// Entries kept at most.
    pub(crate) len: usize,
    /// Bytes kept at most (the entries' sizes as appended).
    pub(crate) bytes: usize,
    /// No entry older than this.
    pub(crate) age: Duration,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            len: 10_000,
            bytes: 16 << 20,
            age: Duration::from_secs(120),
        }
    }
}

/// One appended event.
#[derive(Debug)]
pub(crate) struct Entry<M> {
    pub(crate) offset: u64,
    pub(crate) at: Instant,
    pub(crate) size: usize,
    pub(crate) item: M,
}

/// Why the entries after an offset cannot all be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    /// Some of them were dropped (count, bytes or age).
    Trimmed,
    /// The offset is past the log's top: not an offset of this epoch.
    Ahead,
}

/// A partition's log.
#[derive(Debug)]
pub(crate) struct PartitionLog<M> {
    epoch: Epoch,
    limits: LogLimits,
    /// The offset of the last entry appended (0: none yet).
    top: u64,
    entries: VecDeque<Entry<M>>,
    bytes: usize,
}

impl<M> PartitionLog<M> {
    pub(crate) fn new(epoch: Epoch, limits: LogLimits) -> Self {
        PartitionLog {
            epoch,
            limits,
            top: 0,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    pub(crate) fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// The offset of the last entry appended (0 before the first).
    pub(crate) fn top(&self) -> u64 {
        self.top
    }

    /// Appends `item` (of `size` bytes) at `now`; returns its offset. Older
    /// entries past the limits are dropped; an item larger than the byte
    /// limit by itself is kept alone until the next append.
    pub(crate) fn append(&mut self, item: M, size: usize, now: Instant) -> u64 {
        self.top += 1;
        self.entries.push_back(Entry {
            offset: self.top,
            at: now,
            size,
            item,
        });
        self.bytes += size;
        self.trim(now);
        self.top
    }

    /// Drops what is past the limits at `now` (never the newest entry for
    /// count or bytes; by age, everything too old).
    pub(crate) fn trim(&mut self, now: Instant) {
        while self.entries.len() > 1 && (self.entries.len() > self.limits.len || self.bytes > self.limits.bytes) {
            self.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > self.limits.age)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.size;
        }
    }

    /// Every entry after `offset`, oldest first, when the log still holds
    /// all of them at `now`.
    pub(crate) fn after(&mut self, offset: u64, now: Instant) -> Result<impl Iterator<Item = &Entry<M>>, Gap> {
        self.trim(now);
        if offset > self.top {
            return Err(Gap::Ahead);
        }
        // The first offset still held (top + 1 when empty).
        let first = self.entries.front().map_or(self.top + 1, |e| e.offset);
        if offset + 1 < first {
            return Err(Gap::Trimmed);
        }
        let skip = (offset + 1 - first) as usize;
        Ok(self.entries.iter().skip(skip))
    }

    /// Entries held and their bytes.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(len: usize, bytes: usize, age: Duration) -> PartitionLog<&'static str> {
        PartitionLog::new(Epoch::random(), LogLimits { len, bytes, age })
    }

    fn items<'a>(entries: impl Iterator<Item = &'a Entry<&'static str>>) -> Vec<(u64, &'static str)> {
        entries.map(|e| (e.offset, e.item)).collect()
    }

    #[test]
    fn offsets_start_at_one_without_gaps_and_read_after_any_held_offset() {
        let now = Instant::now();
        let mut log = log(10, 1000, Duration::from_secs(60));
        assert_eq!(log.top(), 0);
        assert_eq!(items(log.after(0, now).unwrap()), []);
        assert_eq!(log.append("a", 1, now), 1);
        assert_eq!(log.append("b", 1, now), 2);
        assert_eq!(log.append("c", 1, now), 3);
        assert_eq!(items(log.after(0, now).unwrap()), [(1, "a"), (2, "b"), (3, "c")]);
        assert_eq!(items(log.after(2, now).unwrap()), [(3, "c")]);
        assert_eq!(items(log.after(3, now).unwrap()), []);
        assert_eq!(log.after(4, now).err(), Some(Gap::Ahead));
    }

    #[test]
    fn a_gap_past_the_count_or_bytes_is_trimmed_never_partly_read() {
        let now = Instant::now();
        let mut log = log(2, 1000, Duration::from_secs(60));
        for item in ["a", "b", "c"] {
            log.append(item, 1, now);
        }
        assert_eq!(log.held(), (2, 2));
        assert_eq!(log.after(0, now).err(), Some(Gap::Trimmed));
        assert_eq!(items(log.after(1, now).unwrap()), [(2, "b"), (3, "c")]);

        let mut log = log_bytes();
        log.append("big", 6, now);
        log.append("x", 5, now);
        assert_eq!(log.held(), (1, 5), "10 bytes at most");
        assert_eq!(log.after(0, now).err(), Some(Gap::Trimmed));
        assert_eq!(items(log.after(1, now).unwrap()), [(2, "x")]);
        log.append("huge", 50, now);
        assert_eq!(log.held(), (1, 50), "the newest stays, alone");
    }

    fn log_bytes() -> PartitionLog<&'static str> {
        log(100, 10, Duration::from_secs(60))
    }

    #[test]
    fn entries_older_than_the_age_are_gone_at_the_next_read() {
        let start = Instant::now();
        let mut log = log(100, 1000, Duration::from_secs(2));
        log.append("old", 1, start);
        log.append("new", 1, start + Duration::from_secs(2));
        let later = start + Duration::from_secs(3);
        assert_eq!(log.after(0, later).err(), Some(Gap::Trimmed));
        assert_eq!(items(log.after(1, later).unwrap()), [(2, "new")]);
        let much_later = start + Duration::from_secs(10);
        assert_eq!(items(log.after(2, much_later).unwrap()), []);
        assert_eq!(log.after(1, much_later).err(), Some(Gap::Trimmed));
        assert_eq!(log.held(), (0, 0));
    }
}
