//! Critical events (DESIGN.md "SDK features v3"): a flush up to them in any
//! mode, never the overflow victim while a non-critical event is pending,
//! and the flag kept across a restart.

use core::time::Duration;
use std::vec::Vec;

use super::harness::{one_send, sends, small, Hn, H};
use crate::{
    DropReason, FlushMode, Input, InputError, Lifecycle, NetworkKind, Output, UploadPolicy,
    CRITICAL, DISCARDED,
};

fn offline() -> Input {
    Input::Network {
        up: false,
        kind: NetworkKind::Unknown,
    }
}

fn online() -> Input {
    Input::Network {
        up: true,
        kind: NetworkKind::Unknown,
    }
}

fn in_mode(mode: FlushMode) -> H {
    H::new(small().flush_mode(mode).build().unwrap())
}

fn dropped(outs: &[Output]) -> Vec<(u64, u64, DropReason)> {
    outs.iter()
        .filter_map(|o| match *o {
            Output::Dropped {
                first,
                last,
                reason,
            } => Some((first, last, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_critical_track_flushes_the_queue_up_to_it_in_every_mode() {
    for mode in [FlushMode::Manual, FlushMode::AppClose, FlushMode::Period] {
        let mut h = in_mode(mode);
        h.track(10);
        h.track(20);
        assert!(sends(&h.drain()).is_empty(), "{mode:?}: no flush yet");
        h.track_critical(30);
        let b = one_send(&h.drain());
        assert_eq!((b.first, b.last), (0, 2), "{mode:?}: the queue up to it");
        let out = h.respond(&b, 200);
        assert!(out.contains(&Output::Delivered { first: 0, last: 2 }));
        h.track(40);
        assert!(
            sends(&h.drain()).is_empty(),
            "{mode:?}: the request ended with the critical event"
        );
        assert!(!h.m.stats().flush_requested);
    }
}

#[test]
fn a_critical_flush_waits_for_the_network_and_for_retry_after() {
    let mut h = in_mode(FlushMode::Manual);
    h.input(offline());
    h.track_critical(10);
    assert!(sends(&h.drain()).is_empty(), "offline: it waits");
    assert!(h.m.stats().flush_requested);
    let b = one_send(&h.input(online()));
    h.input(Input::Response {
        batch: b.id,
        status: 503,
        retry_after: Some(Duration::from_secs(60)),
    });
    h.track_critical(20);
    h.input(Input::SetFlushMode(FlushMode::Manual));
    assert!(
        sends(&h.drain()).is_empty(),
        "a critical event never cuts Retry-After short"
    );
    assert!(sends(&h.advance(59_000)).is_empty());
    let b = one_send(&h.advance(2_000));
    assert_eq!((b.first, b.last), (0, 1));
}

#[test]
fn a_critical_flush_passes_power_save_but_not_the_unmetered_policy() {
    let mut h = in_mode(FlushMode::Immediate);
    h.input(Input::PowerSave(true));
    h.track(10);
    assert!(sends(&h.drain()).is_empty(), "power save defers Immediate");
    h.track_critical(20);
    let b = one_send(&h.drain());
    assert_eq!((b.first, b.last), (0, 1), "it goes like an explicit flush");

    let mut h = H::new(
        small()
            .flush_mode(FlushMode::Manual)
            .upload_on(UploadPolicy::Unmetered)
            .build()
            .unwrap(),
    );
    h.input(Input::Network {
        up: true,
        kind: NetworkKind::Metered,
    });
    h.track_critical(10);
    assert!(sends(&h.drain()).is_empty(), "metered: it waits");
    assert!(sends(&h.advance(100_000)).is_empty());
    let b = one_send(&h.input(Input::Network {
        up: true,
        kind: NetworkKind::Unmetered,
    }));
    assert_eq!((b.first, b.last), (0, 0));
}

#[test]
fn drop_oldest_behind_a_critical_head_drops_the_oldest_plain_event() {
    let mut h = in_mode(FlushMode::Manual);
    h.input(offline());
    h.track_critical(10);
    for _ in 1..16 {
        h.track(10);
    }
    h.drain();
    h.track(10);
    let out = h.drain();
    assert_eq!(dropped(&out), [(1, 1, DropReason::Overflow)]);
    assert!(out.contains(&Output::Discard { seq: 1 }));
    assert_eq!(h.store.get(&1), Some(&DISCARDED));
    let s = h.m.stats();
    assert_eq!((s.pending_events, s.dropped_overflow), (16, 1));
    assert!(s.balanced());
    // The queue still goes out in order, without the victim.
    let b = one_send(&h.input(online()));
    assert_eq!((b.first, b.last), (0, 0), "a batch stops at the hole");
    let out = h.respond(&b, 200);
    assert!(
        sends(&out).is_empty(),
        "the flush went up to the critical event"
    );
    let b = one_send(&h.input(Input::Flush));
    assert_eq!(b.first, 2, "the victim is gone");
}

#[test]
fn a_plain_event_that_could_only_fit_by_dropping_a_critical_one_is_refused() {
    let mut h = in_mode(FlushMode::Manual);
    h.input(offline());
    for _ in 0..16 {
        h.track_critical(10);
    }
    h.drain();
    assert_eq!(
        h.m.handle(h.now, Input::Track { size: 10 }),
        Err(InputError::QueueFull)
    );
    // Every pending event is critical: a new critical one takes the normal
    // rule (the oldest goes).
    h.track_critical(10);
    assert_eq!(dropped(&h.drain()), [(0, 0, DropReason::Overflow)]);
}

#[test]
fn the_batch_in_flight_is_never_the_victim() {
    let mut h = in_mode(FlushMode::Manual);
    h.track_critical(10);
    let b = one_send(&h.drain());
    assert_eq!((b.first, b.last), (0, 0));
    h.input(offline());
    for _ in 1..16 {
        h.track(10);
    }
    h.drain();
    // The head is critical and in flight; 1 is the oldest plain event.
    h.track(10);
    assert_eq!(dropped(&h.drain()), [(1, 1, DropReason::Overflow)]);
    let mut h = in_mode(FlushMode::Manual);
    h.track_critical(10);
    h.track(10);
    h.input(Input::Flush);
    let b = h.out.iter().rev().find_map(|o| match *o {
        Output::Send(b) => Some(b),
        _ => None,
    });
    let b = b.expect("a send");
    assert_eq!((b.first, b.last), (0, 1));
    for _ in 2..16 {
        h.track(10);
    }
    h.drain();
    h.track(10);
    assert_eq!(
        dropped(&h.drain()),
        [(2, 2, DropReason::Overflow)],
        "1 is in flight"
    );
}

#[test]
fn the_flag_survives_a_restart_and_a_discard_leaves_silently() {
    let mut h = in_mode(FlushMode::Manual);
    // 0 critical, 1 discarded (an overflow victim), 2 plain.
    let out = h.restore(&[(0, 10 | CRITICAL), (1, DISCARDED), (2, 10)]);
    assert!(sends(&out).is_empty(), "Manual: nothing by itself");
    // The store's newest critical record, given at start-up.
    let out = h.input(Input::CriticalPending { through: 0 });
    assert!(dropped(&out).is_empty(), "a discard is no damage: {out:?}");
    assert_eq!(h.m.pending_critical(0), Some(true));
    assert_eq!(h.m.pending_critical(2), Some(false));
    let b = one_send(&out);
    assert_eq!((b.first, b.last, b.bytes), (0, 0, 10 + 1 + 10));
    let out = h.respond(&b, 200);
    assert!(sends(&out).is_empty(), "the rest waits for a flush");
    let s = h.m.stats();
    assert_eq!((s.pending_events, s.dropped_damaged), (1, 0));
    h.input(Input::Lifecycle(Lifecycle::Background));
}

#[test]
fn a_scan_finds_the_plain_victim_no_window_shows() {
    // A window of 4 sizes over 10 events: 0..=3 critical fill it, the
    // plain event 6 hides between it and the newest; 9 events allowed.
    let config = small()
        .flush_mode(FlushMode::Manual)
        .max_queue_events(9)
        .max_batch_events(4)
        .build()
        .unwrap();
    let mut h = Hn::<4>::new(config);
    let records: Vec<(u64, u32)> = (0..10)
        .map(|seq| (seq, if seq == 6 { 10 } else { 10 | CRITICAL }))
        .collect();
    let out = h.restore(&records);
    assert_eq!(
        dropped(&out),
        [(6, 6, DropReason::Overflow)],
        "the hidden plain event goes, no critical one: {out:?}"
    );
    assert!(out.contains(&Output::Discard { seq: 6 }));
    assert_eq!(h.store.get(&6), Some(&DISCARDED));
    assert_eq!(h.m.stats().pending_events, 9);
}

#[test]
fn a_queue_of_holes_only_asks_for_no_wake_up() {
    // A window of 4 over 10 events, the limits shrunk at a restore: the
    // plain events behind the critical head 0 go first (4 and 5 from the
    // middle, where no window shows them), then 0 itself, over the byte
    // limit alone. Only holes are left: nothing to wait for, so no period
    // tick is asked (the holes go at the next input).
    let config = small()
        .flush_mode(FlushMode::Period)
        .flush_period(Duration::from_secs(60))
        .max_queue_events(1)
        .max_queue_bytes(40)
        .max_event_bytes(40)
        .max_batch_events(4)
        .build()
        .unwrap();
    let mut h = Hn::<4>::new(config);
    // Power save: no automatic send wants the sizes read.
    h.input(Input::PowerSave(true));
    let records: Vec<(u64, u32)> = (0..10)
        .map(|seq| (seq, if seq == 0 { 50 | CRITICAL } else { 10 }))
        .collect();
    let out = h.restore(&records);
    assert!(out.contains(&Output::Discard { seq: 4 }), "{out:?}");
    assert_eq!(h.m.stats().pending_events, 0, "{out:?}");
    // The restore's own flush request goes with a mode switch; a tick
    // settles the period timer.
    h.input(Input::SetFlushMode(FlushMode::Period));
    let out = h.advance(1);
    assert_eq!(h.m.poll_timeout(), None, "{out:?}");
}

/// Poll outputs up to (and with) the `Persist` of `seq`, as a driver does
/// before it tries the append.
fn until_persist_of(h: &mut H, seq: u64) -> Vec<Output> {
    let mut got = Vec::new();
    while let Some(o) = h.m.poll_output() {
        got.push(o);
        if matches!(o, Output::Persist { seq: s, .. } if s == seq) {
            return got;
        }
    }
    panic!("no persist of {seq}: {got:?}");
}

/// A critical event the store failed to append does not exist: it asks
/// for no flush (in `Manual` the plain event before it waits for one),
/// and a critical event before it still asks for the queue up to itself.
#[test]
fn a_critical_event_not_stored_asks_for_no_flush() {
    let mut h = in_mode(FlushMode::Manual);
    h.track(10);
    h.drain();
    let seq = h.track_critical(10);
    until_persist_of(&mut h, seq);
    let out = h.input(Input::PersistFailed { from_seq: seq });
    assert_eq!(dropped(&out), [(seq, seq, DropReason::NotStored)]);
    assert!(sends(&out).is_empty(), "no flush is owed: {out:?}");
    assert!(!h.m.stats().flush_requested);
    assert!(sends(&h.advance(100_000)).is_empty());
    h.track(10);
    assert!(sends(&h.drain()).is_empty(), "Manual: nothing by itself");

    // A critical event stored before it keeps its own request.
    let mut h = in_mode(FlushMode::Manual);
    h.input(offline());
    h.track_critical(10);
    h.track(10);
    h.drain();
    let seq = h.track_critical(10);
    until_persist_of(&mut h, seq);
    let out = h.input(Input::PersistFailed { from_seq: seq });
    assert_eq!(dropped(&out), [(seq, seq, DropReason::NotStored)]);
    assert!(h.m.stats().flush_requested, "0 still asks");
    let b = one_send(&h.input(online()));
    assert_eq!((b.first, b.last), (0, 1));
    let out = h.respond(&b, 200);
    assert!(sends(&out).is_empty(), "{out:?}");
    assert!(!h.m.stats().flush_requested);
}

/// The critical event before the ones not stored may be one whose flag
/// no window shows any more (its size left the newest window): its
/// request still stands, and no other.
#[test]
fn a_critical_event_not_stored_falls_back_to_one_no_window_shows() {
    let config = small()
        .flush_mode(FlushMode::Manual)
        .max_batch_events(4)
        .build()
        .unwrap();
    let mut h = Hn::<4>::new(config);
    h.input(offline());
    // 0..=3 fill the front window; 5 is critical, in the newest window
    // until the commits let it go.
    for seq in 0..12 {
        if seq == 5 {
            h.track_critical(10);
        } else {
            h.track(10);
        }
        h.input(Input::Commit);
    }
    h.drain();
    let seq = h.track_critical(10);
    let mut got = Vec::new();
    while let Some(o) = h.m.poll_output() {
        got.push(o);
        if matches!(o, Output::Persist { seq: s, .. } if s == seq) {
            break;
        }
    }
    assert_eq!(h.m.pending_critical(5), None, "no window shows 5");
    let out = h.input(Input::PersistFailed { from_seq: seq });
    assert_eq!(dropped(&out), [(seq, seq, DropReason::NotStored)]);
    assert!(h.m.stats().flush_requested, "5 still asks");
    let b = one_send(&h.input(online()));
    assert_eq!((b.first, b.last), (0, 3));
    let b = one_send(&h.respond(&b, 200));
    assert_eq!((b.first, b.last), (4, 7), "up to 5");
    let out = h.respond(&b, 200);
    assert!(
        sends(&out).is_empty(),
        "the flush ends with 5, not with {seq}: {out:?}"
    );
    assert!(!h.m.stats().flush_requested);
}
