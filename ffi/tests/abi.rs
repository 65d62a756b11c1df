//! The C ABI called as C would call it: NULL handles, bad configs, wrong
//! JSON, a caught panic, the poll loop, closing twice.

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use outbox_ffi::*;
use serde_json::{json, Value};

fn last_error() -> String {
    let mut buf = [0u8; 512];
    let n = outbox_last_error(buf.as_mut_ptr().cast(), buf.len());
    let text = CStr::from_bytes_until_nul(&buf)
        .expect("NUL")
        .to_str()
        .expect("UTF-8");
    assert_eq!(n, text.len(), "the return value is the text's length");
    text.to_owned()
}

fn open_json(cfg: &Value) -> (OutboxStatus, *mut OutboxClient) {
    let text = cfg.to_string();
    let mut client = null_mut();
    let st = outbox_open_json(text.as_ptr(), text.len(), &mut client);
    (st, client)
}

fn open_with(endpoint: &str, dir: &tempfile::TempDir, extra: Value) -> *mut OutboxClient {
    let mut cfg = json!({
        "path": dir.path().join("events.db"),
        "endpoint": endpoint,
        "write_key": "k",
        "flush_mode": "manual",
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let (st, client) = open_json(&cfg);
    assert_eq!(st, OutboxStatus::Ok, "{}", last_error());
    assert!(!client.is_null());
    client
}

fn track(client: *const OutboxClient, event: &str) -> (OutboxStatus, u64) {
    let mut seq = 0;
    let st = outbox_track(client, event.as_ptr(), event.len(), &mut seq);
    (st, seq)
}

fn poll(client: *const OutboxClient, timeout_ms: u64) -> Result<Value, OutboxStatus> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    match outbox_poll(client, timeout_ms, buf.as_mut_ptr(), buf.len(), &mut len) {
        OutboxStatus::Ok => Ok(serde_json::from_slice(&buf[..len]).expect("notification JSON")),
        st => Err(st),
    }
}

#[test]
fn every_function_answers_null_argument_for_a_null_handle() {
    let ev = br#"{"event":"e","userId":"u"}"#;
    let mut buf = [0u8; 64];
    let mut len = 0;
    let mut seq = 0;
    let n = OutboxStatus::NullArgument;
    assert_eq!(outbox_track(null(), ev.as_ptr(), ev.len(), &mut seq), n);
    assert_eq!(
        outbox_track_durable(null(), ev.as_ptr(), ev.len(), &mut seq),
        n
    );
    assert_eq!(
        outbox_identify(null(), ev.as_ptr(), ev.len(), null_mut()),
        n
    );
    assert_eq!(outbox_page(null(), ev.as_ptr(), ev.len(), null_mut()), n);
    assert_eq!(outbox_screen(null(), ev.as_ptr(), ev.len(), null_mut()), n);
    assert_eq!(outbox_group(null(), ev.as_ptr(), ev.len(), null_mut()), n);
    assert_eq!(outbox_alias(null(), ev.as_ptr(), ev.len(), null_mut()), n);
    assert_eq!(outbox_flush(null()), n);
    assert_eq!(outbox_sync(null()), n);
    assert_eq!(outbox_flush_and_wait(null(), 10, null_mut()), n);
    assert_eq!(outbox_set_flush_mode(null(), 0), n);
    assert_eq!(outbox_set_network_available(null(), true), n);
    assert_eq!(outbox_set_network(null(), true, 0), n);
    assert_eq!(outbox_set_power_save(null(), true), n);
    assert_eq!(outbox_lifecycle(null(), 0), n);
    assert_eq!(outbox_resume(null()), n);
    assert_eq!(
        outbox_poll(null(), 0, buf.as_mut_ptr(), buf.len(), &mut len),
        n
    );
    assert_eq!(
        outbox_stats(null(), buf.as_mut_ptr(), buf.len(), &mut len),
        n
    );
    assert_eq!(outbox_close(null(), 0), n);
    assert_eq!(outbox_open(null(), null_mut()), n);
    assert_eq!(outbox_open_json(null(), 0, null_mut()), n);
    let mut client = null_mut();
    assert_eq!(outbox_open(null(), &mut client), n);
    assert_eq!(outbox_open_json(null(), 3, &mut client), n);
    assert!(client.is_null());
    assert!(last_error().contains("NULL"), "{}", last_error());
    outbox_free(null_mut());
    assert_eq!(outbox_last_error(null_mut(), 0), last_error().len());
    let name = unsafe { CStr::from_ptr(outbox_status_name(n as i32)) };
    assert_eq!(name.to_str().unwrap(), "NULL_ARGUMENT");
    let name = unsafe { CStr::from_ptr(outbox_status_name(-7)) };
    assert_eq!(name.to_str().unwrap(), "UNKNOWN");
}

#[test]
fn a_bad_config_is_a_code_and_a_message_never_a_handle() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let cases = [
        (json!({"endpoint": "http://127.0.0.1:1"}), "path"),
        (json!({"path": db}), "endpoint"),
        (
            json!({"path": db, "endpoint": "http://127.0.0.1:1", "colour": 1}),
            "colour",
        ),
        (
            json!({"path": db, "endpoint": "http://127.0.0.1:1", "flush_mode": "sometimes"}),
            "flush_mode",
        ),
        (
            json!({"path": db, "endpoint": "http://127.0.0.1:1", "upload_on": "wifi"}),
            "upload_on",
        ),
        (
            json!({"path": db, "endpoint": "http://127.0.0.1:1", "max_queue_events": -1}),
            "expected u32",
        ),
        (
            json!({"path": db, "endpoint": "http://127.0.0.1:1", "context": [1]}),
            "context",
        ),
        (json!({"path": db, "endpoint": "ftp://example.com"}), ""),
        (json!([1, 2]), ""),
    ];
    for (cfg, word) in cases {
        let (st, client) = open_json(&cfg);
        assert_eq!(st, OutboxStatus::InvalidConfig, "{cfg}: {}", last_error());
        assert!(client.is_null());
        assert!(last_error().contains(word), "{cfg}: {}", last_error());
    }
    for text in [&b"{not json"[..], b"\xff\xfe", b""] {
        let mut client = null_mut();
        let st = outbox_open_json(text.as_ptr(), text.len(), &mut client);
        assert!(
            matches!(st, OutboxStatus::InvalidConfig | OutboxStatus::InvalidUtf8),
            "{st:?}"
        );
        assert!(client.is_null());
    }
    // The struct form: a NULL path, a flush mode that is not one.
    let endpoint = c"http://127.0.0.1:1";
    let mut cfg = OutboxConfig {
        path: null(),
        endpoint: endpoint.as_ptr(),
        write_key: null(),
        flush_mode: 0,
        flush_period_ms: 0,
        max_queue_events: 0,
        max_queue_bytes: 0,
        request_timeout_ms: 0,
    };
    let mut client = null_mut();
    assert_eq!(outbox_open(&cfg, &mut client), OutboxStatus::InvalidConfig);
    let path = std::ffi::CString::new(db.to_str().unwrap()).unwrap();
    cfg.path = path.as_ptr();
    cfg.flush_mode = 9;
    assert_eq!(
        outbox_open(&cfg, &mut client),
        OutboxStatus::InvalidArgument
    );
    assert!(client.is_null());
    // A database that cannot be opened: the path is a directory.
    let (st, client) = open_json(&json!({"path": dir.path(), "endpoint": "http://127.0.0.1:1"}));
    assert_eq!(st, OutboxStatus::OpenFailed, "{}", last_error());
    assert!(client.is_null());
}

#[test]
fn a_panic_inside_an_entry_becomes_a_code_and_does_not_unwind() {
    // No input reaches a panic in the library that we know of; `guard` is
    // what every entry point runs under, so it is tested directly.
    let st = guard(|| panic!("boom in the library"));
    assert_eq!(st, OutboxStatus::Panic);
    assert!(
        last_error().contains("boom in the library"),
        "{}",
        last_error()
    );
    let st = guard(|| std::panic::panic_any(42u8));
    assert_eq!(st, OutboxStatus::Panic);
    assert!(last_error().contains("panic"), "{}", last_error());
}

#[test]
fn wrong_json_is_refused_with_its_code_and_nothing_is_stored() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = open_with(&collector.endpoint, &dir, json!({}));
    let cases: [(&[u8], OutboxStatus); 9] = [
        (b"{not json", OutboxStatus::InvalidJson),
        (b"[1,2]", OutboxStatus::InvalidJson),
        (b"\"text\"", OutboxStatus::InvalidJson),
        (b"\xff\xfe{}", OutboxStatus::InvalidUtf8),
        (
            br#"{"event":"e","userId":"u","properties":[1]}"#,
            OutboxStatus::InvalidEvent,
        ),
        (
            br#"{"event":"e","userId":{"a":1}}"#,
            OutboxStatus::InvalidJson,
        ),
        (br#"{"event":"e"}"#, OutboxStatus::InvalidEvent),
        (br#"{"userId":"u"}"#, OutboxStatus::InvalidEvent),
        (
            br#"{"type":"identify","event":"e","userId":"u"}"#,
            OutboxStatus::InvalidJson,
        ),
    ];
    for (text, want) in cases {
        let mut seq = 0;
        let st = outbox_track(client, text.as_ptr(), text.len(), &mut seq);
        assert_eq!(
            st,
            want,
            "{}: {}",
            String::from_utf8_lossy(text),
            last_error()
        );
        assert!(!last_error().is_empty());
    }
    let g = br#"{"userId":"u"}"#;
    assert_eq!(
        outbox_group(client, g.as_ptr(), g.len(), null_mut()),
        OutboxStatus::InvalidEvent
    );
    assert_eq!(
        outbox_set_flush_mode(client, 42),
        OutboxStatus::InvalidArgument
    );
    assert_eq!(outbox_lifecycle(client, -1), OutboxStatus::InvalidArgument);
    assert_eq!(outbox_sync(client), OutboxStatus::Ok);
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    assert_eq!(
        outbox_stats(client, buf.as_mut_ptr(), buf.len(), &mut len),
        OutboxStatus::Ok
    );
    let stats: Value = serde_json::from_slice(&buf[..len]).unwrap();
    assert_eq!(stats["core"]["tracked"], 0, "{stats}");
    assert_eq!(stats["core"]["pending_events"], 0, "{stats}");
    // A stats buffer too small says what it needs.
    let mut small = [0u8; 4];
    assert_eq!(
        outbox_stats(client, small.as_mut_ptr(), small.len(), &mut len),
        OutboxStatus::BufferTooSmall
    );
    assert!(len > small.len());
    assert_eq!(outbox_close(client, 0), OutboxStatus::Ok);
    outbox_free(client);
    assert!(collector.events().is_empty());
}

#[test]
fn the_poll_loop_sees_each_call_delivered() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = open_with(
        &collector.endpoint,
        &dir,
        json!({"app_name": "ffi-test", "app_version": "1",
               "lifecycle_events": false, "session_timeout_ms": 0}),
    );
    let calls: [(
        extern "C" fn(*const OutboxClient, *const u8, usize, *mut u64) -> OutboxStatus,
        &str,
    ); 7] = [
        (
            outbox_track,
            r#"{"event":"A","userId":"u","properties":{"n":1}}"#,
        ),
        (outbox_track_durable, r#"{"event":"B","userId":"u"}"#),
        (outbox_identify, r#"{"userId":"u","traits":{"plan":"pro"}}"#),
        (outbox_page, r#"{"name":"Home","anonymousId":"a"}"#),
        (outbox_screen, r#"{"name":"Settings","userId":"u"}"#),
        (outbox_group, r#"{"groupId":"g","userId":"u"}"#),
        (outbox_alias, r#"{"previousId":"a","userId":"u"}"#),
    ];
    let mut seqs = Vec::new();
    for (f, ev) in calls {
        let mut seq = u64::MAX;
        assert_eq!(
            f(client, ev.as_ptr(), ev.len(), &mut seq),
            OutboxStatus::Ok,
            "{ev}: {}",
            last_error()
        );
        seqs.push(seq);
    }
    // The durable call always knows its number; the others may not yet.
    assert_ne!(seqs[1], OUTBOX_SEQ_UNKNOWN, "{seqs:?}");
    // Nothing was uploaded yet (manual mode): nothing to poll.
    assert_eq!(poll(client, 0), Err(OutboxStatus::Empty));
    assert_eq!(outbox_set_network_available(client, true), OutboxStatus::Ok);
    assert_eq!(
        outbox_set_network(client, true, 7),
        OutboxStatus::InvalidArgument
    );
    assert_eq!(
        outbox_set_network(client, true, OutboxNetworkKind::Metered as i32),
        OutboxStatus::Ok
    );
    assert_eq!(outbox_set_power_save(client, true), OutboxStatus::Ok);
    assert_eq!(
        outbox_lifecycle(client, OutboxLifecycle::Foreground as i32),
        OutboxStatus::Ok
    );
    let mut report = OutboxFlushReport::default();
    assert_eq!(
        outbox_flush_and_wait(client, 30_000, &mut report),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    assert_eq!(report.pending, 0, "{report:?}");

    // A too-small buffer keeps the notification for the next poll.
    let mut small = [0u8; 8];
    let mut need = 0;
    assert_eq!(
        outbox_poll(client, 5_000, small.as_mut_ptr(), small.len(), &mut need),
        OutboxStatus::BufferTooSmall
    );
    assert!(need > small.len());
    let mut delivered = Vec::new();
    while let Ok(note) = poll(client, 0) {
        if note["kind"] == "delivered" {
            let (first, last) = (
                note["first"].as_u64().unwrap(),
                note["last"].as_u64().unwrap(),
            );
            delivered.extend(first..=last);
        }
    }
    assert_eq!(delivered.len(), seqs.len(), "{delivered:?}");
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "once each, in order: {delivered:?}"
    );
    for seq in seqs.iter().filter(|&&s| s != OUTBOX_SEQ_UNKNOWN) {
        assert!(
            delivered.contains(seq),
            "{seq} of {seqs:?} not in {delivered:?}"
        );
    }
    let kinds: Vec<Value> = collector
        .events()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        json!(["track", "track", "identify", "page", "screen", "group", "alias"])
            .as_array()
            .unwrap()
            .clone()
    );
    assert_eq!(collector.events()[0]["context"]["app"]["name"], "ffi-test");
    assert_eq!(outbox_close(client, 1_000), OutboxStatus::Ok);
    outbox_free(client);
}

#[test]
fn close_twice_and_calls_after_close_answer_closed() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = open_with(&collector.endpoint, &dir, json!({}));
    let (st, _) = track(client, r#"{"event":"kept","userId":"u"}"#);
    assert_eq!(st, OutboxStatus::Ok);
    assert_eq!(
        outbox_close(client, 0),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    assert_eq!(outbox_close(client, 0), OutboxStatus::Closed);
    assert!(last_error().contains("closed"), "{}", last_error());
    assert_eq!(
        track(client, r#"{"event":"late","userId":"u"}"#).0,
        OutboxStatus::Closed
    );
    assert_eq!(outbox_flush(client), OutboxStatus::Closed);
    assert_eq!(
        outbox_flush_and_wait(client, 10, null_mut()),
        OutboxStatus::Closed
    );
    let mut buf = [0u8; 64];
    let mut len = 0;
    assert_eq!(
        outbox_stats(client, buf.as_mut_ptr(), buf.len(), &mut len),
        OutboxStatus::Closed
    );
    outbox_free(client);

    // The event tracked before the close was kept for the next open.
    let client = open_with(&collector.endpoint, &dir, json!({}));
    let mut report = OutboxFlushReport::default();
    assert_eq!(
        outbox_flush_and_wait(client, 30_000, &mut report),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    let names: Vec<Value> = collector
        .events()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(names, vec![json!("kept")]);
    // Free without close closes too.
    outbox_free(client);
}

#[test]
fn lifecycle_events_and_sessions_reach_the_wire_through_the_c_abi() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = open_with(
        &collector.endpoint,
        &dir,
        json!({"app_name": "ffi-test", "app_version": "2"}),
    );
    assert_eq!(
        outbox_lifecycle(client, OutboxLifecycle::Foreground as i32),
        OutboxStatus::Ok
    );
    let (st, _) = track(client, r#"{"event":"In a session","userId":"u"}"#);
    assert_eq!(st, OutboxStatus::Ok, "{}", last_error());
    let mut report = OutboxFlushReport::default();
    assert_eq!(
        outbox_flush_and_wait(client, 30_000, &mut report),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    let events = collector.events();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for name in [
        "Application Installed",
        "Application Opened",
        "session_start",
        "In a session",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    let mine = events
        .iter()
        .find(|e| e["event"] == "In a session")
        .unwrap();
    assert!(
        mine["context"]["session_id"].is_number() || mine["context"]["session_id"].is_string(),
        "{mine}"
    );
    assert_eq!(outbox_close(client, 1_000), OutboxStatus::Ok);
    outbox_free(client);
}

#[test]
fn sessions_false_turns_sessions_off_and_app_build_reaches_the_install() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = open_with(
        &collector.endpoint,
        &dir,
        json!({"app_version": "3", "app_build": "31", "sessions": false}),
    );
    assert_eq!(
        outbox_lifecycle(client, OutboxLifecycle::Foreground as i32),
        OutboxStatus::Ok
    );
    let (st, _) = track(client, r#"{"event":"No session","userId":"u"}"#);
    assert_eq!(st, OutboxStatus::Ok, "{}", last_error());
    let mut report = OutboxFlushReport::default();
    assert_eq!(
        outbox_flush_and_wait(client, 30_000, &mut report),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    let events = collector.events();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        ["Application Installed", "Application Opened", "No session"]
    );
    // A version without a name counts; the name is left out.
    assert_eq!(events[0]["properties"]["version"], "3");
    assert_eq!(events[0]["properties"]["build"], "31");
    assert_eq!(events[0]["context"]["app"], json!({"version": "3"}));
    assert!(events
        .iter()
        .all(|e| e["context"].get("session_id").is_none()));
    assert_eq!(outbox_close(client, 1_000), OutboxStatus::Ok);
    outbox_free(client);
}

/// Tracks four events into a queue of two (the oldest two drop), flushes,
/// and returns the loss reports the collector got.
fn loss_reports_after_an_overflow(extra: Value) -> Vec<Value> {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = json!({"max_queue_events": 2, "lifecycle_events": false, "sessions": false});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let client = open_with(&collector.endpoint, &dir, cfg);
    for i in 0..4 {
        let (st, _) = track(client, &format!(r#"{{"event":"E{i}","userId":"u"}}"#));
        assert_eq!(st, OutboxStatus::Ok, "{}", last_error());
    }
    let mut report = OutboxFlushReport::default();
    assert_eq!(
        outbox_flush_and_wait(client, 30_000, &mut report),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    assert_eq!(outbox_close(client, 1_000), OutboxStatus::Ok);
    outbox_free(client);
    let events = collector.events();
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|n| *n != "outbox dropped events")
        .collect();
    assert_eq!(names, ["E2", "E3"]);
    events
        .into_iter()
        .filter(|e| e["event"] == "outbox dropped events")
        .collect()
}

/// Seen failing with the key ignored (a report was sent).
#[test]
fn loss_reports_are_on_by_default_and_false_turns_them_off() {
    let on = loss_reports_after_an_overflow(json!({}));
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(on[0]["properties"]["counts"], json!({"overflow": 2}));
    let off = loss_reports_after_an_overflow(json!({"loss_reports": false}));
    assert!(off.is_empty(), "{off:?}");
}

/// Wait until `collector` holds `n` events (at most 60 s; the caller's
/// assertions then say what arrived).
fn wait_for_events(collector: &common::Collector, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while collector.events().len() < n && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Track `plain` durably, then `alarm` with `track` (`outbox_track` or
/// `outbox_track_critical`): both must be accepted.
fn track_plain_then_alarm(
    client: *mut OutboxClient,
    plain: &[u8],
    alarm: &[u8],
    track: extern "C" fn(*const OutboxClient, *const u8, usize, *mut u64) -> OutboxStatus,
) {
    assert_eq!(
        outbox_track_durable(client, plain.as_ptr(), plain.len(), null_mut()),
        OutboxStatus::Ok
    );
    assert_eq!(
        track(client, alarm.as_ptr(), alarm.len(), null_mut()),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
}

#[test]
fn a_critical_track_is_uploaded_in_manual_mode_without_a_flush() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // `open_with` opens in manual mode: nothing goes without a flush.
    let client = open_with(&collector.endpoint, &dir, json!({}));
    track_plain_then_alarm(
        client,
        br#"{"event":"Plain","userId":"u"}"#,
        br#"{"event":"Alarm","userId":"u"}"#,
        outbox_track_critical,
    );
    wait_for_events(&collector, 2);
    let names: Vec<Value> = collector
        .events()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(names, [json!("Plain"), json!("Alarm")]);
    assert_eq!(outbox_close(client, 0), OutboxStatus::Ok);
    outbox_free(client);
}

/// A top-level `"critical": true` in the JSON of `outbox_track` (and
/// `outbox_track_durable`) is outbox's own flag, as in `outbox send`: the
/// event is tracked as critical, and the key is not sent.
#[test]
fn a_critical_key_in_the_json_tracks_the_event_as_critical_and_is_not_sent() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // `open_with` opens in manual mode: nothing goes without a flush.
    let client = open_with(&collector.endpoint, &dir, json!({}));
    track_plain_then_alarm(
        client,
        br#"{"event":"Plain","userId":"u","critical":false}"#,
        br#"{"event":"Alarm","userId":"u","critical":true}"#,
        outbox_track,
    );
    wait_for_events(&collector, 2);
    let events = collector.events();
    let names: Vec<Value> = events.iter().map(|e| e["event"].clone()).collect();
    assert_eq!(names, [json!("Plain"), json!("Alarm")]);
    for e in &events {
        assert!(e.get("critical").is_none(), "sent with the flag: {e}");
    }
    let bad = br#"{"event":"Bad","userId":"u","critical":"yes"}"#;
    assert_eq!(
        outbox_track(client, bad.as_ptr(), bad.len(), null_mut()),
        OutboxStatus::InvalidJson
    );
    assert_eq!(outbox_close(client, 0), OutboxStatus::Ok);
    outbox_free(client);
}

/// `max_event_age_ms`: events older than that when their batch is formed
/// are dropped unsent (reason `expired`); 0 is refused. Seen failing with
/// the key ignored (both events arrived).
#[test]
fn max_event_age_ms_expires_old_events_and_zero_is_refused() {
    let collector = common::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"lifecycle_events": false, "sessions": false, "max_event_age_ms": 20});
    let client = open_with(&collector.endpoint, &dir, cfg);
    for i in 0..2 {
        let (st, _) = track(client, &format!(r#"{{"event":"E{i}","userId":"u"}}"#));
        assert_eq!(st, OutboxStatus::Ok, "{}", last_error());
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut report = OutboxFlushReport::default();
    assert_eq!(
        outbox_flush_and_wait(client, 30_000, &mut report),
        OutboxStatus::Ok,
        "{}",
        last_error()
    );
    assert_eq!(report.pending, 0, "{report:?}");
    assert_eq!(outbox_close(client, 1_000), OutboxStatus::Ok);
    outbox_free(client);
    assert!(collector.events().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let (st, client) = open_json(&json!({
        "path": dir.path().join("events.db"),
        "endpoint": collector.endpoint,
        "max_event_age_ms": 0,
    }));
    assert_eq!(st, OutboxStatus::InvalidConfig, "{}", last_error());
    assert!(client.is_null());
}
