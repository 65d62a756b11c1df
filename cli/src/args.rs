//! The command line: every subcommand and flag, with values checked while
//! parsing so a bad one is one clear line and exit code 2.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Default database path when neither `--db` nor `OUTBOX_DB` is given.
pub const DEFAULT_DB: &str = "outbox.db";

/// outbox: offline-first, lossless event delivery.
///
/// Events are stored durably before any network is touched, then uploaded in
/// batches to `<endpoint>/v1/batch` with retries until the server has them.
///
/// Exit codes: 0 done; 1 failure; 2 bad command line; 3 events still queued
/// (time ran out: --timeout, or without it 30 s without progress; they stay
/// stored for the next run); 4 bad input (--strict met a bad line, or no
/// line was valid); 130 / 143 `send` stopped by SIGINT / SIGTERM (it
/// commits and names the last line read, all stored; a second signal ends
/// it at once). A file-size limit (SIGXFSZ) is a failure (1) that names
/// the last line known stored.
#[derive(Debug, Parser)]
#[command(name = "outbox", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store JSON events (one object per line) and deliver them.
    Send(SendArgs),
    /// Deliver what is queued; exit 0 when the queue is empty.
    Flush(FlushArgs),
    /// Show the queue: pending events and bytes, oldest age, dead letters, last error.
    Status(StatusArgs),
    /// List, export, requeue or purge the events the server rejected for good.
    #[command(name = "dead-letter", subcommand)]
    DeadLetter(DeadLetterCommand),
    /// Run a reference /v1/batch collector (dedup, fault injection).
    Collect(CollectArgs),
    /// Bridge a device's serial frames to the endpoint (serial port, stdio or TCP).
    Gateway(GatewayArgs),
    /// Show what outbox does, on this machine, in under a minute.
    Demo(DemoArgs),
}

/// Where the queue lives.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// The queue's SQLite database.
    ///
    #[cfg_attr(
        feature = "encryption",
        doc = "Encrypted at rest (SQLCipher) with the key in OUTBOX_DB_KEY when it is set: a \
               passphrase, or a raw key written x'<64 hex digits>'; only that key opens it \
               again (a wrong or missing key is an error and the file is left untouched). \
               Unset: a plaintext database. The key is read from the environment only, \
               never from a flag, and never printed."
    )]
    #[cfg_attr(
        not(feature = "encryption"),
        doc = "Plaintext: this build has no encryption (cargo feature `encryption`), so a set \
               OUTBOX_DB_KEY is an error rather than a database left unencrypted."
    )]
    #[arg(long, env = "OUTBOX_DB", value_name = "PATH", default_value = DEFAULT_DB)]
    pub db: PathBuf,
}

/// Where events go.
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// Base URL of the collector; batches go to <URL>/v1/batch.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub endpoint: String,
    /// The write key, sent as HTTP Basic user name with an empty password
    /// (what Segment and RudderStack read), or as a Bearer token with
    /// --bearer. Without a key no Authorization header is sent.
    #[arg(long, env = "OUTBOX_KEY", value_name = "KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Allow http:// to a host that is not loopback (events and key then
    /// travel unencrypted). Without it only https://, or http:// to
    /// localhost / 127.0.0.0/8 / [::1], is accepted.
    #[arg(long)]
    pub allow_plain_http: bool,
}

/// How batches go on the wire: shared by `send`, `flush` and `gateway`, so
/// every command that posts offers the same switches.
#[derive(Debug, Clone, Args)]
pub struct WireArgs {
    /// Compress request bodies with gzip: on (the default, level 1), off,
    /// or a level 0-9; `--gzip` alone means on. Batch limits count the
    /// body before compression either way.
    #[arg(long, value_name = "off|on|LEVEL", default_value = "on", num_args = 0..=1,
          default_missing_value = "on", value_parser = parse_gzip)]
    pub gzip: Gzip,
    /// Send the key as `Authorization: Bearer KEY` (an OAuth token) instead
    /// of HTTP Basic.
    #[arg(long, conflicts_with = "basic_auth")]
    pub bearer: bool,
    /// HTTP Basic auth, the default since outbox 0.2; kept so old scripts run.
    #[arg(long, hide = true)]
    pub basic_auth: bool,
}

/// The `--gzip` setting: the level request bodies are compressed at, or
/// `None` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gzip(pub Option<u32>);

/// `on` (level [`outbox_std::http::DEFAULT_GZIP_LEVEL`]), `off`, or a level 0-9.
pub fn parse_gzip(s: &str) -> Result<Gzip, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(Gzip(Some(outbox_std::http::DEFAULT_GZIP_LEVEL))),
        "off" | "false" | "no" => Ok(Gzip(None)),
        n => match n.parse::<u32>() {
            Ok(level) if level <= 9 => Ok(Gzip(Some(level))),
            _ => Err(format!("{s:?} is not off, on or a level 0-9")),
        },
    }
}

/// `outbox send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub db: DbArg,
    /// When to upload while input is read: immediate, manual, app-close or
    /// period=DURATION (e.g. period=30s). At the end of input everything is flushed.
    #[arg(long, value_name = "MODE", default_value = "immediate", value_parser = parse_flush_mode)]
    pub flush_mode: FlushModeArg,
    /// In period mode, flush when this many events are pending (0 turns it off).
    #[arg(long, value_name = "N")]
    pub threshold: Option<u32>,
    /// Which networks uploads may use: any, or unmetered only (then a
    /// metered or unknown --network-kind uploads nothing: every line is
    /// stored and the run ends without waiting; `outbox flush` delivers later).
    #[arg(long, value_name = "any|unmetered", default_value = "any", value_parser = parse_network_policy)]
    pub network_policy: outbox_std::UploadPolicy,
    /// The network this run is on: unmetered (a host running outbox is
    /// taken for a wired or Wi-Fi link), metered or unknown.
    #[arg(long, value_name = "KIND", default_value = "unmetered", value_parser = parse_network_kind)]
    pub network_kind: outbox_std::NetworkKind,
    #[command(flatten)]
    pub wire: WireArgs,
    /// Give up after this long (e.g. 30s, 2m), input reading included, with
    /// exit code 3; stored events stay queued. Without it: 30 s without progress.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Exit once every event is stored, without waiting for delivery.
    #[arg(long)]
    pub no_wait: bool,
    /// Read events from FILE instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Stop at the first bad line (exit 4), having stored only the lines before it.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub automatic: AutomaticArgs,
    /// Send no `outbox dropped events` loss report (by default, after an
    /// event is dropped the next batch carries one, with counts by reason).
    #[arg(long)]
    pub no_loss_reports: bool,
    /// Drop, unsent, events older than this (e.g. 5d, 30d: wall-clock time
    /// since they were tracked) when their batch is formed; reported as lost
    /// with reason `expired`. Critical events never expire. Default: off.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_event_age: Option<Duration>,
}

/// What `outbox send` tracks by itself (README, "What is tracked
/// automatically"). With `--app-version` it tracks `Application Installed`
/// at the first run on a database and `Application Updated` when the
/// version or build changes. With `--foreground` the run is the app in the
/// foreground: `Application Opened` and a session that starts before the
/// first line and ends at the end of input. There is no session timeout to
/// set: a run never goes to the background, its session ends with it.
#[derive(Debug, Clone, Default, Args)]
pub struct AutomaticArgs {
    /// The app's version: `Application Installed` / `Application Updated`
    /// are tracked when it is new or changed since the last run on this database.
    #[arg(long, value_name = "VERSION")]
    pub app_version: Option<String>,
    /// The app's build, reported with its version.
    #[arg(long, value_name = "BUILD", requires = "app_version")]
    pub app_build: Option<String>,
    /// Track no lifecycle events (Application Installed, Updated, ...).
    #[arg(long)]
    pub no_lifecycle_events: bool,
    /// The run is the app in the foreground: Application Opened and
    /// session_start before the first line, session_end (with its duration)
    /// at the end of input, context.session_id on every event read.
    #[arg(long)]
    pub foreground: bool,
    /// Track no sessions (session_start, session_end, context.session_id).
    #[arg(long)]
    pub no_sessions: bool,
}

impl AutomaticArgs {
    /// These settings on a Client builder.
    pub fn apply(&self, b: outbox_std::ClientBuilder) -> outbox_std::ClientBuilder {
        let b = b.lifecycle_events(!self.no_lifecycle_events);
        // The default timeout: a run never reports a background.
        let b = if self.no_sessions {
            b.sessions(None)
        } else {
            b
        };
        let b = match &self.app_version {
            // `.app` also sets context.app.version; the name is the CLI's.
            Some(v) => b.app("outbox", v.clone()),
            None => b,
        };
        match &self.app_build {
            Some(build) => b.app_build(build.clone()),
            None => b,
        }
    }
}

/// `outbox flush`.
#[derive(Debug, Clone, Args)]
pub struct FlushArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub wire: WireArgs,
    /// Give up after this long (e.g. 30s, 2m) with exit code 3; unsent events
    /// stay queued. Without it: 30 s without progress.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Send no `outbox dropped events` loss report (by default, after an
    /// event is dropped the next batch carries one, with counts by reason).
    #[arg(long)]
    pub no_loss_reports: bool,
    /// Drop, unsent, events older than this (e.g. 5d, 30d: wall-clock time
    /// since they were tracked) when their batch is formed; reported as lost
    /// with reason `expired`. Critical events never expire. Default: off.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_event_age: Option<Duration>,
}

/// `outbox status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `outbox dead-letter`.
#[derive(Debug, Clone, Subcommand)]
pub enum DeadLetterCommand {
    /// A table of rejected events with their status and reason.
    List(DbArg),
    /// Every rejected event as one JSON line on stdout.
    Export(DbArg),
    /// Put rejected events back into the queue (same bytes, same messageId);
    /// the next `outbox flush` delivers them.
    Requeue(DeadLetterPick),
    /// Delete rejected events for good.
    Purge(DeadLetterPick),
}

/// Which dead letters `requeue` or `purge` take.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("pick").required(true).args(["all", "seq"])))]
pub struct DeadLetterPick {
    #[command(flatten)]
    pub db: DbArg,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
    /// The dead letters with these seq numbers (from `outbox dead-letter list`).
    #[arg(long, value_name = "N", num_args = 1..)]
    pub seq: Vec<u64>,
}

/// `outbox collect`.
#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one;
    /// the first line printed is `listening on http://ADDR`).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Append each accepted event to FILE as a JSON line; ids already in it
    /// are remembered, so deduplication holds across restarts.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Require this key (Basic user name, Bearer, or `writeKey` in the
    /// body); others get 401.
    #[arg(
        long,
        env = "OUTBOX_COLLECT_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// A stricter batch limit in bytes, answered with 413 (without it, like
    /// Segment: 400 for a batch over 500 000 bytes or an event over 32 KiB).
    #[arg(long, value_name = "N", value_parser = parse_positive_usize)]
    pub max_batch_bytes: Option<usize>,
    /// Probability (0..1) that a valid batch is answered --fail-status instead.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub fail_rate: f64,
    /// The status of injected failures (400..=599).
    #[arg(long, value_name = "CODE", default_value_t = 503, value_parser = parse_fail_status)]
    pub fail_status: u16,
    /// Send Retry-After: SECS with injected failures.
    #[arg(long, value_name = "SECS")]
    pub retry_after: Option<u64>,
    /// Probability (0..1) that a committed batch gets no answer (the connection is closed).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub drop_response_rate: f64,
    /// A batch holding an event with a field of this name (at any depth) gets 400.
    #[arg(long, value_name = "NAME")]
    pub reject_field: Option<String>,
    /// Seed for the fault draws (default: from the clock).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// A request's head and body must arrive within this (e.g. 30s, 500ms),
    /// however steadily its bytes trickle in; a slower one is answered 408
    /// and closed, so slow clients cannot hold the connections.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Most connections served at once; more are closed on arrival.
    #[arg(long, value_name = "N", default_value_t = crate::collect::MAX_CONNECTIONS,
          value_parser = parse_positive_usize)]
    pub max_connections: usize,
    /// Also serve a live events page on the same address (GET /: the newest
    /// accepted events, counters, events per second, a filter; updated by
    /// Server-Sent Events at /events, a self-refreshing table without
    /// JavaScript). Anyone who can reach the address sees the events.
    #[arg(long)]
    pub ui: bool,
    /// Accepted events the page keeps in memory (with --ui; 1..=10000).
    #[arg(long, value_name = "N", default_value_t = crate::collect::live::LIVE_EVENTS,
          value_parser = parse_ui_events, requires = "ui")]
    pub ui_events: usize,
}

/// `outbox gateway`.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub link: LinkArgs,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub wire: WireArgs,
    /// Largest frame accepted, in encoded bytes; a larger one is answered
    /// "too large" and the device halves its batch.
    #[arg(long, value_name = "N", default_value_t = crate::gateway::DEFAULT_MAX_FRAME_BYTES,
          value_parser = parse_frame_bytes)]
    pub max_frame_bytes: usize,
    /// Answer each batch within this long (the endpoint's answer, or "in
    /// progress" while the post goes on); keep it below the device's
    /// request timeout.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub answer_within: Duration,
    /// Baud rate set on a --serial tty.
    #[arg(long, value_name = "N", default_value_t = 115_200)]
    pub baud: u32,
}

/// Where the device's frames come from: exactly one.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct LinkArgs {
    /// A serial device (e.g. /dev/ttyUSB0 or a pty), set to raw mode.
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,
    /// Frames on stdin, answers on stdout (the log goes to stderr); ends at end of input.
    #[arg(long)]
    pub stdio: bool,
    /// Listen on ADDR (e.g. 127.0.0.1:5555; port 0 picks one, printed as
    /// `listening on ADDR`) and serve one device connection at a time. QEMU
    /// connects with `-serial tcp:ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,
}

/// `--max-frame-bytes`: 1 to [`crate::gateway::MAX_FRAME_BYTES_LIMIT`] (each
/// connection holds a buffer that large).
fn parse_frame_bytes(s: &str) -> Result<usize, String> {
    let limit = crate::gateway::MAX_FRAME_BYTES_LIMIT;
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 && n <= limit as u64 => Ok(n as usize),
        _ => Err(format!("expected a whole number from 1 to {limit}")),
    }
}

/// `outbox demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How many events to track.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(10..=99_000))]
    pub events: u32,
}

/// A flush mode as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushModeArg {
    /// Upload as soon as events are stored.
    Immediate,
    /// Only on an explicit flush (for `send`: once all input is stored).
    Manual,
    /// On background/terminate (for `send`: once all input is stored).
    AppClose,
    /// Every period, or at the threshold.
    Period(Duration),
}

impl FlushModeArg {
    /// The core's flush mode.
    pub fn to_core(self) -> outbox_core::FlushMode {
        match self {
            FlushModeArg::Immediate => outbox_core::FlushMode::Immediate,
            FlushModeArg::Manual => outbox_core::FlushMode::Manual,
            FlushModeArg::AppClose => outbox_core::FlushMode::AppClose,
            FlushModeArg::Period(_) => outbox_core::FlushMode::Period,
        }
    }

    /// The period, for `period` modes.
    pub fn period(self) -> Option<Duration> {
        match self {
            FlushModeArg::Period(d) => Some(d),
            _ => None,
        }
    }
}

/// `immediate`, `manual`, `app-close`, `period` or `period=DURATION`.
pub fn parse_flush_mode(s: &str) -> Result<FlushModeArg, String> {
    match s.trim() {
        "immediate" => Ok(FlushModeArg::Immediate),
        "manual" => Ok(FlushModeArg::Manual),
        "app-close" => Ok(FlushModeArg::AppClose),
        "period" => Ok(FlushModeArg::Period(outbox_core::FlushMode::DEFAULT_PERIOD)),
        other => match other.strip_prefix("period=") {
            Some(d) => {
                let d = parse_duration(d)?;
                if d < Duration::from_millis(1) {
                    return Err("the period must be at least 1ms".into());
                }
                Ok(FlushModeArg::Period(d))
            }
            None => Err("expected immediate, manual, app-close or period=DURATION".into()),
        },
    }
}

/// `any` or `unmetered`.
pub fn parse_network_policy(s: &str) -> Result<outbox_std::UploadPolicy, String> {
    match s.trim() {
        "any" => Ok(outbox_std::UploadPolicy::Any),
        "unmetered" => Ok(outbox_std::UploadPolicy::Unmetered),
        _ => Err("expected any or unmetered".into()),
    }
}

/// `unmetered`, `metered` or `unknown`.
pub fn parse_network_kind(s: &str) -> Result<outbox_std::NetworkKind, String> {
    match s.trim() {
        "unmetered" => Ok(outbox_std::NetworkKind::Unmetered),
        "metered" => Ok(outbox_std::NetworkKind::Metered),
        "unknown" => Ok(outbox_std::NetworkKind::Unknown),
        _ => Err("expected unmetered, metered or unknown".into()),
    }
}

/// A duration like `30s`, `2m`, `1h 30m` or `500ms`; never zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (expected e.g. 30s, 2m, 500ms)"))?;
    if d.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(d)
}

/// An `http://` or `https://` base URL with a host; a trailing `/` is dropped.
pub fn parse_endpoint(s: &str) -> Result<String, String> {
    let s = s.trim();
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("the URL must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host_only = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host_only.is_empty() {
        return Err("the URL has no host".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains spaces".into());
    }
    if let Some(port) = host.strip_prefix('[').map_or_else(
        || host.split_once(':').map(|(_, p)| p),
        |h| h.split_once("]:").map(|(_, p)| p),
    ) {
        if port.parse::<u16>().is_err() {
            return Err(format!("the port {port:?} is not a number from 0 to 65535"));
        }
    }
    if rest[authority.len()..].contains(['?', '#']) {
        return Err("the URL must not have a query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// A probability in `[0, 1]`.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a number from 0 to 1".to_string())?;
    if !(0.0..=1.0).contains(&p) {
        return Err("expected a number from 0 to 1".into());
    }
    Ok(p)
}

/// An error status, 400..=599.
pub fn parse_fail_status(s: &str) -> Result<u16, String> {
    let code: u16 = s
        .trim()
        .parse()
        .map_err(|_| "expected an HTTP status from 400 to 599".to_string())?;
    if !(400..=599).contains(&code) {
        return Err("expected an HTTP status from 400 to 599".into());
    }
    Ok(code)
}

/// The live page's event count: kept in memory, so bounded.
pub fn parse_ui_events(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=crate::collect::live::MAX_LIVE_EVENTS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {}",
            crate::collect::live::MAX_LIVE_EVENTS
        )),
    }
}

/// A count of at least 1.
pub fn parse_positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number of at least 1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flush_modes() {
        assert_eq!(parse_flush_mode("manual"), Ok(FlushModeArg::Manual));
        assert_eq!(parse_flush_mode("app-close"), Ok(FlushModeArg::AppClose));
        assert_eq!(
            parse_flush_mode("period=30s"),
            Ok(FlushModeArg::Period(Duration::from_secs(30)))
        );
        assert_eq!(
            parse_flush_mode("period=2m"),
            Ok(FlushModeArg::Period(Duration::from_secs(120)))
        );
        assert!(parse_flush_mode("period=0s").is_err());
        assert!(parse_flush_mode("period=soon").is_err());
        assert!(parse_flush_mode("sometimes").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:8080/").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert!(parse_endpoint("https://example.invalid/base").is_ok());
        assert!(parse_endpoint("http://[::1]:9/").is_ok());
        assert!(parse_endpoint("ftp://x").is_err());
        assert!(parse_endpoint("http://").is_err());
        assert!(parse_endpoint("http://:80").is_err());
        assert!(parse_endpoint("http://host:99999").is_err());
        assert!(parse_endpoint("http://host:abc").is_err());
        assert!(parse_endpoint("localhost:8080").is_err());
        assert!(parse_endpoint("http://a b").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_probability("0.5"), Ok(0.5));
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("NaN").is_err());
        assert_eq!(parse_fail_status("429"), Ok(429));
        assert!(parse_fail_status("200").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
    }
}
