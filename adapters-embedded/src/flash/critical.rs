//! Critical events on the flash queue (feature `critical`): the flag a
//! record carries, and the discard of one event from the middle of the
//! queue.
//!
//! Why it looks like this: the machine drops an overflow victim from the
//! middle of the queue while a critical event is at its head
//! ([`Store::discard`](outbox_core::Store::discard)), but the flash is
//! append-only and a record is never rewritten. So a discard appends a
//! *discard mark* (a record of kind 10 whose payload is the victim's
//! number, see `format`) at the write position, and the queue keeps the
//! numbers discarded in a small table in RAM ([`Discards`]), rebuilt by
//! open's first walk (the one that finds the newest checkpoint), until a
//! delete passes them. The victim's record stays where it is: the sizes
//! give [`DISCARDED`](outbox_core::DISCARDED) for it, the payload reads
//! never return it, and the summary does not count it.
//!
//! - The mark is written twice, back to back: bit rot in one copy (its CRC
//!   fails) leaves the other, so a discarded event comes back only when
//!   both rot (then it is read as an event again, and sent: the residue,
//!   which the `Ledger` of `sim::damage` knows).
//! - A power cut during the first mark's write leaves the victim as it
//!   was (a torn mark fails its CRC): the machine reported it dropped
//!   before asking for the discard, so after the restart it is an event
//!   reported dropped that is read back and sent, as with any store a
//!   crash takes before its discard (the judge restarts with what the
//!   store holds). Once the first mark is whole the discard holds.
//! - The table holds [`RUNS`] runs of consecutive numbers (victims behind
//!   a critical head are mostly consecutive: the oldest plain events behind
//!   it). A discard that needs a run more when all are taken fails with
//!   [`Error::TooManyDiscards`](super::Error::TooManyDiscards) before it
//!   writes anything: the machine's path for a failed discard (it halts
//!   uploads for storage, `DeleteFailed`, until `Resume`). Runs leave once
//!   a delete passes them. Open rebuilds the same table from the marks in
//!   the order they were written, so it never needs more runs than the
//!   queue had.
//! - `newest_critical` answers from what open's count already walked: a
//!   few words of RAM, no walk of its own.

use outbox_core::Seq;

use super::format::{self, Kind, RecordHeader, CHECKPOINT_PAYLOAD};
use super::walk::LiveWalk;
use super::{bisync, io, Error, FlashQueue, NorFlash};

/// Runs of discarded numbers the queue keeps in RAM (16 bytes each).
pub const RUNS: usize = 8;

/// The numbers discarded and not yet deleted: at most [`RUNS`] runs of
/// consecutive numbers, sorted, none touching another.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Discards {
    runs: [(Seq, Seq); RUNS],
    len: usize,
}

impl Discards {
    /// Whether `seq` is discarded.
    pub(crate) fn contains(&self, seq: Seq) -> bool {
        self.runs[..self.len]
            .iter()
            .any(|&(a, b)| a <= seq && seq <= b)
    }

    /// Add `seq`; `false` (nothing changed) when that needs a run more
    /// and all are taken.
    pub(crate) fn insert(&mut self, seq: Seq) -> bool {
        if self.contains(seq) {
            return true;
        }
        let runs = &mut self.runs[..self.len];
        // The run ending just before it, and the one starting just after.
        let before = runs.iter().position(|r| r.1.checked_add(1) == Some(seq));
        let after = runs.iter().position(|r| seq.checked_add(1) == Some(r.0));
        match (before, after) {
            (Some(i), Some(j)) => {
                runs[i].1 = runs[j].1;
                self.remove(j);
            }
            (Some(i), None) => runs[i].1 = seq,
            (None, Some(j)) => runs[j].0 = seq,
            (None, None) => {
                if self.len == RUNS {
                    return false;
                }
                self.runs[self.len] = (seq, seq);
                self.len += 1;
            }
        }
        true
    }

    /// Whether `seq` can be added.
    pub(crate) fn has_room_for(&self, seq: Seq) -> bool {
        let mut probe = *self;
        probe.insert(seq)
    }

    /// Forget every number below `live_from` (deleted).
    pub(crate) fn prune(&mut self, live_from: Seq) {
        let mut i = 0;
        while i < self.len {
            let r = &mut self.runs[i];
            if r.1 < live_from {
                self.remove(i);
                continue;
            }
            r.0 = r.0.max(live_from);
            i += 1;
        }
    }

    fn remove(&mut self, i: usize) {
        self.runs.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }
}

impl<F: NorFlash> FlashQueue<F> {
    /// Store `payload` as the *critical* event `seq` (feature `critical`):
    /// as [`append`](Self::append), its record flagged, so that its size
    /// reads back with [`CRITICAL`](outbox_core::CRITICAL) and
    /// [`newest_critical`](outbox_core::Store::newest_critical) finds it
    /// after a restart.
    ///
    /// ```
    /// # #[cfg(feature = "_test")] {
    /// use outbox_embedded::flash::{sim::SimFlash, FlashQueue};
    /// use outbox_core::{Store, CRITICAL, DISCARDED};
    ///
    /// let mut flash = SimFlash::<4, 4, 4096>::new(8);
    /// let mut q = FlashQueue::open(&mut flash, 0..8 * 4096).unwrap();
    /// q.append_critical(0, b"alarm").unwrap();
    /// q.append(1, b"tick").unwrap();
    /// q.append(2, b"tock").unwrap();
    /// q.discard(1).unwrap(); // an overflow victim behind the alarm
    /// drop(q);
    /// let mut q = FlashQueue::open(&mut flash, 0..8 * 4096).unwrap();
    /// let mut sizes = [0u32; 3];
    /// assert_eq!(q.read_sizes(0, &mut sizes), Ok(3));
    /// assert_eq!(sizes, [5 | CRITICAL, DISCARDED, 4]);
    /// assert_eq!(Store::newest_critical(&mut q), Ok(Some(0)));
    /// # }
    /// ```
    #[bisync]
    pub async fn append_critical(
        &mut self,
        seq: Seq,
        payload: &[u8],
    ) -> Result<(), Error<F::Error>> {
        self.append_event(
            seq,
            payload,
            #[cfg(feature = "expiry")]
            None,
            true,
        )
        .await
    }

    /// Take event `seq` out of the queue (feature `critical`; the
    /// machine's overflow victim behind a critical head, reported dropped
    /// before): durable when this returns `Ok`. From then on its size reads
    /// as [`DISCARDED`](outbox_core::DISCARDED), no payload read returns
    /// it, and the summary does not count it, across reopens, until a
    /// delete passes it. A number below the last delete is already gone
    /// (`Ok`). Fails with [`Error::TooManyDiscards`] when the table of
    /// discarded numbers is full (see the module docs: nothing written),
    /// and [`Error::Full`] when no page has room for the mark.
    #[bisync]
    pub async fn discard(&mut self, seq: Seq) -> Result<(), Error<F::Error>> {
        self.refresh().await?;
        if seq < self.st.live_from || self.st.discards.contains(seq) {
            return Ok(());
        }
        if !self.st.discards.has_room_for(seq) {
            return Err(Error::TooManyDiscards);
        }
        // Its record, to take it out of the summary (a victim lies near the
        // head: the oldest plain event behind a critical one).
        let mut walk = LiveWalk::new(self.st.head);
        let bounds = self.bounds();
        let found = loop {
            match walk.next(&mut self.flash, &self.geo, bounds).await {
                Ok(Some(r)) if r.seq < seq || self.st.discards.contains(r.seq) => {}
                Ok(Some(r)) => break (r.seq == seq).then_some(r.len),
                Ok(None) => break None,
                Err(e) => return self.failed(e),
            }
        };
        // Two marks and the checkpoint a delete may need after them.
        let w = F::WRITE_SIZE as u32;
        let mark = format::checkpoint_len(w);
        let room = |wp: &super::WritePage| !wp.closed && wp.off + 3 * mark <= self.geo.page_size;
        if !self.st.write.as_ref().is_some_and(room) {
            let (live_from, last) = (self.st.live_from, self.st.summary.last);
            let base = last.map_or(live_from, |l| l.saturating_add(1));
            self.open_page(base, live_from, false).await?;
        }
        let Some(wp) = self.st.write else {
            return Err(Error::Full);
        };
        let header = RecordHeader {
            kind: Kind::Discard,
            len: CHECKPOINT_PAYLOAD as u16,
            delta: 0,
        };
        for i in 0..2 {
            let addr = self.geo.addr(wp.page, wp.off + i * mark);
            if let Err(e) =
                io::write_record(&mut self.flash, addr, &header, &seq.to_le_bytes()).await
            {
                return self.failed(e);
            }
        }
        let st = &mut self.st;
        if let Some(wp) = st.write.as_mut() {
            wp.off += 2 * mark;
        }
        st.discards.insert(seq);
        st.floor = st.floor.max(seq.saturating_add(1));
        if let Some(len) = found {
            st.summary.count = st.summary.count.saturating_sub(1);
            st.summary.bytes = st.summary.bytes.saturating_sub(u64::from(len));
        }
        Ok(())
    }

    /// The newest critical event held (feature `critical`), as open's walk
    /// and the appends since saw it (a discarded or deleted one is not).
    #[bisync]
    pub async fn newest_critical(&mut self) -> Result<Option<Seq>, Error<F::Error>> {
        self.refresh().await?;
        let st = &self.st;
        Ok(st
            .newest_critical
            .filter(|&c| c >= st.live_from && !st.discards.contains(c)))
    }
}
