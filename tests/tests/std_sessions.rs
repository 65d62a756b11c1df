//! Automatic lifecycle events and sessions through a real Client (issue
//! 23): the events on the wire with their fields, `context.session_id` on
//! every event inside a session, an update seen across a restart, the
//! settings that turn each off, and a kill -9 with a session open that the
//! next start ends.

mod std_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outbox_std::{FlushMode, Lifecycle};
use serde_json::Value;
use std_support::*;

fn name(e: &Value) -> &str {
    e["event"].as_str().unwrap_or("")
}

fn session_of(e: &Value) -> Option<u64> {
    e["context"]["session_id"].as_u64()
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(name).collect()
}

#[test]
fn lifecycle_events_and_sessions_arrive_with_their_fields() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .app("shop", "2.0")
        .app_build("20")
        .sessions(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    client.track(event("before")).unwrap();
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.track(event("inside-1")).unwrap();
    client.lifecycle(Lifecycle::Background).unwrap();
    // Longer than the 200 ms timeout (a sleep makes it so; nothing is
    // asserted about how long anything took).
    std::thread::sleep(Duration::from_millis(400));
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.track(event("inside-2")).unwrap();
    client.lifecycle(Lifecycle::Terminate).unwrap();
    client.track(event("after")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);

    let events = collector.accepted_events();
    assert_eq!(
        names(&events),
        [
            "Application Installed",
            "Test Event",
            "session_start",
            "Application Opened",
            "Test Event",
            "Application Backgrounded",
            "session_end",
            "session_start",
            "Application Opened",
            "Test Event",
            "session_end",
            "Test Event",
        ]
    );
    let installed = &events[0]["properties"];
    assert_eq!(installed["version"], "2.0");
    assert_eq!(installed["build"], "20");
    assert!(events[0]["anonymousId"]
        .as_str()
        .is_some_and(|a| !a.is_empty()));
    assert_eq!(events[0]["context"]["app"]["version"], "2.0");

    let first = session_of(&events[2]).expect("session_start carries its id");
    let second = session_of(&events[7]).expect("session_start carries its id");
    assert!(second > first);
    // Every event inside a session carries its id; none outside does.
    let expected = [
        None,
        None,
        Some(first),
        Some(first),
        Some(first),
        Some(first),
        Some(first),
        Some(second),
        Some(second),
        Some(second),
        Some(second),
        None,
    ];
    let got: Vec<_> = events.iter().map(session_of).collect();
    assert_eq!(got, expected);

    assert_eq!(events[3]["properties"]["from_background"], false);
    assert_eq!(events[3]["properties"]["version"], "2.0");
    assert_eq!(events[8]["properties"]["from_background"], true);
    // The first session ran from its start to the background: a duration
    // in seconds, not negative, and shorter than the whole run.
    for end in [&events[6], &events[10]] {
        let d = end["properties"]["duration"].as_f64().expect("a duration");
        assert!(d >= 0.0, "{end}");
    }

    // An update, seen at the next start (the version is kept with the queue).
    let client = builder(&db, &collector)
        .app("shop", "2.1")
        .app_build("21")
        .build()
        .unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);
    let events = collector.accepted_events();
    let updated: Vec<_> = events
        .iter()
        .filter(|e| name(e) == "Application Updated")
        .collect();
    assert_eq!(updated.len(), 1);
    let p = &updated[0]["properties"];
    assert_eq!(p["version"], "2.1");
    assert_eq!(p["build"], "21");
    assert_eq!(p["previous_version"], "2.0");
    assert_eq!(p["previous_build"], "20");
    // Same anonymous id across restarts.
    assert_eq!(updated[0]["anonymousId"], events[0]["anonymousId"]);
    // The terminated session was not ended a second time by the restart.
    let ends = events.iter().filter(|e| name(e) == "session_end").count();
    assert_eq!(ends, 2);
}

#[test]
fn a_short_background_keeps_one_session() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("s.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.lifecycle(Lifecycle::Background).unwrap();
    client.track(event("in-background")).unwrap();
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);
    let events = collector.accepted_events();
    // No version named: no install is reported.
    assert_eq!(
        names(&events),
        [
            "session_start",
            "Application Opened",
            "Application Backgrounded",
            "Test Event",
            "Application Opened",
        ]
    );
    let id = session_of(&events[0]).unwrap();
    assert!(events.iter().all(|e| session_of(e) == Some(id)));
    assert_eq!(events[4]["properties"]["from_background"], true);
}

#[test]
fn each_setting_turns_its_events_off() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("off.db"), &collector)
        .app("shop", "1.0")
        .lifecycle_events(false)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.track(event("e")).unwrap();
    client.lifecycle(Lifecycle::Background).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);
    let events = collector.accepted_events();
    assert_eq!(names(&events), ["session_start", "Test Event"]);

    let collector = Collector::start();
    let client = builder(&dir.path().join("none.db"), &collector)
        .app("shop", "1.0")
        .lifecycle_events(false)
        .sessions(None)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.lifecycle(Lifecycle::Foreground).unwrap();
    client.track(event("e")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);
    let events = collector.accepted_events();
    assert_eq!(names(&events), ["Test Event"]);
    assert_eq!(session_of(&events[0]), None);
}

#[test]
fn a_kill_9_with_a_session_open_ends_it_at_the_next_start() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_session_child"))
        .args([db.to_str().unwrap(), &collector.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn session_child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the child did not get ready");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let lived = began.elapsed();

    // Nothing was uploaded (Manual mode): the next start sends it all.
    let client = builder(&db, &collector)
        .app("session-child", "1.0")
        .app_build("1")
        .build()
        .unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);

    let events = collector.accepted_events();
    let starts: Vec<_> = events
        .iter()
        .filter(|e| name(e) == "session_start")
        .collect();
    let ends: Vec<_> = events.iter().filter(|e| name(e) == "session_end").collect();
    assert_eq!(starts.len(), 1, "{:?}", names(&events));
    assert_eq!(
        ends.len(),
        1,
        "the open session was not ended: {:?}",
        names(&events)
    );
    let id = session_of(starts[0]).unwrap();
    assert_eq!(session_of(ends[0]), Some(id));
    // Up to the last time the dead process was seen: the child tracked
    // for 1.5 s and the time seen is stored every second.
    let d = ends[0]["properties"]["duration"].as_f64().unwrap();
    assert!(d >= 1.0, "duration {d}");
    assert!(d <= lived.as_secs_f64(), "duration {d} > {lived:?}");
    // Every event of the child belongs to its session; same version, so
    // no install or update at the restart.
    let ticks: Vec<_> = events.iter().filter(|e| name(e) == "Tick").collect();
    assert!(!ticks.is_empty());
    assert!(ticks.iter().all(|e| session_of(e) == Some(id)));
    assert_eq!(
        events
            .iter()
            .filter(|e| name(e) == "Application Installed")
            .count(),
        1
    );
    assert!(!events.iter().any(|e| name(e) == "Application Updated"));
    // The end comes after everything the dead session tracked.
    let end_at = events
        .iter()
        .position(|e| name(e) == "session_end")
        .unwrap();
    let last_tick = events.iter().rposition(|e| name(e) == "Tick").unwrap();
    assert!(end_at > last_tick);
}
