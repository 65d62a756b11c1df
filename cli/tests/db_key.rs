//! `OUTBOX_DB_KEY`: with the `encryption` feature, `send`, `flush`,
//! `status` and `dead-letter` use it to encrypt and open the database, and
//! a missing or wrong key is one error line with the file untouched;
//! without the feature, a set `OUTBOX_DB_KEY` is refused before any
//! database is created or opened.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::*;

/// `outbox ARGS` with `OUTBOX_DB_KEY` set to `key` (or unset), `input` on
/// stdin.
fn run_keyed(args: &[&str], key: Option<&str>, input: &str, dir: &Path) -> Output {
    let file = dir.join("input.jsonl");
    std::fs::write(&file, input).unwrap();
    let mut cmd = outbox();
    cmd.args(args)
        .stdin(Stdio::from(std::fs::File::open(&file).unwrap()));
    if let Some(key) = key {
        cmd.env("OUTBOX_DB_KEY", key);
    }
    let out = run_cmd(&mut cmd);
    std::fs::remove_file(&file).unwrap();
    out
}

/// Without the feature, a set key is a usage error (exit 2) and no
/// database is created: never a silent plaintext queue.
#[cfg(not(feature = "encryption"))]
#[test]
fn a_set_key_is_refused_by_a_build_without_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let db_arg = db.to_str().unwrap();
    let (input, _) = events("k", 3);
    let url = dead_url();
    for args in [
        &["send", "--endpoint", &url, "--db", db_arg, "--no-wait"][..],
        &["flush", "--endpoint", &url, "--db", db_arg],
        &["status", "--db", db_arg],
        &["dead-letter", "list", "--db", db_arg],
        &["dead-letter", "purge", "--all", "--db", db_arg],
    ] {
        std::fs::write(&db, b"").unwrap();
        let out = run_keyed(args, Some("secret-key-1"), &input, dir.path());
        let line = assert_error_last(&out, 2);
        assert!(
            line.contains("OUTBOX_DB_KEY") && line.contains("without encryption"),
            "{args:?}: {line}"
        );
        assert!(!line.contains("secret-key-1"), "{line}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            b"",
            "{args:?} wrote the database"
        );
        std::fs::remove_file(&db).unwrap();
    }
    // Unset, the same send works (plaintext).
    let out = run_keyed(
        &[
            "send",
            "--endpoint",
            &url,
            "--db",
            db_arg,
            "--no-wait",
            "--flush-mode",
            "manual",
        ],
        None,
        &input,
        dir.path(),
    );
    assert_ok(&out);
}

#[cfg(feature = "encryption")]
mod encrypted {
    use super::*;

    const KEY: &str = "cli passphrase 'with quotes'";

    /// Each file in `dir`: name, size and a hash of its bytes (printable
    /// when they differ).
    fn files(dir: &Path) -> Vec<(String, usize, u64)> {
        use std::hash::{Hash, Hasher};
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, bytes.len(), h.finish())
            })
            .collect();
        v.sort();
        v
    }

    fn no_plaintext(dir: &Path, needle: &[u8]) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let found = bytes.windows(needle.len()).any(|w| w == needle);
            assert!(!found, "{} holds an event in plaintext", p.display());
        }
    }

    /// `send` with the key stores events encrypted (no id in the file's
    /// bytes); `status` and `dead-letter list` read it with the key;
    /// without the key, with a wrong one, or an empty one, each command
    /// fails in one line and the files stay byte for byte; `flush` with
    /// the key delivers everything.
    #[test]
    fn the_key_encrypts_the_queue_and_only_it_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let db = data.join("q.db");
        let db_arg = db.to_str().unwrap();
        let (input, ids) = events("enc", 5);
        let url = dead_url();
        let queued = run_keyed(
            &[
                "send",
                "--endpoint",
                &url,
                "--db",
                db_arg,
                "--no-wait",
                "--flush-mode",
                "manual",
            ],
            Some(KEY),
            &input,
            dir.path(),
        );
        assert_ok(&queued);
        no_plaintext(&data, b"enc-0");

        let out = run_keyed(
            &["status", "--json", "--db", db_arg],
            Some(KEY),
            "",
            dir.path(),
        );
        assert_ok(&out);
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(st["pendingEvents"], 5, "{st}");
        let out = run_keyed(
            &["dead-letter", "list", "--db", db_arg],
            Some(KEY),
            "",
            dir.path(),
        );
        assert_ok(&out);

        // (A reader leaves the -wal and -shm of a WAL database, as ever.)
        let before = files(&data);
        for (key, code, says) in [
            (None, 1, "no key was given"),
            (Some("not the key"), 1, "key does not open"),
            (Some(""), 2, "empty"),
        ] {
            for args in [
                &["status", "--db", db_arg][..],
                &["flush", "--endpoint", &url, "--db", db_arg],
                &["send", "--endpoint", &url, "--db", db_arg, "--no-wait"],
                &["dead-letter", "requeue", "--all", "--db", db_arg],
            ] {
                let out = run_keyed(args, key, &input, dir.path());
                let line = assert_error_last(&out, code);
                assert!(line.contains(says), "{args:?} with {key:?}: {line}");
                assert!(!line.contains(KEY), "{line}");
                assert_eq!(
                    files(&data),
                    before,
                    "{args:?} with {key:?} changed the files"
                );
            }
        }

        let out_file = dir.path().join("got.jsonl");
        let c = Collect::start(&["--out", out_file.to_str().unwrap()]);
        let out = run_keyed(
            &["flush", "--endpoint", &c.url(), "--db", db_arg],
            Some(KEY),
            "",
            dir.path(),
        );
        assert_ok(&out);
        assert_eq!(sorted(ids_in(&out_file)), sorted(ids));
        drop(c);
    }

    /// `--help` says where the key comes from.
    #[test]
    fn help_names_the_key_variable() {
        let out = run(&["status", "--help"]);
        assert_ok(&out);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("OUTBOX_DB_KEY") && help.contains("SQLCipher"),
            "{help}"
        );
    }
}
