//! Issue 17 item 4: the transport's limits. An HTTP overall timeout at or
//! above the machine's `request_timeout` is refused by the builder (each
//! request timeout would otherwise queue another full body behind the one
//! still in flight); the queue of bodies for the transport thread is
//! bounded; `shutdown` returns only once the transport thread has ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbox_std::http::HttpConfig;
use outbox_std::{BatchBody, BuildError, Client, Event, Response, UploadFailed};

/// Seen failing before: the builder accepted a 60 s HTTP timeout with the
/// default 30 s `request_timeout`.
#[test]
fn an_http_timeout_not_below_the_request_timeout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for overall in [Duration::from_secs(30), Duration::from_secs(60)] {
        let built = Client::builder()
            .path(dir.path().join("q.db"))
            .http(
                HttpConfig::new("http://127.0.0.1:9", "k")
                    .timeouts(Duration::from_secs(1), overall),
            )
            .build();
        match built {
            Err(BuildError::HttpTimeout {
                overall: o,
                request_timeout,
            }) => {
                assert_eq!(o, overall);
                assert_eq!(request_timeout, Duration::from_secs(30));
            }
            other => panic!("{overall:?}: {other:?}"),
        }
    }
    // Below it (the default 25 s, or a request_timeout raised above it) is fine.
    let c = Client::builder()
        .path(dir.path().join("q.db"))
        .http(
            HttpConfig::new("http://127.0.0.1:9", "k")
                .timeouts(Duration::from_secs(1), Duration::from_secs(60)),
        )
        .configure(|c| c.request_timeout(Duration::from_secs(61)))
        .build()
        .unwrap();
    c.close().unwrap();
}

/// An uploader that blocks until the test lets it go, counting calls.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<Mutex<bool>>,
    calls: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl Gate {
    fn uploader(
        &self,
    ) -> impl FnMut(&BatchBody) -> Result<Response, UploadFailed> + Send + 'static {
        let gate = self.clone();
        move |_| {
            gate.calls.fetch_add(1, Ordering::SeqCst);
            while !*gate.open.lock().unwrap() {
                std::thread::sleep(Duration::from_millis(5));
            }
            gate.finished.fetch_add(1, Ordering::SeqCst);
            Ok(Response {
                status: 200,
                retry_after: None,
            })
        }
    }
}

/// Seen failing before: with the transport thread stuck on one request and
/// a short request timeout, every retry queued another body (the channel
/// was unbounded): far more bodies than one in flight and one waiting went
/// to the uploader once it was let go. And `shutdown` returned while the
/// transport thread was still uploading.
#[test]
fn a_stuck_request_queues_at_most_one_more_body_and_shutdown_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .uploader(gate.uploader())
        .configure(|c| {
            c.request_timeout(Duration::from_millis(20))
                .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        })
        .build()
        .unwrap();
    client.track(Event::track("e").user_id("u")).unwrap();
    client.flush().unwrap();
    // Let the machine time the request out and retry many times.
    let retries = |c: &Client| c.stats().unwrap().core.retries;
    while retries(&client) < 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    *gate.open.lock().unwrap() = true;
    client.shutdown(Duration::from_secs(30)).unwrap();
    let finished = gate.finished.load(Ordering::SeqCst);
    let calls = gate.calls.load(Ordering::SeqCst);
    assert_eq!(finished, calls, "shutdown returned with an upload running");
    // One stuck, one waiting, then at most a few fresh ones after the gate
    // opened (the queue was delivered then): never one per retry.
    assert!(calls <= 5, "{calls} bodies uploaded for 30 retries");
}
