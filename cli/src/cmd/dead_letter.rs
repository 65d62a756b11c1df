//! `outbox dead-letter list|export|requeue|purge`: the events the endpoint
//! refused for good, and undoing a server's bad day once it is fixed.

use std::io::Write;
use std::time::Duration;

use outbox_core::Overflow;
use outbox_std::{Client, DeadLetterSelection, FlushMode, UploadFailed};
use serde_json::Value;

use super::deliver::build_error;
use super::out_line;
use super::status::open_read_only;
use crate::args::{DeadLetterCommand, DeadLetterPick};
use crate::error::{CliError, CliResult};

/// Longest event excerpt in the table.
const EXCERPT: usize = 60;

/// Runs `outbox dead-letter`.
pub fn run(cmd: DeadLetterCommand) -> CliResult {
    match cmd {
        DeadLetterCommand::List(db) => {
            let store = open_read_only(&db.db)?;
            let letters = store
                .dead_letters()
                .map_err(|e| CliError::failure(format!("cannot read {}: {e}", db.db.display())))?;
            if letters.is_empty() {
                out_line("no dead letters");
                return Ok(());
            }
            out_line(&format!(
                "{:>5}  {:>8}  {:>6}  {:<10}  {:<24}  {:<36}  event",
                "id", "seq", "status", "reason", "rejected at", "messageId"
            ));
            for d in &letters {
                let event = serde_json::from_slice::<Value>(&d.payload).ok();
                let id = event
                    .as_ref()
                    .and_then(|v| v.get("messageId")?.as_str().map(String::from))
                    .unwrap_or_else(|| "-".into());
                let text = String::from_utf8_lossy(&d.payload);
                let excerpt: String = if text.chars().count() > EXCERPT {
                    text.chars().take(EXCERPT - 1).chain(['…']).collect()
                } else {
                    text.into_owned()
                };
                out_line(&format!(
                    "{:>5}  {:>8}  {:>6}  {:<10}  {:<24}  {:<36}  {excerpt}",
                    d.id, d.seq, d.status, d.reason, d.rejected_at, id
                ));
            }
            out_line(&format!("{} dead letters", letters.len()));
            Ok(())
        }
        DeadLetterCommand::Requeue(pick) => change(&pick, true),
        DeadLetterCommand::Purge(pick) => change(&pick, false),
        DeadLetterCommand::Export(db) => {
            let store = open_read_only(&db.db)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            store
                .export_dead_letters(&mut out)
                .map_err(|e| CliError::failure(format!("cannot export dead letters: {e}")))?;
            out.flush()
                .map_err(|e| CliError::failure(format!("cannot write the export: {e}")))?;
            Ok(())
        }
    }
}

/// Requeue (or purge) the picked dead letters through a Client on the
/// database (so the queue lock, numbering and limits hold), which never
/// uploads: delivery is `outbox flush`'s job.
fn change(pick: &DeadLetterPick, requeue: bool) -> CliResult {
    let db = &pick.db.db;
    if !db.exists() {
        return Err(CliError::failure(format!("no queue at {}", db.display())));
    }
    let no_upload = |_: &outbox_std::BatchBody| -> Result<outbox_std::Response, UploadFailed> {
        Err(UploadFailed("dead-letter commands do not upload".into()))
    };
    let client = super::db_key::client_builder()?
        .path(db)
        .uploader(no_upload)
        .flush_mode(FlushMode::Manual)
        .configure(|c| {
            // Requeued events must never push older ones out.
            c.max_queue_events(u32::MAX)
                .max_queue_bytes(u64::MAX)
                .overflow(Overflow::RejectNew)
        })
        .drop_flush_timeout(Duration::ZERO)
        .build()
        .map_err(|e| build_error(db, e))?;
    let result = pick_and_apply(&client, pick, requeue);
    let _ = client.close();
    result
}

fn pick_and_apply(client: &Client, pick: &DeadLetterPick, requeue: bool) -> CliResult {
    let db = &pick.db.db;
    let failed = |e: outbox_std::ClientError| CliError::failure(format!("{}: {e}", db.display()));
    let which = if pick.all {
        DeadLetterSelection::All
    } else {
        let letters = client.dead_letters().map_err(failed)?;
        for seq in &pick.seq {
            if !letters.iter().any(|d| d.seq == *seq) {
                super::err_line(&format!("outbox: warning: no dead letter has seq {seq}"));
            }
        }
        DeadLetterSelection::Seqs(pick.seq.clone())
    };
    if requeue {
        let n = client.requeue_dead_letters(which).map_err(failed)?;
        let left = client.stats().map(|s| s.dead_letters).unwrap_or(0);
        out_line(&format!(
            "requeued {n} dead letters into {} ({left} left); `outbox flush` delivers them",
            db.display()
        ));
    } else {
        let n = client.purge_dead_letters(which).map_err(failed)?;
        let left = client.stats().map(|s| s.dead_letters).unwrap_or(0);
        out_line(&format!("purged {n} dead letters ({left} left)"));
    }
    Ok(())
}
