//! Salvage: a database outbox cannot open or walk is copied, every row that
//! can still be read, into a fresh store, and set aside.
//!
//! - What is copied: every event row SQLite still returns (a damaged one as
//!   it reads, so the machine reports it as a hole with its number), every
//!   readable dead letter, and how far numbering went (so numbers are never
//!   handed out twice, as far as the damaged file still tells).
//! - How a damaged page is passed: the events are read in key order; where
//!   a read fails, the next key a seek can reach is found (steps doubling
//!   from the failed key, then halving back to the first that reads), so
//!   only the rows on pages SQLite cannot read are lost.
//! - The damaged file is kept as `<db>.corrupt-<unix time>` (0600, with its
//!   `-wal` and `-shm`): it is never deleted, whatever a reader might still
//!   get out of it.
//! - The swap keeps one writer: the fresh file is built beside the database
//!   and locked before it takes the database's name by `rename` (atomic),
//!   while the damaged file keeps the old lock and a second name (a hard
//!   link) until then, so another store opening the path meanwhile finds a
//!   locked file whichever one it gets.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use outbox_core::Seq;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags};

use super::error::OpenError;
use super::key::{self, DbKey};
use super::{file, lock, schema};

/// What a salvage did: from [`SqliteStore::open_or_salvage`](super::SqliteStore::open_or_salvage)
/// or a store that found its file damaged while running.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Salvaged {
    /// Where the damaged file was moved (`<db>.corrupt-<unix time>`).
    pub set_aside: PathBuf,
    /// Events copied into the fresh store.
    pub events: u64,
    /// Dead letters copied into the fresh store.
    pub dead_letters: u64,
    /// What was wrong with the file.
    pub cause: String,
    /// When (seconds since the Unix epoch).
    pub at: u64,
}

impl Salvaged {
    /// One line for people: what happened, what was kept, where the
    /// damaged file is, and that an unknown number of events may be lost.
    pub fn message(&self) -> String {
        format!(
            "the database was damaged ({}): {} events (and {} dead letters) that could still be \
             read were salvaged into a fresh database; the damaged file is kept as {}; an \
             unknown number of events that could not be read may be lost",
            self.cause,
            self.events,
            self.dead_letters,
            self.set_aside.display()
        )
    }
}

/// A fresh store built beside the database, not yet in its place.
pub(crate) struct Fresh {
    tmp: PathBuf,
    events: u64,
    dead_letters: u64,
    cause: String,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether an open failure means the file is damaged (salvaged), rather
/// than someone else's (foreign), in use, or out of reach.
pub(crate) fn salvageable(e: &OpenError) -> bool {
    matches!(
        e,
        OpenError::NotADatabase { .. } | OpenError::Corrupt { .. } | OpenError::NewerSchema { .. }
    )
}

/// Opens `path` (with its `key`, if any) for reading whatever can be
/// read: `None` when SQLite cannot open it at all.
fn open_source(path: &Path, key: Option<&DbKey>) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ok()?;
    key::unlock(&conn, key).ok()?;
    // A truncated file's header still claims its old page count, which
    // SQLite refuses as corrupt unless the schema is "writable": then it
    // reads the pages the file has. Nothing is written through it (the
    // connection is read-only).
    let _ = conn.execute_batch("PRAGMA writable_schema = ON");
    Some(conn)
}

/// The damaged file being read. SQLCipher leaves a connection unusable
/// once one page fails to decrypt (every later read of it fails too), so a
/// keyed source is reopened after each failed read; a plaintext one reads
/// on with the same connection.
struct Source<'a> {
    path: &'a Path,
    key: Option<&'a DbKey>,
    given: Option<&'a Connection>,
    own: Option<Connection>,
}

impl<'a> Source<'a> {
    fn new(path: &'a Path, key: Option<&'a DbKey>, given: Option<&'a Connection>) -> Self {
        let own = match given {
            Some(_) => None,
            None => open_source(path, key),
        };
        Source {
            path,
            key,
            given,
            own,
        }
    }

    /// The connection to read through (`None`: the file cannot be opened).
    fn conn(&self) -> Option<&Connection> {
        self.given.or(self.own.as_ref())
    }

    /// A read failed: a keyed source gets a fresh connection.
    fn failed(&mut self) {
        if self.key.is_some() {
            self.given = None;
            self.own = open_source(self.path, self.key);
        }
    }

    /// One value, `None` when it cannot be read.
    fn value<T: rusqlite::types::FromSql>(&mut self, sql: &str) -> Option<T> {
        let read = self.conn()?.query_row(sql, [], |r| r.get::<_, T>(0));
        match read {
            Ok(v) => Some(v),
            Err(_) => {
                self.failed();
                None
            }
        }
    }
}

/// What was wrong with a file whose open failed, in a few words.
pub(crate) fn cause_of(e: &OpenError) -> String {
    match e {
        OpenError::NotADatabase { .. } => "not a SQLite database".into(),
        OpenError::Corrupt { detail, .. } => detail.clone(),
        OpenError::NewerSchema {
            found, supported, ..
        } => format!("schema version {found}, newer than this build's {supported}"),
        other => other.to_string(),
    }
}

/// Builds the fresh store at `<db>.salvage` from `source` (the damaged
/// file's own connection, or `None` to open it read-only here), keeping
/// only events after `after` (a delete that was under way). With a `key`
/// the damaged file is read with it and the fresh one is encrypted with
/// it: a salvage never writes an encrypted queue out in plaintext.
pub(crate) fn build_fresh(
    path: &Path,
    source: Option<&Connection>,
    after: Option<Seq>,
    cause: &str,
    key: Option<&DbKey>,
) -> Result<Fresh, OpenError> {
    let tmp = sibling(path, ".salvage");
    for leftover in [
        tmp.clone(),
        sibling(&tmp, "-journal"),
        sibling(&tmp, "-wal"),
        sibling(&tmp, "-shm"),
    ] {
        let _ = std::fs::remove_file(leftover);
    }
    file::prepare(&tmp)?;
    let err = |e| OpenError::from_sqlite(&tmp, e);
    let mut dst = Connection::open(&tmp).map_err(err)?;
    key::unlock(&dst, key).map_err(err)?;
    schema::migrate(&mut dst, &tmp, 0)?;
    let mut src = Source::new(path, key, source);
    let tx = dst.transaction().map_err(err)?;
    let (mut events, mut dead_letters, mut floor) = (0, 0, 0i64);
    let mut stamp_high: Option<i64> = None;
    if src.conn().is_some() {
        let from = after.map_or(0, |a| {
            i64::try_from(a).unwrap_or(i64::MAX).saturating_add(1)
        });
        (events, floor) = copy_events(&mut src, &tx, from);
        dead_letters = copy_dead_letters(&mut src, &tx, &mut floor);
        let old_floor: Option<i64> = src.value("SELECT next_seq FROM meta WHERE id = 1");
        floor = floor.max(old_floor.unwrap_or(0)).max(from);
        stamp_high = src
            .value::<Option<i64>>("SELECT stamp_high FROM meta WHERE id = 1")
            .flatten();
    }
    tx.execute(
        "UPDATE meta SET next_seq = ?1,
             pending_count = (SELECT count(*) FROM events
                              WHERE typeof(size) = 'integer' AND size BETWEEN 0 AND 4294967294),
             pending_bytes = (SELECT coalesce(sum(size), 0) FROM events
                              WHERE typeof(size) = 'integer' AND size BETWEEN 0 AND 4294967294),
             stamp_high = max(coalesce((SELECT max(stamp) FROM events), ?2),
                              coalesce(?2, (SELECT max(stamp) FROM events)))
         WHERE id = 1",
        params![floor, stamp_high],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    drop(dst);
    Ok(Fresh {
        tmp,
        events,
        dead_letters,
        cause: cause.to_string(),
    })
}

/// One event row as SQLite returns it: seq, size, payload, stored_at,
/// critical, stamp.
type Row = (i64, Value, Value, Value, Value, Value);

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        row.get(0)?,
        row.get::<_, Value>(1)?,
        row.get::<_, Value>(2)?,
        row.get::<_, Value>(3)?,
        row.get::<_, Value>(4)?,
        row.get::<_, Value>(5)?,
    ))
}

/// The columns to read of each event row. A file from before schema 7/9
/// has no `critical` / `stamp`: its events are not critical, and are
/// stamped now, as the migration does (never expired at once).
fn event_columns(src: &mut Source<'_>) -> String {
    let has = |src: &mut Source<'_>, name: &str| {
        src.value::<i64>(&format!(
            "SELECT count(*) FROM pragma_table_info('events') WHERE name = '{name}'"
        )) == Some(1)
    };
    let critical = if has(src, "critical") {
        "critical"
    } else {
        "0"
    };
    let stamp = if has(src, "stamp") {
        "stamp"
    } else {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
    format!("seq, size, payload, stored_at, {critical}, {stamp}")
}

/// Copies every event row with `seq >= from` that can be read; returns how
/// many, and one past the highest number seen.
fn copy_events(src: &mut Source<'_>, dst: &Connection, mut from: i64) -> (u64, i64) {
    let mut copied = 0;
    let mut floor = from;
    let mut keep = |row: Row, floor: &mut i64| {
        *floor = (*floor).max(row.0.saturating_add(1));
        let inserted = dst.execute(
            "INSERT OR REPLACE INTO events (seq, size, payload, stored_at, critical, stamp) \
             VALUES (?1, ?2, ?3, ?4, coalesce(?5, 0), ?6)",
            params![row.0, row.1, row.2, row.3, row.4, row.5],
        );
        match inserted {
            Ok(_) => copied += 1,
            Err(e) => log::warn!("outbox: event {} cannot be salvaged: {e}", row.0),
        }
    };
    // The last number the file may hold, for the search past a damaged page.
    let newest: i64 = src
        .value::<Option<i64>>("SELECT max(seq) FROM events")
        .flatten()
        .or_else(|| src.value("SELECT next_seq - 1 FROM meta WHERE id = 1"))
        .unwrap_or(1 << 40);
    let columns = event_columns(src);
    loop {
        let mut last_read = None;
        let Some(conn) = src.conn() else { break };
        let walked = (|| -> rusqlite::Result<()> {
            let mut stmt = conn.prepare(&format!(
                "SELECT {columns} FROM events WHERE seq >= ?1 ORDER BY seq"
            ))?;
            let mut rows = stmt.query([from])?;
            while let Some(row) = rows.next()? {
                let row = read_row(row)?;
                last_read = Some(row.0);
                keep(row, &mut floor);
            }
            Ok(())
        })();
        if let Some(seq) = last_read {
            from = seq.saturating_add(1);
        }
        match walked {
            Ok(()) => break,
            Err(e) => {
                log::warn!(
                    "outbox: events from {from} on cannot be read ({e}); skipping the damage"
                );
                src.failed();
                match next_readable(src, &columns, from, newest) {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
    }
    (copied, floor)
}

/// The smallest number after `failed` from which a seek reads (a row or
/// the end of the table), up to `newest`: steps doubling until one reads,
/// then halving back to the first that does.
fn next_readable(src: &mut Source<'_>, columns: &str, failed: i64, newest: i64) -> Option<i64> {
    let mut reads = |at: i64| -> bool {
        let Some(conn) = src.conn() else {
            return false;
        };
        let read = conn
            .query_row(
                &format!("SELECT {columns} FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1"),
                [at],
                |r| read_row(r).map(|_| ()),
            )
            .map_or_else(|e| e == rusqlite::Error::QueryReturnedNoRows, |()| true);
        if !read {
            src.failed();
        }
        read
    };
    let mut bad = failed;
    let mut step = 1i64;
    let good = loop {
        let at = failed.checked_add(step)?;
        if at > newest.saturating_add(1) {
            return None;
        }
        if reads(at) {
            break at;
        }
        bad = at;
        step = step.checked_mul(2)?;
    };
    let (mut bad, mut good) = (bad, good);
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if reads(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

/// Copies the dead letters that can be read (in order, until one cannot).
fn copy_dead_letters(src: &mut Source<'_>, dst: &Connection, floor: &mut i64) -> u64 {
    let mut copied = 0;
    let Some(conn) = src.conn() else { return 0 };
    let walked = (|| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(
            "SELECT seq, status, reason, rejected_at, payload FROM dead_letters ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let values: [Value; 4] = [
                row.get::<_, Value>(1)?,
                row.get::<_, Value>(2)?,
                row.get::<_, Value>(3)?,
                row.get::<_, Value>(4)?,
            ];
            *floor = (*floor).max(seq.saturating_add(1));
            if dst
                .execute(
                    "INSERT INTO dead_letters (seq, status, reason, rejected_at, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![seq, values[0], values[1], values[2], values[3]],
                )
                .is_ok()
            {
                copied += 1;
            }
        }
        Ok(())
    })();
    if let Err(e) = walked {
        log::warn!("outbox: some dead letters cannot be read: {e}");
        src.failed();
    }
    copied
}

/// Puts the fresh store in the damaged file's place and sets the damaged
/// one aside; `old_lock` is the damaged file's lock. Returns the report
/// and the lock to keep (the fresh file's; on Unix the lock is the file).
pub(crate) fn swap_in(
    path: &Path,
    fresh: Fresh,
    old_lock: File,
) -> Result<(Salvaged, File), OpenError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| OpenError::Io { path: p, source }
    };
    #[cfg(unix)]
    let new_lock = lock::acquire(&fresh.tmp)?;
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = sibling(path, &format!(".corrupt-{at}"));
    let mut n = 1;
    while aside.symlink_metadata().is_ok() {
        n += 1;
        aside = sibling(path, &format!(".corrupt-{at}-{n}"));
    }
    // A second name first, so the path never goes missing.
    if std::fs::hard_link(path, &aside).is_err() {
        std::fs::copy(path, &aside).map_err(io(&aside))?;
    }
    for suffix in ["-wal", "-shm"] {
        let side = sibling(path, suffix);
        if side.exists() {
            let to = sibling(&aside, suffix);
            if std::fs::rename(&side, &to).is_ok() {
                owner_only(&to);
            }
        }
    }
    owner_only(&aside);
    std::fs::rename(&fresh.tmp, path).map_err(io(path))?;
    let _ = std::fs::remove_file(sibling(&fresh.tmp, "-journal"));
    #[cfg(unix)]
    let keep = {
        drop(old_lock);
        new_lock
    };
    #[cfg(not(unix))]
    let keep = old_lock;
    let report = Salvaged {
        set_aside: aside,
        events: fresh.events,
        dead_letters: fresh.dead_letters,
        cause: fresh.cause,
        at,
    };
    log::error!("outbox: {}: {}", path.display(), report.message());
    Ok((report, keep))
}

fn owner_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}
