//! The flash queue as the core's [`Store`] (contract v3, with holes): a
//! thin mapping onto its own methods. The summary counts intact records
//! and spans from the last delete to one below the seq floor (with no
//! intact record too), so a record lost before the oldest intact one, or
//! after the newest with its number readable, is reported too; the sizes give [`HOLE`](outbox_core::HOLE)
//! for a damaged or never stored number (and stop at the newest intact
//! record: the rest is holes), and a record found damaged by `read_range` is
//! `Malformed`. Each append is durable when it returns, so `sync` is a no-op; a
//! number appended again after a failed append replaces the old copy in
//! every read.

use outbox_core::{ReadError, Seq, StoreSummary};

use super::{bisync, Error, FlashQueue, NorFlash, Store};

impl<F: NorFlash> Store for FlashQueue<F> {
    type Error = Error<F::Error>;

    #[bisync]
    async fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        FlashQueue::append(self, seq, payload).await
    }

    /// With feature `critical` the queue keeps the flag in the record and
    /// discards with a mark (see `critical`); without it `KEEPS_CRITICAL`
    /// is `false` and the driver refuses critical events.
    #[cfg(feature = "critical")]
    const KEEPS_CRITICAL: bool = true;

    #[cfg(feature = "critical")]
    #[bisync]
    async fn append_critical(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        FlashQueue::append_critical(self, seq, payload).await
    }

    #[cfg(feature = "critical")]
    #[bisync]
    async fn discard(&mut self, seq: Seq) -> Result<(), Self::Error> {
        FlashQueue::discard(self, seq).await
    }

    #[cfg(feature = "critical")]
    #[bisync]
    async fn newest_critical(&mut self) -> Result<Option<Seq>, Self::Error> {
        FlashQueue::newest_critical(self).await
    }

    /// The stamp is kept in the record (feature `expiry`), and the critical
    /// flag with it (feature `critical`; without it the driver never asks
    /// for a critical event).
    #[cfg(feature = "expiry")]
    #[bisync]
    async fn append_stamped(
        &mut self,
        seq: Seq,
        payload: &[u8],
        critical: bool,
        stamp_ms: u64,
    ) -> Result<(), Self::Error> {
        #[cfg(not(feature = "critical"))]
        let _ = critical;
        self.append_event(
            seq,
            payload,
            Some(stamp_ms),
            #[cfg(feature = "critical")]
            critical,
        )
        .await
    }

    #[cfg(feature = "expiry")]
    #[bisync]
    async fn first_fresh(&mut self, after_ms: u64) -> Result<Option<Seq>, Self::Error> {
        FlashQueue::first_fresh(self, after_ms).await.map(Some)
    }

    #[bisync]
    async fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<Self::Error>> {
        FlashQueue::read_range(self, first, last, buf)
            .await
            .map_err(|e| match e {
                // A record the sizes named, damaged since: the driver
                // dead-letters that one event and the queue moves on.
                Error::Missing { seq } => ReadError::Malformed { seq },
                e => ReadError::Store(e),
            })
    }

    #[bisync]
    async fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error> {
        FlashQueue::delete_through(self, through).await
    }

    #[bisync]
    async fn summary(&mut self) -> Result<StoreSummary, Self::Error> {
        let s = FlashQueue::summary(self).await?;
        // The span runs from the last delete to the floor: the numbers
        // before the oldest intact record and after the newest (lost, or
        // spent in an earlier life) are holes the machine reports. With no
        // intact record left the page headers still know both, so the
        // numbers lost are reported too (issue 16): a span of count 0,
        // unless it is empty or is 0 alone (which reads as
        // `StoreSummary::EMPTY`, the residue: record 0 lost alone goes
        // unreported).
        // (`live_from` is at most the oldest intact record, and the floor
        // above the newest.)
        let (first, end) = (self.st.live_from, self.floor());
        let span = end > first;
        Ok(StoreSummary {
            count: s.count,
            bytes: s.bytes,
            first: if span { first } else { 0 },
            last: if span { end - 1 } else { 0 },
        })
    }

    #[bisync]
    async fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Self::Error> {
        FlashQueue::read_sizes(self, from, out).await
    }

    #[bisync]
    async fn seq_floor(&mut self) -> Result<Seq, Self::Error> {
        FlashQueue::seq_floor(self).await
    }
}
