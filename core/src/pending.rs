//! The pending queue's accounts and a window of its sizes.
//!
//! Pending events are always the contiguous range `[head, end)` of sequence
//! numbers, so the totals are four numbers (head, end, bytes, holes) whatever
//! the queue's length. Some numbers in the range may be holes: no intact
//! record ([`HOLE`], as the store reports it) or a number the machine spent
//! without storing it ([`SPENT`]); holes weigh 0 bytes and `holes` counts
//! those the machine knows of (from the store's summary, or spent), so
//! [`len`](Pending::len) counts events only. Every total is kept with
//! saturating arithmetic (a store may lie), and an empty queue holds 0 bytes
//! and 0 holes. The sizes themselves are kept for two small windows only:
//!
//! - `front`: the oldest events `[head, head + front.len())`, which the next
//!   batch, drop-oldest and bisection need. The machine refills it from the
//!   store ([`Output::ReadSizes`](crate::Output::ReadSizes)) when it runs low.
//! - `back`: the newest events `[end - back.len(), end)`, which appends that
//!   fail (or a commit that fails) take back, and which are not in the store
//!   yet. An entry leaves `back` only once it is committed; the machine
//!   commits before that would be needed.
//!
//! When the queue fits in `front`, `back` is empty. Between the two windows
//! (when there is a gap) the sizes live in the store only. Payloads never
//! enter the core.

use heapless::Deque;

use crate::store::{strip_critical, DISCARDED, HOLE};
use crate::Seq;

mod critical;
pub(crate) use critical::{is_critical, is_plain_event};

/// A window entry for a number the machine spent without storing it (a
/// `NotStored` drop, a skip to the store's floor, an overflow victim it
/// discarded): a hole already reported.
pub(crate) const SPENT: u32 = DISCARDED;

/// A window entry for an event just found not stored, whose `NotStored`
/// report is still owed (the reports wait for room among the notifications).
pub(crate) const UNREPORTED: u32 = HOLE - 2;

/// Whether a window entry is a hole ([`HOLE`], [`SPENT`] or [`UNREPORTED`]).
pub(crate) const fn is_hole(size: u32) -> bool {
    size >= UNREPORTED
}

/// What an entry weighs in `bytes`: holes nothing, an event its size
/// (without the critical flag: entries carry it, see `critical.rs`).
const fn weight(size: u32) -> u64 {
    if is_hole(size) {
        0
    } else if cfg!(any(test, feature = "critical")) {
        strip_critical(size) as u64
    } else {
        size as u64
    }
}

/// The totals of `[head, end)` and the sizes at both of its ends.
#[derive(Clone, Debug)]
pub(crate) struct Pending<const N: usize> {
    head: Seq,
    end: Seq,
    bytes: u64,
    /// Holes known to be in `[head, end)` (not counted by `len`).
    holes: u64,
    /// Holes dropped that were counted as events (the summary counted the
    /// record intact, or the store lied): events lost to damage.
    damaged: u64,
    front: Deque<u32, N>,
    back: Deque<u32, N>,
}

impl<const N: usize> Pending<N> {
    pub(crate) const fn new() -> Self {
        Pending {
            head: 0,
            end: 0,
            bytes: 0,
            holes: 0,
            damaged: 0,
            front: Deque::new(),
            back: Deque::new(),
        }
    }

    /// Sequence number of the oldest pending event.
    pub(crate) const fn head(&self) -> Seq {
        self.head
    }

    /// One past the newest pending sequence number.
    pub(crate) const fn end(&self) -> Seq {
        self.end
    }

    /// Events pending: the numbers in `[head, end)` less the known holes.
    pub(crate) const fn len(&self) -> u64 {
        (self.end - self.head).saturating_sub(self.holes)
    }

    /// Whether an event is pending (not holes only; `is_empty` says
    /// whether any number is).
    pub(crate) const fn has_events(&self) -> bool {
        self.end - self.head > self.holes
    }

    pub(crate) const fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Events lost to damage so far (see the field).
    pub(crate) const fn damaged(&self) -> u64 {
        self.damaged
    }

    /// `n` holes leave: those not known as holes were counted as events.
    // Not inlined (firmware flash, see firmware/size.sh).
    #[inline(never)]
    fn drop_holes(&mut self, n: u64) {
        let known = n.min(self.holes);
        self.holes -= known;
        self.damaged = self.damaged.saturating_add(n - known);
    }

    /// Whether no number is pending (neither an event nor a hole).
    pub(crate) const fn is_empty(&self) -> bool {
        self.end == self.head
    }

    /// An empty queue holds nothing, whatever the store said.
    fn settle_empty(&mut self) {
        if self.is_empty() {
            self.bytes = 0;
            self.holes = 0;
        }
    }

    /// One past the last size `front` knows.
    pub(crate) fn front_end(&self) -> Seq {
        self.head + self.front.len() as Seq
    }

    /// The first size `back` knows (`end` when it is empty).
    fn back_start(&self) -> Seq {
        self.end - self.back.len() as Seq
    }

    /// Sizes `front` holds.
    pub(crate) fn front_len(&self) -> usize {
        self.front.len()
    }

    /// Whether `push` would have to let go of the size of event
    /// `back_start()` (the oldest `back` knows).
    // Inlined into its callers (firmware flash, see firmware/size.sh).
    #[inline(always)]
    pub(crate) fn push_evicts(&self) -> Option<Seq> {
        let complete = self.back.is_empty() && self.front_end() == self.end;
        if complete && !self.front.is_full() {
            return None;
        }
        self.back.is_full().then(|| self.back_start())
    }

    /// Restart an empty queue at `seq` (numbering jumps forward).
    pub(crate) fn reset_empty_at(&mut self, seq: Seq) {
        debug_assert!(self.is_empty());
        self.head = seq;
        self.end = seq;
    }

    /// Take over a store's records `[first, end)` holding `bytes` bytes,
    /// `holes` of the numbers without a record; no size is known yet.
    pub(crate) fn restore(&mut self, first: Seq, end: Seq, bytes: u64, holes: u64) {
        debug_assert!(self.is_empty());
        self.head = first;
        self.end = end.max(first);
        self.bytes = bytes;
        self.holes = holes;
        self.front.clear();
        self.back.clear();
        self.settle_empty();
    }

    /// Move `end` forward to `to` over numbers that are holes (spent). Only
    /// while `back` is empty (before any track), so that `back` still ends
    /// at `end`; returns whether it moved.
    pub(crate) fn extend_holes(&mut self, to: Seq) -> bool {
        if to <= self.end || !self.back.is_empty() {
            return false;
        }
        self.holes = self.holes.saturating_add(to - self.end);
        self.end = to;
        true
    }

    /// Mark the pending event `seq` not stored: its size becomes
    /// [`UNREPORTED`] and leaves `bytes`. Returns whether it was an event
    /// (a window held its size and it was not a hole yet).
    #[inline(never)]
    pub(crate) fn mark_spent(&mut self, seq: Seq) -> bool {
        if seq < self.head || seq >= self.end {
            return false;
        }
        let front_end = self.front_end();
        let back_start = self.back_start();
        let slot = if seq < front_end {
            self.front.get_mut((seq - self.head) as usize)
        } else if seq >= back_start {
            self.back.get_mut((seq - back_start) as usize)
        } else {
            None
        };
        match slot {
            Some(size) if !is_hole(*size) => {
                let old = core::mem::replace(size, UNREPORTED);
                self.bytes = self.bytes.saturating_sub(weight(old));
                self.holes = self.holes.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// The oldest run of [`UNREPORTED`] entries (within one window), now
    /// marked [`SPENT`]: the caller reports it.
    pub(crate) fn take_unreported_run(&mut self) -> Option<(Seq, Seq)> {
        let back_start = self.back_start();
        for (start, window) in [(self.head, &mut self.front), (back_start, &mut self.back)] {
            let mut run: Option<(Seq, Seq)> = None;
            let mut i = 0;
            while let Some(size) = window.get_mut(i) {
                let seq = start + i as Seq;
                i += 1;
                if *size == UNREPORTED {
                    *size = SPENT;
                    run = Some(run.map_or((seq, seq), |(f, _)| (f, seq)));
                } else if run.is_some() {
                    break;
                }
            }
            if run.is_some() {
                return run;
            }
        }
        None
    }

    /// Drop every number below `to` (all of them holes the machine spent):
    /// `head` jumps there, whether or not a window knows their sizes.
    #[inline(never)]
    pub(crate) fn skip_front_to(&mut self, to: Seq) {
        let to = to.min(self.end);
        while self.head < to {
            if self.front.is_empty() && self.back_start() > self.head {
                // Numbers no window knows: jump over them at once.
                let jump = to.min(self.back_start());
                self.drop_holes(jump - self.head);
                self.head = jump;
            } else if self.pop_front().is_none() {
                break;
            }
        }
        self.settle_empty();
    }

    /// Append event `end()` of `size` bytes. When `back` is full its oldest
    /// size is let go (the caller checked [`push_evicts`](Self::push_evicts)).
    /// Returns the entry let go, if any (its number and size).
    pub(crate) fn push(&mut self, size: u32) -> Option<(Seq, u32)> {
        let complete = self.back.is_empty() && self.front_end() == self.end;
        let mut evicted = None;
        if complete && !self.front.is_full() {
            // Room was checked just above.
            let _ = self.front.push_back(size);
        } else {
            if self.back.is_full() {
                let seq = self.back_start();
                evicted = self.back.pop_front().map(|s| (seq, s));
            }
            let _ = self.back.push_back(size);
        }
        self.end += 1;
        self.bytes = self.bytes.saturating_add(weight(size));
        evicted
    }

    /// A size read from the store for event `seq`: taken when it is the
    /// next one `front` lacks (anything else is stale and ignored).
    pub(crate) fn refill(&mut self, seq: Seq, size: u32) -> bool {
        if seq != self.front_end() || seq >= self.back_start() || self.front.is_full() {
            return false;
        }
        let _ = self.front.push_back(size);
        self.join();
        true
    }

    /// When `front` reaches `back`, move sizes over so that a queue that
    /// fits in `front` has an empty `back`.
    fn join(&mut self) {
        while self.front_end() == self.back_start() && !self.front.is_full() {
            match self.back.pop_front() {
                Some(size) => {
                    let _ = self.front.push_back(size);
                }
                None => break,
            }
        }
    }

    /// The sizes `front` should read next, when there is a gap before
    /// `back`: the first missing event and how many there are (at most the
    /// room in `front`).
    pub(crate) fn missing(&self) -> Option<(Seq, u32)> {
        let from = self.front_end();
        let gap = self.back_start().saturating_sub(from);
        let room = (N - self.front.len()) as u64;
        let n = gap.min(room);
        (n > 0).then(|| (from, u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Remove the oldest number; returns its size (a hole's marker for a
    /// hole), or `None` when it is not known (a refill is needed) or the
    /// queue is empty.
    pub(crate) fn pop_front(&mut self) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        let size = match self.front.pop_front() {
            Some(size) => size,
            None if self.back_start() == self.head => self.back.pop_front()?,
            None => return None,
        };
        self.head += 1;
        self.forget(size);
        self.join();
        Some(size)
    }

    /// Remove the newest event (tests only: the machine spends numbers,
    /// it never takes them back); returns its size, or `None` when it is not
    /// known (never for an uncommitted event) or the queue is empty.
    #[cfg(test)]
    pub(crate) fn pop_back(&mut self) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        let size = match self.back.pop_back() {
            Some(size) => size,
            None if self.front_end() == self.end => self.front.pop_back()?,
            None => return None,
        };
        self.end -= 1;
        self.forget(size);
        Some(size)
    }

    /// Take a removed entry out of the totals (checked: a store's sizes may
    /// disagree with its summary).
    fn forget(&mut self, size: u32) {
        self.bytes = self.bytes.saturating_sub(weight(size));
        if is_hole(size) {
            self.drop_holes(1);
        }
        self.settle_empty();
    }

    /// Size of the pending event `seq` (a hole's marker for a hole), if a
    /// window holds it.
    pub(crate) fn size_of(&self, seq: Seq) -> Option<u32> {
        if cfg!(any(test, feature = "critical")) {
            self.entry(seq).map(strip_critical)
        } else {
            self.entry(seq)
        }
    }

    /// The window entry of `seq` (its size with the critical flag), if a
    /// window holds it.
    pub(crate) fn entry(&self, seq: Seq) -> Option<u32> {
        if seq < self.head || seq >= self.end {
            return None;
        }
        if seq < self.front_end() {
            return self
                .front
                .get(usize::try_from(seq - self.head).ok()?)
                .copied();
        }
        let start = self.back_start();
        if seq >= start {
            return self.back.get(usize::try_from(seq - start).ok()?).copied();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_that_fits_keeps_every_size_in_front() {
        let mut p = Pending::<3>::new();
        p.push(10);
        p.push(20);
        p.push(30);
        assert_eq!((p.head(), p.end(), p.bytes(), p.front_len()), (0, 3, 60, 3));
        assert_eq!(p.missing(), None);
        assert_eq!(p.pop_front(), Some(10));
        p.push(40);
        assert_eq!(p.size_of(3), Some(40));
        assert_eq!(p.pop_back(), Some(40));
        assert_eq!(p.pop_front(), Some(20));
        assert_eq!(p.pop_front(), Some(30));
        assert_eq!(p.pop_front(), None);
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn a_longer_queue_refills_front_across_the_gap() {
        let mut p = Pending::<2>::new();
        for size in 1..=6 {
            assert_eq!(
                p.push_evicts(),
                if size >= 5 { Some(size - 3) } else { None }
            );
            p.push(size as u32);
        }
        // front: 0, 1; back: 4, 5; the store alone knows 2 and 3.
        assert_eq!(p.bytes(), 21);
        assert_eq!(p.size_of(2), None);
        assert_eq!(p.size_of(5), Some(6));
        assert_eq!(p.pop_front(), Some(1));
        assert_eq!(p.missing(), Some((2, 1)));
        assert!(!p.refill(3, 4), "out of order");
        assert!(p.refill(2, 3));
        assert_eq!(p.pop_front(), Some(2));
        assert_eq!(p.pop_front(), Some(3));
        assert_eq!(p.pop_front(), None, "4 is in the store only");
        assert!(p.refill(3, 4));
        assert_eq!(p.missing(), None);
        assert_eq!(p.pop_front(), Some(4));
        assert_eq!(p.pop_back(), Some(6));
        assert_eq!(p.pop_front(), Some(5));
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn a_restored_queue_knows_no_size_until_refilled() {
        let mut p = Pending::<4>::new();
        p.restore(10, 20, 100, 0);
        assert_eq!((p.len(), p.bytes()), (10, 100));
        assert_eq!(p.pop_front(), None);
        assert_eq!(p.missing(), Some((10, 4)));
        p.push(7);
        assert_eq!(p.size_of(20), Some(7));
        assert_eq!(p.missing(), Some((10, 4)));
    }
}
