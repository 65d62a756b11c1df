//! The threaded Client: a cloneable handle over a worker and a transport thread.
//!
//! The worker thread owns the machine and the SQLite store and runs the
//! core's `Driver`; the transport thread performs HTTP requests. A handle
//! only sends messages to the worker, so `track` never waits on the network,
//! and every handle sees the same queue. Dropping the last handle stops both
//! threads after a bounded best-effort flush.

#[cfg(feature = "async")]
mod async_face;
mod buffers;
mod clock;
mod dead_letters;
mod environment;
mod error;
mod losses;
mod notify;
mod receipt;
mod session;
mod shape;
mod transport;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use outbox_core::{
    Config, ConfigBuilder, FlushMode, Input, Lifecycle, Machine, NetworkKind, Stats, UploadPolicy,
};
use serde_json::{Map, Value};

#[cfg(feature = "async")]
pub use async_face::AsyncClient;
pub use dead_letters::DeadLetterSelection;
pub use error::{BuildError, ClientError, FlushError, FlushReport, TrackError};
pub use notify::{Notification, Notifications};
pub use receipt::Receipt;
pub use worker::WINDOW;

use crate::event::Event;
use crate::sqlite::{DeadLetter, SqliteOptions, SqliteStore, StoreError, Synchronous};
use crate::upload::Uploader;
use worker::{Msg, Worker};

/// The Client's `max_commit_delay` unless configured: a tracked event is
/// durable at the end of the worker's round, and never later than this.
pub const DEFAULT_COMMIT_DELAY: Duration = Duration::from_millis(100);

/// Messages that may wait for the worker before `track` blocks. Each
/// waiting `track` holds its payload buffer (~0.6 KB with its message), and
/// a caller that outpaces the worker keeps the channel full: at 8192 that
/// was 5 MB of the 16 MB peak RSS of 100 000 tracked events (bench row
/// `trackrss`; 10 MB at 1024). 1024 still fills a round's group commit:
/// store throughput did not move in alternating runs.
const CHANNEL_CAPACITY: usize = 1024;

/// A snapshot of the Client's state, from [`Client::stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// The machine's accounts (pending, delivered, dropped, rejected, ...).
    pub core: Stats,
    /// Events in the dead-letter table.
    pub dead_letters: u64,
    /// Transactions committed since the Client started (with group commit,
    /// usually far fewer than events tracked).
    pub commits: u64,
    /// The last store or transport error of this run, e.g. a full disk.
    /// (Upload failures are in notifications; the database keeps the last
    /// upload or storage error across runs, see
    /// [`SqliteStore::last_error`](crate::sqlite::SqliteStore::last_error).)
    pub last_error: Option<String>,
    /// Notifications lost because a subscriber did not read them.
    pub notifications_lost: u64,
    /// The database file.
    pub path: PathBuf,
    /// The last salvage of this run: the database could not be opened or
    /// walked, and what could be read went into a fresh one (see
    /// [`Notification::Salvaged`]).
    pub salvaged: Option<crate::sqlite::Salvaged>,
}

/// Builds a [`Client`]; see [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    path: Option<PathBuf>,
    config: ConfigBuilder,
    sqlite: SqliteOptions,
    uploader: Option<Box<dyn Uploader>>,
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpConfig>,
    drop_flush_timeout: Duration,
    seed: Option<u64>,
    context: Map<String, Value>,
    properties: Map<String, Value>,
    session: session::Settings,
    loss_reports: bool,
    wall_clock: Option<fn() -> u64>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The SQLite database file (created when missing).
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Upload over HTTP to `<endpoint>/v1/batch` with `key` (HTTP Basic
    /// with the key as user name, as Segment and RudderStack read it; gzip
    /// bodies; use [`http`](Self::http) for the other settings).
    #[cfg(feature = "http")]
    pub fn endpoint(
        mut self,
        endpoint: impl Into<String>,
        key: impl Into<crate::http::WriteKey>,
    ) -> Self {
        self.http = Some(crate::http::HttpConfig::new(endpoint, key));
        self
    }

    /// Upload over HTTP with these settings.
    #[cfg(feature = "http")]
    pub fn http(mut self, config: crate::http::HttpConfig) -> Self {
        self.http = Some(config);
        self
    }

    /// Upload through a custom [`Uploader`] instead of HTTP.
    pub fn uploader(mut self, uploader: impl Uploader) -> Self {
        self.uploader = Some(Box::new(uploader));
        self
    }

    /// Adjust the machine's configuration (limits, batch sizes, backoff...).
    /// A Client starts from the core defaults except `max_commit_delay`
    /// ([`DEFAULT_COMMIT_DELAY`]: the worker commits in groups).
    ///
    /// ```
    /// # let b = outbox_std::Client::builder();
    /// let b = b.configure(|c| c.max_batch_events(100).max_queue_events(10_000));
    /// ```
    pub fn configure(mut self, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Self {
        self.config = f(self.config);
        self
    }

    /// Events older than `age` (by the wall clock, since their track) when
    /// their batch is formed are dropped, never sent (default: off): a
    /// [`Notification::Dropped`] with reason
    /// [`Expired`](outbox_core::DropReason::Expired), counted in the loss
    /// report as `expired`. Each event is stamped at its track and the
    /// stamp is stored with it, so age survives restarts; a wall clock that
    /// jumps back expires nothing early. Critical events never expire.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let b = outbox_std::Client::builder();
    /// let b = b.max_event_age(Duration::from_secs(5 * 24 * 3600)); // Mixpanel's 5 days
    /// ```
    pub fn max_event_age(mut self, age: Duration) -> Self {
        self.config = self.config.max_event_age(Some(age));
        self
    }

    /// Testing only, outside semver: the wall clock (ms since the Unix
    /// epoch) the Client reads instead of the system's, to make it jump.
    #[doc(hidden)]
    pub fn wall_clock(mut self, now_ms: fn() -> u64) -> Self {
        self.wall_clock = Some(now_ms);
        self
    }

    /// The flush mode to start with (default: [`FlushMode::Immediate`]).
    pub fn flush_mode(mut self, mode: FlushMode) -> Self {
        self.config = self.config.flush_mode(mode);
        self
    }

    /// Which networks uploads may use (default: [`UploadPolicy::Any`]).
    /// Under [`UploadPolicy::Unmetered`] nothing is uploaded, not even by
    /// an explicit flush, until [`Client::set_network`] reports an
    /// unmetered network (the Client starts with a network of unknown
    /// kind); tracking and storing go on meanwhile.
    pub fn upload_on(mut self, policy: UploadPolicy) -> Self {
        self.config = self.config.upload_on(policy);
        self
    }

    /// SQLite `synchronous` (default: [`Synchronous::Normal`]); `Full` survives power cuts.
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.sqlite = self.sqlite.synchronous(s);
        self
    }

    /// Encrypt the database with `key` (feature `encryption`; default: no
    /// key, a plaintext database). See
    /// [`SqliteOptions::encryption_key`]: a wrong key, a missing key or a
    /// plaintext file opened with a key make [`build`](Self::build) fail
    /// with [`BuildError::Open`] and leave the file exactly as it was.
    ///
    /// ```
    /// use outbox_std::sqlite::DbKey;
    /// let key = DbKey::new("correct horse battery staple").unwrap();
    /// let b = outbox_std::Client::builder().path("app.db").encryption_key(key);
    /// assert!(!format!("{b:?}").contains("horse"));
    /// ```
    #[cfg(feature = "encryption")]
    pub fn encryption_key(mut self, key: crate::sqlite::DbKey) -> Self {
        self.sqlite = self.sqlite.encryption_key(key);
        self
    }

    /// [`encryption_key`](Self::encryption_key) with the key in
    /// `OUTBOX_DB_KEY` ([`DB_KEY_ENV`](crate::sqlite::DB_KEY_ENV)); fails
    /// when it is not set, empty or not Unicode. The builder reads the
    /// environment only here, never by itself.
    #[cfg(feature = "encryption")]
    pub fn encryption_key_from_env(self) -> Result<Self, crate::sqlite::KeyError> {
        Ok(self.encryption_key(crate::sqlite::DbKey::from_env()?))
    }

    /// All SQLite options at once (the encryption key among them).
    pub fn sqlite_options(mut self, options: SqliteOptions) -> Self {
        self.sqlite = options;
        self
    }

    /// How long dropping the last handle may spend flushing (default: 5 s).
    pub fn drop_flush_timeout(mut self, d: Duration) -> Self {
        self.drop_flush_timeout = d;
        self
    }

    /// Seed for retry jitter (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Context merged into every event's `context` (the event's own keys
    /// win, nested objects are merged key by key); calls add up. A value
    /// that is not an object is ignored.
    ///
    /// ```
    /// # use serde_json::json;
    /// # let b = outbox_std::Client::builder();
    /// let b = b.context(json!({"device": {"type": "kiosk"}}))
    ///     .app("shop", "2.3.0")
    ///     .environment_context();
    /// ```
    pub fn context(mut self, context: Value) -> Self {
        if let Value::Object(c) = context {
            let mut merged = c;
            crate::merge_missing(&mut merged, &self.context);
            self.context = merged;
        }
        self
    }

    /// Properties merged into every `track`, `page` and `screen` event's
    /// `properties` (the event's own keys win); calls add up.
    pub fn properties(mut self, properties: Value) -> Self {
        if let Value::Object(p) = properties {
            let mut merged = p;
            crate::merge_missing(&mut merged, &self.properties);
            self.properties = merged;
        }
        self
    }

    /// `context.app = {name, version}` on every event (an empty name is
    /// left out). The version is also the one lifecycle events report.
    pub fn app(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        let (name, version) = (name.into(), version.into());
        self.session.version.clone_from(&version);
        let mut app = Map::new();
        if !name.is_empty() {
            app.insert("name".into(), Value::String(name));
        }
        app.insert("version".into(), Value::String(version));
        self.context(serde_json::json!({ "app": app }))
    }

    /// `context.os.name`, and `context.locale` and `context.timezone` when
    /// the environment says (`LC_ALL`/`LC_MESSAGES`/`LANG`, `TZ`), on every
    /// event, as Segment's device SDKs do.
    pub fn environment_context(self) -> Self {
        let detected = environment::detect(|k| std::env::var(k).ok());
        self.context(Value::Object(detected))
    }

    /// The app's build (e.g. `"431"`), reported with its version by the
    /// lifecycle events; `Application Updated` is tracked when the version
    /// or the build changed since the last start.
    pub fn app_build(mut self, build: impl Into<String>) -> Self {
        self.session.build = build.into();
        self
    }

    /// Track `Application Installed`, `Application Updated`, `Application
    /// Opened` and `Application Backgrounded` automatically (default: on).
    /// See [`Client::lifecycle`].
    pub fn lifecycle_events(mut self, on: bool) -> Self {
        self.session.lifecycle_events = on;
        self
    }

    /// Track sessions (`session_start`, `session_end` with its `duration`
    /// in seconds, `context.session_id` on every event inside one) with
    /// this background timeout (default: 60 s); `None` turns them off.
    /// See [`Client::lifecycle`].
    pub fn sessions(mut self, timeout: Option<Duration>) -> Self {
        self.session.timeout = timeout;
        self
    }

    /// Report losses to the server (default: on): after any drop (overflow,
    /// max attempts, a damaged record, a track that was not stored, a
    /// salvage) the next batch carries one `outbox dropped events` track
    /// event with the counts by reason, the first and last seq and since
    /// when; the counts are kept in the database until a 2xx acknowledges
    /// the batch that carried them. Off: nothing is kept or sent.
    pub fn loss_reports(mut self, on: bool) -> Self {
        self.loss_reports = on;
        self
    }

    /// Open the store, restore its queue, start the threads.
    pub fn build(self) -> Result<Client, BuildError> {
        let config: Config = self.config.build()?;
        let path = self.path.ok_or(BuildError::NoPath)?;
        let uploader: Box<dyn Uploader> = match self.uploader {
            Some(u) => u,
            #[cfg(feature = "http")]
            None => match self.http {
                Some(h) if h.overall_timeout() >= config.request_timeout() => {
                    return Err(BuildError::HttpTimeout {
                        overall: h.overall_timeout(),
                        request_timeout: config.request_timeout(),
                    })
                }
                Some(h) => Box::new(crate::http::HttpUploader::new(h)?),
                None => return Err(BuildError::NoUploader),
            },
            #[cfg(not(feature = "http"))]
            None => return Err(BuildError::NoUploader),
        };
        let seed = self
            .seed
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        // Refused here, on the caller's thread, rather than by the worker.
        Machine::<WINDOW>::new(config, 0)?;
        // A stored size above the event limit can only be damage.
        let sqlite = self.sqlite.max_record_bytes(config.max_event_bytes());
        // A damaged file is salvaged, never left to stop tracking.
        let (store, salvaged) = SqliteStore::open_or_salvage(&path, sqlite)?;
        let buffers = Arc::new(buffers::BufferPool::default());
        let shape = Arc::new(shape::Shape {
            context: self.context,
            properties: self.properties,
            max_event_bytes: config.max_event_bytes() as usize,
            buffers: buffers.clone(),
        });
        let tracker = self.session.enabled().then(|| {
            let stored = store.session().unwrap_or_else(|e| {
                log::warn!("outbox: cannot read the session state: {e}");
                None
            });
            let tracker = session::Tracker::start(&self.session, stored);
            Arc::new(session::Shared::new(tracker, shape.clone()))
        });
        let worker_tracker = tracker.clone();

        let (tx, rx) = mpsc::sync_channel::<Msg>(CHANNEL_CAPACITY);
        let hub = notify::Hub::default();
        if let Some(report) = &salvaged {
            hub.publish_sticky(Notification::Salvaged(report.clone()));
        }
        let clock = clock::Clock::start(self.wall_clock);
        let saved_losses = if self.loss_reports {
            store.losses().unwrap_or_else(|e| {
                log::warn!("outbox: cannot read the losses not yet reported: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let mut book = losses::LossBook::new(self.loss_reports, saved_losses);
        if salvaged.is_some() {
            book.salvaged();
        }
        let losses = Arc::new(Mutex::new(book));
        let (transport, transport_thread) = transport::ChannelTransport::start(
            uploader,
            tx.clone(),
            losses.clone(),
            config.max_batch_bytes(),
        )?;
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let worker_hub = hub.clone();
        let worker_buffers = buffers.clone();
        let batch_bytes = config.max_batch_bytes() as usize;
        let worker = std::thread::Builder::new()
            .name("outbox-worker".into())
            .spawn(move || {
                let machine = match Machine::<WINDOW>::new(config, seed) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = started_tx.send(Err(StoreError::Other(e.to_string())));
                        return;
                    }
                };
                let not_stored = Default::default();
                let mut w = Worker::new(rx, clock, not_stored, worker_hub, worker_buffers);
                w.losses = losses;
                w.salvaged = salvaged;
                w.sessions = worker_tracker;
                worker::restore_and_run(
                    w,
                    machine,
                    store,
                    (transport, transport_thread),
                    batch_bytes,
                    started_tx,
                );
            })?;
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = worker.join();
                return Err(BuildError::Restore(e));
            }
            Err(_) => {
                let _ = worker.join();
                return Err(BuildError::Restore(StoreError::Other(
                    "the worker thread died".into(),
                )));
            }
        }
        let client = Client {
            inner: Arc::new(Inner {
                tx,
                worker: Mutex::new(Some(worker)),
                hub,
                drop_flush_timeout: self.drop_flush_timeout,
                path,
                shape,
                session: tracker,
                network_kind: Mutex::new(NetworkKind::Unknown),
                clock,
            }),
        };
        client.inner.start_sessions();
        Ok(client)
    }
}

struct Inner {
    tx: SyncSender<Msg>,
    worker: Mutex<Option<JoinHandle<()>>>,
    hub: notify::Hub,
    drop_flush_timeout: Duration,
    path: PathBuf,
    /// Global context and properties, the size limit: how events are stored.
    shape: Arc<shape::Shape>,
    /// Lifecycle events and sessions (`None`: both off), shared with the
    /// worker, which ends a session whose background outlasted the timeout.
    session: Option<Arc<session::Shared>>,
    /// The network kind last reported, kept for
    /// [`Client::set_network_available`], which names none.
    network_kind: Mutex<NetworkKind>,
    /// The wall clock each track reads (its stamp, for `max_event_age`).
    clock: clock::Clock,
}

/// `now + timeout`, or `None` (no deadline) when that is beyond what an
/// `Instant` can hold: `Duration::MAX` means "wait as long as it takes".
pub use losses::LOSS_EVENT;

pub(crate) fn deadline_after(timeout: Duration) -> Option<StdInstant> {
    StdInstant::now().checked_add(timeout)
}

impl Inner {
    /// The shutdown message and its answer; `None` when already stopped.
    fn shutdown_msg(
        &self,
        flush: bool,
        timeout: Duration,
    ) -> Option<(Msg, oneshot::Receiver<FlushReport>, JoinHandle<()>)> {
        let handle = self.worker.lock().ok()?.take()?;
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Shutdown {
            deadline: deadline_after(timeout),
            flush,
            reply,
        };
        Some((msg, rx, handle))
    }

    /// Stop the threads; with `flush`, after a final upload bounded by
    /// `timeout`.
    fn stop(&self, flush: bool, timeout: Duration) -> Option<FlushReport> {
        self.session_stop();
        let (msg, rx, handle) = self.shutdown_msg(flush, timeout)?;
        let report = if self.tx.send(msg).is_ok() {
            rx.recv().ok()
        } else {
            None
        };
        let _ = handle.join();
        report
    }

    /// The event as it will be stored: global context and properties merged
    /// in, checked, serialized.
    fn payload(&self, event: Event) -> Result<crate::Payload, TrackError> {
        self.shape.payload(event)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop(true, self.drop_flush_timeout);
    }
}

/// outbox for applications: durable `track`, batched uploads in the
/// background. Cheap to clone; `Send + Sync`.
///
/// ```no_run
/// # #[cfg(feature = "http")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use outbox_std::{Client, Event};
///
/// let client = Client::builder()
///     .path("events.db")
///     .endpoint("https://events.example.com", "write-key")
///     .build()?;
/// client.track(Event::track("Signed Up").user_id("u-1"))?;
/// client.flush_and_wait(Duration::from_secs(10))?;
/// client.shutdown(Duration::from_secs(5))?;
/// # Ok(()) }
/// # #[cfg(not(feature = "http"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn ask<T>(tx: &SyncSender<Msg>, make: impl FnOnce(worker::Reply<T>) -> Msg) -> Option<T> {
    let (reply, rx) = oneshot::channel();
    tx.send(make(reply)).ok()?;
    rx.recv().ok()
}

impl Client {
    /// A builder with the defaults of DESIGN.md.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            path: None,
            // Group commit: the worker commits every round (each message
            // that arrived during the last commit), so the machine's own
            // deadline is only a backstop.
            config: Config::builder().max_commit_delay(DEFAULT_COMMIT_DELAY),
            sqlite: SqliteOptions::default(),
            uploader: None,
            #[cfg(feature = "http")]
            http: None,
            drop_flush_timeout: Duration::from_secs(5),
            seed: None,
            context: Map::new(),
            properties: Map::new(),
            session: session::Settings::default(),
            loss_reports: true,
            wall_clock: None,
        }
    }

    /// Track `event`: the builder's global context and properties are
    /// merged in, a `messageId`, `timestamp` and `context.library` are set
    /// when absent, the event is checked and queued for the next commit.
    /// Returns its [`Receipt`] (the `messageId`, and the sequence number the
    /// notifications use). Invalid events are refused here; what can only fail
    /// later (a full disk, a full queue under `Overflow::RejectNew`) shows
    /// in [`stats`](Self::stats)`.last_error` and in notifications: an
    /// event that could not be queued at all gets a
    /// [`Notification::Refused`] its receipt [`concerns`](Receipt::concerns). Use
    /// [`track_durable`](Self::track_durable) to wait for the commit and get
    /// those errors back. An event marked
    /// [`Event::critical`](Event::critical()) is tracked as
    /// [`track_critical`](Self::track_critical) does.
    pub fn track(&self, event: Event) -> Result<Receipt, TrackError> {
        self.track_flagged(event)
    }

    /// Track a *critical* `event` (an alarm, a purchase): as
    /// [`track`](Self::track), and in any flush mode (`Manual` and
    /// `AppClose` too) it requests an upload of the queue up to it at once,
    /// served when the network is up and no backoff runs (a server's
    /// Retry-After still holds). Overflow (`DropOldest`) never drops it
    /// while a non-critical event is pending: the oldest non-critical event
    /// goes instead (a new non-critical event that could only fit by
    /// dropping a critical one is refused). The flag is stored with the
    /// event and survives a restart. The same as
    /// `track(event.critical(true))`
    /// ([`Event::critical`](Event::critical())).
    pub fn track_critical(&self, event: Event) -> Result<Receipt, TrackError> {
        self.track_flagged(event.critical(true))
    }

    fn track_flagged(&self, mut event: Event) -> Result<Receipt, TrackError> {
        let critical = event.critical;
        let _session = self.inner.session_event(&mut event);
        let payload = self.inner.payload(event)?;
        let seq = Arc::new(OnceLock::new());
        self.inner
            .tx
            .send(Msg::Track {
                payload: payload.bytes,
                durable: None,
                seq: seq.clone(),
                message_id: payload.message_id.clone(),
                critical,
                wall_ms: Some(self.inner.clock.wall_ms()),
            })
            .map_err(|_| TrackError::Stopped)?;
        Ok(Receipt::new(payload.message_id, seq))
    }

    /// Track `event` and return only once it is committed to the database
    /// (with every event tracked meanwhile, in one transaction). An event
    /// marked [`Event::critical`](Event::critical()) is tracked as
    /// [`track_critical_durable`](Self::track_critical_durable) does.
    pub fn track_durable(&self, event: Event) -> Result<Receipt, TrackError> {
        self.track_durable_flagged(event)
    }

    /// Track a *critical* `event` (see [`track_critical`](Self::track_critical))
    /// and return only once it is committed, as
    /// [`track_durable`](Self::track_durable).
    pub fn track_critical_durable(&self, event: Event) -> Result<Receipt, TrackError> {
        self.track_durable_flagged(event.critical(true))
    }

    fn track_durable_flagged(&self, mut event: Event) -> Result<Receipt, TrackError> {
        let critical = event.critical;
        let session = self.inner.session_event(&mut event);
        let payload = self.inner.payload(event)?;
        let bytes = payload.bytes;
        let seq = Arc::new(OnceLock::new());
        let slot = seq.clone();
        let (reply, rx) = oneshot::channel();
        let sent = self.inner.tx.send(Msg::Track {
            critical,
            payload: bytes,
            durable: Some(reply),
            seq: slot,
            message_id: String::new(),
            wall_ms: Some(self.inner.clock.wall_ms()),
        });
        // Queued in order: other threads may track while this one waits.
        drop(session);
        sent.map_err(|_| TrackError::Stopped)?;
        let result = rx.recv().map_err(|_| TrackError::Stopped)?;
        result.map(|()| Receipt::new(payload.message_id, seq))
    }

    /// Wait until every event tracked before this call is committed.
    pub fn sync(&self) -> Result<(), ClientError> {
        ask(&self.inner.tx, Msg::Sync).ok_or(ClientError::Stopped)?
    }

    fn input(&self, input: Input) -> Result<(), ClientError> {
        ask(&self.inner.tx, |r| Msg::Input(input, r)).ok_or(ClientError::Stopped)?
    }

    /// Upload everything pending, in any flush mode (served after a backoff).
    pub fn flush(&self) -> Result<(), ClientError> {
        self.input(Input::Flush)
    }

    /// Flush, then wait until every event tracked before this call is
    /// delivered, dropped or rejected, or until `timeout` (`Duration::MAX`:
    /// no deadline).
    pub fn flush_and_wait(&self, timeout: Duration) -> Result<FlushReport, FlushError> {
        let deadline = deadline_after(timeout);
        ask(&self.inner.tx, |reply| Msg::FlushWait { deadline, reply })
            .ok_or(FlushError::Stopped)?
    }

    /// Change the flush mode.
    pub fn set_flush_mode(&self, mode: FlushMode) -> Result<(), ClientError> {
        self.input(Input::SetFlushMode(mode))
    }

    /// Change the `Period` mode's period.
    pub fn set_flush_period(&self, period: Duration) -> Result<(), ClientError> {
        self.input(Input::SetFlushPeriod(period))
    }

    /// Change the `Period` mode's threshold; `None` turns it off.
    pub fn set_flush_threshold(&self, threshold: Option<u32>) -> Result<(), ClientError> {
        self.input(Input::SetFlushThreshold(threshold))
    }

    /// Tell the Client whether the network is up, keeping the kind last
    /// reported with [`set_network`](Self::set_network) (unknown until then).
    pub fn set_network_available(&self, up: bool) -> Result<(), ClientError> {
        let kind = self
            .inner
            .network_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.input(Input::Network { up, kind: *kind })
    }

    /// Tell the Client whether the network is up and what kind it is. Under
    /// [`UploadPolicy::Unmetered`] a metered or unknown network counts as
    /// down for uploads; becoming unmetered resumes them at once.
    pub fn set_network(&self, up: bool, kind: NetworkKind) -> Result<(), ClientError> {
        let mut last = self
            .inner
            .network_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *last = kind;
        // Sent while the lock is held, so reports reach the worker in order.
        self.input(Input::Network { up, kind })
    }

    /// Tell the Client the platform entered (`true`) or left power save /
    /// low battery: automatic flushes (immediate, period, threshold,
    /// lifecycle) wait until it ends; an explicit [`flush`](Self::flush)
    /// still goes.
    pub fn set_power_save(&self, on: bool) -> Result<(), ClientError> {
        self.input(Input::PowerSave(on))
    }

    /// Report the application's lifecycle (background flushes, ...). With
    /// lifecycle events on, a foreground tracks `Application Opened` and a
    /// background `Application Backgrounded`; with sessions on, a
    /// foreground starts a session when none is open, a background longer
    /// than the timeout ends it (the Client tracks `session_end` by itself
    /// once the timeout has passed, no further call needed), and a
    /// terminate ends it at once.
    pub fn lifecycle(&self, state: Lifecycle) -> Result<(), ClientError> {
        let _session = self.inner.session_lifecycle(state);
        self.input(Input::Lifecycle(state))
    }

    /// Resume uploads after a 401/403 halt (e.g. once the key is fixed).
    pub fn resume(&self) -> Result<(), ClientError> {
        self.input(Input::Resume)
    }

    /// Current counters, the dead-letter count and the last error.
    pub fn stats(&self) -> Result<ClientStats, ClientError> {
        ask(&self.inner.tx, Msg::Stats).ok_or(ClientError::Stopped)
    }

    /// Every dead letter (events the server refused), oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, ClientError> {
        Ok(ask(&self.inner.tx, Msg::DeadLetters).ok_or(ClientError::Stopped)??)
    }

    /// Put the chosen dead letters back into the queue, oldest first and
    /// byte for byte (same `messageId`), and delete them from the dead
    /// letters in the same commit; they are uploaded like any queued event
    /// (at once in `Immediate` mode). Stops early, leaving the rest dead,
    /// when the queue is full. Returns how many were requeued.
    ///
    /// ```no_run
    /// # fn demo(client: outbox_std::Client) -> Result<(), outbox_std::ClientError> {
    /// use outbox_std::DeadLetterSelection;
    /// let n = client.requeue_dead_letters(DeadLetterSelection::All)?;
    /// println!("{n} events queued again");
    /// # Ok(()) }
    /// ```
    pub fn requeue_dead_letters(&self, which: DeadLetterSelection) -> Result<usize, ClientError> {
        let n = ask(&self.inner.tx, |r| Msg::Requeue(which, r)).ok_or(ClientError::Stopped)??;
        self.sync()?;
        Ok(n)
    }

    /// Delete the chosen dead letters for good; returns how many went.
    pub fn purge_dead_letters(&self, which: DeadLetterSelection) -> Result<usize, ClientError> {
        let n = ask(&self.inner.tx, |r| Msg::Purge(which, r)).ok_or(ClientError::Stopped)??;
        self.sync()?;
        Ok(n)
    }

    /// Subscribe to notifications (delivered, dropped, rejected, halted,
    /// retry scheduled) from now on.
    pub fn notifications(&self) -> Notifications {
        self.inner.hub.subscribe()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flush for at most `timeout` (`Duration::MAX`: no deadline), commit,
    /// and stop both threads. Every
    /// handle stops working; undelivered events stay in the database for the
    /// next start. Returns what the final flush achieved.
    ///
    /// Even with a zero `timeout` this starts an upload (and, in any flush
    /// mode, may leave a request in flight as the threads stop); use
    /// [`close`](Self::close) to stop without one.
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushReport, ClientError> {
        self.inner.stop(true, timeout).ok_or(ClientError::Stopped)
    }

    /// Commit everything tracked before this call and stop both threads
    /// without starting an upload: no flush, no retry, no further batch.
    /// (A request already in flight, e.g. one that `Immediate` mode started
    /// for an earlier track, is abandoned; its events stay queued and are
    /// sent again at the next start, the server deduplicating them.) Every
    /// handle stops working; the report says what is left.
    ///
    /// ```no_run
    /// # fn demo(client: outbox_std::Client) -> Result<(), outbox_std::ClientError> {
    /// let report = client.close()?;
    /// println!("{} events stay queued for the next start", report.pending);
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> Result<FlushReport, ClientError> {
        self.inner
            .stop(false, Duration::ZERO)
            .ok_or(ClientError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn client_is_clone_send_sync() {
        shareable::<Client>();
    }

    #[test]
    fn builder_refuses_missing_parts_and_oversized_queues() {
        let dir = tempfile::tempdir().unwrap();
        let ok = |_: &crate::BatchBody| {
            Ok(crate::Response {
                status: 200,
                retry_after: None,
            })
        };
        assert!(matches!(
            Client::builder().uploader(ok).build(),
            Err(BuildError::NoPath)
        ));
        assert!(matches!(
            Client::builder().path(dir.path().join("a.db")).build(),
            Err(BuildError::NoUploader)
        ));
        let too_big = Client::builder()
            .path(dir.path().join("b.db"))
            .uploader(ok)
            .configure(|c| c.max_batch_events(WINDOW as u32 + 1))
            .build();
        assert!(matches!(too_big, Err(BuildError::Config(_))));
        // Issue 8 item 1: the queue is bounded by configuration and disk,
        // not by a capacity of 100 000 in memory (this was refused before).
        let long = Client::builder()
            .path(dir.path().join("c.db"))
            .uploader(ok)
            .configure(|c| c.max_queue_events(50_000_000))
            .build()
            .unwrap();
        long.close().unwrap();
    }
}
