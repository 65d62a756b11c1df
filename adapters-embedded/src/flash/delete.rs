//! Deleting a prefix: one checkpoint record, then erasing freed pages.
//!
//! A delete never touches the records it deletes. It writes a checkpoint
//! (20 bytes on a flash with 4-byte words) saying "everything below N is
//! deleted"; opening takes the highest such N. Once the oldest event left
//! lies on a later page, the pages before it are erased. When the write page
//! has no room for the checkpoint, a new page is opened instead: its header
//! carries the same number.

use outbox_core::Seq;

use super::format::{self, Kind, RecordHeader, CHECKPOINT_PAYLOAD};
use super::walk::{Bounds, LiveWalk};
use super::{bisync, io, Error, FlashQueue, NorFlash};

impl<F: NorFlash> FlashQueue<F> {
    /// Delete every event numbered `through` or lower; durable when this
    /// returns `Ok`. Pages left holding only deleted records are erased.
    ///
    /// If erasing a freed page fails the delete has still taken effect
    /// (reads and a reopen agree); the error reports the flash failure.
    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[bisync]
    #[inline(never)]
    pub async fn delete_through(&mut self, through: Seq) -> Result<(), Error<F::Error>> {
        self.refresh().await?;
        let live_from = through.saturating_add(1);
        if live_from <= self.st.live_from {
            return Ok(());
        }

        // Where the oldest event left is, and what goes.
        let mut walk = LiveWalk::new(self.st.head);
        let mut summary = self.st.summary;
        let mut head = None;
        let bounds = self.bounds();
        loop {
            let r = match walk.next(&mut self.flash, &self.geo, bounds).await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return self.failed(e),
            };
            if r.seq < live_from {
                // (A discarded event left the counts when discarded.)
                #[cfg(feature = "critical")]
                if self.st.discards.contains(r.seq) {
                    continue;
                }
                summary.count = summary.count.saturating_sub(1);
                summary.bytes = summary.bytes.saturating_sub(u64::from(r.len));
                continue;
            }
            head = Some(walk.cursor_before(&r));
            summary.first = Some(r.seq);
            break;
        }
        if head.is_none() {
            summary = super::QueueSummary::default();
        }
        let head = head.unwrap_or_else(|| walk.cursor());

        match self.persist_live_from(live_from, summary.last).await {
            Err(Error::Full) => {
                // No free page and no room in the write page: erase the pages
                // this delete empties first. A power cut in between leaves a
                // shorter prefix deleted.
                self.st.head = head;
                self.st.summary = summary;
                self.st.scan = None;
                let done = match self.erase_dead_pages().await {
                    Ok(()) => self.persist_live_from(live_from, summary.last).await,
                    failed => failed,
                };
                match done {
                    // Still no room (a failed write closed the write page
                    // after a delete took the spare one, and no page is
                    // freed yet): the delete holds in memory, and the next
                    // page opened carries it. Refusing instead would stop
                    // the queue for good: appends wait for a freed page, and
                    // only deletes free one.
                    Ok(()) | Err(Error::Full) => {}
                    Err(e) => {
                        self.stale = true;
                        return Err(e);
                    }
                }
            }
            other => other?,
        }

        let st = &mut self.st;
        st.live_from = live_from;
        #[cfg(feature = "critical")]
        st.discards.prune(live_from);
        st.head = head;
        st.summary = summary;
        // A reader's position is judged with the old `live_from`.
        st.scan = None;
        self.erase_dead_pages().await
    }

    /// Make `live_from` durable: a checkpoint in the write page, or a new
    /// page whose header carries it.
    #[bisync]
    async fn persist_live_from(
        &mut self,
        live_from: Seq,
        last: Option<Seq>,
    ) -> Result<(), Error<F::Error>> {
        let w = F::WRITE_SIZE as u32;
        if let Some(wp) = self.st.write {
            if !wp.closed && wp.off + format::checkpoint_len(w) <= self.geo.page_size {
                let header = RecordHeader {
                    kind: Kind::Checkpoint,
                    len: CHECKPOINT_PAYLOAD as u16,
                    delta: 0,
                };
                let addr = self.geo.addr(wp.page, wp.off);
                if let Err(e) =
                    io::write_record(&mut self.flash, addr, &header, &live_from.to_le_bytes()).await
                {
                    return self.failed(e);
                }
                if let Some(wp) = self.st.write.as_mut() {
                    wp.off += format::checkpoint_len(w);
                }
                return Ok(());
            }
        }
        // Numbered from the next event: a page's base is what its first
        // event continues from, also for a walk that starts there.
        let base = last.map_or(live_from, |l| l.saturating_add(1));
        self.open_page(base, live_from, false).await
    }

    /// Whether a delete can be made durable at once: the write page has
    /// room for a checkpoint, or a page is free. When neither holds (a
    /// failed write closed the write page after a delete had taken the
    /// spare page), a delete takes effect in memory and becomes durable
    /// with the next page opened, once the pages it empties are erased: a
    /// power cut before that brings the deleted events back, to be sent
    /// again (duplicates, never a loss).
    pub fn checkpoint_room(&self) -> bool {
        self.st.write.is_some_and(|wp| {
            !wp.closed
                && wp.off + format::checkpoint_len(F::WRITE_SIZE as u32) <= self.geo.page_size
        }) || self.free_pages() > 0
    }

    /// Where the log ends now.
    // Not inlined (firmware flash, see firmware/size.sh).
    #[inline(never)]
    pub(super) fn bounds(&self) -> Bounds {
        Bounds {
            write_page: self.st.write.map(|w| w.page),
            write_end: self.st.write.map_or(0, |w| w.off),
        }
    }
}
