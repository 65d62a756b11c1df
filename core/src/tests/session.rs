//! Sessions and lifecycle events on a virtual clock (issue 23): scenarios,
//! then a property test over random inputs, kills and clock jumps that
//! checks the session rules on the stream of tracked events.

use core::time::Duration;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

const APP: AppVersion<'static> = AppVersion {
    version: "1.0",
    build: "1",
};
const MIN: u64 = 60_000;

/// A component and what its caller stored, across kills.
struct Harness {
    s: Sessions,
    stored: Option<SessionState>,
    out: Vec<SessionOutput>,
}

impl Harness {
    fn new(config: SessionConfig, now: u64) -> Self {
        let mut h = Harness {
            s: Sessions::new(config),
            stored: None,
            out: Vec::new(),
        };
        h.s.start(now, None, APP, Some(APP));
        h.drain();
        h
    }
    fn drain(&mut self) -> Vec<SessionOutput> {
        let new: Vec<_> = core::iter::from_fn(|| self.s.poll_output()).collect();
        if let Some(state) = self.s.take_state() {
            self.stored = Some(state);
        }
        self.out.extend(new.iter().copied());
        new
    }
    fn life(&mut self, now: u64, l: Lifecycle) -> Vec<SessionOutput> {
        self.s.lifecycle(now, l);
        self.drain()
    }
    fn tick(&mut self, now: u64) -> Vec<SessionOutput> {
        self.s.tick(now);
        self.drain()
    }
    /// A kill -9 and a restart at `now`: only what was stored survives.
    fn kill(&mut self, now: u64) -> Vec<SessionOutput> {
        self.s = Sessions::new(self.s.config());
        self.s.start(now, self.stored, APP, Some(APP));
        self.drain()
    }
}

fn start_id(out: &[SessionOutput]) -> SessionId {
    out.iter()
        .find_map(|o| match o {
            SessionOutput::SessionStart { id } => Some(*id),
            _ => None,
        })
        .expect("a session_start")
}

fn ends(out: &[SessionOutput]) -> Vec<(SessionId, Duration)> {
    out.iter()
        .filter_map(|o| match o {
            SessionOutput::SessionEnd { id, duration } => Some((*id, *duration)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_foreground_starts_a_session_and_opens_the_app() {
    let mut h = Harness::new(SessionConfig::default(), 1_000);
    let out = h.life(1_000, Lifecycle::Foreground);
    assert_eq!(
        out,
        [
            SessionOutput::SessionStart { id: 1_000 },
            SessionOutput::Opened {
                from_background: false,
                session: Some(1_000)
            }
        ]
    );
    assert_eq!(h.s.event(5_000), Some(1_000));
    // A second foreground is no news.
    assert!(h.life(6_000, Lifecycle::Foreground).is_empty());
}

#[test]
fn a_short_background_keeps_the_session() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(0, Lifecycle::Foreground));
    let out = h.life(10_000, Lifecycle::Background);
    assert_eq!(out, [SessionOutput::Backgrounded { session: Some(id) }]);
    assert!(
        h.tick(10_000 + MIN).is_empty(),
        "exactly the timeout is not longer"
    );
    let out = h.life(10_000 + MIN, Lifecycle::Foreground);
    assert_eq!(
        out,
        [SessionOutput::Opened {
            from_background: true,
            session: Some(id)
        }]
    );
    assert_eq!(h.s.event(10_000 + MIN + 1), Some(id));
    assert!(ends(&h.out).is_empty());
}

#[test]
fn a_long_background_ends_the_session_at_the_next_tick() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(1_000, Lifecycle::Foreground));
    h.life(31_000, Lifecycle::Background);
    assert_eq!(h.s.poll_timeout(), Some(31_000 + MIN + 1));
    assert!(h.tick(31_000 + MIN).is_empty());
    let out = h.tick(31_000 + MIN + 1);
    // The session ran from its start to the background, not to the tick.
    assert_eq!(ends(&out), [(id, Duration::from_secs(30))]);
    assert_eq!(h.s.current(), None);
    assert_eq!(h.s.poll_timeout(), None);
    // An event in the background after the end belongs to no session.
    assert_eq!(h.s.event(31_000 + 2 * MIN), None);
    // The next foreground starts a new one.
    let out = h.life(31_000 + 3 * MIN, Lifecycle::Foreground);
    let new = start_id(&out);
    assert!(new > id);
    assert_eq!(
        out.last(),
        Some(&SessionOutput::Opened {
            from_background: true,
            session: Some(new)
        })
    );
}

#[test]
fn a_long_background_found_at_the_foreground_ends_then_starts() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(0, Lifecycle::Foreground));
    h.life(5_000, Lifecycle::Background);
    let out = h.life(5_000 + 10 * MIN, Lifecycle::Foreground);
    assert_eq!(
        out[0],
        SessionOutput::SessionEnd {
            id,
            duration: Duration::from_secs(5)
        }
    );
    assert_eq!(
        out[1],
        SessionOutput::SessionStart {
            id: 5_000 + 10 * MIN
        }
    );
    assert!(
        matches!(out[2], SessionOutput::Opened { session: Some(s), .. } if s == 5_000 + 10 * MIN)
    );
}

#[test]
fn an_event_after_a_long_background_ends_the_session_first() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(0, Lifecycle::Foreground));
    h.life(2_000, Lifecycle::Background);
    assert_eq!(h.s.event(2_000 + 2 * MIN), None);
    assert_eq!(ends(&h.drain()), [(id, Duration::from_secs(2))]);
}

#[test]
fn a_kill_in_the_background_ends_the_session_at_the_next_start() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(0, Lifecycle::Foreground));
    h.s.event(20_000);
    h.life(40_000, Lifecycle::Background);
    let out = h.kill(40_000 + 5 * MIN);
    assert_eq!(ends(&out), [(id, Duration::from_secs(40))]);
    assert_eq!(h.s.current(), None);
    // Not ended twice by a second kill.
    assert!(ends(&h.kill(40_000 + 6 * MIN)).is_empty());
}

#[test]
fn a_kill_in_the_foreground_ends_the_session_where_it_was_last_seen() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(0, Lifecycle::Foreground));
    for t in (1..=50).map(|s| s * 1_000) {
        h.s.event(t);
        h.drain();
    }
    // Killed at 50.4 s, restarted a day later.
    h.s.event(50_400);
    h.drain();
    let out = h.kill(24 * 60 * MIN);
    let (ended, duration) = ends(&out)[0];
    assert_eq!(ended, id);
    // Up to the last time it was seen, within the storing granularity.
    assert!(duration <= Duration::from_millis(50_400), "{duration:?}");
    assert!(
        duration >= Duration::from_millis(50_400 - LAST_SEEN_GRANULARITY_MS),
        "{duration:?}"
    );
}

#[test]
fn a_terminate_ends_the_session_at_once() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let id = start_id(&h.life(0, Lifecycle::Foreground));
    let out = h.life(7_000, Lifecycle::Terminate);
    assert_eq!(ends(&out), [(id, Duration::from_secs(7))]);
    assert!(ends(&h.kill(8_000)).is_empty());
}

#[test]
fn a_clock_jump_back_neither_ends_a_session_early_nor_goes_negative() {
    let mut h = Harness::new(SessionConfig::default(), 0);
    let t0 = 1_000 * MIN;
    let id = start_id(&h.life(t0, Lifecycle::Foreground));
    h.life(t0 + 30_000, Lifecycle::Background);
    // The clock is set back an hour: nothing ends, nothing negative.
    assert!(h.tick(t0 - 60 * MIN).is_empty());
    assert!(h.life(t0 - 60 * MIN, Lifecycle::Foreground).len() == 1);
    assert_eq!(h.s.current(), Some(id));
    h.life(t0 - 59 * MIN, Lifecycle::Background);
    // Still the same session, and it ends only a timeout after the
    // background as time runs inside (which never went back).
    assert!(h.tick(t0 + 30_000 + MIN).is_empty());
    let out = h.tick(t0 + 30_000 + MIN + 1);
    assert_eq!(ends(&out), [(id, Duration::from_secs(30))]);
    // A new session after a jump back still gets a fresh, larger id.
    let new = start_id(&h.life(t0 - 120 * MIN, Lifecycle::Foreground));
    assert!(new > id);
    // A jump back across a kill: the duration is not negative either.
    let out = h.kill(0);
    assert_eq!(ends(&out)[0].0, new);
}

#[test]
fn installed_then_updated_then_nothing() {
    let mut s = Sessions::new(SessionConfig::default());
    s.start(0, None, APP, None);
    assert_eq!(s.poll_output(), Some(SessionOutput::Installed));
    assert_eq!(s.poll_output(), None);
    let mut s = Sessions::new(SessionConfig::default());
    let v2 = AppVersion {
        version: "1.0",
        build: "2",
    };
    s.start(0, None, v2, Some(APP));
    assert_eq!(s.poll_output(), Some(SessionOutput::Updated));
    let mut s = Sessions::new(SessionConfig::default());
    s.start(0, None, v2, Some(v2));
    assert_eq!(s.poll_output(), None);
}

#[test]
fn each_setting_turns_its_events_off() {
    let off = SessionConfig {
        lifecycle_events: false,
        session_timeout: Some(DEFAULT_SESSION_TIMEOUT),
    };
    let mut s = Sessions::new(off);
    s.start(0, None, APP, None);
    s.lifecycle(0, Lifecycle::Foreground);
    s.lifecycle(1, Lifecycle::Background);
    let out: Vec<_> = core::iter::from_fn(|| s.poll_output()).collect();
    assert_eq!(out, [SessionOutput::SessionStart { id: 1 }]);

    let off = SessionConfig {
        lifecycle_events: true,
        session_timeout: None,
    };
    let mut s = Sessions::new(off);
    s.start(0, None, APP, Some(APP));
    s.lifecycle(0, Lifecycle::Foreground);
    assert_eq!(s.event(1), None);
    let out: Vec<_> = core::iter::from_fn(|| s.poll_output()).collect();
    assert_eq!(
        out,
        [SessionOutput::Opened {
            from_background: false,
            session: None
        }]
    );
}

#[test]
fn nothing_happens_before_start_and_the_state_round_trips() {
    let mut s = Sessions::new(SessionConfig::default());
    s.lifecycle(5, Lifecycle::Foreground);
    assert_eq!(s.event(6), None);
    assert_eq!(s.poll_output(), None);
    let state = SessionState {
        open: Some(OpenSession {
            id: 9,
            started: 3,
            backgrounded: None,
        }),
        last_seen: 11,
        last_id: 9,
    };
    let bytes = postcard::to_allocvec(&state).unwrap();
    assert_eq!(postcard::from_bytes::<SessionState>(&bytes).unwrap(), state);
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Foreground,
    Background,
    Terminate,
    Tick,
    Event,
    Kill,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Foreground),
        3 => Just(Op::Background),
        1 => Just(Op::Terminate),
        2 => Just(Op::Tick),
        4 => Just(Op::Event),
        1 => Just(Op::Kill),
    ]
}

/// Time steps: mostly forward (short and long), sometimes back.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0i64..5_000,
        3 => 50_000i64..200_000,
        1 => -3_600_000i64..0,
    ]
}

/// What the checker knows of the open session, from the stream alone.
struct Open {
    id: SessionId,
    /// The time given with the foreground that started it (the machine's
    /// own clock may be later, never earlier, and a kill may set it back
    /// to the last stored time, so bounds use the caller's times).
    started: u64,
    /// The time given with the background.
    background: Option<u64>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_session_rules_hold_for_any_inputs(
        ops in proptest::collection::vec((op(), step()), 1..120),
        timeout_s in 1u64..120,
        lifecycle_events: bool,
    ) {
        let timeout = timeout_s * 1_000;
        let config = SessionConfig {
            lifecycle_events,
            session_timeout: Some(Duration::from_millis(timeout)),
        };
        let mut now: u64 = 10 * 60 * MIN;
        // The checker's own clock: never goes back.
        let mut clock = now;
        let mut h = Harness::new(config, now);
        let mut open: Option<Open> = None;
        let mut visible = false;
        let mut ended: Vec<SessionId> = Vec::new();
        let mut ids: Vec<SessionId> = Vec::new();
        for (op, dt) in ops {
            now = now.saturating_add_signed(dt);
            clock = clock.max(now);
            let (out, event_id) = match op {
                Op::Foreground => (h.life(now, Lifecycle::Foreground), None),
                Op::Background => (h.life(now, Lifecycle::Background), None),
                Op::Terminate => (h.life(now, Lifecycle::Terminate), None),
                Op::Tick => (h.tick(now), None),
                Op::Event => {
                    let id = h.s.event(now);
                    (h.drain(), Some(id))
                }
                Op::Kill => (h.kill(now), None),
            };
            for o in &out {
                match *o {
                    SessionOutput::SessionStart { id } => {
                        prop_assert!(open.is_none(), "two sessions open at once");
                        prop_assert!(matches!(op, Op::Foreground));
                        prop_assert!(!ids.contains(&id), "id {id} reused");
                        ids.push(id);
                        open = Some(Open { id, started: now, background: None });
                    }
                    SessionOutput::SessionEnd { id, duration } => {
                        let o = open.take();
                        prop_assert!(o.is_some(), "an end with no session open");
                        let o = o.unwrap();
                        prop_assert_eq!(o.id, id);
                        prop_assert!(!ended.contains(&id), "ended twice");
                        ended.push(id);
                        prop_assert!(duration.as_millis() as u64 <= clock - o.started);
                        match op {
                            // Found by the timeout: only after a background
                            // longer than it, never early.
                            Op::Tick | Op::Event | Op::Foreground | Op::Background => {
                                let b = o.background;
                                prop_assert!(b.is_some(), "ended in the foreground");
                                prop_assert!(clock - b.unwrap() > timeout, "ended early");
                            }
                            Op::Terminate | Op::Kill => {}
                        }
                    }
                    SessionOutput::Opened { session, .. } | SessionOutput::Backgrounded { session } => {
                        prop_assert!(lifecycle_events);
                        prop_assert_eq!(session, open.as_ref().map(|o| o.id));
                    }
                    SessionOutput::Installed | SessionOutput::Updated => {
                        prop_assert!(false, "no version change here");
                    }
                }
            }
            match op {
                Op::Foreground => visible = true,
                Op::Background => {
                    if visible {
                        if let Some(o) = &mut open {
                            o.background = Some(now);
                        }
                    }
                    visible = false;
                }
                Op::Terminate | Op::Kill => {
                    visible = false;
                    prop_assert!(open.is_none(), "a session outlived a terminate or a kill");
                }
                Op::Tick | Op::Event => {}
            }
            if let Some(id) = event_id {
                // Every event inside a session has that session's id.
                prop_assert_eq!(id, open.as_ref().map(|o| o.id));
            }
            prop_assert_eq!(h.s.current(), open.as_ref().map(|o| o.id));
        }
    }
}
