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
//! walked per output, and an input touches at most the events it removes.
//! No input from outside can make it panic; a panic is a bug.

use crate::config::{Config, ConfigError, FlushMode, Overflow};
use crate::error::InputError;
use crate::input::{Input, Lifecycle};
use crate::notes::Notes;
use crate::output::{Batch, BatchId, DropReason, Output, RejectReason, RetryCause};
use crate::pending::PendingIndex;
use crate::rng::SplitMix64;
use crate::stats::Stats;
use crate::{Instant, Seq, MAX_SEQ};

/// What an accepted input produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Accepted {
    /// A tracked event got this sequence number; a `Persist` for it follows.
    Tracked(Seq),
    /// The input was applied.
    Applied,
}

/// The machine narrows batches after a 400 (poison) or 413 (too large).
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
    rejected: u64,
    retries: u64,
    notes_overflowed: u32,
}

/// The sans-IO delivery machine for at most `N` pending events.
///
/// `N` bounds `max_queue_events`; each pending event costs 4 bytes of the
/// machine's memory (its size), never its payload.
#[derive(Clone, Debug)]
pub struct Machine<const N: usize> {
    config: Config,
    pending: PendingIndex<N>,
    rng: SplitMix64,
    now: Instant,
    /// Next sequence number whose `Persist` has not been emitted.
    persist_cursor: Seq,
    /// Head at the last `Delete` emitted.
    delete_cursor: Seq,
    in_flight: Option<Batch>,
    next_batch_id: BatchId,
    narrowing: Option<Narrowing>,
    backoff: Option<Backoff>,
    period_due: Option<Instant>,
    attempts: u32,
    flush_requested: bool,
    network_up: bool,
    halted: bool,
    tracked_any: bool,
    notes: Notes,
    counters: Counters,
}

impl<const N: usize> Machine<N> {
    /// A machine with `config`, drawing retry jitter from `seed`.
    ///
    /// Fails when `max_queue_events` exceeds `N`. The network is assumed up
    /// until told otherwise.
    pub fn new(config: Config, seed: u64) -> Result<Self, ConfigError> {
        let config = config.validate()?;
        let capacity = u32::try_from(N).unwrap_or(u32::MAX);
        if config.max_queue_events > capacity {
            return Err(ConfigError::QueueAboveCapacity { capacity });
        }
        Ok(Machine {
            config,
            pending: PendingIndex::new(),
            rng: SplitMix64::new(seed),
            now: Instant::ZERO,
            persist_cursor: 0,
            delete_cursor: 0,
            in_flight: None,
            next_batch_id: 1,
            narrowing: None,
            backoff: None,
            period_due: None,
            attempts: 0,
            flush_requested: false,
            network_up: true,
            halted: false,
            tracked_any: false,
            notes: Notes::new(),
            counters: Counters::default(),
        })
    }

    /// The configuration in force (runtime changes included).
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Apply one input at `now`. On `Err` the input was refused and not
    /// applied (the machine's clock still moves to `now`).
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Accepted, InputError> {
        if now > self.now {
            self.now = now;
        }
        let result = match input {
            Input::Track { size } => self.on_track(size).map(Accepted::Tracked),
            Input::Tick => {
                self.on_tick();
                Ok(Accepted::Applied)
            }
            Input::Flush => {
                self.request_flush();
                Ok(Accepted::Applied)
            }
            Input::Network { up } => {
                self.on_network(up);
                Ok(Accepted::Applied)
            }
            Input::Lifecycle(l) => {
                self.on_lifecycle(l);
                Ok(Accepted::Applied)
            }
            Input::Response {
                batch,
                status,
                retry_after_millis,
            } => {
                self.on_response(batch, status, retry_after_millis);
                Ok(Accepted::Applied)
            }
            Input::TransportFailed { batch } => {
                if let Some(b) = self.take_in_flight(batch) {
                    self.fail_attempt(b, RetryCause::Transport, None);
                }
                Ok(Accepted::Applied)
            }
            Input::Restore { seq, size } => self.on_restore(seq, size).map(|()| Accepted::Applied),
            Input::SeqFloor { next } => self.on_seq_floor(next).map(|()| Accepted::Applied),
            Input::PersistFailed { from_seq } => {
                self.on_persist_failed(from_seq);
                Ok(Accepted::Applied)
            }
            Input::Resume => {
                self.halted = false;
                Ok(Accepted::Applied)
            }
            Input::SetFlushMode(mode) => self.on_set_mode(mode).map(|()| Accepted::Applied),
            Input::SetFlushPeriod { millis } => {
                self.on_set_period(millis).map(|()| Accepted::Applied)
            }
            Input::SetFlushThreshold(t) => {
                if t == Some(0) {
                    Err(InputError::Config(ConfigError::ZeroFlushThreshold))
                } else {
                    self.config.flush_threshold = t;
                    Ok(Accepted::Applied)
                }
            }
        };
        self.settle();
        result
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
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.persist_cursor < self.pending.head() {
            self.persist_cursor = self.pending.head();
        }
        // Notifications first (a `Rejected` precedes the `Delete` covering
        // it), then deletes (so a store sized to the limits makes room before
        // the event that overflowed it), then persists, then a send (which
        // only names persisted events).
        if let Some(note) = self.notes.pop() {
            return Some(note);
        }
        if self.pending.head() > self.delete_cursor {
            self.delete_cursor = self.pending.head();
            return Some(Output::Delete {
                through: self.delete_cursor - 1,
            });
        }
        if self.persist_cursor < self.pending.end() {
            let seq = self.persist_cursor;
            self.persist_cursor += 1;
            let size = self.pending.size_of(seq).unwrap_or(0);
            return Some(Output::Persist { seq, size });
        }
        if self.can_send() {
            let batch = self.next_batch();
            self.in_flight = Some(batch);
            return Some(Output::Send(batch));
        }
        None
    }

    /// When the machine next wants a `Tick`; `None` means never (until another input).
    ///
    /// An idle machine (nothing pending) never asks to be woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        let backoff = self.backoff.map(|b| b.until);
        match (backoff, self.period_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The machine's accounts.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            pending_events: self.pending.len(),
            pending_bytes: self.pending.bytes(),
            in_flight_events: self
                .in_flight
                .and_then(|b| self.live_range(&b))
                .map_or(0, |(f, l)| (l - f + 1) as u32),
            tracked: c.tracked,
            restored: c.restored,
            delivered: c.delivered,
            dropped_overflow: c.dropped_overflow,
            dropped_max_attempts: c.dropped_max_attempts,
            dropped_not_stored: c.dropped_not_stored,
            rejected: c.rejected,
            retries: c.retries,
            notes_overflowed: c.notes_overflowed,
            halted: self.halted,
            network_up: self.network_up,
            flush_requested: self.flush_requested,
            retry_at: self.backoff.map(|b| b.until),
            next_seq: self.pending.end(),
        }
    }

    /// The batch awaiting a response, if any.
    pub const fn in_flight(&self) -> Option<Batch> {
        self.in_flight
    }

    /// Size of the pending event `seq`, if it is pending.
    pub fn pending_size(&self, seq: Seq) -> Option<u32> {
        self.pending.size_of(seq)
    }

    // ----- inputs ---------------------------------------------------------

    fn on_track(&mut self, size: u32) -> Result<Seq, InputError> {
        let max = self.config.max_event_bytes;
        if size > max {
            return Err(InputError::TooLarge { size, max });
        }
        if !self.fits(size) && self.config.overflow == Overflow::RejectNew {
            return Err(InputError::QueueFull);
        }
        let seq = self.pending.end();
        if seq >= MAX_SEQ {
            return Err(InputError::SeqExhausted);
        }
        self.make_room(size);
        if !self.pending.push(size) {
            // Unreachable: max_queue_events <= N and make_room made space.
            return Err(InputError::QueueFull);
        }
        self.tracked_any = true;
        self.counters.tracked += 1;
        if self.config.flush_mode == FlushMode::Immediate {
            self.flush_requested = true;
        }
        Ok(seq)
    }

    fn on_tick(&mut self) {
        if let Some(b) = self.backoff {
            if b.until <= self.now {
                self.backoff = None;
            }
        }
        if let Some(due) = self.period_due {
            if due <= self.now {
                self.period_due = None;
                self.request_flush();
            }
        }
    }

    fn on_network(&mut self, up: bool) {
        let restored = up && !self.network_up;
        self.network_up = up;
        if !restored {
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
        if matches!(
            self.config.flush_mode,
            FlushMode::Immediate | FlushMode::Period { .. }
        ) {
            self.request_flush();
        }
    }

    fn on_lifecycle(&mut self, lifecycle: Lifecycle) {
        let flush = match (lifecycle, self.config.flush_mode) {
            (_, FlushMode::Manual) => false,
            (Lifecycle::Foreground, FlushMode::Period { .. }) => true,
            (Lifecycle::Foreground, _) => false,
            (Lifecycle::Background | Lifecycle::Terminate, _) => true,
        };
        if flush {
            self.request_flush();
        }
    }

    fn on_response(&mut self, id: BatchId, status: u16, retry_after_millis: Option<u64>) {
        let Some(batch) = self.take_in_flight(id) else {
            return;
        };
        match status {
            200..=299 => self.on_delivered(batch),
            400 | 413 => self.on_refused(batch, status),
            401 | 403 => {
                self.halted = true;
                self.push_note(Output::Halted { status });
            }
            _ => self.fail_attempt(batch, RetryCause::Server, retry_after_millis),
        }
    }

    fn on_delivered(&mut self, batch: Batch) {
        self.attempts = 0;
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

    /// 400 or 413: bisect, or reject the one event that still fails.
    fn on_refused(&mut self, batch: Batch, status: u16) {
        self.attempts = 0;
        let Some((first, last)) = self.live_range(&batch) else {
            return;
        };
        let poison = status == 400;
        // Only a batch of one names its culprit: if overflow dropped part of
        // a larger batch in flight, the bad event may be among those gone.
        if batch.count == 1 {
            self.pop_through(first);
            self.counters.rejected += 1;
            let reason = if poison {
                RejectReason::Poison
            } else {
                RejectReason::TooLarge
            };
            self.push_note(Output::Rejected {
                seq: first,
                status,
                reason,
            });
            self.narrowing = match self.narrowing {
                Some(n) if !n.poison && n.end > first => Some(n),
                _ => None,
            };
        } else {
            let count = (last - first + 1).min(u64::from(u32::MAX)) as u32;
            self.narrowing = Some(Narrowing {
                end: last,
                cap: count.div_ceil(2),
                poison,
            });
        }
    }

    fn on_restore(&mut self, seq: Seq, size: u32) -> Result<(), InputError> {
        if seq >= MAX_SEQ {
            return Err(InputError::RestoreOutOfRange { seq });
        }
        if !self.tracked_any && !self.pending.is_empty() && seq == self.pending.end() - 1 {
            // The same number twice: a failed append or sync left a record
            // that a later append reused the number for. The later one wins,
            // restored like any record so that the limits hold for it too.
            self.pending.pop_back();
            self.counters.restored = self.counters.restored.saturating_sub(1);
        }
        if self.tracked_any || seq < self.pending.end() {
            return Err(InputError::RestoreOutOfOrder {
                seq,
                expected_at_least: self.pending.end(),
            });
        }
        if self.pending.is_empty() {
            // Numbering may jump; records dropped before (still to be
            // deleted) keep their delete owed.
            if self.delete_cursor == self.pending.head() {
                self.delete_cursor = seq;
            }
            self.pending.reset_empty_at(seq);
        } else if seq != self.pending.end() {
            return Err(InputError::RestoreGap {
                seq,
                expected: self.pending.end(),
            });
        }
        // Restored records are over the limits only when the limits shrank:
        // the oldest go, whatever the policy, so deletion stays a prefix.
        self.make_room(size);
        if !self.pending.push(size) {
            return Err(InputError::QueueFull);
        }
        if self.pending.bytes() > self.config.max_queue_bytes {
            // Larger than the whole queue (the limits shrank below it), so
            // make_room emptied the queue: this record goes as well.
            let dropped = self.pending.head();
            self.pending.pop_front();
            self.counters.dropped_overflow += 1;
            self.push_note(Output::Dropped {
                first: dropped,
                last: dropped,
                reason: DropReason::Overflow,
            });
        }
        self.persist_cursor = self.pending.end();
        self.counters.restored += 1;
        if self.config.flush_mode == FlushMode::Immediate {
            self.flush_requested = true;
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
        if self.pending.is_empty() && next > self.pending.end() {
            // Records the restore dropped keep their delete owed.
            if self.delete_cursor == self.pending.head() {
                self.delete_cursor = next;
            }
            self.pending.reset_empty_at(next);
            self.persist_cursor = next;
        }
        Ok(())
    }

    fn on_persist_failed(&mut self, from_seq: Seq) {
        let from = from_seq.max(self.pending.head());
        let end = self.pending.end();
        if from >= end {
            return;
        }
        while self.pending.end() > from {
            self.pending.pop_back();
        }
        self.counters.dropped_not_stored += end - from;
        self.push_note(Output::Dropped {
            first: from,
            last: end - 1,
            reason: DropReason::NotStored,
        });
        if self.persist_cursor > from {
            self.persist_cursor = from;
        }
        // A batch can only name stored events; never let a later reuse of
        // these numbers be acknowledged by an old response.
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

    fn on_set_mode(&mut self, mode: FlushMode) -> Result<(), InputError> {
        let mode = mode.check()?;
        self.config.flush_mode = mode;
        if let FlushMode::Period { millis } = mode {
            self.config.flush_period_millis = millis;
        }
        self.period_due = None;
        if mode == FlushMode::Immediate {
            self.request_flush();
        }
        Ok(())
    }

    fn on_set_period(&mut self, millis: u64) -> Result<(), InputError> {
        if millis == 0 {
            return Err(InputError::Config(ConfigError::ZeroFlushPeriod));
        }
        self.config.flush_period_millis = millis;
        if let FlushMode::Period { .. } = self.config.flush_mode {
            self.config.flush_mode = FlushMode::Period { millis };
            self.period_due = None;
        }
        Ok(())
    }

    // ----- shared mechanics ---------------------------------------------

    /// Re-derive timers and requests after every input.
    fn settle(&mut self) {
        if let FlushMode::Period { millis } = self.config.flush_mode {
            if let Some(t) = self.config.flush_threshold {
                if self.pending.len() >= t {
                    self.request_flush();
                }
            }
            if self.pending.is_empty() || self.flush_requested {
                self.period_due = None;
            } else if self.period_due.is_none() {
                self.period_due = Some(self.now.plus_millis(millis));
            }
        } else {
            self.period_due = None;
        }
        if self.pending.is_empty() {
            self.flush_requested = false;
        }
        if let Some(n) = self.narrowing {
            if n.end < self.pending.head() {
                self.narrowing = None;
            }
        }
    }

    fn request_flush(&mut self) {
        if !self.pending.is_empty() {
            self.flush_requested = true;
        }
    }

    fn fits(&self, size: u32) -> bool {
        self.pending.len() < self.config.max_queue_events
            && self.pending.bytes() + u64::from(size) <= self.config.max_queue_bytes
    }

    /// Drop the oldest events until one of `size` bytes fits.
    fn make_room(&mut self, size: u32) {
        let first = self.pending.head();
        while !self.fits(size) && self.pending.pop_front().is_some() {}
        let head = self.pending.head();
        if head > first {
            self.counters.dropped_overflow += head - first;
            self.push_note(Output::Dropped {
                first,
                last: head - 1,
                reason: DropReason::Overflow,
            });
        }
    }

    fn pop_through(&mut self, last: Seq) {
        while self.pending.head() <= last && self.pending.pop_front().is_some() {}
    }

    fn take_in_flight(&mut self, id: BatchId) -> Option<Batch> {
        match self.in_flight {
            Some(b) if b.id == id => self.in_flight.take(),
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
    fn fail_attempt(&mut self, batch: Batch, cause: RetryCause, retry_after_millis: Option<u64>) {
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
        let exponent = (self.attempts - 1).min(31);
        let base = u64::from(self.config.retry_base_millis);
        let computed = (base << exponent).min(u64::from(self.config.retry_cap_millis));
        let mut delay = computed + self.rng.below_or_equal(computed / 2);
        let mut cause = cause;
        if let Some(asked) = retry_after_millis {
            let asked = asked.min(u64::from(self.config.max_retry_after_millis));
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

    fn can_send(&self) -> bool {
        self.in_flight.is_none()
            && !self.halted
            && self.network_up
            && self.flush_requested
            && self.backoff.is_none()
            && !self.pending.is_empty()
    }

    /// The next batch from the head: oldest first, within the batch limits
    /// and any narrowing, and never empty (an event too large for a batch
    /// still goes alone, so the queue cannot jam).
    fn next_batch(&mut self) -> Batch {
        let first = self.pending.head();
        let mut cap = self.config.max_batch_events.min(self.pending.len());
        let mut end = Seq::MAX;
        if let Some(n) = self.narrowing {
            cap = cap.min(n.cap.max(1));
            end = n.end;
        }
        let max_bytes = u64::from(self.config.max_batch_bytes);
        let mut count: u32 = 0;
        let mut payload: u64 = 0;
        while count < cap {
            let seq = first + u64::from(count);
            if seq > end {
                break;
            }
            let size = u64::from(self.pending.size_of(seq).unwrap_or(0));
            if count > 0 && self.config.batch_bytes(count + 1, payload + size) > max_bytes {
                break;
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
            last: first + u64::from(count) - 1,
            count,
            bytes: u32::try_from(self.config.batch_bytes(count, payload)).unwrap_or(u32::MAX),
        }
    }
}
