//! The pending queue's accounts and a window of its sizes.
//!
//! Pending events are always the contiguous range `[head, end)` of sequence
//! numbers, so the totals are three numbers (head, end, bytes) whatever the
//! queue's length. The sizes themselves are kept for two small windows only:
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

use crate::Seq;

/// The totals of `[head, end)` and the sizes at both of its ends.
#[derive(Clone, Debug)]
pub(crate) struct Pending<const N: usize> {
    head: Seq,
    end: Seq,
    bytes: u64,
    front: Deque<u32, N>,
    back: Deque<u32, N>,
}

impl<const N: usize> Pending<N> {
    pub(crate) const fn new() -> Self {
        Pending {
            head: 0,
            end: 0,
            bytes: 0,
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

    pub(crate) const fn len(&self) -> u64 {
        self.end - self.head
    }

    pub(crate) const fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) const fn is_empty(&self) -> bool {
        self.end == self.head
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

    /// Take over a store's records `[first, end)` holding `bytes` bytes;
    /// no size is known yet.
    pub(crate) fn restore(&mut self, first: Seq, end: Seq, bytes: u64) {
        debug_assert!(self.is_empty());
        self.head = first;
        self.end = end;
        self.bytes = bytes;
        self.front.clear();
        self.back.clear();
    }

    /// Append event `end()` of `size` bytes. When `back` is full its oldest
    /// size is let go (the caller checked [`push_evicts`](Self::push_evicts)).
    pub(crate) fn push(&mut self, size: u32) {
        let complete = self.back.is_empty() && self.front_end() == self.end;
        if complete && !self.front.is_full() {
            // Room was checked just above.
            let _ = self.front.push_back(size);
        } else {
            if self.back.is_full() {
                self.back.pop_front();
            }
            let _ = self.back.push_back(size);
        }
        self.end += 1;
        self.bytes += u64::from(size);
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

    /// Remove the oldest event; returns its size, or `None` when it is not
    /// known (a refill is needed) or the queue is empty.
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
        self.bytes -= u64::from(size);
        self.join();
        Some(size)
    }

    /// Remove the newest event; returns its size, or `None` when it is not
    /// known (never for an uncommitted event) or the queue is empty.
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
        self.bytes -= u64::from(size);
        Some(size)
    }

    /// Size of the pending event `seq`, if a window holds it.
    pub(crate) fn size_of(&self, seq: Seq) -> Option<u32> {
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
        p.restore(10, 20, 100);
        assert_eq!((p.len(), p.bytes()), (10, 100));
        assert_eq!(p.pop_front(), None);
        assert_eq!(p.missing(), Some((10, 4)));
        p.push(7);
        assert_eq!(p.size_of(20), Some(7));
        assert_eq!(p.missing(), Some((10, 4)));
    }
}
