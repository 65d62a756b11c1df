//! What can go wrong opening the queue and using it.

use core::fmt;

use outbox_core::Seq;

/// Why [`FlashQueue::open`](super::FlashQueue::open) failed. A damaged image
/// is never one of these: torn and garbage bytes are skipped. These are a
/// flash that fails, a region the queue cannot use, or data written by
/// another format version (left untouched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError<E> {
    /// The flash driver failed.
    Flash(E),
    /// The region or the flash's sizes cannot hold the queue.
    Geometry(GeometryError),
    /// A page holds a queue of another format version; nothing was changed.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A sealed queue (feature `encryption`) whose key check value does
    /// not match the key given: the key is not the queue's. Nothing was
    /// changed.
    #[cfg(feature = "encryption")]
    WrongKey,
    /// A sealed queue (feature `encryption`) holds records but no page's
    /// header copy, the only place of the salt, passes its checks (bit
    /// rot): its records cannot be read and the key cannot be checked.
    /// Nothing was changed. To start again, erase the region explicitly
    /// (its records are lost) and open it.
    #[cfg(feature = "encryption")]
    SaltLost,
}

/// What is wrong with the region or the flash's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeometryError {
    /// The region's start or end is not a multiple of `ERASE_SIZE`, or it
    /// lies beyond the flash.
    Unaligned,
    /// Fewer than two pages.
    TooFewPages,
    /// `READ_SIZE` or `WRITE_SIZE` is not a power of two up to 32, or does
    /// not divide `ERASE_SIZE`.
    UnsupportedWordSize,
    /// A page is too small to hold a header, a record and a checkpoint.
    PageTooSmall,
    /// A page of a sealed queue (feature `encryption`) is larger than
    /// 64 KiB: record offsets must fit the nonce's 16 bits.
    #[cfg(feature = "encryption")]
    PageTooLarge,
}

/// Why a queue operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The flash driver failed. The queue reads its state back from flash
    /// before the next operation; what was written before the failure may
    /// or may not be there (see the power-loss contract on
    /// [`FlashQueue`](super::FlashQueue)).
    Flash(E),
    /// No free page is left for the record. The machine's overflow policy
    /// prevents this when its `max_queue_bytes` comes from
    /// [`FlashQueue::max_queue_bytes`](super::FlashQueue::max_queue_bytes).
    Full,
    /// The payload is larger than one record can hold.
    TooLarge {
        /// Payload bytes.
        len: usize,
        /// The most a record holds ([`FlashQueue::max_payload`](super::FlashQueue::max_payload)).
        max: usize,
    },
    /// The sequence number does not continue the queue: while events are
    /// stored the next is the newest again (after a failed append) or one
    /// past it; an empty queue takes any number above the deleted ones.
    OutOfOrder {
        /// The number appended.
        seq: Seq,
        /// The lowest number that could be appended.
        lowest: Seq,
        /// The highest number that could be appended.
        highest: Seq,
    },
    /// The records asked for do not fit in the buffer.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A record in the range asked for is not stored (only a damaged image
    /// has gaps).
    Missing {
        /// The first number not found.
        seq: Seq,
    },
    /// Reading the state back after a failure found another format version.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A discard (feature `critical`) needs one run of discarded numbers
    /// more than the queue keeps in RAM (`flash::DISCARD_RUNS`); nothing
    /// was written. A delete passing discarded numbers frees their runs.
    #[cfg(feature = "critical")]
    TooManyDiscards,
}

/// Why reading the state from flash failed (shared by open and the re-read
/// after a failure).
pub(crate) enum ScanError<E> {
    Flash(E),
    UnsupportedVersion(u8),
}

impl<E> From<ScanError<E>> for OpenError<E> {
    fn from(e: ScanError<E>) -> Self {
        match e {
            ScanError::Flash(e) => OpenError::Flash(e),
            ScanError::UnsupportedVersion(found) => OpenError::UnsupportedVersion { found },
        }
    }
}

impl<E> From<ScanError<E>> for Error<E> {
    fn from(e: ScanError<E>) -> Self {
        match e {
            ScanError::Flash(e) => Error::Flash(e),
            ScanError::UnsupportedVersion(found) => Error::UnsupportedVersion { found },
        }
    }
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GeometryError::Unaligned => "region is not page aligned or lies beyond the flash",
            GeometryError::TooFewPages => "region has fewer than two pages",
            GeometryError::UnsupportedWordSize => {
                "read or write size is not a power of two up to 32 dividing the page size"
            }
            GeometryError::PageTooSmall => "page too small for a header, a record and a checkpoint",
            #[cfg(feature = "encryption")]
            GeometryError::PageTooLarge => "page larger than 64 KiB for a sealed queue",
        })
    }
}

impl<E: fmt::Debug> fmt::Display for OpenError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Flash(e) => write!(f, "flash failed: {e:?}"),
            OpenError::Geometry(g) => write!(f, "unusable flash region: {g}"),
            OpenError::UnsupportedVersion { found } => write!(
                f,
                "flash holds queue format version {found}, this build reads versions 1 to {}",
                super::format::FORMAT_VERSION
            ),
            #[cfg(feature = "encryption")]
            OpenError::WrongKey => f.write_str("the key is not the sealed queue's"),
            #[cfg(feature = "encryption")]
            OpenError::SaltLost => {
                f.write_str("the sealed queue's salt is damaged on every page: erase the region")
            }
        }
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Flash(e) => write!(f, "flash failed: {e:?}"),
            Error::Full => f.write_str("flash queue is full"),
            Error::TooLarge { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the record limit of {max}"
                )
            }
            Error::OutOfOrder {
                seq,
                lowest,
                highest,
            } => write!(
                f,
                "sequence number {seq} does not continue the queue ({lowest}..={highest})"
            ),
            Error::BufferTooSmall { needed, available } => {
                write!(f, "records need {needed} bytes, the buffer has {available}")
            }
            Error::Missing { seq } => write!(f, "event {seq} is not stored"),
            Error::UnsupportedVersion { found } => {
                write!(f, "flash holds queue format version {found}")
            }
            #[cfg(feature = "critical")]
            Error::TooManyDiscards => {
                f.write_str("too many events discarded in the middle of the queue")
            }
        }
    }
}

impl core::error::Error for GeometryError {}
impl<E: fmt::Debug> core::error::Error for OpenError<E> {}
impl<E: fmt::Debug> core::error::Error for Error<E> {}
