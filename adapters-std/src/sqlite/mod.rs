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
//! - **Storage damage costs the damaged rows alone** (the store contract's
//!   holes, `outbox_core::store`): a row that is missing inside the queue,
//!   whose size is out of range (negative, not a number, above
//!   [`SqliteOptions::max_record_bytes`]) or that sits on a page SQLite
//!   cannot read is a [`HOLE`] in [`read_sizes`](Store::read_sizes), never
//!   an error, and the machine drops it as damaged with its number; a range
//!   SQLite cannot walk is read row by row. A row found bad when its batch
//!   is read (size and payload disagree, bytes not JSON, unreadable) is
//!   [`ReadError::Malformed`], dead-lettered alone. The counters are
//!   recounted once a damaged row is found.
//! - Opening checks the file before writing anything: a foreign, damaged or
//!   newer file is refused by [`SqliteStore::open`] with an [`OpenError`]
//!   and left exactly as it was. [`SqliteStore::open_or_salvage`] (what the
//!   Client uses) instead salvages a damaged, truncated, non-database or
//!   newer file: every row it can still read goes into a fresh store at the
//!   same path and the damaged file is kept as `<db>.corrupt-<unix time>`
//!   ([`Salvaged`]); a store whose delete or summary runs into a page SQLite
//!   cannot walk does the same while running. A foreign SQLite database is
//!   always refused untouched.
//! - A one-row **meta** table remembers how far numbering went (raised in
//!   the same transaction as every prefix delete), so numbers are never
//!   reused across restarts, and the last upload or storage error, which
//!   [`SqliteStore::last_error`] reads back (also on a read-only view).
//! - Each event's **stored time** lets [`SqliteStore::oldest_event`] tell
//!   the queue's age from its first row alone.
//! - A **losses** table keeps the drops not yet reported to the server
//!   (`losses.rs`): written in the Client's round commit, deleted in the
//!   transaction of the prefix delete of the batch whose 2xx acknowledged
//!   the report, so neither a crash nor a failed upload forgets one.
//! - An OS lock on the file's identity (the database file itself on Unix,
//!   see `lock.rs`) makes a second store on the same file, through any
//!   path or hard link, fail fast with [`OpenError::InUse`]; the OS drops
//!   the lock when the process dies, even on `kill -9`.
//! - A path that is not a regular file is refused before anything is
//!   created; a new database is created owner-only (0600 on Unix).
//! - **Encryption at rest** (feature `encryption`, `SqliteOptions::encryption_key`):
//!   the file is a SQLCipher database (see `key.rs`), its `-wal` and a
//!   salvaged copy encrypted alike. A key problem is never damage: an
//!   encrypted file opened without a key ([`OpenError::KeyRequired`], told
//!   by its random-looking first bytes, in any build), with a wrong key
//!   ([`OpenError::WrongKey`]), or a plaintext file opened with a key
//!   ([`OpenError::NotEncrypted`]) is refused by every open, the salvaging
//!   one too, and left byte for byte as it was (see `encrypted.rs`).
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

mod critical;
mod dead_letter;
mod decrypt_failure;
mod encrypted;
mod error;
mod file;
mod key;
mod lock;
mod losses;
mod meta;
mod salvage;
mod schema;
mod view;

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use outbox_core::{ReadError, RejectReason, Seq, Store, StoreSummary, HOLE};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub use dead_letter::DeadLetter;
pub use error::{ExportError, OpenError, StoreError};
#[cfg(feature = "encryption")]
pub use key::DbKey;
use key::DbKey as Key;
pub use key::{KeyError, DB_KEY_ENV};
pub use losses::{counts_by_reason, LossRow};
pub use meta::{ErrorSource, LastError, OldestEvent, StoredSession};
pub use salvage::Salvaged;
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
    max_record_bytes: u32,
    /// The SQLCipher key (only the `encryption` feature can set one).
    key: Option<Key>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            max_size_bytes: None,
            busy_timeout: Duration::from_secs(2),
            max_record_bytes: HOLE - 1,
            key: None,
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

    /// The largest payload a row may claim: a stored size above it can only
    /// be damage, and the row reads as a hole (the Client passes its
    /// `max_event_bytes`). (Default: any size below the hole marker.)
    #[must_use]
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.max_record_bytes = bytes.min(HOLE - 1);
        self
    }

    /// Encrypt the database with `key` (feature `encryption`; default: no
    /// key, a plaintext file). A new file is created encrypted; an existing
    /// one must have been written with the same key
    /// ([`OpenError::WrongKey`] otherwise, and a plaintext one is
    /// [`OpenError::NotEncrypted`]), and is never salvaged over a key
    /// problem. The salvaged copy of a damaged encrypted file is encrypted
    /// with the same key.
    #[cfg(feature = "encryption")]
    #[must_use]
    pub fn encryption_key(mut self, key: DbKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Whether a key is set.
    pub fn encrypted(&self) -> bool {
        self.key.is_some()
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
    /// The connection could write when it was opened (see
    /// `decrypt_failure.rs`: SQLCipher makes it read-only when a page
    /// fails to decrypt).
    writable: bool,
    /// A transaction is open.
    in_tx: bool,
    /// The open transaction holds appends (only `sync` commits it then).
    tx_has_appends: bool,
    /// The append under way is of a critical event (`critical.rs`).
    appending_critical: bool,
    /// The stamp of the append under way (`append_stamped`).
    appending_stamp: Option<i64>,
    /// The newest stamp the open transaction appended: written to
    /// `meta.stamp_high` with the counts, so that a restart under a wall
    /// clock that went back meanwhile starts from it (nothing expires
    /// early, even across a restart over an empty queue).
    stamp_high: Cell<Option<i64>>,
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
    /// The largest size a row may claim ([`SqliteOptions::max_record_bytes`]).
    max_record: u32,
    /// The newest sequence number known to be in the file (from the
    /// summary and the appends): where a row-by-row read of a damaged
    /// table stops.
    newest: Cell<Option<Seq>>,
    /// A read found a damaged row: the counters (which counted it as it
    /// was appended) are recounted from the rows at the next commit.
    recount: Cell<bool>,
    /// How it was opened, to open the fresh file after a salvage.
    options: SqliteOptions,
    /// A salvage this store made, not yet taken by its owner.
    salvaged: Option<Salvaged>,
    /// Loss rows to delete with the next prefix delete (`losses.rs`).
    losses_to_clear: Cell<Option<i64>>,
    /// The last prefix delete deleted them.
    losses_cleared: Cell<bool>,
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
        file::prepare(path)?;
        // Lock before SQLite opens the file; declared first, the lock is
        // dropped after the connection (see `lock`).
        let lock = lock::acquire(path)?;
        Self::open_locked(path, options, lock).map_err(|(e, _)| e)
    }

    /// [`open`](Self::open), but a file that cannot be opened because it is
    /// damaged (malformed, truncated, not a database at all, or a schema
    /// from the future) is salvaged instead of refused: every row that can
    /// still be read goes into a fresh store at `path`, and the damaged
    /// file is kept as `<db>.corrupt-<unix time>` (0600, with its `-wal`
    /// and `-shm`); see [`Salvaged`]. A SQLite database that is not
    /// outbox's is still refused untouched ([`OpenError::Foreign`]), as is
    /// a file in use or out of reach.
    pub fn open_or_salvage(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<(Self, Option<Salvaged>), OpenError> {
        let path = path.as_ref();
        file::prepare(path)?;
        let lock = lock::acquire(path)?;
        match Self::open_locked(path, options.clone(), lock) {
            Ok(store) => Ok((store, None)),
            Err((e, Some(lock))) if salvage::salvageable(&e) => {
                let fresh = salvage::build_fresh(
                    path,
                    None,
                    None,
                    &salvage::cause_of(&e),
                    options.key.as_ref(),
                )?;
                let (report, lock) = salvage::swap_in(path, fresh, lock)?;
                let mut store = Self::open_locked(path, options, lock).map_err(|(e, _)| e)?;
                store.note_salvage(&report);
                Ok((store, Some(report)))
            }
            Err((e, _)) => Err(e),
        }
    }

    /// A salvage this store made while running (its file turned out
    /// damaged), once; the store already works on the fresh file.
    pub fn take_salvaged(&mut self) -> Option<Salvaged> {
        self.salvaged.take()
    }

    /// Opens `path` holding its `lock`; on failure the lock comes back.
    fn open_locked(
        path: &Path,
        options: SqliteOptions,
        lock: File,
    ) -> Result<Self, (OpenError, Option<File>)> {
        let (conn, schema) = match Self::connect(path, &options) {
            Ok(c) => c,
            Err(e) => return Err((e, Some(lock))),
        };
        let writable = !conn.is_readonly("main").unwrap_or(true);
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
            writable,
            in_tx: false,
            tx_has_appends: false,
            appending_critical: false,
            appending_stamp: None,
            stamp_high: Cell::default(),
            poisoned: false,
            commits: 0,
            counted: Cell::default(),
            schema,
            note: None,
            error_stored: true,
            max_record: options.max_record_bytes,
            newest: Cell::default(),
            recount: Cell::default(),
            options,
            losses_to_clear: Cell::default(),
            losses_cleared: Cell::default(),
            salvaged: None,
        })
    }

    /// The writer's connection to `path`, checked, migrated and set up, and
    /// the schema version it reads.
    fn connect(path: &Path, options: &SqliteOptions) -> Result<(Connection, i64), OpenError> {
        let err = |e| OpenError::from_sqlite(path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let sidecars = view::Sidecars::before_open(path);
        let mut conn = Connection::open_with_flags(path, flags).map_err(err)?;
        key::unlock(&conn, options.key.as_ref()).map_err(err)?;
        conn.busy_timeout(options.busy_timeout).map_err(err)?;
        // Identify the file before anything else touches it; a refused one
        // keeps no -wal/-shm that opening it created. A key problem looks
        // like "not a database": told apart here, so it is never salvaged.
        let found = match schema::inspect(&conn, path) {
            Ok(found) => found,
            Err(e) => {
                drop(conn);
                sidecars.remove_created();
                return Err(encrypted::refine(e, options.key.is_some()));
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
        let schema = if read_only {
            match found {
                schema::Found::Outbox(v) => v,
                schema::Found::Empty => 0,
            }
        } else {
            SCHEMA_VERSION
        };
        Ok((conn, schema))
    }

    /// Open an existing store for reading only (listing dead letters,
    /// counting the queue, checking integrity) while a Client may be
    /// running on it. Takes no lock and never writes, so a file of an older
    /// schema is read as it is, without migrating it; a refused file gets
    /// no `-wal`/`-shm` left beside it, and a cleanly closed database in a
    /// read-only directory is read as immutable.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_view(path.as_ref(), None)
    }

    /// [`open_read_only`](Self::open_read_only) for a database encrypted
    /// with `key` (feature `encryption`).
    #[cfg(feature = "encryption")]
    pub fn open_read_only_encrypted(
        path: impl AsRef<Path>,
        key: &DbKey,
    ) -> Result<Self, OpenError> {
        Self::open_view(path.as_ref(), Some(key))
    }

    fn open_view(path: &Path, key: Option<&Key>) -> Result<Self, OpenError> {
        if !path.is_file() {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let (conn, version) = view::open(path, key)?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            _lock: None,
            writable: false,
            in_tx: false,
            tx_has_appends: false,
            appending_critical: false,
            appending_stamp: None,
            stamp_high: Cell::default(),
            poisoned: false,
            commits: 0,
            counted: Cell::default(),
            schema: version,
            note: None,
            error_stored: true,
            max_record: HOLE - 1,
            newest: Cell::default(),
            recount: Cell::default(),
            options: SqliteOptions {
                key: key.cloned(),
                ..SqliteOptions::default()
            },
            losses_to_clear: Cell::default(),
            losses_cleared: Cell::default(),
            salvaged: None,
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

    /// The queue's summary: count and bytes of the intact rows from the
    /// counters in `meta` (schema 3 on) plus what the open transaction
    /// changed, first and last sequence number from the primary key (a
    /// damaged row among them reads as a hole, which the machine reports).
    ///
    /// The counters are checked against what a few page reads can tell,
    /// and recounted from the rows once when they fail that check (a file
    /// edited by hand, a crash between a commit and a recount). The cheap
    /// check: counts and bytes are not negative; no rows means a count of
    /// 0; the count is at most the key range `last - first + 1` (each
    /// intact row has its own number); the bytes are at most the count
    /// times the largest record ([`SqliteOptions::max_record_bytes`]), and
    /// 0 with a count of 0. It reads the `meta` row and the two ends of the
    /// primary key's B-tree, never the rows between them, so it costs the
    /// same for ten events or ten million; it cannot see an edit that
    /// keeps the totals possible, which the reads of the rows then find
    /// (a damaged row is a hole, and the counters are recounted at the
    /// next commit).
    fn queue_summary(&self) -> Result<StoreSummary, StoreError> {
        let (first, last): (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some(last) = last.and_then(|l| u64::try_from(l).ok()) {
            self.newest.set(Some(last));
        }
        if self.schema >= 3 {
            let (count, bytes): (i64, i64) = self.conn.query_row(
                "SELECT pending_count, pending_bytes FROM meta WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let open = self.counted.get();
            let (count, bytes) = (
                count.saturating_add(open.events),
                bytes.saturating_add(open.bytes),
            );
            if self.plausible(count, bytes, first, last) {
                return summary_from(count, bytes, first, last);
            }
        }
        match self.recount() {
            Ok((count, bytes)) => summary_from(count, bytes, first, last),
            // A table SQLite cannot walk: the counters, made possible. The
            // machine finds the damaged rows as holes.
            Err(StoreError::Corrupt(e)) => {
                log::warn!(
                    "outbox: {} is damaged ({e}); the queue's counters cannot be checked",
                    self.path.display()
                );
                let span = match (first, last) {
                    (Some(f), Some(l)) => l.saturating_sub(f).saturating_add(1),
                    _ => 0,
                };
                let count = self.counted_now().0.clamp(0, span);
                let bytes = self
                    .counted_now()
                    .1
                    .clamp(0, count.saturating_mul(i64::from(self.max_record)));
                summary_from(count, bytes, first, last)
            }
            Err(e) => Err(e),
        }
    }

    /// The counters in `meta` plus the open transaction's changes (0, 0
    /// when they cannot be read).
    fn counted_now(&self) -> (i64, i64) {
        let stored: (i64, i64) = self
            .conn
            .query_row(
                "SELECT pending_count, pending_bytes FROM meta WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or((0, 0));
        let open = self.counted.get();
        (
            stored.0.saturating_add(open.events),
            stored.1.saturating_add(open.bytes),
        )
    }

    /// The cheap check of [`queue_summary`](Self::queue_summary).
    fn plausible(&self, count: i64, bytes: i64, first: Option<i64>, last: Option<i64>) -> bool {
        if count < 0 || bytes < 0 {
            return false;
        }
        let (Some(first), Some(last)) = (first, last) else {
            return count == 0 && bytes == 0;
        };
        let span = i128::from(last) - i128::from(first) + 1;
        count > 0
            && i128::from(count) <= span
            && i128::from(bytes) <= i128::from(count) * i128::from(self.max_record)
    }

    /// Count and bytes of the intact rows, by reading them all; written to
    /// the counters when this store may write. Returns what it counted.
    fn recount(&self) -> Result<(i64, i64), StoreError> {
        let (count, bytes): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(size), 0) FROM events
             WHERE typeof(size) = 'integer' AND size BETWEEN 0 AND ?1",
            [i64::from(self.max_record)],
            |r| Ok((r.get(0)?, r.get(1)?)),
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
        self.recount.set(false);
        Ok((count, bytes))
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
    /// first record that is damaged (`Err(seq)`: missing, unreadable, its
    /// stored size and payload disagree, or its bytes are not JSON). A
    /// range SQLite cannot walk (a damaged page) is read row by row, so
    /// the batch is refused at the first row that cannot be read.
    fn read_payloads(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<Result<usize, Seq>, StoreError> {
        match self.read_payloads_scan(first, last, buf) {
            Err(StoreError::Corrupt(e)) => {
                log::warn!(
                    "outbox: {} is damaged ({e}); reading events {first}..={last} one by one",
                    self.path.display()
                );
                let mut n = 0usize;
                for seq in first..=last {
                    let one = self
                        .conn
                        .prepare_cached("SELECT size, payload FROM events WHERE seq = ?1")
                        .and_then(|mut stmt| {
                            let mut rows = stmt.query([i64::try_from(seq).unwrap_or(i64::MAX)])?;
                            match rows.next()? {
                                Some(row) => Ok(self.copy_row(
                                    row.get_ref(0)?,
                                    row.get_ref(1)?,
                                    &mut buf[n..],
                                )),
                                None => Ok(None),
                            }
                        });
                    match one {
                        Ok(Some(len)) => n += len,
                        Ok(None) => {
                            self.recount.set(true);
                            return Ok(Err(seq));
                        }
                        Err(e) => match StoreError::from(e) {
                            StoreError::Corrupt(_) => {
                                self.recount.set(true);
                                return Ok(Err(seq));
                            }
                            other => return Err(other),
                        },
                    }
                }
                Ok(Ok(n))
            }
            other => other,
        }
    }

    /// Copies one row's payload into `out` when it is intact: its size in
    /// range and equal to its payload's length, the payload JSON, and `out`
    /// large enough; `None` otherwise.
    fn copy_row(&self, size: ValueRef<'_>, payload: ValueRef<'_>, out: &mut [u8]) -> Option<usize> {
        let size = self.size_of(size)? as usize;
        let payload = match payload {
            ValueRef::Blob(p) => p,
            _ => return None,
        };
        if payload.len() != size || size > out.len() {
            return None;
        }
        // Damaged bytes never go out inside a batch the server would refuse
        // whole: `{"n":` followed by garbage is that one record's fault.
        serde_json::from_slice::<serde::de::IgnoredAny>(payload).ok()?;
        out[..size].copy_from_slice(payload);
        Some(size)
    }

    /// A stored size as the machine sees it: `None` when it is not an
    /// integer in `0..=max_record_bytes` (only damage or an edit makes one).
    fn size_of(&self, size: ValueRef<'_>) -> Option<u32> {
        max_record_size(size, self.max_record)
    }

    fn read_payloads_scan(
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
                // A number with no row: never stored, or lost.
                return Ok(Err(expected));
            }
            if n == buf.len() && self.size_of(row.get_ref(1)?) != Some(0) {
                return Err(StoreError::Malformed(format!(
                    "events {first}..={last} exceed the {}-byte batch buffer",
                    buf.len()
                )));
            }
            // A damaged row: not a blob, not as long as its stored size
            // (which the machine batched by), or not JSON. That record
            // alone is refused.
            match self.copy_row(row.get_ref(1)?, row.get_ref(2)?, &mut buf[n..]) {
                Some(len) => n += len,
                None => {
                    let claimed = self.size_of(row.get_ref(1)?).map(|s| s as usize);
                    if claimed.is_some_and(|c| c > buf.len() - n) {
                        return Err(StoreError::Malformed(format!(
                            "events {first}..={last} exceed the {}-byte batch buffer",
                            buf.len()
                        )));
                    }
                    self.recount.set(true);
                    return Ok(Err(expected));
                }
            }
            expected += 1;
        }
        if expected != last.saturating_add(1) {
            return Ok(Err(expected));
        }
        Ok(Ok(n))
    }

    /// Sizes from `from` on, one per number, [`HOLE`] for a number whose
    /// row is missing or damaged; stops at the last row.
    fn read_sizes_scan(&self, from: Seq, out: &mut [u32]) -> Result<usize, StoreError> {
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
            // A number out of order can only come from a damaged page.
            let Some(at) = u64::try_from(seq)
                .ok()
                .and_then(|s| s.checked_sub(from))
                .and_then(|d| usize::try_from(d).ok())
                .filter(|&at| at >= n && at < out.len())
            else {
                break;
            };
            out[n..at].fill(HOLE);
            out[at] = self.size_of(row.get_ref(1)?).unwrap_or_else(|| {
                self.damaged(seq, "its stored size is out of range");
                HOLE
            });
            n = at + 1;
        }
        Ok(n)
    }

    /// [`read_sizes_scan`](Self::read_sizes_scan) for a table SQLite cannot
    /// walk: each number looked up by itself, up to the newest known.
    fn read_sizes_row_by_row(&self, from: Seq, out: &mut [u32]) -> Result<usize, StoreError> {
        let newest = self.newest_known();
        let mut n = 0;
        for (slot, seq) in out.iter_mut().zip(from..=newest) {
            let key = i64::try_from(seq).unwrap_or(i64::MAX);
            let found = self
                .conn
                .prepare_cached("SELECT size FROM events WHERE seq = ?1")
                .and_then(|mut stmt| {
                    let mut rows = stmt.query([key])?;
                    Ok(match rows.next()? {
                        Some(row) => self.size_of(row.get_ref(0)?),
                        None => None,
                    })
                });
            *slot = match found {
                Ok(Some(size)) => size,
                Ok(None) => HOLE,
                Err(e) => match StoreError::from(e) {
                    StoreError::Corrupt(why) => {
                        self.damaged(key, &why);
                        HOLE
                    }
                    other => return Err(other),
                },
            };
            n += 1;
        }
        self.recount.set(true);
        Ok(n)
    }

    /// The file turned out damaged while running (SQLite cannot walk it
    /// for a delete or a summary): build a fresh file from every row after
    /// `after` that can still be read (this connection also sees the open
    /// transaction's appends), set the damaged one aside, and go on with
    /// the fresh one. The open transaction's work is in the fresh file,
    /// committed.
    fn rebuild(&mut self, after: Option<Seq>, cause: &str) -> Result<(), StoreError> {
        let failed = |e: OpenError| StoreError::Corrupt(format!("{cause}; salvage failed: {e}"));
        let Some(old_lock) = self._lock.take() else {
            return Err(StoreError::Corrupt(cause.to_string()));
        };
        // A keyed connection is unusable once a page failed to decrypt: the
        // salvage reads through fresh ones (see `decrypt_failure`).
        let source = match self.options.key {
            Some(_) => None,
            None => Some(&self.conn),
        };
        let fresh =
            match salvage::build_fresh(&self.path, source, after, cause, self.options.key.as_ref())
            {
                Ok(f) => f,
                Err(e) => {
                    self._lock = Some(old_lock);
                    return Err(failed(e));
                }
            };
        // Close the damaged file before its -wal and -shm move.
        let placeholder = Connection::open_in_memory()?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        let (report, lock) = salvage::swap_in(&self.path, fresh, old_lock).map_err(failed)?;
        let (conn, schema) = Self::connect(&self.path, &self.options).map_err(failed)?;
        self.writable = !conn.is_readonly("main").unwrap_or(true);
        self.conn = conn;
        self._lock = Some(lock);
        self.schema = schema;
        // `poisoned` stays: appends a failed statement rolled back before
        // the salvage are not in the fresh file either, and the next sync
        // must say so.
        self.in_tx = false;
        self.tx_has_appends = false;
        self.counted.set(Counts::default());
        self.recount.set(false);
        self.note_salvage(&report);
        self.salvaged = Some(report);
        Ok(())
    }

    /// The newest sequence number the file is known to hold.
    fn newest_known(&self) -> Seq {
        if let Some(n) = self.newest.get() {
            return n;
        }
        let max = self.conn.query_row("SELECT max(seq) FROM events", [], |r| {
            r.get::<_, Option<i64>>(0)
        });
        let newest = match max {
            Ok(max) => max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0),
            Err(_) => self.floor().unwrap_or(0).saturating_sub(1),
        };
        self.newest.set(Some(newest));
        newest
    }

    /// Says that row `seq` cannot be used; the machine reports it dropped.
    fn damaged(&self, seq: i64, why: &str) {
        log::warn!(
            "outbox: event {seq} in {} is damaged ({why}); it is dropped",
            self.path.display()
        );
        self.recount.set(true);
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
            if self.recount.get() {
                if let Err(e) = self.recount() {
                    log::warn!(
                        "outbox: cannot recount the queue of {}: {e}",
                        self.path.display()
                    );
                    self.recount.set(false);
                }
            }
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
        if self.recount.get() {
            // A damaged row was found: the counters counted it as it was
            // appended. Recounted on their own, after the commit, so a
            // failure (a page SQLite cannot read) costs nothing committed.
            if let Err(e) = self.recount() {
                log::warn!(
                    "outbox: cannot recount the queue of {}: {e}",
                    self.path.display()
                );
                self.recount.set(false);
            }
        }
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
                "INSERT INTO events (seq, size, payload, stored_at, critical, stamp) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                seq,
                size,
                payload,
                stored_at,
                self.appending_critical,
                self.appending_stamp
            ]);
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
                let max = self.max_record;
                let old = self
                    .conn
                    .prepare_cached("SELECT size FROM events WHERE seq = ?1")?
                    .query_row([seq], |r| Ok(max_record_size(r.get_ref(0)?, max)))?;
                self.conn
                    .prepare_cached(
                        "UPDATE events SET size = ?2, payload = ?3, stored_at = ?4, critical = ?5, \
                         stamp = ?6 WHERE seq = ?1",
                    )?
                    .execute(params![
                        seq,
                        size,
                        payload,
                        stored_at,
                        self.appending_critical,
                        self.appending_stamp
                    ])?;
                // The counters hold intact rows only: a damaged one
                // replaced is one more.
                Ok(match old {
                    Some(old) => Counts {
                        events: 0,
                        bytes: size - i64::from(old),
                    },
                    None => Counts {
                        events: 1,
                        bytes: size,
                    },
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Add what the open transaction changed to the counters in `meta`,
    /// inside that transaction.
    fn write_counts(&self) -> rusqlite::Result<()> {
        let open = self.counted.get();
        let stamp = if self.schema >= 9 {
            self.stamp_high.take()
        } else {
            None
        };
        if let Some(stamp) = stamp {
            self.conn
                .prepare_cached(
                    "UPDATE meta SET pending_count = pending_count + ?1,
                                     pending_bytes = pending_bytes + ?2,
                                     stamp_high = max(coalesce(stamp_high, ?3), ?3) WHERE id = 1",
                )?
                .execute(params![open.events, open.bytes, stamp])?;
            return Ok(());
        }
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

    /// The newest stamp ever committed (ms since the Unix epoch; `None`
    /// before the first stamped append, or before schema 9): the wall
    /// clock a restart starts from when the clock reads earlier, so that
    /// a clock set back while the app was stopped expires nothing early.
    pub fn stamp_high_water(&self) -> Option<u64> {
        if self.schema < 9 {
            return None;
        }
        self.conn
            .query_row("SELECT stamp_high FROM meta WHERE id = 1", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
    }

    fn rollback(&mut self) {
        self.counted.set(Counts::default());
        self.stamp_high.set(None);
        // Appends rolled back may have been the newest rows.
        self.newest.set(None);
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
            self.newest.set(None);
            if self.tx_has_appends {
                self.poisoned = true;
            }
            self.tx_has_appends = false;
        }
    }
}

impl SqliteStore {
    /// One try of [`first_fresh`](Store::first_fresh): the oldest row
    /// stamped at or after `after_ms`, or not stamped. The walk starts at
    /// the oldest row and stops at the first fresh one: it passes only the
    /// expired rows, which the machine then deletes.
    fn first_fresh_once(&mut self, after_ms: u64) -> Result<Option<Seq>, StoreError> {
        if self.schema < 9 {
            return Ok(None);
        }
        let after = i64::try_from(after_ms).unwrap_or(i64::MAX);
        let found: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT seq FROM events WHERE stamp IS NULL OR stamp >= ?1 ORDER BY seq LIMIT 1",
            )?
            .query_row([after], |r| r.get(0))
            .optional()?;
        Ok(Some(
            found.map_or(Seq::MAX, |s| u64::try_from(s).unwrap_or(0)),
        ))
    }

    /// One try of [`append`](Store::append).
    fn append_once(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreError> {
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
                let newest = u64::try_from(seq).unwrap_or(0);
                self.newest
                    .set(Some(self.newest.get().map_or(newest, |n| n.max(newest))));
                self.tx_has_appends = true;
                Ok(())
            }
            Err(e) => {
                self.note_failure();
                Err(e.into())
            }
        }
    }
}

impl Store for SqliteStore {
    type Error = StoreError;

    const KEEPS_CRITICAL: bool = true;

    fn append_critical(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreError> {
        self.appending_critical = true;
        let result = self.append(seq, payload);
        self.appending_critical = false;
        result
    }

    fn append_stamped(
        &mut self,
        seq: Seq,
        payload: &[u8],
        critical: bool,
        stamp_ms: u64,
    ) -> Result<(), StoreError> {
        self.appending_critical = critical;
        self.appending_stamp = i64::try_from(stamp_ms).ok();
        if let Some(stamp) = self.appending_stamp {
            let high = self.stamp_high.get().map_or(stamp, |h| h.max(stamp));
            self.stamp_high.set(Some(high));
        }
        let result = self.append(seq, payload);
        self.appending_critical = false;
        self.appending_stamp = None;
        result
    }

    fn first_fresh(&mut self, after_ms: u64) -> Result<Option<Seq>, StoreError> {
        self.salvaging_decrypt_failure(None, |s| s.first_fresh_once(after_ms))?
    }

    fn discard(&mut self, seq: Seq) -> Result<(), StoreError> {
        self.salvaging_decrypt_failure(None, |s| s.discard_once(seq))?
    }

    fn newest_critical(&mut self) -> Result<Option<Seq>, StoreError> {
        self.salvaging_decrypt_failure(None, Self::newest_critical_salvaging)?
    }

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreError> {
        self.salvaging_decrypt_failure(None, |s| s.append_damaged(seq, payload))?
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.salvaging_decrypt_failure(None, Self::sync_once)?
    }

    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<StoreError>> {
        self.salvaging_decrypt_failure(None, |s| s.read_range_once(first, last, buf))?
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), StoreError> {
        self.salvaging_decrypt_failure(Some(through), |s| s.delete_through_once(through))?
    }

    fn summary(&mut self) -> Result<StoreSummary, StoreError> {
        self.salvaging_decrypt_failure(None, Self::summary_once)?
    }

    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, StoreError> {
        let n = self.salvaging_decrypt_failure(None, |s| s.read_sizes_once(from, out))??;
        self.flag_sizes(from, &mut out[..n])?;
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

/// The [`Store`] operations, each once (see `decrypt_failure.rs` for what
/// runs them again).
impl SqliteStore {
    fn append_damaged(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreError> {
        match self.append_once(seq, payload) {
            // A damaged page where the row goes: when the transaction is
            // still whole (its appends are copied), the rows go on in a
            // fresh file and the append is made there.
            Err(StoreError::Corrupt(why)) if !self.poisoned && self._lock.is_some() => {
                self.rebuild(None, &why)?;
                self.append_once(seq, payload)
            }
            other => other,
        }
    }

    fn sync_once(&mut self) -> Result<(), StoreError> {
        if self.poisoned {
            self.poisoned = false;
            self.rollback();
            return Err(StoreError::RolledBack);
        }
        self.commit()
    }

    fn read_range_once(
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

    fn delete_through_once(&mut self, through: Seq) -> Result<(), StoreError> {
        self.begin()?;
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        let max_record = self.max_record;
        // Remember how far numbering went before the records that show it go.
        let result = self
            .raise_floor(through)
            .and_then(|()| self.forget_discarded(through))
            .and_then(|()| self.clear_reported_losses())
            .and_then(|()| {
                let mut stmt = self
                    .conn
                    .prepare_cached("DELETE FROM events WHERE seq <= ?1 RETURNING size")?;
                let mut rows = stmt.query([through])?;
                let mut gone = Counts::default();
                while let Some(row) = rows.next()? {
                    // The counters hold intact rows only.
                    if let Some(size) = max_record_size(row.get_ref(0)?, max_record) {
                        gone = gone.plus(Counts {
                            events: -1,
                            bytes: -i64::from(size),
                        });
                    }
                }
                Ok(gone)
            });
        match result {
            Ok(gone) => self.counted.set(self.counted.get().plus(gone)),
            Err(e) => {
                self.losses_cleared.set(false);
                self.note_failure();
                return match StoreError::from(e) {
                    // A damaged page in the way: the rows after `through`
                    // that can be read go on in a fresh file.
                    StoreError::Corrupt(why) => {
                        let after = u64::try_from(through).unwrap_or(0);
                        self.rebuild(Some(after), &why)
                    }
                    other => Err(other),
                };
            }
        }
        // Without pending appends nothing else waits for a sync: make the
        // deletion (and a dead letter before it) durable now, so no later
        // send can overtake it.
        if !self.tx_has_appends {
            if let Err(e) = self.commit() {
                self.losses_cleared.set(false);
                return Err(e);
            }
        }
        Ok(())
    }

    fn summary_once(&mut self) -> Result<StoreSummary, StoreError> {
        match self.queue_summary() {
            // The ends of the queue cannot be read: salvage, then the
            // fresh file's summary.
            Err(StoreError::Corrupt(why)) if self._lock.is_some() => {
                self.rebuild(None, &why)?;
                self.queue_summary()
            }
            other => other,
        }
    }

    fn newest_critical_salvaging(&mut self) -> Result<Option<Seq>, StoreError> {
        match self.newest_critical_once() {
            // A damaged page on the way (of the index, or of a file from
            // before schema 8 that scans the queue): salvage, as the
            // summary does, then ask the fresh file (whose rows lost
            // their flags, see `critical.rs`).
            Err(StoreError::Corrupt(why)) if self._lock.is_some() => {
                self.rebuild(None, &why)?;
                self.newest_critical_once()
            }
            other => other,
        }
    }

    fn read_sizes_once(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, StoreError> {
        match self.read_sizes_scan(from, out) {
            Err(StoreError::Corrupt(e)) => {
                log::warn!(
                    "outbox: {} is damaged ({e}); reading sizes from event {from} one by one",
                    self.path.display()
                );
                self.read_sizes_row_by_row(from, out)
            }
            // The walk ended before the newest row known: a damaged page
            // read as empty. The rest, one by one.
            Ok(n) if n < out.len() && from.saturating_add(n as Seq) <= self.newest_known() => {
                let more = self.read_sizes_row_by_row(from + n as Seq, &mut out[n..])?;
                Ok(n + more)
            }
            other => other,
        }
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

/// A stored size when it is an integer in `0..=max`.
fn max_record_size(size: ValueRef<'_>, max: u32) -> Option<u32> {
    match size {
        ValueRef::Integer(v) => u32::try_from(v).ok().filter(|&v| v <= max),
        _ => None,
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
