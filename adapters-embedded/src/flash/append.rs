//! Appending an event: one record at the end of the write page, or on a new
//! page when it does not fit.

use embedded_storage::nor_flash::NorFlash;
use outbox_core::Seq;

use super::format::{self, Kind, RecordHeader};
use super::walk::{Cursor, Pos};
use super::{capacity, io, Error, FlashQueue};

impl<F: NorFlash> FlashQueue<F> {
    /// Store `payload` as event `seq`; durable when this returns `Ok`.
    ///
    /// Numbers must grow, except that the newest may be appended again
    /// (after a failed append): the new copy then replaces the old one.
    /// Fails with [`Error::TooLarge`] for a payload over
    /// [`max_payload`](Self::max_payload), [`Error::OutOfOrder`] for a number
    /// below the newest or a deleted one, and [`Error::Full`] when no page
    /// is free.
    pub fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Error<F::Error>> {
        self.refresh()?;
        let w = F::WRITE_SIZE as u32;
        let max = capacity::max_payload(&self.geo, w);
        if payload.len() > max {
            return Err(Error::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let st = &self.st;
        let lowest = match st.summary.last {
            Some(last) => last,
            None => st.live_from,
        };
        if seq < lowest || seq < st.live_from {
            return Err(Error::OutOfOrder {
                seq,
                lowest: lowest.max(st.live_from),
            });
        }
        let len = payload.len() as u32;
        let need = format::record_len(len, w) + format::checkpoint_len(w);
        let fits = |wp: &super::WritePage| {
            !wp.closed
                && wp.off + need <= self.geo.page_size
                && seq >= wp.base
                && seq - wp.base <= u64::from(u32::MAX)
        };
        if !self.st.write.as_ref().is_some_and(fits) {
            let live_from = self.st.live_from;
            self.open_page(seq, live_from)?;
        }
        let Some(wp) = self.st.write else {
            return Err(Error::Full);
        };
        let header = RecordHeader {
            kind: Kind::Event,
            len: len as u16,
            delta: (seq - wp.base) as u32,
        };
        let at = Pos {
            page: wp.page,
            off: wp.off,
            base: wp.base,
        };
        if let Err(e) = io::write_record(
            &mut self.flash,
            self.geo.addr(wp.page, wp.off),
            &header,
            payload,
        ) {
            return self.failed(e);
        }

        let st = &mut self.st;
        if let Some(wp) = st.write.as_mut() {
            wp.off += format::record_len(len, w);
        }
        st.floor = st.floor.max(seq.saturating_add(1));
        let s = &mut st.summary;
        if s.count == 0 {
            st.head = Cursor {
                pos: at,
                last: st.head.last,
            };
            st.scan = None;
            s.first = Some(seq);
            s.count = 1;
        } else if s.last == Some(seq) {
            // The newest number again: this copy replaces the old one, and
            // a read that stopped after the old one must start over.
            s.bytes -= u64::from(st.last_len);
            if st.scan.is_some_and(|c| c.last >= Some(seq)) {
                st.scan = None;
            }
        } else {
            s.count += 1;
        }
        s.bytes += u64::from(len);
        s.last = Some(seq);
        st.last_len = len as u16;
        Ok(())
    }
}
