//! The delivery state machine.
//!
//! [`Machine`] decides what to store, what to upload, what to delete and when
//! to try again; it does none of it. Drive it like this, in this order:
//!
//! 1. `handle(now, input)` for everything that happens (a track, a response,
//!    a tick at or after [`Machine::poll_timeout`], the network, ...);
//! 2. then drain [`Machine::poll_output`] until it returns `None`, applying
//!    every output in order;
//! 3. sleep until `poll_timeout()` or the next input, whichever is first.
//!
//! Every call does bounded work: at most one batch (`max_batch_events`) is
//! walked per output, and an input touches at most `N` sizes (the window).
//! No input from outside can make it panic; a panic is a bug.
//!
//! The machine keeps the totals of the whole queue and the sizes of two
//! windows of `N` events only (the oldest, for batches and drops; the newest,
//! until they are committed), so its memory does not grow with the queue.
//! When it needs sizes it does not hold, it asks the store with
//! [`Output::ReadSizes`] and takes the answers as [`Input::Size`].

use core::time::Duration;

use crate::config::{Config, ConfigError, FlushMode, Overflow};
use crate::error::InputError;
use crate::input::{Input, Lifecycle, LocalFailure};
use crate::network::{Link, NetworkKind};
use crate::notes::Notes;
use crate::output::{Batch, BatchId, DropReason, HaltReason, Output, RejectReason, RetryCause};
use crate::pending::{is_hole, Pending, SPENT};
use crate::rng::SplitMix64;
use crate::stats::Stats;
use crate::store::{StoreSummary, CRITICAL, DISCARDED, HOLE};
use crate::time::duration_millis;
use crate::{Instant, Seq, MAX_SEQ};

mod critical;
#[cfg(feature = "expiry")]
mod expiry;

/// What an accepted input produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Accepted {
    /// A tracked event got this sequence number; a `Persist` for it follows.
    Tracked(Seq),
    /// The input was applied.
    Applied,
}

/// The machine narrows batches after a 400/422 (poison) or 413 (too large).
#[derive(Clone, Copy, Debug)]
struct Narrowing {
    /// Newest event of the batch that failed.
    end: Seq,
    /// Most events in the next batch.
    cap: u32,
    poison: bool,
}

#[derive(Clone, Copy, Debug)]
struct Backoff {
    until: Instant,
    cause: RetryCause,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    tracked: u64,
    restored: u64,
    delivered: u64,
    dropped_overflow: u64,
    dropped_max_attempts: u64,
    dropped_not_stored: u64,
    #[cfg(feature = "expiry")]
    dropped_expired: u64,
    rejected: u64,
    retries: u64,
    notes_overflowed: u32,
}

/// Commits: what is appended, what is durable, and when a commit is owed.
#[derive(Clone, Copy, Debug, Default)]
struct Commits {
    /// Next sequence number whose `Persist` has not been emitted.
    persist_cursor: Seq,
    /// Events below this are committed.
    commit_cursor: Seq,
    /// `commit_cursor` before the last `Commit`, until the next input
    /// (a `CommitFailed` takes back from there).
    last_from: Option<Seq>,
    /// When the oldest uncommitted `Persist` was emitted.
    since: Option<Instant>,
    /// A commit was asked for (`Input::Commit`, the group-commit timer).
    requested: bool,
}

/// Reads of sizes the window lacks.
#[derive(Clone, Copy, Debug, Default)]
struct Refill {
    /// A `ReadSizes` is out, answered up to (not including) this number.
    asked_until: Option<Seq>,
    /// The store could not answer; ask again at this instant.
    retry_at: Option<Instant>,
}

/// Ranges of numbers the machine spent without storing them that it
/// remembers (see [`Machine`]'s `spent`).
const SPENT_RANGES: usize = 4;

/// Numbers `[start, end)` the machine spent. An exact range holds nothing
/// else; a range merged because the list was full (`exact: false`) may hold
/// events too: there a hole is the machine's own, and a size is an event.
#[derive(Clone, Copy, Debug)]
struct SpentRange {
    start: Seq,
    end: Seq,
    exact: bool,
}

/// The sans-IO delivery machine with a window of `N` sizes.
///
/// `N` bounds `max_batch_events` (a batch's sizes must fit the window) but
/// not the queue: `max_queue_events` and `max_queue_bytes` may be far
/// larger, the store holds the rest. Each window slot costs 8 bytes (the
/// oldest and the newest sizes), never a payload.
#[derive(Clone, Debug)]
pub struct Machine<const N: usize> {
    config: Config,
    pending: Pending<N>,
    rng: SplitMix64,
    now: Instant,
    commits: Commits,
    refill: Refill,
    /// Head at the last `Delete` emitted.
    delete_cursor: Seq,
    in_flight: Option<Batch>,
    in_flight_deadline: Option<Instant>,
    next_batch_id: BatchId,
    narrowing: Option<Narrowing>,
    /// The smallest batch (in bytes) a 413 refused; batches stay below it
    /// until one of at least that size is delivered.
    too_large_bytes: Option<u32>,
    /// Payload bytes the driver's buffer holds, once a batch did not fit.
    buffer_bytes: Option<u32>,
    /// A record found damaged: rejected once it is the oldest.
    malformed: Option<Seq>,
    backoff: Option<Backoff>,
    period_due: Option<Instant>,
    attempts: u32,
    local_failures: u32,
    rejections_in_a_row: u32,
    /// An explicit flush request: stands until the queue is empty.
    explicit_flush: bool,
    /// A flush the mode requested: cancelled when the mode changes.
    auto_flush: bool,
    /// The network, its kind and power save, as last reported.
    link: Link,
    halt: Option<HaltReason>,
    /// A restore or a track happened: no restore may follow.
    started: bool,
    /// The store's floor: numbering never goes below it.
    seq_floor: Seq,
    /// Pending numbers the machine spent without storing them (a
    /// `NotStored` drop, a skip to the store's floor) that no window marks
    /// (the window's marks let go of them, or they never were in it),
    /// oldest first, as `[start, end)`: already reported (or never events),
    /// they leave silently, and a record the store still shows for one of
    /// them (a failed sync's) is a hole. Bounded: when full, a new range is
    /// merged into the newest one, which then stops being exact (see
    /// [`SpentRange`]): every hole in it is taken for the machine's own, and
    /// a record the store shows in it for an event.
    spent: heapless::Deque<SpentRange, SPENT_RANGES>,
    /// Holes dropped at the head and not yet reported: a run is reported
    /// once, when it ends; no `Delete` passes its start until then.
    damaged_run: Option<(Seq, Seq)>,
    /// Events marked not stored in the window whose report is still owed.
    unreported: bool,
    tracked_any: bool,
    /// A critical event asked for the queue to be flushed up to it
    /// (`critical.rs`): stands until the head passes it.
    critical_through: Option<Seq>,
    /// Overflow victims dropped from the middle of the queue whose
    /// `Discard` is still owed.
    discards: heapless::Deque<Seq, { critical::DISCARDS }>,
    /// The read of hidden sizes looking for an overflow victim behind a
    /// critical head (`critical.rs`).
    #[cfg(any(test, feature = "critical"))]
    scan: critical::Scan,
    /// The newest critical event whose flag no window holds any more (its
    /// size left `back`, so it is committed): what a critical flush falls
    /// back to when the events after it were not stored (`critical.rs`).
    #[cfg(any(test, feature = "critical"))]
    critical_unseen: Option<Seq>,
    /// The wall clock and the oldest fresh event (`expiry.rs`).
    #[cfg(feature = "expiry")]
    expiry: expiry::Expiry,
    notes: Notes,
    counters: Counters,
}

impl<const N: usize> Machine<N> {
    /// A machine with `config`, drawing retry jitter from `seed`.
    ///
    /// Fails when `max_batch_events` was set above the window `N` (when it
    /// was left unset it becomes 500 or `N`, whichever is smaller). The
    /// network is assumed up until told otherwise.
    ///
    /// ```
    /// use outbox_core::{Config, Machine};
    /// let m = Machine::<64>::new(Config::default(), 1).unwrap();
    /// assert_eq!(m.config().max_batch_events(), 64);
    /// assert_eq!(m.config().max_queue_events(), 1000);
    /// ```
    // Inlined, so a Config known at compile time is checked at compile
    // time (the firmware's); the machine itself is built in one place.
    #[inline(always)]
    pub fn new(config: Config, seed: u64) -> Result<Self, ConfigError> {
        let config = config.validate()?.for_window(N)?;
        Ok(Self::with_checked(config, seed))
    }

    /// [`new`](Self::new) once `config` passed its checks. Not inlined:
    /// the machine is built once, in place, rather than field by field in
    /// its caller (firmware flash, see firmware/size.sh).
    #[inline(never)]
    fn with_checked(config: Config, seed: u64) -> Self {
        Machine {
            config,
            pending: Pending::new(),
            rng: SplitMix64::new(seed),
            now: Instant::ZERO,
            commits: Commits::default(),
            refill: Refill::default(),
            delete_cursor: 0,
            in_flight: None,
            in_flight_deadline: None,
            next_batch_id: 1,
            narrowing: None,
            too_large_bytes: None,
            buffer_bytes: None,
            malformed: None,
            backoff: None,
            period_due: None,
            attempts: 0,
            local_failures: 0,
            rejections_in_a_row: 0,
            explicit_flush: false,
            auto_flush: false,
            link: Link::new(config.upload_on),
            halt: None,
            started: false,
            seq_floor: 0,
            spent: heapless::Deque::new(),
            damaged_run: None,
            unreported: false,
            tracked_any: false,
            critical_through: None,
            discards: heapless::Deque::new(),
            #[cfg(any(test, feature = "critical"))]
            scan: critical::Scan::new(),
            #[cfg(any(test, feature = "critical"))]
            critical_unseen: None,
            #[cfg(feature = "expiry")]
            expiry: expiry::Expiry::default(),
            notes: Notes::new(),
            counters: Counters::default(),
        }
    }

    /// The configuration in force (runtime changes included).
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Apply one input at `now`. On `Err` the input was refused and not
    /// applied (the machine's clock still moves to `now`).
    // Inlined: each caller passes a known input, so only its branch is
    // compiled in, and a firmware carries none it never sends (flush
    // modes, lifecycle, network; see firmware/size.sh).
    #[inline(always)]
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Accepted, InputError> {
        self.enter(
            now,
            matches!(input, Input::Size { .. }),
            matches!(input, Input::CommitFailed),
        );
        #[cfg(feature = "expiry")]
        self.expiry_enter(matches!(input, Input::Fresh { .. }));
        let result = match input {
            Input::Track { size } => return self.on_track(size, false).map(Accepted::Tracked),
            Input::TrackCritical { size } => {
                if !critical::ENABLED {
                    return Err(InputError::CriticalUnsupported);
                }
                return self.on_track(size, true).map(Accepted::Tracked);
            }
            Input::Restore(summary) => self.on_restore(summary),
            Input::SeqFloor { next } => self.on_seq_floor(next),
            Input::SetFlushMode(mode) => {
                self.on_set_mode(mode);
                Ok(())
            }
            Input::SetFlushPeriod(period) => self.on_set_period(period),
            Input::SetFlushThreshold(t) => match self.config.check_threshold(t) {
                Ok(()) => {
                    self.config.flush_threshold = t;
                    Ok(())
                }
                Err(e) => Err(InputError::Config(e)),
            },
            other => {
                self.on_event(other);
                Ok(())
            }
        };
        self.settle();
        result.map(|()| Accepted::Applied)
    }

    /// What every input does first: the clock moves to `now`; an input
    /// other than a `Size` ends the `ReadSizes` out (its answers are
    /// over), and one other than a `CommitFailed` the commit it would take
    /// back.
    // Not inlined: one copy serves every `handle` (firmware flash, see
    // firmware/size.sh).
    #[inline(never)]
    fn enter(&mut self, now: Instant, size: bool, commit_failed: bool) {
        if now > self.now {
            self.now = now;
        }
        if !size {
            self.refill.asked_until = None;
        }
        if !commit_failed {
            self.commits.last_from = None;
        }
    }

    /// The inputs that cannot be refused.
    // Inlined into `handle`, for the same reason.
    #[inline(always)]
    fn on_event(&mut self, input: Input) {
        match input {
            Input::Tick => self.on_tick(),
            Input::Flush => {
                if !self.pending.is_empty() {
                    self.explicit_flush = true;
                }
            }
            Input::Network { up, kind } => self.on_network(up, kind),
            // Leaving power save needs nothing more: the deferred request
            // stood, and `wants_send` sees it now.
            Input::PowerSave(on) => self.link.set_power_save(on),
            Input::Lifecycle(l) => self.on_lifecycle(l),
            Input::Response {
                batch,
                status,
                retry_after,
            } => self.on_response(batch, status, retry_after),
            Input::TransportFailed { batch } => {
                if let Some(b) = self.take_in_flight(batch) {
                    self.fail_attempt(b, RetryCause::Transport, None);
                }
            }
            Input::Size { seq, size } => self.on_size(seq, size),
            Input::CriticalPending { through } => self.on_critical_pending(through),
            Input::SizesUnavailable { .. } => {
                self.refill.asked_until = None;
                let until = self.now.plus_millis(self.local_delay());
                self.refill.retry_at = Some(until);
            }
            Input::PersistFailed { from_seq } => {
                let from = from_seq.max(self.commits.commit_cursor);
                self.drop_newest_from(from);
            }
            Input::Commit => self.commits.requested = true,
            #[cfg(feature = "expiry")]
            Input::WallClock { now_ms } => self.on_wall_clock(now_ms),
            #[cfg(feature = "expiry")]
            Input::Fresh { first_fresh_seq } => self.on_fresh(first_fresh_seq),
            Input::CommitFailed => {
                let from = self
                    .commits
                    .last_from
                    .take()
                    .unwrap_or(self.commits.commit_cursor);
                self.drop_newest_from(from);
            }
            Input::DeleteFailed => self.halt_with(0, HaltReason::Storage),
            Input::LocalFailure { batch, failure } => self.on_local_failure(batch, failure),
            Input::Malformed { batch, seq } => {
                let _ = self.take_in_flight(batch);
                if seq >= self.pending.head() && seq < self.pending.end() {
                    self.malformed = Some(seq);
                }
            }
            Input::Resume => {
                if self.halt == Some(HaltReason::Storage) {
                    // Try the delete that failed again.
                    self.delete_cursor = self
                        .delete_cursor
                        .min(self.pending.head().saturating_sub(1));
                }
                self.halt = None;
                self.rejections_in_a_row = 0;
            }
            // Handled by `handle`.
            Input::Track { .. }
            | Input::TrackCritical { .. }
            | Input::Restore(_)
            | Input::SeqFloor { .. }
            | Input::SetFlushMode(_)
            | Input::SetFlushPeriod(_)
            | Input::SetFlushThreshold(_) => {}
        }
    }

    /// Track an event of `size` bytes: a shorthand for `handle(now, Input::Track { size })`.
    pub fn track(&mut self, now: Instant, size: u32) -> Result<Seq, InputError> {
        match self.handle(now, Input::Track { size })? {
            Accepted::Tracked(seq) => Ok(seq),
            // `on_track` only ever answers `Tracked`.
            Accepted::Applied => Ok(self.pending.end().saturating_sub(1)),
        }
    }

    /// The next thing to do, in the order it must be done; `None` when idle.
    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[inline(never)]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.notes.is_empty() {
            // Reports, room owed, or holes at the head, that waited for
            // the notifications before them to be drained.
            self.report_not_stored();
            self.make_room();
            if self.pending.is_empty() {
                // As `settle` does: an emptied queue owes no flush.
                self.explicit_flush = false;
                self.auto_flush = false;
                self.period_due = None;
            }
        }
        let head = self.pending.head();
        let c = &mut self.commits;
        c.persist_cursor = c.persist_cursor.max(head);
        c.commit_cursor = c.commit_cursor.max(head);
        // Notifications first (a `Rejected` precedes the `Delete` covering
        // it), then deletes (so a store sized to the limits makes room before
        // the event that overflowed it), then persists, commits, reads of
        // sizes, and last a send (which only names committed events).
        if let Some(note) = self.notes.pop() {
            return Some(note);
        }
        // Discards before the delete that may pass them.
        if let Some(output) = self.next_discard() {
            return Some(output);
        }
        // Holes not reported yet are not deleted yet either.
        let deletable = self.damaged_run.map_or(head, |(first, _)| first.min(head));
        if deletable > self.delete_cursor {
            self.delete_cursor = deletable;
            return Some(Output::Delete {
                through: deletable - 1,
            });
        }
        if self.over_limits() {
            // Room is still owed: the sizes to drop come first.
            #[cfg(any(test, feature = "critical"))]
            return self.ask_sizes().or_else(|| self.ask_scan());
            #[cfg(not(any(test, feature = "critical")))]
            return self.ask_sizes();
        }
        if self.commits.persist_cursor < self.pending.end() {
            let seq = self.commits.persist_cursor;
            self.commits.persist_cursor += 1;
            self.commits.since.get_or_insert(self.now);
            let size = self.pending.size_of(seq).unwrap_or(0);
            return Some(Output::Persist { seq, size });
        }
        if self.commit_due() {
            let c = &mut self.commits;
            c.last_from = Some(c.commit_cursor);
            c.commit_cursor = c.persist_cursor;
            c.since = None;
            c.requested = false;
            return Some(Output::Commit);
        }
        self.commits.requested = false;
        if self.commits.commit_cursor >= self.commits.persist_cursor {
            self.commits.since = None;
        }
        if self.read_for_critical() {
            if let Some(ask) = self.ask_sizes() {
                return Some(ask);
            }
        }
        if !self.wants_send() {
            return None;
        }
        if self.pending.front_len() < self.config.max_batch_events() as usize
            && self.pending.missing().is_some()
            && self.refill.retry_at.is_none()
        {
            return self.ask_sizes();
        }
        if self.pending.size_of(head).is_none_or(is_hole) || self.commits.commit_cursor <= head {
            return None;
        }
        #[cfg(feature = "expiry")]
        if let Some(output) = self.expiry_step() {
            return output;
        }
        let batch = self.next_batch();
        self.in_flight = Some(batch);
        self.in_flight_deadline = Some(self.now.plus_millis(self.config.request_timeout_millis));
        Some(Output::Send(batch))
    }

    /// When the machine next wants a `Tick`; `None` means never (until another input).
    ///
    /// An idle machine (nothing pending, nothing in flight) never asks to be
    /// woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.in_flight_deadline;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        // Behind a critical head, overflow victims leave the middle of the
        // queue as holes: a span of holes only holds no event to wait for
        // (its sizes are read, and the holes go, at the next input).
        let events = if critical::ENABLED {
            self.pending.has_events()
        } else {
            !self.pending.is_empty()
        };
        if events {
            consider(self.backoff.map(|b| b.until));
            consider(self.period_due);
            consider(self.refill.retry_at);
            consider(self.commit_deadline());
        }
        next
    }

    /// The machine's accounts.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            pending_events: u32::try_from(self.pending.len()).unwrap_or(u32::MAX),
            pending_bytes: self.pending.bytes(),
            in_flight_events: self
                .in_flight
                .and_then(|b| self.live_range(&b))
                .map_or(0, |(f, l)| u32::try_from(l - f + 1).unwrap_or(u32::MAX)),
            tracked: c.tracked,
            restored: c.restored,
            delivered: c.delivered,
            dropped_overflow: c.dropped_overflow,
            dropped_max_attempts: c.dropped_max_attempts,
            dropped_not_stored: c.dropped_not_stored,
            dropped_damaged: self.pending.damaged(),
            #[cfg(feature = "expiry")]
            dropped_expired: c.dropped_expired,
            rejected: c.rejected,
            retries: c.retries,
            notes_overflowed: c.notes_overflowed,
            halted: self.halt.is_some(),
            halt_reason: self.halt,
            network_up: self.link.up(),
            uploads_allowed: self.link.usable(),
            power_save: self.link.power_save(),
            flush_requested: self.explicit_flush || self.auto_flush || self.critical_flush_due(),
            retry_at: self.backoff.map(|b| b.until),
            next_seq: self.pending.end(),
        }
    }

    /// The batch awaiting a response, if any.
    pub const fn in_flight(&self) -> Option<Batch> {
        self.in_flight
    }

    /// Size of the pending event `seq`, if one of the windows holds it
    /// (always so for the events of the batch just sent).
    pub fn pending_size(&self, seq: Seq) -> Option<u32> {
        self.pending.size_of(seq)
    }

    // ----- inputs ---------------------------------------------------------

    fn on_track(&mut self, size: u32, critical: bool) -> Result<Seq, InputError> {
        let max = self.config.max_event_bytes;
        if size > max {
            return Err(InputError::TooLarge { size, max });
        }
        if !self.fits(size)
            && (self.config.overflow == Overflow::RejectNew || !self.room_for(size, critical))
        {
            return Err(InputError::QueueFull);
        }
        let seq = self.pending.end();
        if seq >= MAX_SEQ {
            return Err(InputError::SeqExhausted);
        }
        if self.unreported
            || self
                .pending
                .push_evicts()
                .is_some_and(|s| s >= self.commits.commit_cursor)
        {
            return Err(InputError::Undrained);
        }
        let critical = critical::ENABLED && critical;
        let entry = if critical { size | CRITICAL } else { size };
        if let Some((seq, evicted)) = self.pending.push(entry) {
            if is_hole(evicted) {
                // A number spent: only the store knows this part of the
                // queue from now on, and it may still show a record.
                self.note_spent(seq, seq + 1);
            }
            self.note_unseen_critical(seq, evicted);
        }
        self.started = true;
        self.tracked_any = true;
        self.counters.tracked += 1;
        if self.config.flush_mode == FlushMode::Immediate {
            self.auto_flush = true;
        }
        if critical {
            self.request_critical_flush(seq);
        }
        self.settle();
        Ok(seq)
    }

    fn on_tick(&mut self) {
        let now = self.now;
        if self.backoff.is_some_and(|b| b.until <= now) {
            self.backoff = None;
        }
        if self.period_due.is_some_and(|due| due <= now) {
            self.period_due = None;
            self.request_auto_flush();
        }
        if self.refill.retry_at.is_some_and(|t| t <= now) {
            self.refill.retry_at = None;
        }
        if self.commit_deadline().is_some_and(|t| t <= now) {
            // Owed now: no longer a timer but an output.
            self.commits.requested = true;
        }
        if self.in_flight_deadline.is_some_and(|t| t <= now) {
            if let Some(b) = self.in_flight.take() {
                self.in_flight_deadline = None;
                self.fail_attempt(b, RetryCause::Transport, None);
            }
        }
    }

    /// Up or down, or another kind: becoming usable for uploads (up, or
    /// unmetered under that policy) acts like the network coming back.
    fn on_network(&mut self, up: bool, kind: NetworkKind) {
        if !self.link.set_network(up, kind, self.config.upload_on) {
            return;
        }
        if let Some(Backoff {
            cause: RetryCause::Transport,
            ..
        }) = self.backoff
        {
            self.backoff = None;
            self.attempts = 0;
        }
        if self.config.flush_mode.is_automatic() {
            self.request_auto_flush();
        }
    }

    fn on_lifecycle(&mut self, lifecycle: Lifecycle) {
        let flush = match (lifecycle, self.config.flush_mode) {
            (_, FlushMode::Manual) => false,
            (Lifecycle::Foreground, FlushMode::Period) => true,
            (Lifecycle::Foreground, _) => false,
            (Lifecycle::Background | Lifecycle::Terminate, _) => true,
        };
        if flush {
            self.request_auto_flush();
        }
    }

    fn on_response(&mut self, id: BatchId, status: u16, retry_after: Option<Duration>) {
        let Some(batch) = self.take_in_flight(id) else {
            return;
        };
        match status {
            200..=299 => self.on_delivered(batch),
            400 | 422 => self.on_refused(batch, status, RejectReason::Poison),
            413 => self.on_refused(batch, status, RejectReason::TooLarge),
            408 | 429 => self.fail_attempt(batch, RetryCause::Server, retry_after),
            // Credentials, a wrong endpoint or protocol: retrying cannot
            // help and dropping would lose data.
            401..=499 | 501 | 505 => self.halt_with(status, HaltReason::Status),
            _ => self.fail_attempt(batch, RetryCause::Server, retry_after),
        }
    }

    fn on_delivered(&mut self, batch: Batch) {
        self.attempts = 0;
        self.local_failures = 0;
        self.rejections_in_a_row = 0;
        if self.too_large_bytes.is_some_and(|t| batch.bytes >= t) {
            self.too_large_bytes = None;
        }
        if let Some((first, last)) = self.live_range(&batch) {
            self.pop_through(last);
            self.counters.delivered += last - first + 1;
            self.push_note(Output::Delivered { first, last });
        }
        self.narrowing = match self.narrowing {
            Some(n) if n.end >= self.pending.head() => {
                let left = (n.end - self.pending.head() + 1).min(u64::from(u32::MAX)) as u32;
                // Poison: the first half was clean, so the bad event is in
                // what is left: halve it. Too large: keep the halved size.
                let cap = if n.poison { left.div_ceil(2) } else { n.cap };
                Some(Narrowing { cap, ..n })
            }
            _ => None,
        };
    }

    /// 400/422 or 413: bisect, or reject the one event that still fails.
    fn on_refused(&mut self, batch: Batch, status: u16, reason: RejectReason) {
        self.attempts = 0;
        let Some((first, last)) = self.live_range(&batch) else {
            return;
        };
        let poison = reason == RejectReason::Poison;
        // Only a batch of one names its culprit: if overflow dropped part of
        // a larger batch in flight, the bad event may be among those gone.
        if batch.count == 1 {
            self.reject_head(first, status, reason);
            self.narrowing = match self.narrowing {
                Some(n) if !n.poison && n.end > first => Some(n),
                _ => None,
            };
            self.rejections_in_a_row = self.rejections_in_a_row.saturating_add(1);
            if self
                .config
                .max_consecutive_rejections
                .is_some_and(|max| self.rejections_in_a_row >= max)
            {
                self.halt_with(status, HaltReason::RejectionStorm);
            }
        } else {
            if !poison {
                let cap = self
                    .too_large_bytes
                    .map_or(batch.bytes, |t| t.min(batch.bytes));
                self.too_large_bytes = Some(cap);
            }
            let count = (last - first + 1).min(u64::from(u32::MAX)) as u32;
            self.narrowing = Some(Narrowing {
                end: last,
                cap: count.div_ceil(2),
                poison,
            });
        }
    }

    /// Dead-letter the oldest event `seq`.
    fn reject_head(&mut self, seq: Seq, status: u16, reason: RejectReason) {
        if self.pending.head() != seq || self.pending.pop_front().is_none() {
            return;
        }
        self.counters.rejected += 1;
        self.push_note(Output::Rejected {
            seq,
            status,
            reason,
        });
    }

    fn on_local_failure(&mut self, batch: BatchId, failure: LocalFailure) {
        let Some(b) = self.take_in_flight(batch) else {
            return;
        };
        match failure {
            // One event larger than the buffer (restored after the limits
            // shrank) can never be carried: rejected, with no server status.
            LocalFailure::Buffer { .. } if b.count == 1 => {
                self.reject_head(b.first, 0, RejectReason::TooLarge);
            }
            LocalFailure::Buffer { bytes } => self.buffer_bytes = Some(bytes),
            LocalFailure::Read => {
                let until = self.now.plus_millis(self.local_delay());
                self.backoff = Some(Backoff {
                    until,
                    cause: RetryCause::Local,
                });
                self.push_note(Output::RetryScheduled {
                    at: until,
                    attempt: self.attempts,
                    cause: RetryCause::Local,
                });
            }
        }
    }

    fn on_size(&mut self, seq: Seq, size: u32) {
        // A number the machine spent is a hole whatever the store shows
        // (a record whose sync failed may still be readable); a size no
        // event can have is one too.
        let size = match self.spent_range(seq).map(|r| r.exact) {
            Some(true) => SPENT,
            Some(false) if is_hole(size) => SPENT,
            _ if critical::ENABLED && size == DISCARDED => SPENT,
            _ if is_hole(size) => HOLE,
            _ => size,
        };
        let _kept = self.pending.refill(seq, size);
        #[cfg(any(test, feature = "critical"))]
        if !_kept {
            self.note_scanned(seq, size);
        }
        self.note_restored_critical(seq, size);
        if self
            .refill
            .asked_until
            .is_some_and(|until| seq + 1 >= until)
        {
            self.refill.asked_until = None;
        }
    }

    fn on_restore(&mut self, summary: StoreSummary) -> Result<(), InputError> {
        if self.started {
            return Err(InputError::RestoreOutOfOrder {
                seq: summary.first,
                expected_at_least: self.pending.end(),
            });
        }
        // Nothing held. (A count of 0 with a span is a store that lost
        // every record it held: the span's numbers are holes, reported
        // dropped as damaged.)
        if summary.count == 0 && summary.last == 0 {
            self.started = true;
            return Ok(());
        }
        if summary.last >= MAX_SEQ {
            return Err(InputError::RestoreOutOfRange { seq: summary.last });
        }
        if summary.last < summary.first {
            return Err(InputError::RestoreGap {
                seq: summary.last,
                expected: summary.first,
            });
        }
        // The numbers between the intact records that have none are holes.
        let span = summary.last - summary.first + 1;
        if summary.count > span {
            return Err(InputError::RestoreCount {
                count: summary.count,
                span,
            });
        }
        self.started = true;
        if self.delete_cursor == self.pending.head() {
            self.delete_cursor = summary.first;
        }
        let end = summary.last + 1;
        if summary.count == 0 {
            // Every record lost: nothing to read or send; the span is
            // reported at once, and deleted after the report.
            self.push_note(Output::Dropped {
                first: summary.first,
                last: summary.last,
                reason: DropReason::Damaged,
            });
            self.pending.reset_empty_at(end);
        } else {
            self.pending
                .restore(summary.first, end, summary.bytes, span - summary.count);
        }
        self.commits.persist_cursor = end;
        self.commits.commit_cursor = end;
        self.counters.restored = summary.count;
        if self.config.flush_mode == FlushMode::Immediate {
            self.auto_flush = true;
        }
        Ok(())
    }

    fn on_seq_floor(&mut self, next: Seq) -> Result<(), InputError> {
        if next > MAX_SEQ {
            return Err(InputError::RestoreOutOfRange { seq: next });
        }
        if self.tracked_any {
            return Err(InputError::RestoreOutOfOrder {
                seq: next,
                expected_at_least: self.pending.end(),
            });
        }
        self.started = true;
        self.seq_floor = self.seq_floor.max(next);
        self.apply_seq_floor();
        Ok(())
    }

    /// Numbering continues at the store's floor, whether or not the queue
    /// is empty (numbers are never reused): an empty queue restarts there,
    /// and a queue holding records gets the numbers up to the floor as
    /// spent holes (they leave silently when they reach the head).
    fn apply_seq_floor(&mut self) {
        let next = self.seq_floor;
        let end = self.pending.end();
        if self.tracked_any || next <= end {
            return;
        }
        if self.pending.is_empty() {
            // Records the restore dropped keep their delete owed.
            if self.delete_cursor == self.pending.head() {
                self.delete_cursor = next;
            }
            self.pending.reset_empty_at(next);
        } else if self.pending.extend_holes(next) {
            self.note_spent(end, next);
        } else {
            return;
        }
        self.commits.persist_cursor = next;
        self.commits.commit_cursor = next;
    }

    /// Remember `[start, end)` as spent (merged with the newest range when
    /// they touch; not kept when the list is full).
    fn note_spent(&mut self, start: Seq, end: Seq) {
        let full = self.spent.is_full();
        if let Some(last) = self.spent.back_mut() {
            if start <= last.end || full {
                // Adjacent: still exact. Full: merged, no longer exact.
                last.exact &= start <= last.end;
                last.end = last.end.max(end);
                return;
            }
        }
        let _ = self.spent.push_back(SpentRange {
            start,
            end,
            exact: true,
        });
    }

    fn spent_range(&self, seq: Seq) -> Option<SpentRange> {
        self.spent
            .iter()
            .copied()
            .find(|r| r.start <= seq && seq < r.end)
    }

    /// The events from `from` on were not stored: they leave, reported,
    /// and their numbers are spent for good (the next event is numbered
    /// after them, so no receipt or response of theirs can match it).
    fn drop_newest_from(&mut self, from: Seq) {
        let from = from.max(self.pending.head());
        let end = self.pending.end();
        if from >= end {
            return;
        }
        // Each run of events (numbers spent before are not reported again)
        // is one report, queued as the notifications leave room.
        let mut gone = 0;
        for seq in from..end {
            if self.pending.mark_spent(seq) {
                gone += 1;
            }
        }
        self.counters.dropped_not_stored += gone;
        self.unreported |= gone > 0;
        self.forget_critical_from(from);
        self.report_not_stored();
        // The window marks them; the list only once they leave it (`on_track`).
        let c = &mut self.commits;
        c.persist_cursor = end;
        if c.commit_cursor >= from {
            c.commit_cursor = end;
        }
        if self.malformed.is_some_and(|m| m >= from) {
            self.malformed = None;
        }
        // A batch only names stored events.
        if let Some(b) = self.in_flight.as_mut() {
            if from <= b.first {
                // Nothing of it was stored: its answer acknowledges nothing.
                b.first = 1;
                b.last = 0;
            } else if b.last >= from {
                b.last = from - 1;
            }
        }
    }

    /// Queue the `NotStored` reports owed, as far as the notifications
    /// have room (the rest when they are drained: `poll_output`).
    fn report_not_stored(&mut self) {
        while self.unreported && self.notes.room() > 0 {
            match self.pending.take_unreported_run() {
                Some((first, last)) => self.push_note(Output::Dropped {
                    first,
                    last,
                    reason: DropReason::NotStored,
                }),
                None => self.unreported = false,
            }
        }
    }

    fn on_set_mode(&mut self, mode: FlushMode) {
        self.config.flush_mode = mode;
        self.period_due = None;
        // A mode's requests go with it; an explicit flush stands.
        self.auto_flush = false;
        if mode == FlushMode::Immediate {
            self.request_auto_flush();
        }
    }

    fn on_set_period(&mut self, period: Duration) -> Result<(), InputError> {
        let millis = duration_millis(period);
        if millis == 0 {
            return Err(InputError::Config(ConfigError::ZeroFlushPeriod));
        }
        self.config.flush_period_millis = millis;
        self.period_due = None;
        Ok(())
    }

    // ----- shared mechanics ---------------------------------------------

    /// Re-derive timers and requests after every input.
    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[inline(never)]
    fn settle(&mut self) {
        self.make_room();
        self.apply_seq_floor();
        self.drop_head_holes();
        if let Some(m) = self.malformed {
            if m < self.pending.head() {
                self.malformed = None;
            } else if m == self.pending.head() && self.in_flight.is_none() {
                self.malformed = None;
                self.reject_head(m, 0, RejectReason::Malformed);
            }
        }
        if self.config.flush_mode == FlushMode::Period {
            if let Some(t) = self.config.flush_threshold {
                if self.pending.len() >= u64::from(t) {
                    self.request_auto_flush();
                }
            }
            if self.pending.is_empty()
                || self.auto_flush
                || self.explicit_flush
                || self.critical_flush_due()
            {
                self.period_due = None;
            } else if self.period_due.is_none() {
                self.period_due = Some(self.now.plus_millis(self.config.flush_period_millis));
            }
        } else {
            self.period_due = None;
        }
        if self.pending.is_empty() {
            self.explicit_flush = false;
            self.auto_flush = false;
        }
        self.settle_critical_flush();
        if let Some(n) = self.narrowing {
            if n.end < self.pending.head() {
                self.narrowing = None;
            }
        }
    }

    // Not inlined (firmware flash, see firmware/size.sh).
    #[inline(never)]
    fn request_auto_flush(&mut self) {
        // Holes alone owe no flush: a request made over them would stand
        // for the next event (sim seed 9254: terminate in AppClose over a
        // queue of discards, then a send of the next track).
        if self.pending.has_events() {
            self.auto_flush = true;
        }
    }

    fn halt_with(&mut self, status: u16, reason: HaltReason) {
        if self.halt == Some(reason) {
            return;
        }
        self.halt = Some(reason);
        self.push_note(Output::Halted { status, reason });
    }

    fn fits(&self, size: u32) -> bool {
        self.pending.len() < u64::from(self.config.max_queue_events)
            && self.pending.bytes().saturating_add(u64::from(size)) <= self.config.max_queue_bytes
    }

    fn over_limits(&self) -> bool {
        self.pending.len() > u64::from(self.config.max_queue_events)
            || self.pending.bytes() > self.config.max_queue_bytes
    }

    /// Drop the oldest events until the queue is within its limits (after
    /// a track, or a restore over limits that shrank). Stops early when the
    /// window runs dry; the sizes are asked for and it goes on when they come.
    /// Holes at the head leave first, as holes (never as overflow).
    fn make_room(&mut self) {
        loop {
            self.drop_head_holes();
            // Each round may queue two notifications (a run of holes and
            // an overflow): never more than the queue holds; the rest goes
            // on once they are drained (`poll_output`).
            if self.notes.room() < 2 {
                return;
            }
            let first = self.pending.head();
            while self.over_limits()
                && self
                    .pending
                    .entry(self.pending.head())
                    .is_some_and(critical::droppable_at_head)
                && self.pending.pop_front().is_some()
            {}
            let head = self.pending.head();
            if head == first {
                // A critical event at the head: a victim behind it.
                if critical::ENABLED && self.over_limits() && self.drop_behind_critical() {
                    continue;
                }
                return;
            }
            self.counters.dropped_overflow += head - first;
            self.push_note(Output::Dropped {
                first,
                last: head - 1,
                reason: DropReason::Overflow,
            });
        }
    }

    /// Drop the holes at the head: the machine's own (spent) silently, the
    /// store's as one `Damaged` report per run, sent when the run ends (an
    /// event, the machine's own holes, or an empty queue after it).
    fn drop_head_holes(&mut self) {
        // Events not stored are reported before anything after them leaves.
        self.report_not_stored();
        if self.unreported {
            return;
        }
        loop {
            // Closing a run queues a notification: never more than the
            // queue holds (the rest goes on once they are drained).
            if self.pending.is_empty() || self.notes.room() < 2 {
                break;
            }
            let head = self.pending.head();
            while self.spent.front().is_some_and(|r| r.end <= head) {
                self.spent.pop_front();
            }
            if let Some(&SpentRange {
                start,
                end,
                exact: true,
            }) = self.spent.front()
            {
                if start <= head {
                    self.close_damaged_run();
                    self.pending.skip_front_to(end);
                    continue;
                }
            }
            match self.pending.size_of(head) {
                Some(HOLE) => {
                    // A run only grows at the head, one number at a time.
                    let first = self.damaged_run.map_or(head, |(first, _)| first);
                    self.damaged_run = Some((first, head));
                    let _ = self.pending.pop_front();
                }
                Some(SPENT) => {
                    self.close_damaged_run();
                    let _ = self.pending.pop_front();
                }
                // An event, or a size not read yet (the run may go on).
                Some(_) => {
                    self.close_damaged_run();
                    break;
                }
                None => break,
            }
        }
        if self.pending.is_empty() && self.notes.room() > 0 {
            self.close_damaged_run();
        }
    }

    fn close_damaged_run(&mut self) {
        if let Some((first, last)) = self.damaged_run.take() {
            self.push_note(Output::Dropped {
                first,
                last,
                reason: DropReason::Damaged,
            });
        }
    }

    /// Ask for the sizes the oldest window lacks, unless already asked.
    // Inlined into its two callers (firmware flash, see firmware/size.sh).
    #[inline(always)]
    fn ask_sizes(&mut self) -> Option<Output> {
        if self.refill.asked_until.is_some() || self.refill.retry_at.is_some() {
            return None;
        }
        let (from, max) = self.pending.missing()?;
        self.refill.asked_until = Some(from + u64::from(max));
        Some(Output::ReadSizes { from, max })
    }

    fn commit_deadline(&self) -> Option<Instant> {
        let c = &self.commits;
        if c.requested || c.commit_cursor.max(self.pending.head()) >= c.persist_cursor {
            return None;
        }
        let since = c.since?;
        Some(since.plus_millis(self.config.max_commit_delay_millis))
    }

    /// Whether the appends so far must be committed now.
    fn commit_due(&self) -> bool {
        let c = &self.commits;
        if c.commit_cursor >= c.persist_cursor {
            return false;
        }
        c.requested
            || self.commit_deadline().is_some_and(|t| t <= self.now)
            || self.wants_send()
            // The next track would push an uncommitted size out of the window.
            || self
                .pending
                .push_evicts()
                .is_some_and(|s| s >= c.commit_cursor)
    }

    /// A local failure's delay: the backoff schedule, without spending an
    /// attempt.
    fn local_delay(&mut self) -> u64 {
        self.local_failures = self.local_failures.saturating_add(1);
        self.delay_for(self.local_failures)
    }

    // Not inlined (firmware flash, see firmware/size.sh).
    #[inline(never)]
    fn delay_for(&self, failures: u32) -> u64 {
        let exponent = failures.saturating_sub(1).min(31);
        let base = u64::from(self.config.retry_base_millis);
        (base << exponent).min(u64::from(self.config.retry_cap_millis))
    }

    // Inlined into its two callers (firmware flash, see firmware/size.sh).
    #[inline(always)]
    fn pop_through(&mut self, last: Seq) {
        while self.pending.head() <= last && self.pending.pop_front().is_some() {}
    }

    fn take_in_flight(&mut self, id: BatchId) -> Option<Batch> {
        match self.in_flight {
            Some(b) if b.id == id => {
                self.in_flight_deadline = None;
                self.in_flight.take()
            }
            _ => None,
        }
    }

    /// The part of `batch` still pending (overflow or a persist failure may
    /// have removed some of it while it was in flight).
    fn live_range(&self, batch: &Batch) -> Option<(Seq, Seq)> {
        let first = batch.first.max(self.pending.head());
        let last = batch.last.min(self.pending.end().checked_sub(1)?);
        (first <= last).then_some((first, last))
    }

    /// A failed attempt: back off and retry, or drop after `max_attempts`.
    fn fail_attempt(&mut self, batch: Batch, cause: RetryCause, retry_after: Option<Duration>) {
        self.attempts = self.attempts.saturating_add(1);
        self.counters.retries += 1;
        if let Some(max) = self.config.max_attempts {
            if self.attempts >= max {
                self.attempts = 0;
                if let Some((first, last)) = self.live_range(&batch) {
                    self.pop_through(last);
                    self.counters.dropped_max_attempts += last - first + 1;
                    self.push_note(Output::Dropped {
                        first,
                        last,
                        reason: DropReason::MaxAttempts,
                    });
                }
                return;
            }
        }
        let computed = self.delay_for(self.attempts);
        let mut delay = computed + self.rng.below_or_equal(computed / 2);
        let mut cause = cause;
        if let Some(asked) = retry_after {
            let asked = duration_millis(asked).min(u64::from(self.config.max_retry_after_millis));
            if asked > delay {
                delay = asked;
                cause = RetryCause::Server;
            }
        }
        let until = self.now.plus_millis(delay);
        self.backoff = Some(Backoff { until, cause });
        self.push_note(Output::RetryScheduled {
            at: until,
            attempt: self.attempts,
            cause,
        });
    }

    fn push_note(&mut self, note: Output) {
        if !self.notes.push(note) {
            // The caller did not drain; the newest is kept, the loss counted.
            self.counters.notes_overflowed = self.counters.notes_overflowed.saturating_add(1);
        }
    }

    /// Whether a batch should go now (sizes and commits permitting).
    fn wants_send(&self) -> bool {
        self.in_flight.is_none()
            && self.halt.is_none()
            && self.link.usable()
            // Power save defers the mode's flushes, never an explicit one
            // nor a critical event's (it goes like explicit); the upload
            // policy and a network that is down hold them all.
            && (self.explicit_flush
                || self.critical_flush_due()
                || (self.auto_flush && self.link.auto_allowed()))
            && self.backoff.is_none()
            && !self.pending.is_empty()
            && self.malformed != Some(self.pending.head())
    }

    /// The next batch from the head: oldest first, within the batch limits,
    /// any narrowing, a remembered 413 size and the driver's buffer, only
    /// committed events whose sizes the window holds, and never empty (an
    /// event too large for a batch still goes alone, so the queue cannot jam).
    fn next_batch(&mut self) -> Batch {
        let first = self.pending.head();
        let committed = self.commits.commit_cursor.saturating_sub(first);
        let mut cap = u64::from(self.config.max_batch_events()).min(committed.max(1));
        let mut end = Seq::MAX;
        if let Some(n) = self.narrowing {
            cap = cap.min(u64::from(n.cap.max(1)));
            end = n.end;
        }
        if let Some(m) = self.malformed {
            end = end.min(m.saturating_sub(1));
        }
        #[cfg(feature = "expiry")]
        {
            end = end.min(self.expiry_batch_end(first));
        }
        let max_bytes = u64::from(self.config.max_batch_bytes);
        let too_large = self.too_large_bytes.map(u64::from);
        let buffer = self.buffer_bytes.map(u64::from);
        let mut count: u64 = 0;
        let mut payload: u64 = 0;
        while count < cap {
            let seq = first + count;
            if seq > end {
                break;
            }
            let Some(size) = self.pending.size_of(seq).filter(|&s| !is_hole(s)) else {
                break;
            };
            let size = u64::from(size);
            if count > 0 {
                let bytes = self.config.batch_bytes(count + 1, payload + size);
                if bytes > max_bytes
                    || too_large.is_some_and(|t| bytes >= t)
                    || buffer.is_some_and(|b| payload + size > b)
                {
                    break;
                }
            }
            payload += size;
            count += 1;
        }
        let count = count.max(1);
        let id = self.next_batch_id;
        self.next_batch_id = self.next_batch_id.wrapping_add(1);
        Batch {
            id,
            first,
            last: first + count - 1,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            bytes: u32::try_from(self.config.batch_bytes(count, payload)).unwrap_or(u32::MAX),
        }
    }
}
