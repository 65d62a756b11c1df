//! Reading sizes and payloads, continuing from where the last read stopped.
//!
//! The machine reads a window of sizes ahead and then each batch from the
//! oldest event, so a read starts at the oldest event or at the saved
//! cursor of the previous read, whichever is not past the first number
//! asked for. Every record read is checked against its CRC.

use outbox_core::{Seq, HOLE};

use super::walk::{Cursor, LiveWalk};
use super::{bisync, io, Error, FlashQueue, NorFlash};

impl<F: NorFlash> FlashQueue<F> {
    /// The sizes of the events `from, from + 1, ...`, at most `out.len()` of
    /// them, into `out`; returns how many. A number with no intact record
    /// between two that have one (a damaged record, a number spent on a
    /// failed append) is [`HOLE`]. Stops at the newest event.
    ///
    /// With feature `critical`, a critical event's size carries
    /// [`CRITICAL`](outbox_core::CRITICAL), and a discarded number reads
    /// as [`DISCARDED`](outbox_core::DISCARDED) (the newest event is the
    /// newest not discarded).
    #[bisync]
    pub async fn read_sizes(
        &mut self,
        from: Seq,
        out: &mut [u32],
    ) -> Result<usize, Error<F::Error>> {
        self.refresh().await?;
        let mut n = 0;
        if out.is_empty() {
            return Ok(0);
        }
        let mut next = from;
        // Whether an event not discarded follows what `out` took.
        #[cfg(feature = "critical")]
        let mut more = false;
        self.walk_from(from, &mut [], |seq, size| {
            // The numbers before this one have no record: holes.
            while next < seq {
                if n == out.len() {
                    #[cfg(not(feature = "critical"))]
                    return Ok((Visit::Stop, None));
                    #[cfg(feature = "critical")]
                    break;
                }
                out[n] = HOLE;
                n += 1;
                next += 1;
            }
            // `out` is full: with feature `critical` the walk goes on past
            // discarded events only, to learn whether the sizes end with
            // them.
            #[cfg(feature = "critical")]
            if n == out.len() {
                more = size != outbox_core::DISCARDED;
                let visit = if more { Visit::Stop } else { Visit::Next };
                return Ok((visit, None));
            }
            #[cfg(not(feature = "critical"))]
            if n == out.len() {
                return Ok((Visit::Stop, None));
            }
            out[n] = size;
            n += 1;
            next = seq.saturating_add(1);
            #[cfg(not(feature = "critical"))]
            let visit = if n < out.len() {
                Visit::Next
            } else {
                Visit::Last
            };
            #[cfg(feature = "critical")]
            let visit = Visit::Next;
            Ok((visit, None))
        })
        .await?;
        #[cfg(feature = "critical")]
        {
            for (i, size) in out[..n].iter_mut().enumerate() {
                if *size == HOLE && self.st.discards.contains(from + i as Seq) {
                    *size = outbox_core::DISCARDED;
                }
            }
            // The sizes stop at the newest event not discarded.
            while !more
                && n > 0
                && outbox_core::strip_critical(out[n - 1]) >= outbox_core::DISCARDED
            {
                n -= 1;
            }
        }
        Ok(n)
    }

    /// Copy the payloads of `first..=last`, back to back and oldest first,
    /// into `buf`; returns the bytes written. Fails with
    /// [`Error::BufferTooSmall`] when they do not fit and [`Error::Missing`]
    /// when one is not stored (a hole, or a record found damaged now).
    #[bisync]
    pub async fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, Error<F::Error>> {
        self.refresh().await?;
        if first > last {
            return Ok(0);
        }
        let mut used = 0usize;
        let mut next = first;
        let available = buf.len();
        self.walk_from(first, buf, |seq, size| {
            if seq > last {
                return Ok((Visit::Stop, None));
            }
            // (A discarded event is never read: missing.)
            if seq != next || size >= outbox_core::DISCARDED {
                return Err(Error::Missing { seq: next });
            }
            let len = size & 0xFFFF;
            // Its payload goes next in `buf`, if it fits.
            let at = used;
            used += len as usize;
            if used > available {
                return Err(Error::BufferTooSmall {
                    needed: used,
                    available,
                });
            }
            next = seq.saturating_add(1);
            let visit = if seq < last { Visit::Next } else { Visit::Last };
            Ok((visit, Some(at)))
        })
        .await?;
        if next <= last {
            return Err(Error::Missing { seq: next });
        }
        Ok(used)
    }

    /// The oldest event stamped at or after `after_ms` (wall-clock ms since
    /// the Unix epoch; feature `expiry`), or not stamped at all (appended
    /// with [`append`](Self::append), or by a build without the feature):
    /// the events before it are expired. When every event is older, one
    /// past the newest number. One walk from the oldest event, reading 8
    /// bytes of each record passed; the read cursor is left as it was.
    #[cfg(feature = "expiry")]
    #[bisync]
    pub async fn first_fresh(&mut self, after_ms: u64) -> Result<Seq, Error<F::Error>> {
        self.refresh().await?;
        let end = self.floor();
        if self.st.summary.count == 0 {
            return Ok(end);
        }
        let mut walk = LiveWalk::new(self.st.head);
        let bounds = self.bounds();
        let geo = self.geo;
        loop {
            let r = match walk.next(&mut self.flash, &geo, bounds).await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(end),
                Err(e) => return self.failed(e),
            };
            if r.seq < self.st.live_from {
                continue;
            }
            // A discarded event is no event (critical ones never expire:
            // the machine knows their flag and keeps them).
            #[cfg(feature = "critical")]
            if self.st.discards.contains(r.seq) {
                continue;
            }
            if !r.stamped {
                return Ok(r.seq);
            }
            let mut stamp = [0u8; super::format::STAMP_LEN];
            let at = geo.addr(r.at.page, r.at.off) + super::format::RECORD_HEADER as u32;
            if let Err(e) = io::read(&mut self.flash, at, &mut stamp).await {
                return self.failed(e);
            }
            if u64::from_le_bytes(stamp) >= after_ms {
                return Ok(r.seq);
            }
        }
    }

    /// Visit the events numbered `from` and up, in order, with their size as
    /// the sizes give it (with feature `critical`, flagged
    /// [`CRITICAL`](outbox_core::CRITICAL), or
    /// [`DISCARDED`](outbox_core::DISCARDED)); the visitor says
    /// whether it took the event and whether to go on, and where in `buf`
    /// its payload goes, if anywhere (the copy is done here, so that the
    /// visitor does no I/O and the same code serves the async queue). The
    /// position after the last event taken is kept for the next read.
    #[bisync]
    async fn walk_from(
        &mut self,
        from: Seq,
        buf: &mut [u8],
        mut visit: impl FnMut(Seq, u32) -> Result<(Visit, Option<usize>), Error<F::Error>>,
    ) -> Result<(), Error<F::Error>> {
        if self.st.summary.count == 0 {
            return Ok(());
        }
        let start = match self.st.scan {
            Some(c) if c.last.is_some_and(|l| l < from) => c,
            _ => self.st.head,
        };
        let mut walk = LiveWalk::new(start);
        let bounds = self.bounds();
        let geo = self.geo;
        let mut resume: Option<Cursor> = None;
        let result = loop {
            let r = match walk.next(&mut self.flash, &geo, bounds).await {
                Ok(Some(r)) => r,
                Ok(None) => break Ok(()),
                Err(e) => break Err(Error::Flash(e)),
            };
            if r.seq < from || r.seq < self.st.live_from {
                continue;
            }
            #[cfg(feature = "critical")]
            let size = if self.st.discards.contains(r.seq) {
                outbox_core::DISCARDED
            } else if r.critical {
                u32::from(r.len) | outbox_core::CRITICAL
            } else {
                u32::from(r.len)
            };
            #[cfg(not(feature = "critical"))]
            let size = u32::from(r.len);
            let (taken, copy_to) = match visit(r.seq, size) {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            // (The visitor checked that the payload fits.)
            if let Some(dst) = copy_to.and_then(|at| buf.get_mut(at..at + usize::from(r.len))) {
                if let Err(e) = io::read(&mut self.flash, r.payload_addr(&geo), dst).await {
                    break Err(Error::Flash(e));
                }
                // A sealed payload, its tag checked by the walk.
                #[cfg(feature = "encryption")]
                if let Some(keys) = geo.seal {
                    super::seal::Sealer::new(&keys, r.seq, r.at.off, r.at.lap).open(dst);
                }
            }
            match taken {
                Visit::Next => {}
                Visit::Last => break Ok(()),
                Visit::Stop => {
                    resume = Some(walk.cursor_before(&r));
                    break Ok(());
                }
            }
        };
        match result {
            Ok(()) => {
                self.st.scan = Some(resume.unwrap_or_else(|| walk.cursor()));
                Ok(())
            }
            Err(Error::Flash(e)) => self.failed(e),
            Err(e) => Err(e),
        }
    }
}

/// What a visitor of [`FlashQueue::walk_from`] did with an event.
enum Visit {
    /// Took it; go on.
    Next,
    /// Took it; stop.
    Last,
    /// Did not take it; stop.
    Stop,
}
