//! Errors of the SQLite store, one enum per operation.
//!
//! rusqlite's error type never leaves this crate: callers match on what
//! happened (disk full, read-only, corrupted, not ours), not on SQLite's
//! numeric codes, and the messages name the file.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Why [`SqliteStore::open`](super::SqliteStore::open) refused a file.
/// Nothing in the file was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file exists but is not a SQLite database at all.
    #[error("{path}: not an outbox database (not a SQLite file)")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// Opened without a key, the file looks encrypted (its first bytes are
    /// random, as a SQLCipher database's are): it needs its key. Never
    /// salvaged.
    #[error("{path}: the database looks encrypted and no key was given (OUTBOX_DB_KEY for the outbox command, which needs the `encryption` feature); left untouched")]
    KeyRequired {
        /// The file.
        path: PathBuf,
    },
    /// Opened with a key that does not decrypt it (a wrong key, or bytes
    /// that are no database at all: the two look the same). Never salvaged.
    #[error("{path}: the key does not open this database (a wrong key, or not an encrypted outbox database); left untouched")]
    WrongKey {
        /// The file.
        path: PathBuf,
    },
    /// Opened with a key, the file is a plaintext (unencrypted) SQLite
    /// database. It is never encrypted in place nor read without the key
    /// that was asked for: drain it without a key first, or move it.
    #[error("{path}: a key was given but the database is not encrypted; left untouched (open it without a key, or deliver its events and remove it to start an encrypted one)")]
    NotEncrypted {
        /// The file.
        path: PathBuf,
    },
    /// A SQLite database that belongs to something else.
    #[error("{path}: a SQLite database that is not an outbox store (application_id {application_id:#x}); left untouched")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its `PRAGMA application_id`.
        application_id: i32,
    },
    /// An outbox database that SQLite reports as damaged.
    #[error("{path}: the database is corrupted ({detail}); left untouched")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's description.
        detail: String,
    },
    /// Written by a newer outbox with a schema this build does not know.
    #[error("{path}: schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Another outbox store (in this or another process) has the file open.
    #[error("{path}: already in use by another outbox client (the lock on {lock} is held)")]
    InUse {
        /// The file.
        path: PathBuf,
        /// The file whose lock is held.
        lock: PathBuf,
    },
    /// The file or its lock file could not be opened.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Any other SQLite failure while opening.
    #[error("{path}: cannot open the database: {detail}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's description.
        detail: String,
    },
}

impl OpenError {
    pub(crate) fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        match code(&e) {
            Some(ErrorCode::NotADatabase) => OpenError::NotADatabase { path },
            Some(ErrorCode::DatabaseCorrupt) => OpenError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => OpenError::Sqlite {
                path,
                detail: e.to_string(),
            },
        }
    }
}

/// Why a store operation (append, commit, read, delete, restore, listing)
/// failed. Events already committed stay stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk (or the configured size limit) is full.
    #[error("the database is full (disk full or size limit reached)")]
    Full,
    /// The file or its directory cannot be written.
    #[error("the database is read-only")]
    ReadOnly,
    /// SQLite found damage while reading or writing.
    #[error("the database is corrupted: {0}")]
    Corrupt(String),
    /// Another connection holds a lock for too long.
    #[error("the database is busy")]
    Busy,
    /// A stored record does not have the expected shape.
    #[error("a stored record is malformed: {0}")]
    Malformed(String),
    /// An earlier write of the open transaction failed, so SQLite rolled the
    /// whole transaction back; none of its writes were stored.
    #[error("an earlier write failed and the transaction was rolled back")]
    RolledBack,
    /// Any other SQLite failure.
    #[error("sqlite: {0}")]
    Other(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match code(&e) {
            Some(ErrorCode::DiskFull) => StoreError::Full,
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly,
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Busy,
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Why exporting dead letters failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the dead letters failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the export failed.
    #[error("writing the export failed: {0}")]
    Write(#[from] std::io::Error),
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}
