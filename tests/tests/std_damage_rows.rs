//! Issue 17 item 1 through the std Client: rows damaged in the database
//! (first, middle and last of the queue; a size too large, negative, not a
//! number) cost those events alone. Each is reported dropped as damaged,
//! with its number, to the receipt that tracked it; every other event is
//! delivered once, in order; tracking goes on.

mod std_support;

use outbox_std::{DropReason, FlushMode, Notification};
use std_support::*;

/// Seen failing before (the same edits through `outbox flush`, see
/// cli/tests/damage.rs): the store's size read failed for the whole
/// window, so nothing after the first damaged row was ever delivered.
#[test]
fn damaged_rows_are_dropped_with_their_receipts_and_the_rest_delivered() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let receipts: Vec<_> = (0..20)
        .map(|i| client.track(event(&format!("r-{i}"))).unwrap())
        .collect();
    client.close().unwrap();
    let seq = |i: usize| receipts[i].seq().unwrap() as i64;
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE events SET size = 9000000000 WHERE seq = ?1",
        [seq(0)],
    )
    .unwrap();
    conn.execute("UPDATE events SET size = -1 WHERE seq = ?1", [seq(7)])
        .unwrap();
    conn.execute("UPDATE events SET size = 'x' WHERE seq = ?1", [seq(8)])
        .unwrap();
    conn.execute(
        "UPDATE events SET size = 9000000000 WHERE seq = ?1",
        [seq(19)],
    )
    .unwrap();
    drop(conn);
    let damaged = [0usize, 7, 8, 19];

    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let notes = client.notifications();
    let report = client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(report.pending, 0, "{report:?}");
    let later = client.track_durable(event("after")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    client.close().unwrap();
    let notes: Vec<Notification> = notes.try_iter().collect();
    for (i, r) in receipts.iter().enumerate() {
        let about: Vec<_> = notes.iter().filter(|n| r.concerns(n)).collect();
        let dropped = about.iter().any(|n| {
            matches!(
                n,
                Notification::Dropped {
                    reason: DropReason::Damaged,
                    ..
                }
            )
        });
        let delivered = about
            .iter()
            .any(|n| matches!(n, Notification::Delivered { .. }));
        assert_eq!(dropped, damaged.contains(&i), "event {i}: {about:?}");
        assert_eq!(delivered, !damaged.contains(&i), "event {i}: {about:?}");
    }
    assert!(notes
        .iter()
        .any(|n| later.concerns(n) && matches!(n, Notification::Delivered { .. })));
    let mut expected: Vec<String> = (0..20)
        .filter(|i| !damaged.contains(i))
        .map(|i| format!("r-{i}"))
        .collect();
    expected.push("after".into());
    assert_eq!(collector.delivered(), expected);
}
