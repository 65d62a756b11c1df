//! The C side's NOR flash as an `embedded_storage` [`NorFlash`], for the
//! flash queue.
//!
//! The queue needs compile-time word and page sizes ([`NorFlash`]'s
//! associated constants), so this library fixes them:
//! [`OUTBOX_NOR_WRITE_BYTES`] and [`OUTBOX_NOR_ERASE_BYTES`]. Before a
//! callback is called, offsets and lengths are checked here against them
//! and the flash's size: the C callbacks only ever see aligned, in-bounds
//! operations.

use core::ffi::c_void;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use crate::abi::{OutboxDeviceIo, OutboxNorErase, OutboxNorRead, OutboxNorWrite};

/// Every write is a whole number of these bytes at an offset that is a
/// multiple of it (flash programmed by 1, 2 or 4 bytes at a time fits).
pub const OUTBOX_NOR_WRITE_BYTES: u32 = 4;
/// Every erase is a whole number of these bytes (pages, sectors) at an
/// offset that is a multiple of it.
pub const OUTBOX_NOR_ERASE_BYTES: u32 = 4096;

/// What went wrong with a flash operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NorError {
    /// Offset or length not a multiple of the operation's size (the queue
    /// never asks for one; checked before the callback).
    NotAligned,
    /// Beyond the end of the flash (checked before the callback).
    OutOfBounds,
    /// The C callback returned this non-zero code.
    Callback(i32),
}

impl NorFlashError for NorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            NorError::NotAligned => NorFlashErrorKind::NotAligned,
            NorError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            NorError::Callback(_) => NorFlashErrorKind::Other,
        }
    }
}

/// The flash behind the C callbacks.
pub struct CallbackNor {
    ctx: *mut c_void,
    read: OutboxNorRead,
    write: OutboxNorWrite,
    erase: OutboxNorErase,
    bytes: u32,
}

impl CallbackNor {
    /// A flash of `bytes` bytes behind `io`'s `nor_*` callbacks; `None`
    /// when one of them is NULL.
    pub fn new(io: &OutboxDeviceIo, bytes: u32) -> Option<Self> {
        let all = io.nor_read.is_some() && io.nor_write.is_some() && io.nor_erase.is_some();
        all.then_some(CallbackNor {
            ctx: io.ctx,
            read: io.nor_read,
            write: io.nor_write,
            erase: io.nor_erase,
            bytes,
        })
    }

    fn check(&self, offset: u32, len: usize, align: u32) -> Result<usize, NorError> {
        let len = u32::try_from(len).map_err(|_| NorError::OutOfBounds)?;
        if !offset.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(NorError::NotAligned);
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes => Ok(len as usize),
            _ => Err(NorError::OutOfBounds),
        }
    }
}

/// A callback's answer; `None` (a NULL callback, which `new` refuses)
/// fails too.
fn result(code: Option<i32>) -> Result<(), NorError> {
    match code {
        Some(0) => Ok(()),
        Some(e) => Err(NorError::Callback(e)),
        None => Err(NorError::Callback(i32::MIN)),
    }
}

impl ErrorType for CallbackNor {
    type Error = NorError;
}

impl ReadNorFlash for CallbackNor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorError> {
        let len = self.check(offset, bytes.len(), 1)?;
        // SAFETY: the callback's contract (outbox_embedded.h): it fills
        // `len` bytes at `bytes`, which this slice owns.
        result(
            self.read
                .map(|f| unsafe { f(self.ctx, offset, bytes.as_mut_ptr(), len) }),
        )
    }

    fn capacity(&self) -> usize {
        self.bytes as usize
    }
}

impl NorFlash for CallbackNor {
    const WRITE_SIZE: usize = OUTBOX_NOR_WRITE_BYTES as usize;
    const ERASE_SIZE: usize = OUTBOX_NOR_ERASE_BYTES as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
        let len = to.checked_sub(from).ok_or(NorError::OutOfBounds)?;
        self.check(from, len as usize, OUTBOX_NOR_ERASE_BYTES)?;
        // SAFETY: the callback's contract; no pointer crosses.
        result(self.erase.map(|f| unsafe { f(self.ctx, from, to) }))
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorError> {
        let len = self.check(offset, bytes.len(), OUTBOX_NOR_WRITE_BYTES)?;
        // SAFETY: the callback's contract: it reads `len` bytes at `bytes`.
        result(
            self.write
                .map(|f| unsafe { f(self.ctx, offset, bytes.as_ptr(), len) }),
        )
    }
}
