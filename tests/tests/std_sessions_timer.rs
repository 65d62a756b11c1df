//! The Client ends a session on its own (issue 23): once the app has been
//! in the background longer than the session timeout, `session_end` is
//! tracked and uploaded with no further call from the app, and the next
//! foreground starts a new session. Only lower bounds are asserted; every
//! wait is a wait-until with a generous limit.

mod std_support;

use std::time::{Duration, Instant};

use outbox_std::{FlushMode, Lifecycle};
use serde_json::Value;
use std_support::*;

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

fn session_of(e: &Value) -> Option<u64> {
    e["context"]["session_id"].as_u64()
}

const TIMEOUT: Duration = Duration::from_millis(200);

#[test]
fn a_background_longer_than_the_timeout_ends_the_session_with_no_further_call() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("t.db"), &collector)
        .flush_mode(FlushMode::Immediate)
        .app("shop", "3.0")
        .sessions(Some(TIMEOUT))
        .build()
        .unwrap();
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.track(event("inside")).unwrap();
    // In the foreground for longer than the timeout: the session's
    // duration (start to background) is at least that long.
    let foreground = Instant::now();
    std::thread::sleep(TIMEOUT + Duration::from_millis(100));
    let in_foreground = foreground.elapsed();
    client.lifecycle(Lifecycle::Background).unwrap();

    // No call from here on: the Client's own timer must end it.
    let arrived = wait_until(PATIENCE, || {
        !named(&collector.accepted_events(), "session_end").is_empty()
    });
    assert!(arrived, "no session_end reached the collector by itself");

    let events = collector.accepted_events();
    let start = named(&events, "session_start");
    let end = named(&events, "session_end");
    assert_eq!((start.len(), end.len()), (1, 1), "{events:?}");
    let id = session_of(start[0]).expect("session_start carries its id");
    assert_eq!(session_of(end[0]), Some(id));
    let d = end[0]["properties"]["duration"]
        .as_f64()
        .expect("a duration in seconds");
    // Wall-clock milliseconds at both ends: allow their truncation.
    let lower = in_foreground.as_secs_f64() - 0.002;
    assert!(d >= lower, "duration {d} < {lower}");
    assert!(d >= TIMEOUT.as_secs_f64(), "duration {d}");
    // Shaped like any event: the builder's context and the anonymous id.
    assert_eq!(end[0]["context"]["app"]["version"], "3.0");
    assert!(end[0]["anonymousId"]
        .as_str()
        .is_some_and(|a| !a.is_empty()));
    // Queued after every event of the session.
    let pos = |name: &str| events.iter().position(|e| e["event"] == name).unwrap();
    assert!(pos("session_end") > pos("Application Backgrounded"));
    assert!(pos("session_end") > pos("Test Event"));

    // The next foreground opens a new session; the old one ends once only.
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.track(event("second")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);
    let events = collector.accepted_events();
    let starts = named(&events, "session_start");
    assert_eq!(starts.len(), 2, "{events:?}");
    let second = session_of(starts[1]).unwrap();
    assert!(second > id);
    assert_eq!(named(&events, "session_end").len(), 1, "{events:?}");
    let tracked = events.iter().find(|e| e["messageId"] == "second").unwrap();
    assert_eq!(session_of(tracked), Some(second));
}
