//! outbox on a Cortex-M4, in QEMU's mps2-an386.
//!
//! Tracks [`EVENTS`] events (one of them poison) through the core's
//! machine and driver, the flash queue on a NOR flash kept in a region of
//! RAM, and the serial transport on UART0, which QEMU connects to
//! `outbox gateway --tcp`. Part way, with a batch in flight and events
//! queued, it resets itself ([`RESET_AT`], through the SCB: a warm reset,
//! which leaves RAM and so the simulated flash as it was) and the second
//! boot restores from the flash and tracks new events. When every event is
//! delivered or rejected it prints the tally through semihosting and exits
//! 0; on a wrong tally, a driver error or after [`DEADLINE_MS`] it exits 1.
//! `firmware/run.sh` runs the whole test.

#![no_std]
#![no_main]

mod clock;
mod events;
mod mem;
mod nor;
mod uart;

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;

use core::time::Duration;
use cortex_m::peripheral::SCB;

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

/// Events tracked, over both boots.
const EVENTS: u32 = 300;
/// The first boot resets itself after tracking this many.
const RESET_AT: u32 = 150;
/// The first boot's event the collector refuses (it carries a `poison` field).
const POISON: u32 = 100;
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
/// The test's tally, which must outlive the reset: board RAM above the
/// flash (QEMU zeroes RAM at power-on; a warm reset leaves it).
const KEPT_BASE: usize = NOR_BASE + NOR_BYTES;
/// Marks [`Kept`] as written by an earlier boot.
const KEPT_MAGIC: u32 = 0x0b0c_5eed;

type Device = Driver<'static, FlashQueue<RamNor>, SerialTransport<Uart>, Tally, SLOTS>;

/// What the application hears from the machine, counted over both boots
/// (the driver owns its observer). Test bookkeeping: a real device keeps
/// nothing across a reset but its flash.
#[repr(C)]
struct Kept {
    magic: AtomicU32,
    boot: AtomicU32,
    delivered: AtomicU32,
    rejected: AtomicU32,
}

fn kept() -> &'static Kept {
    // SAFETY: RAM the linker is not given (memory.x), used by nothing
    // else, aligned; atomics, so shared references may alias.
    unsafe { &*(KEPT_BASE as *const Kept) }
}

struct Tally;

impl Observer for Tally {
    fn observe(&mut self, output: &Output) {
        let count = |first: Seq, last: Seq| (last - first + 1) as u32;
        let k = kept();
        match *output {
            Output::Delivered { first, last } => {
                k.delivered.fetch_add(count(first, last), Relaxed);
            }
            Output::Rejected { .. } => {
                k.rejected.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
}

/// Largest event accepted.
const MAX_EVENT_BYTES: u32 = 250;

/// The queue's byte limit: what the flash holds for [`SLOTS`] events of at
/// most [`MAX_EVENT_BYTES`] (`FlashQueue::max_queue_bytes` of the 64 KiB
/// region, checked at boot); a full queue refuses new events (the loop
/// below tracks them again later).
const MAX_QUEUE_BYTES: u64 = 34_752;

/// Built and checked at compile time (no code builds or checks it on the
/// device; `Machine::new` checks it again).
const CONFIG: Config = match Config::builder()
    .max_queue_events(SLOTS as u32)
    .max_queue_bytes(MAX_QUEUE_BYTES)
    .max_event_bytes(MAX_EVENT_BYTES)
    .max_batch_events(16)
    .max_batch_bytes(BATCH_BYTES as u32)
    .overflow(Overflow::RejectNew)
    .retry_backoff(Duration::from_millis(100), Duration::from_secs(2))
    .request_timeout(Duration::from_secs(5))
    .build()
{
    Ok(c) => c,
    Err(_) => panic!("the firmware's Config is invalid"),
};

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
    // Power-on: nothing kept, the flash blank. A warm reset: both kept.
    let k = kept();
    let warm = k.magic.load(Relaxed) == KEPT_MAGIC;
    if !warm {
        k.boot.store(0, Relaxed);
        k.delivered.store(0, Relaxed);
        k.rejected.store(0, Relaxed);
        k.magic.store(KEPT_MAGIC, Relaxed);
    }
    k.boot.fetch_add(1, Relaxed);
    let nor = if warm {
        RamNor::kept(region)
    } else {
        RamNor::erased(region)
    };
    #[cfg(not(feature = "encryption"))]
    let Ok(queue) = FlashQueue::open(nor, 0..NOR_BYTES as u32) else {
        finish(false, b"flash did not open")
    };
    // (Measurement build: a device takes its key from its key store and
    // the salt from its RNG, fresh at every boot.)
    #[cfg(feature = "encryption")]
    let Ok(queue) = FlashQueue::open_sealed(
        nor,
        0..NOR_BYTES as u32,
        &[0x5E; 32],
        [k.boot.load(Relaxed) as u8; 12],
    ) else {
        finish(false, b"flash did not open")
    };
    #[cfg(not(feature = "encryption"))]
    if queue.max_queue_bytes(MAX_EVENT_BYTES, SLOTS as u32) != MAX_QUEUE_BYTES {
        finish(false, b"bad config")
    }
    #[cfg(feature = "encryption")]
    if queue.max_queue_bytes(MAX_EVENT_BYTES, SLOTS as u32) < MAX_QUEUE_BYTES {
        finish(false, b"bad config")
    }
    let Ok(machine) = Machine::<SLOTS>::new(CONFIG, 0x5eed) else {
        finish(false, b"bad config")
    };
    let Some(buf) = cortex_m::singleton!(: [u8; BATCH_BYTES] = [0; BATCH_BYTES]) else {
        finish(false, b"taken")
    };
    let transport = SerialTransport::new(link);
    let Ok(driver) = Driver::new(machine, queue, transport, buf, Tally) else {
        finish(false, b"buffer too small")
    };
    let Some(device) = cortex_m::singleton!(: Device = driver) else {
        finish(false, b"taken")
    };
    run(device)
}

fn run(device: &mut Device) -> ! {
    if device.start(clock::now()).is_err() {
        finish(false, b"restore failed");
    }
    let k = kept();
    let boot = k.boot.load(Relaxed);
    // This boot's events; `tracked` is the application's own counter, in
    // RAM, so it starts again at 0 after the reset.
    let quota = if boot == 1 {
        RESET_AT
    } else {
        EVENTS - RESET_AT
    };
    let booted = clock::now();
    let mut payload = [0u8; 192];
    let mut tracked = 0u32;
    let mut next_track = booted.as_millis();
    // The seq the next event is stored under (it never goes back, across
    // resets too): its messageId is made from it.
    let mut seq = device.machine().stats().next_seq;
    let done_before = if boot == 1 { 0 } else { RESET_AT };
    loop {
        let now = clock::now();
        if now.millis_since(booted) > DEADLINE_MS {
            report(device, tracked);
            finish(false, b"deadline passed");
        }
        if tracked < quota && now.as_millis() >= next_track {
            let poison = boot == 1 && tracked == POISON;
            let n = events::track_json(seq, boot, tracked, poison, &mut payload);
            match device.track(now, &payload[..n]) {
                // The payload's messageId names the seq it was stored under.
                Ok(stored) if stored == seq => {
                    seq += 1;
                    tracked += 1;
                    next_track = now.as_millis() + TRACK_EVERY_MS;
                }
                // Back-pressure: try the same event again a little later.
                Err(DriverError::Input(InputError::QueueFull)) => {
                    next_track = now.as_millis() + 50;
                }
                // Failed, or stored under another seq than its messageId's.
                _ => finish(false, b"track failed"),
            }
        }
        // A failed send or read is retried by the machine; keep going.
        let _ = device.poll(now);
        let settled = k.delivered.load(Relaxed) + k.rejected.load(Relaxed);
        let all_settled = tracked == quota && settled == done_before + tracked;
        if tracked == quota && boot == 1 && (device.machine().in_flight().is_some() || all_settled)
        {
            // With a batch in flight (its answer will reach the next boot,
            // for a frame it never sent) and events queued on the flash.
            report(device, tracked);
            SCB::sys_reset();
        }
        if all_settled {
            break;
        }
    }
    report(device, tracked);
    // run.sh checks on the collector that the poison event was the one
    // rejected, and that every other event arrived once (none dropped).
    let good =
        boot == 2 && k.delivered.load(Relaxed) == EVENTS - 1 && k.rejected.load(Relaxed) == 1;
    finish(good, if good { b"ok" } else { b"wrong tally" })
}

/// One line on the host's stdout.
fn report(device: &Device, tracked: u32) {
    let link = device.transport().stats();
    let k = kept();
    let fields: [(&[u8], u32); 6] = [
        (b" boot=", k.boot.load(Relaxed)),
        (b" tracked=", tracked),
        (b" delivered=", k.delivered.load(Relaxed)),
        (b" rejected=", k.rejected.load(Relaxed)),
        (b" batches_sent=", link.batches_sent),
        (b" stale_answers=", link.stale_answers),
    ];
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(b"outbox-firmware:");
        for (name, value) in fields {
            let _ = out.write_all(name);
            let _ = out.write_all(events::decimal(value, &mut [0; 10]));
        }
        let _ = out.write_all(b"\n");
    }
}

/// Print the verdict and leave QEMU with its exit code.
fn finish(ok: bool, why: &[u8]) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(b"outbox-firmware: ");
        let _ = out.write_all(if ok { b"PASS " } else { b"FAIL " });
        let _ = out.write_all(why);
        let _ = out.write_all(b"\n");
    }
    loop {
        debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    }
}
