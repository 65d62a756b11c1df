//! Everything the machine can be told.
//!
//! One enum, serde-serialisable, so that a run can be recorded as a list of
//! `(Instant, Input)` pairs and replayed to exactly the same outputs under the
//! same seed (postcard makes that a few bytes per input, also on a device).

use serde::{Deserialize, Serialize};

use crate::config::FlushMode;
use crate::output::BatchId;
use crate::Seq;

/// The application's lifecycle, as the platform reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Lifecycle {
    /// The application became active.
    Foreground,
    /// The application resigned active state.
    Background,
    /// The application is about to exit.
    Terminate,
}

/// One input to [`Machine::handle`](crate::Machine::handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Input {
    /// The application tracks an event whose stored payload is `size` bytes.
    /// The machine answers with the event's sequence number and a
    /// [`Output::Persist`](crate::Output::Persist).
    Track {
        /// Payload size in bytes.
        size: u32,
    },
    /// Time passed; the caller sends this at or after [`poll_timeout`](crate::Machine::poll_timeout).
    /// An early or spurious tick is harmless.
    Tick,
    /// Upload everything pending, in any flush mode.
    Flush,
    /// The network became usable (`true`) or unusable (`false`).
    Network {
        /// Whether requests can be made now.
        up: bool,
    },
    /// The application's lifecycle changed.
    Lifecycle(Lifecycle),
    /// The server answered the batch `batch` with an HTTP-like `status`.
    Response {
        /// The batch this answers; a stale id is ignored.
        batch: BatchId,
        /// HTTP-like status code.
        status: u16,
        /// Retry-After from the response, converted to milliseconds by the adapter.
        retry_after_millis: Option<u64>,
    },
    /// The batch `batch` got no response (connection refused, timeout, lost).
    TransportFailed {
        /// The batch that failed; a stale id is ignored.
        batch: BatchId,
    },
    /// At start-up: the store holds the event `seq` of `size` bytes. Restore
    /// every stored event in increasing `seq` order before tracking.
    Restore {
        /// The stored event's sequence number.
        seq: Seq,
        /// Its payload size in bytes.
        size: u32,
    },
    /// At start-up: the store has used every sequence number below `next`
    /// (it remembers how far it deleted). Numbering continues there when the
    /// store holds no records; otherwise it continues after the newest record.
    SeqFloor {
        /// One past the highest sequence number the store ever used.
        next: Seq,
    },
    /// The events from `from_seq` on were not stored (disk full, I/O error):
    /// they leave the queue and are reported dropped.
    PersistFailed {
        /// The oldest event that was not stored.
        from_seq: Seq,
    },
    /// Resume uploads after a 401/403 halt.
    Resume,
    /// Change the flush mode.
    SetFlushMode(FlushMode),
    /// Change the `Period` mode's period in milliseconds; while another mode
    /// is active it is remembered ([`Config::flush_period`](crate::Config::flush_period)).
    SetFlushPeriod {
        /// The new period in milliseconds; never zero.
        millis: u64,
    },
    /// Change the `Period` mode's threshold; `None` turns it off.
    SetFlushThreshold(Option<u32>),
}
