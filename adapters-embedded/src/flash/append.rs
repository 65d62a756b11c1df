//! Appending an event: one record at the end of the write page, or on a new
//! page when it does not fit.

use outbox_core::Seq;

use super::format::{self, Kind, RecordHeader};
use super::walk::{Cursor, Pos};
use super::{bisync, capacity, io, Error, FlashQueue, NorFlash};

impl<F: NorFlash> FlashQueue<F> {
    /// Store `payload` as event `seq`; durable when this returns `Ok`.
    ///
    /// Numbers grow: any number above the newest (numbers skipped are
    /// holes, as the machine leaves after a failed append); the newest may
    /// be appended again, and the new copy then replaces the old one; an
    /// empty queue starts at any number above the deleted ones. Fails with
    /// [`Error::TooLarge`] for a payload over
    /// [`max_payload`](Self::max_payload), [`Error::OutOfOrder`] for a lower
    /// number, and [`Error::Full`] when no page is free.
    // Not inlined: one copy serves every caller (firmware flash, see
    // firmware/size.sh).
    #[bisync]
    #[inline(never)]
    pub async fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Error<F::Error>> {
        self.append_event(
            seq,
            payload,
            #[cfg(feature = "expiry")]
            None,
            #[cfg(feature = "critical")]
            false,
        )
        .await
    }

    /// Store `payload` as event `seq` with the wall-clock stamp `stamp_ms`
    /// (ms since the Unix epoch; feature `expiry`), kept in its record
    /// before the payload and read back by
    /// [`first_fresh`](outbox_core::Store::first_fresh); otherwise as
    /// [`append`](Self::append). A stamped record takes 8 bytes more: with
    /// the feature every payload is at most
    /// [`max_payload`](Self::max_payload), 8 bytes less than without.
    ///
    /// ```
    /// # #[cfg(feature = "_test")] {
    /// use outbox_embedded::flash::{sim::SimFlash, FlashQueue};
    /// use outbox_core::Store;
    ///
    /// let mut flash = SimFlash::<4, 4, 4096>::new(8);
    /// let mut q = FlashQueue::open(&mut flash, 0..8 * 4096).unwrap();
    /// q.append_stamped(0, b"old", 1_000).unwrap();
    /// q.append_stamped(1, b"new", 9_000).unwrap();
    /// // Events stamped before 5 000 ms are expired: the first fresh is 1.
    /// assert_eq!(Store::first_fresh(&mut q, 5_000), Ok(Some(1)));
    /// let mut buf = [0u8; 8];
    /// assert_eq!(q.read_range(0, 0, &mut buf), Ok(3)); // the stamp is not payload
    /// assert_eq!(&buf[..3], b"old");
    /// # }
    /// ```
    #[cfg(feature = "expiry")]
    #[bisync]
    pub async fn append_stamped(
        &mut self,
        seq: Seq,
        payload: &[u8],
        stamp_ms: u64,
    ) -> Result<(), Error<F::Error>> {
        self.append_event(
            seq,
            payload,
            Some(stamp_ms),
            #[cfg(feature = "critical")]
            false,
        )
        .await
    }

    /// [`append`](Self::append), stamped when `stamp` is some (feature
    /// `expiry`), flagged critical when `critical` (feature `critical`).
    /// Inlined into `append`, so a build without the features compiles to
    /// the code it was.
    #[bisync]
    #[inline(always)]
    pub(super) async fn append_event(
        &mut self,
        seq: Seq,
        payload: &[u8],
        #[cfg(feature = "expiry")] stamp: Option<u64>,
        #[cfg(feature = "critical")] critical: bool,
    ) -> Result<(), Error<F::Error>> {
        self.refresh().await?;
        let w = F::WRITE_SIZE as u32;
        let max = capacity::max_payload(&self.geo, w);
        // A stamp takes 8 bytes of the record's room. The limit is the
        // same with or without one, the `max_payload` the machine is
        // given, so that an event stored unstamped (before the driver had
        // a wall clock) is no larger than one stamped.
        #[cfg(feature = "expiry")]
        let (max, extra) = (
            max.saturating_sub(format::STAMP_LEN),
            if stamp.is_some() {
                format::STAMP_LEN as u32
            } else {
                0
            },
        );
        #[cfg(not(feature = "expiry"))]
        let extra = 0;
        if payload.len() > max {
            return Err(Error::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let st = &self.st;
        // Numbers grow (the newest may be written again); an empty queue
        // may start anywhere above what was deleted.
        let (lowest, highest) = match st.summary.last {
            Some(last) => (last, Seq::MAX),
            None => (st.live_from, Seq::MAX),
        };
        if seq < lowest || seq > highest {
            return Err(Error::OutOfOrder {
                seq,
                lowest,
                highest,
            });
        }
        let len = payload.len() as u32;
        // On a sealed queue the record holds the tag after the payload.
        let stored = len + self.geo.tag_len() + extra;
        let need = format::record_len(stored, w) + format::checkpoint_len(w);
        let fits = |wp: &super::WritePage| {
            !wp.closed
                && wp.off + need <= self.geo.page_size
                && seq >= wp.base
                && seq - wp.base <= u64::from(u32::MAX)
        };
        if !self.st.write.as_ref().is_some_and(fits) {
            let live_from = self.st.live_from;
            self.open_page(seq, live_from, true).await?;
        }
        let Some(wp) = self.st.write else {
            return Err(Error::Full);
        };
        // The first event of each page is marked too, so that records lost
        // from an older page (a power cut while erasing it) never end the run.
        let jump = self.st.tail_last.is_none_or(|l| seq != l.wrapping_add(1)) || !wp.has_event;
        let header = RecordHeader {
            kind: Kind::Event {
                jump,
                #[cfg(feature = "expiry")]
                stamped: stamp.is_some(),
                #[cfg(feature = "critical")]
                critical,
            },
            len: stored as u16,
            delta: (seq - wp.base) as u32,
        };
        let at = Pos {
            page: wp.page,
            off: wp.off,
            base: wp.base,
            #[cfg(feature = "encryption")]
            lap: wp.lap,
        };
        let addr = self.geo.addr(wp.page, wp.off);
        #[cfg(feature = "encryption")]
        let written = match self.geo.seal {
            Some(keys) => {
                let sealer = super::seal::Sealer::new(&keys, seq, wp.off, wp.lap);
                #[cfg(feature = "expiry")]
                let stamp_bytes = stamp.map(u64::to_le_bytes);
                #[cfg(feature = "expiry")]
                let prefix: &[u8] = stamp_bytes.as_ref().map_or(&[], |b| &b[..]);
                #[cfg(not(feature = "expiry"))]
                let prefix: &[u8] = &[];
                super::sealed::write_record(&mut self.flash, addr, &header, prefix, payload, sealer)
                    .await
            }
            #[cfg(feature = "expiry")]
            None => io::write_stamped(&mut self.flash, addr, &header, stamp, payload).await,
            #[cfg(not(feature = "expiry"))]
            None => io::write_record(&mut self.flash, addr, &header, payload).await,
        };
        #[cfg(all(not(feature = "encryption"), feature = "expiry"))]
        let written = io::write_stamped(&mut self.flash, addr, &header, stamp, payload).await;
        #[cfg(all(not(feature = "encryption"), not(feature = "expiry")))]
        let written = io::write_record(&mut self.flash, addr, &header, payload).await;
        if let Err(e) = written {
            return self.failed(e);
        }

        let st = &mut self.st;
        if let Some(wp) = st.write.as_mut() {
            wp.off += format::record_len(stored, w);
            wp.has_event = true;
        }
        st.floor = st.floor.max(seq.saturating_add(1));
        st.tail_last = Some(seq);
        #[cfg(feature = "critical")]
        if critical {
            st.newest_critical = Some(seq);
        } else if st.newest_critical == Some(seq) {
            // Appended again, plain: an older critical one may still be
            // pending, which only open's walk would find (a flush request
            // less, never a wrong flag on a size).
            st.newest_critical = None;
        }
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
            s.bytes = s.bytes.saturating_sub(u64::from(st.last_len));
            if st.scan.is_some_and(|c| c.last >= Some(seq)) {
                st.scan = None;
            }
        } else {
            s.count = s.count.saturating_add(1);
        }
        s.bytes = s.bytes.saturating_add(u64::from(len));
        s.last = Some(seq);
        st.last_len = len as u16;
        Ok(())
    }
}
