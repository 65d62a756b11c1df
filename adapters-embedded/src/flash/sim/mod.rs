//! A simulated NOR flash for tests and benchmarks (feature `_test`, outside
//! semver).
//!
//! [`SimFlash`] holds its bytes in RAM and enforces what real NOR flash
//! demands: a write only clears bits (setting a 0 back to 1 takes an erase),
//! every access is aligned to its size, and, by default, each write word is
//! written at most once between erases (flash with ECC). A breach is an
//! error and is counted in [`violations`](SimFlash::violations), so a test
//! can assert that none happened.
//!
//! It counts reads, writes, erases and their bytes ([`FlashStats`]), and it
//! can lose power: after a given number of writes and erases, or of bytes
//! written and erased, the operation under way stops part-way (the first
//! bytes of a write programmed, part of a page erased) and every later
//! operation fails until [`power_on`](SimFlash::power_on).

pub mod damage;
pub mod model;

use std::vec;
use std::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Operation counts since the flash was made (or since a snapshot, with
/// [`since`](FlashStats::since)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlashStats {
    /// Read operations.
    pub reads: u64,
    /// Write operations.
    pub writes: u64,
    /// Page erases.
    pub erases: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written (programmed).
    pub bytes_written: u64,
    /// Bytes erased.
    pub bytes_erased: u64,
}

impl FlashStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &FlashStats) -> FlashStats {
        FlashStats {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            erases: self.erases - earlier.erases,
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
            bytes_erased: self.bytes_erased - earlier.bytes_erased,
        }
    }
}

/// Why a simulated operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// Power was lost (during this operation or before it).
    PowerLoss,
    /// A failure injected with [`SimFlash::fail_write`].
    Injected,
    /// Offset or length not a multiple of the operation's size.
    NotAligned,
    /// Beyond the end of the flash.
    OutOfBounds,
    /// The write would set a 0 bit back to 1 (needs an erase first).
    NotErased,
    /// The word was already written since its last erase.
    WrittenTwice,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// When power will fail.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// During the write or erase `ops` from now, after `done` of its bytes.
    AtOp { ops: u64, done: usize },
    /// After this many more bytes written or erased.
    AfterBytes(u64),
}

/// A NOR flash in RAM: `READ`, `WRITE` and `ERASE` are its read, write and
/// page sizes; the page count is chosen at run time.
///
/// ```
/// use embedded_storage::nor_flash::NorFlash;
/// use outbox_embedded::flash::sim::{SimError, SimFlash};
///
/// let mut flash = SimFlash::<1, 4, 256>::new(4);
/// flash.write(0, &[0x0F; 4]).unwrap();
/// // Bits only go from 1 to 0 without an erase, and a word is written once.
/// assert_eq!(flash.write(0, &[0xFF; 4]), Err(SimError::NotErased));
/// assert_eq!(flash.violations(), 1);
///
/// // Power fails half-way through the next write.
/// flash.cut_at_op(0, 2);
/// assert_eq!(flash.write(4, &[0; 4]), Err(SimError::PowerLoss));
/// assert_eq!(&flash.image()[4..8], &[0, 0, 0xFF, 0xFF]);
/// flash.power_on();
/// assert_eq!(flash.stats().writes, 2);
/// ```
#[derive(Clone, Debug)]
pub struct SimFlash<const READ: usize, const WRITE: usize, const ERASE: usize> {
    data: Vec<u8>,
    written: Vec<bool>,
    stats: FlashStats,
    write_once: bool,
    erase_from_end: bool,
    cut: Option<Cut>,
    powered: bool,
    fail_write: Option<(u64, bool)>,
    violations: u64,
    /// Addresses [`rot`](Self::rot) changed and no erase has reset since,
    /// once per bit flipped.
    rotted: Vec<usize>,
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> SimFlash<READ, WRITE, ERASE> {
    /// A blank (erased) flash of `pages` pages.
    pub fn new(pages: usize) -> Self {
        let len = pages * ERASE;
        SimFlash {
            data: vec![0xFF; len],
            written: vec![false; len / WRITE],
            stats: FlashStats::default(),
            write_once: true,
            erase_from_end: false,
            cut: None,
            powered: true,
            fail_write: None,
            violations: 0,
            rotted: Vec::new(),
        }
    }

    /// A flash of `pages` pages holding `image` from address 0 (cut or
    /// padded with 0xFF); every word counts as written.
    pub fn from_image(pages: usize, image: &[u8]) -> Self {
        let mut f = Self::new(pages);
        let n = image.len().min(f.data.len());
        f.data[..n].copy_from_slice(&image[..n]);
        f.written.fill(true);
        f
    }

    /// The raw bytes.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// The counters so far.
    pub fn stats(&self) -> FlashStats {
        self.stats
    }

    /// Breaches of the NOR rules so far (each also failed its operation).
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Bit rot: flip the bits of `mask` in the byte at `addr` (a flash
    /// cell that lost or gained charge), whatever was written there.
    pub fn rot(&mut self, addr: usize, mask: u8) {
        if let Some(b) = self.data.get_mut(addr) {
            *b ^= mask;
            // Once per bit: a checker counts the bits a header lost (one
            // or two are recovered, see `walk::record_at`).
            let bits = mask.count_ones() as usize;
            self.rotted.extend(core::iter::repeat_n(addr, bits));
        }
    }

    /// Every address [`rot`](Self::rot) changed that no erase has reset
    /// since: the damage a checker must allow for, earlier rot included
    /// (an address once per bit flipped there).
    pub fn rotted(&self) -> Vec<usize> {
        self.rotted.clone()
    }

    /// Whether a word may be written only once between erases (default on).
    pub fn set_write_once(&mut self, on: bool) {
        self.write_once = on;
    }

    /// Whether an interrupted erase clears the page from its end (leaving
    /// its first bytes, the header, intact) instead of from its start.
    pub fn set_erase_from_end(&mut self, on: bool) {
        self.erase_from_end = on;
    }

    /// Lose power during the write or erase `ops` operations from now
    /// (0: the next), after `done` of its bytes are written or erased.
    pub fn cut_at_op(&mut self, ops: u64, done: usize) {
        self.cut = Some(Cut::AtOp { ops, done });
    }

    /// Lose power once `bytes` more bytes have been written or erased.
    pub fn cut_after_bytes(&mut self, bytes: u64) {
        self.cut = Some(Cut::AfterBytes(bytes));
    }

    /// Cancel a planned power cut or write failure.
    pub fn cancel_faults(&mut self) {
        self.cut = None;
        self.fail_write = None;
    }

    /// Whether power is on.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Power returns; the flash works again.
    pub fn power_on(&mut self) {
        self.powered = true;
        self.cut = None;
    }

    /// Make the write `writes` writes from now (0: the next) fail with
    /// [`SimError::Injected`], with all its bytes programmed (`complete`)
    /// or none. Power stays on.
    pub fn fail_write(&mut self, writes: u64, complete: bool) {
        self.fail_write = Some((writes, complete));
    }

    fn check(&mut self, offset: u32, len: usize, align: usize) -> Result<usize, SimError> {
        if !self.powered {
            return Err(SimError::PowerLoss);
        }
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            self.violations += 1;
            return Err(SimError::NotAligned);
        }
        if start
            .checked_add(len)
            .is_none_or(|end| end > self.data.len())
        {
            self.violations += 1;
            return Err(SimError::OutOfBounds);
        }
        Ok(start)
    }

    /// How many of an operation's `len` bytes happen before power fails,
    /// or `None` when it completes.
    fn bytes_before_cut(&mut self, len: usize) -> Option<usize> {
        match self.cut.as_mut()? {
            Cut::AtOp { ops: 0, done } => {
                let done = *done;
                self.cut = None;
                Some(done.min(len))
            }
            Cut::AtOp { ops, .. } => {
                *ops -= 1;
                None
            }
            Cut::AfterBytes(left) => {
                if (len as u64) <= *left {
                    *left -= len as u64;
                    None
                } else {
                    let done = *left as usize;
                    self.cut = None;
                    Some(done)
                }
            }
        }
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ErrorType
    for SimFlash<READ, WRITE, ERASE>
{
    type Error = SimError;
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ReadNorFlash
    for SimFlash<READ, WRITE, ERASE>
{
    const READ_SIZE: usize = READ;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        let start = self.check(offset, bytes.len(), READ)?;
        self.stats.reads += 1;
        self.stats.bytes_read += bytes.len() as u64;
        bytes.copy_from_slice(&self.data[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> NorFlash
    for SimFlash<READ, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        let len = (to as usize).saturating_sub(from as usize);
        if to < from {
            self.violations += 1;
            return Err(SimError::OutOfBounds);
        }
        let start = self.check(from, len, ERASE)?;
        let cut = self.bytes_before_cut(len);
        let done = cut.unwrap_or(len);
        let range = if self.erase_from_end {
            start + len - done..start + len
        } else {
            start..start + done
        };
        self.data[range.clone()].fill(0xFF);
        self.rotted.retain(|a| !range.contains(a));
        let words = range.start.div_ceil(WRITE)..range.end / WRITE;
        self.written[words].fill(false);
        self.stats.erases += 1;
        self.stats.bytes_erased += done as u64;
        if cut.is_some() {
            self.powered = false;
            return Err(SimError::PowerLoss);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let start = self.check(offset, bytes.len(), WRITE)?;
        let target = &self.data[start..start + bytes.len()];
        if target.iter().zip(bytes).any(|(old, new)| old & new != *new) {
            self.violations += 1;
            return Err(SimError::NotErased);
        }
        let words = start / WRITE..(start + bytes.len()) / WRITE;
        if self.write_once && self.written[words.clone()].iter().any(|&w| w) {
            self.violations += 1;
            return Err(SimError::WrittenTwice);
        }
        let injected = match self.fail_write.as_mut() {
            Some((0, complete)) => {
                let complete = *complete;
                self.fail_write = None;
                Some(complete)
            }
            Some((n, _)) => {
                *n -= 1;
                None
            }
            None => None,
        };
        let cut = self.bytes_before_cut(bytes.len());
        let done = match (cut, injected) {
            (Some(n), _) => n,
            (None, Some(false)) => 0,
            _ => bytes.len(),
        };
        for (d, s) in self.data[start..start + done].iter_mut().zip(bytes) {
            *d &= s;
        }
        self.written[start / WRITE..(start + done).div_ceil(WRITE)].fill(true);
        self.stats.writes += 1;
        self.stats.bytes_written += done as u64;
        if cut.is_some() {
            self.powered = false;
            return Err(SimError::PowerLoss);
        }
        if injected.is_some() {
            return Err(SimError::Injected);
        }
        Ok(())
    }
}

/// For comparing with stores that rewrite words (sequential-storage's queue
/// pops by rewriting an item's header): such a store needs
/// [`set_write_once(false)`](SimFlash::set_write_once). The flash queue
/// needs only [`NorFlash`] and runs with the check on.
impl<const READ: usize, const WRITE: usize, const ERASE: usize> MultiwriteNorFlash
    for SimFlash<READ, WRITE, ERASE>
{
}
