//! `outbox send`, `flush`, `status` and `dead-letter`, run as processes
//! against `outbox collect` on 127.0.0.1.

mod common;

use std::process::Stdio;

use common::*;

#[test]
fn send_stores_delivers_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let c = Collect::start(&["--key", "k", "--out", out.to_str().unwrap()]);
    let big = "x".repeat(40 * 1024);
    let input = [
        r#"{"type":"track","event":"A","userId":"u","messageId":"keep-me","timestamp":"2020-01-02T03:04:05Z"}"#.to_string(),
        r#"{"event":"B","anonymousId":"a"}"#.to_string(),
        "this is not json".to_string(),
        "[1, 2, 3]".to_string(),
        String::new(),
        format!(r#"{{"event":"C","userId":"u","properties":{{"blob":"{big}"}}}}"#),
        r#"{"event":"D","userId":"u","messageId":"m-d"}"#.to_string(),
    ]
    .join("\n");
    let input_file = dir.path().join("in.jsonl");
    std::fs::write(&input_file, input).unwrap();
    let res = run(&[
        "send",
        "--endpoint",
        &c.url(),
        "--key",
        "k",
        "--db",
        db.to_str().unwrap(),
        "--input",
        input_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "stderr: {stderr}");
    // Each bad line by number; the blank line 5 is not an error.
    assert!(stderr.contains("outbox: line 3: not JSON"), "{stderr}");
    assert!(
        stderr.contains("outbox: line 4: not a JSON object"),
        "{stderr}"
    );
    assert!(stderr.contains("outbox: line 6: event of"), "{stderr}");
    assert!(!stderr.contains("line 5"), "{stderr}");
    assert!(
        stdout.contains("read 6 lines: 3 stored, 3 bad lines skipped; 3 delivered, 0 rejected"),
        "{stdout}"
    );
    // What arrived: given ids and timestamps kept, missing ones set.
    let text = std::fs::read_to_string(&out).unwrap();
    let got: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 3, "{text}");
    assert_eq!(got[0]["messageId"], "keep-me");
    assert_eq!(got[0]["timestamp"], "2020-01-02T03:04:05Z");
    assert_eq!(got[1]["event"], "B");
    assert_eq!(got[1]["messageId"].as_str().unwrap().len(), 36, "a UUID");
    assert!(got[1]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(got[2]["messageId"], "m-d");
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 0);
    assert_eq!(st["lastError"], serde_json::Value::Null);
}

#[test]
fn send_reads_stdin_with_gzip_and_basic_auth_and_outbox_db() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("env.db");
    let c = Collect::start(&["--key", "s3cret", "--out", out.to_str().unwrap()]);
    let (input, ids) = events("gz", 120);
    let mut cmd = outbox();
    cmd.env("OUTBOX_DB", &db)
        .env("OUTBOX_KEY", "s3cret")
        .args(["send", "--endpoint", &c.url(), "--gzip", "--basic-auth"])
        .stdin(Stdio::piped());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let status = wait_with_bound(&mut child, WAIT);
    assert!(status.success());
    assert!(db.is_file(), "OUTBOX_DB chose the database");
    assert_eq!(sorted(ids_in(&out)), sorted(ids));
}

#[test]
fn strict_stops_at_the_first_bad_line_having_stored_the_ones_before() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let (good, ids) = events("s", 3);
    let (after, _) = events("after", 2);
    let input = format!("{good}{{broken\n{after}");
    // Nothing listens: whatever is stored stays queued.
    let res = send_to(&dead_url(), &db, &["--strict"], &input);
    let line = assert_error_last(&res, 4);
    assert!(line.contains("line 4"), "{line}");
    assert!(line.contains("3 events before it stored"), "{line}");
    assert_eq!(status_json(&db)["pendingEvents"], 3);
    // A flush delivers exactly the three; the lines after the bad one were
    // never stored.
    let _collector = flush_into(&db, &out);
    assert_eq!(ids_in(&out), ids);
}

#[test]
fn timeout_exits_3_and_the_events_wait_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let failing = Collect::start(&["--fail-rate", "1", "--fail-status", "503"]);
    let (input, ids) = events("t", 40);
    let res = send_to(&failing.url(), &db, &["--timeout", "2s"], &input);
    let line = assert_error_last(&res, 3);
    assert!(
        line.contains("timed out with 40 events still queued"),
        "{line}"
    );
    // The database itself keeps the last upload error (no side file).
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 40);
    assert_eq!(st["lastError"]["command"], "upload", "{st}");
    assert!(
        st["lastError"]["message"].as_str().unwrap().contains("503"),
        "{st}"
    );
    assert!(
        st["lastError"]["at"].as_str().unwrap().ends_with('Z'),
        "{st}"
    );
    assert!(!dir.path().join("q.db.last-error").exists());
    let table = run(&["status", "--db", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("upload: the endpoint answered HTTP 503"),
        "{text}"
    );
    drop(failing);

    let out = dir.path().join("got.jsonl");
    let good = Collect::start(&["--out", out.to_str().unwrap()]);
    let res = run(&[
        "flush",
        "--endpoint",
        &good.url(),
        "--db",
        db.to_str().unwrap(),
        "--timeout",
        "60s",
    ]);
    assert_ok(&res);
    assert!(String::from_utf8_lossy(&res.stdout).contains("40 delivered"));
    assert_eq!(ids_in(&out), ids);
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 0);
    assert_eq!(st["lastError"], serde_json::Value::Null);
}

#[test]
fn no_wait_exits_once_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (input, ids) = events("nw", 25);
    let res = send_to(&dead_url(), &db, &["--no-wait"], &input);
    assert_ok(&res);
    assert!(String::from_utf8_lossy(&res.stdout).contains("25 stored"));
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 25);
    assert!(st["oldestEventAgeSeconds"].is_u64(), "{st}");

    // The table form.
    let table = run(&["status", "--db", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("pending       25 events"), "{text}");
    assert!(text.contains("dead letters  0"), "{text}");
    assert!(text.contains(" old ("), "{text}");

    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let res = run(&[
        "flush",
        "--endpoint",
        &c.url(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(res.status.success());
    assert_eq!(ids_in(&out), ids);
}

#[test]
fn no_wait_and_strict_store_and_stop_without_uploading() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let (input, _) = events("quiet", 30);
    let res = send_to(
        &c.url(),
        &db,
        &["--flush-mode", "manual", "--no-wait"],
        &input,
    );
    assert_ok(&res);
    let (bad, _) = events("strict", 4);
    let res = send_to(
        &c.url(),
        &db,
        &["--flush-mode", "manual", "--strict"],
        &format!("{bad}not json\n"),
    );
    assert_error_last(&res, 4);
    // Both runs have exited: whatever they sent has arrived by now.
    let (_, rest) = c.stop("TERM");
    let summary = rest.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(
        summary.starts_with("summary: 0 batches, 0 events accepted"),
        "{summary}"
    );
    assert!(ids_in(&out).is_empty());
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 34, "{st}");
    assert_eq!(st["lastError"], serde_json::Value::Null, "{st}");
}

#[test]
fn unreachable_endpoint_is_one_line_and_events_stay_queued() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (input, _) = events("u", 10);
    let url = dead_url();
    let res = run_with_stdin(
        &["send", "--endpoint", &url, "--db", db.to_str().unwrap()],
        &input,
    );
    let line = assert_error_last(&res, 3);
    assert!(line.contains(&format!("cannot reach {url}")), "{line}");
    assert!(line.contains("10 events stay queued"), "{line}");
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 10);
    assert_eq!(st["lastError"]["command"], "upload", "{st}");
    assert!(
        st["lastError"]["message"]
            .as_str()
            .unwrap()
            .starts_with("upload failed"),
        "{st}"
    );
    let res = run(&["flush", "--endpoint", &url, "--db", db.to_str().unwrap()]);
    let line = assert_error_last(&res, 3);
    assert!(line.contains("cannot reach"), "{line}");
}

#[test]
fn wrong_key_is_401_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--key", "right", "--out", out.to_str().unwrap()]);
    let (input, ids) = events("k", 5);
    let res = run_with_stdin(
        &[
            "send",
            "--endpoint",
            &c.url(),
            "--key",
            "bad-k3y-123",
            "--db",
            db.to_str().unwrap(),
        ],
        &input,
    );
    let line = assert_error_last(&res, 1);
    assert!(line.contains("refused the key"), "{line}");
    assert!(
        !line.contains("bad-k3y-123"),
        "the key is never printed: {line}"
    );
    let st = status_json(&db);
    assert_eq!(st["pendingEvents"], 5);
    assert!(
        st["lastError"]["message"].as_str().unwrap().contains("401"),
        "{st}"
    );
    assert!(!st.to_string().contains("bad-k3y-123"), "nor stored: {st}");
    let res = run(&[
        "flush",
        "--endpoint",
        &c.url(),
        "--key",
        "right",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_ok(&res);
    assert_eq!(ids_in(&out), ids);
}

#[test]
fn poison_event_goes_to_the_dead_letter_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--reject-field", "poison", "--out", out.to_str().unwrap()]);
    let (good, ids) = events("p", 6);
    let input = format!(
        "{good}{}\n",
        r#"{"event":"Bad","userId":"u","messageId":"the-poison","properties":{"poison":true}}"#
    );
    let res = run_with_stdin(
        &["send", "--endpoint", &c.url(), "--db", db.to_str().unwrap()],
        &input,
    );
    let line = assert_error_last(&res, 1);
    assert!(line.contains("1 events were rejected"), "{line}");
    assert_eq!(ids_in(&out), ids, "every good event still delivered");

    let list = run(&["dead-letter", "list", "--db", db.to_str().unwrap()]);
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("the-poison"), "{text}");
    assert!(text.contains("400"), "{text}");
    assert!(text.contains("poison"), "{text}");
    assert!(text.contains("1 dead letters"), "{text}");

    let export = run(&["dead-letter", "export", "--db", db.to_str().unwrap()]);
    assert!(export.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"]["messageId"], "the-poison");
    assert_eq!(lines[0]["status"], 400);
    assert_eq!(lines[0]["reason"], "poison");
    assert_eq!(status_json(&db)["deadLetters"], 1);
}

#[test]
fn a_send_killed_with_sigkill_is_finished_by_flush() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (input, ids) = events("kill", 300);
    let input_file = dir.path().join("in.jsonl");
    std::fs::write(&input_file, &input).unwrap();
    // A collector that never accepts: the send stores everything (manual
    // mode uploads only once all input is stored), then keeps retrying.
    let mut failing = Collect::start(&["--fail-rate", "1"]);
    let mut send = outbox()
        .args([
            "send",
            "--endpoint",
            &failing.url(),
            "--db",
            db.to_str().unwrap(),
            "--flush-mode",
            "manual",
            "--input",
            input_file.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    failing.wait_for("batch 1 from");
    send.kill().unwrap(); // SIGKILL
    let _ = send.wait();
    drop(failing);

    assert_eq!(status_json(&db)["pendingEvents"], 300);
    let out = dir.path().join("got.jsonl");
    let _collector = flush_into(&db, &out);
    assert_eq!(ids_in(&out), ids);
}

#[test]
fn a_send_killed_after_a_lost_response_is_deduplicated_across_a_collector_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let (input, ids) = events("lost", 50);
    let input_file = dir.path().join("in.jsonl");
    std::fs::write(&input_file, &input).unwrap();
    // Commits every batch but never answers: the client re-sends.
    let mut lossy = Collect::start(&["--drop-response-rate", "1", "--out", out.to_str().unwrap()]);
    let mut send = outbox()
        .args([
            "send",
            "--endpoint",
            &lossy.url(),
            "--db",
            db.to_str().unwrap(),
            "--flush-mode",
            "manual",
            "--timeout",
            "60s",
            "--input",
            input_file.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lossy.wait_for("batch 2 from");
    send.kill().unwrap();
    let _ = send.wait();
    let (_, rest) = lossy.stop("TERM");
    let summary = rest.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(summary.contains(" 50 events accepted, "), "{summary}");
    // At least the one re-send was absorbed (more if a third try slipped in).
    let dups: u64 = summary
        .split(", ")
        .find(|p| p.ends_with("duplicates absorbed"))
        .and_then(|p| p.split(' ').next()?.parse().ok())
        .unwrap();
    assert!(dups >= 50 && dups.is_multiple_of(50), "{summary}");
    assert_eq!(
        status_json(&db)["pendingEvents"],
        50,
        "unacknowledged, so still queued"
    );

    // A restarted collector on the same file remembers the ids.
    let mut c = Collect::start(&["--out", out.to_str().unwrap()]);
    c.wait_for("already holds 50 message ids");
    let res = run(&[
        "flush",
        "--endpoint",
        &c.url(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_ok(&res);
    assert_eq!(ids_in(&out), ids, "each event exactly once");
    let (_, rest) = c.stop("TERM");
    let summary = rest.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(
        summary.contains("0 events accepted, 50 duplicates absorbed"),
        "{summary}"
    );
}

#[test]
fn unreadable_or_foreign_database_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, just text. ".repeat(200),
    )
    .unwrap();
    let g = garbage.to_str().unwrap();
    let url = dead_url();
    for args in [
        vec!["status", "--db", g],
        vec!["status", "--json", "--db", g],
        vec!["dead-letter", "list", "--db", g],
        vec!["dead-letter", "export", "--db", g],
    ] {
        let res = run(&args);
        let line = assert_one_line_error(&res);
        assert_eq!(res.status.code(), Some(1), "{args:?}");
        assert!(line.contains("not an outbox database"), "{args:?}: {line}");
    }
    // The readers left the file exactly as it was.
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        b"this is not a database at all, just text. ".repeat(200)
    );
    // Issue 17 item 1: a writer (`flush`, `send`) no longer refuses it: it
    // keeps the file aside byte for byte as `garbage.db.corrupt-<time>`,
    // says so, and goes on with a fresh queue.
    let res = run(&["flush", "--endpoint", &url, "--db", g]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let stderr = String::from_utf8_lossy(&res.stderr).to_string();
    assert!(stderr.contains("garbage.db.corrupt-"), "{stderr}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("garbage.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        b"this is not a database at all, just text. ".repeat(200)
    );
    // Missing database, directory as database.
    let missing = dir.path().join("missing.db");
    let res = run(&["status", "--db", missing.to_str().unwrap()]);
    assert!(assert_one_line_error(&res).contains("no such database"));
    let res = run(&[
        "flush",
        "--endpoint",
        &url,
        "--db",
        missing.to_str().unwrap(),
    ]);
    assert!(assert_one_line_error(&res).contains("no such database"));
    let res = run_with_stdin(
        &[
            "send",
            "--endpoint",
            &url,
            "--db",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    assert_one_line_error(&res);
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let d = db.to_str().unwrap();
    for args in [
        vec!["send", "--db", d],
        vec!["send", "--endpoint", "not-a-url", "--db", d],
        vec!["send", "--endpoint", "ftp://x", "--db", d],
        vec!["send", "--endpoint", "http://127.0.0.1:99999", "--db", d],
        vec![
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--flush-mode",
            "sometimes",
            "--db",
            d,
        ],
        vec![
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--flush-mode",
            "period=never",
            "--db",
            d,
        ],
        vec![
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--timeout",
            "soon",
            "--db",
            d,
        ],
        vec![
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--timeout",
            "0s",
            "--db",
            d,
        ],
        vec![
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--threshold",
            "-3",
            "--db",
            d,
        ],
        vec![
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--threshold",
            "5",
            "--db",
            d,
        ],
        vec!["flush", "--db", d],
        vec!["status", "--db", d, "--yaml"],
        vec!["dead-letter", "purge", "--db", d],
        vec!["demo", "--events", "5"],
        vec!["demo", "--events", "lots"],
        vec!["frobnicate"],
    ] {
        let res = run(&args);
        let line = assert_one_line_error(&res);
        assert_eq!(res.status.code(), Some(2), "{args:?}: {line}");
    }
    assert!(!db.exists(), "a bad command line creates no database");
}

#[test]
fn help_and_version_exit_0() {
    let res = run(&["--help"]);
    assert!(res.status.success());
    let text = String::from_utf8_lossy(&res.stdout);
    for sub in ["send", "flush", "status", "dead-letter", "collect", "demo"] {
        assert!(text.contains(sub), "{text}");
    }
    assert!(run(&["--version"]).status.success());
    assert!(run(&["send", "--help"]).status.success());
}

#[test]
fn period_mode_with_threshold_still_delivers_everything_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let mut c = Collect::start(&["--out", out.to_str().unwrap()]);
    let (input, ids) = events("per", 12);
    let res = send_to(
        &c.url(),
        &db,
        &["--flush-mode", "period=1h", "--threshold", "5"],
        &input,
    );
    assert_ok(&res);
    assert_eq!(ids_in(&out), ids);
    c.wait_for("batch 1 from");
}

/// Issue 17 item 7: numbers keep the exact text they were written with, as
/// the README promises, all the way to the collector's out file. Before the
/// fix `1e400` arrived as `1e+400`, `1E5` as `1e+5` and `-0` as `0`.
#[test]
fn numbers_arrive_with_the_exact_text_they_were_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let numbers = [
        ("a", "1e400"),
        ("b", "-0"),
        ("c", "1E5"),
        ("d", "-0.0"),
        ("e", "1.10"),
        ("f", "-0e0"),
        ("g", "100000000000000000000000000001"),
        ("h", "0.1e-7"),
        ("i", "2.5E+3"),
        ("j", "7"),
    ];
    let props: Vec<String> = numbers
        .iter()
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    let props = props.join(",");
    // A plain event, and a batch envelope whose context holds a number too.
    let input = format!(
        "{{\"event\":\"N\",\"userId\":\"u\",\"messageId\":\"n-1\",\"properties\":{{{props}}},\"extra\":{{\"deep\":[1E2,-0]}}}}\n\
         {{\"batch\":[{{\"event\":\"M\",\"userId\":\"u\",\"messageId\":\"n-2\",\"properties\":{{{props}}}}}],\"context\":{{\"z\":5E-1}}}}\n"
    );
    let res = run_with_stdin(
        &["send", "--endpoint", &c.url(), "--db", db.to_str().unwrap()],
        &input,
    );
    assert_ok(&res);
    drop(c);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        for (k, v) in numbers {
            assert!(
                line.contains(&format!(r#""{k}":{v}"#)),
                "{k} is not {v} in {line}"
            );
        }
    }
    assert!(lines[0].contains(r#""deep":[1E2,-0]"#), "{}", lines[0]);
    assert!(lines[1].contains(r#""z":5E-1"#), "{}", lines[1]);
}

/// Issue 17 item 7: a UTF-8 byte order mark at the start of the input (as
/// some Windows editors write) is not part of line 1: it is stripped and
/// line 1 is stored. Before the fix line 1 was "not JSON" and skipped.
#[test]
fn a_byte_order_mark_before_line_1_is_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let (input, ids) = events("bom", 2);
    let input_file = dir.path().join("in.jsonl");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(input.as_bytes());
    // A BOM anywhere else is the line's own business (here: not JSON).
    bytes.extend_from_slice(b"\xEF\xBB\xBF{\"event\":\"late\",\"userId\":\"u\"}\n");
    std::fs::write(&input_file, bytes).unwrap();
    let res = run(&[
        "send",
        "--endpoint",
        &c.url(),
        "--db",
        db.to_str().unwrap(),
        "--input",
        input_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(!stderr.contains("line 1:"), "{stderr}");
    assert!(stderr.contains("line 3: not JSON"), "{stderr}");
    drop(c);
    assert_eq!(ids_in(&out), ids);
}
