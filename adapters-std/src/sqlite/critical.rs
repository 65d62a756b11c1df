//! Critical events in the SQLite store: the flag kept in the event's row
//! (`events.critical`, schema 7), given back with its size
//! ([`CRITICAL`](outbox_core::CRITICAL)), and the one-record discard of an
//! overflow victim behind a critical head, remembered in `discarded` until
//! the prefix delete passes it so that a restart drops it silently
//! ([`DISCARDED`](outbox_core::DISCARDED)) rather than as damage.
//!
//! A salvaged file (`salvage.rs`) keeps the rows, not their flags: its
//! events go on as non-critical.

use outbox_core::{Seq, CRITICAL, DISCARDED, HOLE};
use rusqlite::OptionalExtension;

use super::error::StoreError;
use super::{Counts, SqliteStore};

/// The schema version that has `events.critical` and `discarded`.
const CRITICAL_SCHEMA: i64 = 7;

/// The newest critical row, through the partial index `events_critical`
/// (schema 8).
pub(super) const NEWEST_CRITICAL: &str = "SELECT max(seq) FROM events WHERE critical != 0";

impl SqliteStore {
    /// Set the [`CRITICAL`] flag on the sizes of critical rows, and mark
    /// the numbers discarded as [`DISCARDED`], in `out` (the sizes of
    /// `from, from + 1, ...`).
    pub(super) fn flag_sizes(&self, from: Seq, out: &mut [u32]) -> Result<(), StoreError> {
        if self.schema < CRITICAL_SCHEMA || out.is_empty() {
            return Ok(());
        }
        let first = i64::try_from(from).unwrap_or(i64::MAX);
        let last = first.saturating_add(i64::try_from(out.len()).unwrap_or(i64::MAX) - 1);
        let slot = |seq: i64| {
            u64::try_from(seq)
                .ok()
                .and_then(|s| s.checked_sub(from))
                .and_then(|d| usize::try_from(d).ok())
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq FROM events WHERE seq BETWEEN ?1 AND ?2 AND critical != 0",
        )?;
        let mut rows = stmt.query([first, last])?;
        while let Some(row) = rows.next()? {
            if let Some(size) = slot(row.get(0)?).and_then(|i| out.get_mut(i)) {
                if *size != HOLE {
                    *size |= CRITICAL;
                }
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM discarded WHERE seq BETWEEN ?1 AND ?2")?;
        let mut rows = stmt.query([first, last])?;
        while let Some(row) = rows.next()? {
            if let Some(size) = slot(row.get(0)?).and_then(|i| out.get_mut(i)) {
                if *size == HOLE {
                    *size = DISCARDED;
                }
            }
        }
        Ok(())
    }

    /// One try of [`discard`](outbox_core::Store::discard): the row goes,
    /// its number is remembered, and numbering never comes back to it.
    pub(super) fn discard_once(&mut self, seq: Seq) -> Result<(), StoreError> {
        self.begin()?;
        let key = i64::try_from(seq).map_err(|_| StoreError::Malformed("seq overflow".into()))?;
        let max_record = self.max_record;
        let result = (|| -> Result<Counts, rusqlite::Error> {
            self.conn
                .prepare_cached("UPDATE meta SET next_seq = max(next_seq, ?1 + 1) WHERE id = 1")?
                .execute([key])?;
            self.conn
                .prepare_cached("INSERT OR IGNORE INTO discarded (seq) VALUES (?1)")?
                .execute([key])?;
            let size = self
                .conn
                .prepare_cached("DELETE FROM events WHERE seq = ?1 RETURNING size")?
                .query_row([key], |r| {
                    Ok(super::max_record_size(r.get_ref(0)?, max_record))
                })
                .optional()?
                .flatten();
            Ok(size.map_or(Counts::default(), |size| Counts {
                events: -1,
                bytes: -i64::from(size),
            }))
        })();
        match result {
            Ok(gone) => self.counted.set(self.counted.get().plus(gone)),
            Err(e) => {
                self.note_failure();
                return Err(e.into());
            }
        }
        if !self.tx_has_appends {
            self.commit()?;
        }
        Ok(())
    }

    /// Discarded numbers `<= through` are no longer needed: the prefix
    /// delete passes them (same transaction).
    pub(super) fn forget_discarded(&self, through: i64) -> Result<(), rusqlite::Error> {
        if self.schema < CRITICAL_SCHEMA {
            return Ok(());
        }
        self.conn
            .prepare_cached("DELETE FROM discarded WHERE seq <= ?1")?
            .execute([through])
            .map(|_| ())
    }

    /// The newest critical row held (`Store::newest_critical`).
    pub(super) fn newest_critical_once(&self) -> Result<Option<Seq>, StoreError> {
        if self.schema < CRITICAL_SCHEMA {
            return Ok(None);
        }
        let newest: Option<i64> = self.conn.query_row(NEWEST_CRITICAL, [], |r| r.get(0))?;
        Ok(newest.and_then(|s| u64::try_from(s).ok()))
    }

    /// Whether the row `seq` is critical (for `outbox status` and tests).
    pub fn is_critical(&self, seq: Seq) -> Result<bool, StoreError> {
        if self.schema < CRITICAL_SCHEMA {
            return Ok(false);
        }
        let key = i64::try_from(seq).unwrap_or(i64::MAX);
        let flag: Option<i64> = self
            .conn
            .query_row("SELECT critical FROM events WHERE seq = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(flag.is_some_and(|f| f != 0))
    }
}
