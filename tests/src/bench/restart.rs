//! Rows `restart` and `rss`: a std Client opened on a database that already
//! holds millions of pending events (10 million; 1 million with `--quick`).
//!
//! Each measurement runs in a fresh child process (this binary again, with
//! the hidden `__hold` subcommand), so the peak RSS it reads from
//! `/proc/self/status` (`VmHWM`) belongs to that Client alone and no earlier
//! row's allocations count. The child times `build()` plus the first
//! `track_durable` (open, restore, and the first event committed), then
//! reports its peak RSS. G and H are the medians of three children.

use std::path::Path;
use std::process::Command;
use std::time::Instant as StdInstant;

use outbox_core::Store;
use outbox_std::sqlite::{SqliteOptions, SqliteStore};
use outbox_std::{Client, FlushMode};

use super::events::{event, events, payloads};
use super::table::{grouped, Line, Ratios};
use super::{median, Options};

/// Children per figure.
const CHILDREN: usize = 3;

fn judged_count(o: &Options) -> u64 {
    if o.quick {
        1_000_000
    } else {
        10_000_000
    }
}

/// Fill a fresh store with `count` pending events (real ~300-byte payloads,
/// 1000 distinct ones repeated), committed every 100 000.
fn fill(path: &Path, count: u64) {
    let samples = payloads(&events(1000));
    let mut store = SqliteStore::open(path, SqliteOptions::default()).expect("open the fill");
    for seq in 0..count {
        store
            .append(seq, &samples[(seq % 1000) as usize])
            .expect("append");
        if (seq + 1).is_multiple_of(100_000) {
            store.sync().expect("commit");
        }
    }
    store.sync().expect("commit");
}

/// The Client the child opens, on `db`, configured to hold `count`
/// pending events.
fn client(db: &Path, count: u64) -> Result<Client, String> {
    Client::builder()
        .path(db)
        .uploader(super::accept_all)
        .flush_mode(FlushMode::Manual)
        .configure(|c| {
            c.max_queue_events(u32::try_from(count + 1000).unwrap_or(u32::MAX))
                .max_queue_bytes(u64::MAX / 2)
        })
        .build()
        .map_err(|e| format!("a Client for {count} pending events: {e}"))
}

/// Whether a Client accepts a queue of `count` events (on an empty file).
fn accepts(count: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let c = client(&dir.path().join("probe.db"), count)?;
    c.close().map_err(|e| e.to_string())?;
    Ok(())
}

/// What a child measured.
struct Held {
    open_ms: f64,
    vmhwm_kb: u64,
}

fn parse_child(out: &str) -> Option<Held> {
    let line = out.lines().find(|l| l.starts_with("hold "))?;
    let mut open_ms = None;
    let mut vmhwm_kb = None;
    for kv in line.split_whitespace().skip(1) {
        match kv.split_once('=') {
            Some(("open_ms", v)) => open_ms = v.parse().ok(),
            Some(("vmhwm_kb", v)) => vmhwm_kb = v.parse().ok(),
            _ => {}
        }
    }
    Some(Held {
        open_ms: open_ms?,
        vmhwm_kb: vmhwm_kb?,
    })
}

fn run_child(db: &Path, count: u64) -> Result<Held, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg("__hold")
        .arg(db)
        .arg(count.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_child(&text).ok_or_else(|| format!("child said nothing usable: {text}"))
}

/// Peak resident set of this process, from `/proc/self/status`.
pub(super) fn vmhwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The hidden `__hold <db> <count>` subcommand: open a Client on `db`
/// (which holds `count` pending events), track one event durably, print
/// `hold open_ms=.. vmhwm_kb=.. pending=..`.
pub fn hold_child(db: &Path, count: u64) -> Result<(), String> {
    let start = StdInstant::now();
    let client = client(db, count)?;
    client
        .track_durable(event(0))
        .map_err(|e| format!("track: {e}"))?;
    let open_ms = start.elapsed().as_secs_f64() * 1000.0;
    let pending = client
        .stats()
        .map_err(|e| e.to_string())?
        .core
        .pending_events;
    let hwm = vmhwm_kb().ok_or("no VmHWM in /proc/self/status")?;
    client.close().map_err(|e| e.to_string())?;
    if u64::from(pending) != count + 1 {
        return Err(format!("{pending} pending, expected {}", count + 1));
    }
    println!("hold open_ms={open_ms:.1} vmhwm_kb={hwm} pending={pending}");
    Ok(())
}

/// Run the rows (both come from the same children); sets G and H when the
/// count is the judged one.
pub fn run(o: &Options, ratios: &mut Ratios) -> Vec<Line> {
    let count = o.restart_events.unwrap_or_else(|| judged_count(o));
    let judged = count == judged_count(o);
    let what = format!("Client on {} pending events", grouped(count as f64));
    // Before filling millions of rows: can a Client hold that many?
    if let Err(why) = accepts(count) {
        return vec![
            Line::not_measured("restart", format!("{what}: open + first track"), &why),
            Line::not_measured("rss", format!("{what}: peak RSS"), why),
        ];
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("restart.db");
    let fill_start = StdInstant::now();
    fill(&db, count);
    let fill_s = fill_start.elapsed().as_secs_f64();
    let mut held = Vec::new();
    // Each child adds its one event, so child `i` opens on `count + i`.
    for i in 0..CHILDREN as u64 {
        match run_child(&db, count + i) {
            Ok(h) => held.push(h),
            Err(e) => {
                return vec![
                    Line::not_measured("restart", format!("{what}: open + first track"), &e),
                    Line::not_measured("rss", format!("{what}: peak RSS"), e),
                ]
            }
        }
    }
    let ms = median(held.iter().map(|h| h.open_ms).collect());
    let mb = median(held.iter().map(|h| h.vmhwm_kb as f64 / 1024.0).collect());
    if judged {
        ratios.restart_10m_ms = Some(ms);
        ratios.rss_10m_mb = Some(mb);
    }
    let note = if judged {
        ""
    } else {
        " (not the judged count)"
    };
    vec![
        Line::measured(
            "restart",
            format!("{what}: open + first track"),
            format!("{ms:.0} ms"),
            format!("median of {CHILDREN} child processes; fill took {fill_s:.0} s{note}"),
        ),
        Line::measured(
            "rss",
            format!("{what}: peak RSS"),
            format!("{mb:.1} MB"),
            format!("VmHWM of the child{note}"),
        ),
    ]
}
