//! The C side's UART as an `embedded_io` link for the serial transport:
//! blocking writes, non-blocking reads.
//!
//! The C read callback never waits: it returns what the UART holds now (0
//! bytes when nothing came). `embedded_io`'s "is a byte there" is answered
//! by reading into a small staging buffer, which the next read empties
//! first, so no byte is read twice or lost.

use core::ffi::c_void;

use crate::abi::{OutboxDeviceIo, OutboxUartRead, OutboxUartWrite};

/// A failed UART callback and its non-zero (write) or negative (read) code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UartError(pub i32);

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// Bytes read ahead by `read_ready`.
const STAGE: usize = 16;

/// The UART behind the C callbacks.
pub struct CallbackUart {
    ctx: *mut c_void,
    read: OutboxUartRead,
    write: OutboxUartWrite,
    staged: [u8; STAGE],
    /// `staged[at..len]` is not consumed yet.
    at: usize,
    len: usize,
}

impl CallbackUart {
    /// The UART behind `io`'s `uart_*` callbacks; `None` when one of them
    /// is NULL.
    pub fn new(io: &OutboxDeviceIo) -> Option<Self> {
        let both = io.uart_read.is_some() && io.uart_write.is_some();
        both.then_some(CallbackUart {
            ctx: io.ctx,
            read: io.uart_read,
            write: io.uart_write,
            staged: [0; STAGE],
            at: 0,
            len: 0,
        })
    }

    /// Fill the staging buffer when it is empty; whether it holds a byte.
    fn stage(&mut self) -> Result<bool, UartError> {
        if self.at < self.len {
            return Ok(true);
        }
        // SAFETY: the callback's contract (outbox_embedded.h): it writes at
        // most `STAGE` bytes at `staged` and returns how many, or < 0.
        let n = match self.read {
            Some(f) => unsafe { f(self.ctx, self.staged.as_mut_ptr(), STAGE) },
            None => i32::MIN,
        };
        match usize::try_from(n) {
            Ok(n) => {
                self.at = 0;
                self.len = n.min(STAGE);
                Ok(self.len > 0)
            }
            Err(_) => Err(UartError(n)),
        }
    }
}

impl embedded_io::ErrorType for CallbackUart {
    type Error = UartError;
}

impl embedded_io::ReadReady for CallbackUart {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        self.stage()
    }
}

impl embedded_io::Read for CallbackUart {
    /// What is staged or there now; 0 bytes when nothing came (the serial
    /// transport reads only after `read_ready`).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() || !self.stage()? {
            return Ok(0);
        }
        let n = buf.len().min(self.len - self.at);
        buf[..n].copy_from_slice(&self.staged[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl embedded_io::Write for CallbackUart {
    /// The whole of `buf`, or the callback's error.
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        // SAFETY: the callback's contract: it reads `buf.len()` bytes at
        // `buf` and returns 0 once all are written.
        let code = match self.write {
            Some(f) => unsafe { f(self.ctx, buf.as_ptr(), buf.len()) },
            None => i32::MIN,
        };
        match code {
            0 => Ok(buf.len()),
            e => Err(UartError(e)),
        }
    }

    fn flush(&mut self) -> Result<(), UartError> {
        Ok(())
    }
}
