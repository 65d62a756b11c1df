//! outbox on a Cortex-M4, in QEMU's mps2-an386.
//!
//! Tracks [`EVENTS`] events (one of them poison) through the core's
//! machine and driver, the flash queue on a NOR flash kept in a region of
//! RAM, and the serial transport on UART0, which QEMU connects to
//! `outbox gateway --tcp`. When every event is delivered
//! or rejected it prints the tally through semihosting and exits 0; on a
//! wrong tally, a driver error or after [`DEADLINE_MS`] it exits 1.
//! `firmware/run.sh` runs the whole test.

#![no_std]
#![no_main]

mod clock;
mod events;
mod nor;
mod uart;

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;
use core::time::Duration;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use outbox_core::{
    Config, Driver, DriverError, InputError, Machine, Observer, Output, Overflow, Seq,
};
use outbox_embedded::flash::FlashQueue;
use outbox_embedded::serial::SerialTransport;
use panic_halt as _;

use nor::RamNor;
use uart::Uart;

/// Events tracked.
const EVENTS: u32 = 300;
/// The event the collector refuses (it carries a `poison` field).
const POISON: u32 = 150;
/// Give up after this long (QEMU time, which runs about as fast as the host's).
const DEADLINE_MS: u64 = 150_000;
/// A new event every this many milliseconds.
const TRACK_EVERY_MS: u64 = 5;
/// Pending slots of the machine.
const SLOTS: usize = 256;
/// The batch buffer, the largest batch's payloads.
const BATCH_BYTES: usize = 2048;
/// The simulated flash: 64 KiB of board RAM above the linker's 256 KiB.
const NOR_BASE: usize = 0x2004_0000;
const NOR_BYTES: usize = 64 * 1024;

type Device = Driver<'static, FlashQueue<RamNor>, SerialTransport<Uart>, Tally, SLOTS>;

/// What the application hears from the machine, counted in statics (the
/// driver owns its observer).
struct Tally;

static DELIVERED: AtomicU32 = AtomicU32::new(0);
static REJECTED: AtomicU32 = AtomicU32::new(0);
static REJECTED_SEQ: AtomicU32 = AtomicU32::new(u32::MAX);
static DROPPED: AtomicU32 = AtomicU32::new(0);

impl Observer for Tally {
    fn observe(&mut self, output: &Output) {
        let count = |first: Seq, last: Seq| (last - first + 1) as u32;
        match *output {
            Output::Delivered { first, last } => {
                DELIVERED.fetch_add(count(first, last), Relaxed);
            }
            Output::Rejected { seq, .. } => {
                REJECTED.fetch_add(1, Relaxed);
                REJECTED_SEQ.store(seq as u32, Relaxed);
            }
            Output::Dropped { first, last, .. } => {
                DROPPED.fetch_add(count(first, last), Relaxed);
            }
            _ => {}
        }
    }
}

/// Largest event accepted.
const MAX_EVENT_BYTES: u32 = 250;

/// The queue's byte limit follows from the flash; a full queue refuses new
/// events (the loop below tracks them again later).
fn config(queue: &FlashQueue<RamNor>) -> Config {
    let config = Config::builder()
        .max_queue_events(SLOTS as u32)
        .max_queue_bytes(queue.max_queue_bytes(MAX_EVENT_BYTES, SLOTS as u32))
        .max_event_bytes(MAX_EVENT_BYTES)
        .max_batch_events(16)
        .max_batch_bytes(BATCH_BYTES as u32)
        .overflow(Overflow::RejectNew)
        .retry_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .build();
    match config {
        Ok(c) => c,
        Err(_) => finish(false, b"bad config"),
    }
}

#[entry]
fn main() -> ! {
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        finish(false, b"no peripherals")
    };
    clock::start(peripherals.SYST);
    // SAFETY: the only Uart, and the simulated flash region is used by
    // nothing else (memory.x gives the linker only the RAM below it).
    let (link, region) = unsafe {
        (
            Uart::uart0(),
            core::slice::from_raw_parts_mut(NOR_BASE as *mut u8, NOR_BYTES),
        )
    };
    let Ok(queue) = FlashQueue::open(RamNor::new(region), 0..NOR_BYTES as u32) else {
        finish(false, b"the flash queue did not open")
    };
    let Ok(machine) = Machine::<SLOTS>::new(config(&queue), 0x5eed) else {
        finish(false, b"machine refused its config")
    };
    let Some(buf) = cortex_m::singleton!(: [u8; BATCH_BYTES] = [0; BATCH_BYTES]) else {
        finish(false, b"batch buffer taken")
    };
    let transport = SerialTransport::new(link);
    let Ok(driver) = Driver::new(machine, queue, transport, buf, Tally) else {
        finish(false, b"batch buffer too small")
    };
    let Some(device) = cortex_m::singleton!(: Device = driver) else {
        finish(false, b"driver taken")
    };
    run(device)
}

fn run(device: &mut Device) -> ! {
    if device.start(clock::now()).is_err() {
        finish(false, b"restore failed");
    }
    let mut payload = [0u8; 192];
    let mut tracked = 0u32;
    let mut next_track = 0u64;
    loop {
        let now = clock::now();
        if now.as_millis() > DEADLINE_MS {
            report(device, tracked);
            finish(false, b"deadline passed");
        }
        if tracked < EVENTS && now.as_millis() >= next_track {
            let n = events::track_json(tracked, tracked == POISON, &mut payload);
            match device.track(now, &payload[..n]) {
                Ok(_) => {
                    tracked += 1;
                    next_track = now.as_millis() + TRACK_EVERY_MS;
                }
                // Back-pressure: try the same event again a little later.
                Err(DriverError::Input(InputError::QueueFull)) => {
                    next_track = now.as_millis() + 50;
                }
                Err(_) => finish(false, b"track failed"),
            }
        }
        // A failed send or read is retried by the machine; keep going.
        let _ = device.poll(now);
        if tracked == EVENTS && device.machine().stats().pending_events == 0 {
            break;
        }
    }
    report(device, tracked);
    let good = DELIVERED.load(Relaxed) == EVENTS - 1
        && REJECTED.load(Relaxed) == 1
        && REJECTED_SEQ.load(Relaxed) == POISON
        && DROPPED.load(Relaxed) == 0;
    finish(good, if good { b"ok" } else { b"wrong tally" })
}

/// One line on the host's stdout.
fn report(device: &Device, tracked: u32) {
    let link = device.transport().stats();
    let fields: [(&[u8], u32); 8] = [
        (b"tracked", tracked),
        (b"delivered", DELIVERED.load(Relaxed)),
        (b"rejected", REJECTED.load(Relaxed)),
        (b"rejected_seq", REJECTED_SEQ.load(Relaxed)),
        (b"dropped", DROPPED.load(Relaxed)),
        (b"batches_sent", link.batches_sent),
        (b"stale_answers", link.stale_answers),
        (b"bad_frames", link.bad_frames),
    ];
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(b"outbox-firmware:");
        for (name, value) in fields {
            let _ = out.write_all(b" ");
            let _ = out.write_all(name);
            let _ = out.write_all(b"=");
            let _ = out.write_all(events::decimal(value, &mut [0; 10]));
        }
        let _ = out.write_all(b"\n");
    }
}

/// Print the verdict and leave QEMU with its exit code.
fn finish(ok: bool, why: &[u8]) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(if ok {
            b"outbox-firmware: PASS "
        } else {
            b"outbox-firmware: FAIL "
        });
        let _ = out.write_all(why);
        let _ = out.write_all(b"\n");
    }
    loop {
        debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    }
}
