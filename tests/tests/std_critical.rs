//! Critical events through the std Client (issue 18 item 2): a critical
//! track is delivered in `Manual` mode without a flush request; `DropOldest`
//! behind a critical head drops the oldest non-critical event, not the
//! critical one; the flag survives a restart (the reopened Client uploads
//! the critical event in `Manual` mode by itself).

mod std_support;

use std::time::Duration;

use outbox_std::{DropReason, FlushMode, Notification};
use std_support::*;

#[test]
fn a_critical_track_is_delivered_in_manual_mode_without_a_flush() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.track_durable(event("plain-0")).unwrap();
    client.track_durable(event("plain-1")).unwrap();
    client.track_critical(event("alarm-2")).unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 3),
        "the queue up to the critical event is uploaded: {:?}",
        collector.delivered()
    );
    assert_eq!(collector.delivered(), ["plain-0", "plain-1", "alarm-2"]);
    client.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_durable_critical_track_is_committed_and_delivered_in_manual_mode() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.track_durable(event("plain-0")).unwrap();
    client.track_critical_durable(event("alarm-1")).unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 2),
        "the queue up to the durable critical event is uploaded: {:?}",
        collector.delivered()
    );
    assert_eq!(collector.delivered(), ["plain-0", "alarm-1"]);
    client.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn drop_oldest_behind_a_critical_head_drops_the_oldest_plain_event() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .configure(|c| c.max_queue_events(3))
        .build()
        .unwrap();
    let notes = client.notifications();
    client.set_network_available(false).unwrap();
    client.track_critical(event("alarm-0")).unwrap();
    client.track_durable(event("plain-1")).unwrap();
    client.track_durable(event("plain-2")).unwrap();
    client.track_durable(event("plain-3")).unwrap();
    let dropped: Vec<(u64, u64, DropReason)> = notes
        .try_iter()
        .filter_map(|n| match n {
            Notification::Dropped {
                first,
                last,
                reason,
            } => Some((first, last, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(dropped, [(1, 1, DropReason::Overflow)]);
    client.set_network_available(true).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["alarm-0", "plain-2", "plain-3"]);
    client.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn the_critical_flag_survives_a_restart() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.set_network_available(false).unwrap();
    client.track_durable(event("plain-0")).unwrap();
    client.track_critical(event("alarm-1")).unwrap();
    client.sync().unwrap();
    let report = client.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.pending, 2);
    drop(client);
    assert!(collector.requests().is_empty());

    // Manual mode and no flush: only the stored flag can ask for the upload.
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 2),
        "the restored critical event asks for its flush: {:?}",
        collector.delivered()
    );
    assert_eq!(collector.delivered(), ["plain-0", "alarm-1"]);
    client.shutdown(Duration::from_secs(10)).unwrap();
}

/// `Event::critical(true)` through `track` and `track_durable` is a critical
/// track (uploaded in `Manual` mode with no flush asked), and the flag is
/// outbox's own: no event on the wire carries a `critical` field.
#[test]
fn an_event_marked_critical_is_tracked_as_critical_and_never_sent_as_a_field() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    client.track_durable(event("plain-0")).unwrap();
    client.track(event("alarm-1").critical(true)).unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 2),
        "track honours the flag: {:?}",
        collector.delivered()
    );
    client.track_durable(event("plain-2")).unwrap();
    client
        .track_durable(event("alarm-3").critical(true))
        .unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 4),
        "track_durable honours the flag: {:?}",
        collector.delivered()
    );
    // A flag set false is a plain track: Manual mode keeps it.
    client
        .track_durable(event("plain-4").critical(false))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        collector.delivered(),
        ["plain-0", "alarm-1", "plain-2", "alarm-3"]
    );
    for e in collector.accepted_events() {
        assert!(e.get("critical").is_none(), "on the wire: {e}");
    }
    client.shutdown(Duration::from_secs(10)).unwrap();
}
