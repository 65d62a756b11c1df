//! Everything the machine asks its driver to do or to tell.
//!
//! Outputs are drained with [`Machine::poll_output`](crate::Machine::poll_output)
//! and must be applied in the order they come: a `Persist` always comes
//! before any `Send` naming that event, and a `Rejected` always comes before
//! the `Delete` that covers it (so a dead-letter copy can be taken first).

use serde::{Deserialize, Serialize};

use crate::{Instant, Seq};

/// Identifies one upload attempt; responses name it.
pub type BatchId = u64;

/// One upload: the pending events `first..=last`, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Batch {
    /// The id the response must carry.
    pub id: BatchId,
    /// Oldest event in the batch.
    pub first: Seq,
    /// Newest event in the batch.
    pub last: Seq,
    /// Number of events (`last - first + 1`).
    pub count: u32,
    /// Bytes of the batch on the wire, envelope included (as configured).
    pub bytes: u32,
}

/// Why events left the queue without being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full and the overflow policy is `DropOldest`.
    Overflow,
    /// The batch failed `max_attempts` times.
    MaxAttempts,
    /// The store could not persist them ([`Input::PersistFailed`](crate::Input::PersistFailed),
    /// [`Input::CommitFailed`](crate::Input::CommitFailed)). Their numbers
    /// are never given to another event.
    NotStored,
    /// The store holds no intact record for these numbers (a hole: the
    /// record is damaged, unreadable or was never stored; see
    /// [`store`](crate::store)). Reported once the holes reach the head of
    /// the queue; the next `Delete` covers them.
    Damaged,
    /// Older than `max_event_age` by the wall clock when their batch was
    /// formed (feature `expiry`): never sent. Critical events never expire.
    Expired,
}

/// Why the server refused one event for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RejectReason {
    /// The server answered 400 to a batch holding only this event.
    Poison,
    /// The server answered 413 to a batch holding only this event.
    TooLarge,
    /// The stored record is damaged (its size and bytes disagree); it was
    /// never sent. Its status is 0: no server answered.
    Malformed,
}

/// Why uploads are paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RetryCause {
    /// No response at all (or none by `request_timeout`); network restored
    /// cuts this backoff short.
    Transport,
    /// The server answered with a retryable status; only time ends it.
    Server,
    /// The batch could not be read on this side; no attempt was spent.
    Local,
}

/// Why uploads halted (until `Resume` or the next start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HaltReason {
    /// The server answered a status retrying cannot fix (401, 403, 404,
    /// 405, 410, 501, 505, other 4xx): credentials or the endpoint are wrong.
    Status,
    /// `max_consecutive_rejections` single events were rejected with no
    /// delivery between: the server, not the events, is likely broken.
    RejectionStorm,
    /// The store failed to delete delivered events: sending on would
    /// deliver them again and again.
    Storage,
}

/// One thing for the driver to do, or to tell the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Output {
    /// Append the event `seq` (of `size` bytes) to the store. It is durable
    /// after the next `Commit`.
    Persist {
        /// The event's sequence number.
        seq: Seq,
        /// Its size.
        size: u32,
    },
    /// Make every append so far durable ([`Store::sync`](crate::Store::sync));
    /// on failure answer [`Input::CommitFailed`](crate::Input::CommitFailed).
    Commit,
    /// Find the oldest pending event stamped at or after `after_ms` (wall
    /// clock ms since the Unix epoch; [`Store::first_fresh`](crate::Store::first_fresh))
    /// and answer [`Input::Fresh`](crate::Input::Fresh) (feature `expiry`):
    /// the events before it are older than `max_event_age`.
    #[cfg(feature = "expiry")]
    FindFresh {
        /// Events stamped before this are expired.
        after_ms: u64,
    },
    /// Read the stored sizes of the numbers `from, from + 1, ...` (at most
    /// `max`) and answer each with [`Input::Size`](crate::Input::Size) (a
    /// [`HOLE`](crate::HOLE) for a number without an intact record, also
    /// past the store's end), or
    /// [`Input::SizesUnavailable`](crate::Input::SizesUnavailable) from the
    /// first one not read when the store failed.
    ReadSizes {
        /// The first event whose size is wanted.
        from: Seq,
        /// The most sizes wanted.
        max: u32,
    },
    /// Delete every stored event with sequence number `<= through`.
    Delete {
        /// The newest sequence number to delete.
        through: Seq,
    },
    /// Delete the one stored event `seq` ([`Store::discard`](crate::Store::discard)):
    /// an overflow victim in the middle of the queue (the oldest is
    /// critical), reported by the `Dropped` before it. On failure answer
    /// [`Input::DeleteFailed`](crate::Input::DeleteFailed).
    Discard {
        /// The event to delete.
        seq: Seq,
    },
    /// Upload this batch; answer later with `Response` or `TransportFailed`.
    Send(Batch),
    /// The server has the events `first..=last`.
    Delivered {
        /// Oldest delivered.
        first: Seq,
        /// Newest delivered.
        last: Seq,
    },
    /// The events `first..=last` left the queue undelivered.
    Dropped {
        /// Oldest dropped.
        first: Seq,
        /// Newest dropped.
        last: Seq,
        /// Why.
        reason: DropReason,
    },
    /// The event `seq` is refused for good; move it to dead letters. The
    /// `Delete` covering it follows.
    Rejected {
        /// The refused event.
        seq: Seq,
        /// The HTTP-like status it got (0 when no server answered: a
        /// malformed record).
        status: u16,
        /// Why.
        reason: RejectReason,
    },
    /// Uploads stopped; every event is kept until `Resume`.
    Halted {
        /// The server's status that halted them (the last rejection's for a
        /// storm; 0 for storage).
        status: u16,
        /// Why.
        reason: HaltReason,
    },
    /// The last attempt failed; the next one waits until `at`.
    RetryScheduled {
        /// When the next attempt may start.
        at: Instant,
        /// Consecutive failed attempts so far.
        attempt: u32,
        /// What failed.
        cause: RetryCause,
    },
}
