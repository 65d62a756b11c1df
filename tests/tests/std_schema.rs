//! What the database remembers besides the queue (schema 2): numbering is
//! never reused across restarts, even after the queue was emptied; a file
//! of the first schema migrates on open and keeps its events; the last
//! upload error and the oldest event's age are readable from a read-only
//! view while the Client runs, and a delivery clears the error.

mod std_support;

use std::time::{Duration, SystemTime};

use outbox_std::sqlite::{ErrorSource, SqliteStore, SCHEMA_VERSION};
use outbox_std::{FlushMode, Notification};
use std_support::*;

fn delivered_range(notes: &outbox_std::Notifications) -> Vec<(u64, u64)> {
    notes
        .try_iter()
        .filter_map(|n| match n {
            Notification::Delivered { first, last } => Some((first, last)),
            _ => None,
        })
        .collect()
}

#[test]
fn numbering_continues_after_a_restart_over_a_delivered_queue() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let n = 7;
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    for i in 0..n {
        client.track_durable(event(&format!("a-{i}"))).unwrap();
    }
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!((report.delivered, report.pending), (n, 0));
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);

    // The queue is empty, yet numbering goes on from n, twice over.
    for round in 0..2u64 {
        let client = builder(&db, &collector)
            .flush_mode(FlushMode::Manual)
            .build()
            .unwrap();
        let notes = client.notifications();
        let stats = client.stats().unwrap();
        assert_eq!(stats.core.restored, 0);
        assert_eq!(stats.core.pending_events, 0);
        assert_eq!(stats.core.next_seq, n + round, "round {round}");
        client.track_durable(event(&format!("b-{round}"))).unwrap();
        client.flush_and_wait(PATIENCE).unwrap();
        assert_eq!(delivered_range(&notes), [(n + round, n + round)]);
        client.shutdown(Duration::from_secs(5)).unwrap();
    }
    let mut expected: Vec<String> = (0..n).map(|i| format!("a-{i}")).collect();
    expected.extend(["b-0".to_string(), "b-1".to_string()]);
    assert_eq!(collector.delivered(), expected);
}

/// The first schema's DDL, as release 1 created it.
const V1_SCHEMA: &str = "
    CREATE TABLE events (
        seq     INTEGER PRIMARY KEY,
        size    INTEGER NOT NULL,
        payload BLOB    NOT NULL
    );
    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        seq         INTEGER NOT NULL,
        status      INTEGER NOT NULL,
        reason      TEXT    NOT NULL,
        rejected_at TEXT    NOT NULL,
        payload     BLOB    NOT NULL
    );";

fn payload(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "track",
        "event": "Old Event",
        "userId": "u",
        "messageId": id,
        "timestamp": "2024-05-06T07:08:09Z",
    }))
    .unwrap()
}

#[test]
fn a_version_1_database_migrates_on_open_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        for (seq, id) in [(20i64, "old-20"), (21, "old-21")] {
            let p = payload(id);
            conn.execute(
                "INSERT INTO events (seq, size, payload) VALUES (?1, ?2, ?3)",
                rusqlite::params![seq, p.len() as i64, p],
            )
            .unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1;",
            outbox_std::sqlite::APPLICATION_ID
        ))
        .unwrap();
    }
    // `outbox status` reads an old file as it is, without migrating it.
    {
        let view = SqliteStore::open_read_only(&db).unwrap();
        assert_eq!(view.queue_len().unwrap().0, 2);
        assert_eq!(view.last_error().unwrap(), None);
        let oldest = view.oldest_event().unwrap().unwrap();
        assert_eq!(oldest.seq, 20);
        assert_eq!(
            oldest.queued_at,
            Some(humantime::parse_rfc3339("2024-05-06T07:08:09Z").unwrap())
        );
    }

    let collector = Collector::start();
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let stats = client.stats().unwrap();
    assert_eq!((stats.core.restored, stats.core.next_seq), (2, 22));
    client.track_durable(event("new-22")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["old-20", "old-21", "new-22"]);
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(client);

    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    assert_eq!(client.stats().unwrap().core.next_seq, 23);
}

#[test]
fn the_last_upload_error_is_kept_for_a_reader_and_cleared_by_a_delivery() {
    let collector = Collector::with_policy(|_| Reply::status(503));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let view = SqliteStore::open_read_only(&db).unwrap();
    assert_eq!(view.last_error().unwrap(), None);
    assert_eq!(view.oldest_event().unwrap(), None);
    let before = SystemTime::now() - Duration::from_millis(1);
    for i in 0..3 {
        client.track_durable(event(&format!("e-{i}"))).unwrap();
    }
    let oldest = view.oldest_event().unwrap().unwrap();
    assert_eq!(oldest.seq, 0);
    assert!(oldest.queued_at.unwrap() >= before);

    client.flush().unwrap();
    assert!(
        wait_until(PATIENCE, || view.last_error().unwrap().is_some()),
        "a failed upload is recorded"
    );
    let e = view.last_error().unwrap().unwrap();
    assert_eq!(e.source, ErrorSource::Upload);
    assert!(e.message.contains("503"), "{}", e.message);
    assert!(!e.message.contains("test-key"), "never the key");
    client.close().unwrap();
    drop(client);

    // It outlives the Client; the next delivery clears it.
    let e = view.last_error().unwrap().unwrap();
    assert!(e.message.contains("503"));
    collector.set_policy(|_| Reply::ok());
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!((report.delivered, report.pending), (3, 0));
    assert_eq!(view.last_error().unwrap(), None);
    assert_eq!(view.oldest_event().unwrap(), None);
}
