//! Critical events in the windows: which entry is critical, and which event
//! overflow may drop while the oldest one is critical.
//!
//! A window entry is the event's size with the [`CRITICAL`] flag for a
//! critical event (hole markers never carry it), so the flag costs no
//! memory. The machine sees the flags of the events whose sizes the
//! windows hold (the oldest and the newest `N`); the victims it picks come
//! from there, so the work per drop is bounded by the window.

use super::{is_hole, weight, Pending, SPENT};
use crate::store::CRITICAL;
use crate::Seq;

/// Whether a window entry is a critical event (not a hole).
pub(crate) const fn is_critical(entry: u32) -> bool {
    !is_hole(entry) && entry & CRITICAL != 0
}

/// Whether a window entry is an event overflow may drop at the head
/// without asking anything more: an event that is not critical.
pub(crate) const fn is_plain_event(entry: u32) -> bool {
    !is_hole(entry) && entry & CRITICAL == 0
}

/// Numbers `[first, last]` that must not be picked (the batch in flight:
/// a discarded event must never reach the server afterwards).
pub(crate) type Skip = Option<(Seq, Seq)>;

impl<const N: usize> Pending<N> {
    /// Whether the windows hold every pending number (no gap that only
    /// the store knows between them).
    pub(crate) fn sees_all(&self) -> bool {
        self.front_end() >= self.back_start()
    }

    /// The entries the windows hold from the oldest on, with their numbers,
    /// as far as they are contiguous: `front`, and `back` too when no gap
    /// lies between them (an event in a gap may be older than any in
    /// `back`, so `back` alone never names the oldest of anything).
    fn entries(&self) -> impl Iterator<Item = (Seq, u32)> + '_ {
        let head = self.head;
        let back_start = self.back_start();
        let front = self
            .front
            .iter()
            .enumerate()
            .map(move |(i, &e)| (head + i as Seq, e));
        let front_end = self.front_end();
        let back = self
            .back
            .iter()
            .enumerate()
            .map(move |(i, &e)| (back_start + i as Seq, e))
            .filter(move |&(seq, _)| seq >= front_end && front_end >= back_start);
        front.chain(back)
    }

    /// The newest critical event a window holds below `before`: the one a
    /// flush is owed for once the events from `before` on were not stored
    /// (those are all in `back`, which lets go only of committed sizes).
    #[cfg(any(test, feature = "critical"))]
    pub(crate) fn newest_critical_before(&self, before: Seq) -> Option<Seq> {
        let head = self.head;
        let back_start = self.back_start();
        let back = self
            .back
            .iter()
            .enumerate()
            .map(|(i, &e)| (back_start + i as Seq, e));
        let front = self
            .front
            .iter()
            .enumerate()
            .map(|(i, &e)| (head + i as Seq, e));
        back.chain(front)
            .filter(|&(seq, e)| seq < before && is_critical(e))
            .map(|(seq, _)| seq)
            .max()
    }

    /// The oldest non-critical event a window holds that is below `before`
    /// (already persisted) and outside `skip`: the overflow victim while
    /// the oldest event is critical.
    pub(crate) fn victim(&self, skip: Skip, before: Seq) -> Option<Seq> {
        self.entries()
            .take_while(|&(seq, _)| seq < before)
            .find(|&(seq, e)| is_plain_event(e) && !skip.is_some_and(|(f, l)| f <= seq && seq <= l))
            .map(|(seq, _)| seq)
    }

    /// The oldest non-critical event in `back` below `before` and outside
    /// `skip`, when a gap hides the numbers between the windows: the last
    /// resort before a critical event would go.
    pub(crate) fn victim_in_back(&self, skip: Skip, before: Seq) -> Option<Seq> {
        let back_start = self.back_start();
        let front_end = self.front_end();
        self.back
            .iter()
            .enumerate()
            .map(|(i, &e)| (back_start + i as Seq, e))
            .filter(|&(seq, _)| seq >= front_end && seq < before)
            .find(|&(seq, e)| is_plain_event(e) && !skip.is_some_and(|(f, l)| f <= seq && seq <= l))
            .map(|(seq, _)| seq)
    }

    /// Whether overflow can make `events` and `bytes` of room without a
    /// critical event, as the machine drops: non-critical events at the
    /// head first (in flight or not), then, past the first critical one,
    /// non-critical events below `before` and outside `skip`. Also `true`
    /// when the windows show no critical event at all (the sizes beyond
    /// them are read as the normal rule needs them), unless `proven` asks
    /// for the room to be found in the windows alone (a critical event is
    /// pending and may hide where they do not look).
    pub(crate) fn room_without_critical(
        &self,
        skip: Skip,
        before: Seq,
        mut events: u64,
        mut bytes: u64,
        proven: bool,
    ) -> bool {
        let mut prefix = true;
        for (seq, e) in self.entries() {
            if events == 0 && bytes == 0 {
                return true;
            }
            if is_hole(e) {
                continue;
            }
            if is_critical(e) {
                prefix = false;
                continue;
            }
            let free = prefix || (seq < before && !skip.is_some_and(|(f, l)| f <= seq && seq <= l));
            if free {
                events = events.saturating_sub(1);
                bytes = bytes.saturating_sub(weight(e));
            }
        }
        // Room is made, or no critical event is in sight: the normal rule
        // goes on as the machine reads the sizes it lacks.
        (events == 0 && bytes == 0) || (prefix && !proven)
    }

    /// The numbers no window holds (between `front` and `back`): where a
    /// scan looks for a victim no window shows.
    pub(crate) fn hidden(&self) -> core::ops::Range<Seq> {
        self.front_end()..self.back_start().max(self.front_end())
    }

    /// The hidden pending event `seq` of `size` (read by a scan) leaves
    /// from the middle of the queue: its bytes go, its number is a hole.
    pub(crate) fn spend_hidden(&mut self, seq: Seq, size: u32) -> bool {
        if !self.hidden().contains(&seq) || is_hole(size) {
            return false;
        }
        self.bytes = self.bytes.saturating_sub(weight(size));
        self.holes = self.holes.saturating_add(1);
        true
    }

    /// The pending event `seq` leaves from the middle of the queue (an
    /// overflow victim, reported by the caller): its entry becomes
    /// [`SPENT`] and leaves `bytes`. Returns whether it was an event a
    /// window held.
    pub(crate) fn spend(&mut self, seq: Seq) -> bool {
        if self.mark_spent(seq) {
            // `mark_spent` owes a `NotStored` report; this one is reported.
            let front_end = self.front_end();
            let back_start = self.back_start();
            let slot = if seq < front_end {
                self.front.get_mut((seq - self.head) as usize)
            } else {
                self.back.get_mut((seq - back_start) as usize)
            };
            if let Some(e) = slot {
                *e = SPENT;
            }
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_victim_is_the_oldest_plain_event_outside_the_batch_in_flight() {
        let mut p = Pending::<8>::new();
        for e in [10 | CRITICAL, 20, 30 | CRITICAL, 40, 50] {
            p.push(e);
        }
        assert_eq!(p.victim(None, 5), Some(1));
        assert_eq!(p.victim(Some((0, 1)), 5), Some(3));
        assert_eq!(p.victim(Some((0, 3)), 4), None, "4 is not persisted yet");
        assert!(p.spend(1));
        assert_eq!((p.len(), p.bytes()), (4, 130));
        assert_eq!(p.size_of(1), Some(SPENT));
        assert_eq!(p.victim(None, 5), Some(3));
        assert_eq!(p.size_of(0), Some(10), "sizes come without the flag");
    }

    #[test]
    fn room_without_critical_counts_the_head_run_and_the_plain_events_behind() {
        let mut p = Pending::<8>::new();
        for e in [5, 10 | CRITICAL, 20, 30 | CRITICAL] {
            p.push(e);
        }
        assert!(p.room_without_critical(None, 4, 2, 0, false));
        assert!(!p.room_without_critical(None, 4, 3, 0, false));
        assert!(!p.room_without_critical(Some((2, 2)), 4, 2, 0, false));
        assert!(
            p.room_without_critical(Some((0, 0)), 4, 1, 25, false),
            "the head goes in flight or not"
        );
        assert!(!p.room_without_critical(None, 4, 0, 26, false));
        let mut plain = Pending::<8>::new();
        plain.push(5);
        assert!(
            plain.room_without_critical(None, 1, 3, 0, false),
            "no critical event in sight"
        );
        assert!(
            !plain.room_without_critical(None, 1, 3, 0, true),
            "unless the room must be proven"
        );
    }
}
