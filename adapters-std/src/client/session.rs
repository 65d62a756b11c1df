//! Automatic lifecycle events and sessions in the Client (issue 23).
//!
//! The rules are the core's [`Sessions`]; this file turns its outputs into
//! Segment events and keeps its state with the queue. The tracker sits
//! behind a mutex in [`Shared`], which the handles and the worker hold:
//! `track`, `lifecycle` and `shutdown` feed it the wall-clock time and send
//! the automatic events it produces to the worker ahead of the caller's own
//! message, while holding the lock, so they are queued in the order they
//! happened and go through the same queue, limits and flush rules as any
//! event.
//!
//! A session whose background outlasts the timeout is ended by the worker
//! on its own: [`Shared::due`] says when (the core's `poll_timeout`), the
//! worker sleeps until then like for any of its deadlines, and
//! [`Shared::expire`] ticks the core and hands it the `session_end` to
//! track. The worker never waits for the lock (a handle holding it may be
//! waiting for the worker's channel): it tries, and tries again shortly
//! when a handle has it. Once it holds the lock it first handles every
//! message already sent, so the end is queued after every event of the
//! session. A process killed meanwhile ends the session at its next start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outbox_core::session::{
    AppVersion, SessionConfig, SessionId, SessionOutput, Sessions, DEFAULT_SESSION_TIMEOUT,
};
use outbox_core::Lifecycle;
use serde_json::{json, Map, Value};

use super::shape::Shape;
use super::worker::Msg;
use super::Inner;
use crate::event::Event;
use crate::sqlite::StoredSession;
use crate::Payload;

/// The builder's lifecycle and session settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) lifecycle_events: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) version: String,
    pub(crate) build: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lifecycle_events: true,
            timeout: Some(DEFAULT_SESSION_TIMEOUT),
            version: String::new(),
            build: String::new(),
        }
    }
}

impl Settings {
    /// Anything to track automatically.
    pub(crate) fn enabled(&self) -> bool {
        self.lifecycle_events || self.timeout.is_some()
    }
}

/// Milliseconds since the Unix epoch (0 before it): the clock the core's
/// sessions run on, since their times are stored across restarts.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The core component and what the events need besides.
pub(crate) struct Tracker {
    sessions: Sessions,
    version: String,
    build: String,
    previous: Option<(String, String)>,
    anonymous_id: String,
}

impl Tracker {
    /// Started from what the store kept (`None`: a new install).
    pub(crate) fn start(settings: &Settings, stored: Option<StoredSession>) -> Self {
        let mut sessions = Sessions::new(SessionConfig {
            lifecycle_events: settings.lifecycle_events,
            session_timeout: settings.timeout,
        });
        let anonymous_id = stored
            .as_ref()
            .map(|s| s.anonymous_id.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // A version never stored (or stored empty) is a new install.
        let previous = stored
            .as_ref()
            .filter(|s| !(s.version.is_empty() && s.build.is_empty()))
            .map(|s| (s.version.clone(), s.build.clone()));
        let app = AppVersion {
            version: &settings.version,
            build: &settings.build,
        };
        let unknown = settings.version.is_empty() && settings.build.is_empty();
        let before = match &previous {
            // An app that names no version has nothing to report: no
            // install or update is tracked, and the stored one is kept.
            _ if unknown => Some(app),
            Some((v, b)) => Some(AppVersion {
                version: v,
                build: b,
            }),
            None => None,
        };
        sessions.start(now_ms(), stored.map(|s| s.state), app, before);
        let (version, build) = match (&previous, unknown) {
            (Some((v, b)), true) => (v.clone(), b.clone()),
            _ => (settings.version.clone(), settings.build.clone()),
        };
        Tracker {
            sessions,
            version,
            build,
            previous,
            anonymous_id,
        }
    }

    /// The state to store: when it changed, or always with `force`.
    fn stored(&mut self, force: bool) -> Option<StoredSession> {
        let state = match self.sessions.take_state() {
            Some(s) => s,
            None if force => self.sessions.state(),
            None => return None,
        };
        Some(StoredSession::new(
            state,
            self.version.clone(),
            self.build.clone(),
            self.anonymous_id.clone(),
        ))
    }

    /// The automatic event for one output of the core.
    fn event(&self, o: SessionOutput) -> Event {
        let app = || json!({"version": self.version, "build": self.build});
        let (name, properties, session) = match o {
            SessionOutput::Installed => ("Application Installed", app(), self.sessions.current()),
            SessionOutput::Updated => {
                let (pv, pb) = self.previous.clone().unwrap_or_default();
                let mut p = app();
                p["previous_version"] = Value::String(pv);
                p["previous_build"] = Value::String(pb);
                ("Application Updated", p, self.sessions.current())
            }
            SessionOutput::Opened {
                from_background,
                session,
            } => {
                let mut p = app();
                p["from_background"] = Value::Bool(from_background);
                ("Application Opened", p, session)
            }
            SessionOutput::Backgrounded { session } => {
                ("Application Backgrounded", json!({}), session)
            }
            SessionOutput::SessionStart { id } => ("session_start", json!({}), Some(id)),
            SessionOutput::SessionEnd { id, duration } => (
                "session_end",
                json!({"duration": duration.as_secs_f64()}),
                Some(id),
            ),
        };
        let mut event = Event::track(name)
            .anonymous_id(self.anonymous_id.clone())
            .properties(properties);
        if let Some(id) = session {
            stamp(&mut event, id);
        }
        event
    }
}

/// `context.session_id = id`, unless the event has one of its own.
fn stamp(event: &mut Event, id: SessionId) {
    if !matches!(event.context, Some(Value::Object(_))) {
        event.context = Some(Value::Object(Map::new()));
    }
    if let Some(Value::Object(c)) = &mut event.context {
        c.entry("session_id").or_insert(Value::from(id));
    }
}

/// The tracker, shared by the handles and the worker.
pub(crate) struct Shared {
    tracker: Mutex<Tracker>,
    /// When the open session's background outlasts the timeout (the
    /// core's `poll_timeout`, wall-clock ms; 0: nothing due). Written with
    /// the lock held, read by the worker without it.
    due: AtomicU64,
    shape: Arc<Shape>,
}

/// What the worker got from [`Shared::expire`].
pub(crate) enum Expired<'a> {
    /// Nothing due yet, or nothing left to end.
    Nothing,
    /// A handle holds the lock: try again shortly.
    Busy,
    /// Due: the lock is held. Handle every message already queued, then
    /// [`Expiry::finish`] it.
    Due(Expiry<'a>),
}

/// The lock, held by the worker while it ends a timed-out session.
pub(crate) struct Expiry<'a> {
    guard: MutexGuard<'a, Tracker>,
    shared: &'a Shared,
}

impl Expiry<'_> {
    /// Tick the core now: the automatic events to track (a `session_end`)
    /// and the state to store after the commit, when it changed.
    pub(crate) fn finish(mut self, mut track: impl FnMut(Payload)) -> Option<StoredSession> {
        self.guard.sessions.tick(now_ms());
        self.shared.drain(&mut self.guard, false, |p| {
            track(p);
            true
        })
    }
}

impl Shared {
    pub(crate) fn new(tracker: Tracker, shape: Arc<Shape>) -> Self {
        let shared = Shared {
            tracker: Mutex::new(tracker),
            due: AtomicU64::new(0),
            shape,
        };
        shared.rearm(&shared.lock());
        shared
    }

    fn lock(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the worker must call [`expire`](Self::expire) (wall-clock ms).
    pub(crate) fn due(&self) -> Option<u64> {
        Some(self.due.load(Ordering::Acquire)).filter(|&d| d != 0)
    }

    fn rearm(&self, t: &Tracker) {
        let due = t.sessions.poll_timeout().unwrap_or(0);
        self.due.store(due, Ordering::Release);
    }

    /// For the worker: when a session end is due, the lock, without ever
    /// waiting for it.
    pub(crate) fn expire(&self) -> Expired<'_> {
        if self.due().is_none_or(|d| now_ms() < d) {
            return Expired::Nothing;
        }
        let guard = match self.tracker.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Expired::Busy,
        };
        Expired::Due(Expiry {
            guard,
            shared: self,
        })
    }

    /// The tracker's automatic events as payloads, in order, to `each`
    /// (which returns false to stop), then its state when it changed (or
    /// always, with `force`); the worker's deadline follows the new state.
    fn drain(
        &self,
        t: &mut Tracker,
        force: bool,
        mut each: impl FnMut(Payload) -> bool,
    ) -> Option<StoredSession> {
        while let Some(o) = t.sessions.poll_output() {
            match self.shape.payload(t.event(o)) {
                Ok(p) => {
                    if !each(p) {
                        break;
                    }
                }
                Err(e) => log::warn!("outbox: an automatic event was refused: {e}"),
            }
        }
        self.rearm(t);
        t.stored(force)
    }
}

type Guard<'a> = Option<MutexGuard<'a, Tracker>>;

impl Inner {
    fn tracker(&self) -> Guard<'_> {
        self.session.as_ref().map(|s| s.lock())
    }

    /// Queue the tracker's automatic events, then its state when it
    /// changed (or always, with `force`).
    fn send_automatic(&self, t: &mut Tracker, force: bool) {
        let Some(shared) = &self.session else {
            return;
        };
        let stored = shared.drain(t, force, |p| {
            let msg = Msg::Track {
                critical: false,
                payload: p.bytes,
                durable: None,
                seq: Arc::new(OnceLock::new()),
                message_id: p.message_id,
                wall_ms: None,
            };
            self.tx.send(msg).is_ok()
        });
        if let Some(s) = stored {
            let _ = self.tx.send(Msg::Session(s));
        }
    }

    /// At start: the events of the start (a dead session's end, an
    /// install or update) and the state, once the worker runs.
    pub(super) fn start_sessions(&self) {
        if let Some(mut t) = self.tracker() {
            self.send_automatic(&mut t, true);
        }
    }

    /// Before the caller's event: end a timed-out session, stamp the open
    /// session's id. Hold the guard until the event is sent.
    pub(super) fn session_event(&self, event: &mut Event) -> Guard<'_> {
        let mut guard = self.tracker();
        if let Some(t) = guard.as_deref_mut() {
            let id = t.sessions.event(now_ms());
            self.send_automatic(t, false);
            if let Some(id) = id {
                stamp(event, id);
            }
        }
        guard
    }

    /// Before the machine hears of a lifecycle change: its events. Hold
    /// the guard until the change is sent (it wakes the worker, which then
    /// sleeps until a background's timeout at most).
    pub(super) fn session_lifecycle(&self, state: Lifecycle) -> Guard<'_> {
        let mut guard = self.tracker();
        if let Some(t) = guard.as_deref_mut() {
            t.sessions.lifecycle(now_ms(), state);
            self.send_automatic(t, false);
        }
        guard
    }

    /// Before stopping: end a timed-out session and store the state with
    /// the time last seen, so the next start ends an open session there.
    pub(super) fn session_stop(&self) {
        if self.worker.lock().map(|w| w.is_none()).unwrap_or(true) {
            return;
        }
        if let Some(mut t) = self.tracker() {
            t.sessions.tick(now_ms());
            self.send_automatic(&mut t, true);
        }
    }
}
