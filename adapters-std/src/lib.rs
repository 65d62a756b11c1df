//! # outbox-std
//!
//! outbox on an operating system: the [SQLite store](sqlite) (feature
//! `sqlite`), the [HTTP transport](http) over ureq with rustls (feature
//! `http`), and the threaded [`Client`] that runs the core's machine with
//! them (feature `sqlite`). Both features are on by default. Feature
//! `encryption` (off by default) makes the store a SQLCipher database,
//! encrypted at rest with a key from `ClientBuilder::encryption_key`; see
//! the [sqlite] module.
//!
//! ## API overview
//!
//! | item | what it is for |
//! | --- | --- |
//! | [`Client::builder`] → [`ClientBuilder`] | `.path(db)`, `.endpoint(url, key)` or `.http(HttpConfig)` or `.uploader(u)`, `.flush_mode(m)`, `.configure(\|c\| ...)`, `.synchronous(s)`, `.encryption_key(k)` (feature `encryption`), `.context(json)`, `.app(name, version)`, `.environment_context()`, `.properties(json)`, `.build()?` |
//! | [`Event::track`], [`Event::identify`], [`Event::page`], [`Event::screen`], [`Event::group`], [`Event::alias`] | every Segment call, checked as Segment checks it; numeric ids become strings |
//! | [`Client::track`] / [`Client::track_durable`] | queue an [`Event`]; returns a [`Receipt`] (its `messageId`, and the seq its notifications carry: [`Receipt::concerns`]); the durable form returns after the commit |
//! | [`Client::sync`] | wait for the commit of everything tracked so far |
//! | [`Client::flush`] / [`Client::flush_and_wait`] | upload now; wait for a [`FlushReport`] |
//! | `set_flush_mode`, `set_flush_period`, `set_flush_threshold`, `set_network_available`, `set_network`, `set_power_save`, `lifecycle`, `resume` | runtime controls |
//! | [`Client::stats`] → [`ClientStats`] | counters, dead-letter count, last error |
//! | [`Client::dead_letters`] | refused events, with status, reason and time |
//! | [`Client::requeue_dead_letters`] / [`Client::purge_dead_letters`] | put refused events back into the queue, or delete them ([`DeadLetterSelection`]) |
//! | `Client::into_async` → `AsyncClient` (feature `async`) | `track_durable`, `flush_and_wait`, `shutdown` as futures, on any executor |
//! | [`Client::notifications`] → [`Notifications`] | an iterator of [`Notification`]s (delivered, dropped — `Damaged` for a record storage lost —, rejected, halted, retries, `Refused` for a track that could not be queued, `Salvaged` for a damaged database set aside) |
//! | [`Client::shutdown`] | bounded final flush, then stop (also on drop of the last handle) |
//! | [`Client::close`] | commit and stop without starting an upload |
//! | [`sqlite::SqliteStore`] | the store by itself; `open_or_salvage` as the Client opens it (a damaged file salvaged and set aside); `open_read_only` to inspect a live database: `queue_len`, `oldest_event`, `last_error`, `last_salvage`, dead letters |
//! | [`http::HttpUploader`] | the transport by itself; [`Uploader`] to plug in another |
//!
//! A Client's queue is bounded by `max_queue_events` (default 1000) and
//! `max_queue_bytes`, not by memory: the machine keeps a window of
//! [`WINDOW`] sizes and the database holds the rest, so millions of queued
//! events open in milliseconds. An OS lock on the database file (on Unix;
//! `<db>.lock` elsewhere) keeps a second Client off the same file, through
//! any path.
//!
//! ```no_run
//! # #[cfg(all(feature = "sqlite", feature = "http"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use outbox_std::{Client, Event};
//! use serde_json::json;
//!
//! let client = Client::builder()
//!     .path("events.db")
//!     .endpoint("https://collector.example.com", "write-key")
//!     .build()?;
//! client.track(Event::track("Order Completed").user_id("u-1").properties(json!({"total": 9.5})))?;
//! let report = client.flush_and_wait(Duration::from_secs(10))?;
//! println!("{} delivered", report.delivered);
//! # Ok(()) }
//! # #[cfg(not(all(feature = "sqlite", feature = "http")))]
//! # fn main() {}
//! ```
//!
//! On the wire it is the Segment HTTP Tracking API: HTTP Basic auth with the
//! write key as user name (no header without a key), `context.library`
//! added to every event that has none, batches of at most 500 000 bytes.
//!
//! Logging goes through the `log` crate; the write key never appears in it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod event;
mod upload;

#[cfg(feature = "sqlite")]
mod client;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use event::{
    merge_missing, Event, EventError, EventType, Id, Payload, LIBRARY_NAME, LIBRARY_VERSION,
};
pub use upload::{BatchBody, Response, UploadFailed, Uploader};

#[cfg(feature = "async")]
pub use client::AsyncClient;
#[cfg(feature = "sqlite")]
pub use client::{
    BuildError, Client, ClientBuilder, ClientError, ClientStats, DeadLetterSelection, FlushError,
    FlushReport, Notification, Notifications, Receipt, TrackError, DEFAULT_COMMIT_DELAY,
    LOSS_EVENT, WINDOW,
};

pub use outbox_core::{
    Config, ConfigBuilder, DropReason, FlushMode, HaltReason, Lifecycle, NetworkKind, RejectReason,
    RetryCause, Seq, Stats, UploadPolicy,
};
