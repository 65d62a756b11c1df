//! Event expiry (feature `expiry`): an event older than `max_event_age`
//! by the wall clock when its batch is formed is dropped as
//! [`DropReason::Expired`], never sent.
//!
//! Why it looks like this: the machine never reads a clock and holds no
//! per-event data beyond a window of sizes, yet age must survive restarts.
//! So the adapter stamps each event at its track (wall-clock ms since the
//! Unix epoch, stored with the record), the wall clock arrives as an input
//! ([`Input::WallClock`](crate::Input::WallClock)), and where a batch is
//! formed the machine asks the store for the oldest event that is still
//! fresh ([`Output::FindFresh`]); every event before it is expired. The
//! machine keeps the largest wall clock it was given and the adapter
//! stamps with that same value, so a clock that jumps back makes ages
//! smaller, never larger: nothing expires early. Critical events never
//! expire: expiry stops at one, and a batch that starts at a stale
//! critical event stops before the next stale plain one (which then
//! expires at the head).

use crate::output::{DropReason, Output};
use crate::Seq;

use super::{critical, Machine};

/// What the machine knows about expiry between inputs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Expiry {
    /// The largest wall clock given (ms since the Unix epoch).
    pub(super) wall_ms: Option<u64>,
    /// A `FindFresh` is out: its cutoff and the queue's end when asked.
    asked: Option<(u64, Seq)>,
    /// The last answer: its cutoff, and the events before `Seq` are
    /// expired (plain ones; critical ones are exempt).
    known: Option<(u64, Seq)>,
}

impl<const N: usize> Machine<N> {
    /// The wall clock the machine was given, the largest so far (ms since
    /// the Unix epoch; feature `expiry`): the stamp an adapter gives the
    /// event it tracks next. `None` before the first
    /// [`Input::WallClock`](crate::Input::WallClock).
    ///
    /// ```
    /// use outbox_core::{Config, Input, Instant, Machine};
    /// let mut m = Machine::<8>::new(Config::default(), 1).unwrap();
    /// m.handle(Instant::ZERO, Input::WallClock { now_ms: 5_000 }).unwrap();
    /// m.handle(Instant::ZERO, Input::WallClock { now_ms: 1_000 }).unwrap(); // a jump back
    /// assert_eq!(m.wall_clock(), Some(5_000));
    /// ```
    pub fn wall_clock(&self) -> Option<u64> {
        self.expiry.wall_ms
    }

    pub(super) fn on_wall_clock(&mut self, now_ms: u64) {
        let e = &mut self.expiry;
        e.wall_ms = Some(e.wall_ms.map_or(now_ms, |w| w.max(now_ms)));
    }

    /// Any input but `Fresh` ends the `FindFresh` out (as for sizes).
    pub(super) fn expiry_enter(&mut self, fresh: bool) {
        if !fresh {
            self.expiry.asked = None;
        }
    }

    /// The store's answer: the events before `first_fresh` expired.
    pub(super) fn on_fresh(&mut self, first_fresh: Seq) {
        if let Some((cutoff, end)) = self.expiry.asked.take() {
            self.expiry.known = Some((cutoff, first_fresh.min(end)));
            self.expire_head();
        }
    }

    /// The cutoff now: events stamped before it are expired.
    fn cutoff(&self) -> Option<u64> {
        let age = self.config.max_event_age_millis?;
        Some(self.expiry.wall_ms?.saturating_sub(age))
    }

    /// Before a batch is formed: `Some(output)` to return instead (a
    /// `FindFresh`, an `Expired` report, or `None` while an answer is
    /// awaited); `None` to form the batch.
    pub(super) fn expiry_step(&mut self) -> Option<Option<Output>> {
        let cutoff = self.cutoff()?;
        match self.expiry.known {
            Some((known, _)) if known >= cutoff => {
                if self.expire_head() {
                    return Some(self.notes.pop());
                }
                None
            }
            _ if self.expiry.asked.is_some() => Some(None),
            _ => {
                self.expiry.asked = Some((cutoff, self.pending.end()));
                Some(Some(Output::FindFresh { after_ms: cutoff }))
            }
        }
    }

    /// The newest number of the run of stale plain events at the head.
    fn expire_head(&mut self) -> bool {
        let Some((_, limit)) = self.expiry.known else {
            return false;
        };
        if self.in_flight.is_some() || self.notes.room() == 0 {
            return false;
        }
        let first = self.pending.head();
        while self.pending.head() < limit
            && self
                .pending
                .entry(self.pending.head())
                .is_some_and(critical::droppable_at_head)
            && self.pending.pop_front().is_some()
        {}
        let head = self.pending.head();
        if head == first {
            return false;
        }
        // A narrowed range that expired with them ends here, not at the
        // next `settle`: a batch formed in this poll would be cut to
        // nothing by its end (sim seed 297: a batch of one event counted
        // as 0 bytes after a retry's narrowed range expired).
        if self.narrowing.is_some_and(|n| n.end < head) {
            self.narrowing = None;
        }
        self.counters.dropped_expired += head - first;
        self.push_note(Output::Dropped {
            first,
            last: head - 1,
            reason: DropReason::Expired,
        });
        true
    }

    /// Where a batch from a stale critical head must end: before the first
    /// stale plain event (it expires once at the head).
    pub(super) fn expiry_batch_end(&self, first: Seq) -> Seq {
        let Some((_, limit)) = self.expiry.known else {
            return Seq::MAX;
        };
        let mut seq = first;
        while seq < limit {
            match self.pending.entry(seq) {
                Some(e) if critical::droppable_at_head(e) => return seq.saturating_sub(1),
                Some(_) => seq += 1,
                None => return seq.saturating_sub(1),
            }
        }
        Seq::MAX
    }
}
