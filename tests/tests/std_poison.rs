//! Refusals end to end: a poison event (400) is isolated by bisection and
//! lands in the dead-letter table while every other event arrives in order;
//! 413 splits batches until they fit, and an event that is too large on its
//! own is rejected as `too_large`.

mod std_support;

use std::time::Duration;

use outbox_std::sqlite::SqliteStore;
use outbox_std::{FlushMode, Notification, RejectReason};
use serde_json::json;
use std_support::*;

fn is_poison(e: &serde_json::Value) -> bool {
    e["properties"]["poison"] == json!(true)
}

#[test]
fn a_poison_event_is_isolated_and_dead_lettered() {
    let collector = Collector::with_policy(|r| {
        if r.events.iter().any(is_poison) {
            Reply::status(400)
        } else {
            Reply::ok()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let notes = client.notifications();
    let mut good = Vec::new();
    for i in 0..40 {
        if i == 23 {
            let poison = event("poison-23").properties(json!({"poison": true}));
            client.track(poison).unwrap();
        } else {
            let id = format!("good-{i:02}");
            client.track(event(&id)).unwrap();
            good.push(id);
        }
    }
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(
        (report.delivered, report.rejected, report.pending),
        (39, 1, 0)
    );
    assert_eq!(collector.delivered(), good, "every good event, in order");

    let dead = client.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].status, dead[0].reason.as_str()), (400, "poison"));
    let payload: serde_json::Value = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(payload["messageId"], "poison-23");
    assert_eq!(client.stats().unwrap().dead_letters, 1);
    assert!(notes.try_iter().any(|n| matches!(
        n,
        Notification::Rejected {
            status: 400,
            reason: RejectReason::Poison,
            ..
        }
    )));
    client.shutdown(Duration::from_secs(5)).unwrap();

    // The dead letter is still there for the operator after the Client stopped.
    let store = SqliteStore::open_read_only(&db).unwrap();
    let mut export = Vec::new();
    assert_eq!(store.export_dead_letters(&mut export).unwrap(), 1);
    let line: serde_json::Value = serde_json::from_slice(&export).unwrap();
    assert_eq!(line["event"]["messageId"], "poison-23");
    assert_eq!(line["reason"], "poison");
    assert!(line["rejectedAt"].is_string());
    assert_eq!(store.queue_len().unwrap(), (0, 0));
}

#[test]
fn a_413_splits_batches_and_rejects_an_event_too_large_alone() {
    let collector = Collector::with_policy(|r| {
        let huge = r
            .events
            .iter()
            .any(|e| e["properties"]["huge"] == json!(true));
        if r.events.len() > 4 || huge {
            Reply::status(413)
        } else {
            Reply::ok()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let mut good = Vec::new();
    for i in 0..30 {
        if i == 5 {
            client
                .track(event("huge-5").properties(json!({"huge": true})))
                .unwrap();
        } else {
            let id = format!("s-{i:02}");
            client.track(event(&id)).unwrap();
            good.push(id);
        }
    }
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!((report.delivered, report.rejected), (29, 1));
    assert_eq!(collector.delivered(), good);
    assert!(collector
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .all(|r| r.ids.len() <= 4));
    let dead = client.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].status, dead[0].reason.as_str()),
        (413, "too_large")
    );
}

#[test]
fn invalid_events_are_refused_by_track_itself() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .configure(|c| c.max_event_bytes(1024).max_batch_bytes(4096))
        .build()
        .unwrap();
    let too_large = event("big").properties(json!({"blob": "x".repeat(2000)}));
    assert!(matches!(
        client.track(too_large),
        Err(outbox_std::TrackError::Invalid(
            outbox_std::EventError::TooLarge { max: 1024, .. }
        ))
    ));
    let not_object = event("arr").properties(json!([1, 2]));
    assert!(matches!(
        client.track(not_object),
        Err(outbox_std::TrackError::Invalid(
            outbox_std::EventError::NotAnObject { .. }
        ))
    ));
    client.sync().unwrap();
    assert_eq!(
        client.stats().unwrap().core.tracked,
        0,
        "nothing was stored"
    );
}

/// Issue 11 hook, end to end: a row edited so that its payload no longer
/// matches its stored size is dead-lettered alone as "malformed" (status 0,
/// never sent), and every other event is delivered in order.
#[test]
fn a_damaged_row_is_dead_lettered_alone_as_malformed() {
    let collector = Collector::with_policy(|_| Reply::ok());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    for i in 0..5 {
        client.track_durable(event(&format!("m-{i}"))).unwrap();
    }
    client.close().unwrap();
    drop(client);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seq: i64 = conn
        .query_row(
            "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute("UPDATE events SET payload = x'7b7d' WHERE seq = ?1", [seq])
        .unwrap();
    drop(conn);

    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let notes = client.notifications();
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(
        (report.delivered, report.rejected, report.pending),
        (4, 1, 0)
    );
    assert_eq!(collector.delivered(), ["m-0", "m-1", "m-3", "m-4"]);
    let dead = client.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].seq, dead[0].status, dead[0].reason.as_str()),
        (seq as u64, 0, "malformed")
    );
    let rejections: Vec<_> = notes
        .try_iter()
        .filter(|n| matches!(n, Notification::Rejected { .. }))
        .collect();
    assert!(
        matches!(
            rejections.as_slice(),
            [Notification::Rejected {
                status: 0,
                reason: RejectReason::Malformed,
                ..
            }]
        ),
        "{rejections:?}"
    );
    client.shutdown(Duration::from_secs(5)).unwrap();
}
