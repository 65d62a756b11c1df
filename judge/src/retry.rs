//! Consecutive failed attempts and the backoff they earn, counted by the
//! checker from the answers it handed over.

use crate::Limits;

/// A backoff the judge accepted: no send before `at`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub(crate) at: u64,
    /// Caused by a transport failure (network restored cuts it short).
    pub(crate) transport: bool,
}

/// The earliest and latest delay for the `streak`-th consecutive failure:
/// base × 2^(streak-1) capped, plus 0-50 % jitter, or a longer Retry-After
/// (itself capped by `max_retry_after`).
pub(crate) fn window(limits: &Limits, streak: u32, asked: Option<u64>) -> (u64, u64) {
    let shift = streak.saturating_sub(1).min(31);
    let computed = limits
        .retry_base_ms
        .saturating_mul(1 << shift)
        .min(limits.retry_cap_ms);
    let asked = asked.unwrap_or(0).min(limits.max_retry_after_ms);
    (computed.max(asked), (computed + computed / 2).max(asked))
}

/// The delay after the `n`-th local failure in a row: the backoff
/// schedule, without jitter, and without spending an attempt.
pub(crate) fn local_delay(limits: &Limits, n: u32) -> u64 {
    window(limits, n, None).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_yields_to_a_longer_retry_after() {
        let limits = Limits {
            retry_base_ms: 1_000,
            retry_cap_ms: 32_000,
            max_retry_after_ms: 3_600_000,
            ..Limits::default()
        };
        assert_eq!(window(&limits, 1, None), (1_000, 1_500));
        assert_eq!(window(&limits, 3, None), (4_000, 6_000));
        assert_eq!(window(&limits, 40, None), (32_000, 48_000));
        assert_eq!(window(&limits, 1, Some(60_000)), (60_000, 60_000));
        assert_eq!(window(&limits, 1, Some(7_200_000)), (3_600_000, 3_600_000));
    }
}
