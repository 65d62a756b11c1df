//! Time as plain numbers.
//!
//! The core never reads a clock: every input arrives with the current
//! [`Instant`], a monotonic count of milliseconds from an origin the caller
//! chooses (boot, process start, a simulator's zero). Durations are
//! [`core::time::Duration`] in the public API and whole milliseconds inside.

use serde::{Deserialize, Serialize};

/// A point on the caller's monotonic clock, in milliseconds.
///
/// Only differences between instants mean anything; the origin is the
/// caller's. An input whose instant is earlier than one seen before is
/// treated as happening at the later one (time never runs backwards inside
/// the machine).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The origin of the caller's clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `millis` milliseconds, saturating at the far future.
    // Not inlined: one copy of the saturating add serves every timer
    // (firmware flash, see firmware/size.sh).
    #[inline(never)]
    pub const fn plus_millis(self, millis: u64) -> Self {
        Instant(self.0.saturating_add(millis))
    }

    /// Time from `earlier` to `self`, zero when `earlier` is later.
    pub const fn millis_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(feature = "std")]
impl Instant {
    /// The instant `now` on a clock whose origin is `origin` (both from the
    /// platform's monotonic clock): how std adapters turn time into input.
    ///
    /// ```
    /// let origin = std::time::Instant::now();
    /// let later = origin + std::time::Duration::from_millis(1500);
    /// assert_eq!(outbox_core::Instant::elapsed_since(origin, later).as_millis(), 1500);
    /// ```
    pub fn elapsed_since(origin: std::time::Instant, now: std::time::Instant) -> Self {
        Instant::from_millis(duration_millis(now.saturating_duration_since(origin)))
    }
}

/// Whole milliseconds in `d`, saturating at `u64::MAX`.
pub(crate) const fn duration_millis(d: core::time::Duration) -> u64 {
    // Const (a `Config` can be built at compile time): no `try_from`.
    let millis = d.as_millis();
    if millis > u64::MAX as u128 {
        u64::MAX
    } else {
        millis as u64
    }
}

/// [`duration_millis`] saturated to a u32.
pub(crate) const fn duration_millis_u32(d: core::time::Duration) -> u32 {
    let millis = duration_millis(d);
    if millis > u32::MAX as u64 {
        u32::MAX
    } else {
        millis as u32
    }
}
