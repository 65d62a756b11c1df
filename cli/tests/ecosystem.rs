//! The `outbox` command speaking the analytics ecosystem's protocol: `send`
//! takes what SDKs produce (whole request bodies, numeric ids, numbers of
//! any size), `dead-letter requeue|purge` undo a server's bad day, `collect`
//! answers as Segment does, and a huge `--timeout` is no deadline.

mod common;

use common::*;
use serde_json::Value;

fn collected(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn send_takes_envelopes_numeric_ids_and_exact_numbers_and_warns_on_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let input = [
        // A whole request body, as analytics-python would POST it.
        r#"{"batch":[{"type":"track","event":"A","userId":"u","messageId":"env-1","context":{"ip":"9.9.9.9"}},{"type":"identify","userId":"u","messageId":"env-2","traits":{"n":1}}],"context":{"ip":"1.1.1.1","locale":"de-DE"},"integrations":{"All":false},"sentAt":"2026-01-01T00:00:00Z","writeKey":"ignored"}"#,
        // Numeric ids and numbers beyond f64.
        r#"{"type":"track","event":"B","userId":12345678901234567890123,"anonymousId":7,"messageId":99,"properties":{"big":123456789012345678901234567890,"price":19.990}}"#,
        // The same messageId again.
        r#"{"type":"track","event":"C","userId":"u","messageId":"env-1"}"#,
    ]
    .join("\n");
    let res = run_with_stdin(
        &["send", "--endpoint", &c.url(), "--db", db.to_str().unwrap()],
        &format!("{input}\n"),
    );
    assert_ok(&res);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("line 3: messageId \"env-1\" repeats line 1"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(stdout.contains("4 stored"), "{stdout}");
    drop(c);

    let events = collected(&out);
    assert_eq!(
        events.len(),
        3,
        "env-1 twice is deduplicated by the collector"
    );
    let env1 = &events[0];
    assert_eq!(
        env1["context"]["ip"], "9.9.9.9",
        "the event's own context wins"
    );
    assert_eq!(
        env1["context"]["locale"], "de-DE",
        "the envelope's context is merged"
    );
    assert_eq!(env1["integrations"]["All"], false);
    assert_eq!(env1["context"]["library"]["name"], "outbox");
    assert_eq!(events[1]["type"], "identify");
    assert_eq!(events[1]["context"]["locale"], "de-DE");
    let b = &events[2];
    assert_eq!(b["userId"], "12345678901234567890123");
    assert_eq!(b["anonymousId"], "7");
    assert_eq!(b["messageId"], "99");
    let raw = std::fs::read_to_string(&out).unwrap();
    assert!(
        raw.contains("\"big\":123456789012345678901234567890"),
        "{raw}"
    );
    assert!(raw.contains("\"price\":19.990"), "{raw}");
}

#[test]
fn dead_letters_are_requeued_by_seq_or_all_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let dbs = db.to_str().unwrap();
    let out = dir.path().join("got.jsonl");
    // A server with a bad rule refuses three events.
    let strict = Collect::start(&["--reject-field", "v2"]);
    let input: String = (0..4)
        .map(|i| {
            format!(
                "{{\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"d-{i}\",\"properties\":{{\"v2\":{i}}}}}\n"
            )
        })
        .collect();
    let res = run_with_stdin(&["send", "--endpoint", &strict.url(), "--db", dbs], &input);
    assert_error_last(&res, 1);
    drop(strict);
    assert_eq!(status_json(&db)["deadLetters"], 4);

    // Requeue needs a choice.
    let res = run(&["dead-letter", "requeue", "--db", dbs]);
    assert_eq!(res.status.code(), Some(2));

    let export = run(&["dead-letter", "export", "--db", dbs]);
    let seqs: Vec<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].to_string())
        .collect();
    let res = run(&[
        "dead-letter",
        "requeue",
        "--db",
        dbs,
        "--seq",
        &seqs[0],
        &seqs[2],
    ]);
    assert_ok(&res);
    assert!(
        String::from_utf8_lossy(&res.stdout).contains("requeued 2 dead letters"),
        "{res:?}"
    );
    assert_eq!(status_json(&db)["deadLetters"], 2);
    let res = run(&["dead-letter", "purge", "--db", dbs, "--seq", &seqs[3]]);
    assert_ok(&res);
    assert!(String::from_utf8_lossy(&res.stdout).contains("purged 1 dead letters (1 left)"));
    let res = run(&["dead-letter", "requeue", "--db", dbs, "--all"]);
    assert_ok(&res);
    assert_eq!(status_json(&db)["deadLetters"], 0);

    // The fixed server gets them, byte for byte (same messageIds).
    let _c = flush_into(&db, &out);
    assert_eq!(sorted(ids_in(&out)), ["d-0", "d-1", "d-2"]);
}

#[test]
fn a_timeout_too_large_for_a_clock_is_no_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let (input, ids) = events("t", 3);
    let res = send_to(
        &c.url(),
        &db,
        &["--timeout", "18446744073709551615s"],
        &input,
    );
    assert_ok(&res);
    let res = run(&[
        "flush",
        "--endpoint",
        &c.url(),
        "--db",
        db.to_str().unwrap(),
        "--timeout",
        "18446744073709551615s",
    ]);
    assert_ok(&res);
    assert_eq!(ids_in(&out), ids);
}

#[test]
fn collect_answers_like_segment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let mut c = Collect::start(&["--key", "wk", "--out", out.to_str().unwrap()]);
    c.wait_for("already holds 0 message ids");
    // The key in the body, on a single-event route; type from the route.
    let r = request(
        c.addr,
        "POST",
        "/v1/identify",
        &[],
        br#"{"writeKey":"wk","userId":"u","traits":{"a":1},"messageId":"one"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    for route in ["track", "page", "screen", "group", "alias"] {
        let body = format!(r#"{{"writeKey":"wk","userId":"u","messageId":"{route}-1"}}"#);
        let r = request(
            c.addr,
            "POST",
            &format!("/v1/{route}"),
            &[],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{route}: {r:?}");
    }
    // A batch over 500 000 bytes and an event over 32 KiB: 400, Segment's body.
    let filler = "x".repeat(30_000);
    let big: Vec<String> = (0..17)
        .map(|i| format!(r#"{{"messageId":"b{i}","properties":{{"f":"{filler}"}}}}"#))
        .collect();
    let body = format!(r#"{{"batch":[{}]}}"#, big.join(","));
    assert!(body.len() > 500_000);
    let r = post_batch(c.addr, Some("wk"), &body).unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["code"], "invalid_request");
    let huge = format!(
        r#"{{"batch":[{{"messageId":"h","properties":{{"f":"{}"}}}}]}}"#,
        "y".repeat(33_000)
    );
    let r = post_batch(c.addr, Some("wk"), &huge).unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().contains("32768"),
        "{r:?}"
    );
    // Wrong key: 401 with Segment's body.
    let r = request(
        c.addr,
        "POST",
        "/v1/track",
        &[],
        br#"{"writeKey":"no","userId":"u"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthorized");

    let (status, rest) = c.stop("TERM");
    assert!(status.success());
    let summary = rest.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(summary.contains("6 events accepted"), "{summary}");
    assert!(summary.contains("2 too large"), "{summary}");
    let events = collected(&out);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["identify", "track", "page", "screen", "group", "alias"]
    );
    assert!(events.iter().all(|e| e.get("writeKey").is_none()));
}
