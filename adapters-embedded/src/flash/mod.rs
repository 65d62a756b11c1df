//! A power-cut-safe event queue on NOR flash.
//!
//! [`FlashQueue`] stores event payloads keyed by sequence number in a region
//! of any [`NorFlash`](embedded_storage::nor_flash::NorFlash), with nothing but appends and page erases: records are
//! appended to the current page, a prefix is deleted by a small checkpoint
//! record, and a page is erased once every record in it is deleted. Pages
//! are used as a ring, so erases spread evenly over the region. The queue's
//! RAM is a few dozen bytes whatever the size of the flash: counts and
//! positions, never an index.
//!
//! Files: `format` (the bytes on flash), `io` (aligned reads and writes),
//! `walk` (reading records in order), `queue` (the queue's state, open),
//! `scan` (open), `append`, `delete` (checkpoints), `ring` (opening and
//! erasing pages), `read` (sizes and payloads), `capacity`, `store` (the
//! core's `Store`), `sim` (a simulated flash, feature `_test`), `seal` and
//! `sealed` (encryption at rest, feature `encryption`: the AEAD, and a
//! sealed queue's opening and records).
//!
//! # Blocking and async
//!
//! The queue is written once and compiled twice, the way the `bisync` crate
//! (and embedded-sdmmc with it) does it: the files that do I/O are modules
//! of both `blocking` (over `embedded_storage`'s `NorFlash`, re-exported
//! here as [`FlashQueue`]) and [`asynchronous`] (over
//! `embedded_storage_async`'s, feature `async`). Their functions that do
//! I/O are `async fn`s marked `#[bisync]`; in `blocking` the attribute
//! strips every `async` and `.await`, so the blocking queue is the same
//! code it was before the async one existed. The format, the errors and the
//! summary are shared: both faces read and write the same bytes.

mod error;
mod format;
#[cfg(feature = "encryption")]
mod seal;
#[cfg(feature = "_test")]
pub mod sim;

use outbox_core::Seq;

pub use blocking::FlashQueue;
/// Runs of consecutive discarded numbers a queue keeps in RAM (feature
/// `critical`; see [`Error::TooManyDiscards`]).
#[cfg(feature = "critical")]
pub use blocking::DISCARD_RUNS;
pub use blocking::MAX_ALIGN;
pub use error::{Error, GeometryError, OpenError};
pub use format::FORMAT_VERSION;
#[cfg(feature = "encryption")]
pub use format::SEALED_VERSION;
#[cfg(feature = "encryption")]
pub use seal::{KEY_LEN, SALT_LEN, TAG_LEN};

/// The blocking queue, over `embedded_storage`'s `NorFlash`.
#[path = "."]
mod blocking {
    use bisync_shim::synchronous::*;
    use embedded_storage::nor_flash::NorFlash;
    use outbox_core::Store;

    use super::{bisync_shim, error, format, Error, GeometryError, OpenError, QueueSummary};

    mod append;
    mod capacity;
    #[cfg(feature = "critical")]
    mod critical;
    mod delete;
    mod io;
    mod queue;
    mod read;
    mod ring;
    mod scan;
    #[cfg(feature = "encryption")]
    mod sealed;
    mod store;
    mod walk;

    #[cfg(feature = "encryption")]
    use super::seal;
    #[cfg(feature = "critical")]
    pub use critical::RUNS as DISCARD_RUNS;
    pub use io::MAX_ALIGN;
    pub use queue::FlashQueue;
    use queue::{Geometry, State, WritePage};
}

/// The queue over `embedded_storage_async`'s `NorFlash` (feature `async`),
/// for embassy or any other executor: the same format, walk and contract
/// as the blocking [`FlashQueue`], each method an
/// `async fn`.
///
/// # Cancellation
///
/// Dropping a future of this queue part-way (a `select` that picked another
/// branch, a timeout) leaves the flash as a power cut at that moment would:
/// the writes and erases the future completed are there, the one it was
/// awaiting may be partial, nothing after it happened. The power-loss
/// contract on [`FlashQueue`] then holds as after a
/// cut. The queue's RAM state may no longer match the flash, so a queue
/// whose future was dropped must be opened again (from the flash, as after
/// a restart) before it is used: `into_inner` gives the flash back.
/// The tests in `tests/flash_async.rs` drop an append and a delete after
/// every number of flash operations and check the image opens exactly as
/// the same power cut leaves it.
///
/// # Example
///
/// ```
/// use embedded_storage_async::nor_flash::NorFlash;
/// use outbox_embedded::flash::asynchronous::FlashQueue;
///
/// /// `flash`: any async NorFlash (an embassy flash driver, a QSPI chip).
/// async fn keep<F: NorFlash>(flash: F, event: &[u8]) -> Option<F> {
///     let mut q = FlashQueue::open(flash, 0..64 * 1024).await.ok()?;
///     let seq = q.seq_floor().await.ok()?;
///     q.append(seq, event).await.ok()?; // durable once this returns
///     let mut buf = [0u8; 256];
///     let n = q.read_range(seq, seq, &mut buf).await.ok()?;
///     q.delete_through(seq).await.ok()?; // delivered: gone
///     (&buf[..n] == event).then(|| q.into_inner())
/// }
/// ```
#[cfg(feature = "async")]
#[path = "."]
pub mod asynchronous {
    use bisync_shim::asynchronous::*;
    use embedded_storage_async::nor_flash::NorFlash;
    use outbox_core::asynchronous::Store;

    use super::{bisync_shim, error, format, Error, GeometryError, OpenError, QueueSummary};

    #[allow(clippy::duplicate_mod)]
    mod append;
    #[allow(clippy::duplicate_mod)]
    mod capacity;
    #[cfg(feature = "critical")]
    #[allow(clippy::duplicate_mod)]
    mod critical;
    #[allow(clippy::duplicate_mod)]
    mod delete;
    #[allow(clippy::duplicate_mod)]
    mod io;
    #[allow(clippy::duplicate_mod)]
    mod queue;
    #[allow(clippy::duplicate_mod)]
    mod read;
    #[allow(clippy::duplicate_mod)]
    mod ring;
    #[allow(clippy::duplicate_mod)]
    mod scan;
    #[cfg(feature = "encryption")]
    #[allow(clippy::duplicate_mod)]
    mod sealed;
    #[allow(clippy::duplicate_mod)]
    mod store;
    #[allow(clippy::duplicate_mod)]
    mod walk;

    #[cfg(feature = "encryption")]
    use super::seal;
    pub use queue::FlashQueue;
    use queue::{Geometry, State, WritePage};
}

/// The `bisync` crate's attribute for each face (the crate itself is these
/// re-exports over its macros crate, which is all this needs of it):
/// `#[bisync]` keeps an `async fn` as it is, or strips its `async` and its
/// `.await`s.
mod bisync_shim {
    pub mod synchronous {
        pub use ::bisync_macros::internal_strip_async as bisync;
    }
    #[cfg(feature = "async")]
    pub mod asynchronous {
        pub use ::bisync_macros::internal_noop as bisync;
    }
}

/// Whether record CRCs use the `crc` crate's lookup table (feature
/// `crc-table`) rather than the bitwise default.
pub const CRC_TABLE: bool = cfg!(feature = "crc-table");

/// What the queue holds, in O(1): the start-up view the machine needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSummary {
    /// Events stored.
    pub count: u64,
    /// Payload bytes stored.
    pub bytes: u64,
    /// The oldest event's sequence number.
    pub first: Option<Seq>,
    /// The newest event's sequence number.
    pub last: Option<Seq>,
}
