//! Losses not yet reported to the server: the `losses` table.
//!
//! Why a table: a drop the application was told about must reach the
//! server even across a crash, so the Client writes each loss into the
//! open transaction (committed with the round that reported it), and deletes
//! the rows a report carried in the same transaction as the prefix delete
//! of the batch that carried it ([`SqliteStore::clear_losses_with_next_delete`]).
//! A crash in between keeps the rows, and the report goes again with the
//! same `messageId`.
//!
//! Rows are few: the Client adds to a reason's newest row as long as no
//! report in flight covers it, so the table holds about two rows a reason.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{SqliteStore, StoreError};

/// One row of the `losses` table: events dropped for one reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossRow {
    /// The row's id (rows a report carried are deleted up to an id).
    pub id: i64,
    /// Why (`overflow`, `max_attempts`, `not_stored`, `damaged`, `salvaged`...).
    pub reason: String,
    /// How many (for `salvaged`: how many salvages).
    pub count: u64,
    /// Oldest sequence number dropped, when the drop had numbers.
    pub first_seq: Option<u64>,
    /// Newest sequence number dropped.
    pub last_seq: Option<u64>,
    /// When the first of them was dropped (Unix milliseconds).
    pub since_ms: u64,
}

/// Events dropped by reason over `rows` (a reason may have several rows),
/// saturating: the report's `counts`, and what `outbox status` shows.
pub fn counts_by_reason(rows: &[LossRow]) -> BTreeMap<&str, u64> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        let c = counts.entry(r.reason.as_str()).or_default();
        *c = c.saturating_add(r.count);
    }
    counts
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteStore {
    /// Every loss row, oldest first (empty for a file older than schema 6).
    pub fn losses(&self) -> Result<Vec<LossRow>, StoreError> {
        if self.schema < 6 {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, reason, count, first_seq, last_seq, since_ms FROM losses ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(LossRow {
                id: r.get(0)?,
                reason: r.get(1)?,
                count: to_u64(r.get(2)?),
                first_seq: r.get::<_, Option<i64>>(3)?.map(to_u64),
                last_seq: r.get::<_, Option<i64>>(4)?.map(to_u64),
                since_ms: to_u64(r.get(5)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record a loss in the open transaction (committed by the next
    /// `sync`): added to row `merge_into` when given, else a new row.
    /// Returns the row's id.
    pub(crate) fn add_loss(
        &mut self,
        merge_into: Option<i64>,
        loss: &LossRow,
    ) -> Result<i64, StoreError> {
        if self.schema < 6 {
            return Err(StoreError::Other(
                "the file predates the losses table".into(),
            ));
        }
        self.begin()?;
        let first = loss.first_seq.map(to_i64);
        let last = loss.last_seq.map(to_i64);
        let result = match merge_into {
            Some(id) => self
                .conn
                .prepare_cached(
                    "UPDATE losses SET count = count + ?2,
                         first_seq = coalesce(min(first_seq, ?3), first_seq, ?3),
                         last_seq = coalesce(max(last_seq, ?4), last_seq, ?4)
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, to_i64(loss.count), first, last]))
                .map(|_| id),
            None => self
                .conn
                .prepare_cached(
                    "INSERT INTO losses (reason, count, first_seq, last_seq, since_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        loss.reason,
                        to_i64(loss.count),
                        first,
                        last,
                        to_i64(loss.since_ms)
                    ])
                })
                .map(|_| self.conn.last_insert_rowid()),
        };
        result.map_err(|e| {
            self.note_failure();
            e.into()
        })
    }

    /// The next prefix delete also deletes the loss rows up to `id` (a
    /// report the batch it acknowledges carried), in its transaction;
    /// `None` disarms. [`losses_cleared`](Self::losses_cleared) tells
    /// whether it did.
    pub(crate) fn clear_losses_with_next_delete(&self, through_id: Option<i64>) {
        self.losses_to_clear.set(through_id);
        self.losses_cleared.set(false);
    }

    /// Whether the last prefix delete deleted the rows armed for it (and
    /// its transaction committed, or is the open one).
    pub(crate) fn losses_cleared(&self) -> bool {
        self.losses_cleared.get()
    }

    /// Inside the prefix delete's transaction.
    pub(super) fn clear_reported_losses(&self) -> rusqlite::Result<()> {
        let Some(id) = self.losses_to_clear.take() else {
            return Ok(());
        };
        self.conn
            .prepare_cached("DELETE FROM losses WHERE id <= ?1")?
            .execute([id])?;
        self.losses_cleared.set(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use outbox_core::Store;

    use super::*;
    use crate::sqlite::SqliteOptions;

    fn row(count: u64, seqs: (u64, u64)) -> LossRow {
        LossRow {
            id: 0,
            reason: "overflow".into(),
            count,
            first_seq: Some(seqs.0),
            last_seq: Some(seqs.1),
            since_ms: 5,
        }
    }

    #[test]
    fn rows_merge_commit_and_go_with_the_next_prefix_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let mut s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        s.append(0, b"{}").unwrap();
        let id = s.add_loss(None, &row(2, (3, 4))).unwrap();
        assert_eq!(s.add_loss(Some(id), &row(1, (1, 1))).unwrap(), id);
        s.sync().unwrap();
        drop(s);
        let mut s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let rows = s.losses().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].count, rows[0].first_seq, rows[0].last_seq),
            (3, Some(1), Some(4))
        );
        // Not armed: a delete keeps them.
        s.delete_through(0).unwrap();
        assert!(!s.losses_cleared());
        assert_eq!(s.losses().unwrap().len(), 1);
        s.append(1, b"{}").unwrap();
        s.sync().unwrap();
        s.clear_losses_with_next_delete(Some(id));
        s.delete_through(1).unwrap();
        assert!(s.losses_cleared());
        drop(s);
        let s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert!(s.losses().unwrap().is_empty());
    }
}
