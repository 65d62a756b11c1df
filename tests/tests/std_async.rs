//! The async face (`outbox-std` feature `async`) on two executors: tokio's
//! multi-thread runtime, and pollster's plain `block_on`, which has no
//! reactor or timer at all — so the futures must be woken by the Client's
//! own threads, never by an executor service.

mod std_support;

use std::time::Duration;

use outbox_std::{AsyncClient, Client, Notification};
use std_support::*;

fn async_client(db: &std::path::Path, collector: &Collector) -> AsyncClient {
    builder(db, collector)
        .flush_mode(outbox_std::FlushMode::Manual)
        .build()
        .unwrap()
        .into_async()
}

/// What both executors run: durable tracks, a flush awaited to the end,
/// a receipt matched against its notification, and an awaited shutdown
/// after which the database can be opened again at once.
async fn story(db: std::path::PathBuf, collector: &Collector) {
    let client = async_client(&db, collector);
    let notes = client.client().notifications();
    let mut receipts = Vec::new();
    for i in 0..20 {
        receipts.push(
            client
                .track_durable(event(&format!("a-{i:02}")))
                .await
                .unwrap(),
        );
    }
    receipts.push(client.track(event("a-20")).await.unwrap());
    let report = client
        .flush_and_wait(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.pending), (21, 0));
    let delivered: Vec<Notification> = notes.try_iter().collect();
    for r in &receipts {
        assert!(
            delivered
                .iter()
                .any(|n| r.concerns(n) && matches!(n, Notification::Delivered { .. })),
            "{r:?} {delivered:?}"
        );
    }
    client.track(event("a-21")).await.unwrap();
    let last = client.shutdown(Duration::MAX).await.unwrap();
    assert_eq!(last.pending, 0);
    assert!(client.flush_and_wait(Duration::from_secs(1)).await.is_err());
    // Shutdown resolved only once the store was closed: the lock is free.
    let again = Client::builder()
        .path(&db)
        .endpoint(collector.url.clone(), "k")
        .build()
        .expect("the database is free once shutdown resolved");
    again.close().unwrap();
    let ids: Vec<String> = (0..22).map(|i| format!("a-{i:02}")).collect();
    assert_eq!(collector.delivered(), ids);
}

/// The async face honours critical events: `track_critical`, and
/// `track`/`track_durable` of an event marked [`Event::critical`], are
/// uploaded in `Manual` mode with no flush asked; the flag is never sent.
async fn critical_story(db: std::path::PathBuf, collector: &Collector) {
    let client = async_client(&db, collector);
    client.track_durable(event("c-0")).await.unwrap();
    client.track_critical(event("c-1")).await.unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 2),
        "track_critical: {:?}",
        collector.delivered()
    );
    client.track(event("c-2").critical(true)).await.unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 3),
        "track of a critical event: {:?}",
        collector.delivered()
    );
    client
        .track_durable(event("c-3").critical(true))
        .await
        .unwrap();
    assert!(
        wait_until(PATIENCE, || collector.delivered().len() == 4),
        "track_durable of a critical event: {:?}",
        collector.delivered()
    );
    for e in collector.accepted_events() {
        assert!(e.get("critical").is_none(), "on the wire: {e}");
    }
    client.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[test]
fn critical_events_on_a_plain_block_on_executor() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    pollster::block_on(critical_story(dir.path().join("q.db"), &collector));
}

#[test]
fn on_a_plain_block_on_executor() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    pollster::block_on(story(dir.path().join("q.db"), &collector));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tokio() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    story(dir.path().join("q.db"), &collector).await;
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_never_blocks_the_executor_thread() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    // A slow server: each answer takes 300 ms.
    let collector = Collector::with_policy(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Reply::ok()
    });
    let dir = tempfile::tempdir().unwrap();
    let client = async_client(&dir.path().join("q.db"), &collector);
    // On this one executor thread, a ticker runs only while the other
    // task is pending; a call that blocked the thread would starve it.
    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    for i in 0..5 {
        client
            .track_durable(event(&format!("nb-{i}")))
            .await
            .unwrap();
    }
    let before = ticks.load(Ordering::SeqCst);
    let report = client
        .flush_and_wait(Duration::from_secs(30))
        .await
        .unwrap();
    let during = ticks.load(Ordering::SeqCst) - before;
    assert_eq!(report.delivered, 5);
    assert!(during > 0, "the executor thread was blocked while waiting");
    let before = ticks.load(Ordering::SeqCst);
    client.track(event("nb-5")).await.unwrap();
    client.client().flush().unwrap();
    client.shutdown(Duration::from_secs(30)).await.unwrap();
    assert!(
        ticks.load(Ordering::SeqCst) > before,
        "blocked during shutdown"
    );
    stop.store(true, Ordering::SeqCst);
    ticker.await.unwrap();
    assert_eq!(collector.delivered().len(), 6);
}
