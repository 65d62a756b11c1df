//! The Client's errors and reports, one error enum per operation.

use outbox_core::{ConfigError, InputError};

use crate::event::EventError;
use crate::sqlite::{OpenError, StoreError};

/// Why [`ClientBuilder::build`](super::ClientBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration was refused.
    #[error("configuration refused: {0}")]
    Config(#[from] ConfigError),
    /// The database could not be opened (foreign, corrupted, in use, ...).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading the stored queue back failed.
    #[error("restoring the stored queue failed: {0}")]
    Restore(StoreError),
    /// The HTTP settings were refused.
    #[cfg(feature = "http")]
    #[error(transparent)]
    Http(#[from] crate::http::HttpConfigError),
    /// The HTTP overall timeout is not below the machine's
    /// `request_timeout`: each request the machine gives up on would still
    /// be running when it sends the batch again.
    #[cfg(feature = "http")]
    #[error(
        "the HTTP overall timeout ({overall:?}) must be below the request timeout \
         ({request_timeout:?})"
    )]
    HttpTimeout {
        /// The HTTP overall timeout.
        overall: std::time::Duration,
        /// The machine's `request_timeout`.
        request_timeout: std::time::Duration,
    },
    /// Neither an endpoint nor an uploader was given.
    #[error("no endpoint and no uploader configured")]
    NoUploader,
    /// No database path was given.
    #[error("no database path configured")]
    NoPath,
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Why an event was not tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    /// The event is invalid (too large, a field not an object, ...); not stored.
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// The queue is full and the overflow policy is `RejectNew`.
    #[error("the queue is full")]
    QueueFull,
    /// The store could not keep it (disk full, read-only, ...).
    #[error("the event was not stored: {0}")]
    NotStored(StoreError),
    /// The Client has stopped.
    #[error("the client has stopped")]
    Stopped,
}

/// Why a Client call other than track failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The machine refused the change (e.g. a zero period).
    #[error("refused: {0}")]
    Refused(InputError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Client has stopped.
    #[error("the client has stopped")]
    Stopped,
}

/// What happened during a [`flush_and_wait`](super::Client::flush_and_wait)
/// or a [`shutdown`](super::Client::shutdown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Events the server acknowledged meanwhile.
    pub delivered: u64,
    /// Events dropped meanwhile (overflow, max attempts, not stored).
    pub dropped: u64,
    /// Events the server refused meanwhile (now dead letters).
    pub rejected: u64,
    /// Events still pending at the end.
    pub pending: u32,
}

/// Why [`flush_and_wait`](super::Client::flush_and_wait) returned before
/// every earlier event was settled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The timeout passed first; the events stay queued.
    #[error("flush timed out with {} events pending", .0.pending)]
    TimedOut(FlushReport),
    /// Uploads are halted on 401/403; the events stay queued.
    #[error("uploads are halted (server answered {status}); {} events pending", report.pending)]
    Halted {
        /// The status that halted uploads.
        status: u16,
        /// What happened until then.
        report: FlushReport,
    },
    /// The Client has stopped.
    #[error("the client has stopped")]
    Stopped,
}
