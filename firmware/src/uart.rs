//! The CMSDK APB UART (UART0 of QEMU's mps2-an386 at 0x4000_4000) as an
//! `embedded_io` link: blocking writes, non-blocking "is a byte there".
//!
//! Registers (ARM DDI0479C): DATA +0x0, STATE +0x4 (bit 0 TX buffer full,
//! bit 1 RX buffer full, bits 2/3 TX/RX overrun, write 1 to clear), CTRL
//! +0x8 (bit 0 TX enable, bit 1 RX enable), BAUDDIV +0x10 (at least 16).

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const DATA: usize = 0x0;
const STATE: usize = 0x4;
const CTRL: usize = 0x8;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_OVERRUNS: u32 = 0b1100;
const CTRL_TX_RX_ENABLE: u32 = 0b11;

/// One CMSDK UART.
pub struct Uart {
    base: usize,
}

impl Uart {
    /// UART0 of the mps2-an386, enabled for TX and RX at 115200 baud of a
    /// 25 MHz clock.
    ///
    /// # Safety
    /// Only one `Uart` may exist for this base address.
    pub unsafe fn uart0() -> Self {
        let uart = Uart { base: 0x4000_4000 };
        uart.write_reg(BAUDDIV, 25_000_000 / 115_200);
        uart.write_reg(STATE, STATE_OVERRUNS);
        uart.write_reg(CTRL, CTRL_TX_RX_ENABLE);
        uart
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: a device register of this UART, which `uart0` owns.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn rx_full(&self) -> bool {
        self.read_reg(STATE) & STATE_RX_FULL != 0
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.rx_full())
    }
}

impl embedded_io::Read for Uart {
    /// Waits for the first byte, then takes what is there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.rx_full() {}
        let mut n = 0;
        while n < buf.len() && self.rx_full() {
            buf[n] = self.read_reg(DATA) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
            self.write_reg(DATA, u32::from(byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
