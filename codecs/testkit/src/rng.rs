//! A small seeded random generator (xorshift64): deterministic runs, no
//! dependency.

/// A xorshift64 generator: the same seed gives the same sequence.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (zero, which xorshift cannot leave, is
    /// replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 { 0x2545_f491_4f6c_dd1d } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    /// A random byte of `alphabet`, or any byte when `alphabet` is empty.
    pub fn byte_of(&mut self, alphabet: &[u8]) -> u8 {
        if alphabet.is_empty() {
            self.byte()
        } else {
            alphabet[self.below(alphabet.len())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let first: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..100).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first, (0..100).map(|_| Rng::new(8).next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(0).next_u64(), 0, "a zero seed is replaced");
        assert!((0..1000).all(|_| a.below(10) < 10));
        assert_eq!(a.below(0), 0);
        assert!((0..1000).all(|_| b"ab".contains(&a.byte_of(b"ab"))));
    }
}
