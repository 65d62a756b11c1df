//! The device's state inside the C side's opaque `OutboxDevice`: the
//! core's driver over the flash queue and the serial transport, and the
//! flag that keeps a callback from re-entering it.
//!
//! The C side owns the memory (a static, usually), so the library needs no
//! allocator; [`State`] must fit [`OUTBOX_DEVICE_WORDS`] words, which a
//! compile-time check holds it to.

use core::cell::UnsafeCell;
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;

use outbox_core::{Config, Driver, DriverError, InputError, Instant, Machine, Overflow};
use outbox_embedded::flash::FlashQueue;
use outbox_embedded::serial::SerialTransport;

use crate::abi::{
    OutboxDeviceConfig, OutboxDeviceIo, OutboxDeviceOverflow, OutboxDeviceStatus, OutboxNowMs,
};
use crate::nor::CallbackNor;
use crate::notes::Notes;
use crate::uart::CallbackUart;

/// Pending slots of the machine: the most events queued (and in a batch).
pub const OUTBOX_DEVICE_SLOTS: u32 = 256;
/// The size of `OutboxDevice`, in 8-byte words.
pub const OUTBOX_DEVICE_WORDS: usize = 416;

/// Opaque storage for one device, allocated by the C side (a static):
/// zeroed before `outbox_device_open` (statics are), and never moved or
/// copied while open.
#[repr(C)]
pub struct OutboxDevice {
    opaque: [u64; OUTBOX_DEVICE_WORDS],
}

pub type Device = Driver<
    'static,
    FlashQueue<CallbackNor>,
    SerialTransport<CallbackUart>,
    Notes,
    { OUTBOX_DEVICE_SLOTS as usize },
>;

/// Marks a `State` written by `outbox_device_open` (zeroed memory is not open).
const OPEN: u32 = 0x0b0c_0de5;

#[repr(C)]
pub struct State {
    magic: AtomicU32,
    /// Set while a call is inside the driver (and so in a callback).
    busy: AtomicBool,
    inner: UnsafeCell<Inner>,
}

/// What a call works on.
pub struct Inner {
    pub driver: Device,
    ctx: *mut core::ffi::c_void,
    now_ms: OutboxNowMs,
}

const _: () = assert!(size_of::<State>() <= size_of::<OutboxDevice>());
const _: () = assert!(align_of::<State>() <= align_of::<OutboxDevice>());
// And not much larger: the C side's RAM.
const _: () = assert!(size_of::<OutboxDevice>() - size_of::<State>() < 256);

impl Inner {
    /// Now, from the C clock.
    pub fn now(&self) -> Instant {
        // SAFETY: the callback's contract (outbox_embedded.h). Never NULL:
        // `open` refuses that.
        Instant::from_millis(self.now_ms.map_or(0, |f| unsafe { f(self.ctx) }))
    }
}

/// The status for a driver error.
pub fn status<SE, TE>(e: DriverError<SE, TE>) -> OutboxDeviceStatus {
    use OutboxDeviceStatus as S;
    match e {
        DriverError::Input(InputError::QueueFull) => S::QueueFull,
        DriverError::Input(InputError::TooLarge { .. }) => S::InvalidEvent,
        DriverError::Store(_)
        | DriverError::NotStored
        | DriverError::ShortRead { .. }
        | DriverError::Malformed { .. } => S::Storage,
        DriverError::Transport(_) => S::Transport,
        DriverError::BufferTooSmall { .. } => S::BufferTooSmall,
        DriverError::NotStarted => S::NotOpen,
        _ => S::Refused,
    }
}

/// The core's configuration for `c`, the queue's flash and a batch buffer
/// of `buf_len` bytes.
fn config(
    c: &OutboxDeviceConfig,
    queue: &FlashQueue<CallbackNor>,
    buf_len: usize,
) -> Option<Config> {
    let or = |v: u32, default: u32| if v == 0 { default } else { v };
    let events = match c.max_queue_events {
        0 => OUTBOX_DEVICE_SLOTS,
        n => n.min(OUTBOX_DEVICE_SLOTS),
    };
    let max_event = or(c.max_event_bytes, 256);
    let overflow = match c.overflow {
        x if x == OutboxDeviceOverflow::RejectNew as i32 => Overflow::RejectNew,
        x if x == OutboxDeviceOverflow::DropOldest as i32 => Overflow::DropOldest,
        _ => return None,
    };
    let ms = |v: u32, default: u32| Duration::from_millis(u64::from(or(v, default)));
    Config::builder()
        .max_queue_events(events)
        .max_queue_bytes(queue.max_queue_bytes(max_event, events))
        .max_event_bytes(max_event)
        .max_batch_events(or(c.max_batch_events, 16))
        .max_batch_bytes(or(
            c.max_batch_bytes,
            u32::try_from(buf_len).unwrap_or(u32::MAX),
        ))
        .overflow(overflow)
        .retry_backoff(ms(c.retry_base_ms, 1000), ms(c.retry_cap_ms, 32_000))
        .request_timeout(ms(c.request_timeout_ms, 5000))
        .build()
        .ok()
}

/// Open the flash queue, build the driver and start it; the state goes to
/// `dev` only when all of that succeeded.
///
/// # Safety
/// `dev` points to an `OutboxDevice` not in use by another call; `buf`
/// to `buf_len` bytes that stay valid, and are used by nothing else, while
/// the device is open.
pub unsafe fn open(
    dev: *mut OutboxDevice,
    c: &OutboxDeviceConfig,
    io: &OutboxDeviceIo,
    buf: *mut u8,
    buf_len: usize,
) -> OutboxDeviceStatus {
    use OutboxDeviceStatus as S;
    let state = dev.cast::<State>();
    // SAFETY: `dev` is valid and aligned for `State` (the checks above);
    // the marker is atomic, so a shared reference is fine while another
    // call (a callback's caller) holds `inner`, and any bits are a u32.
    let magic = unsafe { &(*state).magic };
    if magic.load(Ordering::Acquire) == OPEN {
        // SAFETY: open, so `busy` was written as a bool.
        if unsafe { &(*state).busy }.load(Ordering::Acquire) {
            return S::Busy;
        }
        // Closed from here on: a callback's call into it is refused, and a
        // failed open leaves it closed.
        magic.store(0, Ordering::Release);
    }
    let (Some(nor), Some(uart), Some(_)) = (
        CallbackNor::new(io, c.nor_bytes),
        CallbackUart::new(io),
        io.now_ms,
    ) else {
        return S::NullArgument;
    };
    if c.nor_bytes == 0 {
        return S::InvalidConfig;
    }
    let queue = match FlashQueue::open(nor, 0..c.nor_bytes) {
        Ok(q) => q,
        Err(outbox_embedded::flash::OpenError::Geometry(_)) => return S::InvalidConfig,
        Err(_) => return S::FlashOpen,
    };
    let Some(config) = config(c, &queue, buf_len) else {
        return S::InvalidConfig;
    };
    let Ok(machine) = Machine::new(config, u64::from(c.jitter_seed)) else {
        return S::InvalidConfig;
    };
    // SAFETY: the caller's promise on `buf`.
    let buf: &'static mut [u8] = unsafe { core::slice::from_raw_parts_mut(buf, buf_len) };
    let transport = SerialTransport::new(uart);
    let notes = Notes::new(io.ctx, io.note);
    let Ok(driver) = Device::new(machine, queue, transport, buf, notes) else {
        return S::BufferTooSmall;
    };
    let mut inner = Inner {
        driver,
        ctx: io.ctx,
        now_ms: io.now_ms,
    };
    let now = inner.now();
    if let Err(e) = inner.driver.start(now) {
        return status(e);
    }
    // SAFETY: `dev` is valid for a `State` and no call is using it (`busy`
    // is clear); whatever was there before owns nothing (no drop needed).
    unsafe {
        core::ptr::write(
            state,
            State {
                magic: AtomicU32::new(OPEN),
                busy: AtomicBool::new(false),
                inner: UnsafeCell::new(inner),
            },
        )
    };
    S::Ok
}

/// Run `f` on the open device at `dev`, unless it is NULL, not open, or
/// already inside a call.
///
/// # Safety
/// `dev` is NULL or points to an `OutboxDevice` (the header's contract).
pub unsafe fn with(
    dev: *mut OutboxDevice,
    f: impl FnOnce(&mut Inner) -> OutboxDeviceStatus,
) -> OutboxDeviceStatus {
    if dev.is_null() {
        return OutboxDeviceStatus::NullArgument;
    }
    // SAFETY: non-NULL and an `OutboxDevice`, so valid and aligned for a
    // `State`; only its atomics are read through this shared reference.
    let state = unsafe { &*dev.cast::<State>() };
    if state.magic.load(Ordering::Acquire) != OPEN {
        return OutboxDeviceStatus::NotOpen;
    }
    if state.busy.swap(true, Ordering::Acquire) {
        return OutboxDeviceStatus::Busy;
    }
    // SAFETY: `busy` was clear and is now set by this call: no other
    // reference to `inner` exists until it is cleared below.
    let result = f(unsafe { &mut *state.inner.get() });
    state.busy.store(false, Ordering::Release);
    result
}
