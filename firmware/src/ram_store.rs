//! A stand-in store until the flash queue is linked: fixed 256-byte slots
//! in the board RAM above the linker's region (where the simulated NOR
//! flash goes), so the firmware's own RAM figure stays honest.

use outbox_core::{Seq, Store};

const SLOT: usize = 256;

/// Events in RAM slots `seq % slots`.
pub struct RamStore {
    region: &'static mut [u8],
    head: Seq,
    next: Seq,
}

/// Why the stand-in store refused.
#[derive(Debug)]
pub enum RamStoreError {
    /// The event does not fit a slot, or every slot is taken.
    Full,
    /// A read was asked for records the store does not hold.
    Missing,
}

impl RamStore {
    /// An empty store over `region`.
    pub fn new(region: &'static mut [u8]) -> Self {
        RamStore {
            region,
            head: 0,
            next: 0,
        }
    }

    fn slots(&self) -> u64 {
        (self.region.len() / SLOT) as u64
    }

    fn slot(&mut self, seq: Seq) -> &mut [u8] {
        let at = (seq % self.slots()) as usize * SLOT;
        &mut self.region[at..at + SLOT]
    }
}

impl Store for RamStore {
    type Error = RamStoreError;

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), RamStoreError> {
        if payload.len() > SLOT - 2 || seq.saturating_sub(self.head) >= self.slots() {
            return Err(RamStoreError::Full);
        }
        let slot = self.slot(seq);
        slot[..2].copy_from_slice(&(payload.len() as u16).to_le_bytes());
        slot[2..2 + payload.len()].copy_from_slice(payload);
        self.next = seq + 1;
        Ok(())
    }

    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, RamStoreError> {
        if first < self.head || last >= self.next {
            return Err(RamStoreError::Missing);
        }
        let mut n = 0;
        for seq in first..=last {
            let slot = self.slot(seq);
            let len = usize::from(u16::from_le_bytes([slot[0], slot[1]]));
            let payload = &slot[2..2 + len];
            let out = buf.get_mut(n..n + len).ok_or(RamStoreError::Missing)?;
            out.copy_from_slice(payload);
            n += len;
        }
        Ok(n)
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), RamStoreError> {
        self.head = self.head.max(through + 1);
        Ok(())
    }

    fn restore<F: FnMut(Seq, u32)>(&mut self, _visit: F) -> Result<(), RamStoreError> {
        // RAM forgets everything at reset.
        Ok(())
    }
}
