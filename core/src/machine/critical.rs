//! Critical events in the machine: the flush a critical track requests,
//! and overflow that never drops one while a non-critical event is pending.
//!
//! Rules (the judge checks them, `outbox_judge::queue` and `flush`):
//!
//! - A critical track requests a flush of the queue up to it, in every
//!   flush mode (`Manual` and `AppClose` too). It is served like any flush:
//!   when the network is up, no upload is halted and no backoff runs (a
//!   critical event never cuts a server's Retry-After short); batches go
//!   oldest first, so the events before it go first. Switching the mode
//!   does not cancel it; it stands until the head passes the event.
//! - `DropOldest`: while the oldest event is critical, the overflow victim
//!   is the oldest non-critical event behind it that a window holds, is
//!   stored, and is not in the batch in flight; it leaves from the middle
//!   ([`Output::Dropped`] then [`Output::Discard`]). A non-critical event
//!   that could only fit by dropping a critical one is refused
//!   ([`InputError::QueueFull`](crate::InputError::QueueFull), as
//!   `RejectNew`). A critical event that finds no such victim is handled
//!   by the normal rule (the oldest event goes, critical too) when the
//!   machine sees the whole queue and it is all critical; otherwise it is
//!   refused too (`QueueFull`: the caller is told, nothing is dropped).
//! - The machine sees the flags of the events whose sizes its windows hold
//!   (the oldest and the newest `N` numbers, victims left as holes
//!   included): victims come from the oldest window, then from a bounded
//!   scan of the sizes between the windows (`ReadSizes` past the oldest
//!   window, [`SCAN_CHUNK`] at a time, one victim kept), then from the
//!   newest window. A critical head goes only when the scan read every
//!   hidden number and found none. While a critical event is pending, a
//!   track needs its room proven by the windows alone: a queue whose span
//!   behind a critical head outgrows them may refuse new events
//!   (`QueueFull`) although a non-critical event the store alone knows of
//!   could go (the scan serves overflow that already happened: a restore
//!   over shrunk limits).

use super::Machine;
use crate::output::{DropReason, Output};
use crate::pending::{is_critical, is_hole, is_plain_event};
use crate::Seq;

#[cfg(any(test, feature = "critical"))]
/// Sizes one scan read asks for (at most the window's `N`, as any read).
const SCAN_CHUNK: u32 = 32;

/// A bounded read of the sizes no window holds, for an overflow victim
/// behind a critical head when the windows show none: the numbers from
/// the front window's end up to `next` hold no victim (or `found` is one).
#[cfg(any(test, feature = "critical"))]
#[derive(Clone, Copy, Debug)]
pub(super) struct Scan {
    /// Whether a scan was asked for (over the limits, no victim in sight).
    wanted: bool,
    /// The next hidden number to read.
    next: Seq,
    /// A non-critical, stored event the scan read: the next victim.
    found: Option<(Seq, u32)>,
}

#[cfg(any(test, feature = "critical"))]
impl Scan {
    pub(super) const fn new() -> Self {
        Scan {
            wanted: false,
            next: 0,
            found: None,
        }
    }
}

/// Discards owed at once; overflow waits for them to be drained.
pub(super) const DISCARDS: usize = 4;

/// Whether this build keeps critical events (the `critical` feature).
pub(super) const ENABLED: bool = cfg!(any(test, feature = "critical"));

/// Whether overflow may drop this head entry by the normal rule: an event,
/// not critical.
pub(super) const fn droppable_at_head(entry: u32) -> bool {
    if ENABLED {
        is_plain_event(entry)
    } else {
        !is_hole(entry)
    }
}

impl<const N: usize> Machine<N> {
    /// Whether the critical flag of the pending event `seq` is set, when a
    /// window holds it (the hook for expiry: a critical event never
    /// expires, and batches are formed from these windows).
    pub fn pending_critical(&self, seq: Seq) -> Option<bool> {
        self.pending
            .entry(seq)
            .filter(|&e| !is_hole(e))
            .map(is_critical)
    }

    /// A critical event `seq` asks for the queue up to it.
    pub(super) fn request_critical_flush(&mut self, seq: Seq) {
        self.critical_through = Some(self.critical_through.map_or(seq, |c| c.max(seq)));
    }

    /// A critical event read back from the store (after a restart) asks
    /// for its flush again.
    pub(super) fn note_restored_critical(&mut self, seq: Seq, size: u32) {
        if ENABLED && is_critical(size) && self.pending.entry(seq) == Some(size) {
            self.request_critical_flush(seq);
        }
    }

    /// At start-up: the store holds critical events up to `through`.
    pub(super) fn on_critical_pending(&mut self, through: Seq) {
        if ENABLED && through >= self.pending.head() && through < self.pending.end() {
            self.request_critical_flush(through);
            // Stored already: never among events found not stored later.
            #[cfg(any(test, feature = "critical"))]
            {
                self.critical_unseen = self.critical_unseen.max(Some(through));
            }
        }
    }

    /// `back` let go of the entry of `seq` (committed): a critical one is
    /// remembered, as no window shows its flag any more.
    #[cfg_attr(not(any(test, feature = "critical")), allow(unused_variables))]
    pub(super) fn note_unseen_critical(&mut self, seq: Seq, entry: u32) {
        #[cfg(any(test, feature = "critical"))]
        if is_critical(entry) {
            self.critical_unseen = self.critical_unseen.max(Some(seq));
        }
    }

    /// The events from `from` on were not stored: a critical one among
    /// them asks for nothing (the event does not exist), so the flush
    /// request falls back to the newest critical event before `from`, if
    /// any is still pending. Every event from `from` on is in `back` (its
    /// sizes leave only once committed), so the newest critical event
    /// before it is the newest a window shows there, or else the newest
    /// whose flag left the windows.
    pub(super) fn forget_critical_from(&mut self, from: Seq) {
        #[cfg(any(test, feature = "critical"))]
        if self.critical_through.is_some_and(|c| c >= from) {
            let seen = self.pending.newest_critical_before(from);
            let unseen = self.critical_unseen.filter(|&c| c < from);
            self.critical_through = seen.max(unseen);
            self.settle_critical_flush();
        }
        #[cfg(not(any(test, feature = "critical")))]
        let _ = from;
    }

    /// A size read past the front window: the scan's, when it is the next
    /// number it wants.
    #[cfg(any(test, feature = "critical"))]
    pub(super) fn note_scanned(&mut self, seq: Seq, size: u32) {
        let hidden = self.pending.hidden();
        if !ENABLED || !self.scan.wanted || !hidden.contains(&seq) {
            return;
        }
        if seq != self.scan.next.max(hidden.start) || self.scan.found.is_some() {
            // Not the next one, or a victim waits: the numbers after it
            // are read again when it is gone.
            return;
        }
        self.scan.next = seq + 1;
        let in_flight = self
            .in_flight
            .is_some_and(|b| b.first <= seq && seq <= b.last);
        if self.scan.found.is_none()
            && is_plain_event(size)
            && seq < self.commits.persist_cursor
            && !in_flight
        {
            self.scan.found = Some((seq, size));
        }
    }

    /// The read a scan asks for next, if one is wanted and unread numbers
    /// are left.
    #[cfg(any(test, feature = "critical"))]
    pub(super) fn ask_scan(&mut self) -> Option<Output> {
        if !ENABLED || !self.scan.wanted || self.scan.found.is_some() {
            return None;
        }
        if self.refill.asked_until.is_some() || self.refill.retry_at.is_some() {
            return None;
        }
        let hidden = self.pending.hidden();
        let from = self.scan.next.max(hidden.start);
        if from >= hidden.end {
            return None;
        }
        let max = (hidden.end - from).min(u64::from(SCAN_CHUNK)).min(N as u64) as u32;
        self.refill.asked_until = Some(from + u64::from(max));
        Some(Output::ReadSizes { from, max })
    }

    /// The victim a scan found, if it still is one; `None` with the scan
    /// going on (or started) when hidden numbers are left to read, and
    /// `Some(None)` when it read them all and found none.
    #[cfg(any(test, feature = "critical"))]
    fn scanned_victim(&mut self) -> Option<Option<(Seq, u32)>> {
        let hidden = self.pending.hidden();
        if let Some((seq, size)) = self.scan.found.take() {
            let in_flight = self
                .in_flight
                .is_some_and(|b| b.first <= seq && seq <= b.last);
            if hidden.contains(&seq) && seq < self.commits.persist_cursor && !in_flight {
                return Some(Some((seq, size)));
            }
            // Stale (delivered, in view, or in flight now): read on.
            self.scan.next = self.scan.next.min(seq + 1);
        }
        if !self.scan.wanted {
            self.scan.wanted = true;
            self.scan.next = hidden.start;
        }
        if self.scan.next.max(hidden.start) >= hidden.end {
            // Read through: none hidden. The next need scans afresh.
            self.scan.wanted = false;
            return Some(None);
        }
        None
    }

    /// The next `Discard` owed (one a delete already passed is not).
    pub(super) fn next_discard(&mut self) -> Option<Output> {
        if !ENABLED {
            return None;
        }
        while let Some(seq) = self.discards.pop_front() {
            if seq >= self.delete_cursor {
                return Some(Output::Discard { seq });
            }
        }
        None
    }

    /// Whether the oldest window should be read now although no send is
    /// due: a critical event is pending (overflow must know which events
    /// are critical before it picks a victim).
    pub(super) fn read_for_critical(&self) -> bool {
        ENABLED
            && self.critical_through.is_some()
            && self.pending.front_len() == 0
            && self.backoff.is_none()
            && self.halt.is_none()
    }

    /// Whether a critical event still waits for its flush.
    pub(super) fn critical_flush_due(&self) -> bool {
        ENABLED
            && self
                .critical_through
                .is_some_and(|c| c >= self.pending.head() && !self.pending.is_empty())
    }

    /// The request ends once the head passed the event.
    pub(super) fn settle_critical_flush(&mut self) {
        if ENABLED && !self.critical_flush_due() {
            self.critical_through = None;
        }
    }

    /// Whether `DropOldest` can make room for a new event of `size` bytes
    /// without dropping a critical one, or (for a critical new event) the
    /// windows see the whole queue and it is all critical, so the normal
    /// rule applies.
    ///
    /// While a critical event is pending, room must be proven from the
    /// sizes the windows hold: the numbers they do not show may hide
    /// critical events only (the machine would then have to drop one, or
    /// fail to make the room it promised), so an unproven track is refused
    /// (`QueueFull`, as `RejectNew`: the caller is told, nothing is lost).
    pub(super) fn room_for(&self, size: u32, critical: bool) -> bool {
        if !ENABLED {
            return true;
        }
        let critical_pending = self.critical_flush_due();
        if self.pending.entry(self.pending.head()).is_none() {
            // Not known yet: the machine reads the sizes it lacks first,
            // unless a critical event may be among them.
            return !critical_pending;
        }
        let events =
            (self.pending.len() + 1).saturating_sub(u64::from(self.config.max_queue_events));
        let bytes =
            (self.pending.bytes() + u64::from(size)).saturating_sub(self.config.max_queue_bytes);
        self.pending.room_without_critical(
            self.in_flight.map(|b| (b.first, b.last)),
            self.commits.persist_cursor,
            events,
            bytes,
            critical_pending,
        ) || (critical && self.pending.sees_all())
    }

    /// Over the limits with a critical event at the head: drop the oldest
    /// non-critical event behind it, or, when there is none, the head
    /// itself. Returns whether anything left.
    pub(super) fn drop_behind_critical(&mut self) -> bool {
        if !ENABLED {
            // No critical event is ever pending: nothing to pick.
            return false;
        }
        let head = self.pending.head();
        if self.pending.entry(head).is_none_or(is_hole) || self.discards.is_full() {
            // Sizes to read, or discards to drain first.
            return false;
        }
        let skip = self.in_flight.map(|b| (b.first, b.last));
        let before = self.commits.persist_cursor;
        let victim = self
            .pending
            .victim(skip, before)
            .or_else(|| self.pending.victim_in_back(skip, before));
        let (seq, hidden_size, discard) = match victim {
            Some(v) => (v, None, true),
            // The oldest window is still being read: a victim may come.
            None if self.pending.missing().is_some() && self.pending.front_len() < N => {
                return false
            }
            // A non-critical event may hide where no window looks: read
            // the hidden sizes (a bounded scan) before a critical one goes.
            #[cfg(any(test, feature = "critical"))]
            None if !self.pending.sees_all() => match self.scanned_victim() {
                None => return false,
                Some(Some((seq, size))) => (seq, Some(size), true),
                Some(None) => (head, None, false),
            },
            None => (head, None, false),
        };
        let gone = match (discard, hidden_size) {
            (true, Some(size)) => {
                self.pending.spend_hidden(seq, size) && self.discards.push_back(seq).is_ok()
            }
            (true, None) => self.pending.spend(seq) && self.discards.push_back(seq).is_ok(),
            (false, _) => self.pending.pop_front().is_some(),
        };
        if gone {
            self.counters.dropped_overflow += 1;
            self.push_note(Output::Dropped {
                first: seq,
                last: seq,
                reason: DropReason::Overflow,
            });
        }
        gone
    }
}
