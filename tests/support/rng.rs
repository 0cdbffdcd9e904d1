//! The one pseudo-random generator of the tests (splitmix64): small, stable
//! across crate versions, so a seed always gives the same corpus, fault plan
//! or port order. Not for anything that needs unpredictability.

/// splitmix64 over a 64-bit state.
pub struct Rng(u64);

impl Rng {
    /// A generator for test mail: the seed is mixed with a fixed constant so
    /// that small seeds (1, 2, ...) do not start from small states.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x6D61_696C_6665_6564)
    }

    /// A generator that starts exactly at `state`.
    pub fn from_state(state: u64) -> Self {
        Rng(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}
