//! `outbox dead-letter list|export`: the events the endpoint refused for good.

use std::io::Write;

use serde_json::Value;

use super::out_line;
use super::status::open_read_only;
use crate::args::DeadLetterCommand;
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
