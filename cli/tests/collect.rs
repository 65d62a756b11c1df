//! `outbox collect`, run as a process: the /v1/batch contract, dedup across
//! a restart, fault injection, signals and bad flags.

mod common;

use std::io::Write;

use common::*;

#[test]
fn checks_key_size_json_and_reject_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut c = Collect::start(&[
        "--key",
        "k3y",
        "--max-batch-bytes",
        "2000",
        "--reject-field",
        "poison",
        "--out",
        out.to_str().unwrap(),
    ]);
    c.wait_for("already holds 0 message ids");

    // No key, wrong key: 401 and nothing stored.
    assert_eq!(
        post_batch(c.addr, None, &batch_of(&["a"])).unwrap().status,
        401
    );
    assert_eq!(
        post_batch(c.addr, Some("nope"), &batch_of(&["a"]))
            .unwrap()
            .status,
        401
    );
    c.wait_for("batch 2 from");

    // Right key, Bearer.
    let r = post_batch(c.addr, Some("k3y"), &batch_of(&["a", "b"])).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["accepted"], 2);
    assert_eq!(r.json()["duplicates"], 0);
    let line = c.wait_for("batch 3 from");
    assert!(
        line.contains(": 200, 2 events, 2 accepted, 0 duplicates"),
        "{line}"
    );

    // Basic with the key as user name ("k3y:" in base64).
    let r = request(
        c.addr,
        "POST",
        "/v1/batch",
        &[("Authorization", "Basic azN5Og==")],
        batch_of(&["c"]).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // Gzip-encoded body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch_of(&["d"]).as_bytes()).unwrap();
    let r = request(
        c.addr,
        "POST",
        "/v1/batch",
        &[
            ("Authorization", "Bearer k3y"),
            ("Content-Encoding", "gzip"),
        ],
        &gz.finish().unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // Over the configured --max-batch-bytes: 413.
    let big: Vec<String> = (0..100).map(|i| format!("big-{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    assert_eq!(
        post_batch(c.addr, Some("k3y"), &batch_of(&big))
            .unwrap()
            .status,
        413
    );

    // Not JSON, not an object, no batch array, a messageId that is no
    // string, an event that is no object: 400 with a Segment-style body.
    for body in [
        "not json",
        "[1,2]",
        r#"{"sentAt":"x"}"#,
        r#"{"batch":[{"event":"x","messageId":7}]}"#,
        r#"{"batch":[42]}"#,
    ] {
        let r = post_batch(c.addr, Some("k3y"), body).unwrap();
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["code"], "invalid_request", "{r:?}");
        assert!(r.json()["message"].is_string(), "{r:?}");
    }

    // An event without messageId is accepted, given one, counted apart.
    let r = post_batch(
        c.addr,
        Some("k3y"),
        r#"{"batch":[{"type":"track","event":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // A batch with a poison event (the field at any depth) is refused whole.
    let poisoned = serde_json::json!({ "batch": [
        { "messageId": "good-1", "event": "ok" },
        { "messageId": "bad-1", "event": "x", "properties": { "poison": true } },
    ]})
    .to_string();
    let r = post_batch(c.addr, Some("k3y"), &poisoned).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("bad-1"), "{r:?}");

    // Wrong path and method.
    assert_eq!(
        request(c.addr, "POST", "/v2/other", &[], b"{}")
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        request(c.addr, "GET", "/v1/batch", &[], b"")
            .unwrap()
            .status,
        405
    );

    let (status, rest) = c.stop("TERM");
    assert!(status.success(), "{status:?}");
    let summary = rest
        .iter()
        .find(|l| l.starts_with("summary:"))
        .expect("summary line");
    assert!(summary.contains("5 events accepted"), "{summary}");
    assert!(summary.contains("1 without messageId"), "{summary}");
    assert!(summary.contains("6 bad requests (400)"), "{summary}");
    assert!(summary.contains("2 unauthorized (401)"), "{summary}");
    assert!(summary.contains("1 too large"), "{summary}");
    let ids = ids_in(&out);
    assert_eq!(ids[..4], ["a", "b", "c", "d"]);
    assert!(ids[4].starts_with("collect-"), "{ids:?}");
}

#[test]
fn dedup_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let out_s = out.to_str().unwrap();

    let first = Collect::start(&["--out", out_s]);
    let r = post_batch(first.addr, None, &batch_of(&["m1", "m2"])).unwrap();
    assert_eq!((r.json()["accepted"].clone(), r.status), (2.into(), 200));
    // Sent twice within one run: absorbed.
    let r = post_batch(first.addr, None, &batch_of(&["m2"])).unwrap();
    assert_eq!(r.json()["duplicates"], 1);
    let (status, rest) = first.stop("TERM");
    assert!(status.success());
    assert!(
        rest.iter().any(|l| l.contains("1 duplicates absorbed")),
        "{rest:?}"
    );

    // Restart on the same file: the ids are remembered.
    let mut second = Collect::start(&["--out", out_s]);
    second.wait_for("already holds 2 message ids");
    let r = post_batch(second.addr, None, &batch_of(&["m1", "m2", "m3"])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["accepted"], 1);
    assert_eq!(r.json()["duplicates"], 2);
    let (status, rest) = second.stop("INT");
    assert!(status.success(), "SIGINT exits 0 after the summary");
    assert!(
        rest.iter()
            .any(|l| l.contains("1 events accepted, 2 duplicates absorbed")),
        "{rest:?}"
    );
    assert_eq!(ids_in(&out), ["m1", "m2", "m3"]);
}

#[test]
fn a_torn_last_line_is_skipped_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    std::fs::write(&out, "{\"messageId\":\"x1\"}\n{\"messageId\":\"x2\",\"ev").unwrap();
    let mut c = Collect::start(&["--out", out.to_str().unwrap()]);
    c.wait_for("already holds 1 message ids");
    let r = post_batch(c.addr, None, &batch_of(&["x1", "x2"])).unwrap();
    assert_eq!(r.json()["accepted"], 1, "x2 was torn, so it is new");
    assert_eq!(r.json()["duplicates"], 1);
    drop(c);
    assert_eq!(ids_in(&out), ["x1", "x2"]);
}

#[test]
fn injects_failures_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut c = Collect::start(&[
        "--fail-rate",
        "1",
        "--fail-status",
        "429",
        "--retry-after",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    let r = post_batch(c.addr, None, &batch_of(&["f1"])).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    let line = c.wait_for("batch 1 from");
    assert!(line.contains("429") && line.contains("injected"), "{line}");
    let (status, rest) = c.stop("TERM");
    assert!(status.success());
    assert!(
        rest.iter().any(|l| l.contains("1 failures injected")),
        "{rest:?}"
    );
    assert!(ids_in(&out).is_empty(), "a failed batch is not committed");
}

#[test]
fn drops_responses_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let c = Collect::start(&["--drop-response-rate", "1", "--out", out.to_str().unwrap()]);
    let err = post_batch(c.addr, None, &batch_of(&["d1", "d2"]));
    assert!(err.is_err(), "expected no answer, got {err:?}");
    assert_eq!(
        ids_in(&out),
        ["d1", "d2"],
        "committed before the answer was dropped"
    );
    // The client resends: absorbed (and again unanswered).
    assert!(post_batch(c.addr, None, &batch_of(&["d1", "d2"])).is_err());
    let (status, rest) = c.stop("TERM");
    assert!(status.success());
    let summary = rest.iter().find(|l| l.starts_with("summary:")).unwrap();
    assert!(
        summary.contains("2 events accepted, 2 duplicates absorbed"),
        "{summary}"
    );
    assert!(summary.contains("2 responses dropped"), "{summary}");
    assert_eq!(ids_in(&out), ["d1", "d2"]);
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    for args in [
        &["collect"][..],
        &["collect", "--listen", "127.0.0.1:0", "--fail-rate", "1.5"],
        &["collect", "--listen", "127.0.0.1:0", "--fail-status", "200"],
        &[
            "collect",
            "--listen",
            "127.0.0.1:0",
            "--max-batch-bytes",
            "0",
        ],
        &["collect", "--listen", "127.0.0.1:0", "--retry-after", "-1"],
        &["collect", "--listen", "127.0.0.1:0", "--bogus"],
    ] {
        let out = run(args);
        let err = assert_one_line_error(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    }
}

#[test]
fn unusable_address_or_out_file_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["collect", "--listen", &addr]);
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("cannot listen"), "{err}");
    // An out file that is a directory.
    let out = run(&[
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("cannot use"), "{err}");
}

#[test]
fn garbage_on_the_wire_never_takes_it_down() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let c = Collect::start(&[]);
    let junk: [&[u8]; 6] = [
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"POST /v1/batch HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v1/batch HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
        b"POST /v1/batch HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    ];
    for bytes in junk {
        let mut s = TcpStream::connect(c.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
    }
    // A long header line.
    let mut s = TcpStream::connect(c.addr).unwrap();
    let _ = s.write_all(
        format!(
            "POST /v1/batch HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(20_000)
        )
        .as_bytes(),
    );
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // Still serving.
    let r = post_batch(c.addr, None, &batch_of(&["after-junk"])).unwrap();
    assert_eq!(r.status, 200);
    let (status, _) = c.stop("TERM");
    assert!(status.success());
}

/// Issue 17 item 6: clients that send their request a byte at a time cannot
/// hold the collector's connections: each request has a total deadline for
/// its head and body (`--request-timeout`), after which it is answered 408
/// and closed, however steadily the bytes trickle in. Here every connection
/// the collector serves (`--max-connections 4`) is taken by a trickler; a
/// real client must still get its batch in, and every trickler must be cut
/// off. Before the fix each byte restarted a 30 s idle timeout, so the
/// tricklers held every slot for as long as they kept sending.
#[test]
fn slow_clients_cannot_lock_out_real_ones() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// How long the tricklers go on (and the real client keeps trying):
    /// far beyond the 1 s deadline, well short of the old idle timeout.
    const TRICKLE_FOR: Duration = Duration::from_secs(20);
    let c = Collect::start(&["--request-timeout", "1s", "--max-connections", "4"]);
    let done = Arc::new(AtomicBool::new(false));
    let trickle = |addr| {
        let done = Arc::clone(&done);
        std::thread::spawn(move || -> Result<String, String> {
            let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let head = format!("POST /v1/batch HTTP/1.1\r\nX-Slow: {}", "a".repeat(10_000));
            let start = Instant::now();
            for byte in head.bytes() {
                if done.load(Ordering::SeqCst) || start.elapsed() > TRICKLE_FOR {
                    break;
                }
                if s.write_all(&[byte]).is_err() {
                    break;
                }
                // The read timeout paces the trickle; an answer or a close ends it.
                let mut answer = [0u8; 64];
                match s.read(&mut answer) {
                    Ok(n) => return Ok(String::from_utf8_lossy(&answer[..n]).to_string()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Ok(format!("reset: {e}")),
                }
            }
            Err(format!(
                "still connected after trickling for {:?}",
                start.elapsed()
            ))
        })
    };
    let slow: Vec<_> = (0..4).map(|_| trickle(c.addr)).collect();
    // Let the tricklers take the slots, then knock as a real client would.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let served = loop {
        match post_batch(c.addr, None, &batch_of(&["real-1"])) {
            Ok(r) => break Some(r),
            // Half the trickling time: the slots are all taken meanwhile.
            Err(_) if start.elapsed() < TRICKLE_FOR / 2 => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(_) => break None,
        }
    };
    done.store(true, Ordering::SeqCst);
    let outcomes: Vec<Result<String, String>> =
        slow.into_iter().map(|t| t.join().unwrap()).collect();
    let served = served.unwrap_or_else(|| {
        panic!(
            "the real client was locked out for {:?}; tricklers: {outcomes:?}",
            TRICKLE_FOR / 2
        )
    });
    assert_eq!(served.status, 200, "{}", served.body);
    for outcome in &outcomes {
        let answer = outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("a trickler {e}"));
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408") || answer.starts_with("reset"),
            "{answer:?}"
        );
    }
}

/// Issue 17 item 6: RFC 9112 6.3: two different Content-Length values, or
/// Content-Length together with Transfer-Encoding, make the body's end
/// ambiguous (request smuggling): answered 400, nothing stored. Before the
/// fix the first Content-Length, or the chunked coding, silently won.
#[test]
fn ambiguous_body_lengths_are_refused_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let body = batch_of(&["cl-1"]);
    // `request` sends the real Content-Length; a second, different one.
    let r = request(
        c.addr,
        "POST",
        "/v1/batch",
        &[("Content-Length", "3")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 400, "two Content-Lengths: {}", r.body);
    // A valid chunked body, with the Content-Length of its encoded bytes.
    let chunked = format!("{:x}\r\n{}\r\n0\r\n\r\n", body.len(), batch_of(&["te-1"]));
    let r = request(
        c.addr,
        "POST",
        "/v1/batch",
        &[("Transfer-Encoding", "chunked")],
        chunked.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 400, "Content-Length and chunked: {}", r.body);
    // The same length twice is one length (RFC 9110 8.6): accepted.
    let len = body.len().to_string();
    let r = request(
        c.addr,
        "POST",
        "/v1/batch",
        &[("Content-Length", &len)],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "the same Content-Length twice: {}", r.body);
    drop(c);
    assert_eq!(ids_in(&out), ["cl-1"]);
}

/// Issue 17 item 6: `--out` that is a symbolic link is refused (as the
/// store refuses one), so the collector never appends events to a file
/// someone else pointed it at, with that file's mode; a new out file is
/// the owner's only. Before the fix it followed the link and appended.
#[cfg(unix)]
#[test]
fn out_through_a_symlink_is_refused_and_a_new_one_is_0600() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere.jsonl");
    std::fs::write(&target, "").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("got.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let res = run(&[
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--out",
        link.to_str().unwrap(),
    ]);
    let err = assert_one_line_error(&res);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"");
    // A fresh out file: created 0600 whatever the umask allows.
    let fresh = dir.path().join("fresh.jsonl");
    let c = Collect::start(&["--out", fresh.to_str().unwrap()]);
    assert_eq!(
        post_batch(c.addr, None, &batch_of(&["m-1"]))
            .unwrap()
            .status,
        200
    );
    drop(c);
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}
