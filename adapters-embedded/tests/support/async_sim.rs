//! The simulated flash as an async flash (feature `async`), for the async
//! tests: every operation suspends once (`Pending`, waking itself), then
//! happens whole, or as the sim's power cut says.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use embedded_storage::nor_flash::{NorFlash as _, ReadNorFlash as _};
use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use outbox_embedded::flash::sim::{SimError, SimFlash};

pub type Flash = SimFlash<4, 4, 512>;

/// Returns `Pending` once (waking itself), then `Ready`.
pub struct YieldOnce(pub bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The simulated flash as an async flash: every operation suspends once,
/// then happens whole (or as the sim's power cut says). `done` counts the
/// writes and erases that happened.
pub struct AsyncSim {
    pub flash: Flash,
    pub done: Rc<Cell<u64>>,
}

impl AsyncSim {
    pub fn new(flash: Flash) -> Self {
        AsyncSim {
            flash,
            done: Rc::new(Cell::new(0)),
        }
    }
}

impl ErrorType for AsyncSim {
    type Error = SimError;
}

impl ReadNorFlash for AsyncSim {
    const READ_SIZE: usize = 4;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        YieldOnce(false).await;
        self.flash.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for AsyncSim {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 512;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        YieldOnce(false).await;
        self.done.set(self.done.get() + 1);
        self.flash.erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        YieldOnce(false).await;
        self.done.set(self.done.get() + 1);
        self.flash.write(offset, bytes)
    }
}
