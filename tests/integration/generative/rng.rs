//! A small seeded generator: every case is reproducible from its seed alone.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Gen(StdRng);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            self.0.random_range(lo..hi)
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(p.clamp(0.0, 1.0))
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len())]
    }

    pub fn i64(&mut self) -> i64 {
        self.0.random()
    }

    pub fn u32(&mut self) -> u32 {
        self.0.random()
    }

    pub fn f64_unit(&mut self) -> f64 {
        self.0.random()
    }
}
