//! # outbox-ffi-embedded
//!
//! The C ABI over outbox's no_std core and NOR-flash queue, for C firmware:
//! a `thumbv7em-none-eabihf` staticlib (`liboutbox_embedded.a`) and its
//! header `include/outbox_embedded.h`, generated from this crate by cbindgen
//! and checked in (the host workspace's `ffi/tests/header.rs`
//! fails when it is stale).
//!
//! It is a thin layer: the machine, the driver, the flash queue and the
//! serial framing are `outbox-core` and `outbox-embedded`, the same code
//! the Rust firmware runs. What it adds is the board behind C callbacks
//! (flash read/program/erase, UART write and non-blocking read, a 64-bit
//! millisecond clock, notifications) and C-shaped entry points.
//!
//! Rules every function keeps (as the std C ABI in `ffi/` does):
//! - the device is an `OutboxDevice` the C side allocates (a static: no
//!   allocator here), opened by `outbox_device_open`;
//! - every pointer argument may be NULL: the answer is then
//!   `OUTBOX_DEVICE_STATUS_NULL_ARGUMENT`, never a crash;
//! - every failure is an `OutboxDeviceStatus` code, documented and stable;
//! - nothing unwinds: the library is built with `panic = "abort"`, and a
//!   panic (a bug) calls the hook from `outbox_device_set_panic_hook`,
//!   then halts;
//! - callbacks are called only from inside `outbox_device_open`, `_track`
//!   and `_poll`, on the caller's stack, and may not call back into the
//!   device (`OUTBOX_DEVICE_STATUS_BUSY`). Unlike the std ABI, the board
//!   *is* callbacks: a firmware has no threads to poll from.
//!
//! One device per `OutboxDevice`; calls on one device from an interrupt
//! while the main loop is inside another are refused (`BUSY`), never run.

#![no_std]
// The entry points are C functions: their pointer contract is in the header
// (NULL or valid), and every pointer is NULL-checked before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod abi;
mod device;
mod nor;
mod notes;
mod panic;
mod uart;

pub use abi::{
    OutboxDeviceConfig, OutboxDeviceIo, OutboxDeviceNote, OutboxDeviceOverflow, OutboxDeviceStats,
    OutboxDeviceStatus, OutboxDropReason, OutboxHaltReason, OutboxNoteKind, OutboxRejectReason,
};
pub use device::{OutboxDevice, OUTBOX_DEVICE_SLOTS, OUTBOX_DEVICE_WORDS};
pub use nor::{OUTBOX_NOR_ERASE_BYTES, OUTBOX_NOR_WRITE_BYTES};
pub use panic::{outbox_device_set_panic_hook, OutboxPanicHook};

use device::{status, with, Inner};

/// Open the device at `dev` (zeroed memory, or a device opened before,
/// which is then closed and opened again): open the flash queue on the
/// flash behind `io` (restoring every event a previous boot left there),
/// and start. `batch_buf` (`batch_buf_len` bytes) holds one batch while it
/// is sent: it, `dev` and `io.ctx` must stay valid and untouched while the
/// device is open (statics). `config` and `io` are copied.
///
/// Returns `OK`, `NULL_ARGUMENT` (a pointer or a required callback is NULL),
/// `BUSY`, `INVALID_CONFIG`, `BUFFER_TOO_SMALL`, `FLASH_OPEN` or `STORAGE`;
/// on failure the device is not open.
#[no_mangle]
pub extern "C" fn outbox_device_open(
    dev: *mut OutboxDevice,
    config: *const OutboxDeviceConfig,
    io: *const OutboxDeviceIo,
    batch_buf: *mut u8,
    batch_buf_len: usize,
) -> OutboxDeviceStatus {
    if dev.is_null() || batch_buf.is_null() {
        return OutboxDeviceStatus::NullArgument;
    }
    // A slice may not span more than isize::MAX bytes.
    if isize::try_from(batch_buf_len).is_err() {
        return OutboxDeviceStatus::InvalidConfig;
    }
    // SAFETY: NULL or valid (the header's contract); copied out.
    let (Some(config), Some(io)) = (unsafe { config.as_ref() }, unsafe { io.as_ref() }) else {
        return OutboxDeviceStatus::NullArgument;
    };
    // SAFETY: `dev` and `batch_buf` are valid for as long as the device is
    // open (the header's contract).
    unsafe { device::open(dev, config, io, batch_buf, batch_buf_len) }
}

/// Track one event: `payload` (`len` bytes, the event's JSON) is stored on
/// the flash before this returns `OK`, and uploaded by later polls. On `OK`
/// `*out_seq` (may be NULL) is the sequence number it was stored under:
/// the `next_seq` of `outbox_device_stats` just before.
///
/// Any failure means the event was not stored: `QUEUE_FULL` (track it
/// again later), `INVALID_EVENT` (too large), `STORAGE`, `REFUSED`, or
/// `NULL_ARGUMENT`, `NOT_OPEN`, `BUSY`.
#[no_mangle]
pub extern "C" fn outbox_device_track(
    dev: *mut OutboxDevice,
    payload: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxDeviceStatus {
    if payload.is_null() {
        return OutboxDeviceStatus::NullArgument;
    }
    if isize::try_from(len).is_err() {
        return OutboxDeviceStatus::InvalidEvent;
    }
    // SAFETY: `len` readable bytes at `payload` (the header's contract).
    let payload = unsafe { core::slice::from_raw_parts(payload, len) };
    let track = |d: &mut Inner| {
        let now = d.now();
        match d.driver.track(now, payload) {
            Ok(seq) => {
                // SAFETY: NULL or writable (the header's contract).
                if let Some(out) = unsafe { out_seq.as_mut() } {
                    *out = seq;
                }
                OutboxDeviceStatus::Ok
            }
            Err(e) => status(e),
        }
    };
    // SAFETY: `dev` is NULL or a device (the header's contract).
    unsafe { with(dev, track) }
}

/// Do what is due: take the gateway's answer if it came, fire timers,
/// send the next batch. Call it often (every pass of the main loop, or at
/// `outbox_device_poll_timeout` and when the UART received bytes); it never
/// waits for the gateway. A failure is retried by the device itself:
/// `STORAGE` or `TRANSPORT` are for logging. Also `NOT_OPEN`, `BUSY`,
/// `NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn outbox_device_poll(dev: *mut OutboxDevice) -> OutboxDeviceStatus {
    // SAFETY: `dev` is NULL or a device (the header's contract).
    unsafe {
        with(dev, |d| {
            let now = d.now();
            d.driver
                .poll(now)
                .map_or_else(status, |()| OutboxDeviceStatus::Ok)
        })
    }
}

/// When `outbox_device_poll` is next due for a timer, in the clock's
/// milliseconds, in `*out_ms`: `OK`, or `EMPTY` when nothing is due (poll
/// again when the UART receives bytes or after a track).
#[no_mangle]
pub extern "C" fn outbox_device_poll_timeout(
    dev: *mut OutboxDevice,
    out_ms: *mut u64,
) -> OutboxDeviceStatus {
    if out_ms.is_null() {
        return OutboxDeviceStatus::NullArgument;
    }
    let due = |d: &mut Inner| match d.driver.poll_timeout() {
        Some(at) => {
            // SAFETY: non-NULL and writable (the header's contract).
            unsafe { *out_ms = at.as_millis() };
            OutboxDeviceStatus::Ok
        }
        None => OutboxDeviceStatus::Empty,
    };
    // SAFETY: `dev` is NULL or a device (the header's contract).
    unsafe { with(dev, due) }
}

/// The device's counters since it was opened, into `*out`.
#[no_mangle]
pub extern "C" fn outbox_device_stats(
    dev: *mut OutboxDevice,
    out: *mut OutboxDeviceStats,
) -> OutboxDeviceStatus {
    if out.is_null() {
        return OutboxDeviceStatus::NullArgument;
    }
    let read = |d: &mut Inner| {
        let s = d.driver.machine().stats();
        let link = d.driver.transport().stats();
        let stats = OutboxDeviceStats {
            next_seq: s.next_seq,
            pending_events: s.pending_events,
            in_flight_events: s.in_flight_events,
            delivered: s.delivered,
            rejected: s.rejected,
            dropped: s.dropped_overflow
                + s.dropped_max_attempts
                + s.dropped_not_stored
                + s.dropped_damaged,
            retries: s.retries,
            batches_sent: link.batches_sent,
            stale_answers: link.stale_answers,
            bad_frames: link.bad_frames,
            halted: s.halted,
        };
        // SAFETY: non-NULL and writable (the header's contract).
        unsafe { *out = stats };
        OutboxDeviceStatus::Ok
    };
    // SAFETY: `dev` is NULL or a device (the header's contract).
    unsafe { with(dev, read) }
}
