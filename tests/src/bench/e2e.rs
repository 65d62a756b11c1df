//! Row `e2e`: events acknowledged by a collector on 127.0.0.1 per second.
//!
//! - outbox: the durable Client (SQLite, NORMAL, Immediate flush mode, its
//!   default batches of up to 500 events) tracks every event, then
//!   `flush_and_wait` until the collector has acknowledged all of them;
//! - the peer: the `segment` crate's `Batcher` and `HttpClient` (reqwest on
//!   a one-thread tokio runtime), keeping nothing on disk: it fills a batch
//!   up to its 500 KB limit, posts it, waits for the answer, and goes on.
//!
//! Both post the same events (the peer's carry the same kind of `messageId`
//! in `extra`) to the same collector, and both are counted only by what the
//! collector acknowledged. C = outbox / peer.
//!
//! C2 runs the peer once more with our batch limits (outbox's default
//! `max_batch_events`, 500, and the `Batcher`'s own byte limit, 500 KiB,
//! next to our 500 000 bytes: with ~330-byte events the count binds first),
//! so both send the same number of events per request: C2 = outbox / that
//! peer.
//!
//! The collector must cost far less than either contender: it measures the
//! CPU time of its own threads per request (`CLOCK_THREAD_CPUTIME_ID`) and
//! the row prints it.
//!
//! outbox runs as an application gets it, gzip on; one more run with gzip
//! off measures the request body bytes per event on the wire both ways:
//! J = with gzip / without (printed, not part of C).

use std::time::Duration;

use outbox_std::http::HttpConfig;
use outbox_std::{Client, Event};
use segment::message::{Track, User};
use segment::{Batcher, Client as _, HttpClient};

use super::collector::Collector;
use super::events::events;
use super::table::{grouped, Line, Ratios};
use super::{median, rate, timed, Options};

fn count(o: &Options) -> usize {
    if o.quick {
        20_000
    } else {
        100_000
    }
}

/// One contender's run: events acknowledged per second, requests, and
/// request body bytes on the wire.
struct Run {
    rate: f64,
    requests: u64,
    wire: u64,
    /// CPU seconds the collector spent on this run's requests.
    collector_cpu: f64,
}

/// outbox end to end: the default gzip setting with `gzip: None`, else
/// that level (`Some(None)`: uncompressed).
fn outbox(collector: &Collector, mut events: Vec<Event>, gzip: Option<Option<u32>>) -> Run {
    let n = events.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut http = HttpConfig::new(collector.url.clone(), "bench-key");
    if let Some(level) = gzip {
        http = http.gzip(level);
    }
    let client = Client::builder()
        .path(dir.path().join("e2e.db"))
        .http(http)
        .configure(|c| c.max_queue_events(n as u32))
        .build()
        .expect("open the bench Client");
    let before = collector.acked();
    let requests = collector.requests();
    let wire = collector.wire_bytes();
    let cpu = collector.cpu_secs();
    let (report, took) = timed(|| {
        // Drained, so the 6 MB vector itself is freed after the clock
        // stops (freeing it makes glibc consolidate every small free chunk).
        for e in events.drain(..) {
            client.track(e).expect("track");
        }
        client
            .flush_and_wait(Duration::from_secs(300))
            .expect("every event delivered")
    });
    let acked = collector.acked() - before;
    assert_eq!(report.pending, 0);
    assert!(acked >= n as u64, "collector acknowledged {acked} of {n}");
    client.close().expect("close");
    Run {
        rate: rate(n, took),
        requests: collector.requests() - requests,
        wire: collector.wire_bytes() - wire,
        collector_cpu: collector.cpu_secs() - cpu,
    }
}

/// The same events as the peer's messages.
fn peer_messages(events: &[Event]) -> Vec<Track> {
    events
        .iter()
        .map(|e| {
            let mut extra = serde_json::Map::new();
            extra.insert("messageId".into(), uuid::Uuid::new_v4().to_string().into());
            Track {
                user: User::UserId {
                    user_id: e.user_id.clone().unwrap_or_default(),
                },
                event: e.event.clone().unwrap_or_default(),
                properties: e.properties.clone().unwrap_or_default(),
                context: e.context.clone(),
                extra,
                ..Track::default()
            }
        })
        .collect()
}

/// The non-durable peer, cutting a batch at `max_events` events as well
/// as at its own byte limit (`usize::MAX`: its byte limit only).
fn peer(collector: &Collector, messages: Vec<Track>, max_events: usize) -> Run {
    let n = messages.len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = HttpClient::new(reqwest::Client::new(), collector.url.clone());
    let before = collector.acked();
    let requests = collector.requests();
    let wire = collector.wire_bytes();
    let cpu = collector.cpu_secs();
    let ((), took) = timed(|| {
        rt.block_on(async {
            let mut batcher = Batcher::new(None);
            let mut in_batch = 0usize;
            for m in messages {
                if in_batch == max_events {
                    let full = std::mem::replace(&mut batcher, Batcher::new(None));
                    http.send("bench-key".into(), full.into_message())
                        .await
                        .expect("peer send");
                    in_batch = 0;
                }
                if let Some(back) = batcher.push(m).expect("push") {
                    let full = std::mem::replace(&mut batcher, Batcher::new(None));
                    http.send("bench-key".into(), full.into_message())
                        .await
                        .expect("peer send");
                    batcher.push(back).expect("push");
                    in_batch = 0;
                }
                in_batch += 1;
            }
            if !batcher.is_empty() {
                http.send("bench-key".into(), batcher.into_message())
                    .await
                    .expect("peer send");
            }
        });
    });
    let acked = collector.acked() - before;
    assert!(acked >= n as u64, "collector acknowledged {acked} of {n}");
    Run {
        rate: rate(n, took),
        requests: collector.requests() - requests,
        wire: collector.wire_bytes() - wire,
        collector_cpu: collector.cpu_secs() - cpu,
    }
}

/// Run the row; sets C, C2 and J.
pub fn run(o: &Options, ratios: &mut Ratios) -> Vec<Line> {
    let n = count(o);
    let all = events(n);
    let collector = Collector::start();
    let our_batch = outbox_core::Config::builder()
        .build()
        .expect("the default core config")
        .max_batch_events() as usize;
    let (mut ours, mut theirs, mut same) = (vec![], vec![], vec![]);
    for _ in 0..o.reps() {
        ours.push(outbox(&collector, all.clone(), None));
        theirs.push(peer(&collector, peer_messages(&all), usize::MAX));
        same.push(peer(&collector, peer_messages(&all), our_batch));
    }
    let versus = |them: &[Run]| {
        median(
            ours.iter()
                .zip(them)
                .map(|(x, y)| x.rate / y.rate)
                .collect(),
        )
    };
    ratios.e2e_vs_peer = Some(versus(&theirs));
    ratios.e2e_vs_peer_same_batch = Some(versus(&same));
    let plain = outbox(&collector, all.clone(), Some(None));
    let per_event = |wire: u64| wire as f64 / n as f64;
    let gzipped = per_event(ours[0].wire);
    let uncompressed = per_event(plain.wire);
    ratios.gzip_wire_bytes_ratio = Some(gzipped / uncompressed.max(1e-9));
    let rates = |runs: &[Run]| median(runs.iter().map(|r| r.rate).collect());
    let per_request = |runs: &[Run]| {
        let requests: u64 = runs.iter().map(|r| r.requests).sum();
        (n * runs.len()) as f64 / requests.max(1) as f64
    };
    let cpu = |runs: &[Run]| {
        let requests: u64 = runs.iter().map(|r| r.requests).sum();
        let secs: f64 = runs.iter().map(|r| r.collector_cpu).sum();
        let events = (n * runs.len()) as f64;
        format!(
            "collector CPU {:.0} us/request, {:.2} us/event",
            secs * 1e6 / requests.max(1) as f64,
            secs * 1e6 / events
        )
    };
    vec![
        Line::measured(
            "e2e",
            "outbox Client, durable, up to 500/batch",
            format!("{} ev/s", grouped(rates(&ours))),
            format!(
                "{n} events acknowledged, {} reps, {:.0} events/request; {}",
                ours.len(),
                per_request(&ours),
                cpu(&ours)
            ),
        ),
        Line::measured(
            "e2e",
            "peer: segment Batcher, in memory, 500 KB",
            format!("{} ev/s", grouped(rates(&theirs))),
            format!(
                "same events and collector, {:.0} events/request, {:.0} wire B/event; {}",
                per_request(&theirs),
                per_event(theirs[0].wire),
                cpu(&theirs)
            ),
        ),
        Line::measured(
            "e2e",
            format!("peer: segment Batcher, {our_batch}/batch like ours"),
            format!("{} ev/s", grouped(rates(&same))),
            format!(
                "C2; {:.0} events/request; {}",
                per_request(&same),
                cpu(&same)
            ),
        ),
        Line::measured(
            "e2e",
            "outbox wire bytes per event, gzip (default)",
            format!("{gzipped:.1} B/event"),
            format!(
                "request bodies as sent; without gzip {uncompressed:.1} B/event ({} ev/s)",
                grouped(plain.rate)
            ),
        ),
    ]
}
