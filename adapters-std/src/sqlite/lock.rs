//! One writer per database file.
//!
//! SQLite's own locks only serialise transactions; two outbox stores on one
//! file would both restore the same queue and send it twice. An exclusive
//! OS lock makes the second one fail at open. It is keyed on the file's
//! identity, not its name, so a symlink, another spelling of the path or a
//! hard link all find the same lock:
//!
//! - on Unix the lock is `flock` on the database file itself (independent
//!   of the `fcntl` locks SQLite takes). The descriptor must outlive the
//!   SQLite connection, because closing any descriptor of a file drops the
//!   process's `fcntl` locks on it: [`SqliteStore`](super::SqliteStore)
//!   declares the connection first, so it is dropped first;
//! - elsewhere (Windows locks are mandatory and would block SQLite's own
//!   reads) it is `<db>.lock` beside the canonical path, never deleted.
//!
//! The OS frees the lock when the process exits, however it exits.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::OpenError;

/// The file whose lock guards `db`.
#[cfg(unix)]
pub fn lock_path(db: &Path) -> PathBuf {
    db.to_path_buf()
}

/// The file whose lock guards `db`.
#[cfg(not(unix))]
pub fn lock_path(db: &Path) -> PathBuf {
    let real = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut name = real.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    real.with_file_name(name)
}

/// How long [`acquire`] waits for a lock held by someone else before it
/// says the database is in use. A read-only view holds the lock for a
/// moment (see [`probe`]); a store holds it for its whole life.
const CONTENDED_WAIT: Duration = Duration::from_millis(250);

/// Take the lock for `db` (which exists) or fail with [`OpenError::InUse`].
pub fn acquire(db: &Path) -> Result<File, OpenError> {
    let lock = lock_path(db);
    let file = open(&lock).map_err(|source| OpenError::Io {
        path: lock.clone(),
        source,
    })?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < CONTENDED_WAIT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::InUse {
                    path: db.to_path_buf(),
                    lock,
                })
            }
            Err(TryLockError::Error(source)) => return Err(OpenError::Io { path: lock, source }),
        }
    }
}

/// The lock for `db` if nobody holds it now (released when the file is
/// dropped): while it is held no store can open `db`. `None` when it is
/// held (by a store, or by this process) or cannot be taken.
pub fn probe(db: &Path) -> Option<File> {
    let file = open(&lock_path(db)).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// flock needs no write access: a read-only database stays lockable.
#[cfg(unix)]
fn open(lock: &Path) -> std::io::Result<File> {
    File::open(lock)
}

#[cfg(not(unix))]
fn open(lock: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .or_else(|_| File::open(lock))
}
