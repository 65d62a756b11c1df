//! Automatic lifecycle events and sessions, sans-IO.
//!
//! [`Sessions`] sits beside the [`Machine`](crate::Machine): it reads no
//! clock, does no I/O and allocates nothing, so the std Client and a
//! firmware share it. The caller feeds it the app's lifecycle and every
//! event it tracks, each with the current wall-clock time in milliseconds
//! (a clock whose origin survives restarts, e.g. the Unix epoch), and drains
//! the events to track automatically with [`Sessions::poll_output`], in
//! order, before the event it is about to track.
//!
//! * Lifecycle events (Segment's spec): `Application Installed` /
//!   `Application Updated` at the first start after an install or a version
//!   change, `Application Opened` (with `from_background`) on foreground,
//!   `Application Backgrounded` on background.
//! * Sessions: `session_start` on foreground when no session is open (or
//!   the last one timed out); `session_end` with its duration when the app
//!   stayed in the background longer than the timeout (found at the next
//!   tick, foreground or event), on terminate, or at the next start when
//!   the process died with a session open (its duration runs to the last
//!   time the process was seen). Every event tracked while a session is
//!   open carries its id ([`Sessions::event`]).
//! * Time never runs backwards inside: an input whose time is earlier than
//!   one seen before (a wall clock set back) is taken at the later time, so
//!   a duration is never negative and a clock jump never ends a session
//!   early.
//! * What must survive a restart is [`SessionState`] (serde, a few bytes
//!   with postcard): [`Sessions::take_state`] hands it out when it changed
//!   enough to be worth writing; the caller stores it with its queue and
//!   gives it back to [`Sessions::start`].
//!
//! ```
//! use core::time::Duration;
//! use outbox_core::session::{AppVersion, SessionConfig, SessionOutput, Sessions, Lifecycle};
//!
//! let mut s = Sessions::new(SessionConfig::default());
//! let app = AppVersion { version: "1.0", build: "7" };
//! s.start(1_000, None, app, None);
//! s.lifecycle(1_000, Lifecycle::Foreground);
//! let mut out = vec![];
//! while let Some(o) = s.poll_output() { out.push(o) }
//! assert!(matches!(out[0], SessionOutput::Installed));
//! assert!(matches!(out[1], SessionOutput::SessionStart { id: 1_000 }));
//! assert_eq!(s.event(2_000), Some(1_000));             // a user's event carries the id
//! s.lifecycle(3_000, Lifecycle::Background);
//! s.tick(3_000 + 61_000);                               // longer than the 60 s timeout
//! let ends: Vec<_> = core::iter::from_fn(|| s.poll_output()).collect();
//! assert!(ends.contains(&SessionOutput::SessionEnd { id: 1_000, duration: Duration::from_secs(2) }));
//! ```

use core::time::Duration;

use heapless::Deque;
use serde::{Deserialize, Serialize};

pub use crate::input::Lifecycle;
use crate::time::duration_millis;

/// A session's id: the wall-clock millisecond it started, made strictly
/// greater than every id before it (so a clock set back never repeats one).
pub type SessionId = u64;

/// The default session timeout (60 s).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// `last_seen` alone is handed out for storing at most this often: a
/// process that dies loses at most this much of its session's duration.
pub const LAST_SEEN_GRANULARITY_MS: u64 = 1_000;

/// What [`Sessions`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SessionConfig {
    /// Track `Application Installed/Updated/Opened/Backgrounded` [on].
    pub lifecycle_events: bool,
    /// Track sessions with this timeout [60 s]; `None` turns them off.
    pub session_timeout: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lifecycle_events: true,
            session_timeout: Some(DEFAULT_SESSION_TIMEOUT),
        }
    }
}

/// The app's version and build, as the caller knows them now (compared
/// with the ones it stored at the last start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppVersion<'a> {
    /// e.g. `"2.3.0"` (may be empty).
    pub version: &'a str,
    /// e.g. `"431"` (may be empty).
    pub build: &'a str,
}

/// The open session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OpenSession {
    /// Its id.
    pub id: SessionId,
    /// When it started (wall-clock ms).
    pub started: u64,
    /// When the app went to the background, while it is there.
    pub backgrounded: Option<u64>,
}

/// What must survive a restart, stored with the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SessionState {
    /// The session open when this was stored.
    pub open: Option<OpenSession>,
    /// The last time the process was seen (wall-clock ms; never goes back).
    pub last_seen: u64,
    /// The highest session id ever handed out.
    pub last_id: SessionId,
}

/// An event to track automatically. `session` is the id it carries in its
/// context (`None`: outside any session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionOutput {
    /// `Application Installed`: the first start with no stored version
    /// (the adapter adds `version` and `build`).
    Installed,
    /// `Application Updated`: the version or build differs from the stored
    /// one (the adapter adds `version`, `build`, `previous_version`,
    /// `previous_build`).
    Updated,
    /// `Application Opened`.
    Opened {
        /// The app was in the background in this process before.
        from_background: bool,
        /// The session it belongs to.
        session: Option<SessionId>,
    },
    /// `Application Backgrounded`.
    Backgrounded {
        /// The session it belongs to (still open until the timeout).
        session: Option<SessionId>,
    },
    /// `session_start`.
    SessionStart {
        /// The new session.
        id: SessionId,
    },
    /// `session_end`.
    SessionEnd {
        /// The session that ended.
        id: SessionId,
        /// From its start to its end (the background, the terminate, or
        /// the last time a dead process was seen); never negative.
        duration: Duration,
    },
}

/// Lifecycle events and sessions; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Sessions {
    config: SessionConfig,
    state: SessionState,
    /// The app is in the foreground.
    visible: bool,
    /// The app was in the background earlier in this process.
    was_background: bool,
    started: bool,
    /// `state` changed in more than `last_seen` since the last `take_state`.
    dirty: bool,
    /// `last_seen` as last handed out by `take_state`.
    stored_seen: u64,
    out: Deque<SessionOutput, 8>,
}

impl Sessions {
    /// A component that has not started yet: [`start`](Self::start) it
    /// first (every other input before it is ignored).
    pub const fn new(config: SessionConfig) -> Self {
        Sessions {
            config,
            state: SessionState {
                open: None,
                last_seen: 0,
                last_id: 0,
            },
            visible: false,
            was_background: false,
            started: false,
            dirty: false,
            stored_seen: 0,
            out: Deque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Start: `stored` is what [`take_state`](Self::take_state) handed out
    /// in the last run (`None` at the first start), `app` the version now,
    /// `previous` the version stored at the last start (`None`: never
    /// stored, i.e. a new install). A session left open by that run ends
    /// now, its duration running to when it went to the background or to
    /// the last time that process was seen. The app starts in neither
    /// state: the first [`Lifecycle::Foreground`] opens it.
    pub fn start(
        &mut self,
        now: u64,
        stored: Option<SessionState>,
        app: AppVersion<'_>,
        previous: Option<AppVersion<'_>>,
    ) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(s) = stored {
            self.state = s;
        }
        self.stored_seen = self.state.last_seen;
        if let Some(open) = self.state.open.take() {
            let end = open.backgrounded.unwrap_or(self.state.last_seen);
            // Sessions turned off since: the stale session is forgotten.
            if self.config.session_timeout.is_some() {
                self.end(open, end);
            }
            self.dirty = true;
        }
        self.seen(now);
        if self.config.lifecycle_events {
            match previous {
                None => self.push(SessionOutput::Installed),
                Some(p) if p != app => self.push(SessionOutput::Updated),
                Some(_) => {}
            }
        }
        self.dirty = true;
    }

    /// The app's lifecycle changed.
    pub fn lifecycle(&mut self, now: u64, lifecycle: Lifecycle) {
        if !self.started {
            return;
        }
        let now = self.seen(now);
        self.expire(now);
        match lifecycle {
            Lifecycle::Foreground => {
                if self.visible {
                    return;
                }
                self.visible = true;
                if self.config.session_timeout.is_some() {
                    match &mut self.state.open {
                        Some(open) => open.backgrounded = None,
                        None => {
                            let id = now.max(self.state.last_id.saturating_add(1));
                            self.state.last_id = id;
                            self.state.open = Some(OpenSession {
                                id,
                                started: now,
                                backgrounded: None,
                            });
                            self.push(SessionOutput::SessionStart { id });
                        }
                    }
                    self.dirty = true;
                }
                if self.config.lifecycle_events {
                    let session = self.current();
                    self.push(SessionOutput::Opened {
                        from_background: self.was_background,
                        session,
                    });
                }
            }
            Lifecycle::Background => {
                if !self.visible {
                    return;
                }
                self.visible = false;
                self.was_background = true;
                if self.config.lifecycle_events {
                    let session = self.current();
                    self.push(SessionOutput::Backgrounded { session });
                }
                if let Some(open) = &mut self.state.open {
                    open.backgrounded = Some(now);
                    self.dirty = true;
                }
            }
            Lifecycle::Terminate => {
                self.visible = false;
                if let Some(open) = self.state.open.take() {
                    let end = open.backgrounded.unwrap_or(now);
                    self.end(open, end);
                    self.dirty = true;
                }
            }
        }
    }

    /// Time passed (at or after [`poll_timeout`](Self::poll_timeout); an
    /// early tick is harmless): ends a session whose background outlasted
    /// the timeout.
    pub fn tick(&mut self, now: u64) {
        if !self.started {
            return;
        }
        let now = self.seen(now);
        self.expire(now);
    }

    /// The app tracks an event now: ends a session whose background
    /// outlasted the timeout (drain [`poll_output`](Self::poll_output)
    /// before tracking the event), then returns the id of the session the
    /// event belongs to, if one is open.
    pub fn event(&mut self, now: u64) -> Option<SessionId> {
        if !self.started {
            return None;
        }
        self.tick(now);
        self.current()
    }

    /// The open session's id.
    pub fn current(&self) -> Option<SessionId> {
        self.state.open.map(|o| o.id)
    }

    /// The next automatic event to track, in order.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.out.pop_front()
    }

    /// When to [`tick`](Self::tick) next (wall-clock ms): just after the
    /// open session's background outlasts the timeout.
    pub fn poll_timeout(&self) -> Option<u64> {
        let timeout = duration_millis(self.config.session_timeout?);
        let since = self.state.open?.backgrounded?;
        Some(since.saturating_add(timeout).saturating_add(1))
    }

    /// The state to store, when it changed since the last call (anything
    /// but `last_seen`, or `last_seen` by [`LAST_SEEN_GRANULARITY_MS`]).
    pub fn take_state(&mut self) -> Option<SessionState> {
        let seen_moved = self.state.last_seen.saturating_sub(self.stored_seen)
            >= LAST_SEEN_GRANULARITY_MS
            && self.state.open.is_some();
        if !(self.dirty || seen_moved) {
            return None;
        }
        self.dirty = false;
        self.stored_seen = self.state.last_seen;
        Some(self.state)
    }

    /// The state as it is now (e.g. for a final write at shutdown).
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// `now`, never earlier than a time seen before; recorded as seen.
    fn seen(&mut self, now: u64) -> u64 {
        self.state.last_seen = self.state.last_seen.max(now);
        self.state.last_seen
    }

    /// End the open session when its background outlasted the timeout.
    fn expire(&mut self, now: u64) {
        let Some(timeout) = self.config.session_timeout else {
            return;
        };
        let Some(open) = self.state.open else {
            return;
        };
        let Some(since) = open.backgrounded else {
            return;
        };
        if now.saturating_sub(since) > duration_millis(timeout) {
            self.state.open = None;
            self.end(open, since);
            self.dirty = true;
        }
    }

    fn end(&mut self, open: OpenSession, end: u64) {
        let duration = Duration::from_millis(end.saturating_sub(open.started));
        self.push(SessionOutput::SessionEnd {
            id: open.id,
            duration,
        });
    }

    fn push(&mut self, o: SessionOutput) {
        // At most three outputs follow one input and the caller drains
        // them after each; should one not, the oldest goes.
        if self.out.is_full() {
            self.out.pop_front();
        }
        let _ = self.out.push_back(o);
    }
}

#[cfg(test)]
#[path = "tests/session.rs"]
mod tests;
