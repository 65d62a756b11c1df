//! `outbox demo`: the whole story on one machine in well under a minute.
//!
//! A temporary database, a collector on an ephemeral 127.0.0.1 port, and N
//! events tracked in the background while the collector misbehaves on a
//! script: the network goes down for a while, then the collector answers a
//! run of 503s, a 429 with Retry-After, a 400 for the one poison event, and
//! commits one batch without answering. At the end the collector must hold
//! every event except the poison one exactly once (after deduplication by
//! `messageId`), and the poison event must sit in the dead-letter table.
//! The collector serves its live events page meanwhile; its address is
//! printed first thing.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outbox_std::http::HttpConfig;
use outbox_std::{Client, Event, Notification, RetryCause};
use serde_json::{json, Value};

use super::out_line;
use super::progress::Progress;
use crate::args::DemoArgs;
use crate::collect::{self, BatchInfo, Collector, Failure, Faults, Logger};
use crate::error::{CliError, CliResult};

/// The field that makes the collector refuse an event (the poison).
const POISON_FIELD: &str = "poison";
/// The demo's write key (checked by the collector).
const KEY: &str = "demo-key";
/// How long tracking is spread over.
const TRACK_OVER: Duration = Duration::from_secs(5);
/// The outage: collector unreachable for this long...
const OUTAGE: Duration = Duration::from_secs(3);
/// ...and the client is told the network is down this far into it.
const OUTAGE_NOTICED_AFTER: Duration = Duration::from_secs(1);
/// 503s in a row.
const RUN_OF_503: u32 = 3;
/// The 429's Retry-After.
const RETRY_AFTER_SECS: u64 = 2;
/// The demo gives up after this long (it takes about 20 s).
const GIVE_UP_AFTER: Duration = Duration::from_secs(55);

/// State the demo and its collector's faults share.
struct Script {
    /// The collector is unreachable.
    down: AtomicBool,
    /// The outage is over (the later faults wait for it).
    outage_over: AtomicBool,
}

/// Where the scripted faults stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the outage to end and 35 % to arrive.
    Before503,
    /// This many 503s answered so far.
    Answering503(u32),
    /// Waiting for 55 %.
    Before429,
    /// Waiting for 75 %.
    BeforeLostResponse,
    /// Every fault was injected.
    Done,
}

/// The collector's scripted faults.
struct DemoFaults {
    script: Arc<Script>,
    total: u64,
    stage: Stage,
    notes: Sender<String>,
}

impl DemoFaults {
    fn reached(&self, batch: &BatchInfo, percent: u64) -> bool {
        batch.accepted_before * 100 >= self.total * percent
    }

    fn note(&self, s: String) {
        let _ = self.notes.send(s);
    }
}

impl Faults for DemoFaults {
    fn refuse(&mut self) -> bool {
        self.script.down.load(Ordering::SeqCst)
    }

    fn fail(&mut self, batch: &BatchInfo) -> Option<Failure> {
        match self.stage {
            Stage::Before503
                if self.script.outage_over.load(Ordering::SeqCst) && self.reached(batch, 35) =>
            {
                self.stage = Stage::Answering503(0);
                self.fail(batch)
            }
            Stage::Answering503(n) if n < RUN_OF_503 => {
                self.stage = if n + 1 == RUN_OF_503 {
                    Stage::Before429
                } else {
                    Stage::Answering503(n + 1)
                };
                self.note(format!(
                    "collector answers 503 Service Unavailable ({} of {RUN_OF_503}): the client backs off, doubling",
                    n + 1
                ));
                Some(Failure {
                    status: 503,
                    retry_after: None,
                })
            }
            Stage::Before429 if self.reached(batch, 55) => {
                self.stage = Stage::BeforeLostResponse;
                self.note(format!(
                    "collector answers 429 Too Many Requests with Retry-After: {RETRY_AFTER_SECS}"
                ));
                Some(Failure {
                    status: 429,
                    retry_after: Some(RETRY_AFTER_SECS),
                })
            }
            _ => None,
        }
    }

    fn drop_response(&mut self, batch: &BatchInfo) -> bool {
        if self.stage == Stage::BeforeLostResponse && self.reached(batch, 75) {
            self.stage = Stage::Done;
            self.note(format!(
                "collector commits a batch of {} events, then drops the connection unanswered: \
                 the client will send it again",
                batch.events
            ));
            return true;
        }
        false
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> CliResult<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("outbox-demo-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| {
            CliError::failure(format!(
                "cannot create a temporary directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the tracking thread did.
struct Tracked {
    ids: Vec<String>,
    poison_id: Option<String>,
    error: Option<String>,
}

fn track_all(client: Client, total: u64, counter: Arc<AtomicU64>) -> Tracked {
    let poison_at = total / 2;
    let mut ids = Vec::with_capacity(total as usize);
    let mut poison_id = None;
    let start = Instant::now();
    let chunks = 100u64;
    for i in 0..total {
        let mut props = json!({ "i": i, "plan": if i % 3 == 0 { "pro" } else { "free" } });
        if i == poison_at {
            props[POISON_FIELD] = Value::Bool(true);
        }
        let event = Event::track("Demo Event")
            .user_id(format!("user-{}", i % 97))
            .properties(props);
        match client.track(event) {
            Ok(receipt) => {
                let id = receipt.into_message_id();
                if i == poison_at {
                    poison_id = Some(id.clone());
                }
                ids.push(id);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                return Tracked {
                    ids,
                    poison_id,
                    error: Some(format!("tracking event {i} failed: {e}")),
                }
            }
        }
        // Spread tracking over TRACK_OVER, in 100 steps.
        if (i + 1) % (total / chunks).max(1) == 0 {
            let step = (i + 1) * chunks / total;
            let due = start + TRACK_OVER.mul_f64(step as f64 / chunks as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
    }
    Tracked {
        ids,
        poison_id,
        error: None,
    }
}

/// Live lines: timestamped notes above the progress display.
struct Narrator {
    start: Instant,
    progress: Progress,
}

impl Narrator {
    fn say(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.progress.println(&format!("{t:>6.1}s  {line}"));
    }
}

/// Runs `outbox demo`.
pub fn run(args: DemoArgs) -> CliResult {
    let total = u64::from(args.events);
    let dir = TempDir::new()?;
    let db = dir.0.join("demo.db");

    // The collector, with its script.
    let script = Arc::new(Script {
        down: AtomicBool::new(false),
        outage_over: AtomicBool::new(false),
    });
    let (notes_tx, notes_rx) = mpsc::channel::<String>();
    let faults = DemoFaults {
        script: Arc::clone(&script),
        total,
        stage: Stage::Before503,
        notes: notes_tx.clone(),
    };
    let first_400 = AtomicBool::new(false);
    let log_tx = Mutex::new(notes_tx);
    let log: Logger = Box::new(move |b: &collect::BatchLog| {
        if b.status == Some(400) && !first_400.swap(true, Ordering::SeqCst) {
            if let Ok(tx) = log_tx.lock() {
                let _ = tx.send(
                    "collector answers 400 Bad Request: a batch holds the poison event; \
                     the client halves the batch until it finds it"
                        .into(),
                );
            }
        }
    });
    let config = collect::Config {
        key: Some(KEY.into()),
        reject_field: Some(POISON_FIELD.into()),
        live_events: Some(collect::live::LIVE_EVENTS),
        ..collect::Config::default()
    };
    let collector = Collector::start("127.0.0.1:0", config, Box::new(faults), Some(log))
        .map_err(|e| CliError::failure(format!("cannot start the demo collector: {e}")))?;

    // The client: a queue large enough for every event, batches small
    // enough that every scripted fault meets a batch (at least 20 of them),
    // quick HTTP timeouts.
    let batch_events = u32::try_from((total / 20).clamp(10, 500)).unwrap_or(500);
    let client = Client::builder()
        .path(&db)
        .http(
            HttpConfig::new(collector.url(), KEY)
                .timeouts(Duration::from_secs(2), Duration::from_secs(10)),
        )
        .configure(|c| {
            c.max_queue_events(u32::MAX)
                .max_queue_bytes(512 * 1024 * 1024)
                .max_batch_events(batch_events)
        })
        .drop_flush_timeout(Duration::ZERO)
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the demo client: {e}")))?;

    let outcome = drive(&client, &collector, &script, &notes_rx, total);
    let dead_letters = client.dead_letters().unwrap_or_default();
    let final_stats = client.stats().ok();
    let _ = client.shutdown(Duration::from_secs(1));
    let summary = collector.summary();
    let received = collector.message_ids();
    drop(collector);
    drop(dir);

    let run = outcome?;
    let stats = final_stats.ok_or_else(|| CliError::failure("the demo client stopped"))?;
    let poison_id = run.tracked.poison_id.clone().unwrap_or_default();

    // The checks.
    let mut problems = Vec::new();
    if let Some(e) = &run.tracked.error {
        problems.push(e.clone());
    }
    let expected: HashSet<&str> = run
        .tracked
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| *id != poison_id)
        .collect();
    let missing = expected
        .iter()
        .filter(|id| !received.contains(**id))
        .count();
    let unexpected = received
        .iter()
        .filter(|id| !expected.contains(id.as_str()))
        .count();
    if run.tracked.ids.len() as u64 != total {
        problems.push(format!(
            "{} of {total} events tracked",
            run.tracked.ids.len()
        ));
    }
    if missing > 0 {
        problems.push(format!("{missing} events never arrived"));
    }
    if unexpected > 0 {
        problems.push(format!(
            "{unexpected} events arrived that should not have (the poison one?)"
        ));
    }
    if summary.accepted != expected.len() as u64 {
        problems.push(format!(
            "the collector accepted {} events, expected {}",
            summary.accepted,
            expected.len()
        ));
    }
    let dead_ids: Vec<String> = dead_letters
        .iter()
        .map(|d| {
            serde_json::from_slice::<Value>(&d.payload)
                .ok()
                .and_then(|v| v.get("messageId")?.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    if dead_ids != [poison_id.clone()] {
        problems.push(format!(
            "the dead-letter table holds {:?}, expected only the poison event {poison_id}",
            dead_ids
        ));
    }
    let dropped = stats.core.dropped();
    if dropped > 0 {
        problems.push(format!("{dropped} events were dropped"));
    }
    if let Some(timeout) = run.timed_out {
        problems.push(timeout);
    }

    // The report.
    let elapsed = run.elapsed.as_secs_f64();
    let rate = if elapsed > 0.0 {
        total as f64 / elapsed
    } else {
        0.0
    };
    let status = dead_letters.first().map_or(0, |d| d.status);
    let rows: Vec<(&str, String, String)> = vec![
        (
            "tracked",
            total.to_string(),
            "stored durably before any upload".into(),
        ),
        (
            "delivered, unique",
            summary.accepted.to_string(),
            "distinct messageIds the collector holds".into(),
        ),
        (
            "duplicates absorbed",
            summary.duplicates.to_string(),
            "re-sent after the lost response; deduplicated by messageId".into(),
        ),
        (
            "rejected",
            dead_letters.len().to_string(),
            if poison_id.is_empty() {
                "-".into()
            } else {
                format!("poison event {poison_id} ({status}), in the dead-letter table")
            },
        ),
        ("dropped", dropped.to_string(), "nothing is lost".into()),
        (
            "retries",
            stats.core.retries.to_string(),
            format!(
                "{} refused connections, {} injected failures, {} lost response",
                summary.refused, summary.injected_failures, summary.dropped_responses
            ),
        ),
        (
            "elapsed",
            format!("{elapsed:.1} s"),
            "first event tracked to last one settled".into(),
        ),
        (
            "events/s",
            format!("{rate:.0}"),
            "including every backoff".into(),
        ),
    ];
    out_line("");
    out_line(&format!("outbox demo: {total} events through an outage, 503s, a 429, a poison event and a lost response"));
    for line in table(&rows) {
        out_line(&line);
    }
    if problems.is_empty() {
        out_line(&format!(
            "PASS: all {} events but the poison one arrived exactly once; the poison event is in the dead-letter table.",
            total
        ));
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "demo FAILED: {}",
            problems.join("; ")
        )))
    }
}

/// A bordered three-column table.
fn table(rows: &[(&str, String, String)]) -> Vec<String> {
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0);
    let rule = format!(
        "+-{}-+-{}-+-{}-+",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(w2)
    );
    let mut out = vec![rule.clone()];
    for (k, v, note) in rows {
        out.push(format!("| {k:<w0$} | {v:>w1$} | {note:<w2$} |"));
    }
    out.push(rule);
    out
}

/// How the drive went.
struct Run {
    tracked: Tracked,
    elapsed: Duration,
    timed_out: Option<String>,
}

/// Tracks in the background, plays the outage, narrates, and waits until
/// every event is settled.
fn drive(
    client: &Client,
    collector: &Collector,
    script: &Script,
    notes: &Receiver<String>,
    total: u64,
) -> CliResult<Run> {
    let start = Instant::now();
    let mut n = Narrator {
        start,
        progress: Progress::new("demo", total),
    };
    let client_notes = client.notifications();
    n.say(&format!(
        "tracking {total} events in the background; collector on {} (key checked, dedup by messageId)",
        collector.url()
    ));
    if let Some(page) = collector.page_url() {
        n.say(&format!(
            "live events page: {page} (open it in a browser while the demo runs)"
        ));
    }
    let counter = Arc::new(AtomicU64::new(0));
    let tracker = {
        let client = client.clone();
        let counter = Arc::clone(&counter);
        thread::Builder::new()
            .name("demo-tracker".into())
            .spawn(move || track_all(client, total, counter))
            .map_err(|e| CliError::failure(format!("cannot start the tracking thread: {e}")))?
    };

    let mut outage_started: Option<Instant> = None;
    let mut outage_noticed = false;
    let mut timed_out = None;
    let mut tracker = Some(tracker);
    let mut tracked = None;
    loop {
        let stats = client
            .stats()
            .map_err(|e| CliError::failure(format!("the demo client stopped: {e}")))?;
        let s = &stats.core;
        let accepted = collector.summary().accepted;
        let sent_by_tracker = counter.load(Ordering::Relaxed);

        // The outage: once 15 % has arrived.
        match outage_started {
            None if accepted * 100 >= total * 15 => {
                script.down.store(true, Ordering::SeqCst);
                outage_started = Some(Instant::now());
                n.say("network down: the collector is unreachable; tracking goes on, every event is stored");
            }
            Some(t) if !outage_noticed && t.elapsed() >= OUTAGE_NOTICED_AFTER => {
                outage_noticed = true;
                let _ = client.set_network_available(false);
                n.say("the client is told the network is gone: uploads pause");
            }
            Some(t) if !script.outage_over.load(Ordering::SeqCst) && t.elapsed() >= OUTAGE => {
                script.down.store(false, Ordering::SeqCst);
                script.outage_over.store(true, Ordering::SeqCst);
                let _ = client.set_network_available(true);
                n.say("network back: the client uploads at once, without waiting out its backoff");
            }
            _ => {}
        }

        for note in notes.try_iter() {
            n.say(&note);
        }
        for note in client_notes.try_iter() {
            match note {
                Notification::RetryScheduled {
                    attempt,
                    delay,
                    cause,
                } => n.say(&format!(
                    "client: attempt {attempt} failed ({}); next try in {:.1} s",
                    match cause {
                        RetryCause::Transport => "no answer",
                        RetryCause::Server => "server error",
                        _ => "local read error",
                    },
                    delay.as_secs_f64()
                )),
                Notification::Rejected { seq, status, .. } => n.say(&format!(
                    "client: event #{seq} rejected for good ({status}) -> dead-letter table; the rest go on"
                )),
                Notification::Dropped { first, last, .. } => {
                    n.say(&format!("client: events #{first}..#{last} DROPPED"))
                }
                _ => {}
            }
        }

        let settled = s.delivered + s.rejected + s.dropped();
        n.progress.update(
            settled,
            format!(
                "tracked {sent_by_tracker} · stored {} · delivered {} · retries {} · pending {}",
                s.tracked, s.delivered, s.retries, s.pending_events
            ),
        );

        if let Some(handle) = tracker.take_if(|h| h.is_finished()) {
            let t = handle.join().unwrap_or_else(|_| Tracked {
                ids: Vec::new(),
                poison_id: None,
                error: Some("the tracking thread failed".into()),
            });
            n.say(&format!("all {} events tracked", t.ids.len()));
            let failed = t.error.is_some();
            tracked = Some(t);
            if failed {
                break;
            }
        }
        if tracked.is_some() && s.pending_events == 0 && s.tracked >= total {
            n.progress.finish(
                settled,
                format!(
                    "tracked {total} · stored {} · delivered {} · retries {} · pending 0",
                    s.tracked, s.delivered, s.retries
                ),
            );
            break;
        }
        if start.elapsed() > GIVE_UP_AFTER {
            timed_out = Some(format!(
                "not settled after {} s ({} events pending)",
                GIVE_UP_AFTER.as_secs(),
                s.pending_events
            ));
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    // Should we have given up while tracking goes on, wait for it to end.
    if let Some(handle) = tracker {
        script.down.store(false, Ordering::SeqCst);
        tracked = handle.join().ok();
    }
    Ok(Run {
        tracked: tracked.unwrap_or(Tracked {
            ids: Vec::new(),
            poison_id: None,
            error: Some("the tracking thread failed".into()),
        }),
        elapsed,
        timed_out,
    })
}
