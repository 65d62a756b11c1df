//! Dead letters: events the server refused for good.
//!
//! A poison event must not block the queue, and must not vanish either: the
//! store copies it here (with the status, the reason and the time) before
//! the machine's prefix delete removes it from the queue, so an operator can
//! list it, fix it and send it again.

use std::io::Write;
use std::time::SystemTime;

use outbox_core::{RejectReason, Seq};
use rusqlite::{params, Connection};
use serde_json::Value;

use super::error::{ExportError, StoreError};
use super::SqliteStore;

/// One refused event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Row id, increasing in rejection order.
    pub id: i64,
    /// The event's sequence number in the queue it left.
    pub seq: Seq,
    /// The HTTP status that refused it (400 poison, 413 too large).
    pub status: u16,
    /// `"poison"`, `"too_large"` or `"malformed"` (a damaged record, never
    /// sent: status 0).
    pub reason: String,
    /// When it was rejected, RFC 3339.
    pub rejected_at: String,
    /// The stored payload, byte for byte as it was sent.
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The export form: one JSON object with the event embedded (as JSON
    /// when the payload parses, as a string otherwise).
    ///
    /// ```
    /// use outbox_std::sqlite::DeadLetter;
    /// let d = DeadLetter { id: 1, seq: 7, status: 400, reason: "poison".into(),
    ///     rejected_at: "2026-01-01T00:00:00Z".into(), payload: br#"{"a":1}"#.to_vec() };
    /// assert_eq!(d.to_json()["event"]["a"], 1);
    /// ```
    pub fn to_json(&self) -> Value {
        let event = serde_json::from_slice::<Value>(&self.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.payload).into()));
        serde_json::json!({
            "id": self.id,
            "seq": self.seq,
            "status": self.status,
            "reason": self.reason,
            "rejectedAt": self.rejected_at,
            "event": event,
        })
    }
}

pub(crate) fn reason_name(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::Poison => "poison",
        RejectReason::TooLarge => "too_large",
        RejectReason::Malformed => "malformed",
        _ => "rejected",
    }
}

/// Copy event `seq` from the queue into the dead letters.
pub(crate) fn insert(
    conn: &Connection,
    seq: Seq,
    status: u16,
    reason: RejectReason,
) -> Result<(), StoreError> {
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let copied = conn
        .prepare_cached(
            "INSERT INTO dead_letters (seq, status, reason, rejected_at, payload)
             SELECT seq, ?2, ?3, ?4, payload FROM events WHERE seq = ?1",
        )?
        .execute(params![seq, status, reason_name(reason), now]);
    let copied = match copied {
        Ok(n) => n,
        // The row cannot be read (a damaged page): its dead letter keeps
        // the number and the reason, with no bytes.
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            log::warn!("outbox: rejected event {seq} cannot be read: {e}");
            conn.prepare_cached(
                "INSERT INTO dead_letters (seq, status, reason, rejected_at, payload)
                 VALUES (?1, ?2, ?3, ?4, x'')",
            )?
            .execute(params![seq, status, reason_name(reason), now])?
        }
        Err(e) => return Err(e.into()),
    };
    if copied == 0 {
        log::warn!("outbox: rejected event {seq} was not in the store");
    }
    Ok(())
}

impl SqliteStore {
    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, seq, status, reason, rejected_at, payload FROM dead_letters ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeadLetter {
                id: r.get(0)?,
                seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                status: u16::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                reason: r.get(3)?,
                rejected_at: r.get(4)?,
                payload: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many dead letters there are.
    pub fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Write every dead letter to `out` as JSON lines ([`DeadLetter::to_json`]);
    /// returns how many were written.
    pub fn export_dead_letters(&self, out: &mut dyn Write) -> Result<usize, ExportError> {
        let letters = self.dead_letters()?;
        for d in &letters {
            serde_json::to_writer(&mut *out, &d.to_json()).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(letters.len())
    }

    /// Delete the dead letters with these row ids, inside the store's
    /// current transaction (so a requeue's appends and this delete commit
    /// together at the next `sync`); returns how many went.
    pub fn remove_dead_letters(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.begin()?;
        let mut removed = 0;
        for id in ids {
            let result = self
                .conn
                .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")
                .and_then(|mut s| s.execute([id]));
            match result {
                Ok(n) => removed += n,
                Err(e) => {
                    self.note_failure();
                    return Err(e.into());
                }
            }
        }
        Ok(removed)
    }

    /// Delete the dead letters with id `<= through` (after exporting them).
    pub fn purge_dead_letters(&mut self, through: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM dead_letters WHERE id <= ?1", [through])?;
        Ok(n as u64)
    }
}
