//! The checker's own view of the pending queue, and the overflow rule.

use std::collections::{BTreeSet, VecDeque};

use crate::Limits;

/// Pending events (sequence number, size), oldest first, as the checker
/// counts them: accepted tracks and restored records in, every report of a
/// fate out.
#[derive(Clone, Debug, Default)]
pub(crate) struct Queue {
    items: VecDeque<(u64, u32)>,
    bytes: u64,
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

    /// Whether one more event of `size` bytes fits as things stand.
    pub(crate) fn fits(&self, limits: &Limits, size: u32) -> bool {
        (self.items.len() as u64) < u64::from(limits.max_queue_events)
            && self.bytes + u64::from(size) <= limits.max_queue_bytes
    }

    /// Drop the oldest until one of `size` bytes fits (or nothing is left),
    /// adding their numbers to `dropped`.
    pub(crate) fn make_room(&mut self, limits: &Limits, size: u32, dropped: &mut BTreeSet<u64>) {
        while !self.fits(limits, size) {
            let Some((seq, _)) = self.pop_front() else {
                break;
            };
            dropped.insert(seq);
        }
    }

    pub(crate) fn push(&mut self, seq: u64, size: u32) {
        self.items.push_back((seq, size));
        self.bytes += u64::from(size);
    }

    fn pop_front(&mut self) -> Option<(u64, u32)> {
        let r = self.items.pop_front()?;
        self.bytes -= u64::from(r.1);
        Some(r)
    }

    /// Drop the oldest until the queue is within its limits (restored
    /// records over limits that shrank since they were stored).
    pub(crate) fn shed(&mut self, limits: &Limits, dropped: &mut BTreeSet<u64>) {
        while self.items.len() as u64 > u64::from(limits.max_queue_events)
            || self.bytes > limits.max_queue_bytes
        {
            let Some((seq, _)) = self.pop_front() else {
                break;
            };
            dropped.insert(seq);
        }
    }

    /// Remove every pending event numbered `first..=last`.
    pub(crate) fn remove(&mut self, first: u64, last: u64) {
        let mut gone = 0;
        self.items.retain(|&(s, size)| {
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
