//! The queue itself: what it keeps in RAM, the region's geometry, opening
//! and reading the state back after a failure. Compiled twice (see the
//! module docs of `flash`): once over the blocking `NorFlash`, once over
//! the async one.

use core::ops::Range;

use outbox_core::Seq;

use super::io::MAX_ALIGN;
use super::walk::Cursor;
use super::{bisync, capacity, format, scan, GeometryError, NorFlash, QueueSummary};
use super::{Error, OpenError};

/// A queue of event payloads on NOR flash.
///
/// # Power-loss contract
///
/// Power may fail at any moment, including in the middle of a write or an
/// erase. The flash may then hold anything in the bytes that write or erase
/// was changing, but nothing else changes (the flash must not implement a
/// write as read-erase-modify-write). After power returns and the queue is
/// opened again:
///
/// - every record whose [`append`](Self::append) returned `Ok` is there,
///   byte for byte, unless a [`delete_through`](Self::delete_through)
///   covering it returned `Ok`;
/// - no delete that returned `Ok` is undone: no record it covered comes
///   back, with one exception, after failed writes only: when
///   [`checkpoint_room`](Self::checkpoint_room) is false (a failed write
///   closed the write page after a delete had taken the spare page), a
///   delete holds in memory until a page it empties is erased and the next
///   page carries it; a power cut before that brings its records back, to
///   be sent again (duplicates the server absorbs by `messageId`; never a
///   loss). Refusing the delete instead would stop the queue for good;
/// - an append that did not return `Ok` left either nothing or its whole
///   record; a delete that did not return `Ok` deleted a prefix of what it
///   covered (usually all or nothing);
/// - torn or garbage bytes are detected by CRC and skipped, never returned
///   as an event, and every record comes back at most once, in order;
/// - any image, however corrupted, opens without a panic: it either opens
///   (skipping what fails its checks) or returns a typed [`OpenError`].
///
/// Each word of the flash is written at most once between erases and no
/// written bit is ever set back, so flash with ECC, which cannot rewrite a
/// word, works: the queue needs only [`NorFlash`], never
/// `MultiwriteNorFlash`.
///
/// After a flash error the queue reads its state back from the flash before
/// the next operation, so it always agrees with what a reopen would find.
///
/// # Storage damage
///
/// Bit rot is not a power cut: any byte may change later. A record that
/// fails its checks costs that record alone: reads resynchronise at the
/// next valid record, the damaged number is a hole
/// ([`HOLE`](outbox_core::HOLE) in [`read_sizes`](Self::read_sizes)) when
/// it lies between intact events, and the seq floor covers it when its
/// header survived. At the edges of the queue the store contract's summary
/// ([`Store::summary`](outbox_core::Store::summary)) reports it: it spans
/// from the last delete to one below the seq floor. Every page header is
/// written twice (format 2: the header and a copy as the page's first
/// record), so one damaged copy costs nothing: the page's records and the
/// seq floor stay, and no number handed out is handed out again. Only both
/// copies damaged (or the single header of a page written in format 1)
/// cost the records on that page (their numbers are stored relative to
/// it), and on the write page may lower the floor below numbers handed
/// out. A record header that lost one or two bits is recovered (the
/// candidate with those bits put back whose record CRC-32 matches), so
/// the event comes back; a header beyond that (three bits or more, or
/// the payload damaged too) loses its number: on the newest record, that
/// number may be handed out again. A queue that lost every record still
/// reports the numbers it lost (the summary's span with a count of 0),
/// except record 0 alone, which reads as an empty queue. A damaged
/// checkpoint may bring back events it deleted (sent again, deduplicated
/// by the server), never lose one. The summary is read at open and kept
/// from then on; a record damaged while the queue is open is found by the
/// reads.
///
/// # Sequence numbers
///
/// Appends come in increasing order, with gaps allowed (numbers the
/// machine spent on failed appends are holes). The newest number may be
/// appended again: the newer copy wins. [`seq_floor`](Self::seq_floor) is
/// one past the highest number the queue ever held, damaged records
/// included when their number is readable, so numbering never goes back
/// after a restart.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "_test")] {
/// use outbox_embedded::flash::{sim::SimFlash, FlashQueue};
///
/// let mut flash = SimFlash::<4, 4, 4096>::new(8);
/// let mut q = FlashQueue::open(&mut flash, 0..8 * 4096).unwrap();
/// q.append(1, b"hello").unwrap();
/// q.append(2, b"world").unwrap();
/// let mut buf = [0u8; 16];
/// let n = q.read_range(1, 2, &mut buf).unwrap();
/// assert_eq!(&buf[..n], b"helloworld");
/// q.delete_through(1).unwrap();
/// assert_eq!(q.summary().unwrap().count, 1);
/// drop(q);
///
/// // After a restart, or a power cut, the same state comes back.
/// let mut q = FlashQueue::open(&mut flash, 0..8 * 4096).unwrap();
/// assert_eq!(q.summary().unwrap().first, Some(2));
/// assert_eq!(q.seq_floor().unwrap(), 3);
/// # }
/// ```
pub struct FlashQueue<F: NorFlash> {
    pub(super) flash: F,
    pub(super) geo: Geometry,
    pub(super) st: State,
    /// A flash operation failed: read the state back before the next one.
    pub(super) stale: bool,
    /// A sealed queue's salts for formatting: the caller's, and how many
    /// formats took one (see `sealed::new_salt`).
    #[cfg(feature = "encryption")]
    pub(super) fresh: Option<(super::seal::Keys, u32)>,
}

/// Where the region lies and how its pages are cut.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) start: u32,
    pub(super) pages: u32,
    pub(super) page_size: u32,
    /// Bytes of a page header, padded.
    pub(super) header: u32,
    /// A sealed queue's key and salt (feature `encryption`).
    #[cfg(feature = "encryption")]
    pub(super) seal: Option<super::seal::Keys>,
}

impl Geometry {
    pub(super) fn addr(&self, page: u32, off: u32) -> u32 {
        self.start + page * self.page_size + off
    }

    pub(super) fn next(&self, page: u32) -> u32 {
        if page + 1 == self.pages {
            0
        } else {
            page + 1
        }
    }

    /// Offset of a page's first record after its header and header copy.
    pub(super) fn first(&self, w: u32) -> u32 {
        #[cfg(feature = "encryption")]
        if self.seal.is_some() {
            return self.header + format::record_len(format::SEALED_COPY_PAYLOAD as u32, w);
        }
        self.header + format::copy_len(w)
    }

    /// Bytes a record adds to its payload beyond the format's own (a
    /// sealed queue's tag).
    pub(super) fn tag_len(&self) -> u32 {
        #[cfg(feature = "encryption")]
        if self.seal.is_some() {
            return super::seal::TAG_LEN as u32;
        }
        0
    }

    pub(super) fn prev(&self, page: u32) -> u32 {
        if page == 0 {
            self.pages - 1
        } else {
            page - 1
        }
    }
}

/// Everything the queue keeps in RAM; all of it can be rebuilt by a scan.
#[derive(Clone, Copy, Debug)]
pub(super) struct State {
    /// The page being appended to, if any page is in use.
    pub(super) write: Option<WritePage>,
    /// The oldest page in use (it may hold only deleted records).
    pub(super) chain_start: u32,
    /// Free pages at the front of the free run not known to be erased.
    pub(super) unverified_free: u32,
    /// Free pages whose erase a power cut may have interrupted (the one
    /// after the write page and the one before `chain_start`): they read as
    /// erased, or not, but are erased again before use.
    pub(super) suspect: [Option<u32>; 2],
    /// Every record below this is deleted.
    pub(super) live_from: Seq,
    /// One past the highest sequence number held.
    pub(super) floor: Seq,
    pub(super) summary: QueueSummary,
    /// Payload bytes of the newest event (replaced when it is appended again).
    pub(super) last_len: u16,
    /// The number of the newest accepted record, deleted or not.
    pub(super) tail_last: Option<Seq>,
    /// The walk position of the oldest event.
    pub(super) head: Cursor,
    /// Where the last read stopped, to continue from there.
    pub(super) scan: Option<Cursor>,
    /// The numbers discarded and not yet deleted (feature `critical`).
    #[cfg(feature = "critical")]
    pub(super) discards: super::critical::Discards,
    /// The newest critical event appended or found by open (feature
    /// `critical`).
    #[cfg(feature = "critical")]
    pub(super) newest_critical: Option<Seq>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct WritePage {
    pub(super) page: u32,
    pub(super) lap: u32,
    pub(super) base: Seq,
    /// Offset of the next record.
    pub(super) off: u32,
    /// No more records go here (torn bytes at its end, or a failed write).
    pub(super) closed: bool,
    /// An event was appended here since the page was opened or read back;
    /// until then the next one is marked as a jump.
    pub(super) has_event: bool,
}

impl<F: NorFlash> FlashQueue<F> {
    /// Open the queue in `region` (byte addresses, page aligned) of `flash`,
    /// reading its state back: any content is accepted, torn and garbage
    /// bytes are skipped. A blank region is an empty queue. Opening only
    /// reads; nothing is written until the first append or delete.
    #[bisync]
    pub async fn open(mut flash: F, region: Range<u32>) -> Result<Self, OpenError<F::Error>> {
        let geo = Geometry::check::<F>(&flash, region).map_err(OpenError::Geometry)?;
        let st = scan::scan(&mut flash, &geo).await?;
        Ok(FlashQueue {
            flash,
            geo,
            st,
            stale: false,
            #[cfg(feature = "encryption")]
            fresh: None,
        })
    }

    /// Count, bytes and the first and last sequence numbers stored.
    #[bisync]
    pub async fn summary(&mut self) -> Result<QueueSummary, Error<F::Error>> {
        self.refresh().await?;
        Ok(self.st.summary)
    }

    /// One past the highest sequence number this queue ever held, deleted
    /// ones included (0 for a new queue).
    #[bisync]
    pub async fn seq_floor(&mut self) -> Result<Seq, Error<F::Error>> {
        self.refresh().await?;
        Ok(self.floor())
    }

    pub(super) fn floor(&self) -> Seq {
        self.st.floor.max(self.st.live_from)
    }

    /// The flash, for counters or to power it down.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Give the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Read the state back from flash if an operation failed since the last.
    #[bisync]
    pub(super) async fn refresh(&mut self) -> Result<(), Error<F::Error>> {
        if self.stale {
            self.st = scan::scan(&mut self.flash, &self.geo).await?;
            self.stale = false;
        }
        Ok(())
    }

    /// Mark the state for a re-read and pass a flash error on.
    pub(super) fn failed<T>(&mut self, e: F::Error) -> Result<T, Error<F::Error>> {
        self.stale = true;
        Err(Error::Flash(e))
    }
}

impl Geometry {
    pub(super) fn check<F: NorFlash>(flash: &F, region: Range<u32>) -> Result<Self, GeometryError> {
        let (r, w, e) = (F::READ_SIZE, F::WRITE_SIZE, F::ERASE_SIZE);
        let word_ok = |n: usize| n.is_power_of_two() && n <= MAX_ALIGN && e % n == 0;
        if !word_ok(r) || !word_ok(w) {
            return Err(GeometryError::UnsupportedWordSize);
        }
        let page_size = u32::try_from(e).map_err(|_| GeometryError::Unaligned)?;
        let end_ok = usize::try_from(region.end).is_ok_and(|end| end <= flash.capacity());
        if page_size == 0
            || !region.start.is_multiple_of(page_size)
            || !region.end.is_multiple_of(page_size)
            || region.end < region.start
            || !end_ok
        {
            return Err(GeometryError::Unaligned);
        }
        let pages = (region.end - region.start) / page_size;
        if pages < 2 {
            return Err(GeometryError::TooFewPages);
        }
        let geo = Geometry {
            start: region.start,
            pages,
            page_size,
            header: format::page_header_len(w as u32),
            #[cfg(feature = "encryption")]
            seal: None,
        };
        if capacity::max_payload(&geo, w as u32) == 0 {
            return Err(GeometryError::PageTooSmall);
        }
        Ok(geo)
    }
}
