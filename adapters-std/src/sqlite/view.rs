//! Opening a database for reading without leaving traces.
//!
//! - A WAL database needs its `-shm` file even to be read. In a read-only
//!   directory with no `-wal` (a cleanly closed database: everything is in
//!   the main file) the file is opened `immutable`, which needs neither.
//! - SQLite creates `-wal` and `-shm` as soon as it opens a file whose
//!   header says WAL, even one it then finds damaged or foreign. When the
//!   open is refused, [`Sidecars`] removes the ones it created, so "left
//!   untouched" is true of the directory, not only of the file.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::error::OpenError;
use super::key::{self, DbKey};
use super::{encrypted, lock, schema};

/// The `-wal` and `-shm` files beside a database, and whether each existed
/// before this process opened it.
#[derive(Debug)]
pub struct Sidecars {
    files: [(PathBuf, bool); 2],
}

impl Sidecars {
    /// Notes which sidecars of `db` exist now.
    pub fn before_open(db: &Path) -> Self {
        let side = |suffix: &str| {
            let mut name = db.as_os_str().to_os_string();
            name.push(suffix);
            let path = PathBuf::from(name);
            let existed = path.symlink_metadata().is_ok();
            (path, existed)
        };
        Sidecars {
            files: [side("-wal"), side("-shm")],
        }
    }

    /// The `-wal` file exists and holds something.
    pub fn wal_has_content(&self) -> bool {
        std::fs::metadata(&self.files[0].0).is_ok_and(|m| m.len() > 0)
    }

    /// Removes the sidecars that did not exist before, for a store that
    /// holds `db`'s lock (call once the connection is closed). A `-wal`
    /// with content is kept whoever made it: it may hold commits.
    pub fn remove_created(&self) {
        for (i, (path, existed)) in self.files.iter().enumerate() {
            let wal_with_content = i == 0 && self.wal_has_content();
            if !existed && !wal_with_content {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// [`remove_created`](Self::remove_created) for a reader, which holds
    /// no lock: only while no store has `db` open (its lock is free, and
    /// held here meanwhile). A store that started meanwhile created these
    /// files itself and is using them: removing its `-wal` and `-shm` would
    /// hide its commits from every reader and lose them in a crash.
    pub fn remove_created_if_unused(&self, db: &Path) {
        if let Some(_lock) = lock::probe(db) {
            self.remove_created();
        }
    }
}

/// Opens `path` read-only (decrypted with `key`, if any) and identifies
/// it: the connection and the schema version of an outbox database.
pub fn open(path: &Path, key: Option<&DbKey>) -> Result<(Connection, i64), OpenError> {
    let sidecars = Sidecars::before_open(path);
    match open_with(path, false, key) {
        Ok(found) => Ok(found),
        Err(first) => {
            sidecars.remove_created_if_unused(path);
            // A read-only place: with no -wal to read, the main file is the
            // whole database and can be read as immutable.
            if matches!(first, OpenError::Sqlite { .. }) && !sidecars.wal_has_content() {
                if let Ok(found) = open_with(path, true, key) {
                    return Ok(found);
                }
            }
            Err(first)
        }
    }
}

fn open_with(
    path: &Path,
    immutable: bool,
    key: Option<&DbKey>,
) -> Result<(Connection, i64), OpenError> {
    let err = |e| OpenError::from_sqlite(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if immutable {
        Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(err)?;
    key::unlock(&conn, key).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(2))
        .map_err(err)?;
    let found = schema::inspect(&conn, path).map_err(|e| encrypted::refine(e, key.is_some()))?;
    match found {
        schema::Found::Outbox(v) if v >= schema::OLDEST_READABLE => Ok((conn, v)),
        // A store creating the file has set WAL mode but not yet committed
        // its schema: nothing is queued yet, and it is not someone else's.
        schema::Found::Empty => Err(OpenError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "an empty SQLite database, not yet an outbox store (one may be creating it)",
            ),
        }),
        _ => Err(OpenError::Foreign {
            path: path.to_path_buf(),
            application_id: 0,
        }),
    }
}

/// `path` percent-encoded for a `file:` URI.
fn uri_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for b in absolute.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(*b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_are_escaped() {
        assert_eq!(uri_path(Path::new("/a b/q?.db")), "/a%20b/q%3F.db");
    }

    #[test]
    fn a_damaged_file_gets_no_sidecars_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        {
            let mut s = super::super::SqliteStore::open(&db, Default::default()).unwrap();
            for i in 0..200 {
                outbox_core::Store::append(&mut s, i, &[b'x'; 500]).unwrap();
            }
            outbox_core::Store::sync(&mut s).unwrap();
        }
        let bytes = std::fs::read(&db).unwrap();
        std::fs::write(&db, &bytes[..3000]).unwrap();
        assert!(open(&db, None).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["q.db"]);
    }

    /// A reader that failed on a database a store was creating meanwhile
    /// (`outbox status` beside a starting `outbox send`) leaves the store's
    /// `-wal` and `-shm` alone: removing them hid its commits from every
    /// later reader, and a crash would have lost them.
    #[test]
    fn a_reader_never_removes_the_sidecars_of_a_store_in_use() {
        use outbox_core::Store;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        // What the reader saw before its open: the empty file a store
        // creates first, no sidecars.
        std::fs::write(&db, b"").unwrap();
        let seen = Sidecars::before_open(&db);
        assert!(open(&db, None).is_err(), "not yet an outbox database");
        let mut store = super::super::SqliteStore::open(&db, Default::default()).unwrap();
        store.append(0, b"{}").unwrap();
        store.sync().unwrap();
        seen.remove_created_if_unused(&db);
        let (wal, shm) = (dir.path().join("q.db-wal"), dir.path().join("q.db-shm"));
        assert!(
            wal.exists() && shm.exists(),
            "the store's sidecars are gone"
        );
        let view = super::super::SqliteStore::open_read_only(&db).unwrap();
        assert_eq!(
            view.queue_len().unwrap().0,
            1,
            "the store's commit is hidden"
        );
        drop((view, store));
        // With no store left, a reader's own empty sidecars go as before.
        std::fs::write(&wal, b"").unwrap();
        let seen = Sidecars {
            files: [(wal.clone(), false), (shm.clone(), false)],
        };
        seen.remove_created_if_unused(&db);
        assert!(!wal.exists() && !shm.exists());
    }
}
