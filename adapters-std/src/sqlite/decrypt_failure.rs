//! A page of an encrypted store that fails to decrypt.
//!
//! SQLCipher checks each page's HMAC as it reads it. When one fails, it
//! gives up on the whole connection: every later read returns zeros and
//! the connection turns read-only. Reading around the damage, as the store
//! does in a plaintext file (the damaged rows become holes), would turn
//! every row read after it into a hole too. So a keyed store whose
//! connection went read-only while working salvages at once: the rows that
//! still decrypt go into a fresh encrypted file (read through fresh
//! connections, see `salvage.rs`), the damaged file is set aside, and the
//! operation runs again on the fresh file, where the lost rows are holes.
//! The open transaction's appends cannot be read through a fresh
//! connection: they are lost, and the next `sync` says so
//! ([`StoreError::RolledBack`](super::StoreError::RolledBack)).

use outbox_core::Seq;

use super::{SqliteStore, StoreError};

impl SqliteStore {
    /// A keyed store that was writable and whose connection SQLCipher gave
    /// up on.
    pub(super) fn decrypt_failed(&self) -> bool {
        self.options.key.is_some()
            && self.writable
            && self._lock.is_some()
            && self.conn.is_readonly("main").unwrap_or(false)
    }

    /// Runs `op`; when a page failed to decrypt during it, salvages (a
    /// delete under way removes the events through `after`) and runs `op`
    /// once more on the fresh file.
    pub(super) fn salvaging_decrypt_failure<R>(
        &mut self,
        after: Option<Seq>,
        mut op: impl FnMut(&mut Self) -> R,
    ) -> Result<R, StoreError> {
        let first = op(self);
        if !self.decrypt_failed() {
            return Ok(first);
        }
        // What the open transaction held cannot be copied.
        if self.tx_has_appends {
            self.poisoned = true;
        }
        self.rebuild(
            after,
            "a page of the encrypted database cannot be decrypted",
        )?;
        Ok(op(self))
    }
}
