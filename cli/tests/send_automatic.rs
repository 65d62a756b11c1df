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
