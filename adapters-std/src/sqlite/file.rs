//! The database path, checked before anything is created.
//!
//! - It must be a regular file, or not exist yet: a device (`/dev/null`), a
//!   directory or a pipe is refused before SQLite could create a journal,
//!   a `-wal` or a lock beside it.
//! - A new database is created here, empty and readable by its owner only
//!   (queued events may be personal data); SQLite gives its `-wal` and
//!   `-shm` files the database file's permissions.

use std::fs::OpenOptions;
use std::io::{Error, ErrorKind};
use std::path::Path;

use super::error::OpenError;

/// Checks `path` and creates it (mode 0600 on Unix) when missing.
pub fn prepare(path: &Path) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(io(Error::new(ErrorKind::IsADirectory, "is a directory"))),
        Ok(_) => Err(io(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a device, pipe or socket)",
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(_) => Ok(()),
                // Created meanwhile by someone else: theirs to judge.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}
