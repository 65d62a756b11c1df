//! One viewer's mailbox of live updates: a queue bounded in updates and in
//! bytes that the collector pushes into without ever waiting, and a
//! viewer's own thread drains at its own pace.
//!
//! Why a queue of our own and not `std::sync::mpsc::sync_channel`: a full
//! channel either blocks the sender or refuses the *newest* update, and a
//! viewer that fell behind wants the opposite: the oldest updates dropped.
//! Here a push onto a full queue drops the oldest update and marks the
//! viewer as lagging; the viewer then asks for a fresh snapshot
//! ([`super::live::Live::resync`]) instead of showing a stream with a hole
//! in it. The only lock the pusher takes is held for a `VecDeque` push,
//! never across any I/O, so a viewer that stopped reading cannot slow
//! ingestion.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Updates a viewer may have waiting before the oldest ones are dropped...
pub const VIEWER_QUEUE: usize = 64;
/// ...and their bytes (the newest update is always kept, whatever its size).
pub const VIEWER_QUEUE_BYTES: usize = 1024 * 1024;

/// What a viewer finds when it looks for the next update.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The next update, already encoded as one Server-Sent Event.
    Update(Arc<str>),
    /// Updates were dropped while the viewer was behind: it needs a snapshot.
    Lagged,
    /// Nothing arrived within the wait.
    Idle,
}

#[derive(Default)]
struct Pending {
    updates: VecDeque<Arc<str>>,
    bytes: usize,
    lagged: bool,
}

/// A viewer's bounded queue of updates (shared by the collector and the viewer).
pub struct Mailbox {
    pending: Mutex<Pending>,
    ready: Condvar,
    capacity: usize,
    max_bytes: usize,
}

impl Mailbox {
    /// An empty mailbox holding at most `capacity` updates (at least one)
    /// of at most `max_bytes` in all (but always the newest).
    pub fn new(capacity: usize, max_bytes: usize) -> Mailbox {
        Mailbox {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock is a bug; keep serving regardless.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an update; never waits for the viewer. A full queue loses its
    /// oldest update and the viewer is marked as lagging.
    pub fn push(&self, update: Arc<str>) {
        let mut p = self.pending();
        p.bytes += update.len();
        p.updates.push_back(update);
        while p.updates.len() > self.capacity || (p.bytes > self.max_bytes && p.updates.len() > 1) {
            if let Some(old) = p.updates.pop_front() {
                p.bytes -= old.len();
            }
            p.lagged = true;
        }
        drop(p);
        self.ready.notify_one();
    }

    /// Empties the queue and clears the lagging mark (a snapshot replaces
    /// whatever was waiting).
    pub fn clear(&self) {
        let mut p = self.pending();
        p.updates.clear();
        p.bytes = 0;
        p.lagged = false;
    }

    /// Updates waiting now.
    pub fn len(&self) -> usize {
        self.pending().updates.len()
    }

    /// Whether no update is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next update, waiting at most `wait` for one.
    pub fn next(&self, wait: Duration) -> Next {
        let mut p = self.pending();
        if !p.lagged && p.updates.is_empty() {
            p = match self.ready.wait_timeout(p, wait) {
                Ok((p, _)) => p,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if p.lagged {
            return Next::Lagged;
        }
        match p.updates.pop_front() {
            Some(u) => {
                p.bytes -= u.len();
                Next::Update(u)
            }
            None => Next::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn a_full_mailbox_drops_the_oldest_and_says_so() {
        let m = Mailbox::new(2, 1000);
        m.push(update("a"));
        m.push(update("b"));
        assert_eq!(m.len(), 2);
        m.push(update("c"));
        assert_eq!(m.len(), 2, "bounded");
        assert_eq!(m.next(Duration::ZERO), Next::Lagged);
        m.clear();
        assert!(m.is_empty());
        m.push(update("d"));
        assert_eq!(m.next(Duration::ZERO), Next::Update(update("d")));
        assert_eq!(m.next(Duration::ZERO), Next::Idle);
    }

    #[test]
    fn the_bytes_are_bounded_too_but_the_newest_stays() {
        let m = Mailbox::new(100, 10);
        m.push(update("12345"));
        m.push(update("67890"));
        assert_eq!(m.len(), 2);
        m.push(update("x"));
        assert_eq!(m.len(), 2, "over 10 bytes: the oldest goes");
        m.push(update(&"y".repeat(50)));
        assert_eq!(m.len(), 1, "a big update alone is kept");
        assert_eq!(m.next(Duration::ZERO), Next::Lagged);
    }

    #[test]
    fn updates_come_out_in_order() {
        let m = Mailbox::new(8, 1000);
        for s in ["1", "2", "3"] {
            m.push(update(s));
        }
        for s in ["1", "2", "3"] {
            assert_eq!(m.next(Duration::ZERO), Next::Update(update(s)));
        }
    }
}
