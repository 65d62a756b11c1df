//! The on-disk schema and its migrations.
//!
//! A file is recognised as ours by `PRAGMA application_id`; its layout
//! version is `PRAGMA user_version`. Opening checks both *before* writing
//! anything, so a foreign or damaged file is refused untouched, and an older
//! outbox file is migrated forward in one transaction.

use std::path::Path;

use rusqlite::Connection;

use super::error::OpenError;

/// `PRAGMA application_id` of an outbox database: "obx1".
pub const APPLICATION_ID: i32 = 0x6f62_7831;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 9;

/// The oldest schema version `SqliteStore::open_read_only` reads without
/// migrating (a read-only view never writes).
pub(crate) const OLDEST_READABLE: i64 = 1;

/// Migration `i` takes a file from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the queue and the dead letters. `size` sits before `payload`
    // so a restore scan reads sequence numbers and sizes only.
    "CREATE TABLE events (
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
     );",
    // 1 -> 2: `meta`, one row: how far numbering went (so a restart over an
    // empty queue never hands a sequence number out again) and the last
    // upload or storage error. Its `next_seq` starts past every number the
    // file still shows, queued or dead-lettered. `events.stored_at` (unix
    // milliseconds) tells the age of the oldest event without reading
    // payloads; rows from version 1 have none.
    "CREATE TABLE meta (
         id                INTEGER PRIMARY KEY CHECK (id = 1),
         next_seq          INTEGER NOT NULL,
         last_error_at     INTEGER,
         last_error_source TEXT,
         last_error        TEXT
     );
     INSERT INTO meta (id, next_seq)
         SELECT 1, max(coalesce((SELECT max(seq) + 1 FROM events), 0),
                       coalesce((SELECT max(seq) + 1 FROM dead_letters), 0));
     ALTER TABLE events ADD COLUMN stored_at INTEGER;",
    // 2 -> 3: the queue's count and bytes, kept by triggers in the same
    // transaction as every insert, update and delete of an event, so the
    // store's summary at start-up reads one row instead of scanning the
    // queue. Counted once here, for a file that already holds events.
    "ALTER TABLE meta ADD COLUMN pending_count INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE meta ADD COLUMN pending_bytes INTEGER NOT NULL DEFAULT 0;
     UPDATE meta SET pending_count = (SELECT count(*) FROM events),
                     pending_bytes = (SELECT coalesce(sum(size), 0) FROM events)
     WHERE id = 1;
     CREATE TRIGGER events_counted_in AFTER INSERT ON events BEGIN
         UPDATE meta SET pending_count = pending_count + 1,
                         pending_bytes = pending_bytes + NEW.size WHERE id = 1;
     END;
     CREATE TRIGGER events_counted_out AFTER DELETE ON events BEGIN
         UPDATE meta SET pending_count = pending_count - 1,
                         pending_bytes = pending_bytes - OLD.size WHERE id = 1;
     END;
     CREATE TRIGGER events_recounted AFTER UPDATE OF size ON events BEGIN
         UPDATE meta SET pending_bytes = pending_bytes - OLD.size + NEW.size WHERE id = 1;
     END;",
    // 3 -> 4: the store itself adds up what a transaction changed and
    // writes the counters once, just before it commits, in that same
    // transaction (`SqliteStore::commit`). The per-row triggers cost an
    // UPDATE of `meta` for every event: the bench's store row went from
    // 0.43 to 0.64 of the raw-insert ceiling without them.
    "DROP TRIGGER IF EXISTS events_counted_in;
     DROP TRIGGER IF EXISTS events_counted_out;
     DROP TRIGGER IF EXISTS events_recounted;",
    // 4 -> 5: the last salvage (`salvage.rs`): when a damaged file was set
    // aside and this one built from what could be read, and what it said,
    // for `outbox status` (unlike the last error, a delivery keeps it).
    "ALTER TABLE meta ADD COLUMN salvaged_at INTEGER;
     ALTER TABLE meta ADD COLUMN salvaged TEXT;",
    // 5 -> 6: losses not yet reported to the server (`losses.rs`): events
    // dropped (by reason, with their numbers and when) that the next batch
    // reports in one `outbox dropped events` event; the rows it reported
    // go in the same transaction as the delete of that batch.
    "CREATE TABLE losses (
         id        INTEGER PRIMARY KEY AUTOINCREMENT,
         reason    TEXT    NOT NULL,
         count     INTEGER NOT NULL,
         first_seq INTEGER,
         last_seq  INTEGER,
         since_ms  INTEGER NOT NULL
     );",
    // 6 -> 7: critical events (`critical.rs`): the flag in the event's row
    // (rows from before are not critical), and the numbers of overflow
    // victims discarded from the middle of the queue, until the prefix
    // delete that passes them, so that a restart drops them silently
    // rather than as damage.
    "ALTER TABLE events ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE discarded (seq INTEGER PRIMARY KEY);",
    // 7 -> 8: the newest critical row is found at start-up through a
    // partial index of the critical rows alone (plain tracks never touch
    // it); without it, every restart scanned the whole queue, and a
    // damaged page anywhere in it failed the restore.
    "CREATE INDEX events_critical ON events (seq) WHERE critical != 0;",
    // 8 -> 9: event expiry (`max_event_age`): each event's wall-clock stamp
    // (unix milliseconds, the machine's wall clock at its track; NULL: never
    // expires). Rows from before count as stamped now, at the migration:
    // never expired at once by a build that starts expiring.
    // `meta.stamp_high` keeps the newest stamp ever committed, so a restart
    // under a wall clock set back meanwhile starts from it.
    "ALTER TABLE events ADD COLUMN stamp INTEGER;
     UPDATE events SET stamp = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER);
     ALTER TABLE meta ADD COLUMN stamp_high INTEGER;",
];

/// What the file turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// An empty database: create the schema.
    Empty,
    /// An outbox database at this version.
    Outbox(i64),
}

/// Identify the file without writing to it.
pub fn inspect(conn: &Connection, path: &Path) -> Result<Found, OpenError> {
    let err = |e| OpenError::from_sqlite(path, e);
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(err)?;
    if app_id == APPLICATION_ID {
        if version > SCHEMA_VERSION {
            return Err(OpenError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        return Ok(Found::Outbox(version));
    }
    if app_id == 0 && version == 0 && objects == 0 {
        return Ok(Found::Empty);
    }
    Err(OpenError::Foreign {
        path: path.to_path_buf(),
        application_id: app_id,
    })
}

/// Bring the file from `from` to [`SCHEMA_VERSION`] in one transaction.
pub fn migrate(conn: &mut Connection, path: &Path, from: i64) -> Result<(), OpenError> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let err = |e| OpenError::from_sqlite(path, e);
    let tx = conn.transaction().map_err(err)?;
    let start = usize::try_from(from).unwrap_or(0);
    for step in &MIGRATIONS[start..] {
        tx.execute_batch(step).map_err(err)?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(err)?;
    tx.commit().map_err(err)?;
    log::info!(
        "outbox: {} migrated from schema {from} to {SCHEMA_VERSION}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_a_migration() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    }

    #[test]
    fn empty_then_outbox_then_foreign() {
        let mut conn = Connection::open_in_memory().unwrap();
        let p = Path::new(":memory:");
        assert_eq!(inspect(&conn, p).unwrap(), Found::Empty);
        migrate(&mut conn, p, 0).unwrap();
        assert_eq!(inspect(&conn, p).unwrap(), Found::Outbox(SCHEMA_VERSION));

        let other = Connection::open_in_memory().unwrap();
        other.execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(matches!(inspect(&other, p), Err(OpenError::Foreign { .. })));
    }

    #[test]
    fn newer_schema_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 99;"
        ))
        .unwrap();
        let e = inspect(&conn, Path::new("x")).unwrap_err();
        assert!(matches!(e, OpenError::NewerSchema { found: 99, .. }));
    }
}
