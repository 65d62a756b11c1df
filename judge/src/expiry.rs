//! The expiry rule (`max_event_age`): an event dropped as `Expired` was
//! older than `max_event_age` by the wall clock the machine was given (the
//! largest so far, since its start), measured from the stamp the checker
//! gave it at its track; it is not critical; and an expired event is never
//! sent after its drop.
//!
//! The judge does not demand that every old event expire (the machine
//! expires at batch time only, and stops at a critical event), only that
//! every expiry be justified: a drop is never early.

use std::collections::{BTreeMap, BTreeSet};

/// The checker's view of stamps and the wall clock.
#[derive(Clone, Debug, Default)]
pub(crate) struct Expiry {
    pub(crate) max_age_ms: Option<u64>,
    /// The largest wall clock given to this machine (since its start).
    pub(crate) wall_ms: Option<u64>,
    /// The stamp of each pending event the checker stamped.
    pub(crate) stamps: BTreeMap<u64, u64>,
    /// The stamp of the event being tracked, until its persist.
    pub(crate) next_stamp: Option<u64>,
    /// Events dropped as expired (never sent after).
    pub(crate) expired: BTreeSet<u64>,
}

impl Expiry {
    /// Why dropping `seq` as expired is unjustified, if it is.
    pub(crate) fn refuse(&self, seq: u64, critical: bool) -> Option<String> {
        if critical {
            return Some(format!("critical event {seq} dropped as expired"));
        }
        let Some(max) = self.max_age_ms else {
            return Some(format!(
                "event {seq} dropped as expired, but max_event_age is off"
            ));
        };
        let Some(wall) = self.wall_ms else {
            return Some(format!(
                "event {seq} dropped as expired before any wall clock"
            ));
        };
        let Some(&stamp) = self.stamps.get(&seq) else {
            return Some(format!(
                "event {seq} dropped as expired, but it has no stamp"
            ));
        };
        let age = wall.saturating_sub(stamp);
        (age <= max).then(|| {
            format!("event {seq} dropped as expired at age {age} ms (stamp {stamp}, wall clock {wall}), not over max_event_age {max} ms")
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Judge, Limits, Mode, Seen, Why};

    const T0: u64 = 1_700_000_000_000;

    /// A judge with two events stamped at T0 (the second critical), expiry
    /// after 60 s, and the wall clock at `wall`.
    fn judge(wall: u64) -> Judge {
        let mut j = Judge::new(Limits::default(), Mode::Immediate, true);
        j.max_event_age(Some(60_000));
        j.wall_clock(T0);
        j.stamp(Some(T0));
        j.track(10);
        j.seen(&Seen::Persist { seq: 0, size: 10 }).unwrap();
        j.stamp(Some(T0));
        j.track_critical(10);
        j.seen(&Seen::Persist { seq: 1, size: 10 }).unwrap();
        j.wall_clock(wall);
        j
    }

    fn expired(seq: u64) -> Seen {
        Seen::Dropped {
            first: seq,
            last: seq,
            why: Why::Expired,
        }
    }

    #[test]
    fn an_expiry_is_justified_only_past_max_event_age() {
        assert!(judge(T0 + 60_000).seen(&expired(0)).is_err());
        judge(T0 + 60_001).seen(&expired(0)).unwrap();
    }

    #[test]
    fn a_jump_back_does_not_make_an_event_older() {
        let mut j = judge(T0 + 60_001);
        // The largest wall clock given counts: a later, smaller one no less.
        j.wall_clock(T0);
        j.seen(&expired(0)).unwrap();
    }

    #[test]
    fn a_critical_event_never_expires() {
        let b = judge(T0 + 10_000_000).seen(&expired(1)).unwrap_err();
        assert_eq!(b.invariant, "expiry");
    }

    #[test]
    fn an_expired_event_is_never_sent() {
        let mut j = judge(T0 + 60_001);
        j.seen(&expired(0)).unwrap();
        let b = j
            .seen(&Seen::Sent {
                first: 0,
                last: 1,
                count: 2,
            })
            .unwrap_err();
        assert_eq!(b.invariant, "expiry");
    }

    /// A store that lost its floor (both copies of a flash page header
    /// rotted, which the simulator's flash world allows) hands a number out
    /// again after a restart: the new event under it is not the expired
    /// one. Seen failing without the reset at its persist (flash world
    /// seeds 499 and 630 at 2000 seeds: "event 112 sent after it was
    /// dropped as expired").
    #[test]
    fn a_number_handed_out_again_names_a_new_event() {
        let mut j = judge(T0 + 60_001);
        j.seen(&expired(0)).unwrap();
        j.restart(Limits::default(), Mode::Immediate, true);
        j.restore([]);
        j.wall_clock(T0 + 60_001);
        j.stamp(Some(T0 + 60_001));
        j.track(10);
        j.seen(&Seen::Persist { seq: 0, size: 10 }).unwrap();
        j.seen(&Seen::Sent {
            first: 0,
            last: 0,
            count: 1,
        })
        .unwrap();
    }

    #[test]
    fn without_max_event_age_nothing_expires() {
        let mut j = judge(T0 + 10_000_000);
        j.max_event_age(None);
        assert!(j.seen(&expired(0)).is_err());
    }
}
