//! The types that cross the C boundary: status codes, the configuration,
//! the callbacks, stats and notifications. `include/outbox_embedded.h` is
//! generated from these (and the functions in `lib.rs`) by cbindgen.

use core::ffi::c_void;

/// What every function returns. `OUTBOX_DEVICE_STATUS_OK` (0) is success;
/// every other value is documented here and stable (never reused).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxDeviceStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument (or callback) was NULL.
    NullArgument = 1,
    /// The device is not open (`outbox_device_open` has not succeeded on
    /// this memory).
    NotOpen = 2,
    /// Called from inside one of this device's callbacks (a callback may
    /// not call back into the device); nothing was done.
    Busy = 3,
    /// The configuration is refused (a flash size that is not whole pages
    /// or under two pages, a limit the core refuses).
    InvalidConfig = 4,
    /// The batch buffer cannot hold one largest event and its envelope.
    BufferTooSmall = 5,
    /// The flash queue could not be opened: a flash callback failed, or
    /// the flash holds a queue of another format version (left untouched).
    FlashOpen = 6,
    /// The event is larger than `max_event_bytes` (or than one flash
    /// record holds); nothing was stored.
    InvalidEvent = 7,
    /// The queue is full (the overflow policy is "reject new"): track the
    /// event again later.
    QueueFull = 8,
    /// The flash failed: for a track, the event was not stored; otherwise
    /// the queue reads its state back and the machine retries.
    Storage = 9,
    /// The UART write callback failed: the batch is retried after a backoff.
    Transport = 10,
    /// `outbox_device_poll_timeout`: nothing is due (idle).
    Empty = 11,
    /// The core refused an input (for example sequence numbers used up).
    Refused = 12,
}

/// The overflow policy, for `OutboxDeviceConfig.overflow`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxDeviceOverflow {
    /// A full queue refuses new events (`OUTBOX_DEVICE_STATUS_QUEUE_FULL`);
    /// the firmware tracks them again later. The default.
    RejectNew = 0,
    /// A full queue drops its oldest events to make room (reported as
    /// `OUTBOX_NOTE_KIND_DROPPED`).
    DropOldest = 1,
}

/// The configuration for `outbox_device_open`. Zero means the default for
/// every field but `nor_bytes`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OutboxDeviceConfig {
    /// Bytes of flash the `nor_*` callbacks address, from offset 0: a whole
    /// number of `OUTBOX_NOR_ERASE_BYTES` pages, at least two. Required.
    pub nor_bytes: u32,
    /// Largest event accepted (0: 256; at most what one flash page holds).
    pub max_event_bytes: u32,
    /// At most this many events queued (0 or above: `OUTBOX_DEVICE_SLOTS`).
    /// The queue's byte limit follows from the flash.
    pub max_queue_events: u32,
    /// Most events in one batch (0: 16; at most `OUTBOX_DEVICE_SLOTS`).
    pub max_batch_events: u32,
    /// Most bytes in one batch, envelope included (0: the batch buffer's
    /// length).
    pub max_batch_bytes: u32,
    /// First retry backoff in milliseconds, doubling (0: 1000).
    pub retry_base_ms: u32,
    /// Longest retry backoff in milliseconds (0: 32000).
    pub retry_cap_ms: u32,
    /// No answer from the gateway by then fails the batch (0: 5000 ms).
    pub request_timeout_ms: u32,
    /// One of `OutboxDeviceOverflow`.
    pub overflow: i32,
    /// Seed of the retry jitter; give each device its own (its unique id).
    pub jitter_seed: u32,
}

/// Read `len` bytes of flash at `offset` into `buf`; 0 on success, any
/// other value is a failure.
pub type OutboxNorRead =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *mut u8, len: usize) -> i32>;
/// Program `len` bytes at `offset` from `buf` (both multiples of
/// `OUTBOX_NOR_WRITE_BYTES`; the bytes were erased and are written once);
/// 0 on success, any other value is a failure.
pub type OutboxNorWrite =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *const u8, len: usize) -> i32>;
/// Erase `[from, to)` to 0xFF (both multiples of `OUTBOX_NOR_ERASE_BYTES`);
/// 0 on success, any other value is a failure.
pub type OutboxNorErase = Option<unsafe extern "C" fn(ctx: *mut c_void, from: u32, to: u32) -> i32>;
/// Write all `len` bytes at `buf` to the UART, waiting as needed; 0 once
/// written, any other value is a failure.
pub type OutboxUartWrite =
    Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *const u8, len: usize) -> i32>;
/// Without waiting, move up to `cap` received bytes into `buf`; returns how
/// many (0: none came), or a negative value on failure.
pub type OutboxUartRead =
    Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, cap: usize) -> i32>;
/// Milliseconds from any fixed point (boot), never going back and never
/// wrapping: 64 bits.
pub type OutboxNowMs = Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>;
/// Called with each notification (may be NULL in `OutboxDeviceIo`). The
/// note is valid during the call only.
pub type OutboxNoteFn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, note: *const OutboxDeviceNote)>;

/// The board behind the device: every callback gets `ctx`. All are
/// required but `note`. They are called from inside `outbox_device_open`,
/// `outbox_device_track` and `outbox_device_poll` only, and must not call
/// back into the device (that answers `OUTBOX_DEVICE_STATUS_BUSY`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OutboxDeviceIo {
    /// Passed to every callback as it is.
    pub ctx: *mut c_void,
    /// Read the flash.
    pub nor_read: OutboxNorRead,
    /// Program the flash.
    pub nor_write: OutboxNorWrite,
    /// Erase flash pages.
    pub nor_erase: OutboxNorErase,
    /// Send bytes to the gateway.
    pub uart_write: OutboxUartWrite,
    /// Take bytes the gateway sent, without waiting.
    pub uart_read: OutboxUartRead,
    /// The clock.
    pub now_ms: OutboxNowMs,
    /// Notifications (NULL: none; the stats count them too).
    pub note: OutboxNoteFn,
}

/// What a notification says, `OutboxDeviceNote.kind`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxNoteKind {
    /// The server has the events `first..=last`.
    Delivered = 0,
    /// The events `first..=last` left the queue undelivered; `reason` is an
    /// `OutboxDropReason`.
    Dropped = 1,
    /// The event `first` (= `last`) is refused for good; `status` is the
    /// HTTP status (0: a damaged record), `reason` an `OutboxRejectReason`.
    Rejected = 2,
    /// Uploads stopped until the next open; `status` is the HTTP status (0
    /// for storage), `reason` an `OutboxHaltReason`.
    Halted = 3,
    /// An upload failed; the next waits until `retry_at_ms`.
    RetryScheduled = 4,
}

/// Why events were dropped (`OUTBOX_NOTE_KIND_DROPPED`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxDropReason {
    /// The queue was full (policy "drop oldest").
    Overflow = 0,
    /// Never stored (the flash failed).
    NotStored = 1,
    /// Their records on flash are damaged.
    Damaged = 2,
    /// Any other reason.
    Other = 3,
}

/// Why an event was refused (`OUTBOX_NOTE_KIND_REJECTED`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxRejectReason {
    /// The server answered 400 to it alone.
    Poison = 0,
    /// The server answered 413 to it alone.
    TooLarge = 1,
    /// Its record on flash is damaged; it was never sent.
    Malformed = 2,
    /// Any other reason.
    Other = 3,
}

/// Why uploads halted (`OUTBOX_NOTE_KIND_HALTED`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxHaltReason {
    /// A status retrying cannot fix (401, 403, 404, ...).
    Status = 0,
    /// Too many single events rejected in a row.
    RejectionStorm = 1,
    /// Delivered events could not be deleted from the flash.
    Storage = 2,
    /// Any other reason.
    Other = 3,
}

/// One notification, for `OutboxDeviceIo.note`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDeviceNote {
    /// One of `OutboxNoteKind`.
    pub kind: i32,
    /// The reason, per `kind` (0 when it has none).
    pub reason: i32,
    /// The first event concerned (sequence number).
    pub first: u64,
    /// The last event concerned.
    pub last: u64,
    /// The HTTP status, for `REJECTED` and `HALTED`.
    pub status: u32,
    /// Consecutive failed attempts, for `RETRY_SCHEDULED`.
    pub attempt: u32,
    /// When the next attempt may start, for `RETRY_SCHEDULED`.
    pub retry_at_ms: u64,
}

/// The device's counters since it was opened, for `outbox_device_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDeviceStats {
    /// The sequence number the next tracked event is stored under. It never
    /// goes back, across resets and power cuts too: make messageIds from it.
    pub next_seq: u64,
    /// Events stored and not yet delivered, dropped or rejected.
    pub pending_events: u32,
    /// Events in the batch awaiting the gateway's answer (0: none in flight).
    pub in_flight_events: u32,
    /// Events the server acknowledged.
    pub delivered: u64,
    /// Events the server refused for good.
    pub rejected: u64,
    /// Events that left the queue undelivered.
    pub dropped: u64,
    /// Failed upload attempts.
    pub retries: u64,
    /// Batch frames written to the UART.
    pub batches_sent: u32,
    /// Answers about a batch no longer in flight (after a reset), ignored.
    pub stale_answers: u32,
    /// Frames from the gateway that could not be read.
    pub bad_frames: u32,
    /// Uploads are halted (see the `HALTED` notification).
    pub halted: bool,
}
