//! The `meta` row (schema 2): how far numbering went, and the last error.
//!
//! - `next_seq` is one past the highest sequence number the file ever held.
//!   Every prefix delete raises it in the same transaction as the delete, so
//!   a restart that finds the queue empty still continues numbering where
//!   the last run stopped ([`Store::seq_floor`](outbox_core::Store::seq_floor)).
//! - The last upload or storage error (time, source, text) is what
//!   `outbox status` shows; a Client records it and clears it when a batch
//!   is delivered. It is written outside the queue's transactions: when one
//!   is open the note waits for its commit, so a failed note can never roll
//!   back appended events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outbox_core::Seq;
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;

use super::error::StoreError;
use super::SqliteStore;

/// Longest error text kept (longer ones are cut at a character boundary).
const MAX_ERROR_BYTES: usize = 1024;

/// What failed, in a [`LastError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorSource {
    /// An upload: no answer, or an answer other than 2xx.
    Upload,
    /// The database: a write or commit failed.
    Store,
}

impl ErrorSource {
    /// `"upload"` or `"store"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Upload => "upload",
            ErrorSource::Store => "store",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "upload" => ErrorSource::Upload,
            _ => ErrorSource::Store,
        }
    }
}

/// The last upload or storage error recorded in the database, from
/// [`SqliteStore::last_error`]. It never holds the write key: upload errors
/// are built from the status or the transport's message, never from the
/// request's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastError {
    /// When it was recorded (millisecond precision).
    pub at: SystemTime,
    /// What failed.
    pub source: ErrorSource,
    /// What happened, e.g. `the endpoint answered HTTP 503`.
    pub message: String,
}

/// The oldest queued event, from [`SqliteStore::oldest_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OldestEvent {
    /// Its sequence number.
    pub seq: Seq,
    /// When it was stored (millisecond precision). Events stored before
    /// schema 2 have no stored time; for them this is the event's own
    /// `timestamp` field when it parses as RFC 3339, else `None`.
    pub queued_at: Option<SystemTime>,
}

/// A change to the last error, waiting until no transaction is open.
#[derive(Debug)]
pub(crate) enum Note {
    Set(LastError),
    Clear,
}

pub(crate) fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The last millisecond of the year 9999: later stored times (only a
/// damaged row has them) are clamped, so every time read formats as RFC 3339.
const MAX_MILLIS: u64 = 253_402_300_799_999;

fn from_millis(ms: i64) -> SystemTime {
    let ms = u64::try_from(ms).unwrap_or(0).min(MAX_MILLIS);
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message.to_string();
    }
    let mut end = MAX_ERROR_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// The one field of an event payload the oldest-event fallback reads.
#[derive(Deserialize)]
struct Timestamp {
    timestamp: Option<String>,
}

impl SqliteStore {
    /// The last upload or storage error recorded, or `None` when none was
    /// recorded or the last one was followed by a delivery. On a read-only
    /// view of a schema-1 file there is none.
    pub fn last_error(&self) -> Result<Option<LastError>, StoreError> {
        match &self.note {
            Some(Note::Set(e)) => return Ok(Some(e.clone())),
            Some(Note::Clear) => return Ok(None),
            None => {}
        }
        if self.schema < 2 {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT last_error_at, last_error_source, last_error FROM meta WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(match row {
            Some((at, source, Some(message))) => Some(LastError {
                at: from_millis(at.unwrap_or(0)),
                source: ErrorSource::parse(source.as_deref().unwrap_or("")),
                message,
            }),
            _ => None,
        })
    }

    /// Record `message` as the last error (texts over 1 KiB are cut). It is
    /// written at once, or, while the queue's transaction is open, right
    /// after its commit. Never pass anything secret: `outbox status` shows it.
    pub fn record_error(&mut self, source: ErrorSource, message: &str) -> Result<(), StoreError> {
        self.note = Some(Note::Set(LastError {
            at: from_millis(to_millis(SystemTime::now())),
            source,
            message: truncate(message),
        }));
        self.write_note()
    }

    /// Forget the last error (a batch was delivered). Costs nothing when
    /// there is none.
    pub fn clear_error(&mut self) -> Result<(), StoreError> {
        if !self.error_stored && !matches!(self.note, Some(Note::Set(_))) {
            self.note = None;
            return Ok(());
        }
        self.note = Some(Note::Clear);
        self.write_note()
    }

    /// Write a waiting note unless a transaction is open.
    pub(crate) fn write_note(&mut self) -> Result<(), StoreError> {
        if self.in_tx {
            return Ok(());
        }
        let Some(note) = self.note.take() else {
            return Ok(());
        };
        if self.schema < 2 {
            // A read-only file of an older schema has no place for it.
            return Err(StoreError::ReadOnly);
        }
        let write = |conn: &rusqlite::Connection| match &note {
            Note::Set(e) => conn.execute(
                "UPDATE meta SET last_error_at = ?1, last_error_source = ?2, last_error = ?3
                 WHERE id = 1",
                params![to_millis(e.at), e.source.as_str(), e.message],
            ),
            Note::Clear => conn.execute(
                "UPDATE meta SET last_error_at = NULL, last_error_source = NULL, last_error = NULL
                 WHERE id = 1 AND last_error IS NOT NULL",
                [],
            ),
        };
        let mut result = write(&self.conn);
        if result.is_err() && matches!(note, Note::Set(_)) {
            // A full disk (the usual reason to record a storage error)
            // leaves no room for the WAL to grow: move the log into the
            // database and start it over, so this one-row write reuses the
            // log's space instead of needing more. Then once more.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
            result = write(&self.conn);
        }
        match result {
            Ok(_) => {
                self.error_stored = matches!(note, Note::Set(_));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After a commit: write a waiting note, logging a failure (the commit
    /// itself succeeded; a lost note costs only what `status` shows).
    pub(crate) fn write_note_after_commit(&mut self) {
        if self.note.is_some() {
            if let Err(e) = self.write_note() {
                log::warn!(
                    "outbox: cannot record the last error in {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    /// Keep `report` in `meta` (what `outbox status` shows under
    /// "salvaged"; a delivery does not clear it, unlike the last error,
    /// and it is no reason to stop delivering); best effort, logged.
    pub(crate) fn note_salvage(&mut self, report: &super::Salvaged) {
        let message = report.message();
        let at = to_millis(SystemTime::now());
        if let Err(e) = self.conn.execute(
            "UPDATE meta SET salvaged_at = ?1, salvaged = ?2 WHERE id = 1",
            params![at, truncate(&message)],
        ) {
            log::warn!(
                "outbox: cannot record the salvage in {}: {e}",
                self.path.display()
            );
        }
    }

    /// The last salvage of this database (schema 5 on): when, and what it
    /// said (how many events were kept, where the damaged file is).
    pub fn last_salvage(&self) -> Result<Option<(SystemTime, String)>, StoreError> {
        if self.schema < 5 {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT salvaged_at, salvaged FROM meta WHERE id = 1",
                [],
                |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((at, Some(message))) => Some((from_millis(at.unwrap_or(0)), message)),
            _ => None,
        })
    }

    /// One past the highest sequence number this file ever held.
    pub(crate) fn floor(&self) -> Result<Seq, StoreError> {
        let sql = if self.schema >= 2 {
            "SELECT max(coalesce((SELECT next_seq FROM meta WHERE id = 1), 0),
                        coalesce((SELECT max(seq) + 1 FROM events), 0))"
        } else {
            "SELECT coalesce((SELECT max(seq) + 1 FROM events), 0)"
        };
        let next: i64 = self.conn.query_row(sql, [], |r| r.get(0))?;
        u64::try_from(next)
            .map_err(|_| StoreError::Malformed(format!("next sequence number {next}")))
    }

    /// Raise the floor past every record `<= through`, before deleting them
    /// (in the same transaction).
    pub(crate) fn raise_floor(&self, through: i64) -> Result<(), rusqlite::Error> {
        if self.schema < 2 {
            // A read-only file of an older schema: the delete fails anyway.
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "UPDATE meta SET next_seq = max(next_seq,
                     coalesce((SELECT max(seq) + 1 FROM events WHERE seq <= ?1), 0))
                 WHERE id = 1",
            )?
            .execute([through])
            .map(|_| ())
    }

    /// The oldest queued event and when it was stored; reads that one row
    /// only (its payload too, for an event stored before schema 2).
    pub fn oldest_event(&self) -> Result<Option<OldestEvent>, StoreError> {
        let sql = if self.schema >= 2 {
            "SELECT seq, stored_at FROM events ORDER BY seq LIMIT 1"
        } else {
            "SELECT seq, NULL FROM events ORDER BY seq LIMIT 1"
        };
        let row = self
            .conn
            .query_row(sql, [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .optional()?;
        let Some((seq, stored_at)) = row else {
            return Ok(None);
        };
        let seq = u64::try_from(seq)
            .map_err(|_| StoreError::Malformed(format!("negative sequence number {seq}")))?;
        let queued_at = match stored_at {
            Some(ms) => Some(from_millis(ms)),
            None => self.payload_timestamp(seq)?,
        };
        Ok(Some(OldestEvent { seq, queued_at }))
    }

    /// The `timestamp` field of event `seq`, when there is one that parses.
    fn payload_timestamp(&self, seq: Seq) -> Result<Option<SystemTime>, StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let payload: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT CAST(payload AS BLOB) FROM events WHERE seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .optional()?;
        Ok(payload
            .and_then(|p| serde_json::from_slice::<Timestamp>(&p).ok())
            .and_then(|t| humantime::parse_rfc3339_weak(t.timestamp?.as_str()).ok()))
    }
}

/// What the Client's lifecycle and session tracking keeps with the queue
/// (issue 23), in its own one-row table `outbox_session` (created on the
/// first write, so files without it open as before): the session state, the
/// app version and build seen at the last start, and the install's
/// anonymous id for the automatic events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredSession {
    /// The open session, its background time, the last time seen.
    pub state: outbox_core::session::SessionState,
    /// The app version at the last start.
    pub version: String,
    /// The app build at the last start.
    pub build: String,
    /// The `anonymousId` of the automatic events.
    pub anonymous_id: String,
}

impl StoredSession {
    /// A stored session from its parts.
    pub fn new(
        state: outbox_core::session::SessionState,
        version: String,
        build: String,
        anonymous_id: String,
    ) -> Self {
        StoredSession {
            state,
            version,
            build,
            anonymous_id,
        }
    }
}

impl SqliteStore {
    /// The session state stored by [`write_session`](Self::write_session),
    /// or `None` when none was ever stored. A state that does not parse (a
    /// damaged row) reads as no open session, keeping the version.
    pub fn session(&self) -> Result<Option<StoredSession>, StoreError> {
        let exists: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox_session'",
            [],
            |r| r.get(0),
        )?;
        if exists == 0 {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT state, version, build, anonymous_id FROM outbox_session WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(|(state, version, build, anonymous_id)| {
            let state = state
                .and_then(|s| match serde_json::from_str(&s) {
                    Ok(state) => Some(state),
                    Err(e) => {
                        log::warn!("outbox: the stored session state is damaged ({e}); ignored");
                        None
                    }
                })
                .unwrap_or_default();
            StoredSession {
                state,
                version: version.unwrap_or_default(),
                build: build.unwrap_or_default(),
                anonymous_id: anonymous_id.unwrap_or_default(),
            }
        }))
    }

    /// Store the session state (the Client calls it after a commit, never
    /// inside the queue's transaction, so a failure here cannot roll back
    /// appended events).
    pub fn write_session(&mut self, s: &StoredSession) -> Result<(), StoreError> {
        let state =
            serde_json::to_string(&s.state).map_err(|e| StoreError::Other(e.to_string()))?;
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox_session (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 state TEXT, version TEXT, build TEXT, anonymous_id TEXT)",
        )?;
        self.conn
            .prepare_cached(
                "INSERT INTO outbox_session (id, state, version, build, anonymous_id)
                 VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET state = ?1, version = ?2, build = ?3,
                     anonymous_id = ?4",
            )?
            .execute(params![state, s.version, s.build, s.anonymous_id])?;
        Ok(())
    }
}
