//! Payload buffers that travel from `track` to the worker and back.
//!
//! Each tracked event is serialised on the caller's thread and stored on
//! the worker's. With a fresh `Vec` per event, every one was allocated on
//! one thread and freed on the other, and the allocator paid for it (its
//! arenas consolidating on the worker). The worker hands spent buffers back
//! once per round, so a warm Client allocates nothing per event.

use std::sync::Mutex;

/// Buffers kept for reuse at most (about 4 MiB of 512-byte buffers).
const MAX_KEPT: usize = 8192;
/// A buffer grown past this (a rare large event) is freed, not kept.
const MAX_KEPT_CAPACITY: usize = 16 * 1024;
/// The capacity of a new buffer: most events fit without growing it.
const NEW_CAPACITY: usize = 512;

#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// An empty buffer, reused when one is free.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| Vec::with_capacity(NEW_CAPACITY))
    }

    /// Return `spent` buffers (emptying it), keeping at most `MAX_KEPT`.
    pub(crate) fn give_back(&self, spent: &mut Vec<Vec<u8>>) {
        if spent.is_empty() {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            let room = MAX_KEPT.saturating_sub(free.len());
            free.extend(
                spent
                    .drain(..)
                    .filter(|b| b.capacity() <= MAX_KEPT_CAPACITY)
                    .take(room)
                    .map(|mut b| {
                        b.clear();
                        b
                    }),
            );
        }
        spent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_cleared_and_bounded() {
        let pool = BufferPool::default();
        let mut a = pool.take();
        a.extend_from_slice(b"payload");
        let ptr = a.as_ptr();
        let mut spent = vec![a, Vec::with_capacity(MAX_KEPT_CAPACITY + 1)];
        pool.give_back(&mut spent);
        assert!(spent.is_empty());
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        // The oversized one was not kept: the next take is a new buffer.
        assert_eq!(pool.take().capacity(), NEW_CAPACITY);
        let mut many: Vec<Vec<u8>> = (0..MAX_KEPT + 10).map(|_| Vec::new()).collect();
        pool.give_back(&mut many);
        assert_eq!(pool.free.lock().unwrap().len(), MAX_KEPT);
    }
}
