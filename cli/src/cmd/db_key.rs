//! The database key of `send`, `flush`, `status` and `dead-letter`: read
//! from `OUTBOX_DB_KEY` only (never a flag: a command line shows in `ps`
//! and in shell history), and never printed.
//!
//! - Built with the `encryption` feature: set, the database is a SQLCipher
//!   file encrypted with it (created so, or opened only with that key);
//!   unset, a plaintext one. Set but empty is refused.
//! - Built without it: a set `OUTBOX_DB_KEY` is refused, so a queue meant
//!   to be encrypted is never written in plaintext by mistake.

use std::path::Path;

use outbox_std::sqlite::{OpenError, SqliteStore, DB_KEY_ENV};
use outbox_std::{Client, ClientBuilder};

use crate::error::{CliError, CliResult};

#[cfg(feature = "encryption")]
type Key = outbox_std::sqlite::DbKey;

/// Without the feature there is no key to hold.
#[cfg(not(feature = "encryption"))]
enum Key {}

/// The key in `OUTBOX_DB_KEY`, if set (with the feature), or an error when
/// it cannot be used.
fn from_env() -> CliResult<Option<Key>> {
    let set = std::env::var_os(DB_KEY_ENV).is_some();
    if !set {
        return Ok(None);
    }
    #[cfg(feature = "encryption")]
    {
        Key::from_env()
            .map(Some)
            .map_err(|e| CliError::usage(format!("cannot use the database key: {e}")))
    }
    #[cfg(not(feature = "encryption"))]
    {
        Err(CliError::usage(format!(
            "{DB_KEY_ENV} is set but this outbox was built without encryption (cargo feature \
             `encryption`); refusing to open the database unencrypted (unset {DB_KEY_ENV} for a \
             plaintext database)"
        )))
    }
}

/// Refuses an unusable `OUTBOX_DB_KEY` before a command that opens a
/// database does anything (`status` shows an empty file without opening
/// it, and that must not hide a key this build cannot use).
pub fn check() -> CliResult {
    from_env().map(|_| ())
}

/// `Client::builder()` with the key from the environment, if any.
pub fn client_builder() -> CliResult<ClientBuilder> {
    let builder = Client::builder();
    Ok(match from_env()? {
        None => builder,
        #[cfg(feature = "encryption")]
        Some(key) => builder.encryption_key(key),
        #[cfg(not(feature = "encryption"))]
        Some(key) => match key {},
    })
}

/// `db` opened read-only, with the key from the environment, if any.
pub fn open_read_only(db: &Path) -> CliResult<Result<SqliteStore, OpenError>> {
    Ok(match from_env()? {
        None => SqliteStore::open_read_only(db),
        #[cfg(feature = "encryption")]
        Some(key) => SqliteStore::open_read_only_encrypted(db, &key),
        #[cfg(not(feature = "encryption"))]
        Some(key) => match key {},
    })
}
