//! `Client::close` commits and stops without an upload, where
//! `shutdown(Duration::ZERO)` still starts one.
//!
//! The uploader holds a channel's sender: the transport thread drops it when
//! it ends, so counting what came through the channel until it disconnects
//! counts every upload the Client ever started, with no timing involved.

mod std_support;

use std::sync::mpsc;
use std::time::Duration;

use outbox_std::sqlite::SqliteStore;
use outbox_std::{BatchBody, Client, FlushMode, Response};
use std_support::event;

/// A Client on `db` whose uploads (each answered 200) are counted by the
/// returned receiver.
fn counted(db: &std::path::Path, mode: FlushMode) -> (Client, mpsc::Receiver<usize>) {
    let (tx, rx) = mpsc::channel();
    let client = Client::builder()
        .path(db)
        .flush_mode(mode)
        .uploader(move |b: &BatchBody| {
            let _ = tx.send(b.len());
            Ok(Response {
                status: 200,
                retry_after: None,
            })
        })
        .build()
        .unwrap();
    (client, rx)
}

#[test]
fn close_commits_everything_tracked_and_uploads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (client, uploads) = counted(&db, FlushMode::Manual);
    // Not durable: close itself must commit them.
    for i in 0..25 {
        client.track(event(&format!("c-{i}"))).unwrap();
    }
    let report = client.close().unwrap();
    assert_eq!((report.pending, report.delivered), (25, 0));
    assert!(client.stats().is_err(), "every handle stopped");
    assert!(client.close().is_err(), "closing twice says stopped");
    drop(client);
    assert_eq!(uploads.iter().count(), 0, "no upload was started");
    let view = SqliteStore::open_read_only(&db).unwrap();
    assert_eq!(view.queue_len().unwrap().0, 25);

    // The events are sent by the next run.
    let (client, uploads) = counted(&db, FlushMode::Manual);
    assert_eq!(client.stats().unwrap().core.restored, 25);
    let report = client.flush_and_wait(std_support::PATIENCE).unwrap();
    assert_eq!(report.delivered, 25);
    client.close().unwrap();
    drop(client);
    assert_eq!(uploads.iter().sum::<usize>(), 25);
}

#[test]
fn shutdown_with_a_zero_timeout_still_starts_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (client, uploads) = counted(&db, FlushMode::Manual);
    for i in 0..5 {
        client.track(event(&format!("s-{i}"))).unwrap();
    }
    client.shutdown(Duration::ZERO).unwrap();
    drop(client);
    assert_eq!(
        uploads.iter().count(),
        1,
        "the difference close() makes: one batch went out"
    );
}
