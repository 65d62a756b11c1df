//! Row `store`: how fast events become durable in SQLite.
//!
//! Contenders, alternated within each repetition, each on a fresh database:
//! - outbox's Client, `track` for every event then one `sync` (group
//!   commit), with `synchronous` NORMAL and FULL; no uploads (manual flush);
//! - the ceiling: raw rusqlite inserts of the same payloads into
//!   `(seq INTEGER PRIMARY KEY, payload BLOB)`, one transaction per 1000
//!   rows, WAL and NORMAL, no outbox code around them;
//! - the seed SDK's way: one autocommit INSERT per event, WAL and FULL
//!   (WAL is kind to it: one fsync per commit instead of a rollback
//!   journal's several).
//!
//! A = outbox NORMAL / ceiling; B = outbox FULL / per-event autocommit.
//!
//! A context line times `Event::into_payload` alone (validation, envelope,
//! serialisation, and dropping the event; what `track` does on the
//! caller's thread) against the ceiling's cost per insert.

use std::path::Path;

use outbox_std::sqlite::Synchronous;
use outbox_std::{Client, Event, FlushMode};
use rusqlite::{params, Connection};

use super::events::{events, mean_size, payloads};
use super::table::{grouped, Line, Ratios};
use super::{median, rate, timed, Options};

/// Events per repetition for the group-commit contenders and the ceiling.
fn batch_count(o: &Options) -> usize {
    if o.quick {
        20_000
    } else {
        100_000
    }
}

/// Events per repetition for per-event autocommit (an fsync each).
fn autocommit_count(o: &Options) -> usize {
    if o.quick {
        300
    } else {
        2_000
    }
}

/// outbox: track everything, then one sync; events per second.
fn outbox(dir: &Path, sync: Synchronous, mut events: Vec<Event>) -> f64 {
    let n = events.len();
    let client = Client::builder()
        .path(dir.join(format!("outbox-{sync:?}.db")))
        .uploader(super::accept_all)
        .flush_mode(FlushMode::Manual)
        .synchronous(sync)
        .configure(|c| c.max_queue_events(n as u32))
        .build()
        .expect("open the bench Client");
    let ((), took) = timed(|| {
        // Drained, so the 6 MB vector itself is freed after the clock
        // stops (freeing it makes glibc consolidate every small free chunk).
        for e in events.drain(..) {
            client.track(e).expect("track");
        }
        client.sync().expect("sync");
    });
    let stats = client.stats().expect("stats").core;
    assert_eq!(stats.pending_events as usize, n, "every event is pending");
    assert_eq!(stats.dropped(), 0, "nothing dropped");
    client.close().expect("close");
    rate(n, took)
}

fn connection(path: &Path, synchronous: &str) -> Connection {
    let conn = Connection::open(path).expect("open the bench database");
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         CREATE TABLE events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL);"
    ))
    .expect("schema");
    conn
}

/// The ceiling: one transaction per 1000 rows.
fn ceiling(dir: &Path, payloads: &[Vec<u8>]) -> f64 {
    let mut conn = connection(&dir.join("ceiling.db"), "NORMAL");
    let ((), took) = timed(|| {
        for (c, chunk) in payloads.chunks(1000).enumerate() {
            let tx = conn.transaction().expect("begin");
            {
                let mut stmt = tx
                    .prepare_cached("INSERT INTO events (seq, payload) VALUES (?1, ?2)")
                    .expect("prepare");
                for (i, p) in chunk.iter().enumerate() {
                    stmt.execute(params![(c * 1000 + i) as i64, p])
                        .expect("insert");
                }
            }
            tx.commit().expect("commit");
        }
    });
    rate(payloads.len(), took)
}

/// The seed SDK's way: one autocommit INSERT per event, FULL.
fn autocommit(dir: &Path, payloads: &[Vec<u8>]) -> f64 {
    let conn = connection(&dir.join("autocommit.db"), "FULL");
    let ((), took) = timed(|| {
        let mut stmt = conn
            .prepare_cached("INSERT INTO events (seq, payload) VALUES (?1, ?2)")
            .expect("prepare");
        for (i, p) in payloads.iter().enumerate() {
            stmt.execute(params![i as i64, p]).expect("insert");
        }
    });
    rate(payloads.len(), took)
}

/// Nanoseconds per `Event::into_payload` (the event and its payload
/// dropped inside the clock, as `track` drops them).
fn into_payload_ns(events: Vec<Event>) -> f64 {
    let n = events.len();
    let ((), took) = timed(|| {
        for e in events {
            std::hint::black_box(e.into_payload(32 * 1024).expect("valid"));
        }
    });
    took.as_secs_f64() * 1e9 / n.max(1) as f64
}

/// Run the row; sets A and B.
pub fn run(o: &Options, ratios: &mut Ratios) -> Vec<Line> {
    let n = batch_count(o);
    let all = events(n);
    let all_payloads = payloads(&all);
    let few_payloads = &all_payloads[..autocommit_count(o).min(n)];
    let (mut normal, mut full, mut ceil, mut auto) = (vec![], vec![], vec![], vec![]);
    let mut encode = vec![];
    for _ in 0..o.reps() {
        encode.push(into_payload_ns(all.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        normal.push(outbox(dir.path(), Synchronous::Normal, all.clone()));
        ceil.push(ceiling(dir.path(), &all_payloads));
        full.push(outbox(dir.path(), Synchronous::Full, all.clone()));
        auto.push(autocommit(dir.path(), few_payloads));
    }
    let spread = |xs: &[f64]| {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(0.0, f64::max);
        format!("{} reps, {}..{}", xs.len(), grouped(lo), grouped(hi))
    };
    let size = mean_size(&all_payloads);
    let mut lines = vec![
        Line::measured(
            "store",
            "outbox Client, group commit, NORMAL",
            format!("{} ev/s", grouped(median(normal.clone()))),
            format!("{n} events of ~{size} B; {}", spread(&normal)),
        ),
        Line::measured(
            "store",
            "ceiling: rusqlite, tx per 1000, NORMAL",
            format!("{} ev/s", grouped(median(ceil.clone()))),
            spread(&ceil),
        ),
        Line::measured(
            "store",
            "outbox Client, group commit, FULL",
            format!("{} ev/s", grouped(median(full.clone()))),
            spread(&full),
        ),
        Line::measured(
            "store",
            "seed SDK: autocommit INSERT per event, FULL",
            format!("{} ev/s", grouped(median(auto.clone()))),
            format!("{} events; {}", few_payloads.len(), spread(&auto)),
        ),
    ];
    let insert_ns: Vec<f64> = ceil.iter().map(|r| 1e9 / r).collect();
    let encode_vs_insert: Vec<f64> = encode.iter().zip(&insert_ns).map(|(e, i)| e / i).collect();
    lines.push(Line::measured(
        "store",
        "Event::into_payload alone",
        format!("{:.0} ns/event", median(encode.clone())),
        format!(
            "context: {:.2} x a ceiling insert ({:.0} ns); {}",
            median(encode_vs_insert),
            median(insert_ns),
            spread(&encode)
        ),
    ));
    // Ratios of the medians of per-repetition ratios: each repetition's
    // contenders ran back to back, so they saw the same machine.
    let a: Vec<f64> = normal.iter().zip(&ceil).map(|(x, y)| x / y).collect();
    let b: Vec<f64> = full.iter().zip(&auto).map(|(x, y)| x / y).collect();
    ratios.store_vs_ceiling = Some(median(a));
    ratios.store_vs_autocommit = Some(median(b));
    lines
}
