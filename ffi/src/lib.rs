//! # outbox-ffi
//!
//! The C ABI over outbox's std [`Client`]: the door for C, Dart (`dart:ffi`),
//! Swift and Kotlin/JNI. The header, `include/outbox.h`, is generated from
//! this file by cbindgen and checked in (`tests/header.rs` fails when it is
//! stale; `OUTBOX_BLESS=1` rewrites it).
//!
//! Rules every function keeps:
//! - a client is an opaque `OutboxClient *` from `outbox_open` or
//!   `outbox_open_json`, released with `outbox_free` (which also closes it);
//! - every pointer argument may be NULL: the answer is then
//!   `OUTBOX_STATUS_NULL_ARGUMENT`, never a crash;
//! - no panic unwinds into the caller: each entry runs under
//!   `catch_unwind`, and a panic becomes `OUTBOX_STATUS_PANIC`;
//! - every failure is an [`OutboxStatus`] code, and its text is kept per
//!   thread for `outbox_last_error`;
//! - events, configs, notifications and stats cross as UTF-8 JSON bytes
//!   (pointer + length in, copied into a caller's buffer out);
//! - no callback is ever called: notifications are polled.
//!
//! Every function may be called from any thread; a client may be shared
//! between threads (calls on it are serialised where they must be).

// The entry points are C functions: their pointer contract is in the header
// (NULL or valid), and every pointer is NULL-checked before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use outbox_std::{
    Client, ClientError, Event, EventType, FlushError, FlushMode, FlushReport, Lifecycle,
    NetworkKind, Notification, Notifications, TrackError, UploadPolicy,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// What every function returns. `OUTBOX_STATUS_OK` (0) is success; every
/// other value is documented here and stable (values are never reused).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A string or JSON argument is not valid UTF-8.
    InvalidUtf8 = 2,
    /// A JSON argument does not parse, or has the wrong shape (for an
    /// event: not an object, a field of the wrong type).
    InvalidJson = 3,
    /// The configuration is refused (unknown field, bad value, no path, no
    /// endpoint, a limit the core refuses).
    InvalidConfig = 4,
    /// The database could not be opened, or the client could not start.
    OpenFailed = 5,
    /// The event is refused by Segment's rules (no userId or anonymousId,
    /// a track without a name, too large, ...); nothing was stored.
    InvalidEvent = 6,
    /// The queue is full and the overflow policy is "reject new".
    QueueFull = 7,
    /// The store failed: the event (or the request) was not stored.
    Storage = 8,
    /// The client was closed (`outbox_close`), or its worker stopped.
    Closed = 9,
    /// `outbox_flush_and_wait` timed out; the report says what is pending.
    TimedOut = 10,
    /// Uploads are halted (a status retrying cannot fix); see the
    /// notifications, and `outbox_resume`.
    Halted = 11,
    /// The caller's buffer is too small; `*out_len` says how many bytes
    /// are needed (with the terminating NUL). Nothing was consumed.
    BufferTooSmall = 12,
    /// `outbox_poll`: no notification is waiting.
    Empty = 13,
    /// The core refused a runtime input (for example a flush period of 0).
    Refused = 14,
    /// An integer argument is not one of the documented values.
    InvalidArgument = 15,
    /// A panic inside the library was caught; the call did nothing
    /// reliable. Please report it with `outbox_last_error`'s text.
    Panic = 16,
}

/// Flush modes for `OutboxConfig.flush_mode` and `outbox_set_flush_mode`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxFlushMode {
    /// Upload as soon as events are stored (the default).
    Immediate = 0,
    /// Upload every flush period, or when the threshold is reached.
    Period = 1,
    /// Upload when the app goes to the background or terminates.
    AppClose = 2,
    /// Upload only on `outbox_flush`.
    Manual = 3,
}

/// Network kinds for `outbox_set_network`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxNetworkKind {
    /// Wi-Fi, Ethernet: data costs nothing per byte.
    Unmetered = 0,
    /// Cellular, a hotspot: data is paid for per byte.
    Metered = 1,
    /// The platform cannot tell (what the client assumes until told).
    Unknown = 2,
}

/// App lifecycle states for `outbox_lifecycle`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxLifecycle {
    /// The app is in the foreground.
    Foreground = 0,
    /// The app went to the background.
    Background = 1,
    /// The app is about to terminate.
    Terminate = 2,
}

/// A small configuration for `outbox_open`. Zero (or NULL) means the
/// default for every field but `path` and `endpoint`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OutboxConfig {
    /// The database file (UTF-8, NUL-terminated). Required.
    pub path: *const c_char,
    /// The collector's base URL, e.g. "https://api.segment.io". Required.
    pub endpoint: *const c_char,
    /// The write key (may be NULL: no Authorization header).
    pub write_key: *const c_char,
    /// One of `OutboxFlushMode`.
    pub flush_mode: i32,
    /// The flush period in milliseconds (0: default).
    pub flush_period_ms: u32,
    /// At most this many events queued (0: default, 1000).
    pub max_queue_events: u32,
    /// At most this many bytes queued (0: default).
    pub max_queue_bytes: u64,
    /// One upload's time limit in milliseconds (0: default).
    pub request_timeout_ms: u32,
}

/// What a flush did, for `outbox_flush_and_wait`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxFlushReport {
    /// Events the server acknowledged during the wait.
    pub delivered: u64,
    /// Events dropped during the wait.
    pub dropped: u64,
    /// Events rejected during the wait.
    pub rejected: u64,
    /// Events still queued at the end.
    pub pending: u32,
}

/// An open client (opaque). Made by `outbox_open` / `outbox_open_json`,
/// released by `outbox_free`.
pub struct OutboxClient {
    client: RwLock<Option<Client>>,
    notes: Mutex<NoteQueue>,
}

struct NoteQueue {
    rx: Notifications,
    /// A notification a too-small buffer could not take, offered again.
    held: Option<Vec<u8>>,
}

/// The JSON configuration for `outbox_open_json` (unknown fields are refused).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonConfig {
    path: Option<PathBuf>,
    endpoint: Option<String>,
    write_key: Option<String>,
    flush_mode: Option<String>,
    flush_period_ms: Option<u64>,
    flush_threshold: Option<u32>,
    max_queue_events: Option<u32>,
    max_queue_bytes: Option<u64>,
    max_event_bytes: Option<u32>,
    max_batch_events: Option<u32>,
    max_batch_bytes: Option<u32>,
    max_attempts: Option<u32>,
    request_timeout_ms: Option<u64>,
    app_name: Option<String>,
    app_version: Option<String>,
    context: Option<Value>,
    app_build: Option<String>,
    lifecycle_events: Option<bool>,
    sessions: Option<bool>,
    session_timeout_ms: Option<u64>,
    loss_reports: Option<bool>,
    upload_on: Option<String>,
    max_event_age_ms: Option<u64>,
}

/// A failure on its way out: the code, and the text for `outbox_last_error`.
#[derive(Debug)]
pub struct Fail {
    status: OutboxStatus,
    message: String,
}

fn fail(status: OutboxStatus, message: impl Into<String>) -> Fail {
    Fail {
        status,
        message: message.into(),
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: &str) {
    // try_with: during thread teardown the slot may be gone; never panic.
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
            e.push_str(message);
        }
    });
}

/// Runs one entry point: a panic becomes [`OutboxStatus::Panic`], an error
/// its code; both leave their text for `outbox_last_error`. Every `extern`
/// function of this crate goes through it (public for the tests).
pub fn guard(f: impl FnOnce() -> Result<OutboxStatus, Fail>) -> OutboxStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("panic inside outbox (caught): {what}"));
            OutboxStatus::Panic
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn handle<'a>(client: *const OutboxClient) -> Result<&'a OutboxClient, Fail> {
    // SAFETY: the caller passes NULL or a pointer from `outbox_open*` that
    // it has not freed (the documented contract).
    unsafe { client.as_ref() }.ok_or_else(|| fail(OutboxStatus::NullArgument, "client is NULL"))
}

fn running(h: &OutboxClient) -> Result<Client, Fail> {
    h.client
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| fail(OutboxStatus::Closed, "the client is closed"))
}

fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if ptr.is_null() {
        return Err(fail(OutboxStatus::NullArgument, format!("{what} is NULL")));
    }
    // SAFETY: the caller promises `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

fn c_str(ptr: *const c_char, what: &str) -> Result<Option<String>, Fail> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map(|s| Some(s.to_owned()))
        .map_err(|_| fail(OutboxStatus::InvalidUtf8, format!("{what} is not UTF-8")))
}

/// Copies `data` and a NUL into `buf`; `*out_len` gets `data.len()` on
/// success, or the size needed (with the NUL) when `cap` is too small.
fn copy_out(data: &[u8], buf: *mut u8, cap: usize, out_len: *mut usize) -> OutboxStatus {
    let need = data.len() + 1;
    if buf.is_null() || cap < need {
        if !out_len.is_null() {
            // SAFETY: out_len is NULL or writable (contract).
            unsafe { *out_len = need };
        }
        return OutboxStatus::BufferTooSmall;
    }
    // SAFETY: buf has `cap >= need` writable bytes (contract).
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        *buf.add(data.len()) = 0;
        if !out_len.is_null() {
            *out_len = data.len();
        }
    }
    OutboxStatus::Ok
}

fn flush_mode(s: &str) -> Option<FlushMode> {
    Some(match s {
        "immediate" => FlushMode::Immediate,
        "period" => FlushMode::Period,
        "app_close" => FlushMode::AppClose,
        "manual" => FlushMode::Manual,
        _ => return None,
    })
}

fn flush_mode_code(code: i32) -> Result<FlushMode, Fail> {
    Ok(match code {
        0 => FlushMode::Immediate,
        1 => FlushMode::Period,
        2 => FlushMode::AppClose,
        3 => FlushMode::Manual,
        _ => {
            return Err(fail(
                OutboxStatus::InvalidArgument,
                format!("flush mode {code} is not an OutboxFlushMode"),
            ))
        }
    })
}

fn open(cfg: JsonConfig) -> Result<Box<OutboxClient>, Fail> {
    let bad = |m: &str| fail(OutboxStatus::InvalidConfig, m);
    let path = cfg.path.ok_or_else(|| bad("config: `path` is required"))?;
    let endpoint = cfg
        .endpoint
        .ok_or_else(|| bad("config: `endpoint` is required"))?;
    let mode = match cfg.flush_mode.as_deref() {
        None => None,
        Some(m) => Some(flush_mode(m).ok_or_else(|| {
            bad("config: `flush_mode` must be immediate, period, app_close or manual")
        })?),
    };
    let upload_on = match cfg.upload_on.as_deref() {
        None | Some("any") => UploadPolicy::Any,
        Some("unmetered") => UploadPolicy::Unmetered,
        Some(_) => return Err(bad("config: `upload_on` must be any or unmetered")),
    };
    if let Some(c) = &cfg.context {
        if !c.is_object() {
            return Err(bad("config: `context` must be a JSON object"));
        }
    }
    let mut b = Client::builder()
        .path(path)
        .endpoint(endpoint, cfg.write_key.unwrap_or_default())
        .configure(|mut c| {
            if let Some(m) = mode {
                c = c.flush_mode(m);
            }
            if let Some(ms) = cfg.flush_period_ms {
                c = c.flush_period(Duration::from_millis(ms));
            }
            if cfg.flush_threshold.is_some() {
                c = c.flush_threshold(cfg.flush_threshold);
            }
            if let Some(n) = cfg.max_queue_events {
                c = c.max_queue_events(n);
            }
            if let Some(n) = cfg.max_queue_bytes {
                c = c.max_queue_bytes(n);
            }
            if let Some(n) = cfg.max_event_bytes {
                c = c.max_event_bytes(n);
            }
            if let Some(n) = cfg.max_batch_events {
                c = c.max_batch_events(n);
            }
            if let Some(n) = cfg.max_batch_bytes {
                c = c.max_batch_bytes(n);
            }
            if cfg.max_attempts.is_some() {
                c = c.max_attempts(cfg.max_attempts);
            }
            if let Some(ms) = cfg.request_timeout_ms {
                c = c.request_timeout(Duration::from_millis(ms));
            }
            c.upload_on(upload_on)
        });
    if let Some(c) = cfg.context {
        b = b.context(c);
    }
    if cfg.app_name.is_some() || cfg.app_version.is_some() {
        let name = cfg.app_name.unwrap_or_default();
        b = b.app(name, cfg.app_version.unwrap_or_default());
    }
    if let Some(build) = cfg.app_build {
        b = b.app_build(build);
    }
    if let Some(on) = cfg.lifecycle_events {
        b = b.lifecycle_events(on);
    }
    if cfg.sessions == Some(false) || cfg.session_timeout_ms == Some(0) {
        b = b.sessions(None);
    } else if let Some(ms) = cfg.session_timeout_ms {
        b = b.sessions(Some(Duration::from_millis(ms)));
    }
    if let Some(on) = cfg.loss_reports {
        b = b.loss_reports(on);
    }
    if let Some(ms) = cfg.max_event_age_ms {
        b = b.max_event_age(Duration::from_millis(ms));
    }
    let client = b.build().map_err(|e| {
        use outbox_std::BuildError as B;
        let status = match e {
            B::Open(_) | B::Restore(_) | B::Spawn(_) => OutboxStatus::OpenFailed,
            _ => OutboxStatus::InvalidConfig,
        };
        fail(status, e.to_string())
    })?;
    let rx = client.notifications();
    Ok(Box::new(OutboxClient {
        client: RwLock::new(Some(client)),
        notes: Mutex::new(NoteQueue { rx, held: None }),
    }))
}

fn store_handle(out: *mut *mut OutboxClient, h: Box<OutboxClient>) {
    // SAFETY: `out` was checked non-NULL and is writable (contract).
    unsafe { *out = Box::into_raw(h) };
}

/// Opens a client from an `OutboxConfig`. On success `*out` is the new
/// client; on failure `*out` is set to NULL and the code says why.
#[no_mangle]
pub extern "C" fn outbox_open(
    config: *const OutboxConfig,
    out: *mut *mut OutboxClient,
) -> OutboxStatus {
    guard(|| {
        if out.is_null() {
            return Err(fail(OutboxStatus::NullArgument, "out is NULL"));
        }
        // SAFETY: checked non-NULL; writable (contract).
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: NULL or a readable OutboxConfig (contract).
        let c = unsafe { config.as_ref() }
            .ok_or_else(|| fail(OutboxStatus::NullArgument, "config is NULL"))?;
        let mode = flush_mode_code(c.flush_mode)?;
        let nz = |n: u64| (n != 0).then_some(n);
        let cfg = JsonConfig {
            path: c_str(c.path, "path")?.map(PathBuf::from),
            endpoint: c_str(c.endpoint, "endpoint")?,
            write_key: c_str(c.write_key, "write_key")?,
            flush_mode: Some(
                match mode {
                    FlushMode::Immediate => "immediate",
                    FlushMode::Period => "period",
                    FlushMode::AppClose => "app_close",
                    _ => "manual",
                }
                .into(),
            ),
            flush_period_ms: nz(c.flush_period_ms.into()),
            max_queue_events: (c.max_queue_events != 0).then_some(c.max_queue_events),
            max_queue_bytes: nz(c.max_queue_bytes),
            request_timeout_ms: nz(c.request_timeout_ms.into()),
            ..JsonConfig::default()
        };
        store_handle(out, open(cfg)?);
        Ok(OutboxStatus::Ok)
    })
}

/// Opens a client from a JSON object (`len` bytes at `json`, UTF-8):
/// `path` and `endpoint` (required), `write_key`, `flush_mode`
/// ("immediate", "period", "app_close", "manual"), `flush_period_ms`,
/// `flush_threshold`, `max_queue_events`, `max_queue_bytes`,
/// `max_event_bytes`, `max_batch_events`, `max_batch_bytes`,
/// `max_attempts`, `request_timeout_ms`, `app_name`, `app_version`,
/// `app_build` (the version and build lifecycle events report),
/// `context` (an object merged into every event), `lifecycle_events`
/// (true by default: `Application Installed`/`Updated`/`Opened`/
/// `Backgrounded`), `sessions` (true by default: `session_start`/
/// `session_end`, `context.session_id`), `session_timeout_ms` (60000 by
/// default; 0 also turns sessions off), `loss_reports` (true by default:
/// after a drop the next batch carries one `outbox dropped events` event
/// with counts by reason), `upload_on` ("any", the default, or
/// "unmetered": nothing is uploaded, not even by `outbox_flush`, until
/// `outbox_set_network` reports an unmetered network), `max_event_age_ms`
/// (off by default: an event older than that, by the wall clock since its
/// track, is dropped unsent when its batch is formed, reason `expired`;
/// 0 is refused). Unknown fields are refused. On failure `*out` is NULL.
#[no_mangle]
pub extern "C" fn outbox_open_json(
    json: *const u8,
    len: usize,
    out: *mut *mut OutboxClient,
) -> OutboxStatus {
    guard(|| {
        if out.is_null() {
            return Err(fail(OutboxStatus::NullArgument, "out is NULL"));
        }
        // SAFETY: checked non-NULL; writable (contract).
        unsafe { *out = std::ptr::null_mut() };
        let text = std::str::from_utf8(bytes(json, len, "json")?)
            .map_err(|_| fail(OutboxStatus::InvalidUtf8, "config is not UTF-8"))?;
        let cfg: JsonConfig = serde_json::from_str(text)
            .map_err(|e| fail(OutboxStatus::InvalidConfig, format!("config: {e}")))?;
        store_handle(out, open(cfg)?);
        Ok(OutboxStatus::Ok)
    })
}

fn track_error(e: TrackError) -> Fail {
    let status = match &e {
        TrackError::Invalid(_) => OutboxStatus::InvalidEvent,
        TrackError::QueueFull => OutboxStatus::QueueFull,
        TrackError::NotStored(_) => OutboxStatus::Storage,
        TrackError::Stopped => OutboxStatus::Closed,
        _ => OutboxStatus::Storage,
    };
    fail(status, e.to_string())
}

fn client_error(e: ClientError) -> Fail {
    let status = match &e {
        ClientError::Refused(_) => OutboxStatus::Refused,
        ClientError::Store(_) => OutboxStatus::Storage,
        ClientError::Stopped => OutboxStatus::Closed,
        _ => OutboxStatus::Storage,
    };
    fail(status, e.to_string())
}

fn enqueue(
    client: *const OutboxClient,
    kind: EventType,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
    durable: bool,
    critical: bool,
) -> OutboxStatus {
    guard(|| {
        let h = handle(client)?;
        let text = std::str::from_utf8(bytes(json, len, "json")?)
            .map_err(|_| fail(OutboxStatus::InvalidUtf8, "event is not UTF-8"))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| fail(OutboxStatus::InvalidJson, format!("event: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(fail(OutboxStatus::InvalidJson, "event: not a JSON object"));
        };
        // The function says the type; a different one in the JSON is refused.
        match map.remove("type") {
            None => {}
            Some(Value::String(t)) if t == kind.as_str() => {}
            Some(t) => {
                return Err(fail(
                    OutboxStatus::InvalidJson,
                    format!("event: type {t} given to the {} call", kind.as_str()),
                ))
            }
        }
        let mut event: Event = serde_json::from_value(Value::Object(map))
            .map_err(|e| fail(OutboxStatus::InvalidJson, format!("event: {e}")))?;
        event.kind = kind;
        let c = running(h)?;
        let receipt = if critical {
            c.track_critical(event)
        } else if durable {
            c.track_durable(event)
        } else {
            c.track(event)
        }
        .map_err(track_error)?;
        if !out_seq.is_null() {
            // SAFETY: NULL or writable (contract).
            unsafe { *out_seq = receipt.seq().unwrap_or(OUTBOX_SEQ_UNKNOWN) };
        }
        Ok(OutboxStatus::Ok)
    })
}

/// What `*out_seq` holds when the event's number is not known yet.
pub const OUTBOX_SEQ_UNKNOWN: u64 = u64::MAX;

/// Queues a `track` event: `len` bytes of a UTF-8 JSON object in Segment's
/// shape (`event`, `userId` or `anonymousId`, `properties`, `context`,
/// `timestamp`, `messageId`, ...). Returns once the event is handed to the
/// client's worker; it is durable within the commit delay. `*out_seq` (may
/// be NULL) gets the number the event's notifications carry when it is
/// already known, else `OUTBOX_SEQ_UNKNOWN` (the worker numbers the event
/// a moment later): use `outbox_track_durable` to always get it. The same
/// holds for identify, page, screen, group and alias. A top-level
/// `"critical": true` is outbox's own flag, never sent: the event is tracked
/// as `outbox_track_critical` does (with `outbox_track_durable` too); a
/// `"critical"` that is not a boolean is `OUTBOX_STATUS_INVALID_JSON`.
#[no_mangle]
pub extern "C" fn outbox_track(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Track, json, len, out_seq, false, false)
}

/// As `outbox_track`, for a *critical* event: in any flush mode (manual
/// too) it asks for an upload of the queue up to it at once (once the
/// network is up and no backoff runs), overflow never drops it while a
/// non-critical event is pending, and the flag survives a restart.
#[no_mangle]
pub extern "C" fn outbox_track_critical(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Track, json, len, out_seq, false, true)
}

/// As `outbox_track`, returning only after the event is committed to disk;
/// `*out_seq` then always gets the event's number.
#[no_mangle]
pub extern "C" fn outbox_track_durable(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Track, json, len, out_seq, true, false)
}

/// Queues an `identify` event (`userId` or `anonymousId`, `traits`, ...).
#[no_mangle]
pub extern "C" fn outbox_identify(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(
        client,
        EventType::Identify,
        json,
        len,
        out_seq,
        false,
        false,
    )
}

/// Queues a `page` event (`name`, `properties`, ...).
#[no_mangle]
pub extern "C" fn outbox_page(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Page, json, len, out_seq, false, false)
}

/// Queues a `screen` event (`name`, `properties`, ...).
#[no_mangle]
pub extern "C" fn outbox_screen(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Screen, json, len, out_seq, false, false)
}

/// Queues a `group` event (`groupId` required, `traits`, ...).
#[no_mangle]
pub extern "C" fn outbox_group(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Group, json, len, out_seq, false, false)
}

/// Queues an `alias` event (`userId` and `previousId` required).
#[no_mangle]
pub extern "C" fn outbox_alias(
    client: *const OutboxClient,
    json: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> OutboxStatus {
    enqueue(client, EventType::Alias, json, len, out_seq, false, false)
}

fn with_client(
    client: *const OutboxClient,
    f: impl FnOnce(&Client) -> Result<(), ClientError>,
) -> OutboxStatus {
    guard(|| {
        let c = running(handle(client)?)?;
        f(&c).map_err(client_error)?;
        Ok(OutboxStatus::Ok)
    })
}

/// Asks for an upload now; returns at once.
#[no_mangle]
pub extern "C" fn outbox_flush(client: *const OutboxClient) -> OutboxStatus {
    with_client(client, Client::flush)
}

/// Waits until everything tracked so far is committed to disk.
#[no_mangle]
pub extern "C" fn outbox_sync(client: *const OutboxClient) -> OutboxStatus {
    with_client(client, Client::sync)
}

fn report(r: FlushReport) -> OutboxFlushReport {
    OutboxFlushReport {
        delivered: r.delivered,
        dropped: r.dropped,
        rejected: r.rejected,
        pending: r.pending,
    }
}

/// Uploads now and waits at most `timeout_ms` until nothing is pending.
/// `*out_report` (may be NULL) is filled on `OK`, `TIMED_OUT` and `HALTED`.
#[no_mangle]
pub extern "C" fn outbox_flush_and_wait(
    client: *const OutboxClient,
    timeout_ms: u64,
    out_report: *mut OutboxFlushReport,
) -> OutboxStatus {
    guard(|| {
        let c = running(handle(client)?)?;
        let put = |r: FlushReport| {
            if !out_report.is_null() {
                // SAFETY: NULL or writable (contract).
                unsafe { *out_report = report(r) };
            }
        };
        match c.flush_and_wait(Duration::from_millis(timeout_ms)) {
            Ok(r) => {
                put(r);
                Ok(OutboxStatus::Ok)
            }
            Err(FlushError::TimedOut(r)) => {
                put(r);
                Err(fail(
                    OutboxStatus::TimedOut,
                    FlushError::TimedOut(r).to_string(),
                ))
            }
            Err(e @ FlushError::Halted { report: r, .. }) => {
                put(r);
                Err(fail(OutboxStatus::Halted, e.to_string()))
            }
            Err(e) => Err(fail(OutboxStatus::Closed, e.to_string())),
        }
    })
}

/// Sets the flush mode (one of `OutboxFlushMode`).
#[no_mangle]
pub extern "C" fn outbox_set_flush_mode(client: *const OutboxClient, mode: i32) -> OutboxStatus {
    guard(|| {
        let mode = flush_mode_code(mode)?;
        let c = running(handle(client)?)?;
        c.set_flush_mode(mode).map_err(client_error)?;
        Ok(OutboxStatus::Ok)
    })
}

/// Tells the client whether the network is reachable (from the platform's
/// reachability API). While it is down, no upload is attempted.
#[no_mangle]
pub extern "C" fn outbox_set_network_available(
    client: *const OutboxClient,
    available: bool,
) -> OutboxStatus {
    with_client(client, |c| c.set_network_available(available))
}

/// Tells the client whether the network is reachable and its kind (one of
/// `OutboxNetworkKind`). Under `"upload_on": "unmetered"` a metered or
/// unknown network counts as down for uploads; becoming unmetered resumes
/// them at once.
#[no_mangle]
pub extern "C" fn outbox_set_network(
    client: *const OutboxClient,
    available: bool,
    kind: i32,
) -> OutboxStatus {
    guard(|| {
        let kind = match kind {
            0 => NetworkKind::Unmetered,
            1 => NetworkKind::Metered,
            2 => NetworkKind::Unknown,
            _ => {
                return Err(fail(
                    OutboxStatus::InvalidArgument,
                    format!("network kind {kind} is not an OutboxNetworkKind"),
                ))
            }
        };
        let c = running(handle(client)?)?;
        c.set_network(available, kind).map_err(client_error)?;
        Ok(OutboxStatus::Ok)
    })
}

/// Tells the client the device entered (`true`) or left power save / low
/// battery: automatic uploads wait until it ends; `outbox_flush` still
/// uploads.
#[no_mangle]
pub extern "C" fn outbox_set_power_save(client: *const OutboxClient, on: bool) -> OutboxStatus {
    with_client(client, |c| c.set_power_save(on))
}

/// Tells the client about the app's lifecycle (one of `OutboxLifecycle`).
#[no_mangle]
pub extern "C" fn outbox_lifecycle(client: *const OutboxClient, state: i32) -> OutboxStatus {
    guard(|| {
        let state = match state {
            0 => Lifecycle::Foreground,
            1 => Lifecycle::Background,
            2 => Lifecycle::Terminate,
            _ => {
                return Err(fail(
                    OutboxStatus::InvalidArgument,
                    format!("lifecycle {state} is not an OutboxLifecycle"),
                ))
            }
        };
        let c = running(handle(client)?)?;
        c.lifecycle(state).map_err(client_error)?;
        Ok(OutboxStatus::Ok)
    })
}

/// Resumes uploads after a halt.
#[no_mangle]
pub extern "C" fn outbox_resume(client: *const OutboxClient) -> OutboxStatus {
    with_client(client, Client::resume)
}

fn seq_json(seq: u64) -> Value {
    json!(seq)
}

/// A notification as JSON: `{"kind": "...", ...}`.
fn note_json(n: &Notification) -> Value {
    match n {
        Notification::Delivered { first, last } => {
            json!({"kind": "delivered", "first": seq_json(*first), "last": seq_json(*last)})
        }
        Notification::Dropped {
            first,
            last,
            reason,
        } => {
            json!({"kind": "dropped", "first": first, "last": last, "reason": format!("{reason:?}")})
        }
        Notification::Rejected {
            seq,
            status,
            reason,
        } => {
            json!({"kind": "rejected", "seq": seq, "status": status, "reason": format!("{reason:?}")})
        }
        Notification::Halted { status, reason } => {
            json!({"kind": "halted", "status": status, "reason": format!("{reason:?}")})
        }
        Notification::Salvaged(s) => json!({"kind": "salvaged", "detail": format!("{s:?}")}),
        Notification::Refused {
            seq,
            message_id,
            error,
        } => {
            json!({"kind": "refused", "seq": seq, "messageId": message_id, "error": error.to_string()})
        }
        Notification::RetryScheduled {
            attempt,
            delay,
            cause,
        } => json!({
            "kind": "retry_scheduled",
            "attempt": attempt,
            "delayMs": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "cause": format!("{cause:?}"),
        }),
        other => json!({"kind": "other", "detail": format!("{other:?}")}),
    }
}

/// Copies the next notification, as a NUL-terminated JSON object, into
/// `buf` (`cap` bytes), waiting at most `timeout_ms` for one (0: do not
/// wait). `*out_len` gets its length without the NUL. Kinds: "delivered"
/// (`first`, `last`), "dropped" (`first`, `last`, `reason`), "rejected"
/// (`seq`, `status`, `reason`), "halted" (`status`, `reason`), "salvaged",
/// "refused" (`seq`, `messageId`, `error`), "retry_scheduled" (`attempt`,
/// `delayMs`, `cause`). Returns `EMPTY` when none is waiting, and
/// `BUFFER_TOO_SMALL` (with the size needed in `*out_len`) when it does
/// not fit: the notification is then kept for the next call.
#[no_mangle]
pub extern "C" fn outbox_poll(
    client: *const OutboxClient,
    timeout_ms: u64,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> OutboxStatus {
    guard(|| {
        let h = handle(client)?;
        let mut q = lock(&h.notes);
        let data = match q.held.take() {
            Some(d) => d,
            None => {
                let next = if timeout_ms == 0 {
                    q.rx.try_iter().next()
                } else {
                    q.rx.recv_timeout(Duration::from_millis(timeout_ms))
                };
                match next {
                    Some(n) => note_json(&n).to_string().into_bytes(),
                    None => return Ok(OutboxStatus::Empty),
                }
            }
        };
        let status = copy_out(&data, buf, cap, out_len);
        if status != OutboxStatus::Ok {
            q.held = Some(data);
            return Err(fail(status, "the buffer is too small for the notification"));
        }
        Ok(OutboxStatus::Ok)
    })
}

/// Copies the client's stats as a NUL-terminated JSON object into `buf`:
/// `core` (pending, delivered, dropped, rejected, ... counters),
/// `deadLetters`, `commits`, `lastError`, `notificationsLost`, `path`.
/// `BUFFER_TOO_SMALL` sets `*out_len` to the size needed.
#[no_mangle]
pub extern "C" fn outbox_stats(
    client: *const OutboxClient,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> OutboxStatus {
    guard(|| {
        let c = running(handle(client)?)?;
        let s = c.stats().map_err(client_error)?;
        let v = json!({
            "core": serde_json::to_value(s.core).unwrap_or(Value::Null),
            "deadLetters": s.dead_letters,
            "commits": s.commits,
            "lastError": s.last_error,
            "notificationsLost": s.notifications_lost,
            "path": s.path.to_string_lossy(),
            "salvaged": s.salvaged.map(|x| format!("{x:?}")),
        });
        match copy_out(v.to_string().as_bytes(), buf, cap, out_len) {
            OutboxStatus::Ok => Ok(OutboxStatus::Ok),
            st => Err(fail(st, "the buffer is too small for the stats")),
        }
    })
}

/// Closes the client: a final flush bounded by `timeout_ms` (0: none, just
/// commit and stop), then stop. Events not delivered stay in the database
/// for the next open. The handle stays valid until `outbox_free`; every
/// call on it then answers `CLOSED`, and so does a second close.
#[no_mangle]
pub extern "C" fn outbox_close(client: *const OutboxClient, timeout_ms: u64) -> OutboxStatus {
    guard(|| {
        let h = handle(client)?;
        let c = h
            .client
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| fail(OutboxStatus::Closed, "the client is already closed"))?;
        let r = if timeout_ms == 0 {
            c.close()
        } else {
            c.shutdown(Duration::from_millis(timeout_ms))
        };
        r.map_err(client_error)?;
        Ok(OutboxStatus::Ok)
    })
}

/// Closes the client if it is open (committing what was tracked, without
/// an upload) and releases the handle. NULL is accepted and ignored. The
/// pointer must not be used afterwards.
#[no_mangle]
pub extern "C" fn outbox_free(client: *mut OutboxClient) {
    let _ = guard(|| {
        if client.is_null() {
            return Ok(OutboxStatus::Ok);
        }
        // SAFETY: a pointer from `outbox_open*`, freed once (contract).
        let h = unsafe { Box::from_raw(client) };
        if let Some(c) = h.client.write().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.close();
        }
        Ok(OutboxStatus::Ok)
    });
}

/// Copies this thread's last error text (NUL-terminated, UTF-8) into `buf`
/// and returns its length without the NUL, like `snprintf`: when `cap` is
/// too small the text is cut (still NUL-terminated when `cap > 0`), and
/// the return value says how much room it needed. "" when no call on this
/// thread failed yet.
#[no_mangle]
pub extern "C" fn outbox_last_error(buf: *mut c_char, cap: usize) -> usize {
    let r = catch_unwind(|| {
        let text = LAST_ERROR
            .try_with(|e| e.try_borrow().map(|s| s.clone()).unwrap_or_default())
            .unwrap_or_default();
        if !buf.is_null() && cap > 0 {
            let n = text.len().min(cap - 1);
            // SAFETY: buf has `cap` writable bytes (contract).
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        text.len()
    });
    r.unwrap_or(0)
}

/// A static, NUL-terminated name for a status code ("OK", "NULL_ARGUMENT",
/// ...; "UNKNOWN" for any other value). Never NULL; never freed.
#[no_mangle]
pub extern "C" fn outbox_status_name(status: i32) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"OK",
        1 => c"NULL_ARGUMENT",
        2 => c"INVALID_UTF8",
        3 => c"INVALID_JSON",
        4 => c"INVALID_CONFIG",
        5 => c"OPEN_FAILED",
        6 => c"INVALID_EVENT",
        7 => c"QUEUE_FULL",
        8 => c"STORAGE",
        9 => c"CLOSED",
        10 => c"TIMED_OUT",
        11 => c"HALTED",
        12 => c"BUFFER_TOO_SMALL",
        13 => c"EMPTY",
        14 => c"REFUSED",
        15 => c"INVALID_ARGUMENT",
        16 => c"PANIC",
        _ => c"UNKNOWN",
    };
    s.as_ptr()
}

/// The library's version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn outbox_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
