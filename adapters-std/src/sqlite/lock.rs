//! One writer per database file.
//!
//! SQLite's own locks only serialise transactions; two outbox stores on one
//! file would both restore the same queue and send it twice. An exclusive OS
//! lock on `<db>.lock` (flock on Unix, LockFileEx on Windows) makes the
//! second one fail at open. The lock file is never deleted (deleting it
//! would race with a concurrent open); the OS frees the lock when the
//! process exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::error::OpenError;

/// The lock file guarding `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

/// Take the lock for `db` or fail with [`OpenError::InUse`].
pub fn acquire(db: &Path) -> Result<File, OpenError> {
    let lock = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        // An existing lock file we may not write still locks (flock needs
        // no write access): a read-only database stays usable for reading.
        .or_else(|_| OpenOptions::new().read(true).open(&lock))
        .map_err(|source| OpenError::Io {
            path: lock.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(OpenError::InUse {
            path: db.to_path_buf(),
            lock,
        }),
        Err(TryLockError::Error(source)) => Err(OpenError::Io { path: lock, source }),
    }
}
