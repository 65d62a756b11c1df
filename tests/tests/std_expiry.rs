//! Issue 18 item 1 through the std Client: `max_event_age`. Events are
//! stamped at their track (the stamp is in their SQLite row), an event
//! older than the age by the wall clock when its batch is formed is
//! dropped as `Expired` and counted in the loss report as `expired`, never
//! sent; age survives a restart, a wall clock that jumps back expires
//! nothing early, critical events never expire, and rows of a database
//! from before count as stamped at its migration.

mod std_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use outbox_std::FlushMode;
use serde_json::json;
use std_support::*;

const AGE: Duration = Duration::from_secs(60);
const T0: u64 = 1_700_000_000_000;

/// Each test its own wall clock (tests run in parallel).
macro_rules! wall {
    ($name:ident) => {
        static $name: AtomicU64 = AtomicU64::new(T0);
        fn now() -> u64 {
            $name.load(Ordering::SeqCst)
        }
    };
}

fn expiring(
    db: &std::path::Path,
    collector: &Collector,
    wall: fn() -> u64,
) -> outbox_std::ClientBuilder {
    builder(db, collector)
        .flush_mode(FlushMode::Manual)
        .lifecycle_events(false)
        .sessions(None)
        .max_event_age(AGE)
        .wall_clock(wall)
}

#[test]
fn old_events_expire_unsent_and_are_reported_as_lost_with_reason_expired() {
    wall!(WALL);
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = expiring(&db, &collector, now).build().unwrap();
    client.track(event("old-0")).unwrap();
    client.track(event("old-1")).unwrap();
    // Stored before the clock moves (the worker's own rounds read it too).
    client.sync().unwrap();
    WALL.store(T0 + 61_000, Ordering::SeqCst);
    client.track(event("new-2")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["new-2"]);
    let stats = client.stats().unwrap().core;
    assert_eq!(stats.dropped_expired, 2);
    // The loss report rides with the next batch.
    client.track(event("new-3")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    let reports: Vec<_> = collector
        .requests()
        .into_iter()
        .flat_map(|r| r.losses)
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["properties"]["counts"], json!({"expired": 2}));
    assert!(!collector.delivered().iter().any(|id| id.starts_with("old")));
}

#[test]
fn age_survives_a_restart() {
    wall!(WALL);
    // The first life's server refuses everything; the second life's is
    // another one (a late request of the first cannot reach it).
    let offline = Collector::with_policy(|_| Reply::status(503));
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    {
        let client = expiring(&db, &offline, now)
            .drop_flush_timeout(Duration::ZERO)
            .build()
            .unwrap();
        client.track_durable(event("old-0")).unwrap();
        client.track_durable(event("old-1")).unwrap();
        client.shutdown(Duration::ZERO).unwrap();
    }
    // A day later by the wall clock, in a new process.
    WALL.store(T0 + 86_400_000, Ordering::SeqCst);
    let client = expiring(&db, &collector, now).build().unwrap();
    assert_eq!(client.stats().unwrap().core.restored, 2);
    client.track(event("new-2")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["new-2"]);
    assert_eq!(client.stats().unwrap().core.dropped_expired, 2);
}

#[test]
fn a_wall_clock_jump_back_expires_nothing_early() {
    wall!(WALL);
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = expiring(&db, &collector, now).build().unwrap();
    client.track(event("a")).unwrap();
    // Back 15 minutes (a bad NTP step), an event, then put right: 30 s
    // later by any measure.
    WALL.store(T0 - 900_000, Ordering::SeqCst);
    client.track(event("b")).unwrap();
    WALL.store(T0 + 30_000, Ordering::SeqCst);
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["a", "b"]);
    assert_eq!(client.stats().unwrap().core.dropped_expired, 0);
}

/// The clock set back while the app was stopped (a restart over an empty
/// queue, so no row is left to tell): the next life starts from the
/// newest stamp the file committed, and an event it tracks is not aged by
/// the jump. Seen failing without `meta.stamp_high` ("b" dropped as
/// expired 30 s after its track).
#[test]
fn a_wall_clock_set_back_across_a_restart_expires_nothing_early() {
    wall!(WALL);
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    {
        let client = expiring(&db, &collector, now).build().unwrap();
        client.track(event("a")).unwrap();
        client.flush_and_wait(PATIENCE).unwrap();
        client.shutdown(PATIENCE).unwrap();
    }
    assert_eq!(collector.delivered(), ["a"]);
    // Back 15 minutes while stopped; a new life tracks "b", then the clock
    // is put right: "b" is 30 s old by any measure.
    WALL.store(T0 - 900_000, Ordering::SeqCst);
    let client = expiring(&db, &collector, now).build().unwrap();
    client.track(event("b")).unwrap();
    client.sync().unwrap();
    WALL.store(T0 + 30_000, Ordering::SeqCst);
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["a", "b"]);
    assert_eq!(client.stats().unwrap().core.dropped_expired, 0);
}

#[test]
fn critical_events_never_expire() {
    wall!(WALL);
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let client = expiring(&db, &collector, now).build().unwrap();
    // Nothing can go meanwhile (a critical event asks for its flush).
    client.set_network_available(false).unwrap();
    client.track_critical(event("crit-0")).unwrap();
    client.track(event("plain-1")).unwrap();
    client.sync().unwrap();
    WALL.store(T0 + 10 * 61_000, Ordering::SeqCst);
    client.set_network_available(true).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["crit-0"]);
    assert_eq!(client.stats().unwrap().core.dropped_expired, 1);
}

#[test]
fn rows_of_a_schema_8_database_count_as_stamped_at_the_migration() {
    let offline = Collector::with_policy(|_| Reply::status(503));
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    {
        let client = builder(&db, &offline)
            .flush_mode(FlushMode::Manual)
            .lifecycle_events(false)
            .sessions(None)
            .drop_flush_timeout(Duration::ZERO)
            .build()
            .unwrap();
        client.track_durable(event("old-0")).unwrap();
        client.shutdown(Duration::ZERO).unwrap();
    }
    // Back to schema 8: no stamp column, rows stored long ago.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "ALTER TABLE events DROP COLUMN stamp;
             ALTER TABLE meta DROP COLUMN stamp_high;
             UPDATE events SET stored_at = 1000;
             PRAGMA user_version = 8;",
        )
        .unwrap();
    }
    // The system's wall clock: the migration is now, the row is young.
    let client = builder(&db, &collector)
        .flush_mode(FlushMode::Manual)
        .lifecycle_events(false)
        .sessions(None)
        .max_event_age(AGE)
        .build()
        .unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["old-0"]);
    assert_eq!(client.stats().unwrap().core.dropped_expired, 0);
}
