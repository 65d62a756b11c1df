//! `outbox send`: JSON lines in, stored, delivered.
//!
//! Every line read is stored (the queue is bounded by configuration and
//! disk, and `send` waits for room rather than for delivery). When `send`
//! stops early (time ran out, the disk is full or a file-size limit hit,
//! the queue stayed full, SIGINT or SIGTERM: see [`stop`]) it commits,
//! names the last line known stored and exits non-zero.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::time::Instant;

use outbox_std::{Client, ClientStats, Event, Lifecycle, TrackError};
use serde_json::Value;

use super::deadline::Bound;
use super::deliver::stop::{self, Stop};
use super::deliver::{progress_message, Endpoint, Watch, MAX_QUEUE_BYTES, MAX_QUEUE_EVENTS};
use super::input::{events_of, Feed, FeedEnd, Line};
use super::out_line;
use super::progress::Progress;
use crate::args::{FlushModeArg, SendArgs};
use crate::error::{CliError, CliResult};

/// Longest input line read into memory; longer ones are bad lines. The
/// event limit (32 KiB serialized) is checked on each event itself; a line
/// may be a whole `{"batch": [...]}` request body (at most 500 000 bytes at
/// Segment), so this leaves room for one.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Largest stored event (the Client's event limit), for the room check.
const MAX_EVENT_BYTES: u64 = 32 * 1024;

/// Events tracked between two checks that they are stored.
const LOOK_EVERY: u64 = 256;

/// Bad lines reported one by one; the rest are counted.
const BAD_LINES_SHOWN: u64 = 10;

/// Where reading got to.
#[derive(Debug, Default)]
struct Counts {
    read: u64,
    stored: u64,
    bad: u64,
    /// The first bad line.
    first_bad: Option<u64>,
    /// The number of the last line taken from the input.
    last_line: u64,
    /// Every event on a line up to this one is known to be stored.
    confirmed_line: u64,
    /// The line of the last event handed to the Client.
    last_event_line: u64,
    /// The lines of the events handed over since the last confirmation;
    /// the first got sequence number `window_seq`, the next one more.
    window: Vec<u64>,
    window_seq: u64,
}

/// Runs `outbox send`.
pub fn run(args: SendArgs) -> CliResult {
    let bound = Bound::new(Instant::now(), args.timeout);
    let endpoint = Endpoint::new(&args.endpoint, &args.wire)?;
    let db = args.db.db.as_path();
    if args.threshold.is_some() && !matches!(args.flush_mode, FlushModeArg::Period(_)) {
        return Err(CliError::usage(
            "--threshold only applies to --flush-mode period=DURATION",
        ));
    }
    // From here on SIGINT and SIGTERM stop the run with the place named,
    // and a file-size limit fails a write instead of killing the process.
    stop::install()
        .map_err(|e| CliError::failure(format!("cannot install the signal handlers: {e}")))?;
    // The input first: a missing file or a directory fails before any
    // database is created.
    let reader: Box<dyn BufRead + Send> = match &args.input {
        Some(path) => {
            let cannot = |e: &dyn std::fmt::Display| {
                CliError::failure(format!("cannot read --input {}: {e}", path.display()))
            };
            let file = File::open(path).map_err(|e| cannot(&e))?;
            if file.metadata().map_err(|e| cannot(&e))?.is_dir() {
                return Err(cannot(&"it is a directory"));
            }
            Box::new(BufReader::new(file))
        }
        None => {
            if io::stdin().is_terminal() {
                super::err_line(
                    "outbox: reading events from stdin, one JSON object per line (end with Ctrl-D)",
                );
            }
            Box::new(BufReader::new(io::stdin()))
        }
    };
    let feed = Feed::spawn(reader, MAX_LINE_BYTES)
        .map_err(|e| CliError::failure(format!("cannot start reading the input: {e}")))?;
    let client =
        super::deliver::open_client_with(db, &endpoint, args.flush_mode, args.threshold, |b| {
            let b = args
                .automatic
                .apply(b)
                .loss_reports(!args.no_loss_reports)
                .upload_on(args.network_policy);
            match args.max_event_age {
                Some(age) => b.max_event_age(age),
                None => b,
            }
        })?;
    // Before the first line: under `--network-policy unmetered` nothing
    // goes until the Client knows the network is unmetered.
    client
        .set_network(true, args.network_kind)
        .map_err(|e| CliError::failure(format!("the client stopped: {e}")))?;
    if args.automatic.foreground {
        client
            .lifecycle(Lifecycle::Foreground)
            .map_err(|e| CliError::failure(format!("the client stopped: {e}")))?;
    }
    let storage = super::flush::StorageWatch::start(&client);
    let result = send(&client, &args, &endpoint, &bound, &feed, &storage);
    // Whatever happened (delivered, --no-wait, --strict, a failure), commit
    // and stop without starting another upload: what is stored stays stored.
    let _ = client.close();
    result.map_err(|mut e| {
        if stop::file_size_limit_hit() && e.code == crate::exit::FAILURE {
            e.message = format!(
                "the file-size limit was reached (SIGXFSZ, see `ulimit -f`): {}; once the \
                 limit allows, send the lines after the last one stored again, and \
                 `outbox flush` delivers what is stored",
                e.message
            );
        }
        e
    })
}

/// A network kind as `--network-kind` spells it.
fn kind_name(kind: outbox_std::NetworkKind) -> &'static str {
    match kind {
        outbox_std::NetworkKind::Unmetered => "unmetered",
        outbox_std::NetworkKind::Metered => "metered",
        _ => "unknown",
    }
}

/// How long one wait for an input line lasts before the stop signals are
/// looked at again.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The next input line, or why there is none: the input ended, failed or
/// the run's time ran out ([`FeedEnd`]), or a signal asked to stop.
fn next_line(feed: &Feed, bound: &Bound) -> Result<(u64, Line), Result<FeedEnd, Stop>> {
    loop {
        if let Some(stop) = stop::received().filter(|s| s.ends_the_run()) {
            return Err(Err(stop));
        }
        let slice = Instant::now() + STOP_POLL;
        let until = bound.deadline().map_or(slice, |d| d.min(slice));
        match feed.next(Some(until)) {
            Ok(line) => return Ok(line),
            Err(FeedEnd::TimedOut) if !bound.timed_out(Instant::now()) => continue,
            Err(end) => return Err(Ok(end)),
        }
    }
}

/// Track one event read on line `no`: `Ok(Err(reason))` for an event
/// refused as invalid, `Err` when the Client could not take it at all. A
/// `messageId` the input already gave is stored again (the server keeps
/// one) and warned about. A field `"critical": true` is outbox's own, not
/// Segment's: taken off the event, it tracks it as critical (an upload of
/// the queue up to it at once, even under `--flush-mode manual`).
fn store(
    client: &Client,
    mut map: serde_json::Map<String, Value>,
    no: u64,
    given_ids: &mut HashMap<String, u64>,
    progress: &mut Progress,
) -> Result<Result<(), String>, TrackError> {
    let critical = match map.remove("critical") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => {
            return Ok(Err(format!(
                "\"critical\" must be true or false, not {other}"
            )))
        }
    };
    let event = match serde_json::from_value::<Event>(Value::Object(map.clone())) {
        Ok(e) => with_exact_numbers(e, map),
        Err(e) => return Ok(Err(format!("not a valid event: {e}"))),
    };
    let given = event.message_id.clone().filter(|m| !m.is_empty());
    let tracked = if critical {
        client.track_critical(event)
    } else {
        client.track(event)
    };
    match tracked {
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

/// `event`, read from `map`, with the values of `map` where they may hold
/// numbers: serde_json turns a number like `-0` into `0` when it builds the
/// event from a `Value` (it reads it as an integer), and the README promises
/// the text as written. The values are the same JSON otherwise.
fn with_exact_numbers(mut event: Event, mut map: serde_json::Map<String, Value>) -> Event {
    for (field, key) in [
        (&mut event.properties, "properties"),
        (&mut event.traits, "traits"),
        (&mut event.context, "context"),
        (&mut event.integrations, "integrations"),
    ] {
        if let (Some(value), Some(exact)) = (field.as_mut(), map.remove(key)) {
            *value = exact;
        }
    }
    for (key, value) in event.extra.iter_mut() {
        if let Some(exact) = map.remove(key) {
            *value = exact;
        }
    }
    event
}

fn send(
    client: &Client,
    args: &SendArgs,
    endpoint: &Endpoint,
    bound: &Bound,
    feed: &Feed,
    storage: &super::flush::StorageWatch,
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
        bound,
        notes: &notes,
        base,
        seen: Default::default(),
    };
    let mut progress = Progress::new("send", 0);
    let mut counts = Counts {
        window_seq: base.next_seq,
        ..Counts::default()
    };
    // The line each messageId given in the input was first read on.
    let mut given_ids: HashMap<String, u64> = HashMap::new();
    loop {
        let (no, line) = match next_line(feed, bound) {
            Ok(next) => next,
            Err(Err(stop)) => {
                confirm(&watch, &mut progress, &mut counts)?;
                let next = counts.last_line + 1;
                return Err(CliError {
                    code: stop.code(),
                    message: format!(
                        "stopped by {}: line {} is the last line taken, and every event up to it \
                         is stored ({} events in {}); no later line was stored: to resume, \
                         send the lines from {next} on (`tail -n +{next} FILE | outbox send ...`); \
                         `outbox flush` delivers what is stored",
                        stop.name(),
                        counts.last_line,
                        counts.stored,
                        db.display()
                    ),
                });
            }
            Err(Ok(FeedEnd::Done)) => break,
            Err(Ok(FeedEnd::TimedOut)) => {
                confirm(&watch, &mut progress, &mut counts)?;
                return Err(CliError::queued(format!(
                    "timed out reading the input: line {} is the last read, and every event up to \
                     it is stored ({} events); nothing after it was read; run `outbox flush` to \
                     deliver what is stored in {}",
                    counts.last_line,
                    counts.stored,
                    db.display()
                )));
            }
            Err(Ok(FeedEnd::Failed(e))) => {
                confirm(&watch, &mut progress, &mut counts)?;
                return Err(CliError::failure(format!(
                    "cannot read the input after line {}: {e}; every event up to it is stored \
                     ({} events in {})",
                    counts.last_line,
                    counts.stored,
                    db.display()
                )));
            }
        };
        counts.last_line = no;
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
                        if counts.stored > 0 && counts.stored.is_multiple_of(LOOK_EVERY) {
                            let stats = confirm(&watch, &mut progress, &mut counts)?;
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
                            make_room(&watch, &mut progress, &stats, no)?;
                        }
                        match store(client, map, no, &mut given_ids, &mut progress) {
                            Ok(Ok(())) => {
                                counts.stored += 1;
                                counts.last_event_line = no;
                                counts.window.push(no);
                            }
                            Ok(Err(reason)) if items > 1 => {
                                bad.push(format!("batch item {i}: {reason}"))
                            }
                            Ok(Err(reason)) => bad.push(reason),
                            Err(e) => {
                                confirm(&watch, &mut progress, &mut counts)?;
                                return Err(CliError::failure(format!(
                                    "cannot store line {no}: {e}; line {} is the last line \
                                     known stored ({} events in {})",
                                    counts.confirmed_line,
                                    counts.stored,
                                    db.display()
                                )));
                            }
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
                confirm(&watch, &mut progress, &mut counts)?;
                return Err(CliError::bad_input(format!(
                    "line {no}: {reason}; stopped (--strict) with the {} events before it stored in {}",
                    counts.stored,
                    db.display()
                )));
            }
            counts.bad += 1;
            counts.first_bad.get_or_insert(no);
            if counts.bad <= BAD_LINES_SHOWN {
                progress.println(&format!("outbox: line {no}: {reason}; skipped"));
            }
        }
        watch.drain_notes(&mut progress);
    }
    // Everything read is now committed, or we say why not.
    let mut stats = confirm(&watch, &mut progress, &mut counts)?;
    if args.automatic.foreground {
        // The end of input ends the run's session (queued after every line).
        client
            .lifecycle(Lifecycle::Terminate)
            .map_err(|e| CliError::failure(format!("the client stopped: {e}")))?;
        stats = watch.stats()?;
    }
    if counts.bad > BAD_LINES_SHOWN {
        progress.println(&format!(
            "outbox: {} more bad lines skipped (only the first {BAD_LINES_SHOWN} are shown)",
            counts.bad - BAD_LINES_SHOWN
        ));
    }
    if counts.stored == 0 && counts.bad > 0 {
        return Err(CliError::bad_input(format!(
            "no valid event in the input: {} bad lines (the first is line {}), nothing stored",
            counts.bad,
            counts.first_bad.unwrap_or(0)
        )));
    }
    // Stored and not sent in this run: the policy forbids this network, or
    // the caller asked not to wait. One summary line says why.
    let not_sent = if !args.network_policy.allows(args.network_kind) {
        Some((
            format!(
                "not uploaded: --network-policy unmetered on a {} network",
                kind_name(args.network_kind)
            ),
            "; `outbox flush` delivers them",
        ))
    } else if args.no_wait {
        Some(("not waiting for delivery".to_string(), ""))
    } else {
        None
    };
    if let Some((why, then)) = not_sent {
        progress.finish(
            stats.core.delivered - base.delivered,
            format!("read {} · stored {}", counts.read, counts.stored),
        );
        out_line(&format!(
            "read {} lines: {} stored, {} bad lines skipped; {why} ({} queued in {}{then})",
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
    let delivered = s.delivered - base.delivered;
    let damaged = super::flush::damaged_since(&base, s);
    let damaged_note = match damaged {
        0 => String::new(),
        n => format!(", {n} damaged in the database"),
    };
    out_line(&format!(
        "read {} lines: {} stored, {} bad lines skipped; {delivered} delivered, {rejected} rejected{damaged_note}, 0 still queued",
        counts.stored + counts.bad,
        counts.stored,
        counts.bad,
    ));
    storage.finish(client);
    if damaged > 0 {
        return Err(storage.damaged_error(damaged, delivered));
    }
    if rejected > 0 {
        return Err(super::deliver::rejected_error(
            rejected,
            watch.seen.malformed.get(),
            delivered,
        ));
    }
    Ok(())
}

/// Commits what was handed to the Client and checks that all of it was
/// kept; then every event up to the last one handed over is confirmed.
/// Otherwise names the first line not stored (from the store's drop
/// reports), or the last line known stored when those are incomplete.
fn confirm(
    watch: &Watch<'_>,
    progress: &mut Progress,
    counts: &mut Counts,
) -> CliResult<ClientStats> {
    let synced = watch.client.sync();
    let stats = watch
        .stats()
        .map_err(|e| CliError::failure(unsure(counts, &e.message)))?;
    let (s, b) = (&stats.core, &watch.base);
    let lost = counts.stored.saturating_sub(s.tracked - b.tracked)
        + (s.dropped_not_stored - b.dropped_not_stored)
        + (s.dropped_overflow - b.dropped_overflow);
    if synced.is_ok() && lost == 0 {
        counts.confirmed_line = counts.last_event_line;
        counts.window.clear();
        counts.window_seq = s.next_seq;
        return Ok(stats);
    }
    let why = match synced {
        Err(e) => e.to_string(),
        Ok(()) => stats
            .last_error
            .clone()
            .unwrap_or_else(|| "the queue refused them".into()),
    };
    // Which of the window's events were reported not stored.
    watch.drain_notes(progress);
    let missing: Vec<u64> = counts
        .window
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            let seq = counts.window_seq + i as u64;
            watch
                .seen
                .not_stored
                .borrow()
                .iter()
                .any(|&(first, last)| (first..=last).contains(&seq))
        })
        .map(|(_, &line)| line)
        .collect();
    let after = format!(
        "nothing after line {} was stored; events stored: {}",
        counts.last_event_line,
        counts.stored - lost
    );
    let message = match missing.first() {
        Some(first) if missing.len() as u64 == lost => format!(
            "cannot store line {first}: {why}; line {first} is the first line not stored (every \
             line before it is stored); {} of lines {first}..={} were not stored, and {after}",
            missing.len(),
            counts.last_event_line,
        ),
        _ => format!("{}; {after}", unsure(counts, &why)),
    };
    Err(CliError::failure(message))
}

/// Names the last line known stored when which of the later ones were
/// kept is not known.
fn unsure(counts: &Counts, why: &str) -> String {
    format!(
        "cannot store the events after line {}: {why}; line {} is the last line known stored; \
         of lines {}..={} some may not be stored, and no later line was",
        counts.confirmed_line,
        counts.confirmed_line,
        counts.confirmed_line + 1,
        counts.last_event_line,
    )
}

/// Before tracking line `no`: if the queue is near its limits, flush and
/// wait for room (never for full delivery). If no room comes within the
/// run's bound, line `no` is the first not stored.
fn make_room(
    watch: &Watch<'_>,
    progress: &mut Progress,
    stats: &ClientStats,
    no: u64,
) -> CliResult {
    let has_room = |st: &ClientStats| {
        u64::from(st.core.pending_events) + LOOK_EVERY <= u64::from(MAX_QUEUE_EVENTS)
            && st.core.pending_bytes + LOOK_EVERY * MAX_EVENT_BYTES <= MAX_QUEUE_BYTES
    };
    if has_room(stats) {
        return Ok(());
    }
    watch
        .client
        .flush()
        .map_err(|e| CliError::failure(format!("cannot flush: {e}")))?;
    let base = watch.base;
    watch
        .wait_until(
            progress,
            |st| {
                (
                    st.core.delivered - base.delivered,
                    u64::from(st.core.pending_events),
                    format!(
                        "queue full, waiting for room · {}",
                        progress_message(st, &base)
                    ),
                )
            },
            has_room,
        )
        .map(|_| ())
        .map_err(|e| CliError {
            code: e.code,
            message: format!(
                "the queue is full and no room came: line {no} is the first line not stored \
                 (every line before it is); {}",
                e.message
            ),
        })
}
