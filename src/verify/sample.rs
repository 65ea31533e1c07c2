//! Seeded uniform sampling: a fixed-size sample of a sequence read once (reservoir), and of
//! the row positions of a file whose length is known (Floyd's algorithm).
//!
//! The generator is SplitMix64, written out here rather than taken from a library: the
//! seed a report prints must pick the same sample in every later release, and a library's
//! generator may change its output between versions.

use std::collections::BTreeSet;

/// SplitMix64 (Steele, Lea, Flood 2014): 64-bit state, full period, every seed usable.
#[derive(Debug, Clone)]
pub struct SampleRng {
    state: u64,
}

impl SampleRng {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound` > 0), without modulo bias: draws that fall
    /// in the incomplete last block of 2^64 are drawn again.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let bound = bound.max(1);
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let draw = self.next_u64();
            if draw < zone {
                return draw % bound;
            }
        }
    }

    /// A fresh seed for a run that was not given one.
    pub fn fresh_seed() -> u64 {
        rand::random::<u64>()
    }
}

/// `k` distinct positions out of `0..n`, each `k`-subset equally likely (Floyd's algorithm:
/// `k` draws, whatever `n`). All of them when `k >= n`.
pub fn positions(n: u64, k: u64, rng: &mut SampleRng) -> BTreeSet<u64> {
    if k >= n {
        return (0..n).collect();
    }
    let mut chosen = BTreeSet::new();
    for j in (n - k)..n {
        let t = rng.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen
}

/// A uniform sample of at most `capacity` items of a sequence seen one item at a time
/// (Algorithm R): after `n` items, each of them is in the sample with probability
/// `capacity / n`.
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    /// An empty reservoir of `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: 0,
            items: Vec::with_capacity(capacity.min(4096)),
        }
    }

    /// Offers the next item of the sequence.
    pub fn offer(&mut self, item: T, rng: &mut SampleRng) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(item);
            return;
        }
        if self.capacity == 0 {
            return;
        }
        let slot = rng.below(self.seen);
        if let Ok(slot) = usize::try_from(slot)
            && slot < self.capacity
        {
            self.items[slot] = item;
        }
    }

    /// How many items were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The sample.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_splitmix64() {
        // Reference output of SplitMix64 for seed 1234567 (from the paper's C code).
        let mut rng = SampleRng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn the_same_seed_draws_the_same_sample() {
        let a = positions(10_000, 50, &mut SampleRng::new(7));
        let b = positions(10_000, 50, &mut SampleRng::new(7));
        let c = positions(10_000, 50, &mut SampleRng::new(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 50);
        assert!(a.iter().all(|p| *p < 10_000));

        let sample = |seed| {
            let mut rng = SampleRng::new(seed);
            let mut reservoir = Reservoir::new(20);
            for i in 0..5_000u32 {
                reservoir.offer(i, &mut rng);
            }
            reservoir.into_items()
        };
        assert_eq!(sample(3), sample(3));
        assert_ne!(sample(3), sample(4));
    }

    #[test]
    fn a_sample_as_large_as_the_input_takes_everything() {
        assert_eq!(positions(5, 5, &mut SampleRng::new(1)).len(), 5);
        assert_eq!(positions(5, 9, &mut SampleRng::new(1)).len(), 5);
        let mut rng = SampleRng::new(1);
        let mut reservoir = Reservoir::new(10);
        for i in 0..4 {
            reservoir.offer(i, &mut rng);
        }
        assert_eq!(reservoir.seen(), 4);
        assert_eq!(reservoir.into_items(), vec![0, 1, 2, 3]);
    }

    /// Every position is drawn about equally often: over 20,000 samples of 10 out of 100,
    /// each position is expected 2,000 times; a chi-square test with 99 degrees of freedom
    /// rejects uniformity above 148.2 at the 0.1% level.
    #[test]
    fn both_samplers_are_uniform() {
        let runs = 20_000u64;
        let chi_square = |counts: &[u64]| {
            let expected = (runs * 10) as f64 / counts.len() as f64;
            counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum::<f64>()
        };
        let mut rng = SampleRng::new(42);
        let mut floyd = vec![0u64; 100];
        let mut reservoir_counts = vec![0u64; 100];
        for _ in 0..runs {
            for p in positions(100, 10, &mut rng) {
                floyd[p as usize] += 1;
            }
            let mut reservoir = Reservoir::new(10);
            for i in 0..100usize {
                reservoir.offer(i, &mut rng);
            }
            for i in reservoir.into_items() {
                reservoir_counts[i] += 1;
            }
        }
        assert!(chi_square(&floyd) < 148.2, "{}", chi_square(&floyd));
        assert!(
            chi_square(&reservoir_counts) < 148.2,
            "{}",
            chi_square(&reservoir_counts)
        );
    }
}
