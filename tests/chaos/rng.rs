//! The randomness of every process and of the test.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// xorshift64*: enough randomness for choosing operations, weights and pauses.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        static SEQ_NO: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let salt = SEQ_NO
            .fetch_add(1, SeqCst)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng((t ^ (u64::from(std::process::id()) << 32) ^ salt) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }
}
