//! The pages as a ring: opening the next page, erasing pages nobody needs.
//!
//! The pages in use run from `chain_start` to the write page in ring order,
//! each header's lap one higher than the one before. New pages are taken
//! after the write page; pages are freed at `chain_start` once every record
//! in them is deleted. So every page is written and erased in turn and wear
//! spreads evenly. A page's header carries the numbers a checkpoint would
//! (`live_from`, `floor`), so opening a page is itself a checkpoint; it is
//! written twice (the header, then its copy as the first record: see
//! `format`), so that one damaged copy neither loses the page's records nor
//! lets the seq floor go back.

use outbox_core::Seq;

use super::format::{self, PageHeader, COPY};
use super::{bisync, io, Error, FlashQueue, NorFlash, WritePage};

impl<F: NorFlash> FlashQueue<F> {
    /// Start a new write page whose records are numbered from `base`,
    /// recording `live_from` in its header. Fails with `Full` when no page
    /// is free, or, for an append (`keep_spare`) to a queue that holds
    /// events, when it would take the last free page: that one is kept so a
    /// delete can always be written. An empty queue needs no delete (and
    /// the new page's header carries `live_from` and the floor), so its
    /// append may take the last page: otherwise a 2-page region stopped
    /// storing for good once its write page filled with an empty queue.
    #[bisync]
    pub(super) async fn open_page(
        &mut self,
        base: Seq,
        live_from: Seq,
        keep_spare: bool,
    ) -> Result<(), Error<F::Error>> {
        let geo = self.geo;
        let needed = if keep_spare && self.st.summary.count > 0 {
            2
        } else {
            1
        };
        if self.free_pages() < needed {
            self.erase_dead_pages().await?;
            if self.free_pages() < needed {
                return Err(Error::Full);
            }
        }
        let next = match self.st.write {
            None => self.st.chain_start,
            Some(w) => geo.next(w.page),
        };
        if self.take_suspect(next) {
            self.erase(next).await?;
        } else if self.st.unverified_free > 0 {
            let blank = match io::is_blank(&mut self.flash, geo.addr(next, 0), geo.page_size).await
            {
                Ok(b) => b,
                Err(e) => return self.failed(e),
            };
            if !blank {
                self.erase(next).await?;
            }
        }
        self.st.unverified_free = self.st.unverified_free.saturating_sub(1);
        let lap = self.st.write.map_or(0, |w| w.lap.wrapping_add(1));
        let header = PageHeader {
            lap,
            base,
            floor: self.floor(),
            live_from,
            version: format::FORMAT_VERSION,
            whole: true,
        };
        #[cfg(feature = "encryption")]
        let mut header = header;
        #[cfg(feature = "encryption")]
        let sealed = self.sealed_copy(&mut header);
        // The header, then its copy as the page's first record (format 2):
        // one damaged copy costs nothing.
        let raw = header.encode();
        let written = match io::write_padded(&mut self.flash, geo.addr(next, 0), &raw).await {
            #[cfg(feature = "encryption")]
            Ok(()) if sealed.is_some() => {
                let (copy, payload) = sealed.unwrap_or((COPY, [0; format::SEALED_COPY_PAYLOAD]));
                let at = geo.addr(next, geo.header);
                io::write_record(&mut self.flash, at, &copy, &payload).await
            }
            Ok(()) => {
                io::write_record(&mut self.flash, geo.addr(next, geo.header), &COPY, &raw).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            return self.failed(e);
        }
        #[cfg(not(feature = "encryption"))]
        let first = geo.header + format::copy_len(F::WRITE_SIZE as u32);
        #[cfg(feature = "encryption")]
        let first = self.geo.first(F::WRITE_SIZE as u32);
        if self.st.write.is_none() {
            self.st.chain_start = next;
            self.st.head.pos = super::walk::Pos {
                page: next,
                off: first,
                base,
                #[cfg(feature = "encryption")]
                lap,
            };
        }
        self.st.write = Some(WritePage {
            page: next,
            lap,
            base,
            off: first,
            closed: false,
            has_event: false,
        });
        Ok(())
    }

    /// A sealed queue's page: its header becomes format 3 and its copy
    /// carries the salt (a new one when the queue is formatted: no page in
    /// use) and the key check value; `None` for an unsealed queue.
    #[cfg(feature = "encryption")]
    fn sealed_copy(
        &mut self,
        header: &mut PageHeader,
    ) -> Option<(format::RecordHeader, [u8; format::SEALED_COPY_PAYLOAD])> {
        if self.st.write.is_none() {
            if let Some(keys) = self.new_salt() {
                self.geo.seal = Some(keys);
            }
        }
        let keys = self.geo.seal?;
        header.version = format::SEALED_VERSION;
        let mut payload = [0u8; format::SEALED_COPY_PAYLOAD];
        let (head, rest) = payload.split_at_mut(format::PAGE_HEADER_RAW);
        head.copy_from_slice(&header.encode());
        rest[..super::seal::SALT_LEN].copy_from_slice(&keys.salt);
        rest[super::seal::SALT_LEN..].copy_from_slice(&keys.check());
        Some((format::COPY_SEALED, payload))
    }

    /// Pages not in use.
    pub(super) fn free_pages(&self) -> u32 {
        let pages = self.geo.pages;
        match self.st.write {
            None => pages,
            Some(w) => pages - ((w.page + pages - self.st.chain_start) % pages + 1),
        }
    }

    /// Erase the pages before the oldest event's page (never the write page).
    #[bisync]
    pub(super) async fn erase_dead_pages(&mut self) -> Result<(), Error<F::Error>> {
        let Some(w) = self.st.write else {
            return Ok(());
        };
        let keep = if self.st.summary.count == 0 {
            w.page
        } else {
            self.st.head.pos.page
        };
        while self.st.chain_start != keep && self.st.chain_start != w.page {
            // The free page just before the chain goes first, in case its
            // erase was cut: later pages freed behind it must not hide it.
            let before = self.geo.prev(self.st.chain_start);
            if before != w.page && self.take_suspect(before) {
                self.erase(before).await?;
            }
            self.erase(self.st.chain_start).await?;
            self.st.chain_start = self.geo.next(self.st.chain_start);
        }
        Ok(())
    }

    /// Whether `page` is suspect (and no longer, once this returns true).
    fn take_suspect(&mut self, page: u32) -> bool {
        let mut found = false;
        for s in self.st.suspect.iter_mut() {
            if *s == Some(page) {
                *s = None;
                found = true;
            }
        }
        found
    }

    #[bisync]
    async fn erase(&mut self, page: u32) -> Result<(), Error<F::Error>> {
        let from = self.geo.addr(page, 0);
        match self.flash.erase(from, from + self.geo.page_size).await {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e),
        }
    }
}
