//! How long `send` and `flush` keep going: the one bound of a run.
//!
//! - With `--timeout D` the whole command, input reading included, ends
//!   after `D` (exit 3; what was stored stays queued).
//! - Without it, waiting for delivery ends after [`PATIENCE`] without any
//!   progress (an event delivered or rejected), whatever the failure is:
//!   an unreachable host, a 5xx, a 429. It ends at once when the next
//!   attempt is scheduled later than that bound allows (a long
//!   `Retry-After`), since nothing could happen before it.
//! - Either way, a next attempt more than [`ANNOUNCE_AFTER`] away is
//!   announced on stderr, so a long wait is never silent.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Without `--timeout`: the longest wait for delivery without progress.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A next attempt further away than this is announced.
pub const ANNOUNCE_AFTER: Duration = Duration::from_secs(5);

/// The run's time bound (see the module docs).
#[derive(Debug)]
pub struct Bound {
    deadline: Option<Instant>,
    quiet_since: Cell<Instant>,
    progress: Cell<u64>,
    next_attempt: Cell<Option<Instant>>,
}

impl Bound {
    /// A run that started at `started`, with `--timeout` if given.
    pub fn new(started: Instant, timeout: Option<Duration>) -> Self {
        Bound {
            deadline: timeout.map(|t| started.checked_add(t).unwrap_or(far_future(started))),
            quiet_since: Cell::new(started),
            progress: Cell::new(0),
            next_attempt: Cell::new(None),
        }
    }

    /// The `--timeout` deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The `--timeout` deadline has passed.
    pub fn timed_out(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Starts the patience clock afresh (when waiting begins).
    pub fn start_waiting(&self, now: Instant) {
        self.quiet_since.set(now);
    }

    /// Reports the count of events done (delivered or rejected); a change
    /// is progress and restarts the patience clock.
    pub fn observe(&self, done: u64, now: Instant) {
        if done != self.progress.get() {
            self.progress.set(done);
            self.quiet_since.set(now);
            self.next_attempt.set(None);
        }
    }

    /// An attempt failed and the next one is `delay` away.
    pub fn retry_in(&self, delay: Duration, now: Instant) {
        self.next_attempt.set(now.checked_add(delay));
    }

    /// Without `--timeout`: waiting has gone on for [`PATIENCE`] without
    /// progress, or the next attempt comes later than that allows.
    pub fn out_of_patience(&self, now: Instant) -> bool {
        if self.deadline.is_some() {
            return false;
        }
        let limit = self.quiet_since.get() + PATIENCE;
        now >= limit || self.next_attempt.get().is_some_and(|at| at > limit)
    }

    /// How long to sleep before looking again (at most `step`).
    pub fn slice(&self, step: Duration, now: Instant) -> Duration {
        self.deadline
            .map_or(step, |d| d.saturating_duration_since(now).min(step))
    }
}

/// A point far enough ahead to stand for "never" without overflowing.
fn far_future(from: Instant) -> Instant {
    from.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
        .unwrap_or(from)
}

/// `59m 58s`-style (whole seconds, at least `1s`).
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_counts_from_the_last_progress() {
        let t0 = Instant::now();
        let b = Bound::new(t0, None);
        assert!(!b.out_of_patience(t0 + PATIENCE / 2));
        b.observe(5, t0 + PATIENCE / 2);
        assert!(!b.out_of_patience(t0 + PATIENCE));
        assert!(b.out_of_patience(t0 + PATIENCE / 2 + PATIENCE));
    }

    #[test]
    fn a_next_attempt_past_the_bound_ends_patience_at_once() {
        let t0 = Instant::now();
        let b = Bound::new(t0, None);
        b.retry_in(Duration::from_secs(5), t0);
        assert!(!b.out_of_patience(t0));
        b.retry_in(Duration::from_secs(3600), t0);
        assert!(b.out_of_patience(t0));
    }

    #[test]
    fn a_timeout_replaces_patience() {
        let t0 = Instant::now();
        let b = Bound::new(t0, Some(Duration::from_secs(600)));
        b.retry_in(Duration::from_secs(3600), t0);
        assert!(!b.out_of_patience(t0 + PATIENCE * 2));
        assert!(!b.timed_out(t0 + Duration::from_secs(599)));
        assert!(b.timed_out(t0 + Duration::from_secs(600)));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(3_598_400)), "59m 58s");
        assert_eq!(human(Duration::from_millis(10)), "1s");
    }
}
