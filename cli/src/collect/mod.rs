//! A reference collector for the `/v1/batch` contract.
//!
//! `POST /v1/batch` with a JSON body `{"batch": [event, ...], "sentAt": ...}`
//! (optionally gzip-encoded). In order, a batch is checked for:
//!
//! 1. the key, when one is configured (`Authorization: Bearer KEY`, or Basic
//!    with KEY as the user name): otherwise **401**, nothing stored;
//! 2. its size (on the wire and decoded) against `max_batch_bytes`: **413**;
//! 3. its JSON: an object whose `batch` is an array of objects each with a
//!    non-empty string `messageId`: otherwise **400**;
//! 4. the reject field: a batch holding an event with a field of that name
//!    (at any depth) gets **400**, nothing stored (a poison event);
//! 5. injected faults ([`Faults`]).
//!
//! A batch that passes is committed at once: each event whose `messageId`
//! was never seen is appended as one JSON line to the out file (flushed and
//! synced before the answer), the others are counted as duplicates. The
//! answer is **200** `{"success":true,"accepted":N,"duplicates":M}`. The ids
//! already in the out file are loaded at start, so deduplication holds
//! across restarts.
//!
//! The collector runs on its own threads ([`Collector::start`]) and is used
//! both by `outbox collect` and, in-process, by `outbox demo`. It serves at
//! most [`Config::max_connections`] connections; each request must arrive in
//! full within [`Config::request_timeout`] of its first byte (408 otherwise),
//! so clients trickling bytes cannot hold them; a body whose length is
//! ambiguous (RFC 9112 6.3) is refused with 400 ([`http`]). The out file is
//! never reached through a symbolic link and is created 0600.
//!
//! With [`Config::live_events`] set (`outbox collect --ui`, and the demo),
//! the same listener also serves a live events page: `GET /` ([`page`]),
//! `GET /events` ([`sse`]), fed by a bounded in-memory view ([`live`]) that
//! the ingest path updates without ever waiting for a viewer.

pub mod faults;
pub mod http;
pub mod live;
pub mod losses;
pub mod page;
pub mod segment;
pub mod sse;
pub mod viewer;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

pub use faults::{BatchInfo, Failure, Faults, NoFaults, RandomFaults, Rng};
use http::{HttpError, Limits, Response};
use live::Live;
use page::UiRoute;
use segment::Route;

/// The path of the batch endpoint.
pub const BATCH_PATH: &str = "/v1/batch";

/// Most connections served at once by default; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 256;

/// An idle kept-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default time a request's head and body have to arrive in full.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a collector behaves.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The key clients must present; `None` accepts any request.
    pub key: Option<String>,
    /// A stricter batch limit (on the wire and decoded) answered with 413;
    /// `None`: Segment's 400 above 500 000 bytes only.
    pub max_batch_bytes: Option<usize>,
    /// A batch holding an event with a field of this name gets 400.
    pub reject_field: Option<String>,
    /// Where accepted events are appended as JSON lines (and ids reloaded from).
    pub out: Option<PathBuf>,
    /// The time a request's head and body have to arrive in full, counted
    /// from its first byte (however steadily the bytes trickle in); a
    /// slower request is answered 408 and closed. `None`: [`REQUEST_TIMEOUT`].
    pub request_timeout: Option<Duration>,
    /// Most connections served at once; `None`: [`MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// Serve the live events page (`GET /`, `GET /events`) keeping this
    /// many of the last accepted events in memory; `None`: no page (404).
    pub live_events: Option<usize>,
}

/// Why a collector could not start.
#[derive(Debug)]
pub enum StartError {
    /// The listen address could not be resolved or bound.
    Bind(String, io::Error),
    /// The out file could not be opened, read or repaired.
    OutFile(PathBuf, io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            StartError::OutFile(path, e) => write!(f, "cannot use {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for StartError {}

/// What happened to one request to the batch endpoint.
#[derive(Clone, Debug)]
pub struct BatchLog {
    /// Its number (every POST to /v1/batch counts).
    pub number: u64,
    /// Who sent it.
    pub peer: SocketAddr,
    /// The status answered; `None` when no answer was sent.
    pub status: Option<u16>,
    /// Events in the batch (0 when it could not be read).
    pub events: usize,
    /// New events committed.
    pub accepted: usize,
    /// Events already seen.
    pub duplicates: usize,
    /// What else to say (the error, the injected fault).
    pub note: String,
    /// The loss reports in the batch, newly accepted, described (each is
    /// printed on its own line; they are not among `events`/`accepted`).
    pub loss_reports: Vec<String>,
}

impl fmt::Display for BatchLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch {} from {}: ", self.number, self.peer)?;
        match self.status {
            Some(s) => write!(f, "{s}")?,
            None => write!(f, "no answer")?,
        }
        write!(
            f,
            ", {} events, {} accepted, {} duplicates",
            self.events, self.accepted, self.duplicates
        )?;
        if !self.note.is_empty() {
            // The note may quote the client's bytes (a messageId, say).
            write!(f, " ({})", crate::printable::escape_controls(&self.note))?;
        }
        for report in &self.loss_reports {
            // Its text is the client's.
            write!(
                f,
                "\nbatch {}: {}",
                self.number,
                crate::printable::escape_controls(report)
            )?;
        }
        Ok(())
    }
}

/// A collector's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests to the batch endpoint.
    pub batches: u64,
    /// Distinct events committed.
    pub accepted: u64,
    /// Events received again after being committed (absorbed by dedup).
    pub duplicates: u64,
    /// Batches answered 400 (malformed, or holding a poison event).
    pub bad_requests: u64,
    /// Batches answered 401.
    pub unauthorized: u64,
    /// Requests refused as too large (400 over Segment's limits, or 413
    /// over a configured `max_batch_bytes`).
    pub too_large: u64,
    /// Events that came without a `messageId` and were given one (counted
    /// apart from `accepted`'s dedup: nothing can deduplicate them).
    pub assigned_ids: u64,
    /// Batches answered with an injected failure.
    pub injected_failures: u64,
    /// Committed batches whose answer was dropped on purpose.
    pub dropped_responses: u64,
    /// Connections closed unanswered because the network was made to look down.
    pub refused: u64,
    /// Message ids known at start (from the out file).
    pub known_at_start: u64,
    /// Distinct loss reports accepted (not counted in `accepted`).
    pub loss_reports: u64,
    /// Events those reports say their clients dropped.
    pub reported_lost: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary: {} batches, {} events accepted, {} duplicates absorbed, \
             {} without messageId (ids assigned), \
             {} bad requests (400), {} unauthorized (401), {} too large, \
             {} failures injected, {} responses dropped, {} connections refused; \
             losses reported by clients: {} events dropped in {} reports",
            self.batches,
            self.accepted,
            self.duplicates,
            self.assigned_ids,
            self.bad_requests,
            self.unauthorized,
            self.too_large,
            self.injected_failures,
            self.dropped_responses,
            self.refused,
            self.reported_lost,
            self.loss_reports
        )
    }
}

/// A callback told about every batch.
pub type Logger = Box<dyn Fn(&BatchLog) + Send + Sync>;

struct State {
    seen: HashSet<String>,
    out: Option<File>,
    summary: Summary,
    faults: Box<dyn Faults>,
    next_batch: u64,
}

struct Shared {
    config: Config,
    state: Mutex<State>,
    stop: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    log: Option<Logger>,
    /// The live events page's view, when it is served.
    live: Option<Arc<Live>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep serving regardless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, entry: &BatchLog) {
        if let Some(log) = &self.log {
            log(entry);
        }
    }

    /// Tells the live view (if any) about something.
    fn live(&self, f: impl FnOnce(&Live)) {
        if let Some(live) = &self.live {
            f(live);
        }
    }

    /// A connection closed unanswered on purpose.
    fn refused(&self) {
        self.state().summary.refused += 1;
        self.live(Live::refused);
    }
}

/// A running collector. Dropping it stops it.
pub struct Collector {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Collector {
    /// Binds `listen`, loads the ids already in the out file and starts serving.
    pub fn start(
        listen: &str,
        config: Config,
        faults: Box<dyn Faults>,
        log: Option<Logger>,
    ) -> Result<Collector, StartError> {
        let addrs: Vec<SocketAddr> = listen
            .to_socket_addrs()
            .map_err(|e| StartError::Bind(listen.to_string(), e))?
            .collect();
        let listener =
            TcpListener::bind(&addrs[..]).map_err(|e| StartError::Bind(listen.to_string(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(listen.to_string(), e))?;
        let (seen, out) = match &config.out {
            Some(path) => {
                let (seen, file) =
                    open_out(path).map_err(|e| StartError::OutFile(path.clone(), e))?;
                (seen, Some(file))
            }
            None => (HashSet::new(), None),
        };
        let summary = Summary {
            known_at_start: seen.len() as u64,
            ..Summary::default()
        };
        let live = config
            .live_events
            .map(|n| Arc::new(Live::new(n, config.key.clone())));
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                seen,
                out,
                summary,
                faults,
                next_batch: 1,
            }),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            log,
            live,
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("collect-accept".into())
                .spawn(move || accept_loop(listener, shared))
                .map_err(|e| StartError::Bind(listen.to_string(), e))?
        };
        Ok(Collector {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients should use (`http://ADDR`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The live events page's address, when it is served.
    pub fn page_url(&self) -> Option<String> {
        self.shared
            .live
            .as_ref()
            .map(|_| format!("{}/", self.url()))
    }

    /// The totals so far.
    pub fn summary(&self) -> Summary {
        self.shared.state().summary
    }

    /// Whether an event with this `messageId` has been committed.
    pub fn has(&self, message_id: &str) -> bool {
        self.shared.state().seen.contains(message_id)
    }

    /// Every committed `messageId` (those loaded from the out file included).
    pub fn message_ids(&self) -> HashSet<String> {
        self.shared.state().seen.clone()
    }

    /// Stops serving: no new connections, open ones are shut. Returns the totals.
    pub fn shutdown(mut self) -> Summary {
        self.stop();
        self.summary()
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        for (_, conn) in self.shared.conns().drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Make what was committed durable even if the caller exits now.
        if let Some(out) = &self.shared.state().out {
            let _ = out.sync_all();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop();
        }
    }
}

/// Opens (creating) the out file for appending and loads the ids in it.
/// Lines that are not JSON events with a string `messageId` (a torn last
/// line after a crash, say) are skipped. A file not ending in a newline gets
/// one, so the next event starts on its own line.
///
/// A symbolic link is refused, not followed (as the store refuses one):
/// accepted events may be personal data, and a link would append them to
/// whatever file it names, with that file's owner and mode. So is anything
/// but a regular file (a FIFO would block the collector).
fn open_out(path: &Path) -> io::Result<(HashSet<String>, File)> {
    let refuse = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file; give the path of a file to append to"),
        )
    };
    match path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("a symbolic link")),
        Ok(m) if m.is_dir() => return Err(refuse("a directory")),
        Ok(m) if !m.is_file() => return Err(refuse("a special file (a FIFO, device or socket)")),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    // Accepted events may be personal data: a new file is the owner's only.
    // A link swapped in after the check above is still not followed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let mut file = options.open(path).map_err(|e| {
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            refuse("a symbolic link")
        } else {
            e
        }
    })?;
    if !file.metadata()?.is_file() {
        return Err(refuse("a special file"));
    }
    let mut seen = HashSet::new();
    let mut reader = BufReader::new(&file);
    let mut line = Vec::new();
    let mut last_byte = None;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        last_byte = line.last().copied();
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&line) {
            if let Some(Value::String(id)) = map.get("messageId") {
                seen.insert(id.clone());
            }
        }
    }
    drop(reader);
    if last_byte.is_some_and(|b| b != b'\n') {
        file.seek(SeekFrom::End(0))?;
        file.write_all(b"\n")?;
        file.sync_data()?;
    }
    Ok((seen, file))
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            // Out of descriptors and the like: back off a little.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        // With the live page served, a made-up outage must not take the
        // page down with it: batch requests are refused once their route is
        // known (in `handle`), the page's never.
        if shared.live.is_none() && shared.state().faults.refuse() {
            shared.refused();
            drop(stream);
            continue;
        }
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = shared.conns();
            if conns.len() >= shared.config.max_connections.unwrap_or(MAX_CONNECTIONS) {
                continue;
            }
            match stream.try_clone() {
                Ok(clone) => {
                    conns.insert(id, clone);
                }
                Err(_) => continue,
            }
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("collect-conn".into())
            .spawn(move || {
                serve(stream, &conn_shared);
                conn_shared.conns().remove(&id);
            });
        if spawned.is_err() {
            shared.conns().remove(&id);
        }
    }
}

/// What to do after handling one request.
enum Reply {
    /// Answer, then keep the connection open (unless the response says close).
    Answer(Response),
    /// Close the connection without answering.
    Hangup,
    /// Hand the connection over to the live events stream.
    Stream(Arc<Live>),
}

/// The read half of a connection: reads wait at most [`IDLE_TIMEOUT`]
/// between requests, and within one request no longer than its deadline
/// (so a client trickling a byte at a time cannot stretch a request).
struct Paced {
    stream: TcpStream,
    /// When the request being read must be in; `None` between requests.
    deadline: Option<Instant>,
}

impl Paced {
    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = match self.deadline {
            None => IDLE_TIMEOUT,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                left
            }
        };
        self.stream.set_read_timeout(Some(wait))?;
        self.stream.read(buf)
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(Paced {
        stream: read_half,
        deadline: None,
    });
    let mut writer = stream;
    let (max_body, too_large_status) = segment::body_limit(&shared.config);
    let limits = Limits {
        max_body,
        too_large_status,
    };
    let request_timeout = shared.config.request_timeout.unwrap_or(REQUEST_TIMEOUT);
    while !shared.stop.load(Ordering::SeqCst) {
        // Wait (idle) for the next request's first byte; from then on the
        // whole request has `request_timeout` to arrive.
        reader.get_mut().deadline = None;
        match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(_) => {}
        }
        reader.get_mut().deadline = Instant::now().checked_add(request_timeout);
        let read = http::read_request(&mut reader, limits, &mut writer);
        // Any wait that ran out within a request ran into its deadline
        // (the socket's timer may fire a hair before the deadline's instant).
        let late = reader.get_ref().past_deadline()
            || matches!(&read, Err(HttpError::Io(e))
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
        reader.get_mut().deadline = None;
        let reply = match read {
            Err(HttpError::Io(_)) if late => {
                let reason = format!(
                    "the request did not arrive in full within {}",
                    humantime::format_duration(request_timeout)
                );
                let mut resp = Response::error(408, &reason);
                resp.close = true;
                Reply::Answer(resp)
            }
            Ok(None) | Err(HttpError::Io(_)) => return,
            Err(HttpError::Bad { status, reason }) => {
                let too_large = status == too_large_status && reason.contains("exceeds the limit");
                if too_large {
                    let mut st = shared.state();
                    let number = st.next_batch;
                    st.next_batch += 1;
                    st.summary.batches += 1;
                    st.summary.too_large += 1;
                    drop(st);
                    shared.live(|l| l.rejected(status, &reason));
                    shared.log(&BatchLog {
                        number,
                        peer,
                        status: Some(status),
                        events: 0,
                        accepted: 0,
                        duplicates: 0,
                        note: reason.clone(),
                        loss_reports: Vec::new(),
                    });
                }
                let mut resp = Response::error(status, &reason);
                resp.close = true;
                Reply::Answer(resp)
            }
            Ok(Some(req)) => handle(shared, peer, &req),
        };
        match reply {
            Reply::Hangup => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Stream(live) => {
                // The stream ends the connection either way.
                let _ = sse::stream(&mut writer, &live, &shared.stop);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Answer(resp) => {
                if http::write_response(&mut writer, &resp).is_err() || resp.close {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}

fn handle(shared: &Shared, peer: SocketAddr, req: &http::Request) -> Reply {
    if let Some(reply) = handle_page(shared, req) {
        return reply;
    }
    let Some(route) = segment::route(&req.path) else {
        let mut r = Response::error(
            404,
            "not found; the collector serves POST /v1/batch and /v1/{track,identify,page,screen,group,alias}",
        );
        r.close = !req.keep_alive;
        return Reply::Answer(r);
    };
    if req.method != "POST" {
        let mut r = Response::error(405, "use POST");
        r.close = !req.keep_alive;
        return Reply::Answer(r);
    }
    if shared.state().faults.refuse() {
        shared.refused();
        return Reply::Hangup;
    }
    let mut reply = handle_batch(shared, peer, req, route);
    if let Reply::Answer(r) = &mut reply {
        r.close |= !req.keep_alive;
    }
    reply
}

/// The live events page's requests, when it is served (`None` otherwise).
fn handle_page(shared: &Shared, req: &http::Request) -> Option<Reply> {
    let live = shared.live.as_ref()?;
    let route = page::route(&req.path)?;
    if req.method != "GET" {
        let mut r = Response::error(405, "use GET");
        r.close = !req.keep_alive;
        return Some(Reply::Answer(r));
    }
    if route == UiRoute::Events {
        return Some(Reply::Stream(Arc::clone(live)));
    }
    let mut r = page::respond(&route, || live.view(SystemTime::now()));
    r.close = !req.keep_alive;
    Some(Reply::Answer(r))
}

fn handle_batch(shared: &Shared, peer: SocketAddr, req: &http::Request, route: Route) -> Reply {
    let checked = segment::accept(&shared.config, req, route);
    let mut st = shared.state();
    let number = st.next_batch;
    st.next_batch += 1;
    st.summary.batches += 1;
    let (events, assigned) = match checked {
        Ok(a) => (a.events, a.assigned),
        Err(refusal) => {
            match refusal.status {
                401 => st.summary.unauthorized += 1,
                413 => st.summary.too_large += 1,
                400 if refusal.reason.contains("limit") => st.summary.too_large += 1,
                400 => st.summary.bad_requests += 1,
                _ => {}
            }
            drop(st);
            shared.live(|l| l.rejected(refusal.status, &refusal.reason));
            shared.log(&BatchLog {
                number,
                peer,
                status: Some(refusal.status),
                events: refusal.events,
                accepted: 0,
                duplicates: 0,
                note: refusal.reason.clone(),
                loss_reports: Vec::new(),
            });
            return Reply::Answer(Response::error(refusal.status, &refusal.reason));
        }
    };
    let info = BatchInfo {
        number,
        events: events.len(),
        accepted_before: st.summary.accepted,
    };
    if let Some(failure) = st.faults.fail(&info) {
        st.summary.injected_failures += 1;
        drop(st);
        shared.live(|l| l.injected_failure(failure.status));
        let mut note = String::from("injected failure");
        if let Some(secs) = failure.retry_after {
            note.push_str(&format!(", Retry-After {secs}"));
        }
        shared.log(&BatchLog {
            number,
            peer,
            status: Some(failure.status),
            events: info.events,
            accepted: 0,
            duplicates: 0,
            note,
            loss_reports: Vec::new(),
        });
        let mut resp = Response::error(failure.status, "injected failure");
        resp.retry_after = failure.retry_after;
        return Reply::Answer(resp);
    }

    // Loss reports, new or re-sent, are not among the events logged.
    let reports_sent = events
        .iter()
        .filter(|(_, e)| losses::is_loss_report(e))
        .count();
    // Commit: new events to the out file (synced), then to the id set.
    let mut fresh: Vec<(String, Value)> = Vec::new();
    let mut batch_ids = HashSet::new();
    let mut duplicates: usize = 0;
    for (id, event) in events {
        if st.seen.contains(&id) || !batch_ids.insert(id.clone()) {
            duplicates += 1;
        } else {
            fresh.push((id, event));
        }
    }
    if let Some(out) = &mut st.out {
        let mut buf = Vec::new();
        for (_, event) in &fresh {
            // A Value always serialises; an empty line is never written.
            if serde_json::to_writer(&mut buf, event).is_ok() {
                buf.push(b'\n');
            }
        }
        let written = out.write_all(&buf).and_then(|()| out.sync_data());
        if let Err(e) = written {
            drop(st);
            let reason = format!("cannot append to the out file: {e}");
            shared.live(|l| l.rejected(500, &reason));
            shared.log(&BatchLog {
                number,
                peer,
                status: Some(500),
                events: info.events,
                accepted: 0,
                duplicates: 0,
                note: reason.clone(),
                loss_reports: Vec::new(),
            });
            return Reply::Answer(Response::error(500, &reason));
        }
    }
    let answered = fresh.len();
    // Loss reports are told apart from the events accepted.
    let mut loss_reports = Vec::new();
    for (_, event) in fresh.iter().filter(|(_, e)| losses::is_loss_report(e)) {
        st.summary.loss_reports += 1;
        st.summary.reported_lost += losses::dropped(event);
        loss_reports.push(losses::describe(event));
    }
    let accepted = answered - loss_reports.len();
    // A re-sent report is absorbed like any duplicate, but not logged as one.
    let event_duplicates = duplicates.saturating_sub(reports_sent - loss_reports.len());
    // Shown while the state is still locked, so the page's order is the
    // order of commits.
    shared.live(|l| {
        let events = fresh.iter().map(|(_, e)| e);
        let events = events.filter(|e| !losses::is_loss_report(e));
        l.accepted(events, event_duplicates as u64, SystemTime::now());
    });
    for (id, _) in fresh {
        st.seen.insert(id);
    }
    st.summary.accepted += accepted as u64;
    st.summary.duplicates += event_duplicates as u64;
    st.summary.assigned_ids += assigned as u64;
    let drop_response = st.faults.drop_response(&info);
    if drop_response {
        st.summary.dropped_responses += 1;
    }
    drop(st);
    if drop_response {
        shared.live(Live::dropped_response);
    }
    shared.log(&BatchLog {
        number,
        peer,
        status: (!drop_response).then_some(200),
        events: info.events - reports_sent,
        accepted,
        duplicates: event_duplicates,
        note: if drop_response {
            "committed, response dropped on purpose".into()
        } else {
            String::new()
        },
        loss_reports,
    });
    if drop_response {
        return Reply::Hangup;
    }
    Reply::Answer(Response::json(
        200,
        serde_json::json!({ "success": true, "accepted": answered, "duplicates": duplicates })
            .to_string(),
    ))
}
