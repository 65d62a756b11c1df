//! The database across restarts and against bad files: a queue survives a
//! restart and numbering continues after it; a foreign, a non-SQLite and a
//! corrupted file are refused with typed errors and left byte-identical; a
//! second Client on the same file fails fast; a full database surfaces as
//! an error while committed events stay stored and are delivered; durable
//! tracks from many threads are all committed, in shared (group) commits.

mod std_support;

use std::time::Duration;

use outbox_std::sqlite::{OpenError, SqliteOptions, StoreError};
use outbox_std::{BuildError, Client, FlushMode, Notification, TrackError};
use std_support::*;

#[test]
fn a_queue_survives_restart_and_numbering_continues() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    for i in 0..10 {
        client.track_durable(event(&format!("q-{i}"))).unwrap();
    }
    assert_eq!(client.stats().unwrap().core.next_seq, 10);
    // Offline: the shutdown's final flush cannot send, the queue stays.
    client.set_network_available(false).unwrap();
    let report = client.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(report.pending, 10);
    drop(client);
    assert!(collector.requests().is_empty());

    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let notes = client.notifications();
    let stats = client.stats().unwrap();
    assert_eq!(stats.core.restored, 10);
    assert_eq!(stats.core.pending_events, 10);
    assert_eq!(
        stats.core.next_seq, 10,
        "numbering continues after the queue"
    );
    for i in 10..15 {
        client.track(event(&format!("q-{i}"))).unwrap();
    }
    client.flush_and_wait(PATIENCE).unwrap();
    let expected: Vec<String> = (0..15).map(|i| format!("q-{i}")).collect();
    assert_eq!(collector.delivered(), expected);
    let last = notes
        .try_iter()
        .filter_map(|n| match n {
            Notification::Delivered { last, .. } => Some(last),
            _ => None,
        })
        .max();
    assert_eq!(last, Some(14), "the new events got 10..=14");
}

fn build_on(path: &std::path::Path) -> Result<Client, BuildError> {
    Client::builder()
        .path(path)
        .uploader(|_: &outbox_std::BatchBody| {
            Ok(outbox_std::Response {
                status: 200,
                retry_after: None,
            })
        })
        .build()
}

#[test]
fn a_foreign_sqlite_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = build_on(&path).unwrap_err();
    assert!(
        matches!(err, BuildError::Open(OpenError::Foreign { .. })),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["app.db"], "nothing created beside it");
}

/// Issue 17 item 1 changed this: a file that is not a database is no
/// longer refused (which stopped tracking for good); the Client keeps its
/// bytes aside as `<db>.corrupt-<time>` and starts a fresh queue, saying so.
/// The store by itself still refuses it untouched.
#[test]
fn a_file_that_is_not_sqlite_is_set_aside_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = outbox_std::sqlite::SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let client = build_on(&path).unwrap();
    let salvaged = client.stats().unwrap().salvaged.expect("salvaged");
    assert_eq!(salvaged.events, 0);
    assert_eq!(std::fs::read_to_string(&salvaged.set_aside).unwrap(), text);
    let note = client.notifications().recv_timeout(PATIENCE);
    assert!(matches!(note, Some(Notification::Salvaged(_))), "{note:?}");
    client.close().unwrap();
}

/// Issue 17 item 1 changed this: a database whose pages are garbage is no
/// longer refused; the Client goes on with what can be read (salvaging it
/// into a fresh file, the damaged one kept aside byte for byte, when SQLite
/// cannot walk it).
#[test]
fn a_corrupted_database_is_set_aside_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let client = build_on(&path).unwrap();
        client.set_flush_mode(FlushMode::Manual).unwrap();
        for i in 0..300 {
            let e =
                event(&format!("c-{i}")).properties(serde_json::json!({"pad": "p".repeat(300)}));
            client.track(e).unwrap();
        }
        client.sync().unwrap();
        client.shutdown(Duration::from_millis(10)).unwrap();
    }
    // Overwrite the events table's interior pages with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 16 * 4096, "{} bytes", bytes.len());
    for (i, b) in bytes[4096..12 * 4096].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();

    // The Client opens it: salvaged at the open, or damaged rows read as
    // holes and the damaged file set aside at the first delete that needs
    // a walk through it. Tracking goes on either way.
    let client = build_on(&path).unwrap();
    client.track_durable(event("after")).unwrap();
    if let Some(salvaged) = client.stats().unwrap().salvaged {
        assert!(salvaged.set_aside.exists());
    }
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(report.pending, 0, "{report:?}");
    client.close().unwrap();
    let again = build_on(&path).unwrap();
    again.track_durable(event("again")).unwrap();
    again.close().unwrap();
    let _ = StoreError::Busy;
}

#[test]
fn a_second_client_on_the_same_file_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let first = build_on(&path).unwrap();
    let err = build_on(&path).unwrap_err();
    assert!(
        matches!(err, BuildError::Open(OpenError::InUse { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    // Another spelling of the same file is the same file.
    #[cfg(unix)]
    {
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = build_on(&link).unwrap_err();
        assert!(
            matches!(err, BuildError::Open(OpenError::InUse { .. })),
            "{err}"
        );
        let dotted = dir.path().join(".").join("q.db");
        assert!(build_on(&dotted).is_err());
    }
    drop(first);
    build_on(&path).expect("free again once the first one stopped");
}

#[test]
fn a_full_database_fails_tracks_and_keeps_what_was_stored() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .sqlite_options(SqliteOptions::default().max_size_bytes(Some(96 * 1024)))
        .build()
        .unwrap();
    let mut stored = Vec::new();
    let mut failure = None;
    for i in 0..1000 {
        let id = format!("f-{i}");
        let e = event(&id).properties(serde_json::json!({"pad": "z".repeat(2000)}));
        match client.track_durable(e) {
            Ok(_) => stored.push(id),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    assert_eq!(failure, Some(TrackError::NotStored(StoreError::Full)));
    let stats = client.stats().unwrap();
    assert!(stats.last_error.is_some_and(|e| e.contains("full")));
    assert_eq!(stats.core.pending_events as usize, stored.len());
    assert_eq!(stats.core.dropped_not_stored, 1);
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(
        collector.delivered(),
        stored,
        "every stored event delivered"
    );
    // With room again, tracking works.
    client.track_durable(event("after")).unwrap();
}

#[test]
fn durable_tracks_from_many_threads_are_all_committed() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    client.track_durable(event(&format!("t{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Committed: a read-only view from outside sees all of them.
    let view = outbox_std::sqlite::SqliteStore::open_read_only(&db).unwrap();
    assert_eq!(view.queue_len().unwrap().0, 400);
    let commits = client.stats().unwrap().commits;
    println!("400 durable tracks from 8 threads took {commits} commits");
    // Eight callers wait at once, so rounds hold several events: one commit
    // per event would mean no group commit at all.
    assert!(commits < 400, "{commits} commits for 400 events");
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered().len(), 400);
}
