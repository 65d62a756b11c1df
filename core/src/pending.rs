//! The pending index: the size of every stored, undelivered event.
//!
//! Pending events are always the contiguous range `[head, next)` of sequence
//! numbers, so the index needs no keys: a fixed ring of `N` sizes (4 bytes a
//! slot) plus the sequence number of its first entry. Payloads never enter the
//! core.

use heapless::Deque;

use crate::Seq;

/// The sizes of the events `head..head + len`, in a fixed heapless ring.
#[derive(Clone, Debug)]
pub(crate) struct PendingIndex<const N: usize> {
    sizes: Deque<u32, N>,
    /// Sequence number of the oldest pending event.
    head: Seq,
    /// Sum of the sizes in the ring.
    bytes: u64,
}

impl<const N: usize> PendingIndex<N> {
    pub(crate) const fn new() -> Self {
        PendingIndex {
            sizes: Deque::new(),
            head: 0,
            bytes: 0,
        }
    }

    pub(crate) const fn head(&self) -> Seq {
        self.head
    }

    /// One past the newest pending sequence number.
    pub(crate) const fn end(&self) -> Seq {
        self.head + self.sizes.len() as Seq
    }

    pub(crate) const fn len(&self) -> u32 {
        // N is bounded by max_queue_events (a u32) when the machine is built.
        self.sizes.len() as u32
    }

    pub(crate) const fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// Restart an empty index at `seq` (numbering jumps forward).
    pub(crate) fn reset_empty_at(&mut self, seq: Seq) {
        debug_assert!(self.is_empty());
        self.head = seq;
    }

    /// Append the size of event `end()`. Returns false when the ring is full.
    pub(crate) fn push(&mut self, size: u32) -> bool {
        if self.sizes.push_back(size).is_err() {
            return false;
        }
        self.bytes += u64::from(size);
        true
    }

    /// Remove the oldest event; returns its size.
    pub(crate) fn pop_front(&mut self) -> Option<u32> {
        let size = self.sizes.pop_front()?;
        self.head += 1;
        self.bytes -= u64::from(size);
        Some(size)
    }

    /// Remove the newest event; returns its size.
    pub(crate) fn pop_back(&mut self) -> Option<u32> {
        let size = self.sizes.pop_back()?;
        self.bytes -= u64::from(size);
        Some(size)
    }

    /// Size of the pending event `seq`, if it is pending.
    pub(crate) fn size_of(&self, seq: Seq) -> Option<u32> {
        let offset = usize::try_from(seq.checked_sub(self.head)?).ok()?;
        self.sizes.get(offset).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_keeps_accounts() {
        let mut p = PendingIndex::<3>::new();
        assert!(p.push(10) && p.push(20) && p.push(30));
        assert!(!p.push(40));
        assert_eq!(p.pop_front(), Some(10));
        assert!(p.push(40));
        assert_eq!((p.head(), p.end(), p.bytes()), (1, 4, 90));
        assert_eq!(p.size_of(3), Some(40));
        assert_eq!(p.size_of(0), None);
        assert_eq!(p.pop_back(), Some(40));
        assert_eq!(p.pop_front(), Some(20));
        assert_eq!(p.pop_front(), Some(30));
        assert_eq!(p.pop_front(), None);
        assert_eq!(p.bytes(), 0);
    }
}
