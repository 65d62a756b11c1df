//! Row `track-rss`: peak memory of a Client while an application tracks
//! 100 000 events and they stay pending (manual flush, nothing sent).
//!
//! Like the rss row, a fresh child process (this binary again, with the
//! hidden `__track` subcommand) so that its peak RSS (`VmHWM`) is the
//! Client's alone: it opens a Client on an empty database, tracks the
//! events one by one (each built just before its `track`, as an application
//! does; no vector of them is held), syncs, and reports its peak RSS and
//! the peak right after opening. I is the median of three children.

use std::path::Path;
use std::process::Command;

use outbox_std::{Client, FlushMode};

use super::events::event;
use super::restart::vmhwm_kb;
use super::table::{grouped, Line, Ratios};
use super::{median, Options};

/// Events tracked and held (the judged count, also with `--quick`).
const COUNT: u64 = 100_000;
/// Children per figure.
const CHILDREN: usize = 3;

/// What a child measured: peak RSS after opening and after tracking.
struct Peaks {
    opened_kb: u64,
    tracked_kb: u64,
}

/// The hidden `__track <db> <count>` subcommand: track `count` events into
/// a fresh Client on `db` and hold them; prints
/// `track opened_kb=.. vmhwm_kb=.. pending=..`.
pub fn track_child(db: &Path, count: u64) -> Result<(), String> {
    let client = Client::builder()
        .path(db)
        .uploader(super::accept_all)
        .flush_mode(FlushMode::Manual)
        .configure(|c| {
            c.max_queue_events(u32::try_from(count + 1000).unwrap_or(u32::MAX))
                .max_queue_bytes(u64::MAX / 2)
        })
        .build()
        .map_err(|e| format!("a Client for {count} events: {e}"))?;
    let opened = vmhwm_kb().ok_or("no VmHWM in /proc/self/status")?;
    for i in 0..count {
        client
            .track(event(i as usize))
            .map_err(|e| format!("track: {e}"))?;
    }
    client.sync().map_err(|e| format!("sync: {e}"))?;
    let pending = client
        .stats()
        .map_err(|e| e.to_string())?
        .core
        .pending_events;
    let hwm = vmhwm_kb().ok_or("no VmHWM in /proc/self/status")?;
    client.close().map_err(|e| e.to_string())?;
    if u64::from(pending) != count {
        return Err(format!("{pending} pending, expected {count}"));
    }
    println!("track opened_kb={opened} vmhwm_kb={hwm} pending={pending}");
    Ok(())
}

fn parse_child(out: &str) -> Option<Peaks> {
    let line = out.lines().find(|l| l.starts_with("track "))?;
    let mut opened_kb = None;
    let mut tracked_kb = None;
    for kv in line.split_whitespace().skip(1) {
        match kv.split_once('=') {
            Some(("opened_kb", v)) => opened_kb = v.parse().ok(),
            Some(("vmhwm_kb", v)) => tracked_kb = v.parse().ok(),
            _ => {}
        }
    }
    Some(Peaks {
        opened_kb: opened_kb?,
        tracked_kb: tracked_kb?,
    })
}

fn run_child(db: &Path) -> Result<Peaks, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg("__track")
        .arg(db)
        .arg(COUNT.to_string())
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

/// Run the row; sets I.
pub fn run(_o: &Options, ratios: &mut Ratios) -> Vec<Line> {
    let what = format!(
        "Client tracking {} events, held: peak RSS",
        grouped(COUNT as f64)
    );
    let mut peaks = Vec::new();
    for i in 0..CHILDREN {
        let dir = tempfile::tempdir().expect("tempdir");
        match run_child(&dir.path().join(format!("track-{i}.db"))) {
            Ok(p) => peaks.push(p),
            Err(e) => return vec![Line::not_measured("trackrss", what, e)],
        }
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    let tracked = median(peaks.iter().map(|p| mb(p.tracked_kb)).collect());
    let opened = median(peaks.iter().map(|p| mb(p.opened_kb)).collect());
    ratios.rss_tracking_100k_mb = Some(tracked);
    vec![Line::measured(
        "trackrss",
        what,
        format!("{tracked:.1} MB"),
        format!("VmHWM of the child, median of {CHILDREN}; {opened:.1} MB right after opening"),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_child_prints() {
        let p = parse_child("noise\ntrack opened_kb=6000 vmhwm_kb=15000 pending=100000\n").unwrap();
        assert_eq!((p.opened_kb, p.tracked_kb), (6000, 15000));
        assert!(parse_child("track vmhwm_kb=1").is_none());
    }
}
