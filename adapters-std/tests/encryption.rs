//! Encryption at rest (feature `encryption`): a keyed store keeps no
//! plaintext on disk and delivers everything after a restart with its key;
//! a wrong key, a missing key and a plaintext file opened with a key are
//! typed errors that leave every file beside the database byte for byte as
//! it was (never salvaged, never moved aside), for the store and for the
//! Client alike; a damaged encrypted store is salvaged into an encrypted
//! file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbox_core::Store;
use outbox_std::sqlite::{DbKey, OpenError, SqliteOptions, SqliteStore};
use outbox_std::{BatchBody, BuildError, Client, Event, FlushMode, Response, UploadFailed};

const PATIENCE: Duration = Duration::from_secs(60);
/// Raw keys (`x'…'`) skip SQLCipher's key derivation, which keeps the many
/// opens here quick; one test uses a passphrase.
const KEY: &str = "x'2DD29CA851E7B56E4697B0E1F08507293D761A05CE4D1B628663F411A8086D99'";
const OTHER_KEY: &str = "x'98483C6EB40B6C31A448C22A66DED3B5E5E8D5119CAC8327B655C8B5C4836481'";
/// Text every event carries: it must never be found in the files.
const MARKER: &str = "plaintext-marker-4f1d";

fn key(text: &str) -> DbKey {
    DbKey::new(text).unwrap()
}

fn keyed(text: &str) -> SqliteOptions {
    SqliteOptions::default().encryption_key(key(text))
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A Client on `db` whose uploads land in `delivered` (event names in
/// order), flushing only when asked.
fn client(
    db: &Path,
    key: Option<DbKey>,
    delivered: &Arc<Mutex<Vec<String>>>,
) -> Result<Client, BuildError> {
    let sink = delivered.clone();
    let upload = move |batch: &BatchBody| -> Result<Response, UploadFailed> {
        let events: Vec<serde_json::Value> = serde_json::from_slice(batch.events_json()).unwrap();
        let mut sink = sink.lock().unwrap();
        for e in events {
            sink.push(e["event"].as_str().unwrap_or_default().to_string());
        }
        Ok(Response {
            status: 200,
            retry_after: None,
        })
    };
    let mut b = Client::builder()
        .path(db)
        .uploader(upload)
        .flush_mode(FlushMode::Manual)
        .lifecycle_events(false)
        .sessions(None)
        .drop_flush_timeout(Duration::ZERO);
    if let Some(key) = key {
        b = b.encryption_key(key);
    }
    b.build()
}

fn track(client: &Client, n: usize) {
    for i in 0..n {
        let e = Event::track(format!("e-{i}"))
            .user_id("u-1")
            .properties(serde_json::json!({ "note": MARKER }));
        client.track_durable(e).unwrap();
    }
}

/// The store written with a key reopens with it and delivers every event,
/// in order; meanwhile neither the database nor its `-wal` ever holds an
/// event's text (the same check on a plaintext store finds it, so the
/// search can fail).
#[test]
fn a_keyed_store_keeps_no_plaintext_and_delivers_everything_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let c = client(&db, Some(key(KEY)), &delivered).unwrap();
    track(&c, 40);
    // Committed, not yet checkpointed: the events are in the -wal now.
    for (path, bytes) in snapshot(dir.path()) {
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "{} holds plaintext",
            path.display()
        );
        assert!(
            !contains(&bytes, b"SQLite format 3"),
            "{} has a plaintext header",
            path.display()
        );
    }
    c.close().unwrap();
    drop(c);
    for (path, bytes) in snapshot(dir.path()) {
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "{} holds plaintext",
            path.display()
        );
    }
    assert!(delivered.lock().unwrap().is_empty());

    let c = client(&db, Some(key(KEY)), &delivered).unwrap();
    assert_eq!(c.stats().unwrap().core.restored, 40);
    let report = c.flush_and_wait(PATIENCE).unwrap();
    assert_eq!((report.delivered, report.pending), (40, 0));
    let expected: Vec<String> = (0..40).map(|i| format!("e-{i}")).collect();
    assert_eq!(*delivered.lock().unwrap(), expected);
    c.close().unwrap();

    // The control: without a key the same events are there in plaintext.
    let plain = dir.path().join("plain.db");
    let c = client(&plain, None, &delivered).unwrap();
    track(&c, 3);
    c.close().unwrap();
    drop(c);
    let bytes = std::fs::read(&plain).unwrap();
    assert!(
        contains(&bytes, MARKER.as_bytes()),
        "the search finds plaintext"
    );
}

/// A passphrase (SQLCipher derives the key) works the same, and the file
/// it writes opens with nothing else.
#[test]
fn a_passphrase_key_reopens_and_another_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let phrase = "correct horse battery staple, it's 'quoted'";
    {
        let mut s = SqliteStore::open(&db, keyed(phrase)).unwrap();
        s.append(0, br#"{"n":0}"#).unwrap();
        s.sync().unwrap();
    }
    let s = SqliteStore::open(&db, keyed(phrase)).unwrap();
    assert_eq!(s.queue_len().unwrap(), (1, 7));
    drop(s);
    let err = SqliteStore::open(&db, keyed("correct horse battery staple")).unwrap_err();
    assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");
}

fn keyed_store_with_events(dir: &Path) -> PathBuf {
    let db = dir.join("q.db");
    let mut s = SqliteStore::open(&db, keyed(KEY)).unwrap();
    for i in 0..20 {
        s.append(i, format!(r#"{{"n":{i},"note":"{MARKER}"}}"#).as_bytes())
            .unwrap();
    }
    s.sync().unwrap();
    db
}

/// A wrong key and a missing key are typed errors from every open, the
/// salvaging one and the read-only view included, and the directory is
/// byte for byte what it was: no salvage, no `.corrupt-` file, no
/// `-wal`/`-shm` left behind. Then the right key still opens everything.
#[test]
fn a_wrong_key_and_a_missing_key_are_typed_errors_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = keyed_store_with_events(dir.path());
    let before = snapshot(dir.path());
    let unchanged =
        |what: &str| assert_eq!(snapshot(dir.path()), before, "{what} changed the files");

    let wrong = SqliteStore::open(&db, keyed(OTHER_KEY)).unwrap_err();
    assert!(matches!(wrong, OpenError::WrongKey { .. }), "{wrong}");
    assert!(
        !wrong.to_string().contains("98483C"),
        "the message shows the key: {wrong}"
    );
    unchanged("open with a wrong key");
    let wrong = SqliteStore::open_or_salvage(&db, keyed(OTHER_KEY)).unwrap_err();
    assert!(matches!(wrong, OpenError::WrongKey { .. }), "{wrong}");
    unchanged("open_or_salvage with a wrong key");
    let wrong = SqliteStore::open_read_only_encrypted(&db, &key(OTHER_KEY)).unwrap_err();
    assert!(matches!(wrong, OpenError::WrongKey { .. }), "{wrong}");
    unchanged("a read-only view with a wrong key");

    let missing = SqliteStore::open(&db, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(missing, OpenError::KeyRequired { .. }),
        "{missing}"
    );
    unchanged("open without a key");
    let missing = SqliteStore::open_or_salvage(&db, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(missing, OpenError::KeyRequired { .. }),
        "{missing}"
    );
    unchanged("open_or_salvage without a key");
    let missing = SqliteStore::open_read_only(&db).unwrap_err();
    assert!(
        matches!(missing, OpenError::KeyRequired { .. }),
        "{missing}"
    );
    unchanged("a read-only view without a key");

    let view = SqliteStore::open_read_only_encrypted(&db, &key(KEY)).unwrap();
    assert_eq!(view.queue_len().unwrap().0, 20);
    drop(view);
    let (s, salvaged) = SqliteStore::open_or_salvage(&db, keyed(KEY)).unwrap();
    assert!(salvaged.is_none());
    assert_eq!(s.queue_len().unwrap().0, 20);
}

/// A plaintext store opened with a key is refused untouched (never read
/// unencrypted when encryption was asked for, never encrypted in place).
#[test]
fn a_plaintext_store_opened_with_a_key_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    {
        let mut s = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        s.append(0, b"{}").unwrap();
        s.sync().unwrap();
    }
    let before = snapshot(dir.path());
    for e in [
        SqliteStore::open(&db, keyed(KEY)).unwrap_err(),
        SqliteStore::open_or_salvage(&db, keyed(KEY)).unwrap_err(),
        SqliteStore::open_read_only_encrypted(&db, &key(KEY)).unwrap_err(),
    ] {
        assert!(matches!(e, OpenError::NotEncrypted { .. }), "{e}");
        assert_eq!(snapshot(dir.path()), before);
    }
}

/// The Client with a wrong key, or with none, refuses to start (where a
/// file that is not a database would be salvaged and set aside) and leaves
/// the files as they were; with its key it restores the whole queue.
#[test]
fn the_client_with_a_wrong_or_missing_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let c = client(&db, Some(key(KEY)), &delivered).unwrap();
    track(&c, 5);
    c.close().unwrap();
    drop(c);
    let before = snapshot(dir.path());

    let err = client(&db, Some(key(OTHER_KEY)), &delivered).unwrap_err();
    assert!(
        matches!(err, BuildError::Open(OpenError::WrongKey { .. })),
        "{err}"
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a wrong key changed the files"
    );
    let err = client(&db, None, &delivered).unwrap_err();
    assert!(
        matches!(err, BuildError::Open(OpenError::KeyRequired { .. })),
        "{err}"
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a missing key changed the files"
    );

    let c = client(&db, Some(key(KEY)), &delivered).unwrap();
    assert_eq!(c.stats().unwrap().core.restored, 5);
    assert!(c.stats().unwrap().salvaged.is_none());
    c.close().unwrap();
}

/// A damaged encrypted store (a page in the middle overwritten) is
/// salvaged with its key when the store runs into the page: every row that
/// still decrypts is kept (SQLCipher gives up on a connection at the first
/// bad page, so this needs fresh connections), the rows of the bad page are
/// holes, and the fresh file is encrypted too: no plaintext on disk, and
/// it opens with the key only.
#[test]
fn a_damaged_encrypted_store_is_salvaged_into_an_encrypted_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    {
        let mut s = SqliteStore::open(&db, keyed(KEY)).unwrap();
        for i in 0..400 {
            let payload = format!(
                r#"{{"n":{i},"note":"{MARKER}","pad":"{}"}}"#,
                "p".repeat(300)
            );
            s.append(i, payload.as_bytes()).unwrap();
        }
        s.sync().unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 20 * 4096, "{}", bytes.len());
    // Page 10 (of 4096 bytes): a table leaf in the middle of the queue.
    bytes[9 * 4096 + 100..9 * 4096 + 200].fill(0x55);
    std::fs::write(&db, &bytes).unwrap();

    let (mut s, at_open) = SqliteStore::open_or_salvage(&db, keyed(KEY)).unwrap();
    assert!(at_open.is_none(), "the open reads no page of the queue");
    let mut sizes = [0u32; 500];
    let n = s.read_sizes(0, &mut sizes).unwrap();
    let report = s
        .take_salvaged()
        .expect("salvaged when the bad page was read");
    let holes = sizes[..n]
        .iter()
        .filter(|&&size| size == outbox_core::HOLE)
        .count();
    assert_eq!(n, 400);
    assert!(
        (1..=20).contains(&holes),
        "{holes} holes: more than the bad page's rows"
    );
    assert_eq!(report.events as usize, 400 - holes);
    s.append(1000, b"{}").unwrap();
    s.sync().unwrap();
    drop(s);

    let files = snapshot(dir.path());
    assert!(files
        .keys()
        .any(|p| p.to_string_lossy().contains(".corrupt-")));
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, MARKER.as_bytes()),
            "{} holds plaintext",
            path.display()
        );
    }
    let missing = SqliteStore::open(&db, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(missing, OpenError::KeyRequired { .. }),
        "{missing}"
    );
    let s = SqliteStore::open(&db, keyed(KEY)).unwrap();
    assert_eq!(s.queue_len().unwrap().0 as usize, 400 - holes + 1);
}
