//! The SQLite store: outbox's queue in one database file.
//!
//! Why it looks like this:
//! - **WAL** so readers (the `outbox status` command) never block the
//!   writer, and a commit is one append to the log. `synchronous=NORMAL`
//!   survives a process crash; `FULL` also survives a power cut.
//! - **Group commit**: [`append`](Store::append) writes into an open
//!   transaction and [`sync`](Store::sync) commits it, so the Client commits
//!   every event that arrived during the previous commit in one go.
//! - **Prefix delete** on the integer primary key. Start-up reads a
//!   **summary** (count and bytes from counters in `meta`, which the store
//!   adds its appends and deletes to in the same transaction that commits
//!   them; first and last from the key), and the machine's window of sizes
//!   is an indexed range read: ten million queued events open without a
//!   scan.
//! - A row whose stored size and payload disagree is reported as that one
//!   malformed record ([`ReadError::Malformed`]), which the driver
//!   dead-letters alone.
//! - Opening checks the file before writing anything: a foreign, damaged or
//!   newer file is refused with an [`OpenError`] and left exactly as it was.
//! - A one-row **meta** table remembers how far numbering went (raised in
//!   the same transaction as every prefix delete), so numbers are never
//!   reused across restarts, and the last upload or storage error, which
//!   [`SqliteStore::last_error`] reads back (also on a read-only view).
//! - Each event's **stored time** lets [`SqliteStore::oldest_event`] tell
//!   the queue's age from its first row alone.
//! - An OS lock on the file's identity (the database file itself on Unix,
//!   see `lock.rs`) makes a second store on the same file, through any
//!   path or hard link, fail fast with [`OpenError::InUse`]; the OS drops
//!   the lock when the process dies, even on `kill -9`.
//! - A path that is not a regular file is refused before anything is
//!   created; a new database is created owner-only (0600 on Unix).
//!
//! ```
//! use outbox_core::Store;
//! use outbox_std::sqlite::{SqliteOptions, SqliteStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = SqliteStore::open(dir.path().join("q.db"), SqliteOptions::default()).unwrap();
//! store.append(0, br#"{"n":0}"#).unwrap();
//! store.append(1, br#"{"n":1}"#).unwrap();
//! store.sync().unwrap();                     // one commit for both
//! store.delete_through(0).unwrap();
//! let summary = store.summary().unwrap();
//! assert_eq!((summary.count, summary.bytes, summary.first, summary.last), (1, 7, 1, 1));
//! let mut sizes = [0u32; 8];
//! assert_eq!(store.read_sizes(1, &mut sizes).unwrap(), 1);
//! assert_eq!(sizes[0], 7);
//! ```

mod dead_letter;
mod error;
mod file;
mod lock;
mod meta;
mod schema;
mod view;

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use outbox_core::{ReadError, RejectReason, Seq, Store, StoreSummary};
use rusqlite::{params, Connection, OpenFlags};

pub use dead_letter::DeadLetter;
pub use error::{ExportError, OpenError, StoreError};
pub use meta::{ErrorSource, LastError, OldestEvent, StoredSession};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

/// SQLite's `synchronous` setting for the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Committed events survive a process crash; the last commits may be
    /// lost on a power cut (the default).
    #[default]
    Normal,
    /// Every commit is fsynced: committed events survive a power cut.
    Full,
}

/// How to open a [`SqliteStore`].
///
/// ```
/// use outbox_std::sqlite::{SqliteOptions, Synchronous};
/// let options = SqliteOptions::default().synchronous(Synchronous::Full);
/// assert_eq!(options.synchronous_mode(), Synchronous::Full);
/// ```
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    max_size_bytes: Option<u64>,
    busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            max_size_bytes: None,
            busy_timeout: Duration::from_secs(2),
        }
    }
}

impl SqliteOptions {
    /// `synchronous` (default: [`Synchronous::Normal`]).
    #[must_use]
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// The `synchronous` setting chosen.
    pub fn synchronous_mode(&self) -> Synchronous {
        self.synchronous
    }

    /// Cap the database file at about `bytes` (rounded to whole pages);
    /// writes past it fail like a full disk. (Default: no cap.)
    #[must_use]
    pub fn max_size_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_size_bytes = bytes;
        self
    }

    /// How long to wait for a lock a reader holds. (default: 2 s)
    #[must_use]
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }
}

/// outbox's queue and dead letters in a SQLite file; implements
/// [`outbox_core::Store`].
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Held for the store's life; `None` for a read-only view.
    _lock: Option<File>,
    /// A transaction is open.
    in_tx: bool,
    /// The open transaction holds appends (only `sync` commits it then).
    tx_has_appends: bool,
    /// A write failed and SQLite rolled the transaction back: the next
    /// `sync` must report that the earlier appends are gone.
    poisoned: bool,
    /// Transactions committed (group commit makes this far below appends).
    commits: u64,
    /// What the open transaction changed in the queue's count and bytes,
    /// not yet added to the counters in `meta` (written by `commit`).
    counted: Cell<Counts>,
    /// The file's schema version (older than [`SCHEMA_VERSION`] only for a
    /// read-only view).
    schema: i64,
    /// A change to the last error, written once no transaction is open.
    note: Option<meta::Note>,
    /// The file may hold a last error (so a clear has work to do).
    error_stored: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("in_tx", &self.in_tx)
            .finish()
    }
}

impl SqliteStore {
    /// Open (or create) the store at `path` for writing, migrating an older
    /// schema. Fails without touching the file when it is not an outbox
    /// database, is damaged, or another store has it open.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let err = |e| OpenError::from_sqlite(path, e);
        file::prepare(path)?;
        // Lock before SQLite opens the file; declared first, the lock is
        // dropped after the connection (see `lock`).
        let lock = lock::acquire(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let sidecars = view::Sidecars::before_open(path);
        let mut conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(options.busy_timeout).map_err(err)?;
        // Identify the file before anything else touches it; a refused one
        // keeps no -wal/-shm that opening it created.
        let found = match schema::inspect(&conn, path) {
            Ok(found) => found,
            Err(e) => {
                drop(conn);
                sidecars.remove_created();
                return Err(e);
            }
        };
        let read_only = conn.is_readonly("main").unwrap_or(false);
        if !read_only {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                log::warn!(
                    "outbox: {} stays in journal mode {mode}, not WAL",
                    path.display()
                );
            }
            let from = match found {
                schema::Found::Empty => 0,
                schema::Found::Outbox(v) => v,
            };
            schema::migrate(&mut conn, path, from)?;
        } else if found == schema::Found::Empty {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "read-only and not yet an outbox database",
                ),
            });
        } else {
            log::warn!(
                "outbox: {} is read-only; tracking will fail",
                path.display()
            );
        }
        let sync = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))
            .map_err(err)?;
        if let Some(bytes) = options.max_size_bytes {
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(err)?;
            let pages = (bytes / page.max(512) as u64).max(2);
            let _: i64 = conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })
                .map_err(err)?;
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
            in_tx: false,
            tx_has_appends: false,
            poisoned: false,
            commits: 0,
            counted: Cell::default(),
            schema: if read_only {
                match found {
                    schema::Found::Outbox(v) => v,
                    schema::Found::Empty => 0,
                }
            } else {
                SCHEMA_VERSION
            },
            note: None,
            error_stored: true,
        })
    }

    /// Open an existing store for reading only (listing dead letters,
    /// counting the queue, checking integrity) while a Client may be
    /// running on it. Takes no lock and never writes, so a file of an older
    /// schema is read as it is, without migrating it; a refused file gets
    /// no `-wal`/`-shm` left beside it, and a cleanly closed database in a
    /// read-only directory is read as immutable.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let (conn, version) = view::open(path)?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            _lock: None,
            in_tx: false,
            tx_has_appends: false,
            poisoned: false,
            commits: 0,
            counted: Cell::default(),
            schema: version,
            note: None,
            error_stored: true,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events in the queue and their payload bytes (committed ones, plus
    /// this store's own uncommitted appends).
    pub fn queue_len(&self) -> Result<(u64, u64), StoreError> {
        let s = self.queue_summary()?;
        Ok((s.count, s.bytes))
    }

    /// The queue's count and bytes from the counters in `meta` (schema 3)
    /// plus what the open transaction changed, and its first and last
    /// sequence numbers from the primary key: a few page reads, whatever the
    /// queue's length. Counters that disagree with the key range (a file
    /// edited by hand) are recounted and repaired.
    fn queue_summary(&self) -> Result<StoreSummary, StoreError> {
        let counted = if self.schema >= 3 {
            let (count, bytes, first, last): (i64, i64, _, _) = self.conn.query_row(
                "SELECT pending_count, pending_bytes,
                        (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)
                 FROM meta WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let open = self.counted.get();
            let (count, bytes) = (
                count.saturating_add(open.events),
                bytes.saturating_add(open.bytes),
            );
            let summary = summary_from(count, bytes, first, last)?;
            let span = summary.last.checked_sub(summary.first).map(|d| d + 1);
            let consistent = match summary.count {
                0 => first.is_none(),
                n => span == Some(n) && bytes >= 0,
            };
            consistent.then_some(summary)
        } else {
            None
        };
        if let Some(summary) = counted {
            return Ok(summary);
        }
        let (count, bytes, first, last) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(size), 0), min(seq), max(seq) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        if self.schema >= 3 && self._lock.is_some() {
            log::warn!(
                "outbox: the queue counters of {} were wrong; recounted",
                self.path.display()
            );
            self.conn.execute(
                "UPDATE meta SET pending_count = ?1, pending_bytes = ?2 WHERE id = 1",
                params![count, bytes],
            )?;
            // The recount saw the open transaction's rows too.
            self.counted.set(Counts::default());
        }
        summary_from(count, bytes, first, last)
    }

    /// Transactions this store committed since it was opened.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Run SQLite's `PRAGMA integrity_check`; `Ok(())` when it says "ok".
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(lines.join("; ")))
        }
    }

    /// The payloads of `first..=last` into `buf`: the bytes written, or the
    /// first record whose stored size and payload disagree (`Err(seq)`).
    fn read_payloads(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<Result<usize, Seq>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, size, payload FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![
            i64::try_from(first).unwrap_or(i64::MAX),
            i64::try_from(last).unwrap_or(i64::MAX)
        ])?;
        let mut expected = first;
        let mut n = 0usize;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if u64::try_from(seq).ok() != Some(expected) {
                return Err(StoreError::Malformed(format!(
                    "event {expected} is missing (found {seq})"
                )));
            }
            let size: i64 = row.get(1)?;
            // A damaged row: not a blob, or not as long as its stored size
            // (which the machine batched by). That record alone is refused.
            let payload = match row.get_ref(2)?.as_bytes() {
                Ok(p) if i64::try_from(p.len()).ok() == Some(size) => p,
                _ => return Ok(Err(expected)),
            };
            let end = n + payload.len();
            if end > buf.len() {
                return Err(StoreError::Malformed(format!(
                    "events {first}..={last} exceed the {}-byte batch buffer",
                    buf.len()
                )));
            }
            buf[n..end].copy_from_slice(payload);
            n = end;
            expected += 1;
        }
        if expected != last.saturating_add(1) {
            return Err(StoreError::Malformed(format!(
                "event {expected} is missing"
            )));
        }
        Ok(Ok(n))
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_tx = true;
            self.tx_has_appends = false;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.in_tx {
            self.write_note_after_commit();
            return Ok(());
        }
        let result = self
            .write_counts()
            .and_then(|()| self.conn.execute_batch("COMMIT"));
        self.in_tx = false;
        self.tx_has_appends = false;
        if let Err(e) = result {
            self.rollback();
            return Err(e.into());
        }
        self.counted.set(Counts::default());
        self.commits += 1;
        self.write_note_after_commit();
        Ok(())
    }

    /// Insert event `seq`, or replace it when the machine appends that
    /// number again after a failed append (the newer copy wins); returns
    /// how the queue's count and bytes changed.
    fn insert_event(&self, seq: i64, payload: &[u8]) -> rusqlite::Result<Counts> {
        let size = payload.len() as i64;
        let stored_at = meta::to_millis(SystemTime::now());
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO events (seq, size, payload, stored_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![seq, size, payload, stored_at]);
        match inserted {
            Ok(_) => Ok(Counts {
                events: 1,
                bytes: size,
            }),
            // The number is taken: only this statement failed, the
            // transaction goes on.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                let old: i64 = self
                    .conn
                    .prepare_cached("SELECT size FROM events WHERE seq = ?1")?
                    .query_row([seq], |r| Ok(r.get_ref(0)?.as_i64().unwrap_or(0)))?;
                self.conn
                    .prepare_cached(
                        "UPDATE events SET size = ?2, payload = ?3, stored_at = ?4 WHERE seq = ?1",
                    )?
                    .execute(params![seq, size, payload, stored_at])?;
                Ok(Counts {
                    events: 0,
                    bytes: size - old,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Add what the open transaction changed to the counters in `meta`,
    /// inside that transaction.
    fn write_counts(&self) -> rusqlite::Result<()> {
        let open = self.counted.get();
        if open == Counts::default() || self.schema < 3 {
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "UPDATE meta SET pending_count = pending_count + ?1,
                                 pending_bytes = pending_bytes + ?2 WHERE id = 1",
            )?
            .execute(params![open.events, open.bytes])?;
        Ok(())
    }

    fn rollback(&mut self) {
        self.counted.set(Counts::default());
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                log::warn!("outbox: rollback of {} failed: {e}", self.path.display());
            }
        }
        self.in_tx = false;
        self.tx_has_appends = false;
    }

    /// After a failed statement: did SQLite roll the transaction back?
    fn note_failure(&mut self) {
        if self.in_tx && self.conn.is_autocommit() {
            self.in_tx = false;
            self.counted.set(Counts::default());
            if self.tx_has_appends {
                self.poisoned = true;
            }
            self.tx_has_appends = false;
        }
    }
}

impl Store for SqliteStore {
    type Error = StoreError;

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::RolledBack);
        }
        self.begin()?;
        let seq = i64::try_from(seq).map_err(|_| StoreError::Malformed("seq overflow".into()))?;
        let size = payload.len() as i64;
        let result = if self.schema >= 2 {
            self.insert_event(seq, payload)
        } else {
            // A read-only file of an older schema: this fails as read-only.
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO events (seq, size, payload) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![seq, size, payload]))
                .map(|_| Counts::default())
        };
        match result {
            Ok(change) => {
                self.counted.set(self.counted.get().plus(change));
                self.tx_has_appends = true;
                Ok(())
            }
            Err(e) => {
                self.note_failure();
                Err(e.into())
            }
        }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.poisoned {
            self.poisoned = false;
            self.rollback();
            return Err(StoreError::RolledBack);
        }
        self.commit()
    }

    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<StoreError>> {
        match self.read_payloads(first, last, buf)? {
            Ok(n) => Ok(n),
            Err(seq) => Err(ReadError::Malformed { seq }),
        }
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), StoreError> {
        self.begin()?;
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        // Remember how far numbering went before the records that show it go.
        let result = self.raise_floor(through).and_then(|()| {
            let mut stmt = self
                .conn
                .prepare_cached("DELETE FROM events WHERE seq <= ?1 RETURNING size")?;
            let mut rows = stmt.query([through])?;
            let mut gone = Counts::default();
            while let Some(row) = rows.next()? {
                gone = gone.plus(Counts {
                    events: -1,
                    bytes: -row.get_ref(0)?.as_i64().unwrap_or(0),
                });
            }
            Ok(gone)
        });
        match result {
            Ok(gone) => self.counted.set(self.counted.get().plus(gone)),
            Err(e) => {
                self.note_failure();
                return Err(e.into());
            }
        }
        // Without pending appends nothing else waits for a sync: make the
        // deletion (and a dead letter before it) durable now, so no later
        // send can overtake it.
        if !self.tx_has_appends {
            self.commit()?;
        }
        Ok(())
    }

    fn summary(&mut self) -> Result<StoreSummary, StoreError> {
        self.queue_summary()
    }

    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, size FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = stmt.query(params![
            i64::try_from(from).unwrap_or(i64::MAX),
            i64::try_from(out.len()).unwrap_or(i64::MAX)
        ])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let size: i64 = row.get(1)?;
            if u64::try_from(seq).ok() != Some(from + n as u64) || n >= out.len() {
                break;
            }
            out[n] = u32::try_from(size)
                .map_err(|_| StoreError::Malformed(format!("event {seq} has size {size}")))?;
            n += 1;
        }
        Ok(n)
    }

    fn seq_floor(&mut self) -> Result<Seq, StoreError> {
        self.floor()
    }

    fn reject(&mut self, seq: Seq, status: u16, reason: RejectReason) -> Result<(), StoreError> {
        self.begin()?;
        let result = dead_letter::insert(&self.conn, seq, status, reason);
        if let Err(e) = result {
            self.note_failure();
            return Err(e);
        }
        Ok(())
    }
}

/// A change to the queue's count and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    events: i64,
    bytes: i64,
}

impl Counts {
    fn plus(self, other: Counts) -> Counts {
        Counts {
            events: self.events.saturating_add(other.events),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }
}

/// A summary from SQL numbers, refusing negative ones.
fn summary_from(
    count: i64,
    bytes: i64,
    first: Option<i64>,
    last: Option<i64>,
) -> Result<StoreSummary, StoreError> {
    let seq = |v: Option<i64>| {
        u64::try_from(v.unwrap_or(0))
            .map_err(|_| StoreError::Malformed(format!("negative sequence number {v:?}")))
    };
    Ok(StoreSummary {
        count: u64::try_from(count).unwrap_or(0),
        bytes: u64::try_from(bytes).unwrap_or(0),
        first: seq(first)?,
        last: seq(last)?,
    })
}

#[cfg(test)]
mod tests;
