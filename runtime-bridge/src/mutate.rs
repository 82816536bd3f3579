//! Deterministic byte mutations for the robustness tests: from valid inputs, drop, replace,
//! insert, repeat and cut bytes, so a parser meets the near misses that real bad input is
//! made of. Seeded, so a failing case can be replayed.

pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    /// xorshift64: fast, and enough for choosing edits.
    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `input` with one to four edits; inserted and replacing bytes come from `alphabet` (the
    /// format's own syntax) half of the time, and are arbitrary otherwise.
    pub fn mutate(&mut self, input: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut bytes = input.to_vec();
        for _ in 0..=self.below(4) {
            let byte = if alphabet.is_empty() || self.next_u64().is_multiple_of(2) {
                self.next_u64() as u8
            } else {
                alphabet[self.below(alphabet.len())]
            };
            let at = self.below(bytes.len());
            match self.below(6) {
                0 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                1 if !bytes.is_empty() => bytes[at] = byte,
                2 => bytes.insert(at.min(bytes.len()), byte),
                3 if !bytes.is_empty() => {
                    let len = self.below(16).min(bytes.len() - at);
                    let slice = bytes[at..at + len].to_vec();
                    bytes.splice(at..at, slice);
                }
                4 => bytes.truncate(at),
                _ if !bytes.is_empty() => bytes[at] ^= 1 << self.below(8),
                _ => bytes.push(byte),
            }
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_mutations() {
        let (mut a, mut b) = (Mutator::new(7), Mutator::new(7));
        for _ in 0..100 {
            assert_eq!(
                a.mutate(b"{\"a\": 1}", b"{}"),
                b.mutate(b"{\"a\": 1}", b"{}")
            );
        }
        let mut m = Mutator::new(8);
        assert!((0..100).any(|_| m.mutate(b"abc", b"") != b"abc"));
    }
}
