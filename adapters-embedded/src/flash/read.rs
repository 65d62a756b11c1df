//! Reading sizes and payloads, continuing from where the last read stopped.
//!
//! The machine reads a window of sizes ahead and then each batch from the
//! oldest event, so a read starts at the oldest event or at the saved
//! cursor of the previous read, whichever is not past the first number
//! asked for. Every record read is checked against its CRC.

use embedded_storage::nor_flash::NorFlash;
use outbox_core::{Seq, HOLE};

use super::walk::{Cursor, LiveWalk};
use super::{io, Error, FlashQueue};

impl<F: NorFlash> FlashQueue<F> {
    /// The sizes of the events `from, from + 1, ...`, at most `out.len()` of
    /// them, into `out`; returns how many. A number with no intact record
    /// between two that have one (a damaged record, a number spent on a
    /// failed append) is [`HOLE`]. Stops at the newest event.
    pub fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Error<F::Error>> {
        self.refresh()?;
        let mut n = 0;
        if out.is_empty() {
            return Ok(0);
        }
        let mut next = from;
        self.walk_from(from, |seq, len, _| {
            // The numbers before this one have no record: holes.
            while next < seq {
                if n == out.len() {
                    return Ok(Visit::Stop);
                }
                out[n] = HOLE;
                n += 1;
                next += 1;
            }
            if n == out.len() {
                return Ok(Visit::Stop);
            }
            out[n] = u32::from(len);
            n += 1;
            next = seq.saturating_add(1);
            Ok(if n < out.len() {
                Visit::Next
            } else {
                Visit::Last
            })
        })?;
        Ok(n)
    }

    /// Copy the payloads of `first..=last`, back to back and oldest first,
    /// into `buf`; returns the bytes written. Fails with
    /// [`Error::BufferTooSmall`] when they do not fit and [`Error::Missing`]
    /// when one is not stored (a hole, or a record found damaged now).
    pub fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, Error<F::Error>> {
        self.refresh()?;
        if first > last {
            return Ok(0);
        }
        let mut used = 0usize;
        let mut next = first;
        let available = buf.len();
        self.walk_from(first, |seq, len, payload_at| {
            if seq > last {
                return Ok(Visit::Stop);
            }
            if seq != next {
                return Err(Error::Missing { seq: next });
            }
            let len = usize::from(len);
            let Some(dst) = buf.get_mut(used..used + len) else {
                return Err(Error::BufferTooSmall {
                    needed: used + len,
                    available,
                });
            };
            payload_at(dst)?;
            used += len;
            next = seq.saturating_add(1);
            Ok(if seq < last { Visit::Next } else { Visit::Last })
        })?;
        if next <= last {
            return Err(Error::Missing { seq: next });
        }
        Ok(used)
    }

    /// Visit the events numbered `from` and up, in order, with a function
    /// that copies the payload; the visitor says whether it took the event
    /// and whether to go on. The position after the last event taken is
    /// kept for the next read.
    fn walk_from(
        &mut self,
        from: Seq,
        mut visit: impl FnMut(
            Seq,
            u16,
            &mut dyn FnMut(&mut [u8]) -> Result<(), Error<F::Error>>,
        ) -> Result<Visit, Error<F::Error>>,
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
            let r = match walk.next(&mut self.flash, &geo, bounds) {
                Ok(Some(r)) => r,
                Ok(None) => break Ok(()),
                Err(e) => break Err(Error::Flash(e)),
            };
            if r.seq < from || r.seq < self.st.live_from {
                continue;
            }
            let flash = &mut self.flash;
            let mut copy =
                |dst: &mut [u8]| io::read(flash, r.payload_addr(&geo), dst).map_err(Error::Flash);
            match visit(r.seq, r.len, &mut copy) {
                Ok(Visit::Next) => {}
                Ok(Visit::Last) => break Ok(()),
                Ok(Visit::Stop) => {
                    resume = Some(walk.cursor_before(&r));
                    break Ok(());
                }
                Err(e) => break Err(e),
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
