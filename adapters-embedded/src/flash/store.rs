//! The flash queue as the core's [`Store`] (contract v3, with holes): a
//! thin mapping onto its own methods. The summary counts intact records,
//! the sizes give [`HOLE`](outbox_core::HOLE) for a damaged or never
//! stored number, and a record found damaged by `read_range` is
//! `Malformed`. Each append is durable when it returns, so `sync` is a no-op; a
//! number appended again after a failed append replaces the old copy in
//! every read.

use embedded_storage::nor_flash::NorFlash;
use outbox_core::{ReadError, Seq, Store, StoreSummary};

use super::{Error, FlashQueue};

impl<F: NorFlash> Store for FlashQueue<F> {
    type Error = Error<F::Error>;

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        FlashQueue::append(self, seq, payload)
    }

    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<Self::Error>> {
        FlashQueue::read_range(self, first, last, buf).map_err(|e| match e {
            // A record the sizes named, damaged since: the driver
            // dead-letters that one event and the queue moves on.
            Error::Missing { seq } => ReadError::Malformed { seq },
            e => ReadError::Store(e),
        })
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error> {
        FlashQueue::delete_through(self, through)
    }

    fn summary(&mut self) -> Result<StoreSummary, Self::Error> {
        let s = FlashQueue::summary(self)?;
        Ok(StoreSummary {
            count: s.count,
            bytes: s.bytes,
            first: s.first.unwrap_or(0),
            last: s.last.unwrap_or(0),
        })
    }

    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Self::Error> {
        FlashQueue::read_sizes(self, from, out)
    }

    fn seq_floor(&mut self) -> Result<Seq, Self::Error> {
        FlashQueue::seq_floor(self)
    }
}
