//! The network and power policy (DESIGN.md "SDK features v3"): under
//! `Unmetered` nothing is uploaded on a metered or unknown network, not
//! even on an explicit flush; power save defers automatic flushes, never
//! an explicit one; a change to a usable network or out of power save
//! resumes what waited.

use core::time::Duration;

use super::harness::{one_send, sends, small, H};
use crate::{FlushMode, Input, Lifecycle, NetworkKind, UploadPolicy};

fn net(kind: NetworkKind) -> Input {
    Input::Network { up: true, kind }
}

#[test]
fn unmetered_policy_uploads_nothing_on_a_metered_or_unknown_network() {
    let mut h = H::new(small().upload_on(UploadPolicy::Unmetered).build().unwrap());
    // The machine starts with a network of unknown kind: nothing goes.
    h.track(1);
    assert!(sends(&h.drain()).is_empty(), "unknown kind");
    assert!(!h.m.stats().uploads_allowed);
    assert!(sends(&h.input(net(NetworkKind::Metered))).is_empty());
    h.track(1);
    assert!(sends(&h.drain()).is_empty(), "metered, Immediate mode");
    assert!(
        sends(&h.input(Input::Flush)).is_empty(),
        "an explicit flush waits for an unmetered network too"
    );
    assert!(sends(&h.advance(100_000)).is_empty());
    // Unmetered: everything that waited goes, oldest first.
    let b = one_send(&h.input(net(NetworkKind::Unmetered)));
    assert_eq!((b.first, b.last), (0, 1));
    assert!(h.m.stats().uploads_allowed);
}

#[test]
fn any_policy_uploads_on_every_kind() {
    for kind in [
        NetworkKind::Metered,
        NetworkKind::Unknown,
        NetworkKind::Unmetered,
    ] {
        let mut h = H::default_small();
        h.input(net(kind));
        h.track(1);
        one_send(&h.drain());
    }
}

#[test]
fn becoming_unmetered_cuts_a_transport_backoff_short_like_network_restored() {
    let mut h = H::new(small().upload_on(UploadPolicy::Unmetered).build().unwrap());
    h.input(net(NetworkKind::Unmetered));
    h.track(1);
    let b = one_send(&h.drain());
    h.input(Input::TransportFailed { batch: b.id });
    assert!(h.m.stats().retry_at.is_some());
    h.input(net(NetworkKind::Metered));
    // Metered -> unmetered is the network coming back for uploads.
    one_send(&h.input(net(NetworkKind::Unmetered)));
}

#[test]
fn power_save_defers_a_period_flush_until_it_ends() {
    let mut h = H::new(
        small()
            .flush_mode(FlushMode::Period)
            .flush_period(Duration::from_millis(1_000))
            .flush_threshold(None)
            .build()
            .unwrap(),
    );
    h.input(Input::PowerSave(true));
    assert!(h.m.stats().power_save);
    h.track(1);
    h.drain();
    assert!(
        sends(&h.advance(1_000)).is_empty(),
        "period due in power save"
    );
    assert!(sends(&h.input(Input::Lifecycle(Lifecycle::Background))).is_empty());
    assert!(sends(&h.advance(60_000)).is_empty());
    assert_eq!(h.m.poll_timeout(), None, "no wake-ups while deferred");
    // Power save ends: the deferred flush goes at once.
    let b = one_send(&h.input(Input::PowerSave(false)));
    assert_eq!(b.first, 0);
}

#[test]
fn power_save_defers_immediate_mode_but_never_an_explicit_flush() {
    let mut h = H::default_small();
    h.input(Input::PowerSave(true));
    h.track(1);
    assert!(sends(&h.drain()).is_empty(), "Immediate is automatic");
    let b = one_send(&h.input(Input::Flush));
    h.track(1);
    h.drain();
    // The explicit request stands until the queue is empty: the event
    // tracked meanwhile goes in the next batch.
    let b2 = one_send(&h.respond(&b, 200));
    assert_eq!(b2.first, 1);
    h.respond(&b2, 200);
    assert_eq!(h.m.stats().pending_events, 0);
    h.track(1);
    assert!(sends(&h.drain()).is_empty(), "the explicit request ended");
}

#[test]
fn power_save_does_not_defer_a_retry_of_an_explicit_flush() {
    let mut h = H::new(small().flush_mode(FlushMode::Manual).build().unwrap());
    h.input(Input::PowerSave(true));
    h.track(1);
    let b = one_send(&h.input(Input::Flush));
    h.respond(&b, 503);
    let at = h.m.stats().retry_at.expect("a backoff");
    one_send(&h.advance(at.as_millis() - h.now.as_millis()));
}
