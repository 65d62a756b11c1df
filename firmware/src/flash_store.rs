//! The flash queue as the core's `Store` (until the queue implements the
//! core's Store v2 itself): appends, reads and deletes go straight through;
//! start-up restores every stored record's size, 32 at a time.

use embedded_storage::nor_flash::NorFlash;
use outbox_core::{Seq, Store};
use outbox_embedded::flash::{Error, FlashQueue};

/// A [`FlashQueue`] seen as a [`Store`].
pub struct FlashStore<F: NorFlash>(pub FlashQueue<F>);

impl<F: NorFlash> Store for FlashStore<F> {
    type Error = Error<F::Error>;

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        self.0.append(seq, payload)
    }

    fn read_range(&mut self, first: Seq, last: Seq, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read_range(first, last, buf)
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error> {
        self.0.delete_through(through)
    }

    fn restore<V: FnMut(Seq, u32)>(&mut self, mut visit: V) -> Result<(), Self::Error> {
        let Some(mut from) = self.0.summary()?.first else {
            return Ok(());
        };
        let mut sizes = [0u32; 32];
        loop {
            let n = self.0.read_sizes(from, &mut sizes)?;
            for (i, size) in sizes[..n].iter().enumerate() {
                visit(from + i as Seq, *size);
            }
            if n < sizes.len() {
                return Ok(());
            }
            from += n as Seq;
        }
    }

    fn seq_floor(&mut self) -> Result<Seq, Self::Error> {
        self.0.seq_floor()
    }
}
