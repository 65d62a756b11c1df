//! The network and power policy through the std Client (issue 18 item 4):
//! under `upload_on(Unmetered)` nothing is uploaded on a metered network,
//! and everything arrives once it is unmetered; power save defers a
//! `Period` flush but never an explicit one, and its end lets the deferred
//! flush go.
//!
//! "Nothing was sent" is read from the machine's accounts after a `sync`
//! (the worker has handled every earlier call by then): no batch in flight,
//! none delivered, no retry; and the collector saw no request.

mod std_support;

use std::time::Duration;

use outbox_std::{Client, FlushMode, NetworkKind, UploadPolicy};
use std_support::*;

/// Nothing was handed to the transport so far.
fn nothing_sent(client: &Client, collector: &Collector) {
    client.sync().unwrap();
    let s = client.stats().unwrap().core;
    assert_eq!(
        (s.in_flight_events, s.delivered, s.retries),
        (0, 0, 0),
        "{s:?}"
    );
    assert!(collector.requests().is_empty());
}

#[test]
fn unmetered_policy_uploads_nothing_on_a_metered_network_then_everything() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .upload_on(UploadPolicy::Unmetered)
        .build()
        .unwrap();
    client.set_network(true, NetworkKind::Metered).unwrap();
    let ids: Vec<String> = (0..5).map(|i| format!("m-{i}")).collect();
    for id in &ids {
        client.track(event(id)).unwrap();
    }
    // Immediate mode and an explicit flush: both wait for unmetered.
    client.flush().unwrap();
    nothing_sent(&client, &collector);
    let s = client.stats().unwrap().core;
    assert!(s.network_up && !s.uploads_allowed);
    assert_eq!(s.pending_events, 5);
    // A network report without a kind keeps the metered one.
    client.set_network_available(false).unwrap();
    client.set_network_available(true).unwrap();
    nothing_sent(&client, &collector);

    client.set_network(true, NetworkKind::Unmetered).unwrap();
    assert!(wait_until(PATIENCE, || collector.delivered().len() == 5));
    assert_eq!(collector.delivered(), ids);
    assert!(client.stats().unwrap().core.uploads_allowed);
}

#[test]
fn the_default_policy_uploads_on_a_metered_network() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .build()
        .unwrap();
    client.set_network(true, NetworkKind::Metered).unwrap();
    client.track(event("any-0")).unwrap();
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["any-0"]);
}

#[test]
fn power_save_defers_a_period_flush_but_not_an_explicit_one() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&dir.path().join("q.db"), &collector)
        .flush_mode(FlushMode::Period)
        .configure(|c| {
            c.flush_period(Duration::from_millis(50))
                .flush_threshold(None)
        })
        .build()
        .unwrap();
    client.set_power_save(true).unwrap();
    client.track(event("p-0")).unwrap();
    // The period passes: the flush it requests stands, deferred.
    assert!(wait_until(PATIENCE, || client
        .stats()
        .unwrap()
        .core
        .flush_requested));
    nothing_sent(&client, &collector);
    assert!(client.stats().unwrap().core.power_save);

    // An explicit flush goes in power save.
    client.flush_and_wait(PATIENCE).unwrap();
    assert_eq!(collector.delivered(), ["p-0"]);

    // The next period's flush is deferred again, until power save ends.
    client.track(event("p-1")).unwrap();
    assert!(wait_until(PATIENCE, || client
        .stats()
        .unwrap()
        .core
        .flush_requested));
    client.sync().unwrap();
    assert_eq!(collector.delivered(), ["p-0"]);
    assert_eq!(client.stats().unwrap().core.in_flight_events, 0);
    client.set_power_save(false).unwrap();
    assert!(wait_until(PATIENCE, || collector.delivered().len() == 2));
    assert_eq!(collector.delivered(), ["p-0", "p-1"]);
}
