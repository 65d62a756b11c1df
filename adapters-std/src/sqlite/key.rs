//! The database key (cargo feature `encryption`): the SQLite store as a
//! SQLCipher database, every page (and the `-wal`) encrypted with AES-256.
//!
//! - The key is a passphrase (SQLCipher derives the page key from it with
//!   PBKDF2-HMAC-SHA512, a fresh salt per file, so each open costs a few
//!   tenths of a second), or a raw 256-bit key written `x'<64 hex digits>'`,
//!   which skips the derivation.
//! - It never shows: `Debug` prints a mask, no error or log line names it,
//!   and its text is zeroed when the key is dropped (the `PRAGMA key`
//!   statement built from it too). SQLite's own copies are SQLCipher's to
//!   clear.
//! - Nothing reads [`DB_KEY_ENV`] implicitly: [`DbKey::from_env`] (and the
//!   Client builder's `encryption_key_from_env`) are explicit.
//!
//! Without the feature the type still exists inside the crate, with no
//! value (an empty enum inside), so the store's code has one path: a key
//! that cannot exist is never applied.

#[cfg(feature = "encryption")]
use zeroize::Zeroizing;

/// The environment variable the `outbox` command (and
/// `DbKey::from_env`, with the `encryption` feature) reads the key from.
pub const DB_KEY_ENV: &str = "OUTBOX_DB_KEY";

/// The key of an encrypted store (feature `encryption`). `Debug` never
/// shows it; its text is zeroed on drop.
///
/// ```
/// use outbox_std::sqlite::DbKey;
/// let key = DbKey::new("correct horse battery staple").unwrap();
/// assert_eq!(format!("{key:?}"), "DbKey(***)");
/// assert!(DbKey::new("").is_err());
/// ```
#[cfg(feature = "encryption")]
#[derive(Clone)]
pub struct DbKey(Zeroizing<String>);

/// Without the `encryption` feature no key can be made.
#[cfg(not(feature = "encryption"))]
#[derive(Clone)]
pub(crate) struct DbKey(Never);

#[cfg(not(feature = "encryption"))]
#[derive(Clone, Copy)]
enum Never {}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An empty key (SQLCipher would read it as "no key": a plaintext file).
    #[error("the database key is empty")]
    Empty,
    /// The key holds a NUL character, which would end the `PRAGMA key`
    /// statement early (and an error message could then quote the rest).
    #[error("the database key contains a NUL character")]
    Nul,
    /// [`DB_KEY_ENV`] is not set.
    #[error("{DB_KEY_ENV} is not set")]
    NotSet,
    /// [`DB_KEY_ENV`] is set but not valid Unicode.
    #[error("{DB_KEY_ENV} is not valid Unicode")]
    NotUnicode,
}

#[cfg(feature = "encryption")]
impl DbKey {
    /// A key from a passphrase (or a raw key as `x'<64 hex digits>'`).
    /// An empty one, or one holding a NUL character, is refused.
    pub fn new(passphrase: impl Into<String>) -> Result<Self, KeyError> {
        let text = Zeroizing::new(passphrase.into());
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if text.contains('\0') {
            return Err(KeyError::Nul);
        }
        Ok(DbKey(text))
    }

    /// The key in [`DB_KEY_ENV`] (`OUTBOX_DB_KEY`): [`KeyError::NotSet`]
    /// when it is not set, [`KeyError::Empty`] when it is empty.
    pub fn from_env() -> Result<Self, KeyError> {
        match std::env::var(DB_KEY_ENV) {
            Ok(text) => DbKey::new(text),
            Err(std::env::VarError::NotPresent) => Err(KeyError::NotSet),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::NotUnicode),
        }
    }

    /// `PRAGMA key` on a connection just opened, before anything reads the
    /// file (SQLCipher checks the key at the first read). SQLCipher's own
    /// log (on stderr by default, a line per page that fails to decrypt)
    /// is turned off: what went wrong comes back as a typed error, and the
    /// `outbox` command's stderr is one line per failure.
    fn apply(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
        let mut sql = Zeroizing::new(String::with_capacity(self.0.len() + 20));
        sql.push_str("PRAGMA key = '");
        for c in self.0.chars() {
            if c == '\'' {
                sql.push('\'');
            }
            sql.push(c);
        }
        sql.push_str("';");
        // rusqlite's error for a statement that does not parse quotes the
        // statement, key included: keep SQLite's code, drop its text.
        conn.execute_batch(&sql).map_err(|e| {
            let code = match e {
                rusqlite::Error::SqliteFailure(f, _) => f,
                rusqlite::Error::SqlInputError { error, .. } => error,
                _ => rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            };
            rusqlite::Error::SqliteFailure(code, Some("the database key was refused".into()))
        })
    }
}

#[cfg(not(feature = "encryption"))]
impl DbKey {
    fn apply(&self, _conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        match self.0 {}
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(***)")
    }
}

/// Applies `key`, if any, to a connection just opened.
pub(crate) fn unlock(conn: &rusqlite::Connection, key: Option<&DbKey>) -> rusqlite::Result<()> {
    match key {
        Some(key) => key.apply(conn),
        None => Ok(()),
    }
}

#[cfg(all(test, feature = "encryption"))]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = DbKey::new("hunter2-secret").unwrap();
        let shown = format!("{key:?} {:?}", Some(key.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        let options = crate::sqlite::SqliteOptions::default().encryption_key(key);
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn empty_and_nul_keys_are_refused() {
        assert_eq!(DbKey::new("").err(), Some(KeyError::Empty));
        assert_eq!(DbKey::new("abc\0secret").err(), Some(KeyError::Nul));
    }

    #[test]
    fn a_quote_in_the_passphrase_is_part_of_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let key = DbKey::new("it's; DROP TABLE x; --").unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        unlock(&conn, Some(&key)).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(conn);
        let conn = rusqlite::Connection::open(&path).unwrap();
        unlock(&conn, Some(&DbKey::new("it").unwrap())).unwrap();
        assert!(conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r
                .get::<_, i64>(0))
            .is_err());
        drop(conn);
        let conn = rusqlite::Connection::open(&path).unwrap();
        unlock(&conn, Some(&key)).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
