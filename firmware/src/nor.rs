//! A NOR flash on a region of RAM that keeps NOR's rules, standing in for
//! a flash chip: writes of whole 4-byte words that only clear bits, each
//! word at most once between erases; erases of whole 4 KiB pages back to
//! 0xFF. A write that breaks a rule is refused, so the flash queue running
//! on it is held to what real NOR flash allows.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// A broken NOR rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NorError {
    /// Offset or length not a multiple of the operation's size.
    NotAligned,
    /// Beyond the end of the region.
    OutOfBounds,
    /// A bit would go from 0 back to 1, or a word is written twice.
    NotErased,
}

impl NorFlashError for NorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            NorError::NotAligned => NorFlashErrorKind::NotAligned,
            NorError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            NorError::NotErased => NorFlashErrorKind::Other,
        }
    }
}

const WORD: usize = 4;
const PAGE: usize = 4096;

/// NOR flash in RAM.
pub struct RamNor {
    region: &'static mut [u8],
}

impl RamNor {
    /// A flash over `region` (whole pages) as it is: what a warm reset
    /// left there.
    pub fn kept(region: &'static mut [u8]) -> Self {
        RamNor { region }
    }

    /// A flash over `region`, erased: RAM holds nothing useful at power-on.
    pub fn erased(region: &'static mut [u8]) -> Self {
        region.fill(0xFF);
        RamNor { region }
    }

    fn span(&self, offset: u32, len: usize, align: usize) -> Result<(usize, usize), NorError> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(NorError::NotAligned);
        }
        match start.checked_add(len) {
            Some(end) if end <= self.region.len() => Ok((start, end)),
            _ => Err(NorError::OutOfBounds),
        }
    }
}

impl ErrorType for RamNor {
    type Error = NorError;
}

impl ReadNorFlash for RamNor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorError> {
        let (start, end) = self.span(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.region[start..end]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.region.len()
    }
}

impl NorFlash for RamNor {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(NorError::OutOfBounds)?;
        let (start, end) = self.span(from, len, PAGE)?;
        self.region[start..end].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorError> {
        let (start, end) = self.span(offset, bytes.len(), WORD)?;
        let target = &mut self.region[start..end];
        // Each word once between erases: an erased word reads all 0xFF
        // (the queue never writes an all-0xFF word, which would be a no-op).
        // (A whole number of words: every byte erased is every word erased.)
        let fresh = target.iter().all(|&b| b == 0xFF);
        if !fresh {
            return Err(NorError::NotErased);
        }
        target.copy_from_slice(bytes);
        Ok(())
    }
}
