//! Losses reported to the server: the `outbox dropped events` event.
//!
//! The core stays sans-IO and builds no payloads: the Client learns every
//! drop from the machine's `Dropped` outputs (and a salvage from the
//! store), and this book keeps them. The worker writes them into the
//! store's open transaction (the `losses` table, committed with the round
//! that told the application); the transport adds one diagnostic track
//! event to the next batch body it sends, reporting every loss row
//! written so far. That report is fixed until acknowledged: a re-send
//! carries the same event, and its `messageId` comes from what it reports
//! (first and last seq, total, since), so a restart that reports the same
//! rows again sends the same id. A 2xx for the batch that carried it
//! deletes the rows it reported in the transaction of that batch's delete;
//! losses after the report was made wait for the next one. The event does
//! not count against `max_batch_events`; it goes only when the body stays
//! within `max_batch_bytes`, else with a later batch.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outbox_core::{BatchId, DropReason};
use serde_json::{json, Map, Value};

use crate::sqlite::{LossRow, SqliteStore};

/// The diagnostic event's name.
pub const LOSS_EVENT: &str = "outbox dropped events";

/// The name a drop reason has in the report's counts.
pub(crate) fn reason_name(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Overflow => "overflow",
        DropReason::MaxAttempts => "max_attempts",
        DropReason::NotStored => "not_stored",
        DropReason::Damaged => "damaged",
        DropReason::Expired => "expired",
        _ => "other",
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The report being sent until a 2xx acknowledges it.
struct Report {
    /// It reports the rows up to this id.
    through_id: i64,
    /// The event, serialized.
    event: Vec<u8>,
    /// The batch it last went with.
    batch: Option<BatchId>,
}

/// Losses known to the Client, shared by the worker, its observer and the
/// transport (all on the worker thread; the lock is never contended).
#[derive(Default)]
pub(crate) struct LossBook {
    /// Off: nothing is kept and nothing is sent.
    on: bool,
    /// Seen, not yet written to the store.
    unsaved: Vec<LossRow>,
    /// What the `losses` table holds (with the open transaction).
    saved: Vec<LossRow>,
    /// Written in the open transaction, to write again if it fails.
    staged: Vec<LossRow>,
    /// Seen, not yet written, and already in the report (a drop found in
    /// the same call that sent the batch): written as rows of their own,
    /// which the report's `through_id` then covers.
    reported_unsaved: Vec<LossRow>,
    report: Option<Report>,
    /// A write failed this round (a full disk, say): tried again after the
    /// round's commit, not at every message.
    stage_failed: bool,
}

/// The shared book.
pub(crate) type Losses = Arc<Mutex<LossBook>>;

pub(crate) fn lock(book: &Losses) -> MutexGuard<'_, LossBook> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

fn merge(into: &mut LossRow, more: &LossRow) {
    into.count = into.count.saturating_add(more.count);
    into.first_seq = match (into.first_seq, more.first_seq) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    into.last_seq = match (into.last_seq, more.last_seq) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    into.since_ms = into.since_ms.min(more.since_ms);
}

impl LossBook {
    /// A book; `on` with the rows a store already holds.
    pub(crate) fn new(on: bool, saved: Vec<LossRow>) -> Self {
        LossBook {
            on,
            saved: if on { saved } else { Vec::new() },
            ..LossBook::default()
        }
    }

    /// `count` events dropped for `reason` (numbered `first..=last` when
    /// they had numbers).
    pub(crate) fn note(&mut self, reason: &str, count: u64, seqs: Option<(u64, u64)>) {
        if !self.on {
            return;
        }
        let row = LossRow {
            id: 0,
            reason: reason.to_string(),
            count,
            first_seq: seqs.map(|s| s.0),
            last_seq: seqs.map(|s| s.1),
            since_ms: now_ms(),
        };
        match self.unsaved.iter_mut().find(|r| r.reason == reason) {
            Some(r) => merge(r, &row),
            None => self.unsaved.push(row),
        }
    }

    /// Write what was seen into the store's open transaction. A reason's
    /// newest row is added to unless the report in flight covers it.
    pub(crate) fn stage(&mut self, store: &mut SqliteStore) {
        if self.stage_failed || (self.unsaved.is_empty() && self.reported_unsaved.is_empty()) {
            return;
        }
        for row in std::mem::take(&mut self.reported_unsaved) {
            match store.add_loss(None, &row) {
                Ok(id) => {
                    if let Some(r) = self.report.as_mut() {
                        r.through_id = r.through_id.max(id);
                    }
                    self.saved.push(LossRow { id, ..row.clone() });
                    self.staged.push(row);
                }
                Err(e) => {
                    log::warn!("outbox: cannot keep a loss for its report: {e}");
                    self.stage_failed = true;
                    self.reported_unsaved.push(row);
                }
            }
        }
        let covered = self.report.as_ref().map_or(0, |r| r.through_id);
        for row in std::mem::take(&mut self.unsaved) {
            let target = self
                .saved
                .iter()
                .rposition(|s| s.reason == row.reason && s.id > covered);
            match store.add_loss(target.map(|i| self.saved[i].id), &row) {
                Ok(id) => {
                    match target {
                        Some(i) => merge(&mut self.saved[i], &row),
                        None => self.saved.push(LossRow { id, ..row.clone() }),
                    }
                    self.staged.push(row);
                }
                Err(e) => {
                    log::warn!("outbox: cannot keep a loss for its report: {e}");
                    self.stage_failed = true;
                    self.unsaved.push(row);
                }
            }
        }
    }

    /// The round's commit went through (`ok`), or was rolled back: then
    /// the table is read again and what was staged is written again.
    pub(crate) fn committed(&mut self, ok: bool, store: &SqliteStore) {
        self.stage_failed = false;
        if ok || self.staged.is_empty() {
            self.staged.clear();
            return;
        }
        match store.losses() {
            Ok(rows) => self.saved = rows,
            Err(e) => log::warn!("outbox: cannot read the losses back: {e}"),
        }
        self.drop_report();
        for row in std::mem::take(&mut self.staged) {
            match self.unsaved.iter_mut().find(|r| r.reason == row.reason) {
                Some(r) => merge(r, &row),
                None => self.unsaved.push(row),
            }
        }
    }

    /// The store was salvaged into a fresh file: every row goes to it
    /// again, with one more `salvaged`.
    pub(crate) fn salvaged(&mut self) {
        if !self.on {
            return;
        }
        self.drop_report();
        self.staged.clear();
        for mut row in std::mem::take(&mut self.saved) {
            row.id = 0;
            match self.unsaved.iter_mut().find(|r| r.reason == row.reason) {
                Some(r) => merge(r, &row),
                None => self.unsaved.push(row),
            }
        }
        self.note("salvaged", 1, None);
    }

    /// Forget the report (its rows are made into a new one): what it took
    /// from the unwritten losses goes back to them.
    fn drop_report(&mut self) {
        self.report = None;
        for row in std::mem::take(&mut self.reported_unsaved) {
            match self.unsaved.iter_mut().find(|r| r.reason == row.reason) {
                Some(r) => merge(r, &row),
                None => self.unsaved.push(row),
            }
        }
    }

    /// The event to add to batch `batch` (of `bytes` on the wire, at most
    /// `max` allowed), if there are losses to report and it fits.
    pub(crate) fn attach(&mut self, batch: BatchId, bytes: u32, max: u32) -> Option<Vec<u8>> {
        if self.report.is_none() {
            if self.saved.is_empty() && self.unsaved.is_empty() {
                return None;
            }
            // Drops seen in this very call are reported too.
            self.reported_unsaved = std::mem::take(&mut self.unsaved);
            let mut rows = self.saved.clone();
            rows.extend(self.reported_unsaved.iter().cloned());
            self.report = Some(Report {
                through_id: self.saved.iter().map(|r| r.id).max().unwrap_or(0),
                event: report_event(&rows),
                batch: None,
            });
        }
        let report = self.report.as_mut()?;
        // The event and one comma.
        let added = report.event.len() as u64 + 1;
        let fits = u64::from(bytes) + added <= u64::from(max);
        if !fits {
            return None;
        }
        report.batch = Some(batch);
        Some(report.event.clone())
    }

    /// The rows to delete with `batch`'s delete, when it carried the report.
    pub(crate) fn carried_by(&self, batch: BatchId) -> Option<i64> {
        let r = self.report.as_ref()?;
        (r.batch == Some(batch)).then_some(r.through_id)
    }

    /// The report's rows are deleted.
    pub(crate) fn cleared(&mut self, through_id: i64) {
        self.saved.retain(|r| r.id > through_id);
        self.report = None;
        // Reported, though a failed write kept them out of the table.
        self.reported_unsaved.clear();
    }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The diagnostic track event reporting `rows`.
fn report_event(rows: &[LossRow]) -> Vec<u8> {
    let counts = crate::sqlite::counts_by_reason(rows);
    let total = rows.iter().fold(0u64, |t, r| t.saturating_add(r.count));
    let first = rows.iter().filter_map(|r| r.first_seq).min();
    let last = rows.iter().filter_map(|r| r.last_seq).max();
    let since = rows.iter().map(|r| r.since_ms).min().unwrap_or(0);
    let id_part = |s: Option<u64>| s.map_or_else(|| "none".to_string(), |s| s.to_string());
    let message_id = format!(
        "outbox-dropped-{}-{}-{total}-{since}",
        id_part(first),
        id_part(last)
    );
    let counts: Map<String, Value> = counts
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let event = json!({
        "type": "track",
        "event": LOSS_EVENT,
        "anonymousId": "outbox",
        "messageId": message_id,
        "timestamp": rfc3339(since),
        "properties": {
            "counts": counts,
            "total": total,
            "first_seq": first,
            "last_seq": last,
            "since": rfc3339(since),
        },
        "context": {"library": {"name": crate::LIBRARY_NAME, "version": crate::LIBRARY_VERSION}},
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, reason: &str, count: u64, seqs: (u64, u64)) -> LossRow {
        LossRow {
            id,
            reason: reason.into(),
            count,
            first_seq: Some(seqs.0),
            last_seq: Some(seqs.1),
            since_ms: 1000,
        }
    }

    #[test]
    fn the_report_counts_by_reason_and_keeps_its_id_until_cleared() {
        let mut book = LossBook::new(
            true,
            vec![row(1, "overflow", 3, (0, 2)), row(2, "damaged", 1, (7, 7))],
        );
        let event = book.attach(5, 100, 500_000).unwrap();
        let v: Value = serde_json::from_slice(&event).unwrap();
        assert_eq!(v["event"], LOSS_EVENT);
        assert_eq!(
            v["properties"]["counts"],
            json!({"overflow": 3, "damaged": 1})
        );
        assert_eq!(v["properties"]["first_seq"], 0);
        assert_eq!(v["properties"]["last_seq"], 7);
        assert_eq!(v["messageId"], "outbox-dropped-0-7-4-1000");
        // A loss while the report is out waits for the next one.
        book.saved.push(row(3, "overflow", 1, (9, 9)));
        assert_eq!(book.attach(6, 100, 500_000).unwrap(), event);
        assert_eq!(book.carried_by(6), Some(2));
        assert_eq!(book.carried_by(5), None);
        book.cleared(2);
        let next: Value = serde_json::from_slice(&book.attach(7, 100, 500_000).unwrap()).unwrap();
        assert_eq!(next["properties"]["counts"], json!({"overflow": 1}));
    }

    #[test]
    fn a_body_at_its_limit_goes_without_the_report_and_off_keeps_nothing() {
        let mut book = LossBook::new(true, vec![row(1, "overflow", 1, (0, 0))]);
        assert!(book.attach(1, 500_000, 500_000).is_none());
        assert_eq!(book.carried_by(1), None);
        let mut off = LossBook::new(false, vec![row(1, "overflow", 1, (0, 0))]);
        off.note("overflow", 2, Some((3, 4)));
        assert!(off.attach(1, 10, 500_000).is_none());
    }
}
