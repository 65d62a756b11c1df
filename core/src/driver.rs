//! One blocking run loop for every adapter.
//!
//! The std and embedded adapters differ in where bytes live and how they
//! travel, not in how the machine is driven. [`Store`] and [`Transport`] are
//! those two differences; [`Driver`] is the loop: feed an input, drain every
//! output in order, apply it to the store or the transport, repeat.

#[only_sync]
use core::fmt;

#[only_sync]
use core::time::Duration;

use super::{bisync, only_async, only_sync};
use crate::config::Config;
use crate::input::{Input, LocalFailure};
use crate::machine::{Accepted, Machine};
#[only_sync]
use crate::output::BatchId;
use crate::output::{Batch, DropReason, Output};
use crate::pending::is_critical;
#[only_sync]
use crate::InputError;
use crate::{Instant, Seq};

/// Whether this build keeps critical events (the `critical` feature).
const ENABLED: bool = cfg!(any(test, feature = "critical"));

// The store contract lives in `crate::store`; these keep the old
// `driver::{Store, StoreSummary, ReadError}` paths working.
#[allow(unused_imports)]
pub use super::store::{ReadError, Store, StoreSummary, HOLE};

// One loop, two faces (see `asynchronous`): the async `Driver` shares
// these with the blocking one.
#[only_async]
pub use crate::driver::{BufferTooSmall, DriverError, Observer, Outcome, Payloads, Transport};

#[only_sync]
/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The server answered.
    Response {
        /// The batch answered.
        batch: BatchId,
        /// HTTP-like status.
        status: u16,
        /// Retry-After, if the server sent one.
        retry_after: Option<Duration>,
    },
    /// No answer (refused, timed out, connection lost).
    Failed {
        /// The batch that failed.
        batch: BatchId,
    },
}

#[only_sync]
impl From<Outcome> for Input {
    fn from(o: Outcome) -> Input {
        match o {
            Outcome::Response {
                batch,
                status,
                retry_after,
            } => Input::Response {
                batch,
                status,
                retry_after,
            },
            Outcome::Failed { batch } => Input::TransportFailed { batch },
        }
    }
}

#[only_sync]
/// Carries batches to a server. At most one batch is in flight at a time.
pub trait Transport {
    /// The backend's error for a send that could not even start.
    type Error: fmt::Debug;

    /// Start uploading `batch`, whose payloads `payloads` yields oldest first.
    /// The outcome comes later from [`poll_outcome`](Transport::poll_outcome);
    /// a blocking transport may finish here and hold the outcome until then.
    fn send(
        &mut self,
        now: Instant,
        batch: &Batch,
        payloads: Payloads<'_>,
    ) -> Result<(), Self::Error>;

    /// The outcome of the batch in flight, once known. A transport that
    /// never answers does not stall the queue: the machine's
    /// `request_timeout` fails the batch, and a later outcome for it is
    /// ignored.
    fn poll_outcome(&mut self, now: Instant) -> Option<Outcome>;
}

#[only_sync]
/// The payloads of one batch, oldest first, split out of the batch buffer.
#[derive(Clone)]
pub struct Payloads<'a> {
    bytes: &'a [u8],
    sizes: SizeIter<'a>,
}

#[only_sync]
#[derive(Clone)]
struct SizeIter<'a> {
    lookup: &'a dyn Fn(Seq) -> Option<u32>,
    next: Seq,
    last: Seq,
}

#[only_sync]
impl<'a> Payloads<'a> {
    /// Payloads cut from `bytes` (back to back) by `lookup`'s size of each
    /// sequence number in `first..=last`: for adapters that hand a batch to
    /// a transport outside a [`Driver`].
    pub fn new(
        bytes: &'a [u8],
        first: Seq,
        last: Seq,
        lookup: &'a dyn Fn(Seq) -> Option<u32>,
    ) -> Self {
        Payloads {
            bytes,
            sizes: SizeIter {
                lookup,
                next: first,
                last,
            },
        }
    }
}

#[only_sync]
impl<'a> Iterator for Payloads<'a> {
    type Item = (Seq, &'a [u8]);

    // Inlined into its callers (firmware flash, see firmware/size.sh).
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let s = &mut self.sizes;
        if s.next > s.last {
            return None;
        }
        let seq = s.next;
        match s.next.checked_add(1) {
            Some(n) => s.next = n,
            // `last` is u64::MAX: make this the final item.
            None => s.last = 0,
        }
        let size = (s.lookup)(seq)? as usize;
        let size = size.min(self.bytes.len());
        let (head, tail) = self.bytes.split_at(size);
        self.bytes = tail;
        Some((seq, head))
    }
}

#[only_sync]
/// What went wrong in one driver call. The machine's state stays consistent:
/// a store failure is fed back to it (`PersistFailed`, `CommitFailed`,
/// `DeleteFailed`, a local failure), never as a server status.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverError<SE, TE> {
    /// [`Driver::start`] has not completed: nothing was done.
    NotStarted,
    /// The machine refused the input.
    Input(InputError),
    /// The store failed.
    Store(SE),
    /// The transport could not start a send.
    Transport(TE),
    /// The tracked event was not stored (its append or the commit after it
    /// failed; the store's error was returned by an earlier call or is
    /// available from [`Driver::take_error`]).
    NotStored,
    /// `Input::Track` carries no payload; use [`Driver::track`].
    PayloadRequired,
    /// A critical event for a store that cannot keep the flag
    /// ([`Store::KEEPS_CRITICAL`] is `false`, e.g. the NOR flash queue):
    /// refused, nothing stored, rather than stored without it.
    CriticalUnsupported,
    /// The store returned another number of bytes for a batch than its
    /// events hold; the batch is read again after a backoff.
    ShortRead {
        /// Bytes the events hold.
        expected: usize,
        /// Bytes the store returned.
        got: usize,
    },
    /// The store had fewer sizes than it holds records, from `from` on.
    /// No longer returned (store contract v3): a number past the store's
    /// end is a hole ([`HOLE`]); kept so that matches keep compiling.
    MissingSizes {
        /// The first size missing.
        from: Seq,
    },
    /// The stored record `seq` is malformed; it is dead-lettered alone.
    Malformed {
        /// The damaged record.
        seq: Seq,
    },
    /// A batch is larger than the driver's batch buffer; batches are cut to
    /// fit it from now on.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

#[only_sync]
impl<SE: fmt::Debug, TE: fmt::Debug> fmt::Display for DriverError<SE, TE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::NotStarted => f.write_str("the driver is not started (call start first)"),
            DriverError::Input(e) => write!(f, "{e}"),
            DriverError::Store(e) => write!(f, "store failed: {e:?}"),
            DriverError::Transport(e) => write!(f, "transport failed: {e:?}"),
            DriverError::NotStored => f.write_str("the event was not stored"),
            DriverError::CriticalUnsupported => {
                f.write_str("this store cannot keep critical events")
            }
            DriverError::PayloadRequired => {
                f.write_str("a tracked event needs its payload: use Driver::track")
            }
            DriverError::ShortRead { expected, got } => write!(
                f,
                "store returned {got} bytes for a batch of {expected} bytes"
            ),
            DriverError::MissingSizes { from } => {
                write!(f, "store has no size for event {from} it should hold")
            }
            DriverError::Malformed { seq } => write!(f, "stored event {seq} is malformed"),
            DriverError::BufferTooSmall { needed, available } => write!(
                f,
                "batch needs {needed} bytes but the driver's buffer has {available}"
            ),
        }
    }
}

#[only_sync]
impl<SE: fmt::Debug, TE: fmt::Debug> core::error::Error for DriverError<SE, TE> {}

#[only_sync]
impl<SE, TE> From<InputError> for DriverError<SE, TE> {
    fn from(e: InputError) -> Self {
        DriverError::Input(e)
    }
}

#[only_sync]
/// [`Driver::new`] refused a batch buffer that cannot hold one maximal
/// event plus its envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall {
    /// The least the buffer must hold ([`Driver::min_buffer_bytes`]).
    pub needed: usize,
    /// What it holds.
    pub available: usize,
}

#[only_sync]
impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the batch buffer has {} bytes; one maximal event and its envelope need {}",
            self.available, self.needed
        )
    }
}

#[only_sync]
impl core::error::Error for BufferTooSmall {}

#[only_sync]
/// Receives the notifications meant for the application: `Delivered`,
/// `Dropped`, `Rejected`, `Halted`, `RetryScheduled` (and, for tracing,
/// every other output too).
pub trait Observer {
    /// Called once per output, after the driver applied it.
    fn observe(&mut self, output: &Output);
}

#[only_sync]
impl Observer for () {
    fn observe(&mut self, _: &Output) {}
}

#[only_sync]
impl<F: FnMut(&Output)> Observer for F {
    fn observe(&mut self, output: &Output) {
        self(output)
    }
}

/// The blocking run loop: a machine, a store, a transport, a batch buffer
/// and an observer.
///
/// Obligations the driver keeps for the machine: it restores the store
/// ([`start`](Self::start)) before anything else, answers every
/// `ReadSizes`, `Commit` and `Delete` at once (feeding failures back), and
/// treats a failure on this side (a read, a commit, a buffer) as local:
/// it never spends a delivery attempt and is never reported as a status.
pub struct Driver<'b, S: Store, T: Transport, O, const N: usize> {
    machine: Machine<N>,
    store: S,
    transport: T,
    buf: &'b mut [u8],
    observer: O,
    started: bool,
    /// The event being tracked is critical.
    critical: bool,
    /// The stamp of the event being tracked (the machine's wall clock).
    #[cfg(feature = "expiry")]
    stamp: Option<u64>,
    /// The first failure, while applying a track's outputs, that did not
    /// affect the tracked event itself.
    deferred: Option<ErrorOf<S, T>>,
}

/// The driver's error for a store `S` and a transport `Tr`.
type ErrorOf<S, Tr> = DriverError<<S as Store>::Error, <Tr as Transport>::Error>;
type Result2<T, S, Tr> = Result<T, ErrorOf<S, Tr>>;

/// Sizes read from the store per call while refilling the window.
const SIZE_CHUNK: usize = 32;

/// What one drain saw of the tracked event.
struct Drained<E> {
    error: Option<E>,
    /// A `NotStored` drop covered the tracked event.
    lost: bool,
    /// The tracked event's append succeeded.
    appended: bool,
}

impl<'b, S: Store, T: Transport, O: Observer, const N: usize> Driver<'b, S, T, O, N> {
    /// The least buffer a driver accepts for `config`: one event of
    /// `max_event_bytes` plus the batch and event envelopes.
    pub fn min_buffer_bytes(config: &Config) -> usize {
        let bytes = u64::from(config.max_event_bytes())
            + u64::from(config.batch_envelope_bytes())
            + u64::from(config.event_envelope_bytes());
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// A driver that batches through `buf`; `config.max_batch_bytes()`
    /// bytes carry full batches, and anything down to
    /// [`min_buffer_bytes`](Self::min_buffer_bytes) works with smaller ones.
    /// Call [`start`](Self::start) next.
    // Not inlined: built in place, not field by field in the caller
    // (firmware flash, see firmware/size.sh).
    #[inline(never)]
    pub fn new(
        machine: Machine<N>,
        store: S,
        transport: T,
        buf: &'b mut [u8],
        observer: O,
    ) -> Result<Self, BufferTooSmall> {
        let needed = Self::min_buffer_bytes(machine.config());
        if buf.len() < needed {
            return Err(BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        Ok(Driver {
            machine,
            store,
            transport,
            buf,
            observer,
            started: false,
            critical: false,
            #[cfg(feature = "expiry")]
            stamp: None,
            deferred: None,
        })
    }

    /// Read the store's summary into the machine (never every record: the
    /// sizes of the oldest come as the machine asks for them), then drain.
    /// Call once, before anything else.
    #[bisync]
    pub async fn start(&mut self, now: Instant) -> Result2<(), S, T> {
        let summary = self.store.summary().await.map_err(DriverError::Store)?;
        self.machine.handle(now, Input::Restore(summary))?;
        let next = self.store.seq_floor().await.map_err(DriverError::Store)?;
        self.machine.handle(now, Input::SeqFloor { next })?;
        if S::KEEPS_CRITICAL {
            if let Some(through) = self
                .store
                .newest_critical()
                .await
                .map_err(DriverError::Store)?
            {
                self.machine
                    .handle(now, Input::CriticalPending { through })?;
            }
        }
        self.started = true;
        self.drain(now, None).await
    }

    fn check_started(&self) -> Result2<(), S, T> {
        if self.started {
            Ok(())
        } else {
            Err(DriverError::NotStarted)
        }
    }

    /// Track one event: stored (and committed, unless the configuration
    /// has a `max_commit_delay`) before this returns `Ok`, uploaded when a
    /// flush is due.
    ///
    /// `Err` means this event was not stored (or refused); it was never
    /// accepted, so tracking it again makes no duplicate. A failure of
    /// something else done in the same call (a delete, the upload of an
    /// older batch) does not fail the track: the first such failure is kept
    /// for [`take_error`](Self::take_error).
    #[bisync]
    pub async fn track(&mut self, now: Instant, payload: &[u8]) -> Result2<Seq, S, T> {
        self.track_flagged(now, payload, false).await
    }

    /// Track one *critical* event ([`Input::TrackCritical`]): as
    /// [`track`](Self::track), and it requests a flush of the queue up to
    /// it in any flush mode. A store that cannot keep the flag refuses it
    /// ([`DriverError::CriticalUnsupported`]).
    #[bisync]
    pub async fn track_critical(&mut self, now: Instant, payload: &[u8]) -> Result2<Seq, S, T> {
        if !S::KEEPS_CRITICAL {
            return Err(DriverError::CriticalUnsupported);
        }
        self.track_flagged(now, payload, true).await
    }

    // Inlined into its callers: a firmware never passes `true`.
    #[inline(always)]
    #[bisync]
    async fn track_flagged(
        &mut self,
        now: Instant,
        payload: &[u8],
        critical: bool,
    ) -> Result2<Seq, S, T> {
        self.check_started()?;
        let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let input = if critical {
            Input::TrackCritical { size }
        } else {
            Input::Track { size }
        };
        let seq = match self.machine.handle(now, input)? {
            Accepted::Tracked(seq) => seq,
            Accepted::Applied => return Err(DriverError::NotStored),
        };
        self.critical = critical;
        #[cfg(feature = "expiry")]
        {
            self.stamp = self.machine.wall_clock();
        }
        let mut seen = self.drain_all(now, Some((seq, payload))).await;
        if !seen.appended && !seen.lost {
            // Never appended (the room it needed could not be read): it
            // leaves now rather than waiting without its payload.
            self.machine
                .handle(now, Input::PersistFailed { from_seq: seq })?;
            let more = self.drain_all(now, None).await;
            seen.error = seen.error.or(more.error);
            seen.lost = true;
        }
        match (seen.error, seen.lost) {
            (Some(e), true) => Err(e),
            (None, true) => Err(DriverError::NotStored),
            (Some(e), false) => {
                self.deferred.get_or_insert(e);
                Ok(seq)
            }
            (None, false) => Ok(seq),
        }
    }

    /// The first failure kept from an earlier [`track`](Self::track) that
    /// did not affect the tracked event (cleared by this call).
    pub fn take_error(&mut self) -> Option<ErrorOf<S, T>> {
        self.deferred.take()
    }

    /// Feed any other input, then drain. A `Track` is refused: it needs its
    /// payload, so use [`track`](Self::track).
    #[bisync]
    pub async fn handle(&mut self, now: Instant, input: Input) -> Result2<Accepted, S, T> {
        self.check_started()?;
        if let Input::Track { .. } | Input::TrackCritical { .. } = input {
            return Err(DriverError::PayloadRequired);
        }
        let accepted = self.machine.handle(now, input)?;
        self.drain(now, None).await?;
        Ok(accepted)
    }

    /// Collect a transport outcome and fire due timers, then drain. Call it
    /// when the transport may have news and at [`poll_timeout`](Self::poll_timeout).
    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[bisync]
    #[inline(never)]
    pub async fn poll(&mut self, now: Instant) -> Result2<(), S, T> {
        self.check_started()?;
        if let Some(outcome) = self.transport.poll_outcome(now) {
            self.machine.handle(now, outcome.into())?;
        }
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle(now, Input::Tick)?;
        }
        self.drain(now, None).await
    }

    /// Commit every append so far now (a group commit), instead of waiting
    /// for `max_commit_delay` or the next send. On failure the events
    /// appended since the last commit leave the queue, reported as
    /// `Dropped` with reason `NotStored`, and the store's error is returned.
    #[bisync]
    pub async fn sync(&mut self, now: Instant) -> Result2<(), S, T> {
        self.check_started()?;
        self.machine.handle(now, Input::Commit)?;
        self.drain(now, None).await
    }

    /// When [`poll`](Self::poll) is next due for a timer; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.machine.poll_timeout()
    }

    /// The machine, for stats and inspection.
    pub fn machine(&self) -> &Machine<N> {
        &self.machine
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (e.g. to read dead letters).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Take the parts back.
    pub fn into_parts(self) -> (Machine<N>, S, T, O) {
        (self.machine, self.store, self.transport, self.observer)
    }

    /// Apply every output in order. Keeps going after a failure so the
    /// machine and the store stay in step; returns the first failure.
    // Inlined into its callers (firmware flash, see firmware/size.sh).
    #[bisync]
    #[inline(always)]
    async fn drain(&mut self, now: Instant, tracked: Option<(Seq, &[u8])>) -> Result2<(), S, T> {
        self.drain_all(now, tracked).await.error.map_or(Ok(()), Err)
    }

    #[bisync]
    async fn drain_all(
        &mut self,
        now: Instant,
        tracked: Option<(Seq, &[u8])>,
    ) -> Drained<ErrorOf<S, T>> {
        let mut seen = Drained {
            error: None,
            lost: false,
            appended: false,
        };
        while let Some(output) = self.machine.poll_output() {
            match self.apply(now, &output, tracked).await {
                Ok(()) => {
                    if let (Output::Persist { seq, .. }, Some((t, _))) = (output, tracked) {
                        seen.appended |= seq == t;
                    }
                }
                Err(e) => {
                    seen.error.get_or_insert(e);
                }
            }
            if let (
                Output::Dropped {
                    first,
                    last,
                    reason: DropReason::NotStored,
                },
                Some((seq, _)),
            ) = (output, tracked)
            {
                seen.lost |= (first..=last).contains(&seq);
            }
            self.observer.observe(&output);
        }
        seen
    }

    #[bisync]
    async fn apply(
        &mut self,
        now: Instant,
        output: &Output,
        tracked: Option<(Seq, &[u8])>,
    ) -> Result2<(), S, T> {
        // The store's step, and the input that tells the machine it failed
        // (`Err(None)`: failed with no store error to return).
        let (failed, done) = match *output {
            Output::Persist { seq, .. } => (
                Input::PersistFailed { from_seq: seq },
                match tracked {
                    #[cfg(feature = "expiry")]
                    Some((s, p)) if s == seq && self.stamp.is_some() => {
                        let stamp = self.stamp.unwrap_or(0);
                        self.store
                            .append_stamped(seq, p, self.critical, stamp)
                            .await
                            .map_err(Some)
                    }
                    Some((s, p)) if s == seq && self.critical => {
                        self.store.append_critical(seq, p).await.map_err(Some)
                    }
                    Some((s, p)) if s == seq => self.store.append(seq, p).await.map_err(Some),
                    // Only a track announces a persist; anything else has no
                    // payload here and so is not stored.
                    _ => Err(None),
                },
            ),
            Output::Commit => (Input::CommitFailed, self.store.sync().await.map_err(Some)),
            Output::Delete { through } => (
                Input::DeleteFailed,
                self.store.delete_through(through).await.map_err(Some),
            ),
            Output::Discard { seq } => (
                Input::DeleteFailed,
                self.store.discard(seq).await.map_err(Some),
            ),
            Output::ReadSizes { from, max } => return self.read_sizes(now, from, max).await,
            #[cfg(feature = "expiry")]
            Output::FindFresh { after_ms } => {
                // A store that failed expires nothing this time (and the
                // error is returned); one that keeps no stamps, never.
                let (first_fresh_seq, error) = match self.store.first_fresh(after_ms).await {
                    Ok(found) => (found.unwrap_or(0), None),
                    Err(e) => (0, Some(e)),
                };
                self.machine.handle(now, Input::Fresh { first_fresh_seq })?;
                return error.map_or(Ok(()), |e| Err(DriverError::Store(e)));
            }
            Output::Rejected {
                seq,
                status,
                reason,
            } => {
                return self
                    .store
                    .reject(seq, status, reason)
                    .await
                    .map_err(DriverError::Store)
            }
            Output::Send(batch) => return self.send(now, batch).await,
            Output::Delivered { .. }
            | Output::Dropped { .. }
            | Output::Halted { .. }
            | Output::RetryScheduled { .. } => return Ok(()),
        };
        if let Err(e) = done {
            self.machine.handle(now, failed)?;
            if let Some(e) = e {
                return Err(DriverError::Store(e));
            }
        }
        Ok(())
    }

    /// Answer a `ReadSizes`: the sizes in chunks. A store stops early only
    /// at its end: every number asked for beyond it has no record, and is
    /// answered as a [`HOLE`]. A store error is answered with
    /// `SizesUnavailable` (asked again after a backoff).
    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[bisync]
    #[inline(never)]
    async fn read_sizes(&mut self, now: Instant, from: Seq, max: u32) -> Result2<(), S, T> {
        let end = from.saturating_add(u64::from(max));
        let mut next = from;
        let mut chunk = [0u32; SIZE_CHUNK];
        while next < end {
            let want = usize::try_from(end - next).map_or(SIZE_CHUNK, |n| n.min(SIZE_CHUNK));
            let n = match self.store.read_sizes(next, &mut chunk[..want]).await {
                Ok(n) => n.min(want),
                Err(e) => {
                    self.machine
                        .handle(now, Input::SizesUnavailable { from: next })?;
                    return Err(DriverError::Store(e));
                }
            };
            // A store that stopped early is at its end: every number after
            // it asked for has no record.
            let upto = if n < want { end } else { next + want as Seq };
            for (seq, i) in (next..upto).zip(0..) {
                let size = match chunk.get(i) {
                    // A flag this store cannot have set: a damaged size.
                    Some(&s) if i < n && S::KEEPS_CRITICAL => s,
                    Some(&s) if i < n && (!ENABLED || !is_critical(s)) => s,
                    _ => HOLE,
                };
                self.machine.handle(now, Input::Size { seq, size })?;
            }
            next = upto;
        }
        Ok(())
    }

    /// The payloads of `batch` (`needed` bytes) into the batch buffer;
    /// `None` when they do not fit.
    #[bisync]
    #[inline(always)]
    async fn read_batch(
        &mut self,
        batch: &Batch,
        needed: usize,
    ) -> Option<Result<usize, ReadError<S::Error>>> {
        let buf = self.buf.get_mut(..needed)?;
        Some(self.store.read_range(batch.first, batch.last, buf).await)
    }

    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[bisync]
    #[inline(never)]
    async fn send(&mut self, now: Instant, batch: Batch) -> Result2<(), S, T> {
        let local = |failure| Input::LocalFailure {
            batch: batch.id,
            failure,
        };
        let machine = &self.machine;
        let needed: usize = (batch.first..=batch.last)
            .map(|s| machine.pending_size(s).unwrap_or(0) as usize)
            // Sizes come from the store: checked, even on a 32-bit target.
            .fold(0usize, usize::saturating_add);
        let available = self.buf.len();
        // A failure is fed back as one input (the machine retries the batch
        // later, cuts it, or dead-letters a damaged record), and returned.
        let (input, error) = match self.read_batch(&batch, needed).await {
            // Cut batches to the buffer from now on; this is no server's 413.
            None => (
                local(LocalFailure::Buffer {
                    bytes: u32::try_from(available).unwrap_or(u32::MAX),
                }),
                DriverError::BufferTooSmall { needed, available },
            ),
            Some(Ok(n)) if n == needed => {
                let machine = &self.machine;
                let lookup = |s: Seq| machine.pending_size(s);
                let payloads = Payloads::new(&self.buf[..n], batch.first, batch.last, &lookup);
                match self.transport.send(now, &batch, payloads) {
                    Ok(()) => return Ok(()),
                    Err(e) => (
                        Input::TransportFailed { batch: batch.id },
                        DriverError::Transport(e),
                    ),
                }
            }
            Some(Ok(got)) => (
                local(LocalFailure::Read),
                DriverError::ShortRead {
                    expected: needed,
                    got,
                },
            ),
            Some(Err(ReadError::Store(e))) => (local(LocalFailure::Read), DriverError::Store(e)),
            Some(Err(ReadError::Malformed { seq })) => (
                Input::Malformed {
                    batch: batch.id,
                    seq,
                },
                DriverError::Malformed { seq },
            ),
        };
        self.machine.handle(now, input)?;
        Err(error)
    }
}
