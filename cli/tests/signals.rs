//! Issue 17 item 5: a signal during `outbox send` never loses the place.
//! SIGINT and SIGTERM stop the reading, commit, and name the last line
//! stored (exit 130 / 143); SIGXFSZ (a file-size limit, `ulimit -f`) is a
//! storage failure that names the last line known stored (exit 1). Each
//! test then checks the store: every line the message says is stored is
//! there, and flush delivers exactly those.

#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The number right after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let at = text.find(marker)? + marker.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The number right before `marker` in `text`.
fn number_before(text: &str, marker: &str) -> Option<u64> {
    let at = text.find(marker)?;
    text[..at].rsplit(' ').next()?.parse().ok()
}

/// Polls `status` until `pendingEvents` reaches `at_least` (bounded by [`WAIT`]).
fn wait_for_pending(db: &Path, at_least: u64) {
    let start = Instant::now();
    loop {
        // Until send has created the database, status says there is none.
        let out = run(&["status", "--json", "--db", db.to_str().unwrap()]);
        let pending = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["pendingEvents"].as_u64())
            .unwrap_or(0);
        if pending >= at_least {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "send stored only {pending} events of {at_least}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a send fed by a pipe that stays open, gives it 300 lines, waits
/// until the first 256 are committed, sends `sig`, and checks the exit code,
/// the message and the store.
fn signal_while_reading(sig: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (input, ids) = events(&format!("sig{sig}"), 300);
    let mut child = outbox()
        .args(["send", "--endpoint", &dead_url(), "--db"])
        .arg(&db)
        .args(["--flush-mode", "manual"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // `send` commits every 256 events; the pipe stays open (a producer that
    // is still running), so it is reading when the signal comes.
    wait_for_pending(&db, 256);
    signal(&child, sig);
    let status = wait_with_bound(&mut child, WAIT);
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(code),
        "exit status {status:?} after SIG{sig}; stderr: {stderr:?}"
    );
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("outbox: "), "{stderr}");
    assert!(last.contains(&format!("SIG{sig}")), "{last}");
    assert!(last.contains("outbox flush"), "no resume hint: {last}");
    let n = number_after(last, "line ").unwrap_or_else(|| panic!("no line number in {last:?}"))
        as usize;
    assert!((256..=300).contains(&n), "{last}");
    assert!(
        last.contains(&format!("tail -n +{}", n + 1)),
        "no resume hint: {last}"
    );
    // Every line it says it stored is stored, and no other.
    assert_eq!(status_json(&db)["pendingEvents"], n as u64, "{last}");
    let out = dir.path().join("got.jsonl");
    let _collector = flush_into(&db, &out);
    assert_eq!(ids_in(&out), ids[..n]);
}

#[test]
fn sigterm_while_reading_commits_and_names_the_last_line_stored() {
    signal_while_reading("TERM", 143);
}

#[test]
fn sigint_while_reading_commits_and_names_the_last_line_stored() {
    signal_while_reading("INT", 130);
}

#[test]
fn sigterm_while_waiting_for_delivery_says_everything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (input, ids) = events("wait", 50);
    let input_file = dir.path().join("in.jsonl");
    std::fs::write(&input_file, &input).unwrap();
    // A collector that fails every batch: send has read and stored all the
    // input and is waiting for delivery.
    let mut failing = Collect::start(&["--fail-rate", "1"]);
    let mut child = outbox()
        .args(["send", "--endpoint", &failing.url(), "--db"])
        .arg(&db)
        .arg("--input")
        .arg(&input_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    failing.wait_for("batch 1 from");
    signal(&child, "TERM");
    let status = wait_with_bound(&mut child, WAIT);
    drop(failing);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}; stderr: {stderr:?}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains("SIGTERM"), "{last}");
    assert!(last.contains("50 events still queued"), "{last}");
    assert!(last.contains("outbox flush"), "{last}");
    let out = dir.path().join("got.jsonl");
    let _collector = flush_into(&db, &out);
    assert_eq!(sorted(ids_in(&out)), sorted(ids));
}

#[test]
fn a_file_size_limit_stops_send_with_the_last_line_known_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    // 4000 events of about 500 bytes: far more than the limit lets in.
    let pad = "p".repeat(400);
    let mut input = String::new();
    let mut ids = Vec::new();
    for i in 0..4000 {
        let id = format!("fsz-{i}");
        input.push_str(
            &serde_json::json!({"event": "E", "userId": "u", "messageId": id,
                                "properties": {"pad": pad}})
            .to_string(),
        );
        input.push('\n');
        ids.push(id);
    }
    let input_file = dir.path().join("in.jsonl");
    std::fs::write(&input_file, &input).unwrap();
    // `ulimit -f 2000`: no file over 1 024 000 bytes (POSIX sh counts 512-byte
    // blocks); the first write past it raises SIGXFSZ.
    let res = run_cmd(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 2000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_outbox"))
            .args(["send", "--no-wait", "--flush-mode", "manual"])
            .args(["--endpoint", &dead_url(), "--db"])
            .arg(&db)
            .arg("--input")
            .arg(&input_file)
            .env_remove("OUTBOX_DB")
            .env_remove("OUTBOX_KEY")
            .stdin(Stdio::null()),
    );
    let stderr = String::from_utf8_lossy(&res.stderr).to_string();
    assert_eq!(
        res.status.code(),
        Some(1),
        "exit status {:?}; stderr: {stderr:?}",
        res.status
    );
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("outbox: "), "{stderr}");
    assert!(last.contains("file-size limit"), "{last}");
    // Either "line N is the first line not stored" or "line N is the last
    // line known stored": the lines before are stored either way.
    let known = match number_before(last, " is the first line not stored") {
        Some(first) => first - 1,
        None => number_before(last, " is the last line known stored")
            .unwrap_or_else(|| panic!("no line named in {last:?}")),
    } as usize;
    assert!(known > 0 && known < 4000, "{last}");
    let out = dir.path().join("got.jsonl");
    let _collector = flush_into(&db, &out);
    let got = ids_in(&out);
    assert!(
        got.len() >= known,
        "{} delivered, {known} said stored",
        got.len()
    );
    assert_eq!(got[..known], ids[..known], "{last}");
}
