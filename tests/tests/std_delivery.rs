//! The Client against a real collector: every event arrives, in tracking
//! order, in Segment-compatible bodies; auth schemes and gzip; a re-sent
//! event is byte-identical; retries on 500 and on 429 with Retry-After.

mod std_support;

use std::time::Duration;

use outbox_std::http::{Auth, HttpConfig};
use outbox_std::{Client, FlushMode, Notification};
use std_support::*;

#[test]
fn every_event_arrives_in_order_in_segment_bodies() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .configure(|c| c.max_batch_events(7))
        .build()
        .unwrap();
    let notes = client.notifications();
    let ids: Vec<String> = (0..100).map(|i| format!("order-{i:03}")).collect();
    for id in &ids {
        assert_eq!(client.track(event(id)).unwrap(), *id);
    }
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(report.pending, 0);
    assert_eq!(collector.delivered(), ids, "every event, once, in order");

    for r in collector.requests() {
        assert_eq!(r.path, "/v1/batch");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        // HTTP Basic, key as user name, empty password: base64("test-key:").
        assert_eq!(r.authorization.as_deref(), Some("Basic dGVzdC1rZXk6"));
        assert!(r.ids.len() <= 7);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let sent_at = body["sentAt"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(sent_at).is_ok(), "{sent_at}");
        for e in &r.events {
            assert_eq!(e["type"], "track");
            assert_eq!(e["userId"], "user-1");
            assert!(humantime::parse_rfc3339(e["timestamp"].as_str().unwrap()).is_ok());
        }
    }
    let stats = client.stats().unwrap();
    assert_eq!(stats.core.delivered, 100);
    assert_eq!(stats.core.pending_events, 0);
    let delivered: u64 = notes
        .try_iter()
        .filter_map(|n| match n {
            Notification::Delivered { first, last } => Some(last - first + 1),
            _ => None,
        })
        .sum();
    assert_eq!(delivered, 100);
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert!(client.stats().is_err(), "a stopped client refuses calls");
    assert_eq!(notes.count(), 0, "subscriptions end when the client stops");
    assert_eq!(client.notifications().next(), None);
}

#[test]
fn message_id_and_timestamp_are_set_when_absent() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .build()
        .unwrap();
    let id = client
        .track(outbox_std::Event::track("No Id").anonymous_id("anon"))
        .unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    let r = &collector.requests()[0];
    assert_eq!(r.ids, vec![id.to_string()]);
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert!(r.events[0]["timestamp"].is_string());
}

#[test]
fn bearer_option_gzip_and_user_agent() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let http = HttpConfig::new(collector.url.clone(), "seg-write-key")
        .auth(Auth::Bearer)
        .gzip(Some(9))
        .user_agent("std-tests/1");
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .http(http)
        .build()
        .unwrap();
    for i in 0..20 {
        client.track(event(&format!("gz-{i}"))).unwrap();
    }
    client.flush_and_wait(PATIENCE).unwrap();
    let requests = collector.requests();
    assert!(requests.iter().all(|r| r.gzip), "every body gzipped");
    assert!(requests
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer seg-write-key")));
    assert!(requests
        .iter()
        .all(|r| r.user_agent.as_deref() == Some("std-tests/1")));
    assert_eq!(collector.delivered().len(), 20);
}

#[test]
fn retries_500_and_resends_byte_identical_events() {
    let mut failures = 2;
    let collector = Collector::with_policy(move |_| {
        if failures > 0 {
            failures -= 1;
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    for i in 0..5 {
        client.track(event(&format!("r-{i}"))).unwrap();
    }
    client.flush_and_wait(PATIENCE).unwrap();
    let requests = collector.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(requests[0].raw_batch(), requests[2].raw_batch());
    assert_eq!(collector.delivered().len(), 5);
    assert_eq!(client.stats().unwrap().core.retries, 2);
}

#[test]
fn a_429_waits_at_least_its_retry_after() {
    let mut answered = 0;
    let collector = Collector::with_policy(move |_| {
        answered += 1;
        match answered {
            1 => Reply {
                status: 429,
                retry_after: Some("2".into()),
            },
            2 => Reply {
                status: 503,
                retry_after: Some(httpdate::fmt_http_date(
                    std::time::SystemTime::now() + Duration::from_secs(2),
                )),
            },
            _ => Reply::ok(),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    // The machine's own backoff is 20-300 ms: only Retry-After explains 1 s+.
    let client = builder(&dir.path().join("q.db"), &collector)
        .build()
        .unwrap();
    client.track(event("slow-down")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    let r = collector.requests();
    assert_eq!(r.len(), 3);
    assert!(
        r[1].at - r[0].at >= Duration::from_millis(1900),
        "seconds form honoured"
    );
    // An HTTP date has one-second resolution: at least 1 s remains.
    assert!(
        r[2].at - r[1].at >= Duration::from_millis(900),
        "date form honoured"
    );
    assert_eq!(collector.delivered(), ["slow-down"]);
}

#[test]
fn dropping_the_last_handle_flushes_what_is_queued() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .drop_flush_timeout(PATIENCE)
        .build()
        .unwrap();
    let clone = client.clone();
    for i in 0..3 {
        clone.track(event(&format!("d-{i}"))).unwrap();
    }
    drop(clone);
    assert!(
        collector.requests().is_empty(),
        "manual mode: nothing sent yet"
    );
    drop(client);
    assert_eq!(collector.delivered(), ["d-0", "d-1", "d-2"]);
}

#[test]
fn an_oversized_response_body_does_not_matter() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // A raw server that answers 200 with a 1 MiB body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 65536];
        let _ = s.read(&mut buf);
        let body = vec![b'x'; 1 << 20];
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(&body);
    });
    drop(collector);
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(url, "k")
        .build()
        .unwrap();
    client.track(event("big-answer")).unwrap();
    // Immediate mode may deliver before the flush is asked for: the
    // queue's totals, not the flush's report, say it was delivered.
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(report.pending, 0);
    assert_eq!(client.stats().unwrap().core.delivered, 1);
    server.join().unwrap();
}

#[test]
fn an_answer_after_a_redirect_is_never_a_delivery() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    // Answers every POST with a 302 to /elsewhere, and every GET with 200:
    // a client that followed the redirect and trusted the 200 would lose
    // the batch.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let gets = Arc::new(AtomicUsize::new(0));
    let server = {
        let (stop, gets) = (stop.clone(), gets.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let mut buf = vec![0u8; 65536];
                let n = s.read(&mut buf).unwrap_or(0);
                let answer = if buf[..n].starts_with(b"POST") {
                    "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    gets.fetch_add(1, Ordering::SeqCst);
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                };
                let _ = s.write_all(answer.as_bytes());
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .endpoint(format!("http://{addr}"), "k")
        .configure(|c| c.retry_backoff(Duration::from_millis(20), Duration::from_millis(50)))
        .build()
        .unwrap();
    client.track(event("redirected")).unwrap();
    assert!(std_support::wait_until(PATIENCE, || {
        client.stats().unwrap().core.retries >= 2
    }));
    let stats = client.stats().unwrap();
    assert_eq!(stats.core.delivered, 0);
    assert_eq!(stats.core.pending_events, 1);
    client.set_network_available(false).unwrap();
    client.shutdown(Duration::from_millis(10)).unwrap();
    stop.store(true, Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(addr);
    server.join().unwrap();
    println!("{} GETs after redirects", gets.load(Ordering::SeqCst));
}
