//! The checker's own view of the pending queue, and the overflow rule.

use std::collections::{BTreeSet, VecDeque};

use crate::Limits;

/// Pending events (sequence number, size, critical), oldest first, as the
/// checker counts them: accepted tracks and restored records in, every
/// report of a fate out.
#[derive(Clone, Debug, Default)]
pub(crate) struct Queue {
    items: VecDeque<(u64, u32, bool)>,
    bytes: u64,
}

/// What overflow must do to make room for a new event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// Room is made (possibly by dropping nothing).
    Made,
    /// A non-critical event could only fit by dropping a critical one: it
    /// is refused instead.
    Refused,
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn front(&self) -> Option<u64> {
        self.items.front().map(|r| r.0)
    }

    /// Whether the queue is within its limits as it stands.
    pub(crate) fn within(&self, limits: &Limits) -> bool {
        self.items.len() as u64 <= u64::from(limits.max_queue_events)
            && self.bytes <= limits.max_queue_bytes
    }

    /// Whether the queue is over its limits once the pending events
    /// numbered `first..seq` are gone and one more of `extra` bytes (if
    /// any) is in.
    pub(crate) fn over_without(
        &self,
        limits: &Limits,
        first: u64,
        seq: u64,
        extra: Option<u32>,
    ) -> bool {
        let (mut n, mut bytes) = (self.items.len() as u64, self.bytes);
        for r in self.items.iter().filter(|r| (first..seq).contains(&r.0)) {
            n -= 1;
            bytes -= u64::from(r.1);
        }
        if let Some(size) = extra {
            n += 1;
            bytes += u64::from(size);
        }
        n > u64::from(limits.max_queue_events) || bytes > limits.max_queue_bytes
    }

    /// Whether one more event of `size` bytes fits as things stand.
    pub(crate) fn fits(&self, limits: &Limits, size: u32) -> bool {
        (self.items.len() as u64) < u64::from(limits.max_queue_events)
            && self.bytes + u64::from(size) <= limits.max_queue_bytes
    }

    /// Make room for a new event of `size` bytes (`critical` or not),
    /// adding the numbers that must go to `dropped`: the oldest event while
    /// it is not critical (in flight or not); behind a critical oldest, the
    /// oldest non-critical event outside `flight` (the batch in flight). A
    /// non-critical new event that could only fit by dropping a critical
    /// one is refused (nothing goes); a critical one then takes the oldest
    /// (every event that may go is critical).
    pub(crate) fn make_room(
        &mut self,
        limits: &Limits,
        size: u32,
        critical: bool,
        flight: Option<(u64, u64)>,
        dropped: &mut BTreeSet<u64>,
    ) -> Room {
        let before = self.clone();
        let mut gone = BTreeSet::new();
        while !self.fits(limits, size) {
            let victim = match self.victim(flight) {
                None => break,
                Some(Some(i)) => i,
                Some(None) if critical => 0,
                Some(None) => {
                    *self = before;
                    return Room::Refused;
                }
            };
            if let Some((seq, _, _)) = self.remove_at(victim) {
                gone.insert(seq);
            }
        }
        dropped.extend(gone);
        Room::Made
    }

    /// Where the next overflow victim is: `None` for an empty queue,
    /// `Some(None)` when only a critical event could go.
    fn victim(&self, flight: Option<(u64, u64)>) -> Option<Option<usize>> {
        match self.items.front()? {
            (_, _, false) => Some(Some(0)),
            _ => {
                Some(self.items.iter().position(|&(seq, _, c)| {
                    !c && !flight.is_some_and(|(f, l)| f <= seq && seq <= l)
                }))
            }
        }
    }

    pub(crate) fn push(&mut self, seq: u64, size: u32, critical: bool) {
        self.items.push_back((seq, size, critical));
        self.bytes += u64::from(size);
    }

    fn remove_at(&mut self, i: usize) -> Option<(u64, u32, bool)> {
        let r = self.items.remove(i)?;
        self.bytes -= u64::from(r.1);
        Some(r)
    }

    /// The oldest pending non-critical event outside `flight`, if any.
    pub(crate) fn plain_outside(&self, flight: Option<(u64, u64)>) -> Option<u64> {
        self.items
            .iter()
            .find(|&&(seq, _, c)| !c && !flight.is_some_and(|(f, l)| f <= seq && seq <= l))
            .map(|r| r.0)
    }

    /// Whether any pending event is critical.
    pub(crate) fn has_critical(&self) -> bool {
        self.items.iter().any(|r| r.2)
    }

    /// The newest pending critical event numbered at most `seq`.
    pub(crate) fn newest_critical_at_most(&self, seq: u64) -> Option<u64> {
        self.items
            .iter()
            .rev()
            .find(|r| r.2 && r.0 <= seq)
            .map(|r| r.0)
    }

    /// Whether `seq` is a pending critical event.
    pub(crate) fn is_critical(&self, seq: u64) -> bool {
        self.items.iter().any(|r| r.0 == seq && r.2)
    }

    /// Drop the oldest until the queue is within its limits (restored
    /// records over limits that shrank since they were stored).
    pub(crate) fn shed(&mut self, limits: &Limits, dropped: &mut BTreeSet<u64>) {
        while self.items.len() as u64 > u64::from(limits.max_queue_events)
            || self.bytes > limits.max_queue_bytes
        {
            // Nothing is in flight at start-up; critical events go last.
            let Some(i) = self.victim(None) else {
                break;
            };
            let Some((seq, _, _)) = self.remove_at(i.unwrap_or(0)) else {
                break;
            };
            dropped.insert(seq);
        }
    }

    /// Remove every pending event numbered `first..=last`.
    pub(crate) fn remove(&mut self, first: u64, last: u64) {
        let mut gone = 0;
        self.items.retain(|&(s, size, _)| {
            let keep = !(first..=last).contains(&s);
            if !keep {
                gone += u64::from(size);
            }
            keep
        });
        self.bytes -= gone;
    }

    /// Whether `seq` is pending.
    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.items.iter().any(|r| r.0 == seq)
    }

    /// The part of `first..=last` still pending (overflow or a failed
    /// persist may have taken some of a batch in flight).
    pub(crate) fn live(&self, first: u64, last: u64) -> Option<(u64, u64)> {
        let mut live = self
            .items
            .iter()
            .map(|r| r.0)
            .filter(|s| (first..=last).contains(s));
        let a = live.next()?;
        Some((a, live.next_back().unwrap_or(a)))
    }
}
