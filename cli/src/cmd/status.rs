//! `outbox status`: the queue at a glance, without disturbing a running
//! `send` (the database is opened read-only, without the writer's lock).
//!
//! Everything comes from the database itself: the queue's size, the oldest
//! event's stored time (its first row only), the dead letters, and the last
//! upload or storage error the Client recorded there (cleared by the next
//! delivery). In `--json`, `lastError` is `{"at", "command", "message"}`
//! where `command` names what failed: `"upload"` or `"store"`. When the
//! database cannot be read, `--json` still prints one JSON object on stdout,
//! `{"db", "error": {"message", "exitCode"}}`, besides the line on stderr.
//! An empty (0-byte) file shows as an empty queue, as `send` would use it.
//! `writable` says whether a writer could change the file: if not, uploads
//! would deliver events they cannot remove (`flush` stops on that).

use std::path::Path;
use std::time::{Duration, SystemTime};

use outbox_std::sqlite::{counts_by_reason, ErrorSource, LastError, OpenError, SqliteStore};
use serde_json::{json, Value};

use super::out_line;
use crate::args::StatusArgs;
use crate::error::{CliError, CliResult};

/// What `status` shows.
#[derive(Debug)]
struct Status {
    pending_events: u64,
    pending_bytes: u64,
    oldest_timestamp: Option<String>,
    oldest_age: Option<Duration>,
    dead_letters: u64,
    last_error: Option<Value>,
    /// Delivery stopped for a storage fault the writer recorded (a full
    /// disk, a read-only file, damage it could not salvage).
    store_fault: Option<String>,
    /// The last salvage: when, and what it said.
    salvaged: Option<(String, String)>,
    /// Drops not yet reported to the server (the `losses` table: the next
    /// batch carries them as one `outbox dropped events` event), by reason.
    unreported_losses: Vec<(String, u64)>,
}

/// Opens `db` read-only with a clear one-line error.
pub fn open_read_only(db: &Path) -> CliResult<SqliteStore> {
    if !db.exists() {
        return Err(CliError::failure(format!(
            "{}: no such database (nothing was ever queued there; see --db or OUTBOX_DB)",
            db.display()
        )));
    }
    if let Some(what) = not_a_file(db) {
        return Err(CliError::failure(format!(
            "{}: not a regular file ({what}); a database is a regular file (see --db or OUTBOX_DB)",
            db.display()
        )));
    }
    super::db_key::open_read_only(db)?.map_err(|e| {
        let damaged = matches!(
            e,
            OpenError::Corrupt { .. }
                | OpenError::NotADatabase { .. }
                | OpenError::NewerSchema { .. }
        );
        let hint = if damaged {
            "; the next `outbox send` or `outbox flush` salvages every event that can still be \
             read into a fresh database and keeps this file aside"
        } else {
            ""
        };
        CliError::failure(format!("cannot open the database: {e}{hint}"))
    })
}

/// What `path` is when it exists but is not a regular file (following links).
fn not_a_file(path: &Path) -> Option<&'static str> {
    let kind = std::fs::metadata(path).ok()?.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_block_device() || kind.is_char_device() {
            return Some("a device");
        }
    }
    Some("a special file")
}

fn read_status(db: &Path) -> CliResult<Status> {
    // An empty file is a queue not yet created: `send` makes it one.
    if std::fs::metadata(db).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Ok(Status {
            pending_events: 0,
            pending_bytes: 0,
            oldest_timestamp: None,
            oldest_age: None,
            dead_letters: 0,
            last_error: None,
            store_fault: None,
            salvaged: None,
            unreported_losses: Vec::new(),
        });
    }
    let store = open_read_only(db)?;
    let failed =
        |e: &dyn std::fmt::Display| CliError::failure(format!("cannot read {}: {e}", db.display()));
    let (pending_events, pending_bytes) = store.queue_len().map_err(|e| failed(&e))?;
    let dead_letters = store.dead_letter_count().map_err(|e| failed(&e))?;
    // When the oldest event was stored tells the queue's age.
    let queued_at = store
        .oldest_event()
        .map_err(|e| failed(&e))?
        .and_then(|o| o.queued_at);
    let oldest_timestamp = queued_at.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let oldest_age = queued_at.map(|at| {
        SystemTime::now()
            .duration_since(at)
            .unwrap_or(Duration::ZERO)
    });
    let last_error = store.last_error().map_err(|e| failed(&e))?;
    let store_fault = last_error
        .as_ref()
        .filter(|e| e.source == ErrorSource::Store)
        .map(|e| {
            format!(
                "delivery stopped on a storage fault ({}); the next send or flush tries again",
                e.message
            )
        });
    let salvaged = store
        .last_salvage()
        .map_err(|e| failed(&e))?
        .map(|(at, message)| (humantime::format_rfc3339_seconds(at).to_string(), message));
    let loss_rows = store.losses().map_err(|e| failed(&e))?;
    let unreported_losses = counts_by_reason(&loss_rows)
        .into_iter()
        .map(|(reason, n)| (reason.to_string(), n))
        .collect();
    Ok(Status {
        pending_events,
        pending_bytes,
        oldest_timestamp,
        oldest_age,
        dead_letters,
        last_error: last_error.as_ref().map(last_error_json),
        store_fault,
        salvaged,
        unreported_losses,
    })
}

/// Why the writer could not change `db` (a read-only file or file
/// system), found by opening it for appending, which writes nothing.
/// Uploads would then deliver events they cannot remove, so `flush` stops.
fn storage_problem(db: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new().append(true).open(db);
    file.err().map(|e| {
        format!("the database cannot be written ({e}): delivered events could not be removed")
    })
}

/// The `lastError` object of `--json`.
fn last_error_json(e: &LastError) -> Value {
    json!({
        "at": humantime::format_rfc3339_seconds(e.at).to_string(),
        "command": e.source.as_str(),
        "message": e.message,
    })
}

/// The `losses` row: drops the server has not been told about yet.
fn losses_row(losses: &[(String, u64)]) -> String {
    if losses.is_empty() {
        return "- (none unreported)".into();
    }
    let by_reason: Vec<String> = losses.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "{} not yet reported to the server (the next batch carries them)",
        by_reason.join(", ")
    )
}

/// `1.5 KiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `3m 12s`-style ages (whole seconds).
pub fn human_age(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Runs `outbox status`.
pub fn run(args: StatusArgs) -> CliResult {
    let db = args.db.db.as_path();
    let st = match read_status(db) {
        Ok(st) => st,
        Err(e) => {
            if args.json {
                // Scripts reading stdout get JSON either way.
                let doc = json!({
                    "db": db.display().to_string(),
                    "error": { "message": e.to_string(), "exitCode": e.code },
                });
                out_line(&doc.to_string());
            }
            return Err(e);
        }
    };
    // A file that cannot be written, else a fault that stopped delivery.
    let problem = storage_problem(db).or_else(|| st.store_fault.clone());
    if args.json {
        let doc = json!({
            "writable": problem.is_none(),
            "storageProblem": problem,
            "salvaged": st.salvaged.as_ref().map(|(at, message)| json!({"at": at, "message": message})),
            "db": db.display().to_string(),
            "pendingEvents": st.pending_events,
            "pendingBytes": st.pending_bytes,
            "oldestEventTimestamp": st.oldest_timestamp,
            "oldestEventAgeSeconds": st.oldest_age.map(|d| d.as_secs()),
            "deadLetters": st.dead_letters,
            "lastError": st.last_error,
            "unreportedLosses": st
                .unreported_losses
                .iter()
                .map(|(reason, n)| (reason.clone(), Value::from(*n)))
                .collect::<serde_json::Map<_, _>>(),
        });
        out_line(&doc.to_string());
        return Ok(());
    }
    let oldest = match (&st.oldest_age, &st.oldest_timestamp) {
        (Some(age), Some(ts)) => format!("{} old ({ts})", human_age(*age)),
        (None, Some(ts)) => format!("timestamp {ts}"),
        _ if st.pending_events == 0 => "-".into(),
        _ => "unknown (no stored time)".into(),
    };
    let last = match &st.last_error {
        Some(e) => format!(
            "{} {}: {}",
            e["at"].as_str().unwrap_or("?"),
            e["command"].as_str().unwrap_or("?"),
            e["message"].as_str().unwrap_or("?")
        ),
        None => "-".into(),
    };
    let rows = [
        ("database", db.display().to_string()),
        (
            "pending",
            format!(
                "{} events, {}",
                st.pending_events,
                human_bytes(st.pending_bytes)
            ),
        ),
        ("oldest event", oldest),
        ("dead letters", st.dead_letters.to_string()),
        ("last error", last),
        (
            "writable",
            problem.map_or("yes".into(), |p| format!("no: {p}")),
        ),
        (
            "salvaged",
            st.salvaged
                .as_ref()
                .map_or("-".into(), |(at, message)| format!("{at}: {message}")),
        ),
        ("losses", losses_row(&st.unreported_losses)),
    ];
    for (k, v) in rows {
        out_line(&format!("{k:<14}{v}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(human_age(Duration::from_millis(192_400)), "3m 12s");
    }
}
