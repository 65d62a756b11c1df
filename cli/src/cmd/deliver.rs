//! What `send` and `flush` share: opening the Client on the database with
//! the CLI's queue settings, and waiting until the queue is delivered (or
//! time runs out, the key is refused, the endpoint stays unreachable).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use outbox_core::Overflow;
use outbox_std::http::{Auth, HttpConfig};
use outbox_std::{BuildError, Client, ClientStats, Notification, Notifications, RetryCause};

use super::progress::Progress;
use crate::args::{EndpointArgs, FlushModeArg};
use crate::error::{CliError, CliResult};

/// Events the CLI lets pile up in the queue before it waits for delivery
/// (well under the Client's capacity, so nothing is ever refused as full).
pub const PENDING_HIGH_WATER: u32 = 50_000;
/// Payload bytes the CLI lets pile up likewise.
pub const PENDING_HIGH_WATER_BYTES: u64 = 128 * 1024 * 1024;
/// The queue's byte limit the CLI configures.
const MAX_QUEUE_BYTES: u64 = 2 * PENDING_HIGH_WATER_BYTES;
/// Consecutive transport failures after which, without `--timeout`, the
/// endpoint is declared unreachable.
pub const UNREACHABLE_AFTER: u32 = 3;

/// How to reach the endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Base URL.
    pub url: String,
    /// Write key, if any.
    pub key: Option<String>,
    /// Gzip bodies.
    pub gzip: bool,
    /// Bearer instead of Basic.
    pub bearer: bool,
}

impl Endpoint {
    /// From the command line.
    pub fn new(args: &EndpointArgs, gzip: bool, bearer: bool) -> Self {
        Endpoint {
            url: args.endpoint.clone(),
            key: args.key.clone(),
            gzip,
            bearer,
        }
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
    let mut http = HttpConfig::new(
        endpoint.url.clone(),
        endpoint.key.clone().unwrap_or_default(),
    )
    .auth(if endpoint.bearer {
        Auth::Bearer
    } else {
        Auth::Basic
    })
    .gzip(endpoint.gzip.then_some(6))
    .timeouts(Duration::from_secs(10), Duration::from_secs(30));
    if endpoint.url.starts_with("http://") {
        // The user typed http:// on purpose; loopback needs no opt-in, and
        // elsewhere the key travels in clear text, which we say.
        http = http.allow_plain_http(true);
        if endpoint.key.is_some() && !is_loopback_url(&endpoint.url) {
            super::err_line(
                "outbox: warning: the key is sent in clear text over http://; use https:// to protect it",
            );
        }
    }
    http
}

/// Opens the Client on `db` for uploads to `endpoint`.
pub fn open_client(
    db: &Path,
    endpoint: &Endpoint,
    mode: FlushModeArg,
    threshold: Option<u32>,
) -> CliResult<Client> {
    let http = http_config(endpoint);
    Client::builder()
        .path(db)
        .http(http)
        .flush_mode(mode.to_core())
        .configure(|c| {
            let c = match mode.period() {
                Some(period) => c.flush_period(period),
                None => c,
            };
            let c = c
                .max_queue_events(u32::MAX)
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

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = if host.starts_with('[') {
        host.trim_start_matches('[').split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    /// Give up then, with exit code 3.
    pub deadline: Option<Instant>,
    /// A subscription taken before the work started.
    pub notes: &'a Notifications,
    /// The stats when the command started.
    pub base: outbox_std::Stats,
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
    /// Fails (events stay queued) when the deadline passes, when the
    /// endpoint refuses the key (401/403), or, without a deadline, after
    /// [`UNREACHABLE_AFTER`] consecutive transport failures.
    pub fn wait_until(
        &self,
        progress: &mut Progress,
        show: impl Fn(&ClientStats) -> (u64, u64, String),
        goal: impl Fn(&ClientStats) -> bool,
    ) -> CliResult<ClientStats> {
        loop {
            let stats = self.stats()?;
            let (position, total, message) = show(&stats);
            progress.set_total(total);
            progress.update(position, message);
            if goal(&stats) {
                return Ok(stats);
            }
            let s = &stats.core;
            if s.halted {
                return Err(CliError::failure(format!(
                    "{} refused the key (401/403): wrong or missing --key; {} events stay queued in {}",
                    self.endpoint.url,
                    s.pending_events,
                    self.db.display()
                )));
            }
            if let Some(deadline) = self.deadline {
                if Instant::now() >= deadline {
                    return Err(CliError::queued(format!(
                        "timed out with {} events still queued in {}; run `outbox flush` to deliver them",
                        s.pending_events,
                        self.db.display()
                    )));
                }
            }
            let wait = self.deadline.map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            });
            if let Some(note) = self.notes.recv_timeout(wait) {
                for note in std::iter::once(note).chain(self.notes.try_iter()) {
                    self.on_note(progress, note)?;
                }
            }
        }
    }

    /// Drains pending notifications without waiting.
    pub fn drain_notes(&self, progress: &mut Progress) -> CliResult {
        for note in self.notes.try_iter() {
            self.on_note(progress, note)?;
        }
        Ok(())
    }

    fn on_note(&self, progress: &mut Progress, note: Notification) -> CliResult {
        match note {
            Notification::RetryScheduled {
                attempt,
                cause: RetryCause::Transport,
                ..
            } if self.deadline.is_none() && attempt >= UNREACHABLE_AFTER => {
                let pending = self.stats().map(|s| s.core.pending_events).unwrap_or(0);
                Err(CliError::queued(format!(
                    "cannot reach {} ({}); {pending} events stay queued in {}; \
                     run `outbox flush` once it is up",
                    self.endpoint.url,
                    probe(&self.endpoint.url),
                    self.db.display()
                )))
            }
            Notification::Rejected { seq, status, .. } => {
                progress.println(&format!(
                    "outbox: event #{seq} rejected by the endpoint ({status}); moved to the dead-letter table"
                ));
                Ok(())
            }
            _ => Ok(()),
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
