//! The machine's only source of randomness: a seeded SplitMix64 stream.
//!
//! Retry jitter needs a few random numbers; the core may not draw them from
//! the platform, so the caller passes a seed and the same seed gives the same
//! run. SplitMix64 is 64 bits of state and passes BigCrush, which is more than
//! jitter needs.

/// A SplitMix64 generator (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A value in `0..=max`, without modulo bias worth caring about for jitter
    /// (Lemire's multiply-shift on the high bits).
    pub(crate) fn below_or_equal(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        ((u128::from(self.next_u64()) * (u128::from(max) + 1)) >> 64) as u64
    }
}

/// splitmix64's finaliser.
// Not inlined: the linker folds it with the serial frame id's identical
// copy (firmware flash, see firmware/size.sh).
#[inline(never)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_bounded() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.below_or_equal(500);
            assert_eq!(x, b.below_or_equal(500));
            assert!(x <= 500);
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }
}
