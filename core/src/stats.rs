//! Counters the machine keeps and reports; they always add up:
//! `tracked + restored == delivered + dropped() + rejected + pending_events`.

use serde::{Deserialize, Serialize};

use crate::{HaltReason, Instant, Seq};

/// A snapshot of the machine's accounts, from [`Machine::stats`](crate::Machine::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Events stored and not yet delivered, dropped or rejected.
    pub pending_events: u32,
    /// Their payload bytes.
    pub pending_bytes: u64,
    /// Events in the batch awaiting a response.
    pub in_flight_events: u32,
    /// Events accepted by track.
    pub tracked: u64,
    /// Events restored from storage at start-up.
    pub restored: u64,
    /// Events the server acknowledged.
    pub delivered: u64,
    /// Events dropped because the queue was full.
    pub dropped_overflow: u64,
    /// Events dropped after `max_attempts` failures.
    pub dropped_max_attempts: u64,
    /// Events the store could not persist.
    pub dropped_not_stored: u64,
    /// Events whose stored record was found damaged (a hole the summary
    /// counted as a record). Holes the summary already left out are not
    /// events and are not counted, though they are reported.
    pub dropped_damaged: u64,
    /// Events older than `max_event_age` when their batch was formed
    /// (feature `expiry`).
    #[cfg(feature = "expiry")]
    pub dropped_expired: u64,
    /// Events the server refused for good (poison, too large).
    pub rejected: u64,
    /// Failed upload attempts (each schedules a retry).
    pub retries: u64,
    /// Notifications lost because the caller did not drain `poll_output`.
    pub notes_overflowed: u32,
    /// Uploads halted (until `Resume`).
    pub halted: bool,
    /// Why uploads halted, when they did.
    pub halt_reason: Option<HaltReason>,
    /// The network is believed up (whatever its kind).
    pub network_up: bool,
    /// The network is up and the upload policy allows its kind: a batch
    /// may go (flush requests, backoff and halts permitting).
    pub uploads_allowed: bool,
    /// The platform reported power save: automatic flushes wait.
    pub power_save: bool,
    /// A flush is requested and not yet complete.
    pub flush_requested: bool,
    /// When the current backoff ends, if any.
    pub retry_at: Option<Instant>,
    /// The sequence number the next tracked event gets.
    pub next_seq: Seq,
}

impl Stats {
    /// All events dropped, whatever the reason.
    pub const fn dropped(&self) -> u64 {
        self.dropped_overflow
            + self.dropped_max_attempts
            + self.dropped_not_stored
            + self.dropped_damaged
            + self.expired()
    }

    #[cfg(feature = "expiry")]
    const fn expired(&self) -> u64 {
        self.dropped_expired
    }

    #[cfg(not(feature = "expiry"))]
    const fn expired(&self) -> u64 {
        0
    }

    /// Whether the accounts add up. They always do; adapters and tests
    /// assert it after restarts and in health checks.
    pub const fn balanced(&self) -> bool {
        self.tracked + self.restored
            == self.delivered + self.dropped() + self.rejected + self.pending_events as u64
    }
}
