//! `outbox send`'s `"critical": true` line field (issue 18 item 2): the
//! event is tracked as critical, so even under `--flush-mode manual` the
//! queue up to it is uploaded while the input is still open; the field is
//! outbox's own and never reaches the server; any other value is a bad line.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_critical_line_uploads_the_queue_in_manual_mode_while_input_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let db = dir.path().join("q.db");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let url = c.url();
    let mut child = outbox()
        .args(["send", "--endpoint", &url, "--db", db.to_str().unwrap()])
        .args(["--flush-mode", "manual", "--no-wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outbox send");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            concat!(
                r#"{"event":"Plain","userId":"u","messageId":"m-plain"}"#,
                "\n",
                r#"{"event":"Alarm","userId":"u","messageId":"m-alarm","critical":true}"#,
                "\n",
            )
            .as_bytes(),
        )
        .unwrap();
    stdin.flush().unwrap();
    // Manual mode uploads nothing by itself and the input stays open: only
    // the critical event's own flush can bring both.
    let deadline = Instant::now() + WAIT;
    while sorted(ids_in(&out)) != ["m-alarm", "m-plain"] {
        assert!(
            Instant::now() < deadline,
            "the queue up to the critical event never arrived: {:?}",
            ids_in(&out)
        );
        thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    assert!(wait_with_bound(&mut child, WAIT).success());
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v.get("critical").is_none(), "sent with the flag: {line}");
    }
}

#[test]
fn a_critical_field_that_is_not_a_bool_is_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let input = concat!(
        r#"{"event":"A","userId":"u","critical":"yes"}"#,
        "\n",
        r#"{"event":"B","userId":"u","critical":false}"#,
        "\n",
    );
    let res = run_with_stdin(
        &[
            "send",
            "--endpoint",
            &dead_url(),
            "--db",
            db.to_str().unwrap(),
            "--no-wait",
            "--flush-mode",
            "manual",
        ],
        input,
    );
    assert_ok(&res);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains(r#"line 1: "critical" must be true or false"#),
        "stderr: {stderr}"
    );
    assert_eq!(status_json(&db)["pendingEvents"], 1, "only line 2 stored");
}
