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
    /// The store could not persist them ([`Input::PersistFailed`](crate::Input::PersistFailed)).
    NotStored,
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
pub enum RetryCause {
    /// No response at all; network restored cuts this backoff short.
    Transport,
    /// The server answered with a retryable status; only time ends it.
    Server,
}

/// One thing for the driver to do, or to tell the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Output {
    /// Store the event `seq` (of `size` bytes) durably.
    Persist {
        /// The event's sequence number.
        seq: Seq,
        /// Its size.
        size: u32,
    },
    /// Delete every stored event with sequence number `<= through`.
    Delete {
        /// The newest sequence number to delete.
        through: Seq,
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
    /// The server refused the event `seq` for good; move it to dead letters.
    /// The `Delete` covering it follows.
    Rejected {
        /// The refused event.
        seq: Seq,
        /// The HTTP-like status it got.
        status: u16,
        /// Why.
        reason: RejectReason,
    },
    /// Uploads stopped on 401/403; every event is kept until `Resume`.
    Halted {
        /// The status that halted uploads.
        status: u16,
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
