//! outbox-std against what Segment and RudderStack servers read: the key as
//! HTTP Basic user name by default, no Authorization without a key,
//! `context.library`, batches within 500 000 bytes; the Segment event API,
//! global context, receipts matched against notifications, dead-letter
//! requeue and purge, huge timeouts; and the DESIGN status table, one row at
//! a time, against a local server.

mod std_support;

use std::time::Duration;

use outbox_std::http::{Auth, HttpConfig};
use outbox_std::{Client, DeadLetterSelection, Event, Notification, RetryCause};
use serde_json::json;
use std_support::*;

/// `Basic base64("<key>:")`, as Segment's and RudderStack's SDKs send it.
fn basic(key: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Basic {encoded}")
}

#[test]
fn defaults_deliver_to_a_server_that_reads_the_key_like_segment() {
    assert_eq!(basic("abc"), "Basic YWJjOg==");
    // The server reads the key only from HTTP Basic (user name, empty
    // password), like Segment's and RudderStack's; anything else is a 401.
    let expected = basic("seg-key");
    let collector = Collector::with_policy(move |r| {
        Reply::status(if r.authorization.as_deref() == Some(expected.as_str()) {
            200
        } else {
            401
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(collector.url.clone(), "seg-key")
        .build()
        .unwrap();
    for i in 0..5 {
        client.track(event(&format!("s-{i}"))).unwrap();
    }
    // Immediate mode may deliver some before the flush is asked for: the
    // queue's totals are the check, not the flush's report.
    assert_eq!(client.flush_and_wait(PATIENCE).unwrap().pending, 0);
    assert_eq!(client.stats().unwrap().core.delivered, 5);
    assert!(collector.requests().iter().all(|r| r.status == 200));
    for e in collector.requests().iter().flat_map(|r| r.events.clone()) {
        assert_eq!(e["context"]["library"]["name"], "outbox");
        assert_eq!(
            e["context"]["library"]["version"],
            outbox_std::LIBRARY_VERSION
        );
    }
    client.shutdown(Duration::from_secs(5)).unwrap();

    // The same server halts a client configured for Bearer: it checks.
    let dir = tempfile::tempdir().unwrap();
    let bearer = Client::builder()
        .path(dir.path().join("q.db"))
        .http(HttpConfig::new(collector.url.clone(), "seg-key").auth(Auth::Bearer))
        .build()
        .unwrap();
    bearer.track(event("b-1")).unwrap();
    let err = bearer.flush_and_wait(PATIENCE).unwrap_err();
    assert!(
        matches!(err, outbox_std::FlushError::Halted { status: 401, .. }),
        "{err:?}"
    );
}

#[test]
fn no_key_sends_no_authorization_header() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(collector.url.clone(), "")
        .build()
        .unwrap();
    client.track(event("nk-1")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    let requests = collector.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].authorization, None);
}

#[test]
fn full_batches_stay_within_500_000_bytes_including_the_envelope() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(outbox_std::FlushMode::Manual)
        .build()
        .unwrap();
    let filler = "x".repeat(30_000);
    for i in 0..60 {
        let e = event(&format!("big-{i:02}")).property("filler", filler.as_str());
        client.track(e).unwrap();
    }
    client.flush_and_wait(PATIENCE).unwrap();
    let sizes: Vec<usize> = collector.requests().iter().map(|r| r.body.len()).collect();
    assert!(sizes.iter().all(|&n| n <= 500_000), "{sizes:?}");
    assert!(
        sizes.iter().any(|&n| n > 450_000),
        "batches are filled: {sizes:?}"
    );
    assert_eq!(collector.delivered().len(), 60);
}

#[test]
fn every_segment_call_and_the_global_context_reach_the_wire() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // Naming the app's version would also track `Application Installed`
    // (tests/tests/std_sessions.rs checks those); this test is about the
    // calls the app makes itself.
    let client = builder(&dir.path().join("q.db"), &collector)
        .app("shop", "2.3.0")
        .lifecycle_events(false)
        .context(json!({"device": {"type": "kiosk"}}))
        .properties(json!({"tenant": "acme", "plan": "free"}))
        .build()
        .unwrap();
    client
        .track(Event::track("Bought").user_id(42).property("plan", "pro"))
        .unwrap();
    client
        .track(
            Event::identify()
                .user_id("u")
                .traits(json!({"email": "a@b.c"})),
        )
        .unwrap();
    client.track(Event::page("Home").anonymous_id("a")).unwrap();
    client
        .track(Event::screen("Cart").anonymous_id("a"))
        .unwrap();
    client.track(Event::group("g-7").user_id("u")).unwrap();
    client.track(Event::alias("a").user_id("u")).unwrap();
    client
        .track(
            Event::track("Own")
                .user_id("u")
                .context(json!({"app": {"build": "9"}})),
        )
        .unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    let events: Vec<_> = collector
        .requests()
        .iter()
        .flat_map(|r| r.events.clone())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["track", "identify", "page", "screen", "group", "alias", "track"]
    );
    assert_eq!(
        events[0]["userId"], "42",
        "a numeric id goes out as a string"
    );
    assert_eq!(
        events[0]["properties"],
        json!({"plan": "pro", "tenant": "acme"})
    );
    assert!(
        events[1].get("properties").is_none(),
        "identify has traits, not properties"
    );
    assert_eq!(events[2]["properties"]["tenant"], "acme");
    for e in &events {
        assert_eq!(e["context"]["app"]["name"], "shop", "{e}");
        assert_eq!(e["context"]["device"]["type"], "kiosk", "{e}");
        assert_eq!(e["context"]["library"]["name"], "outbox", "{e}");
    }
    assert_eq!(
        events[6]["context"]["app"],
        json!({"build": "9", "name": "shop", "version": "2.3.0"})
    );
}

#[test]
fn receipts_match_the_notifications_of_their_events() {
    // The server refuses any batch holding a "poison" property.
    let collector = Collector::with_policy(|r| {
        let poisoned = r
            .events
            .iter()
            .any(|e| e["properties"].get("poison").is_some());
        Reply::status(if poisoned { 400 } else { 200 })
    });
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(outbox_std::FlushMode::Manual)
        .build()
        .unwrap();
    let notes = client.notifications();
    let good = client.track(event("r-good")).unwrap();
    let bad = client
        .track(event("r-bad").property("poison", true))
        .unwrap();
    let last = client.track_durable(event("r-last")).unwrap();
    assert_eq!(good, "r-good");
    assert_eq!(bad.message_id(), "r-bad");
    let (g, b, l) = (good.seq().unwrap(), bad.seq().unwrap(), last.seq().unwrap());
    assert!(g < b && b < l, "{g} {b} {l}");
    client.flush_and_wait(PATIENCE).unwrap();
    let seen: Vec<Notification> = notes.try_iter().collect();
    let about = |r: &outbox_std::Receipt| -> Vec<&Notification> {
        seen.iter().filter(|n| r.concerns(n)).collect()
    };
    assert!(
        matches!(about(&good)[..], [Notification::Delivered { .. }]),
        "{seen:?}"
    );
    assert!(
        matches!(about(&last)[..], [Notification::Delivered { .. }]),
        "{seen:?}"
    );
    assert!(
        matches!(
            about(&bad)[..],
            [Notification::Rejected { status: 400, .. }]
        ),
        "{seen:?}"
    );
}

#[test]
fn dead_letters_are_requeued_after_the_server_is_fixed_and_purged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let strict = Arc::new(AtomicBool::new(true));
    let rule = strict.clone();
    let collector = Collector::with_policy(move |r| {
        let flagged = r.events.iter().any(|e| e["properties"].get("v2").is_some());
        Reply::status(if flagged && rule.load(Ordering::SeqCst) {
            400
        } else {
            200
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .build()
        .unwrap();
    for i in 0..3 {
        client
            .track(event(&format!("dl-{i}")).property("v2", true))
            .unwrap();
    }
    client.track(event("dl-ok")).unwrap();
    assert_eq!(client.flush_and_wait(PATIENCE).unwrap().pending, 0);
    let totals = client.stats().unwrap().core;
    assert_eq!((totals.delivered, totals.rejected), (1, 3));
    let dead = client.dead_letters().unwrap();
    assert_eq!(dead.len(), 3);

    // The server is fixed: requeue one by seq, then the rest.
    strict.store(false, Ordering::SeqCst);
    let first = dead[0].seq;
    assert_eq!(
        client
            .requeue_dead_letters(DeadLetterSelection::Seqs(vec![first, 999_999]))
            .unwrap(),
        1
    );
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(client.dead_letters().unwrap().len(), 2);
    assert_eq!(
        client
            .requeue_dead_letters(DeadLetterSelection::All)
            .unwrap(),
        2
    );
    client.flush_and_wait(PATIENCE).unwrap();
    assert!(client.dead_letters().unwrap().is_empty());
    let mut delivered = collector.delivered();
    delivered.sort();
    assert_eq!(
        delivered,
        ["dl-0", "dl-1", "dl-2", "dl-ok"],
        "same messageIds, once each"
    );

    // Purge: a new dead letter goes for good.
    strict.store(true, Ordering::SeqCst);
    client.track(event("dl-gone").property("v2", true)).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(client.dead_letters().unwrap().len(), 1);
    assert_eq!(
        client.purge_dead_letters(DeadLetterSelection::All).unwrap(),
        1
    );
    assert!(client.dead_letters().unwrap().is_empty());
    assert_eq!(client.stats().unwrap().dead_letters, 0);
}

#[test]
fn huge_timeouts_mean_no_deadline_never_a_panic() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // Issue 17 item 4: the overall timeout must stay below the machine's
    // request_timeout, so both are huge here (a century, two centuries).
    let century = Duration::from_secs(100 * 365 * 86_400);
    let http = HttpConfig::new(collector.url.clone(), "k").timeouts(Duration::MAX, century);
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .http(http)
        .configure(|c| c.request_timeout(century * 2))
        .drop_flush_timeout(Duration::MAX)
        .build()
        .unwrap();
    client.track(event("max-1")).unwrap();
    // The default mode (Immediate) may deliver before the flush is asked
    // for, so the report may count 0 or 1: the queue's totals are the check.
    let report = client.flush_and_wait(Duration::MAX).unwrap();
    assert_eq!(report.pending, 0);
    assert_eq!(client.stats().unwrap().core.delivered, 1);
    client.track(event("max-2")).unwrap();
    let report = client.shutdown(Duration::MAX).unwrap();
    assert_eq!(report.pending, 0);
    let again = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(collector.url.clone(), "k")
        .build()
        .unwrap();
    again.close().unwrap();
    assert_eq!(collector.delivered(), ["max-1", "max-2"]);
}

/// The notifications a one-event queue gets when the server answers its
/// first request with `status` (and `retry_after`), then 200.
fn first_answer(status: u16, retry_after: Option<&str>) -> Vec<Notification> {
    let mut first = true;
    let retry_after = retry_after.map(String::from);
    let collector = Collector::with_policy(move |_| {
        let reply = if first {
            Reply {
                status,
                retry_after: retry_after.clone(),
            }
        } else {
            Reply::ok()
        };
        first = false;
        reply
    });
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .configure(|c| c.max_retry_after(Duration::from_secs(5)))
        .build()
        .unwrap();
    let notes = client.notifications();
    client.track(event(&format!("row-{status}"))).unwrap();
    let _ = client.flush_and_wait(Duration::from_secs(20));
    let _ = client.close();
    notes.try_iter().collect()
}

#[test]
fn status_table_2xx_delivers() {
    for status in [200, 201, 202, 204] {
        let notes = first_answer(status, None);
        assert!(
            matches!(notes[..], [Notification::Delivered { .. }]),
            "{status}: {notes:?}"
        );
    }
}

#[test]
fn status_table_400_and_413_reject_the_single_bad_event() {
    for status in [400, 413] {
        let notes = first_answer(status, None);
        assert!(
            matches!(notes[..], [Notification::Rejected { status: s, .. }] if s == status),
            "{status}: {notes:?}"
        );
    }
}

#[test]
fn status_table_401_and_403_halt() {
    for status in [401, 403] {
        let notes = first_answer(status, None);
        assert!(
            matches!(notes[..], [Notification::Halted { status: s, .. }] if s == status),
            "{status}: {notes:?}"
        );
    }
}

#[test]
fn status_table_408_429_and_5xx_retry_then_deliver() {
    for status in [408, 429, 500, 502, 503, 504] {
        let notes = first_answer(status, None);
        assert!(
            matches!(
                notes[..],
                [
                    Notification::RetryScheduled {
                        cause: RetryCause::Server,
                        attempt: 1,
                        ..
                    },
                    Notification::Delivered { .. }
                ]
            ),
            "{status}: {notes:?}"
        );
    }
}

#[test]
fn status_table_retry_after_in_seconds_and_as_a_date_sets_the_wait() {
    let notes = first_answer(429, Some("2"));
    let Notification::RetryScheduled { delay, .. } = notes[0] else {
        panic!("{notes:?}")
    };
    assert!(delay >= Duration::from_millis(1900), "{delay:?}");
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    let notes = first_answer(503, Some(&date));
    let Notification::RetryScheduled { delay, .. } = notes[0] else {
        panic!("{notes:?}")
    };
    assert!(delay >= Duration::from_millis(1000), "{delay:?}");
    assert!(
        matches!(notes.last(), Some(Notification::Delivered { .. })),
        "{notes:?}"
    );
}

#[test]
fn status_table_no_connection_and_no_answer_are_transient() {
    /// The first notification of a one-event queue uploading with `http`,
    /// the machine giving up on a request after `request_timeout`.
    fn first_note(http: HttpConfig, request_timeout: Duration) -> Option<Notification> {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::builder()
            .path(dir.path().join("q.db"))
            .http(http)
            .configure(|c| c.request_timeout(request_timeout))
            .build()
            .unwrap();
        let notes = client.notifications();
        client.track(event("t-1")).unwrap();
        let note = notes.recv_timeout(PATIENCE);
        client.close().unwrap();
        note
    }
    let transient = |note: &Option<Notification>| {
        matches!(
            note,
            Some(Notification::RetryScheduled {
                cause: RetryCause::Transport,
                ..
            })
        )
    };
    // Nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let note = first_note(HttpConfig::new(format!("http://{dead}"), "k"), PATIENCE);
    assert!(transient(&note), "{note:?}");
    // A server that accepts and never answers: the request's timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let http = HttpConfig::new(format!("http://{addr}"), "k")
        .timeouts(Duration::from_secs(1), Duration::from_secs(1));
    let note = first_note(http, PATIENCE);
    assert!(transient(&note), "{note:?}");
    // A transport that would wait for minutes past the machine's
    // `request_timeout` is refused when the Client is built (issue 17 item
    // 4: each timeout would queue another body behind the request still
    // running); a stuck custom uploader is covered by std_damage_transport.
    let http = HttpConfig::new(format!("http://{addr}"), "k")
        .timeouts(Duration::from_secs(300), Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let built = Client::builder()
        .path(dir.path().join("q.db"))
        .http(http)
        .configure(|c| c.request_timeout(Duration::from_secs(1)))
        .build();
    assert!(
        matches!(built, Err(outbox_std::BuildError::HttpTimeout { .. })),
        "{built:?}"
    );
    drop(silent);
}

#[test]
fn status_table_422_rejects_the_single_bad_event_like_400() {
    let notes = first_answer(422, None);
    assert!(
        matches!(notes[..], [Notification::Rejected { status: 422, .. }]),
        "{notes:?}"
    );
}

#[test]
fn status_table_wrong_endpoint_or_protocol_halts_keeping_everything() {
    for status in [404, 405, 410, 418, 501, 505] {
        let notes = first_answer(status, None);
        assert!(
            matches!(notes[..], [Notification::Halted { status: s, .. }] if s == status),
            "{status}: {notes:?}"
        );
    }
}
