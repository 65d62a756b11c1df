//! Milliseconds since boot, from SysTick (which QEMU's mps2 models), in a
//! u64: it never wraps (a u32 of milliseconds wraps after 49.7 days, and
//! the machine would then see time go back and wait for ever on a retry
//! due "in the future").

use core::cell::Cell;

use cortex_m::interrupt::{self, Mutex};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use outbox_core::Instant;

/// The mps2-an386's CPU clock.
const CPU_HZ: u32 = 25_000_000;

/// Where the clock starts: 2 s before a u32 of milliseconds would wrap (as
/// Linux starts jiffies 5 minutes before theirs), so every boot that runs
/// longer crosses that point and a clock that wrapped there would fail the
/// test.
pub const START_MS: u64 = u32::MAX as u64 - 2_000;

/// Cortex-M4 has no 64-bit atomics: the count is read and bumped with
/// interrupts off.
static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(START_MS));

/// Start a 1 kHz SysTick interrupt.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CPU_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Now, for the machine.
pub fn now() -> Instant {
    Instant::from_millis(interrupt::free(|cs| MILLIS.borrow(cs).get()))
}

#[exception]
fn SysTick() {
    interrupt::free(|cs| {
        let millis = MILLIS.borrow(cs);
        millis.set(millis.get() + 1);
    });
}
