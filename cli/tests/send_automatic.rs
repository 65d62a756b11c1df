//! `outbox send`'s automatic events (issue 23): `--app-version` tracks
//! `Application Installed` at the first run on a database and
//! `Application Updated` when the version changes; `--no-lifecycle-events`
//! turns them off; without a version nothing is tracked by itself.

mod common;

use std::path::Path;

use common::*;

fn send(c: &Collect, db: &Path, input: &Path, extra: &[&str]) {
    let url = c.url();
    let mut args = vec![
        "send",
        "--endpoint",
        &url,
        "--key",
        "k",
        "--db",
        db.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let res = run(&args);
    assert!(
        res.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

fn arrived(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn names(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn app_version_tracks_installed_then_updated_and_the_flag_turns_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, r#"{"event":"A","userId":"u"}"#).unwrap();
    let c = Collect::start(&["--key", "k", "--out", out.to_str().unwrap()]);

    send(
        &c,
        &db,
        &input,
        &["--app-version", "1.0", "--app-build", "7"],
    );
    send(
        &c,
        &db,
        &input,
        &["--app-version", "1.0", "--app-build", "7"],
    );
    send(&c, &db, &input, &["--app-version", "1.1"]);
    // Turned off: the change to 2.0 is not reported.
    send(
        &c,
        &db,
        &input,
        &["--app-version", "2.0", "--no-lifecycle-events"],
    );
    // No version: nothing by itself.
    send(&c, &db, &input, &[]);
    let events = arrived(&out);
    assert_eq!(
        names(&events),
        [
            "Application Installed",
            "A",
            "A",
            "Application Updated",
            "A",
            "A",
            "A"
        ]
    );
    assert_eq!(events[0]["properties"]["version"], "1.0");
    assert_eq!(events[0]["properties"]["build"], "7");
    let updated = &events[3]["properties"];
    assert_eq!(updated["version"], "1.1");
    assert_eq!(updated["previous_version"], "1.0");
    assert_eq!(updated["previous_build"], "7");

    // A build needs a version: a usage error.
    let res = run(&["send", "--app-build", "3", "--endpoint", &c.url()]);
    assert_eq!(res.status.code(), Some(2));
}

#[test]
fn foreground_makes_the_run_a_session_and_no_sessions_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"event\":\"A\",\"userId\":\"u\"}\n{\"event\":\"B\",\"userId\":\"u\"}\n",
    )
    .unwrap();
    let c = Collect::start(&["--key", "k", "--out", out.to_str().unwrap()]);

    send(&c, &db, &input, &["--foreground", "--app-version", "1.0"]);
    let events = arrived(&out);
    assert_eq!(
        names(&events),
        [
            "Application Installed",
            "session_start",
            "Application Opened",
            "A",
            "B",
            "session_end"
        ]
    );
    let id = events[1]["context"]["session_id"]
        .as_u64()
        .expect("session_start carries its id");
    for e in &events[1..] {
        assert_eq!(e["context"]["session_id"].as_u64(), Some(id), "{e}");
    }
    assert!(events[5]["properties"]["duration"].as_f64().unwrap() >= 0.0);

    // --no-sessions: the lifecycle event stays, no session and no id.
    send(&c, &db, &input, &["--foreground", "--no-sessions"]);
    let events = arrived(&out);
    let run: Vec<_> = events[6..].to_vec();
    assert_eq!(names(&run), ["Application Opened", "A", "B"]);
    assert!(run.iter().all(|e| e["context"].get("session_id").is_none()));

    // Both off: only the lines read.
    send(
        &c,
        &db,
        &input,
        &["--foreground", "--no-sessions", "--no-lifecycle-events"],
    );
    let events = arrived(&out);
    assert_eq!(names(&events[9..]), ["A", "B"]);
}
