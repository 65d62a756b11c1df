//! How much the queue holds, so the machine's limits can follow from it.
//!
//! A record takes its payload plus at most `15 + WRITE_SIZE` bytes (header,
//! CRC, padding). A page closes when the next record does not fit, wasting
//! less than one largest record; each page keeps room for one checkpoint.
//! The pages in use are the oldest event's page, full pages, and the write
//! page; one page must stay free for the next page to open, and one more is
//! kept for a delete when the write page has no room left. Between the
//! oldest event and the newest there is at most one checkpoint per event
//! (each delete removes at least one older event). From these:
//!
//! ```text
//! per page  = page - header - header copy - largest record - checkpoint
//! bytes    <= (pages - 4) * per page - events * (15 + WRITE_SIZE + checkpoint)
//! ```
//!
//! A machine whose `max_queue_bytes` and `max_queue_events` stay within this
//! never makes an append fail with `Full`: its overflow policy acts first.
//! (Each append cut by a power loss or a flash error may waste the rest of
//! a page until that page is freed.)

use super::format;
use super::{FlashQueue, Geometry, NorFlash};

/// The largest payload one record holds.
pub(crate) fn max_payload(geo: &Geometry, w: u32) -> usize {
    let room = geo
        .page_size
        .saturating_sub(geo.first(w))
        .saturating_sub(format::checkpoint_len(w));
    // The largest len with record_len(len) <= room.
    let room = room / w * w;
    let len = (room.saturating_sub(4) / 4 * 4).saturating_sub(format::RECORD_HEADER as u32);
    let len = if len > 0 && format::record_len(len, w) > room {
        0
    } else {
        len
    };
    // (A sealed record's tag counts against its room.)
    (len as usize)
        .min(usize::from(u16::MAX))
        .saturating_sub(geo.tag_len() as usize)
}

impl<F: NorFlash> FlashQueue<F> {
    /// The largest payload one event may have; set the machine's
    /// `max_event_bytes` to this or less.
    ///
    /// With feature `expiry` it is 8 bytes less than without (a record's
    /// stamp takes them), for every append, stamped or not.
    pub fn max_payload(&self) -> usize {
        #[cfg(feature = "expiry")]
        return max_payload(&self.geo, F::WRITE_SIZE as u32).saturating_sub(format::STAMP_LEN);
        #[cfg(not(feature = "expiry"))]
        max_payload(&self.geo, F::WRITE_SIZE as u32)
    }

    /// Pages in the region.
    pub fn pages(&self) -> u32 {
        self.geo.pages
    }

    /// The largest `max_queue_bytes` for a machine whose events are at most
    /// `max_event_bytes` and whose queue holds at most `max_queue_events`,
    /// such that appends never run out of flash (0 when the region is too
    /// small for those limits).
    ///
    /// ```
    /// # #[cfg(feature = "_test")] {
    /// use outbox_embedded::flash::{sim::SimFlash, FlashQueue};
    ///
    /// let mut flash = SimFlash::<4, 4, 4096>::new(64);
    /// let q = FlashQueue::open(&mut flash, 0..64 * 4096).unwrap();
    /// let bytes = q.max_queue_bytes(512, 1000);
    /// assert!(bytes > 150_000 && bytes < 64 * 4096);
    /// # }
    /// ```
    pub fn max_queue_bytes(&self, max_event_bytes: u32, max_queue_events: u32) -> u64 {
        let w = F::WRITE_SIZE as u32;
        if max_event_bytes as usize > self.max_payload() {
            return 0;
        }
        let ckpt = u64::from(format::checkpoint_len(w));
        // (With feature `expiry`, a stamp counts as a tag does.)
        #[cfg(feature = "expiry")]
        let tag = self.geo.tag_len() + format::STAMP_LEN as u32;
        #[cfg(not(feature = "expiry"))]
        let tag = self.geo.tag_len();
        let largest = u64::from(format::record_len(max_event_bytes + tag, w));
        let per_page =
            u64::from(self.geo.page_size - self.geo.first(w)).saturating_sub(largest + ckpt);
        let pages = u64::from(self.geo.pages.saturating_sub(4));
        let overhead = 15 + u64::from(w) + ckpt + u64::from(tag);
        (pages * per_page).saturating_sub(u64::from(max_queue_events) * overhead)
    }
}
