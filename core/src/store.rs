//! The store contract: what the machine and the driver ask of durable
//! storage, and what a store may answer about damage.
//!
//! # Holes
//!
//! Storage gets damaged: a record's bytes fail their checks, a stored size
//! is out of range, a number was handed out but never stored (its append
//! failed). A sequence number between the oldest and the newest intact
//! record that has no intact record is a *hole*. A store reports holes
//! rather than stopping on them:
//!
//! - [`StoreSummary`] describes the intact records only, so its `count`
//!   may be smaller than `last - first + 1`;
//! - [`Store::read_sizes`] writes [`HOLE`] for a number without an intact
//!   record, and never fails because of one;
//! - [`Store::read_range`] may still find a record damaged when its bytes
//!   are read ([`ReadError::Malformed`]).
//!
//! The machine drops a run of holes when it reaches the head of the queue,
//! reporting it once as
//! [`Output::Dropped`](crate::Output::Dropped) with
//! [`DropReason::Damaged`](crate::DropReason::Damaged) (covered by the next
//! `Delete`), never puts a hole in a batch, and never reuses a sequence
//! number, so a hole is never filled by a later event.

use core::fmt;

#[only_sync]
use serde::{Deserialize, Serialize};

use super::{bisync, only_async, only_sync};
use crate::output::RejectReason;
use crate::Seq;

// One contract, two faces (see `asynchronous`): the async `Store` shares
// these with the blocking one.
#[only_async]
pub use crate::store::{strip_critical, ReadError, StoreSummary, CRITICAL, DISCARDED, HOLE};

#[only_sync]
/// The size [`Store::read_sizes`] gives a sequence number that has no
/// intact record (damaged, unreadable, or never stored). Never a real size:
/// `max_event_bytes` is far below it.
pub const HOLE: u32 = u32::MAX;

#[only_sync]
/// The size [`Store::read_sizes`] gives a sequence number whose record was
/// [discarded](Store::discard) on the machine's request (an overflow victim
/// in the middle of the queue, already reported): it leaves silently, never
/// as damage. A store that cannot tell writes [`HOLE`] instead.
pub const DISCARDED: u32 = HOLE - 1;

#[only_sync]
/// The flag bit a size carries for a *critical* event, in
/// [`Input::Size`](crate::Input::Size) answers and in what
/// [`Store::read_sizes`] writes: `size | CRITICAL`. Never part of a real
/// size (`max_event_bytes` stays below it) nor of a hole marker.
///
/// A critical event requests a flush of the queue up to it in any flush
/// mode, is never the overflow victim while a non-critical event the
/// machine can see is pending, and is exempt from expiry (when expiry
/// comes: the flag is known where batches are formed,
/// `Machine::pending_critical`).
pub const CRITICAL: u32 = 1 << 31;

#[only_sync]
/// `size` without its [`CRITICAL`] flag (a hole marker unchanged).
pub const fn strip_critical(size: u32) -> u32 {
    if size >= DISCARDED - 1 {
        size
    } else {
        size & !CRITICAL
    }
}

#[only_sync]
/// What a store holds, in the logical view: a sequence number written twice
/// counts once (its newest copy). It describes the *intact* records only:
/// `count` of them, their payload `bytes`, the oldest (`first`) and the
/// newest (`last`) intact sequence number. `count` may be smaller than
/// `last - first + 1`: the numbers missing between are holes (see the
/// [module docs](self)). Read once at start-up ([`Store::summary`]); the
/// machine keeps these totals from then on and never visits every record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreSummary {
    /// Intact pending records (`1..=last - first + 1` when not 0).
    pub count: u64,
    /// Their payload bytes (holes count 0).
    pub bytes: u64,
    /// The oldest intact record's sequence number. When `count` is 0: 0
    /// for a store holding nothing ([`StoreSummary::EMPTY`]), or the first
    /// of the numbers a store knows it lost with every record (all holes).
    pub first: Seq,
    /// The newest intact record's sequence number. When `count` is 0: 0
    /// for a store holding nothing, or the last number it knows it lost.
    pub last: Seq,
}

#[only_sync]
impl StoreSummary {
    /// A store holding nothing.
    pub const EMPTY: StoreSummary = StoreSummary {
        count: 0,
        bytes: 0,
        first: 0,
        last: 0,
    };
}

#[only_sync]
/// Why [`Store::read_range`] could not return a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ReadError<E> {
    /// The backend failed (I/O, a lock, ...): the read is retried later,
    /// without spending a delivery attempt.
    Store(E),
    /// The record `seq` is damaged for good (its stored size and its bytes
    /// disagree, its checksum fails), found while reading its bytes: the
    /// driver dead-letters that one event ([`Store::reject`] with
    /// [`RejectReason::Malformed`] and status 0, reported as
    /// [`Output::Rejected`](crate::Output::Rejected)) once the events before
    /// it are delivered, and the queue moves on.
    Malformed {
        /// The damaged record.
        seq: Seq,
    },
}

#[only_sync]
impl<E> From<E> for ReadError<E> {
    fn from(e: E) -> Self {
        ReadError::Store(e)
    }
}

#[only_sync]
impl<E: fmt::Debug> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Store(e) => write!(f, "read failed: {e:?}"),
            ReadError::Malformed { seq } => write!(f, "stored event {seq} is malformed"),
        }
    }
}

#[only_sync]
impl<E: fmt::Debug> core::error::Error for ReadError<E> {}

#[bisync]
/// Durable storage for event payloads, keyed by sequence number.
///
/// The machine never asks for every record: it reads the [`summary`](Store::summary)
/// at start-up and then the sizes of a small window of the oldest records
/// ([`read_sizes`](Store::read_sizes)) as it needs them, so a store of ten
/// million events costs the machine the same memory as one of ten.
///
/// # Durability contract
///
/// - After [`append`](Store::append) *and then* [`sync`](Store::sync) return
///   `Ok`, the record survives a crash or power cut. A store that makes each
///   append durable by itself implements `sync` as a no-op. The machine asks
///   for a sync (a commit) before every send, so no batch ever names an event
///   that a crash could lose.
/// - A record whose append or sync failed may or may not be there after a
///   crash; if it is, it is either whole or detected as torn and left out of
///   every read. It is never half-visible.
/// - [`delete_through`](Store::delete_through) removes a prefix; after a crash
///   the prefix is either gone or still whole (re-sending it is harmless, the
///   server deduplicates by `messageId`).
/// - Sequence numbers are never reused: after a failed append or sync the
///   machine reports those events dropped (`NotStored`) and numbers the next
///   event after them. A record of a number whose append or sync failed may
///   still be visible; the machine treats that number as a hole.
/// - Reads see every append so far, synced or not.
/// - The stored records may have holes (see the [module docs](self)): a
///   damaged record costs that record alone. The summary, the sizes and
///   the payloads agree on which numbers are holes, and holes weigh 0 bytes.
// (async face: its futures are not `Send`, as embassy's tasks need not be.)
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The backend's error.
    type Error: fmt::Debug;

    /// Whether this store keeps the critical flag of a record
    /// ([`append_critical`](Store::append_critical), [`CRITICAL`] in
    /// [`read_sizes`](Store::read_sizes)) and can [`discard`](Store::discard)
    /// one record in the middle of the queue. A store that cannot (the NOR
    /// flash queue) keeps `false`, and the driver refuses critical events
    /// with a typed error instead of losing the flag.
    const KEEPS_CRITICAL: bool = false;

    /// Store `payload` as event `seq`. Sequence numbers only grow (a number
    /// whose append or sync failed is never used again).
    async fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error>;

    /// Store `payload` as the *critical* event `seq` (see [`CRITICAL`]); its
    /// sizes read back carry the flag. Only called when
    /// [`KEEPS_CRITICAL`](Store::KEEPS_CRITICAL) is `true`; such a store
    /// overrides it (the default stores the record without the flag).
    async fn append_critical(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        self.append(seq, payload).await
    }

    /// Store `payload` as event `seq` (critical when `critical`, see
    /// [`append_critical`](Store::append_critical)) with its wall-clock
    /// stamp `stamp_ms` (ms since the Unix epoch; event expiry, feature
    /// `expiry` of the driver). A store that keeps stamps overrides it and
    /// [`first_fresh`](Store::first_fresh); the default drops the stamp, so
    /// that store's events never expire.
    async fn append_stamped(
        &mut self,
        seq: Seq,
        payload: &[u8],
        critical: bool,
        stamp_ms: u64,
    ) -> Result<(), Self::Error> {
        let _ = stamp_ms;
        if critical {
            self.append_critical(seq, payload).await
        } else {
            self.append(seq, payload).await
        }
    }

    /// The oldest pending record stamped at or after `after_ms`, or not
    /// stamped at all (appended without [`append_stamped`](Store::append_stamped));
    /// when every record is older, any number past the newest (one past
    /// it, or [`Seq::MAX`]). The records before the answer are expired.
    /// `None` [default]: this store keeps no stamps, nothing expires.
    async fn first_fresh(&mut self, after_ms: u64) -> Result<Option<Seq>, Self::Error> {
        let _ = after_ms;
        Ok(None)
    }

    /// Delete the one record `seq` (an overflow victim in the middle of the
    /// queue, reported dropped before this): afterwards
    /// [`read_sizes`](Store::read_sizes) shows it as [`DISCARDED`] (or a
    /// [`HOLE`]) until a `delete_through` covers it. Durable by the next
    /// sync at the latest. Only asked of a store whose
    /// [`KEEPS_CRITICAL`](Store::KEEPS_CRITICAL) is `true` (the machine only
    /// discards while the oldest event is critical); such a store overrides
    /// it.
    async fn discard(&mut self, seq: Seq) -> Result<(), Self::Error> {
        let _ = seq;
        Ok(())
    }

    /// Make every append so far durable (a commit).
    async fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Copy the payloads of `first..=last`, back to back and oldest first,
    /// into `buf` (which the driver sizes from the machine's sizes); returns
    /// the number of bytes written. A record whose stored size and bytes
    /// disagree is [`ReadError::Malformed`], naming that record.
    async fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<Self::Error>>;

    /// Delete every record with sequence number `<= through`. Durable by the
    /// next sync at the latest.
    async fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error>;

    /// Count, bytes, first and last sequence number of the intact records
    /// held, in the logical view (a number written twice counts once); holes
    /// between `first` and `last` are allowed ([`StoreSummary`]). Called at
    /// start-up; it should not visit every record (keep counters, or
    /// aggregate over an index).
    async fn summary(&mut self) -> Result<StoreSummary, Self::Error>;

    /// The stored sizes of the consecutive sequence numbers `from, from + 1,
    /// ...`, at most `out.len()` of them, into `out`; returns how many were
    /// written. A number with no intact record (damaged, unreadable, never
    /// stored) is written as [`HOLE`]: a damaged record is never an error
    /// here. It stops early only at the end of the store (the driver takes
    /// every number asked for beyond it as a hole). An `Err` is for a
    /// backend failure only (I/O, a lock): the machine asks again after a
    /// backoff. Used to refill the machine's window of sizes.
    async fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Self::Error>;

    /// The newest critical record held, if any (read at start-up, so that
    /// a critical event still pending after a restart asks for its flush
    /// again in any mode). Only asked of a store whose
    /// [`KEEPS_CRITICAL`](Store::KEEPS_CRITICAL) is `true`.
    async fn newest_critical(&mut self) -> Result<Option<Seq>, Self::Error> {
        Ok(None)
    }

    /// One past the highest sequence number this store ever held or saw,
    /// deleted records included, and damaged records too when their number
    /// is readable (0 for a new store), so that numbering never goes back
    /// after a restart. The machine numbers new events from the larger of
    /// this and one past the newest intact record, whether or not the queue
    /// is empty. A store that cannot remember it keeps the default; numbers
    /// are then unique only among stored records.
    async fn seq_floor(&mut self) -> Result<Seq, Self::Error> {
        Ok(0)
    }

    /// The event `seq` is refused for good (by the server, or because its
    /// record is malformed); keep a dead-letter copy if the store has a
    /// place for one. The `delete_through` covering it follows.
    async fn reject(
        &mut self,
        seq: Seq,
        status: u16,
        reason: RejectReason,
    ) -> Result<(), Self::Error> {
        let _ = (seq, status, reason);
        Ok(())
    }
}
