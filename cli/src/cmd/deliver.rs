//! What `send` and `flush` share: opening the Client on the database with
//! the CLI's queue settings, and waiting until the queue is delivered (or
//! the run's [`Bound`] ends, or the key is refused).

use std::cell::{Cell, RefCell};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use outbox_core::Overflow;
use outbox_std::http::{Auth, HttpConfig};
use outbox_std::{
    BuildError, Client, ClientStats, DropReason, HaltReason, Notification, Notifications,
    RejectReason, RetryCause, Seq,
};

use super::deadline::{self, Bound};
use super::guard;
use super::progress::Progress;
use crate::args::{EndpointArgs, FlushModeArg, WireArgs};
use crate::error::{CliError, CliResult};

/// Events the CLI lets the queue hold: no count limit (the queue lives on
/// disk; the bytes limit and the disk bound it). `send` waits for room,
/// never for delivery, before it gets there.
pub const MAX_QUEUE_EVENTS: u32 = u32::MAX;
/// Payload bytes the CLI lets the queue hold (they are on disk, not in RAM).
pub const MAX_QUEUE_BYTES: u64 = 1024 * 1024 * 1024;

/// How to reach the endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Base URL.
    pub url: String,
    /// Write key, if any.
    pub key: Option<String>,
    /// Gzip level of request bodies; `None`: uncompressed.
    pub gzip: Option<u32>,
    /// Bearer instead of Basic.
    pub bearer: bool,
    /// Plain http to a host that is not loopback was allowed.
    pub allow_plain_http: bool,
}

impl Endpoint {
    /// From the command line, once [`guard::check`] accepts it.
    pub fn new(args: &EndpointArgs, wire: &WireArgs) -> CliResult<Self> {
        guard::check(args)?;
        Ok(Endpoint {
            url: args.endpoint.clone(),
            key: args.key.clone(),
            gzip: wire.gzip.0,
            bearer: wire.bearer,
            allow_plain_http: args.allow_plain_http,
        })
    }
}

/// Turns a build failure into one line.
pub fn build_error(db: &Path, e: BuildError) -> CliError {
    match e {
        BuildError::Open(e) => CliError::failure(format!("cannot open the database: {e}")),
        BuildError::Http(e) => CliError::usage(format!("bad --endpoint: {e}")),
        BuildError::Restore(e) => {
            CliError::failure(format!("cannot read the queue in {}: {e}", db.display()))
        }
        other => CliError::failure(other.to_string()),
    }
}

/// The HTTP settings for `endpoint` (shared by `send`, `flush` and
/// `gateway`, so every command posts the same wire).
pub fn http_config(endpoint: &Endpoint) -> HttpConfig {
    HttpConfig::new(
        endpoint.url.clone(),
        endpoint.key.clone().unwrap_or_default(),
    )
    .auth(if endpoint.bearer {
        Auth::Bearer
    } else {
        Auth::Basic
    })
    .gzip(endpoint.gzip)
    .allow_plain_http(endpoint.allow_plain_http)
}

/// Opens the Client on `db` for uploads to `endpoint`, with more settings
/// on the builder (`send`'s automatic events, `--no-loss-reports`).
pub fn open_client_with(
    db: &Path,
    endpoint: &Endpoint,
    mode: FlushModeArg,
    threshold: Option<u32>,
    more: impl FnOnce(outbox_std::ClientBuilder) -> outbox_std::ClientBuilder,
) -> CliResult<Client> {
    let http = http_config(endpoint);
    more(super::db_key::client_builder()?)
        .path(db)
        .http(http)
        .flush_mode(mode.to_core())
        .configure(|c| {
            let c = match mode.period() {
                Some(period) => c.flush_period(period),
                None => c,
            };
            let c = c
                .max_queue_events(MAX_QUEUE_EVENTS)
                .max_queue_bytes(MAX_QUEUE_BYTES)
                .overflow(Overflow::RejectNew);
            match threshold {
                Some(0) => c.flush_threshold(None),
                Some(n) => c.flush_threshold(Some(n)),
                None => c,
            }
        })
        .drop_flush_timeout(Duration::ZERO)
        .build()
        .map_err(|e| build_error(db, e))
}

/// A best-effort description of why `url` cannot be reached (the Client
/// reports transport failures without their cause).
pub fn probe(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let default_port = if url.starts_with("https://") { 443 } else { 80 };
    let with_port = if host.ends_with(']') || !host.contains(':') {
        format!("{host}:{default_port}")
    } else {
        host.to_string()
    };
    let addrs = match with_port.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return format!("cannot resolve {host}: {e}"),
    };
    let Some(addr) = addrs.first() else {
        return format!("{host} has no address");
    };
    match TcpStream::connect_timeout(addr, Duration::from_secs(3)) {
        Ok(_) => "connections open but requests fail (no answer)".into(),
        Err(e) => e.to_string(),
    }
}

/// The failure when events went to the dead-letter table: `malformed` of
/// the `rejected` were damaged in the database, the rest refused by the
/// endpoint.
pub fn rejected_error(rejected: u64, malformed: u64, delivered: u64) -> CliError {
    let refused = rejected.saturating_sub(malformed);
    let what = match (refused, malformed) {
        (0, m) => format!("{m} events were damaged in the database (malformed)"),
        (r, 0) => format!("{r} events were rejected by the endpoint"),
        (r, m) => format!(
            "{r} events were rejected by the endpoint and {m} were damaged in the database \
             (malformed)"
        ),
    };
    CliError::failure(format!(
        "{what}; they are in the dead-letter table (see `outbox dead-letter list`; \
         `outbox dead-letter requeue` queues them again); {delivered} were delivered"
    ))
}

/// Counts shown while waiting.
pub fn progress_message(stats: &ClientStats, base: &outbox_std::Stats) -> String {
    let s = &stats.core;
    format!(
        "delivered {} · pending {} · retries {} · rejected {}",
        s.delivered - base.delivered,
        s.pending_events,
        s.retries - base.retries,
        s.rejected - base.rejected
    )
}

/// What a wait watches besides its goal.
pub struct Watch<'a> {
    /// The Client.
    pub client: &'a Client,
    /// Where it uploads.
    pub endpoint: &'a Endpoint,
    /// Its database (for messages).
    pub db: &'a Path,
    /// The run's time bound.
    pub bound: &'a Bound,
    /// A subscription taken before the work started.
    pub notes: &'a Notifications,
    /// The stats when the command started.
    pub base: outbox_std::Stats,
    /// What the notifications told so far.
    pub seen: Seen,
}

/// What a [`Watch`] learnt from notifications.
#[derive(Debug, Default)]
pub struct Seen {
    /// Events the store could not keep, as reported (`first..=last`).
    pub not_stored: RefCell<Vec<(Seq, Seq)>>,
    /// The status uploads halted on (0 for a storage halt).
    pub halt_status: Cell<u16>,
    /// Records found damaged in the database and dead-lettered.
    pub malformed: Cell<u64>,
}

impl Watch<'_> {
    /// Current stats.
    pub fn stats(&self) -> CliResult<ClientStats> {
        self.client
            .stats()
            .map_err(|e| CliError::failure(format!("the client stopped: {e}")))
    }

    /// Waits until `goal` holds for the stats, showing progress.
    ///
    /// Fails (events stay queued) when the endpoint refuses the key
    /// (401/403) or when the run's [`Bound`] ends: the `--timeout`, or
    /// without one [`deadline::PATIENCE`] without progress.
    pub fn wait_until(
        &self,
        progress: &mut Progress,
        show: impl Fn(&ClientStats) -> (u64, u64, String),
        goal: impl Fn(&ClientStats) -> bool,
    ) -> CliResult<ClientStats> {
        self.bound.start_waiting(Instant::now());
        let mut last_cause = None;
        loop {
            let stats = self.stats()?;
            let (position, total, message) = show(&stats);
            progress.set_total(total);
            progress.update(position, message);
            // A halt first: a storage halt may come with nothing pending.
            if stats.core.halted {
                self.drain_notes(progress);
                return Err(self.halted(&stats));
            }
            if goal(&stats) {
                return Ok(stats);
            }
            let s = &stats.core;
            if let Some(stop) = stop::received().filter(|s| s.ends_the_run()) {
                return Err(CliError {
                    code: stop.code(),
                    message: format!(
                        "stopped by {}: {} events still queued in {}; run `outbox flush` to \
                         deliver them",
                        stop.name(),
                        s.pending_events,
                        self.db.display()
                    ),
                });
            }
            let now = Instant::now();
            self.bound
                .observe(s.delivered + s.rejected + s.dropped(), now);
            if self.bound.timed_out(now) {
                return Err(CliError::queued(format!(
                    "timed out with {} events still queued in {}; run `outbox flush` to deliver them",
                    s.pending_events,
                    self.db.display()
                )));
            }
            if self.bound.out_of_patience(now) {
                return Err(self.gave_up(last_cause, s.pending_events));
            }
            let wait = self.bound.slice(Duration::from_millis(100), now);
            if let Some(note) = self.notes.recv_timeout(wait) {
                for note in std::iter::once(note).chain(self.notes.try_iter()) {
                    if let Some(cause) = self.on_note(progress, note) {
                        last_cause = Some(cause);
                    }
                }
            }
        }
    }

    /// Uploads halted: say why and what to do. Exit 1; events stay queued.
    fn halted(&self, stats: &ClientStats) -> CliError {
        let s = &stats.core;
        let (url, db) = (&self.endpoint.url, self.db.display());
        let status = self.seen.halt_status.get();
        let pending = s.pending_events;
        CliError::failure(match s.halt_reason {
            Some(HaltReason::RejectionStorm) => format!(
                "{url} rejected event after event (last with {status}), so uploads stopped: \
                 {} events went to the dead-letter table and {pending} stay queued in {db}; \
                 nothing was lost. Once the endpoint is fixed, `outbox dead-letter requeue --all` \
                 and `outbox flush` send them again",
                s.rejected - self.base.rejected
            ),
            Some(HaltReason::Storage) => format!(
                "events were delivered but could not be removed from {db} ({}), so uploads \
                 stopped rather than send them again; make the database writable (see \
                 `outbox status`), then run `outbox flush`",
                stats
                    .last_error
                    .as_deref()
                    .unwrap_or("the database refused the delete")
            ),
            _ if matches!(status, 0 | 401 | 403) => format!(
                "{url} refused the key ({}): wrong or missing --key; {pending} events stay \
                 queued in {db}",
                if status == 0 {
                    "401/403".into()
                } else {
                    status.to_string()
                }
            ),
            _ => format!(
                "{url} answered {status}, which retrying cannot fix (a wrong --endpoint?); \
                 {pending} events stay queued in {db}"
            ),
        })
    }

    /// Without `--timeout`, the wait ended: say why, by the last failure.
    fn gave_up(&self, cause: Option<RetryCause>, pending: u32) -> CliError {
        let why = match cause {
            Some(RetryCause::Server) => format!(
                "{} keeps answering with errors (see `outbox status`)",
                self.endpoint.url
            ),
            // A read of the queue failed: the database, not the network.
            Some(RetryCause::Local) => format!(
                "the database {} keeps failing to read the queue (see `outbox status`, \
                 lastError); the endpoint was not the problem",
                self.db.display()
            ),
            _ => format!(
                "cannot reach {} ({})",
                self.endpoint.url,
                probe(&self.endpoint.url)
            ),
        };
        CliError::queued(format!(
            "{why}; gave up, as nothing was delivered for {} (the bound without --timeout); \
             {pending} events stay queued in {}; run `outbox flush` later",
            deadline::human(deadline::PATIENCE),
            self.db.display()
        ))
    }

    /// Drains pending notifications without waiting (while reading input:
    /// they are shown, never a reason to stop reading).
    pub fn drain_notes(&self, progress: &mut Progress) {
        for note in self.notes.try_iter() {
            self.on_note(progress, note);
        }
    }

    /// Shows what the user should see; returns the cause of a failed attempt.
    fn on_note(&self, progress: &mut Progress, note: Notification) -> Option<RetryCause> {
        match note {
            Notification::RetryScheduled {
                attempt,
                delay,
                cause,
            } => {
                self.bound.retry_in(delay, Instant::now());
                if delay > deadline::ANNOUNCE_AFTER {
                    let what = match cause {
                        RetryCause::Server => "the server answered with an error",
                        RetryCause::Transport => "no answer",
                        _ => "the batch could not be read from the database",
                    };
                    progress.println(&format!(
                        "outbox: upload attempt {attempt} failed ({what}); \
                         next attempt in {} (as the server asked, or by backoff)",
                        deadline::human(delay)
                    ));
                }
                Some(cause)
            }
            Notification::Dropped {
                first,
                last,
                reason: DropReason::NotStored | DropReason::Overflow,
            } => {
                self.seen.not_stored.borrow_mut().push((first, last));
                None
            }
            Notification::Rejected {
                seq,
                reason: RejectReason::Malformed,
                ..
            } => {
                self.seen.malformed.set(self.seen.malformed.get() + 1);
                progress.println(&format!(
                    "outbox: event #{seq} is damaged in the database (malformed): its stored \
                     size and bytes disagree; moved to the dead-letter table, never sent"
                ));
                None
            }
            Notification::Rejected { seq, status, .. } => {
                progress.println(&format!(
                    "outbox: event #{seq} rejected by the endpoint ({status}); moved to the dead-letter table"
                ));
                None
            }
            Notification::Halted { status, .. } => {
                self.seen.halt_status.set(status);
                None
            }
            _ => None,
        }
    }

    /// Flushes and waits until the queue is empty; returns the final stats.
    pub fn deliver_all(&self, progress: &mut Progress, total_hint: u64) -> CliResult<ClientStats> {
        self.client
            .flush()
            .map_err(|e| CliError::failure(format!("cannot flush: {e}")))?;
        let base = self.base;
        let show = |st: &ClientStats| {
            let s = &st.core;
            let done = s.delivered - base.delivered + s.rejected - base.rejected;
            (
                done,
                total_hint.max(done + u64::from(s.pending_events)),
                progress_message(st, &base),
            )
        };
        let done = self.wait_until(progress, show, |st| st.core.pending_events == 0)?;
        let (position, _, message) = show(&done);
        progress.finish(position, message);
        Ok(done)
    }
}

pub mod stop {
    //! Signals that ask `send` to stop early. Once [`install`]ed, the first
    //! SIGINT or SIGTERM is only noted: `send` stops reading (or waiting),
    //! commits, names the last line stored and exits with [`Stop::code`]; a
    //! second one ends the process at once (with the same code). SIGXFSZ (a
    //! file-size limit, `ulimit -f`) is noted instead of killing the process:
    //! the write that crossed the limit then fails like a full disk, and `send`
    //! says which lines are stored. On Windows only Ctrl-C is caught.

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Why a run was asked to stop.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Stop {
        /// SIGINT (Ctrl-C).
        Interrupt,
        /// SIGTERM (`kill`, a service manager).
        Terminate,
        /// SIGXFSZ: a file outgrew the file-size limit.
        FileSizeLimit,
    }

    impl Stop {
        /// The signal's name, for messages.
        pub fn name(self) -> &'static str {
            match self {
                Stop::Interrupt => "SIGINT",
                Stop::Terminate => "SIGTERM",
                Stop::FileSizeLimit => "SIGXFSZ",
            }
        }

        /// The exit code after stopping for it: 130 and 143 (128 + the
        /// signal's number, as a shell reports a process the signal ended).
        /// The file-size limit is a storage failure (1), like a full disk.
        pub fn code(self) -> i32 {
            match self {
                Stop::Interrupt => 130,
                Stop::Terminate => 143,
                Stop::FileSizeLimit => crate::exit::FAILURE,
            }
        }

        /// Whether `send` should stop reading or waiting for it (the
        /// file-size limit stops it through the failing write instead).
        pub fn ends_the_run(self) -> bool {
            !matches!(self, Stop::FileSizeLimit)
        }
    }

    const NONE: usize = 0;
    const INTERRUPT: usize = 1;
    const TERMINATE: usize = 2;

    /// The last stopping signal received (0: none).
    static RECEIVED: AtomicUsize = AtomicUsize::new(NONE);
    /// Whether SIGXFSZ was received (kept apart: a later SIGTERM must not hide it).
    static FILE_SIZE: AtomicUsize = AtomicUsize::new(NONE);

    /// The stopping signal received so far, if any (SIGINT or SIGTERM first).
    pub fn received() -> Option<Stop> {
        match RECEIVED.load(Ordering::SeqCst) {
            INTERRUPT => Some(Stop::Interrupt),
            TERMINATE => Some(Stop::Terminate),
            _ if FILE_SIZE.load(Ordering::SeqCst) != NONE => Some(Stop::FileSizeLimit),
            _ => None,
        }
    }

    /// Whether the file-size limit was hit (SIGXFSZ).
    pub fn file_size_limit_hit() -> bool {
        FILE_SIZE.load(Ordering::SeqCst) != NONE
    }

    /// Catches SIGINT, SIGTERM and SIGXFSZ for the rest of the process.
    #[cfg(unix)]
    pub fn install() -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};
        use signal_hook::flag;
        use std::sync::atomic::AtomicBool;
        /// Set by the first SIGINT or SIGTERM: the next one ends the process.
        static ARMED: AtomicBool = AtomicBool::new(false);
        for (sig, value, code) in [(SIGINT, INTERRUPT, 130), (SIGTERM, TERMINATE, 143)] {
            // The shutdown goes first, so the first signal only arms it.
            flag::register_conditional_shutdown(sig, code, &ARMED)?;
            flag::register_usize(sig, &RECEIVED, value)?;
            flag::register(sig, &ARMED)?;
        }
        flag::register_usize(SIGXFSZ, &FILE_SIZE, 1)?;
        Ok(())
    }

    /// Catches Ctrl-C for the rest of the process.
    #[cfg(not(unix))]
    pub fn install() -> std::io::Result<()> {
        ctrlc::set_handler(|| {
            if RECEIVED.swap(INTERRUPT, Ordering::SeqCst) == INTERRUPT {
                std::process::exit(130);
            }
        })
        .map_err(std::io::Error::other)
    }
}
