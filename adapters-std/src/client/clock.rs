//! The Client's monotonic clock: milliseconds since the Client started;
//! and its wall clock, for event expiry (`max_event_age`).
//!
//! The core takes time as plain milliseconds; this maps
//! `std::time::Instant` onto them and back (for sleeping until a deadline).
//! The wall clock (ms since the Unix epoch) is read here and handed to the
//! machine as an input, never read by it; tests replace it to make it jump.

use std::time::{Duration, Instant as StdInstant};

use outbox_core::Instant;

/// Milliseconds since `origin`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: StdInstant,
    /// The wall clock's source (a test's, or the system clock).
    wall: Option<fn() -> u64>,
}

impl Clock {
    pub(crate) fn start(wall: Option<fn() -> u64>) -> Self {
        Clock {
            origin: StdInstant::now(),
            wall,
        }
    }

    /// The wall clock: ms since the Unix epoch.
    pub(crate) fn wall_ms(&self) -> u64 {
        match self.wall {
            Some(f) => f(),
            None => super::losses::now_ms(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::elapsed_since(self.origin, StdInstant::now())
    }

    /// The std instant of `t` (for sleeping until it).
    pub(crate) fn to_std(self, t: Instant) -> StdInstant {
        self.origin
            .checked_add(Duration::from_millis(t.as_millis()))
            .unwrap_or_else(|| StdInstant::now() + Duration::from_secs(86_400 * 365))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_never_wakes_early() {
        let c = Clock::start(None);
        let t = c.now().plus_millis(5);
        std::thread::sleep(c.to_std(t).saturating_duration_since(StdInstant::now()));
        assert!(c.now() >= t);
    }
}
