//! `outbox send`: JSON lines in, stored, delivered.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::time::Instant;

use outbox_std::{Client, Event, TrackError};
use serde_json::Value;

use super::deliver::{
    open_client, progress_message, Endpoint, Watch, PENDING_HIGH_WATER, PENDING_HIGH_WATER_BYTES,
};
use super::input::{events_of, Line, Lines};
use super::out_line;
use super::progress::Progress;
use crate::args::{FlushModeArg, SendArgs};
use crate::error::{CliError, CliResult};

/// Longest input line read into memory; longer ones are bad lines. The
/// event limit (32 KiB serialized) is checked on each event itself; a line
/// may be a whole `{"batch": [...]}` request body (at most 500 000 bytes at
/// Segment), so this leaves room for one.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Events tracked between two looks at the queue.
const LOOK_EVERY: u64 = 256;

/// Counts for the summary.
#[derive(Debug, Default)]
struct Counts {
    read: u64,
    stored: u64,
    bad: u64,
}

/// Runs `outbox send`.
pub fn run(args: SendArgs) -> CliResult {
    let started = Instant::now();
    // A timeout too large for an Instant (e.g. 18446744073709551615s) is no deadline.
    let deadline = args.timeout.and_then(|t| started.checked_add(t));
    let endpoint = Endpoint::new(&args.endpoint, args.gzip, args.bearer);
    let db = args.db.db.as_path();
    if args.threshold.is_some() && !matches!(args.flush_mode, FlushModeArg::Period(_)) {
        return Err(CliError::usage(
            "--threshold only applies to --flush-mode period=DURATION",
        ));
    }
    // The input first: a missing file fails before any database is created.
    let reader: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(File::open(path).map_err(|e| {
            CliError::failure(format!("cannot read --input {}: {e}", path.display()))
        })?)),
        None => {
            if io::stdin().is_terminal() {
                super::err_line(
                    "outbox: reading events from stdin, one JSON object per line (end with Ctrl-D)",
                );
            }
            Box::new(BufReader::new(io::stdin()))
        }
    };
    let client = open_client(db, &endpoint, args.flush_mode, args.threshold)?;
    let result = send(&client, &args, &endpoint, deadline, reader);
    // Whatever happened (delivered, --no-wait, --strict, a failure), commit
    // and stop without starting another upload: what is stored stays stored.
    let _ = client.close();
    result
}

/// Track one event read on line `no`: `Ok(Err(reason))` for an event
/// refused as invalid, `Err` when the Client could not take it at all. A
/// `messageId` the input already gave is stored again (the server keeps
/// one) and warned about.
fn store(
    client: &Client,
    map: serde_json::Map<String, Value>,
    no: u64,
    given_ids: &mut HashMap<String, u64>,
    progress: &mut Progress,
) -> Result<Result<(), String>, TrackError> {
    let event = match serde_json::from_value::<Event>(Value::Object(map)) {
        Ok(e) => e,
        Err(e) => return Ok(Err(format!("not a valid event: {e}"))),
    };
    let given = event.message_id.clone().filter(|m| !m.is_empty());
    match client.track(event) {
        Ok(_) => {}
        Err(TrackError::Invalid(e)) => return Ok(Err(e.to_string())),
        Err(e) => return Err(e),
    }
    if let Some(id) = given {
        match given_ids.get(&id) {
            Some(first) => progress.println(&format!(
                "outbox: warning: line {no}: messageId {id:?} repeats line {first}; \
                 the server keeps only one of them"
            )),
            None => {
                given_ids.insert(id, no);
            }
        }
    }
    Ok(Ok(()))
}

fn send(
    client: &Client,
    args: &SendArgs,
    endpoint: &Endpoint,
    deadline: Option<Instant>,
    reader: Box<dyn BufRead>,
) -> CliResult {
    let db = args.db.db.as_path();
    let notes = client.notifications();
    let base = client
        .stats()
        .map_err(|e| CliError::failure(format!("the client stopped: {e}")))?
        .core;
    let watch = Watch {
        client,
        endpoint,
        db,
        deadline,
        notes: &notes,
        base,
    };
    let mut progress = Progress::new("send", 0);
    let mut counts = Counts::default();
    let mut lines = Lines::new(reader, MAX_LINE_BYTES);
    // The line each messageId given in the input was first read on.
    let mut given_ids: HashMap<String, u64> = HashMap::new();
    loop {
        let next = lines
            .next_line()
            .map_err(|e| CliError::failure(format!("cannot read the input: {e}")))?;
        let Some((no, line)) = next else { break };
        let bad = match line {
            Line::Blank => continue,
            Line::Bad(reason) => Some(reason),
            Line::Event(map) => match events_of(map) {
                Err(reason) => {
                    counts.read += 1;
                    Some(reason)
                }
                Ok(events) => {
                    // Every refused item of an envelope line, in one report.
                    let mut bad: Vec<String> = Vec::new();
                    let items = events.len();
                    for (i, map) in events.into_iter().enumerate() {
                        counts.read += 1;
                        let stored = store(client, map, no, &mut given_ids, &mut progress)
                            .map_err(|e| {
                                CliError::failure(format!(
                                    "cannot store line {no}: {e}; {} lines stored before it",
                                    counts.stored
                                ))
                            })?;
                        match stored {
                            Ok(()) => counts.stored += 1,
                            Err(reason) if items > 1 => {
                                bad.push(format!("batch item {i}: {reason}"))
                            }
                            Err(reason) => bad.push(reason),
                        }
                        if !bad.is_empty() && args.strict {
                            break;
                        }
                    }
                    (!bad.is_empty()).then(|| bad.join("; "))
                }
            },
        };
        if let Some(reason) = bad {
            if args.strict {
                client.sync().map_err(|e| {
                    CliError::failure(format!("cannot store the events before line {no}: {e}"))
                })?;
                return Err(CliError::bad_input(format!(
                    "line {no}: {reason}; stopped (--strict) with the {} events before it stored in {}",
                    counts.stored,
                    db.display()
                )));
            }
            counts.bad += 1;
            progress.println(&format!("outbox: line {no}: {reason}; skipped"));
        }
        if counts.stored > 0 && counts.stored % LOOK_EVERY == 0 {
            watch.drain_notes(&mut progress)?;
            let stats = watch.stats()?;
            progress.set_total(counts.stored);
            progress.update(
                stats.core.delivered - base.delivered,
                format!(
                    "read {} · stored {} · {}",
                    counts.read,
                    counts.stored,
                    progress_message(&stats, &base)
                ),
            );
            // Keep the queue well under its limits: let delivery catch up.
            let s = &stats.core;
            if s.pending_events >= PENDING_HIGH_WATER || s.pending_bytes >= PENDING_HIGH_WATER_BYTES
            {
                client
                    .flush()
                    .map_err(|e| CliError::failure(format!("cannot flush: {e}")))?;
                let stored = counts.stored;
                let read = counts.read;
                watch.wait_until(
                    &mut progress,
                    |st| {
                        (
                            st.core.delivered - base.delivered,
                            stored,
                            format!(
                                "read {read} · stored {stored} · {}",
                                progress_message(st, &base)
                            ),
                        )
                    },
                    |st| {
                        st.core.pending_events < PENDING_HIGH_WATER / 2
                            && st.core.pending_bytes < PENDING_HIGH_WATER_BYTES / 2
                    },
                )?;
            }
        }
    }
    // Everything read is now committed, or we say why not.
    client
        .sync()
        .map_err(|e| CliError::failure(format!("cannot store the events: {e}")))?;
    let stats = watch.stats()?;
    let not_stored = stats.core.dropped() - base.dropped();
    if not_stored > 0 {
        return Err(CliError::failure(format!(
            "{not_stored} events could not be kept ({}); the rest are stored in {}",
            stats
                .last_error
                .as_deref()
                .unwrap_or("dropped by the queue"),
            db.display()
        )));
    }
    if args.no_wait {
        progress.finish(
            stats.core.delivered - base.delivered,
            format!("read {} · stored {}", counts.read, counts.stored),
        );
        out_line(&format!(
            "read {} lines: {} stored, {} bad lines skipped; not waiting for delivery ({} queued in {})",
            counts.stored + counts.bad,
            counts.stored,
            counts.bad,
            stats.core.pending_events,
            db.display()
        ));
        return Ok(());
    }
    let done = watch.deliver_all(&mut progress, counts.stored)?;
    let s = &done.core;
    let rejected = s.rejected - base.rejected;
    out_line(&format!(
        "read {} lines: {} stored, {} bad lines skipped; {} delivered, {} rejected, 0 still queued",
        counts.stored + counts.bad,
        counts.stored,
        counts.bad,
        s.delivered - base.delivered,
        rejected
    ));
    if rejected > 0 {
        return Err(CliError::failure(format!(
            "{rejected} events were rejected by the endpoint and moved to the dead-letter table \
             (see `outbox dead-letter list`); everything else was delivered"
        )));
    }
    Ok(())
}
