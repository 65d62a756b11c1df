//! `outbox._native`: the outbox std [`Client`] for Python (PyO3, abi3).
//!
//! This is the thin native layer; `outbox/__init__.py` gives it
//! analytics-python's method names and argument checks. Events cross the
//! boundary as JSON text (made by Python's `json` module) and are parsed
//! into an [`Event`] here, so every field rule is the std Client's own.
//! Every wait (a durable track, a flush, a shutdown, a notification poll)
//! releases the GIL. Nothing from Python can make this panic: wrong types
//! are refused by PyO3's argument extraction (`TypeError`), bad values
//! become `ValueError`, a stopped or failing client `OutboxError`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use outbox_std::{
    BuildError, Client, ClientError, Event, FlushError, FlushReport, Lifecycle, NetworkKind,
    Notification, Notifications, Receipt, TrackError, UploadPolicy,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(
    _native,
    OutboxError,
    PyRuntimeError,
    "The client could not do it: it has stopped, its queue is full, or its store failed."
);
create_exception!(
    _native,
    QueueFullError,
    OutboxError,
    "The queue is full (max_queue_size events); the event was not stored."
);

/// Receipts kept for matching notifications to `messageId`s, at most; the
/// oldest are forgotten first (their notifications then carry no ids).
const MAX_RECEIPTS: usize = 100_000;

fn seconds(name: &str, secs: f64) -> PyResult<Duration> {
    if secs.is_infinite() && secs > 0.0 {
        return Ok(Duration::MAX);
    }
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, got {secs}"
        ))
    })
}

fn build_error(e: BuildError) -> PyErr {
    match e {
        BuildError::Open(_) | BuildError::Restore(_) | BuildError::Spawn(_) => {
            PyOSError::new_err(e.to_string())
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn track_error(e: TrackError) -> PyErr {
    match e {
        TrackError::Invalid(_) => PyValueError::new_err(e.to_string()),
        TrackError::QueueFull => QueueFullError::new_err(e.to_string()),
        _ => OutboxError::new_err(e.to_string()),
    }
}

fn client_error(e: ClientError) -> PyErr {
    match e {
        ClientError::Refused(_) => PyValueError::new_err(e.to_string()),
        _ => OutboxError::new_err(e.to_string()),
    }
}

fn report_dict<'py>(
    py: Python<'py>,
    r: &FlushReport,
    outcome: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("delivered", r.delivered)?;
    d.set_item("dropped", r.dropped)?;
    d.set_item("rejected", r.rejected)?;
    d.set_item("pending", r.pending)?;
    d.set_item("outcome", outcome)?;
    Ok(d)
}

/// A reason enum's name in snake case (`MaxAttempts` → `max_attempts`).
fn snake(debug: impl std::fmt::Debug) -> String {
    let text = format!("{debug:?}");
    let name = text.split(['(', ' ', '{']).next().unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The std Client, one database file, one HTTP endpoint.
#[pyclass(frozen, module = "outbox._native")]
struct NativeClient {
    client: Client,
    /// The one subscription, made at start so nothing is missed before the
    /// application starts reading.
    notes: Mutex<Notifications>,
    /// Receipts of this process's tracks, while `keep_receipts` is on.
    receipts: Mutex<VecDeque<Receipt>>,
    keep_receipts: AtomicBool,
}

impl NativeClient {
    /// The `messageId`s of the kept receipts `note` is about (removed:
    /// each event is settled once).
    fn settle(&self, note: &Notification) -> Vec<String> {
        let mut ids = Vec::new();
        let Ok(mut receipts) = self.receipts.lock() else {
            return ids;
        };
        receipts.retain(|r| {
            if r.concerns(note) {
                ids.push(r.message_id().to_string());
                false
            } else {
                true
            }
        });
        ids
    }
}

#[pymethods]
impl NativeClient {
    /// `lifecycle_events`, `sessions` (with `session_timeout` seconds),
    /// the app's name, version and build, `loss_reports` and
    /// `max_event_age` (seconds) are the std builder's settings of the same
    /// names (README, "What is tracked
    /// automatically").
    #[new]
    #[pyo3(signature = (
        path, endpoint, write_key, *, max_queue_size=None, request_timeout=None,
        lifecycle_events=true, sessions=true, session_timeout=60.0,
        app_name=None, app_version=None, app_build=None, loss_reports=true,
        upload_on="any", max_event_age=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        endpoint: String,
        write_key: String,
        max_queue_size: Option<u32>,
        request_timeout: Option<f64>,
        lifecycle_events: bool,
        sessions: bool,
        session_timeout: f64,
        app_name: Option<String>,
        app_version: Option<String>,
        app_build: Option<String>,
        loss_reports: bool,
        upload_on: &str,
        max_event_age: Option<f64>,
    ) -> PyResult<Self> {
        let upload_on = match upload_on {
            "any" => UploadPolicy::Any,
            "unmetered" => UploadPolicy::Unmetered,
            other => {
                return Err(PyValueError::new_err(format!(
                    "upload_on must be 'any' or 'unmetered', got {other:?}"
                )))
            }
        };
        if max_queue_size == Some(0) {
            return Err(PyValueError::new_err("max_queue_size must be at least 1"));
        }
        let timeout = request_timeout.map(|t| seconds("timeout", t)).transpose()?;
        let session_timeout = seconds("session_timeout", session_timeout)?;
        if session_timeout.is_zero() {
            return Err(PyValueError::new_err(
                "session_timeout must be more than 0 seconds (sessions=False turns sessions off)",
            ));
        }
        let max_event_age = max_event_age
            .map(|t| seconds("max_event_age", t))
            .transpose()?;
        if max_event_age.is_some_and(|a| a.is_zero()) {
            return Err(PyValueError::new_err(
                "max_event_age must be more than 0 seconds (None turns expiry off)",
            ));
        }
        let mut builder = Client::builder()
            .path(path)
            .endpoint(endpoint, write_key)
            .lifecycle_events(lifecycle_events)
            .sessions(sessions.then_some(session_timeout))
            .loss_reports(loss_reports)
            .upload_on(upload_on);
        if let Some(age) = max_event_age {
            builder = builder.max_event_age(age);
        }
        if app_name.is_some() || app_version.is_some() {
            builder = builder.app(
                app_name.unwrap_or_default(),
                app_version.unwrap_or_default(),
            );
        }
        if let Some(build) = app_build {
            builder = builder.app_build(build);
        }
        builder = builder.configure(|mut c| {
            if let Some(n) = max_queue_size {
                c = c.max_queue_events(n);
            }
            if let Some(t) = timeout {
                c = c.request_timeout(t);
            }
            c
        });
        // Opening restores the queue from disk: no GIL meanwhile.
        let client = py.detach(|| builder.build()).map_err(build_error)?;
        let notes = Mutex::new(client.notifications());
        Ok(NativeClient {
            client,
            notes,
            receipts: Mutex::new(VecDeque::new()),
            keep_receipts: AtomicBool::new(false),
        })
    }

    /// Queue one event given as Segment JSON; with `durable`, return only
    /// once it is committed to the database; with `critical`, as the std
    /// Client's `track_critical` (an upload of the queue up to it at once,
    /// in any flush mode). Returns its `messageId`.
    #[pyo3(signature = (event_json, durable=true, critical=false))]
    fn enqueue(
        &self,
        py: Python<'_>,
        event_json: &str,
        durable: bool,
        critical: bool,
    ) -> PyResult<String> {
        let event: Event = serde_json::from_str(event_json)
            .map_err(|e| PyValueError::new_err(format!("not a Segment event: {e}")))?;
        let client = &self.client;
        let receipt = py
            .detach(|| match (durable, critical) {
                (true, false) => client.track_durable(event),
                (true, true) => client.track_critical_durable(event),
                (false, false) => client.track(event),
                (false, true) => client.track_critical(event),
            })
            .map_err(track_error)?;
        let id = receipt.message_id().to_string();
        if self.keep_receipts.load(Ordering::Acquire) {
            if let Ok(mut receipts) = self.receipts.lock() {
                if receipts.len() >= MAX_RECEIPTS {
                    receipts.pop_front();
                }
                receipts.push_back(receipt);
            }
        }
        Ok(id)
    }

    /// The app's lifecycle: `"foreground"`, `"background"` or
    /// `"terminate"` (anything else is a `ValueError`). Tracks the
    /// lifecycle events and starts or ends sessions as the settings say.
    fn lifecycle(&self, py: Python<'_>, state: &str) -> PyResult<()> {
        let state = match state {
            "foreground" => Lifecycle::Foreground,
            "background" => Lifecycle::Background,
            "terminate" => Lifecycle::Terminate,
            other => {
                return Err(PyValueError::new_err(format!(
                "lifecycle state must be 'foreground', 'background' or 'terminate', got {other:?}"
            )))
            }
        };
        let client = &self.client;
        py.detach(|| client.lifecycle(state)).map_err(client_error)
    }

    /// The network is up (`available`) and of `kind`: `"unmetered"`,
    /// `"metered"` or `"unknown"` (anything else is a `ValueError`).
    fn set_network(&self, py: Python<'_>, available: bool, kind: &str) -> PyResult<()> {
        let kind = match kind {
            "unmetered" => NetworkKind::Unmetered,
            "metered" => NetworkKind::Metered,
            "unknown" => NetworkKind::Unknown,
            other => {
                return Err(PyValueError::new_err(format!(
                    "network kind must be 'unmetered', 'metered' or 'unknown', got {other:?}"
                )))
            }
        };
        let client = &self.client;
        py.detach(|| client.set_network(available, kind))
            .map_err(client_error)
    }

    /// Power save began (`True`) or ended: automatic uploads wait meanwhile.
    fn set_power_save(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        let client = &self.client;
        py.detach(|| client.set_power_save(on))
            .map_err(client_error)
    }

    /// Keep each track's receipt so notifications carry `message_ids`.
    fn keep_receipts(&self, on: bool) {
        self.keep_receipts.store(on, Ordering::Release);
        if !on {
            if let Ok(mut receipts) = self.receipts.lock() {
                receipts.clear();
            }
        }
    }

    /// Wait until everything tracked so far is committed.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let client = &self.client;
        py.detach(|| client.sync()).map_err(client_error)
    }

    /// Start an upload of everything pending, without waiting.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let client = &self.client;
        py.detach(|| client.flush()).map_err(client_error)
    }

    /// Upload and wait until every earlier event is settled or `timeout`
    /// seconds passed; a report either way (`outcome`: settled, timed_out,
    /// halted).
    fn flush_and_wait<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyDict>> {
        let timeout = seconds("timeout", timeout)?;
        let client = &self.client;
        match py.detach(|| client.flush_and_wait(timeout)) {
            Ok(r) => report_dict(py, &r, "settled"),
            Err(FlushError::TimedOut(r)) => report_dict(py, &r, "timed_out"),
            Err(FlushError::Halted { report, status }) => {
                let d = report_dict(py, &report, "halted")?;
                d.set_item("status", status)?;
                Ok(d)
            }
            Err(e) => Err(OutboxError::new_err(e.to_string())),
        }
    }

    /// Final upload for at most `timeout` seconds, commit, stop. What is
    /// not delivered stays in the database for the next start.
    fn shutdown<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyDict>> {
        let timeout = seconds("timeout", timeout)?;
        let client = &self.client;
        let r = py
            .detach(|| client.shutdown(timeout))
            .map_err(client_error)?;
        report_dict(py, &r, "stopped")
    }

    /// Commit and stop without an upload.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let client = &self.client;
        let r = py.detach(|| client.close()).map_err(client_error)?;
        report_dict(py, &r, "stopped")
    }

    /// The next notification as a dict, or None after `timeout` seconds.
    fn next_notification<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let timeout = seconds("timeout", timeout)?;
        let notes = &self.notes;
        let note = py.detach(|| {
            notes
                .lock()
                .ok()
                .and_then(|n| n.recv_timeout(timeout.min(Duration::from_secs(86_400))))
        });
        let Some(note) = note else {
            return Ok(None);
        };
        let ids = self.settle(&note);
        let d = PyDict::new(py);
        match &note {
            Notification::Delivered { first, last } => {
                d.set_item("kind", "delivered")?;
                d.set_item("first", first)?;
                d.set_item("last", last)?;
            }
            Notification::Dropped {
                first,
                last,
                reason,
            } => {
                d.set_item("kind", "dropped")?;
                d.set_item("first", first)?;
                d.set_item("last", last)?;
                d.set_item("reason", snake(reason))?;
            }
            Notification::Rejected {
                seq,
                status,
                reason,
            } => {
                d.set_item("kind", "rejected")?;
                d.set_item("first", seq)?;
                d.set_item("last", seq)?;
                d.set_item("status", status)?;
                d.set_item("reason", snake(reason))?;
            }
            Notification::Halted { status, reason } => {
                d.set_item("kind", "halted")?;
                d.set_item("status", status)?;
                d.set_item("reason", snake(reason))?;
            }
            Notification::Salvaged(s) => {
                d.set_item("kind", "salvaged")?;
                d.set_item("events", s.events)?;
                d.set_item("set_aside", s.set_aside.clone())?;
                d.set_item("reason", s.cause.clone())?;
            }
            Notification::Refused {
                seq,
                message_id,
                error,
            } => {
                d.set_item("kind", "refused")?;
                d.set_item("first", seq)?;
                d.set_item("last", seq)?;
                d.set_item("reason", error.to_string())?;
                if ids.is_empty() {
                    d.set_item("message_ids", PyList::new(py, [message_id])?)?;
                    return Ok(Some(d));
                }
            }
            Notification::RetryScheduled {
                attempt,
                delay,
                cause,
            } => {
                d.set_item("kind", "retry_scheduled")?;
                d.set_item("attempt", attempt)?;
                d.set_item("delay", delay.as_secs_f64())?;
                d.set_item("reason", snake(cause))?;
            }
            other => {
                d.set_item("kind", "other")?;
                d.set_item("reason", format!("{other:?}"))?;
            }
        }
        d.set_item("message_ids", PyList::new(py, ids)?)?;
        Ok(Some(d))
    }

    /// Counters: the machine's accounts and the Client's own.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let client = &self.client;
        let s = py.detach(|| client.stats()).map_err(client_error)?;
        let d = PyDict::new(py);
        d.set_item("pending", s.core.pending_events)?;
        d.set_item("in_flight", s.core.in_flight_events)?;
        d.set_item("tracked", s.core.tracked)?;
        d.set_item("restored", s.core.restored)?;
        d.set_item("delivered", s.core.delivered)?;
        // Every reason, expired included.
        d.set_item("dropped", s.core.dropped())?;
        d.set_item("rejected", s.core.rejected)?;
        d.set_item("retries", s.core.retries)?;
        d.set_item("halted", s.core.halted)?;
        d.set_item("network_up", s.core.network_up)?;
        d.set_item("uploads_allowed", s.core.uploads_allowed)?;
        d.set_item("power_save", s.core.power_save)?;
        d.set_item("dead_letters", s.dead_letters)?;
        d.set_item("commits", s.commits)?;
        d.set_item("last_error", s.last_error)?;
        d.set_item("notifications_lost", s.notifications_lost)?;
        d.set_item("path", s.path)?;
        Ok(d)
    }

    /// The database file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.client.path().to_path_buf()
    }
}

/// The native part of the `outbox` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add("OutboxError", m.py().get_type::<OutboxError>())?;
    m.add("QueueFullError", m.py().get_type::<QueueFullError>())?;
    m.add("LIBRARY_VERSION", outbox_std::LIBRARY_VERSION)?;
    Ok(())
}
