//! The flash queue as the core's `Store` (until the queue implements it
//! itself): every call goes straight through.

use embedded_storage::nor_flash::NorFlash;
use outbox_core::{ReadError, Seq, Store, StoreSummary};
use outbox_embedded::flash::{Error, FlashQueue};

/// A [`FlashQueue`] seen as a [`Store`].
pub struct FlashStore<F: NorFlash>(pub FlashQueue<F>);

impl<F: NorFlash> Store for FlashStore<F> {
    type Error = Error<F::Error>;

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        self.0.append(seq, payload)
    }

    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<Self::Error>> {
        Ok(self.0.read_range(first, last, buf)?)
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error> {
        self.0.delete_through(through)
    }

    fn summary(&mut self) -> Result<StoreSummary, Self::Error> {
        let s = self.0.summary()?;
        Ok(StoreSummary {
            count: s.count,
            bytes: s.bytes,
            first: s.first.unwrap_or(0),
            last: s.last.unwrap_or(0),
        })
    }

    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Self::Error> {
        self.0.read_sizes(from, out)
    }

    fn seq_floor(&mut self) -> Result<Seq, Self::Error> {
        self.0.seq_floor()
    }
}
