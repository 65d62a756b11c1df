use super::*;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("q.db"), SqliteOptions::default()).unwrap()
}

fn restored(store: &mut SqliteStore) -> Vec<(Seq, u32)> {
    let mut v = vec![];
    store.restore(|s, n| v.push((s, n))).unwrap();
    v
}

#[test]
fn appends_are_visible_after_sync_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.append(5, b"{\"a\":1}").unwrap();
    s.append(6, b"{}").unwrap();
    s.sync().unwrap();
    drop(s);
    let mut s = open(&dir);
    assert_eq!(restored(&mut s), [(5, 7), (6, 2)]);
    let mut buf = [0u8; 64];
    let n = s.read_range(5, 6, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"{\"a\":1}{}");
}

#[test]
fn unsynced_appends_are_gone_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.append(0, b"{}").unwrap();
    s.sync().unwrap();
    s.append(1, b"{}").unwrap();
    // A crash: the connection goes away without a commit.
    drop(s);
    let mut s = open(&dir);
    assert_eq!(restored(&mut s), [(0, 2)]);
}

#[test]
fn delete_commits_at_once_without_pending_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    for i in 0..4 {
        s.append(i, b"{}").unwrap();
    }
    s.sync().unwrap();
    s.delete_through(1).unwrap();
    drop(s);
    let mut s = open(&dir);
    assert_eq!(restored(&mut s), [(2, 2), (3, 2)]);
}

#[test]
fn read_range_reports_holes_and_small_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.append(0, b"{}").unwrap();
    s.append(2, b"{}").unwrap();
    s.sync().unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(
        s.read_range(0, 2, &mut buf),
        Err(StoreError::Malformed(_))
    ));
    assert!(matches!(
        s.read_range(0, 0, &mut buf[..1]),
        Err(StoreError::Malformed(_))
    ));
}

#[test]
fn reject_keeps_a_dead_letter_and_exports_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.append(0, br#"{"bad":true}"#).unwrap();
    s.append(1, b"{}").unwrap();
    s.sync().unwrap();
    s.reject(0, 400, RejectReason::Poison).unwrap();
    s.delete_through(0).unwrap();
    let d = s.dead_letters().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].seq, d[0].status, d[0].reason.as_str()),
        (0, 400, "poison")
    );
    assert_eq!(d[0].payload, br#"{"bad":true}"#);
    let mut out = Vec::new();
    assert_eq!(s.export_dead_letters(&mut out).unwrap(), 1);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["event"]["bad"], true);
    assert_eq!(restored(&mut s), [(1, 2)]);
    assert_eq!(s.purge_dead_letters(d[0].id).unwrap(), 1);
    assert_eq!(s.dead_letter_count().unwrap(), 0);
}

#[test]
fn a_full_database_fails_the_write_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions::default().max_size_bytes(Some(64 * 1024));
    let mut s = SqliteStore::open(dir.path().join("q.db"), opts).unwrap();
    let big = vec![b'x'; 4000];
    s.append(0, &big).unwrap();
    s.sync().unwrap();
    let mut failed = None;
    for i in 1..100 {
        if let Err(e) = s.append(i, &big) {
            failed = Some(e);
            break;
        }
    }
    assert_eq!(failed, Some(StoreError::Full));
    // The transaction was rolled back, so the sync must say so.
    let synced = s.sync();
    assert!(synced.is_err(), "{synced:?}");
    let r = restored(&mut s);
    assert_eq!(r[0], (0, 4000));
}

#[test]
fn second_open_fails_fast_and_read_only_view_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.append(0, b"{}").unwrap();
    s.sync().unwrap();
    let e = SqliteStore::open(dir.path().join("q.db"), SqliteOptions::default()).unwrap_err();
    assert!(matches!(e, OpenError::InUse { .. }), "{e}");
    let view = SqliteStore::open_read_only(dir.path().join("q.db")).unwrap();
    assert_eq!(view.queue_len().unwrap(), (1, 2));
    view.integrity_check().unwrap();
    drop(s);
    drop(open(&dir));
}
