//! Everything the machine can be told.
//!
//! One enum, serde-serialisable, so that a run can be recorded as a list of
//! `(Instant, Input)` pairs and replayed to exactly the same outputs under the
//! same seed (postcard makes that a few bytes per input, also on a device).

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::FlushMode;
use crate::network::NetworkKind;
use crate::output::BatchId;
use crate::store::StoreSummary;
use crate::Seq;

/// A failure on this side of the wire: the batch never left, so it spends
/// no delivery attempt and is never reported as a server status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LocalFailure {
    /// The store could not read the batch (an I/O error, a short read):
    /// retried after a backoff.
    Read,
    /// The batch does not fit the driver's buffer of `bytes` bytes: batches
    /// are cut to fit it from now on, and sent again at once.
    Buffer {
        /// The buffer's size.
        bytes: u32,
    },
}

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
    /// The application tracks a *critical* event whose stored payload is
    /// `size` bytes (see [`CRITICAL`](crate::CRITICAL)): as `Track`, and it
    /// requests a flush of the queue up to it in any flush mode (served
    /// when the network is up and no backoff runs: a server's Retry-After
    /// still holds), it is never the overflow victim while a non-critical
    /// event is pending, and never expires.
    TrackCritical {
        /// Payload size in bytes.
        size: u32,
    },
    /// The wall clock (feature `expiry`): milliseconds since the Unix
    /// epoch, as the adapter reads it. The machine keeps the largest it was
    /// given, so a clock that jumps back expires nothing early; the adapter
    /// stamps each tracked event with [`Machine::wall_clock`](crate::Machine::wall_clock).
    #[cfg(feature = "expiry")]
    WallClock {
        /// Milliseconds since the Unix epoch.
        now_ms: u64,
    },
    /// The answer to [`Output::FindFresh`](crate::Output::FindFresh)
    /// (feature `expiry`): the oldest pending event stamped at or after its
    /// `after_ms` (or stamped not at all), or any number past the newest
    /// when every pending event is older. `0` when the store keeps no
    /// stamps: nothing expires.
    #[cfg(feature = "expiry")]
    Fresh {
        /// The oldest event that is not expired.
        first_fresh_seq: Seq,
    },
    /// Time passed; the caller sends this at or after [`poll_timeout`](crate::Machine::poll_timeout).
    /// An early or spurious tick is harmless.
    Tick,
    /// Upload everything pending, in any flush mode.
    Flush,
    /// The network came up (`true`) or went down (`false`), or its kind
    /// changed. Under [`UploadPolicy::Unmetered`](crate::UploadPolicy) an
    /// up network of another kind counts as down for uploads; becoming
    /// usable resumes what waited (see [`crate::network`]).
    Network {
        /// Whether requests can be made now.
        up: bool,
        /// What the network costs (ignored while down).
        kind: NetworkKind,
    },
    /// The platform entered (`true`) or left (`false`) power save / low
    /// battery: automatic flushes wait meanwhile, explicit ones do not.
    PowerSave(bool),
    /// The application's lifecycle changed.
    Lifecycle(Lifecycle),
    /// The server answered the batch `batch` with an HTTP-like `status`.
    Response {
        /// The batch this answers; a stale id is ignored.
        batch: BatchId,
        /// HTTP-like status code.
        status: u16,
        /// Retry-After from the response (seconds or an HTTP date,
        /// converted by the adapter).
        retry_after: Option<Duration>,
    },
    /// The batch `batch` got no response (connection refused, timeout, lost).
    TransportFailed {
        /// The batch that failed; a stale id is ignored.
        batch: BatchId,
    },
    /// At start-up, before anything else: what the store holds
    /// ([`Store::summary`](crate::Store::summary)). The machine then asks
    /// for the sizes of the oldest records with
    /// [`Output::ReadSizes`](crate::Output::ReadSizes).
    Restore(StoreSummary),
    /// At start-up: the store has used every sequence number below `next`
    /// (it remembers how far it deleted, and numbers it saw). Numbering
    /// continues at the larger of `next` and one past the newest record,
    /// whether or not the store holds records: the numbers skipped are
    /// holes the machine made, dropped silently when they reach the head.
    SeqFloor {
        /// One past the highest sequence number the store ever used.
        next: Seq,
    },
    /// At start-up, after `Restore`: the newest critical event the store
    /// holds ([`Store::newest_critical`](crate::Store::newest_critical)).
    /// The queue up to it is flushed as if it had just been tracked, in any
    /// flush mode; a number outside the queue is ignored.
    CriticalPending {
        /// The newest pending critical event.
        through: Seq,
    },
    /// The stored size of event `seq` (with the [`CRITICAL`](crate::CRITICAL)
    /// flag for a critical event): one answer to
    /// [`Output::ReadSizes`](crate::Output::ReadSizes), in order from its
    /// `from`; [`HOLE`](crate::HOLE) when the store has no intact record
    /// for `seq` (it is dropped as damaged when it reaches the head).
    Size {
        /// The event.
        seq: Seq,
        /// Its stored size in bytes.
        size: u32,
    },
    /// The store could not give the sizes from `from` on (a backend error;
    /// a number without a record is a [`HOLE`](crate::HOLE) size, never
    /// this): the machine asks again after a backoff.
    SizesUnavailable {
        /// The first size not read.
        from: Seq,
    },
    /// The append of `from_seq` failed (disk full, I/O error): it and every
    /// newer event leave the queue and are reported dropped (`NotStored`);
    /// their numbers are never used again. Give it before the next input.
    PersistFailed {
        /// The oldest event that was not stored.
        from_seq: Seq,
    },
    /// Commit now (a group commit the caller wants, e.g. for `sync`): an
    /// [`Output::Commit`](crate::Output::Commit) follows if anything is
    /// uncommitted.
    Commit,
    /// The last [`Output::Commit`](crate::Output::Commit) failed: the events
    /// it covered, and every newer one, were not stored. Give it before the
    /// next input.
    CommitFailed,
    /// A [`Output::Delete`](crate::Output::Delete) failed: uploads halt
    /// ([`HaltReason::Storage`](crate::HaltReason::Storage)) until `Resume`,
    /// which tries the delete again; nothing delivered is sent again
    /// meanwhile.
    DeleteFailed,
    /// The batch `batch` was not sent for a reason on this side of the wire.
    LocalFailure {
        /// The batch.
        batch: BatchId,
        /// What went wrong.
        failure: LocalFailure,
    },
    /// While reading the batch `batch`, the record `seq` was found damaged
    /// for good: it is rejected alone
    /// ([`RejectReason::Malformed`](crate::RejectReason::Malformed)) once
    /// the events before it are delivered; no attempt is spent.
    Malformed {
        /// The batch being read.
        batch: BatchId,
        /// The damaged record.
        seq: Seq,
    },
    /// Resume uploads after a halt (a status, a rejection storm, storage).
    Resume,
    /// Change the flush mode. Switching cancels every flush the previous
    /// mode requested; an explicit [`Input::Flush`] still stands.
    SetFlushMode(FlushMode),
    /// Change the `Period` mode's period (kept while another mode is
    /// active); never zero.
    SetFlushPeriod(Duration),
    /// Change the `Period` mode's threshold (at most `max_queue_events`);
    /// `None` turns it off.
    SetFlushThreshold(Option<u32>),
}
