//! Pauses: a 401 halts uploads with every event kept until `resume`;
//! network down holds uploads until it is back; lifecycle and runtime
//! flush settings drive uploads in the non-immediate modes; a refused or a
//! hung connection is a failed attempt (bounded by the timeouts), retried.

mod std_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outbox_std::{FlushError, FlushMode, HaltReason, Lifecycle, Notification};
use std_support::*;

#[test]
fn a_401_halts_until_resume_and_keeps_every_event() {
    let key_fixed = Arc::new(AtomicBool::new(false));
    let fixed = key_fixed.clone();
    let collector = Collector::with_policy(move |_| {
        if fixed.load(Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(401)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .build()
        .unwrap();
    let notes = client.notifications();
    let ids: Vec<String> = (0..10).map(|i| format!("h-{i}")).collect();
    for id in &ids {
        client.track(event(id)).unwrap();
    }
    match client.flush_and_wait(PATIENCE) {
        Err(FlushError::Halted { status, report }) => {
            assert_eq!(status, 401);
            assert_eq!(report.pending, 10);
        }
        other => panic!("expected a halt, got {other:?}"),
    }
    let stats = client.stats().unwrap();
    assert!(stats.core.halted);
    assert_eq!(stats.core.pending_events, 10);
    assert!(notes.recv_timeout(PATIENCE).is_some_and(|n| n
        == Notification::Halted {
            status: 401,
            reason: HaltReason::Status
        }));
    let attempts = collector.requests().len();
    // More tracking while halted stores but does not upload.
    client.track(event("h-10")).unwrap();
    client.sync().unwrap();
    client.flush().unwrap();
    assert_eq!(client.stats().unwrap().core.pending_events, 11);
    assert_eq!(
        collector.requests().len(),
        attempts,
        "no upload while halted"
    );

    key_fixed.store(true, Ordering::SeqCst);
    client.resume().unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    let mut all = ids.clone();
    all.push("h-10".into());
    assert_eq!(collector.delivered(), all);
}

#[test]
fn network_down_holds_uploads_until_it_is_back() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .build()
        .unwrap();
    client.set_network_available(false).unwrap();
    for i in 0..5 {
        client.track(event(&format!("n-{i}"))).unwrap();
    }
    client.flush().unwrap();
    assert!(matches!(
        client.flush_and_wait(Duration::from_millis(300)),
        Err(FlushError::TimedOut(r)) if r.pending == 5
    ));
    assert!(
        collector.requests().is_empty(),
        "nothing sent while offline"
    );
    assert!(!client.stats().unwrap().core.network_up);

    client.set_network_available(true).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["n-0", "n-1", "n-2", "n-3", "n-4"]);
}

#[test]
fn a_refused_connection_is_retried_until_the_server_is_up() {
    // Reserve a port, then close it: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = outbox_std::Client::builder()
        .path(&db)
        .endpoint(format!("http://127.0.0.1:{port}"), "k")
        .configure(|c| c.retry_backoff(Duration::from_millis(20), Duration::from_millis(100)))
        .build()
        .unwrap();
    client.track(event("offline-1")).unwrap();
    assert!(wait_until(PATIENCE, || client
        .stats()
        .unwrap()
        .core
        .retries
        >= 2));
    assert_eq!(client.stats().unwrap().core.pending_events, 1);
    client.shutdown(Duration::from_millis(100)).unwrap();

    // Back online later: the stored event goes out from the next start.
    let collector = Collector::start();
    let client = builder(&db, &collector).build().unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["offline-1"]);
}

#[test]
fn lifecycle_and_runtime_settings_drive_the_other_modes() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::AppClose)
        .build()
        .unwrap();
    client.track(event("a-0")).unwrap();
    client.sync().unwrap();
    client.lifecycle(Lifecycle::Background).unwrap();
    assert!(wait_until(PATIENCE, || collector.delivered().len() == 1));

    // Period mode with a threshold of 3: the third event triggers a flush.
    client.set_flush_period(Duration::from_secs(3600)).unwrap();
    client.set_flush_mode(FlushMode::Period).unwrap();
    client.set_flush_threshold(Some(3)).unwrap();
    for i in 1..=3 {
        client.track(event(&format!("a-{i}"))).unwrap();
    }
    assert!(wait_until(PATIENCE, || collector.delivered().len() == 4));

    // A short period flushes by itself.
    client.set_flush_threshold(None).unwrap();
    client.set_flush_period(Duration::from_millis(50)).unwrap();
    client.track(event("a-4")).unwrap();
    assert!(wait_until(PATIENCE, || collector.delivered().len() == 5));
    assert!(client.set_flush_period(Duration::ZERO).is_err());
    assert_eq!(collector.delivered(), ["a-0", "a-1", "a-2", "a-3", "a-4"]);
}

#[test]
fn a_server_that_never_answers_is_a_timed_out_attempt() {
    use outbox_std::http::HttpConfig;
    // Accepts connections, reads nothing, answers nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(conn.ok());
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let http = HttpConfig::new(format!("http://{addr}"), "k")
        .timeouts(Duration::from_millis(500), Duration::from_millis(300));
    let client = outbox_std::Client::builder()
        .path(dir.path().join("q.db"))
        .http(http)
        .configure(|c| c.retry_backoff(Duration::from_millis(10), Duration::from_millis(50)))
        .build()
        .unwrap();
    client.track(event("hung")).unwrap();
    // Each attempt ends by the overall timeout and is retried.
    assert!(wait_until(PATIENCE, || client
        .stats()
        .unwrap()
        .core
        .retries
        >= 3));
    let stats = client.stats().unwrap();
    assert_eq!((stats.core.delivered, stats.core.pending_events), (0, 1));
    client.set_network_available(false).unwrap();
    client.shutdown(Duration::from_millis(10)).unwrap();
    stop.store(true, Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(addr);
    holder.join().unwrap();
}
