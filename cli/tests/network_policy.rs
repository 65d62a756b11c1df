//! `outbox send --network-policy any|unmetered` and `--network-kind`
//! (issue 18 item 4), run as processes against `outbox collect` on
//! 127.0.0.1: a metered run under `unmetered` stores every line, uploads
//! nothing and says so; `outbox flush` delivers them later; the default
//! kind (unmetered) uploads as usual.

mod common;

use common::*;

#[test]
fn unmetered_policy_on_a_metered_run_stores_everything_and_uploads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let (input, ids) = events("met", 12);
    let res = send_to(
        &c.url(),
        &db,
        &["--network-policy", "unmetered", "--network-kind", "metered"],
        &input,
    );
    assert_ok(&res);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.contains("12 stored")
            && stdout.contains("not uploaded")
            && stdout.contains("metered"),
        "{stdout}"
    );
    assert_eq!(status_json(&db)["pendingEvents"], 12);
    assert!(ids_in(&out).is_empty(), "nothing uploaded");
    drop(c);

    let got = dir.path().join("later.jsonl");
    let _c = flush_into(&db, &got);
    assert_eq!(ids_in(&got), ids);
}

#[test]
fn unmetered_policy_on_the_default_unmetered_kind_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = dir.path().join("got.jsonl");
    let c = Collect::start(&["--out", out.to_str().unwrap()]);
    let (input, ids) = events("unm", 12);
    let res = send_to(
        &c.url(),
        &db,
        &["--network-policy", "unmetered", "--timeout", "20s"],
        &input,
    );
    assert_ok(&res);
    assert_eq!(ids_in(&out), ids);
    assert_eq!(status_json(&db)["pendingEvents"], 0);
}

#[test]
fn bad_network_flags_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let d = db.to_str().unwrap();
    for (flag, value) in [("--network-policy", "wifi"), ("--network-kind", "cellular")] {
        let res = run(&[
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "--db",
            d,
            flag,
            value,
        ]);
        assert_eq!(res.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains(flag), "{err}");
    }
}
