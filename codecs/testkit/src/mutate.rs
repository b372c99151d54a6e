//! The mutation run: seeded random edits of valid frames (and random
//! frames), each of which must decode to an error or a valid envelope.

use bytes::Bytes;
use ws_messaging_core::Frame;

use crate::rng::Rng;

/// The settings of a mutation run ([`Kit::mutations`](crate::Kit::mutations)).
///
/// Start from [`Mutations::new`] and set what the format needs: its own
/// byte runs to splice in (length fields claiming far more than the frame
/// holds), its header bytes, an alphabet for text formats, checks of its own.
#[derive(Debug, Clone)]
pub struct Mutations {
    /// Valid frames to mutate.
    pub seeds: Vec<Vec<u8>>,
    /// How many frames to try.
    pub frames: usize,
    /// The generator's seed (the run is reproducible from it).
    pub seed: u64,
    /// Every `random_every`-th frame is random bytes instead of a mutation.
    pub random_every: usize,
    /// Random frames are shorter than this.
    pub random_len: usize,
    /// Random and inserted bytes come from here (empty: any byte).
    pub alphabet: Vec<u8>,
    /// Each mutated frame gets 1 to `max_edits` edits.
    pub max_edits: usize,
    /// Byte runs spliced in at a random place (length claims, tags).
    pub splices: Vec<Vec<u8>>,
    /// Bytes that may replace one byte (type and length headers).
    pub markers: Vec<u8>,
    /// Both the valid and the refused frames must be at least this many.
    pub min_each: usize,
    /// Called with every frame (say, to decode it as a bare value too).
    pub on_frame: fn(&[u8]),
    /// Called with every frame that is a valid envelope, and that envelope.
    pub on_valid: fn(&Bytes, &Frame),
}

impl Mutations {
    /// 100 000 frames from `seeds`, one in four random, up to 3 edits each,
    /// any byte, at least one valid and one refused frame.
    pub fn new(seeds: Vec<Vec<u8>>) -> Self {
        Mutations {
            seeds,
            frames: 100_000,
            seed: 0x2545_f491_4f6c_dd1d,
            random_every: 4,
            random_len: 64,
            alphabet: Vec::new(),
            max_edits: 3,
            splices: Vec::new(),
            markers: Vec::new(),
            min_each: 1,
            on_frame: |_| {},
            on_valid: |_, _| {},
        }
    }

    /// The `i`-th frame of the run.
    pub(crate) fn frame(&self, rng: &mut Rng, i: usize) -> Vec<u8> {
        if i % self.random_every.max(1) == 0 {
            let len = rng.below(self.random_len);
            return (0..len).map(|_| rng.byte_of(&self.alphabet)).collect();
        }
        let mut frame = self.seeds[rng.below(self.seeds.len())].clone();
        for _ in 0..1 + rng.below(self.max_edits) {
            self.edit(rng, &mut frame);
        }
        frame
    }

    /// One random edit: flip a bit, set, insert, delete or duplicate bytes,
    /// truncate, splice a claim in, set a header byte, overwrite four bytes,
    /// append bytes.
    fn edit(&self, rng: &mut Rng, frame: &mut Vec<u8>) {
        let at = rng.below(frame.len());
        match rng.below(10) {
            0 if !frame.is_empty() => frame[at] ^= 1 << rng.below(8),
            1 if !frame.is_empty() => frame[at] = rng.byte_of(&self.alphabet),
            2 => {
                let byte = rng.byte_of(&self.alphabet);
                frame.insert(rng.below(frame.len() + 1), byte);
            }
            3 => {
                let end = (at + 1 + rng.below(8)).min(frame.len());
                frame.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + rng.below(8)).min(frame.len());
                let copy = frame[at.min(end)..end].to_vec();
                frame.splice(at..at, copy);
            }
            5 => frame.truncate(at),
            6 if !self.splices.is_empty() => {
                let claim = &self.splices[rng.below(self.splices.len())];
                let end = (at + rng.below(3)).min(frame.len());
                frame.splice(at.min(end)..end, claim.iter().copied());
            }
            7 if !frame.is_empty() && !self.markers.is_empty() => {
                frame[at] = self.markers[rng.below(self.markers.len())];
            }
            8 if frame.len() >= 4 => {
                let at = rng.below(frame.len() - 3);
                frame[at..at + 4].copy_from_slice(&(rng.next_u64() as u32).to_le_bytes());
            }
            _ => {
                let len = rng.below(8);
                frame.extend((0..len).map(|_| rng.byte_of(&self.alphabet)));
            }
        }
    }
}

/// What a mutation run saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Frames that were valid envelopes.
    pub valid: usize,
    /// Frames refused (a decode or validation error).
    pub refused: usize,
}
