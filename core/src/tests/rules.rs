//! One test per behaviour rule of DESIGN.md "Behaviour".

use core::time::Duration;
use std::vec;
use std::vec::Vec;

use super::harness::{network, one_send, sends, small, H};
use crate::{
    Config, DropReason, FlushMode, Input, InputError, Instant, Lifecycle, Machine, Output,
    Overflow, RejectReason, RetryCause, StoreSummary, BYTES_PER_WINDOW_SLOT, FIXED_STATE_BYTES,
};

/// `small()` in `Period` mode with a period of `ms` milliseconds.
fn periodic(ms: u64) -> crate::ConfigBuilder {
    small()
        .flush_mode(FlushMode::Period)
        .flush_period(Duration::from_millis(ms))
}

#[test]
fn immediate_sends_each_event_and_batches_what_arrives_in_flight() {
    let mut h = H::default_small();
    h.track(10);
    let out = h.drain();
    assert_eq!(out[0], Output::Persist { seq: 0, size: 10 });
    let b = one_send(&out);
    assert_eq!((b.first, b.last, b.count, b.bytes), (0, 0, 1, 10 + 1 + 10));
    h.track(20);
    h.track(30);
    assert!(
        sends(&h.drain()).is_empty(),
        "one batch in flight at a time"
    );
    let out = h.respond(&b, 200);
    assert!(out.contains(&Output::Delivered { first: 0, last: 0 }));
    assert!(out.contains(&Output::Delete { through: 0 }));
    let b2 = one_send(&out);
    assert_eq!((b2.first, b2.last), (1, 2));
    let out = h.respond(&b2, 204);
    assert!(sends(&out).is_empty());
    let s = h.m.stats();
    assert_eq!(
        (s.delivered, s.pending_events, s.flush_requested),
        (3, 0, false)
    );
    assert!(s.balanced());
    assert_eq!(h.m.poll_timeout(), None, "idle machine asks for no wake-up");
}

#[test]
fn persist_always_precedes_send_and_rejected_precedes_delete() {
    let mut h = H::default_small();
    h.track(5);
    let out = h.drain();
    let p = out
        .iter()
        .position(|o| matches!(o, Output::Persist { .. }))
        .unwrap();
    let s = out
        .iter()
        .position(|o| matches!(o, Output::Send(_)))
        .unwrap();
    assert!(p < s);
    let out = h.respond(&one_send(&out), 400);
    let r = out
        .iter()
        .position(|o| matches!(o, Output::Rejected { .. }))
        .unwrap();
    let d = out
        .iter()
        .position(|o| matches!(o, Output::Delete { .. }))
        .unwrap();
    assert!(r < d, "{out:?}");
}

#[test]
fn period_mode_flushes_on_timer_threshold_background_and_foreground() {
    let cfg = periodic(1000).flush_threshold(Some(3)).build().unwrap();
    let mut h = H::new(cfg);
    assert_eq!(h.m.poll_timeout(), None);
    h.track(1);
    assert!(sends(&h.drain()).is_empty());
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(1000)));
    assert!(sends(&h.advance(999)).is_empty(), "early tick is a no-op");
    let b = one_send(&h.advance(1));
    h.respond(&b, 200);
    assert_eq!(h.m.poll_timeout(), None);

    // Threshold: the third pending event triggers a flush.
    h.track(1);
    h.track(1);
    assert!(sends(&h.drain()).is_empty());
    h.track(1);
    let b = one_send(&h.drain());
    assert_eq!(b.count, 3);
    h.respond(&b, 200);

    // Background, terminate, and foreground with something pending.
    for l in [
        Lifecycle::Background,
        Lifecycle::Terminate,
        Lifecycle::Foreground,
    ] {
        h.track(1);
        assert!(sends(&h.drain()).is_empty());
        let b = one_send(&h.input(Input::Lifecycle(l)));
        h.respond(&b, 200);
    }
    // Foreground with nothing pending does nothing.
    assert!(h.input(Input::Lifecycle(Lifecycle::Foreground)).is_empty());
}

#[test]
fn threshold_can_be_turned_off_and_changed_at_runtime() {
    let cfg = periodic(60_000).flush_threshold(None).build().unwrap();
    let mut h = H::new(cfg);
    for _ in 0..10 {
        h.track(1);
    }
    assert!(sends(&h.drain()).is_empty());
    assert_eq!(
        h.m.handle(h.now, Input::SetFlushThreshold(Some(0))),
        Err(InputError::Config(crate::ConfigError::ZeroFlushThreshold))
    );
    let b = one_send(&h.input(Input::SetFlushThreshold(Some(5))));
    assert_eq!(b.first, 0);
}

#[test]
fn period_change_rearms_the_timer_from_now() {
    let mut h = H::new(periodic(10_000).build().unwrap());
    h.track(1);
    h.drain();
    h.now = Instant::from_millis(4000);
    h.input(Input::SetFlushPeriod(Duration::from_millis(2000)));
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(6000)));
    assert!(h
        .m
        .handle(h.now, Input::SetFlushPeriod(Duration::ZERO))
        .is_err());
    assert_eq!(h.m.config().flush_mode(), FlushMode::Period);
    assert_eq!(h.m.config().flush_period(), Duration::from_millis(2000));
}

#[test]
fn app_close_flushes_only_on_background_and_terminate() {
    let mut h = H::new(small().flush_mode(FlushMode::AppClose).build().unwrap());
    h.track(1);
    assert!(sends(&h.drain()).is_empty());
    assert_eq!(h.m.poll_timeout(), None);
    assert!(sends(&h.input(Input::Lifecycle(Lifecycle::Foreground))).is_empty());
    let b = one_send(&h.input(Input::Lifecycle(Lifecycle::Background)));
    h.respond(&b, 200);
    h.track(1);
    let b = one_send(&h.input(Input::Lifecycle(Lifecycle::Terminate)));
    h.respond(&b, 200);
    assert!(h.m.stats().balanced());
}

#[test]
fn manual_only_on_explicit_flush_which_drains_everything() {
    let mut h = H::new(small().flush_mode(FlushMode::Manual).build().unwrap());
    for _ in 0..10 {
        h.track(1);
    }
    h.drain();
    for l in [
        Lifecycle::Background,
        Lifecycle::Terminate,
        Lifecycle::Foreground,
    ] {
        assert!(sends(&h.input(Input::Lifecycle(l))).is_empty());
    }
    assert!(sends(&h.input(network(false))).is_empty());
    assert!(sends(&h.input(network(true))).is_empty());
    let mut b = one_send(&h.input(Input::Flush));
    let mut batches = 1;
    loop {
        let out = h.respond(&b, 200);
        match sends(&out).first() {
            Some(next) => {
                b = *next;
                batches += 1;
            }
            None => break,
        }
    }
    assert_eq!(batches, 3, "10 events in batches of at most 4");
    assert_eq!(h.m.stats().delivered, 10);
}

#[test]
fn flush_in_every_mode() {
    for mode in [
        FlushMode::Immediate,
        FlushMode::Period,
        FlushMode::AppClose,
        FlushMode::Manual,
    ] {
        let mut h = H::new(periodic(1_000_000).flush_mode(mode).build().unwrap());
        h.input(network(false));
        h.track(1);
        h.drain();
        let b = one_send(&{
            h.input(Input::Flush);
            h.input(network(true))
        });
        assert_eq!(b.first, 0, "{mode:?}");
    }
}

#[test]
fn flush_requested_offline_waits_for_the_network() {
    let mut h = H::new(small().flush_mode(FlushMode::Manual).build().unwrap());
    h.input(network(false));
    h.track(1);
    assert!(sends(&h.input(Input::Flush)).is_empty());
    assert!(h.m.stats().flush_requested);
    assert!(sends(&h.advance(100_000)).is_empty());
    one_send(&h.input(network(true)));
}

#[test]
fn network_restored_flushes_in_automatic_modes() {
    for (mode, expect) in [
        (FlushMode::Immediate, true),
        (FlushMode::Period, true),
        (FlushMode::AppClose, false),
        (FlushMode::Manual, false),
    ] {
        let mut h = H::new(periodic(1_000_000).flush_mode(mode).build().unwrap());
        h.input(network(false));
        h.track(1);
        h.drain();
        h.m.handle(h.now, Input::SetFlushThreshold(None)).unwrap();
        let got = sends(&h.input(network(true)));
        assert_eq!(!got.is_empty(), expect, "{mode:?}");
    }
}

#[test]
fn switching_to_immediate_flushes_what_is_pending() {
    let mut h = H::new(small().flush_mode(FlushMode::Manual).build().unwrap());
    h.track(1);
    h.drain();
    one_send(&h.input(Input::SetFlushMode(FlushMode::Immediate)));
}

#[test]
fn drop_oldest_reports_every_drop_with_its_count() {
    let cfg = small()
        .max_queue_events(3)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    for _ in 0..5 {
        h.track(10);
    }
    let out = h.drain();
    // Two drops in a row without a drain: one report covering both.
    assert!(out.contains(&Output::Dropped {
        first: 0,
        last: 1,
        reason: DropReason::Overflow
    }));
    assert!(out.contains(&Output::Delete { through: 1 }));
    let s = h.m.stats();
    assert_eq!((s.pending_events, s.dropped_overflow, s.tracked), (3, 2, 5));
    assert!(s.balanced());
}

#[test]
fn byte_limit_drops_enough_oldest_events() {
    let cfg = small()
        .max_queue_bytes(250)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    h.track(100);
    h.track(100);
    h.drain();
    h.track(100); // 300 > 250: drop the oldest
    let out = h.drain();
    assert!(out.contains(&Output::Dropped {
        first: 0,
        last: 0,
        reason: DropReason::Overflow
    }));
    h.track(100);
    h.track(100);
    let s = h.m.stats();
    assert!(s.pending_bytes <= 250);
    assert_eq!(s.dropped_overflow, 3);
}

#[test]
fn reject_new_refuses_and_stores_nothing() {
    let cfg = small()
        .max_queue_events(2)
        .overflow(Overflow::RejectNew)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    h.track(1);
    h.track(1);
    h.drain();
    assert_eq!(h.m.track(h.now, 1), Err(InputError::QueueFull));
    assert!(h.drain().is_empty());
    let s = h.m.stats();
    assert_eq!((s.tracked, s.pending_events, s.next_seq), (2, 2, 2));
}

#[test]
fn too_large_is_refused_at_track_time() {
    let mut h = H::default_small();
    assert_eq!(
        h.m.track(h.now, 101),
        Err(InputError::TooLarge {
            size: 101,
            max: 100
        })
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.m.stats().tracked, 0);
    assert_eq!(h.m.track(h.now, 100), Ok(0), "exactly at the limit is fine");
}

#[test]
fn batches_respect_event_and_byte_limits() {
    let cfg = small().flush_mode(FlushMode::Manual).build().unwrap();
    let mut h = H::new(cfg);
    for _ in 0..6 {
        h.track(90);
    }
    // 10 + 3 * (90 + 1) = 283 <= 300; a fourth would be 374.
    let b = one_send(&h.input(Input::Flush));
    assert_eq!((b.count, b.bytes), (3, 283));
    let b = one_send(&h.respond(&b, 200));
    assert_eq!((b.first, b.count), (3, 3));
    let cfg = small().flush_mode(FlushMode::Manual).build().unwrap();
    let mut h = H::new(cfg);
    for _ in 0..6 {
        h.track(1);
    }
    assert_eq!(one_send(&h.input(Input::Flush)).count, 4);
}

/// Eight 5-byte events in Manual mode, flushed as one batch of eight.
fn eight_events_flushed() -> (H, crate::Batch) {
    let cfg = small()
        .max_batch_events(8)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    for _ in 0..8 {
        h.track(5);
    }
    let b = one_send(&h.input(Input::Flush));
    (h, b)
}

/// Answer each batch with `status_of(batch)` until no batch is sent.
fn run_until_idle(
    h: &mut H,
    mut b: crate::Batch,
    status_of: impl Fn(&crate::Batch) -> u16,
) -> usize {
    let mut sent = 1;
    loop {
        let out = h.respond(&b, status_of(&b));
        match sends(&out).first() {
            Some(next) => {
                b = *next;
                sent += 1;
                assert!(sent < 100, "no progress");
            }
            None => return sent,
        }
    }
}

#[test]
fn bad_request_bisects_to_the_poison_event_and_delivers_the_rest() {
    for poison in 0..8u64 {
        let (mut h, b) = eight_events_flushed();
        assert_eq!(b.count, 8);
        let sent = run_until_idle(&mut h, b, |b| {
            if (b.first..=b.last).contains(&poison) {
                400
            } else {
                200
            }
        });
        assert!(sent <= 8, "bisection, not one by one: {sent} sends");
        let rejected: Vec<_> = h
            .out
            .iter()
            .filter_map(|o| match o {
                Output::Rejected {
                    seq,
                    status,
                    reason,
                } => Some((*seq, *status, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(rejected, vec![(poison, 400, RejectReason::Poison)]);
        let s = h.m.stats();
        assert_eq!((s.delivered, s.rejected, s.pending_events), (7, 1, 0));
        // Delivered ranges come in order and skip only the poison.
        let mut seen = Vec::new();
        for o in &h.out {
            if let Output::Delivered { first, last } = o {
                seen.extend(*first..=*last);
            }
        }
        let expect: Vec<u64> = (0..8).filter(|s| *s != poison).collect();
        assert_eq!(seen, expect);
    }
}

#[test]
fn two_poison_events_are_both_isolated() {
    let (mut h, b) = eight_events_flushed();
    run_until_idle(&mut h, b, |b| {
        if (b.first..=b.last).contains(&2) || (b.first..=b.last).contains(&6) {
            400
        } else {
            200
        }
    });
    let s = h.m.stats();
    assert_eq!((s.delivered, s.rejected), (6, 2));
}

#[test]
fn payload_too_large_halves_and_rejects_a_single_event() {
    let (mut h, b) = eight_events_flushed();
    // The server takes at most 2 events, and event 5 never fits.
    let sent = run_until_idle(&mut h, b, |b| {
        if b.count > 2 || (b.first..=b.last).contains(&5) {
            413
        } else {
            200
        }
    });
    let s = h.m.stats();
    assert_eq!((s.delivered, s.rejected), (7, 1));
    assert!(h.out.contains(&Output::Rejected {
        seq: 5,
        status: 413,
        reason: RejectReason::TooLarge
    }));
    assert!(sent <= 10, "{sent}");
}

#[test]
fn unauthorized_halts_keeps_everything_and_resumes() {
    for status in [401, 403] {
        let mut h = H::default_small();
        h.track(1);
        let b = one_send(&h.drain());
        let out = h.respond(&b, status);
        assert!(out.contains(&Output::Halted {
            status,
            reason: crate::HaltReason::Status
        }));
        assert!(sends(&out).is_empty());
        h.track(1);
        assert!(sends(&h.input(Input::Flush)).is_empty());
        assert!(sends(&h.advance(1_000_000)).is_empty());
        assert_eq!(h.m.stats().pending_events, 2);
        assert!(h.m.stats().halted);
        assert_eq!(h.m.poll_timeout(), None, "a halted machine does not poll");
        let b = one_send(&h.input(Input::Resume));
        assert_eq!((b.first, b.last), (0, 1));
    }
}

#[test]
fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
    let mut h = H::default_small();
    h.track(1);
    let mut b = one_send(&h.drain());
    let mut prev_base = 0;
    for attempt in 1..=9u32 {
        let out = h.respond(&b, 503);
        let Some(Output::RetryScheduled {
            at,
            attempt: a,
            cause,
        }) = out
            .iter()
            .find(|o| matches!(o, Output::RetryScheduled { .. }))
            .copied()
        else {
            panic!("no retry scheduled: {out:?}")
        };
        assert_eq!((a, cause), (attempt, RetryCause::Server));
        let base = (1000u64 << (attempt - 1).min(5)).min(32_000);
        let delay = at.millis_since(h.now);
        assert!(
            delay >= base && delay <= base + base / 2,
            "attempt {attempt}: {delay}"
        );
        assert!(base >= prev_base);
        prev_base = base;
        assert_eq!(h.m.poll_timeout(), Some(at));
        // A flush request never cuts a backoff short.
        assert!(sends(&h.input(Input::Flush)).is_empty());
        assert!(sends(&h.advance(delay - 1)).is_empty());
        b = one_send(&h.advance(1));
    }
    let out = h.respond(&b, 200);
    assert!(out.contains(&Output::Delivered { first: 0, last: 0 }));
    assert_eq!(h.m.stats().retries, 9);
}

#[test]
fn jitter_comes_from_the_seed() {
    let delay = |seed| {
        let mut m: Machine<8> =
            Machine::new(small().max_queue_events(8).build().unwrap(), seed).unwrap();
        m.track(Instant::ZERO, 1).unwrap();
        let mut id = 0;
        while let Some(o) = m.poll_output() {
            if let Output::Send(b) = o {
                id = b.id;
            }
        }
        m.handle(Instant::ZERO, Input::TransportFailed { batch: id })
            .unwrap();
        m.poll_timeout().unwrap().as_millis()
    };
    assert_eq!(delay(1), delay(1));
    let distinct: std::collections::BTreeSet<u64> = (0..20).map(delay).collect();
    assert!(
        distinct.len() > 5,
        "jitter varies with the seed: {distinct:?}"
    );
}

#[test]
fn retry_after_replaces_the_delay_only_when_longer() {
    let mut h = H::default_small();
    h.track(1);
    let b = one_send(&h.drain());
    h.input(Input::Response {
        batch: b.id,
        status: 429,
        retry_after: Some(Duration::from_millis(20_000)),
    });
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(20_000)));
    let b = one_send(&h.advance(20_000));
    h.input(Input::Response {
        batch: b.id,
        status: 429,
        retry_after: Some(Duration::from_millis(10)),
    });
    let delay = h.m.poll_timeout().unwrap().millis_since(h.now);
    assert!((2000..=3000).contains(&delay), "{delay}");
}

#[test]
fn max_attempts_drops_the_batch_and_reports_it() {
    let cfg = small().max_attempts(Some(3)).build().unwrap();
    let mut h = H::new(cfg);
    h.track(1);
    h.track(1);
    let mut b = one_send(&h.drain());
    for _ in 0..2 {
        h.input(Input::TransportFailed { batch: b.id });
        let t = h.m.poll_timeout().unwrap();
        h.now = t;
        b = one_send(&h.input(Input::Tick));
    }
    let out = h.input(Input::TransportFailed { batch: b.id });
    assert!(out.contains(&Output::Dropped {
        first: b.first,
        last: b.last,
        reason: DropReason::MaxAttempts
    }));
    let s = h.m.stats();
    assert_eq!(s.dropped_max_attempts, u64::from(b.count));
    assert!(s.balanced());
}

#[test]
fn network_restored_resets_only_a_transport_backoff() {
    let mut h = H::default_small();
    h.track(1);
    let b = one_send(&h.drain());
    h.input(Input::TransportFailed { batch: b.id });
    assert!(h.m.poll_timeout().is_some());
    h.input(network(false));
    let b = one_send(&h.input(network(true)));
    // Now a server-requested backoff: the network coming back does not cut it.
    h.input(Input::Response {
        batch: b.id,
        status: 503,
        retry_after: Some(Duration::from_millis(5_000)),
    });
    h.input(network(false));
    assert!(sends(&h.input(network(true))).is_empty());
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(5_000)));
}

#[test]
fn restore_continues_numbering_and_does_not_persist_again() {
    let mut h = H::default_small();
    let out = h.restore(&[(10, 7), (11, 7), (12, 7)]);
    assert!(!out.iter().any(|o| matches!(o, Output::Persist { .. })));
    assert!(out.contains(&Output::ReadSizes { from: 10, max: 3 }));
    let b = one_send(&out);
    assert_eq!((b.first, b.last), (10, 12));
    assert_eq!(h.track(1), 13);
    assert_eq!(h.m.stats().restored, 3);
    assert!(h.m.stats().balanced());
}

#[test]
fn restore_refuses_impossible_summaries_and_late_restores() {
    let summary = |count, first, last| StoreSummary {
        count,
        bytes: count,
        first,
        last,
    };
    let mut m: Machine<8> = Machine::new(small().max_queue_events(8).build().unwrap(), 1).unwrap();
    // More records than numbers, or a range running backwards: typed errors.
    assert_eq!(
        m.handle(Instant::ZERO, Input::Restore(summary(6, 5, 9))),
        Err(InputError::RestoreCount { count: 6, span: 5 })
    );
    assert_eq!(
        m.handle(Instant::ZERO, Input::Restore(summary(1, 9, 5))),
        Err(InputError::RestoreGap {
            seq: 5,
            expected: 9
        })
    );
    assert_eq!(
        m.handle(Instant::ZERO, Input::Restore(summary(u64::MAX, 0, 9))),
        Err(InputError::RestoreCount {
            count: u64::MAX,
            span: 10
        })
    );
    m.handle(Instant::ZERO, Input::Restore(summary(5, 5, 9)))
        .unwrap();
    assert!(matches!(
        m.handle(Instant::ZERO, Input::Restore(summary(1, 10, 10))),
        Err(InputError::RestoreOutOfOrder { .. })
    ));
    let mut m: Machine<8> = Machine::new(small().max_queue_events(8).build().unwrap(), 1).unwrap();
    m.track(Instant::ZERO, 1).unwrap();
    assert!(m
        .handle(Instant::ZERO, Input::Restore(summary(1, 100, 100)))
        .is_err());
}

#[test]
fn restore_over_shrunk_limits_drops_the_oldest() {
    let cfg = small()
        .max_queue_events(2)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    let out = h.restore(&[(0, 1), (1, 1), (2, 1), (3, 1)]);
    assert!(out.contains(&Output::Delete { through: 1 }));
    let s = h.m.stats();
    assert_eq!(
        (s.pending_events, s.dropped_overflow, s.restored),
        (2, 2, 4)
    );
}

#[test]
fn persist_failure_drops_the_newest_and_spends_their_numbers() {
    let cfg = small()
        .flush_mode(FlushMode::Manual)
        .max_commit_delay(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    for _ in 0..3 {
        h.track(1);
    }
    h.drain();
    let out = h.input(Input::PersistFailed { from_seq: 1 });
    assert_eq!(
        out,
        vec![Output::Dropped {
            first: 1,
            last: 2,
            reason: DropReason::NotStored
        }]
    );
    assert_eq!(
        h.track(1),
        3,
        "a number handed out is never handed out again"
    );
    let s = h.m.stats();
    assert_eq!((s.dropped_not_stored, s.pending_events), (2, 2));
    assert!(s.balanced());
    // The spent numbers leave silently: the batch skips them, a Delete
    // covers them, nothing is reported twice.
    let out = h.input(Input::Flush);
    let b = one_send(&out);
    assert_eq!((b.first, b.last), (0, 0));
    let out = h.respond(&b, 200);
    assert!(out.contains(&Output::Delivered { first: 0, last: 0 }));
    let b = one_send(&out);
    assert_eq!((b.first, b.last), (3, 3));
    let out = h.respond(&b, 200);
    assert!(out.contains(&Output::Delivered { first: 3, last: 3 }));
    assert!(!h.out.iter().any(|o| matches!(
        o,
        Output::Dropped {
            reason: DropReason::Damaged,
            ..
        }
    )));
    assert!(h.store.is_empty());
    assert!(h.m.stats().balanced());
}

#[test]
fn stale_or_unknown_responses_are_ignored() {
    let mut h = H::default_small();
    h.track(1);
    let b = one_send(&h.drain());
    for id in [0, b.id + 1, u64::MAX] {
        assert!(h
            .input(Input::Response {
                batch: id,
                status: 200,
                retry_after: None
            })
            .is_empty());
        assert!(h.input(Input::TransportFailed { batch: id }).is_empty());
    }
    h.respond(&b, 200);
    assert!(h.respond(&b, 200).is_empty(), "a second answer is stale");
    assert_eq!(h.m.stats().delivered, 1);
}

#[test]
fn overflow_while_in_flight_counts_each_event_once() {
    let cfg = small().max_queue_events(2).build().unwrap();
    let mut h = H::new(cfg);
    h.track(1);
    let b = one_send(&h.drain());
    h.track(1);
    h.track(1); // drops event 0, which is in flight
    h.drain();
    h.respond(&b, 200);
    let s = h.m.stats();
    assert_eq!((s.delivered, s.dropped_overflow), (0, 1));
    assert!(s.balanced());
}

#[test]
fn time_never_runs_backwards_inside() {
    let mut h = H::default_small();
    h.track(1);
    let b = one_send(&h.drain());
    h.now = Instant::from_millis(10_000);
    h.input(Input::TransportFailed { batch: b.id });
    let at = h.m.poll_timeout().unwrap();
    assert!(at >= Instant::from_millis(11_000));
    h.now = Instant::ZERO;
    assert!(sends(&h.input(Input::Tick)).is_empty());
}

/// Issue 8 items 1 and 7: `Machine::<64>::new(Config::default())` failed
/// (the default queue of 1000 events was above `N`), and no queue could be
/// longer than `N`. The window now bounds batches only.
#[test]
fn the_window_bounds_batches_not_the_queue() {
    let m = Machine::<64>::new(Config::default(), 0).unwrap();
    assert_eq!(m.config().max_batch_events(), 64);
    assert_eq!(m.config().max_queue_events(), 1000);
    let big = Config::builder()
        .max_queue_events(10_000_000)
        .max_batch_events(500)
        .build()
        .unwrap();
    assert!(Machine::<500>::new(big, 0).is_ok());
    assert_eq!(
        Machine::<64>::new(big, 0).unwrap_err(),
        crate::ConfigError::BatchAboveWindow { window: 64 }
    );
}

#[test]
fn memory_matches_the_documented_figures() {
    assert_eq!(BYTES_PER_WINDOW_SLOT, 8);
    assert_eq!(
        core::mem::size_of::<Machine<1000>>(),
        FIXED_STATE_BYTES + 1000 * BYTES_PER_WINDOW_SLOT
    );
    // The crate docs state the figure on 64-bit targets; this keeps them true.
    #[cfg(target_pointer_width = "64")]
    assert_eq!(
        std::hint::black_box(FIXED_STATE_BYTES),
        crate::DOCUMENTED_FIXED_STATE_BYTES
    );
    std::println!("fixed state: {FIXED_STATE_BYTES} bytes");
}

#[test]
fn sequence_numbers_at_the_edge_are_errors_not_overflows() {
    let mut m: Machine<8> = Machine::new(small().max_queue_events(8).build().unwrap(), 1).unwrap();
    let one = |seq| StoreSummary {
        count: 1,
        bytes: 1,
        first: seq,
        last: seq,
    };
    assert_eq!(
        m.handle(Instant::ZERO, Input::Restore(one(u64::MAX))),
        Err(InputError::RestoreOutOfRange { seq: u64::MAX })
    );
    let mut m: Machine<8> = Machine::new(small().max_queue_events(8).build().unwrap(), 1).unwrap();
    m.handle(Instant::ZERO, Input::Restore(one(crate::MAX_SEQ - 1)))
        .unwrap();
    assert_eq!(m.track(Instant::ZERO, 1), Err(InputError::SeqExhausted));
    while m.poll_output().is_some() {}
    let lookup = |_| Some(1);
    let items: Vec<_> = crate::Payloads::new(b"ab", u64::MAX - 1, u64::MAX, &lookup).collect();
    assert_eq!(items.len(), 2);
}

#[test]
fn seq_floor_continues_numbering_over_an_empty_store() {
    let mut h = H::default_small();
    h.input(Input::SeqFloor { next: 40 });
    assert_eq!(h.track(1), 40);
    assert!(
        h.m.handle(h.now, Input::SeqFloor { next: 99 }).is_err(),
        "only at start-up"
    );

    // With records, numbering continues after the newest record.
    let mut h = H::default_small();
    h.restore(&[(7, 1)]);
    h.input(Input::SeqFloor { next: 5 });
    assert_eq!(h.track(1), 8);
}

#[test]
fn retry_after_is_capped() {
    let cfg = small()
        .max_retry_after(core::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    h.track(1);
    let b = one_send(&h.drain());
    h.input(Input::Response {
        batch: b.id,
        status: 503,
        retry_after: Some(Duration::from_millis(u64::MAX)),
    });
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(60_000)));
    assert_eq!(
        Config::default().max_retry_after(),
        core::time::Duration::from_secs(3600)
    );
}

#[test]
fn flush_period_is_remembered_outside_period_mode() {
    let mut h = H::new(small().flush_mode(FlushMode::Manual).build().unwrap());
    h.input(Input::SetFlushPeriod(Duration::from_secs(5)));
    assert_eq!(h.m.config().flush_period(), Duration::from_secs(5));
    assert_eq!(h.m.config().flush_mode(), FlushMode::Manual);
    h.input(Input::SetFlushMode(FlushMode::Period));
    assert_eq!(h.m.config().flush_period(), Duration::from_secs(5));
    let cfg = small().flush_period(core::time::Duration::ZERO).build();
    assert_eq!(cfg, Err(crate::ConfigError::ZeroFlushPeriod));
}

/// Issue 8 item 2: an Immediate -> Manual switch still uploaded events
/// tracked after the switch (the batch in flight's follow-up), and so did a
/// later network restore. Seen failing before the fix (a second send).
#[test]
fn switching_to_manual_cancels_what_the_mode_requested() {
    let mut h = H::default_small();
    h.track(1);
    let b = one_send(&h.drain());
    h.track(1);
    h.input(Input::SetFlushMode(FlushMode::Manual));
    h.track(1);
    assert!(sends(&h.respond(&b, 200)).is_empty());
    h.input(network(false));
    assert!(sends(&h.input(network(true))).is_empty());
    assert!(!h.m.stats().flush_requested);
    // An explicit flush still stands, in any mode.
    let b = one_send(&h.input(Input::Flush));
    assert_eq!((b.first, b.last), (1, 2));

    // AppClose: a background flush requested offline is cancelled by a
    // switch to Manual; an explicit one is not.
    let mut h = H::new(small().flush_mode(FlushMode::AppClose).build().unwrap());
    h.input(network(false));
    h.track(1);
    h.input(Input::Lifecycle(Lifecycle::Background));
    h.input(Input::SetFlushMode(FlushMode::Manual));
    assert!(sends(&h.input(network(true))).is_empty());
    h.input(network(false));
    h.input(Input::Flush);
    h.input(Input::SetFlushMode(FlushMode::AppClose));
    one_send(&h.input(network(true)));
}

/// Issue 8 item 3: a batch that got no answer stalled the queue for good
/// (no deadline, and `poll_timeout` was `None`). Seen failing before the fix.
#[test]
fn no_answer_by_request_timeout_is_a_transport_failure() {
    let cfg = small()
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    h.track(1);
    let b = one_send(&h.drain());
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(5_000)));
    assert!(h.advance(4_999).is_empty(), "early tick is a no-op");
    let out = h.advance(1);
    assert!(matches!(
        out.as_slice(),
        [Output::RetryScheduled {
            attempt: 1,
            cause: RetryCause::Transport,
            ..
        }]
    ));
    assert_eq!(h.m.in_flight(), None);
    // The late answer is stale and ignored; the retry goes out after the backoff.
    assert!(h.respond(&b, 200).is_empty());
    assert_eq!(h.m.stats().delivered, 0);
    let at = h.m.poll_timeout().unwrap();
    h.now = at;
    let retry = one_send(&h.input(Input::Tick));
    h.respond(&retry, 200);
    assert_eq!(h.m.stats().delivered, 1);
    assert_eq!(Config::default().request_timeout(), Duration::from_secs(30));
}

/// Issue 8 item 4: without group commit every tracked event is committed
/// before anything else happens; with it, no later than `max_commit_delay`
/// after the oldest uncommitted append (before, in Period mode an event sat
/// uncommitted until the next send: seen failing, no Commit by the deadline).
#[test]
fn commits_are_bounded_by_max_commit_delay() {
    let mut h = H::new(small().flush_mode(FlushMode::Manual).build().unwrap());
    h.track(1);
    assert_eq!(
        h.drain(),
        [Output::Persist { seq: 0, size: 1 }, Output::Commit]
    );

    let cfg = periodic(60_000)
        .max_commit_delay(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    h.track(1);
    assert_eq!(h.drain(), [Output::Persist { seq: 0, size: 1 }]);
    h.now = Instant::from_millis(150);
    h.track(2);
    assert_eq!(h.drain(), [Output::Persist { seq: 1, size: 2 }]);
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(200)));
    h.now = Instant::from_millis(200);
    assert_eq!(h.input(Input::Tick), [Output::Commit]);
    assert_eq!(h.m.poll_timeout(), Some(Instant::from_millis(60_000)));
    // A send always follows a commit, and an explicit commit comes at once.
    h.track(3);
    h.drain();
    assert_eq!(h.input(Input::Commit), [Output::Commit]);
    h.track(4);
    let out = h.input(Input::Flush);
    let commit = out.iter().position(|o| *o == Output::Commit).unwrap();
    let send = out
        .iter()
        .position(|o| matches!(o, Output::Send(_)))
        .unwrap();
    assert!(commit < send, "{out:?}");
}

/// Issue 8 item 6: 422 is poison like 400 (it used to be retried forever);
/// 408 is retried; 404, 405, 410, 501, 505 and other 4xx halt with their
/// status (they used to be retried, or to spend attempts until a drop).
#[test]
fn the_status_table_of_design() {
    let (mut h, b) = eight_events_flushed();
    let out = h.respond(&b, 422);
    let half = one_send(&out);
    assert_eq!((b.count, half.count), (8, 4), "422 bisects");

    for status in [408, 429, 500, 502, 503] {
        let mut h = H::default_small();
        h.track(1);
        let b = one_send(&h.drain());
        let out = h.respond(&b, status);
        assert!(
            matches!(out.as_slice(), [Output::RetryScheduled { .. }]),
            "{status}: {out:?}"
        );
    }
    for status in [401, 403, 404, 405, 410, 418, 451, 501, 505] {
        let mut h = H::default_small();
        h.track(1);
        let b = one_send(&h.drain());
        let out = h.respond(&b, status);
        assert_eq!(
            out,
            [Output::Halted {
                status,
                reason: crate::HaltReason::Status
            }],
            "{status}"
        );
        let s = h.m.stats();
        assert_eq!((s.pending_events, s.retries, s.halted), (1, 0, true));
        h.track(1);
        assert!(sends(&h.input(Input::Flush)).is_empty(), "halted");
        one_send(&h.input(Input::Resume));
    }
}

/// Issue 8 item 6: after a 413 the smaller size was forgotten once the
/// failing range was delivered, so every later full batch cost another 413
/// round. Seen failing before the fix (the next batch had 4 events again).
#[test]
fn a_413_cap_is_remembered_until_a_batch_that_large_succeeds() {
    let cfg = small()
        .flush_mode(FlushMode::Manual)
        .max_event_bytes(250)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    let flush_all = |h: &mut H, sizes: &[u32]| -> Vec<crate::Batch> {
        for &size in sizes {
            h.track(size);
        }
        h.drain();
        let mut sent = vec![one_send(&h.input(Input::Flush))];
        while let Some(n) = sends(&h.respond(sent.last().unwrap(), 200))
            .first()
            .copied()
        {
            sent.push(n);
        }
        sent
    };
    for _ in 0..4 {
        h.track(50);
    }
    h.drain();
    let b = one_send(&h.input(Input::Flush));
    assert_eq!((b.count, b.bytes), (4, 214));
    let mut next = one_send(&h.respond(&b, 413));
    while let Some(n) = sends(&h.respond(&next, 200)).first().copied() {
        next = n;
    }
    assert_eq!(h.m.stats().delivered, 4);
    let later = flush_all(&mut h, &[50; 4]);
    assert!(
        later.iter().all(|b| b.bytes < 214),
        "the cap is remembered: {later:?}"
    );
    // A batch of at least the refused size getting through lifts it.
    let big = flush_all(&mut h, &[210]);
    assert_eq!(big[0].bytes, 221);
    let after = flush_all(&mut h, &[50; 4]);
    assert_eq!(after[0].count, 4, "no cap any more: {after:?}");
}

/// Issue 8 item 6: a server that refuses everything used to dead-letter
/// the whole queue, event by event. After `max_consecutive_rejections`
/// rejected events in a row uploads halt, with their own reason; a delivery
/// in between starts the count again. Seen failing before the fix.
#[test]
fn a_rejection_storm_halts_with_its_own_reason() {
    let cfg = small()
        .flush_mode(FlushMode::Manual)
        .max_batch_events(1)
        .max_consecutive_rejections(Some(3))
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    for _ in 0..6 {
        h.track(1);
    }
    h.drain();
    let mut b = one_send(&h.input(Input::Flush));
    // Two rejections, a delivery, then three rejections in a row.
    for (i, status) in [400, 400, 200, 400, 422].into_iter().enumerate() {
        let out = h.respond(&b, status);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Halted { .. })),
            "{i}"
        );
        b = one_send(&out);
    }
    let out = h.respond(&b, 400);
    assert!(out.contains(&Output::Halted {
        status: 400,
        reason: crate::HaltReason::RejectionStorm
    }));
    assert!(sends(&out).is_empty());
    let s = h.m.stats();
    assert_eq!((s.rejected, s.delivered, s.pending_events), (5, 1, 0));
    assert_eq!(Config::default().max_consecutive_rejections(), Some(20));

    let cfg = small()
        .flush_mode(FlushMode::Manual)
        .max_queue_events(30)
        .max_batch_events(1)
        .max_consecutive_rejections(None)
        .build()
        .unwrap();
    let mut h = H::new(cfg);
    for _ in 0..30 {
        h.track(1);
    }
    h.drain();
    let mut b = one_send(&h.input(Input::Flush));
    for _ in 0..29 {
        b = one_send(&h.respond(&b, 400));
    }
    h.respond(&b, 400);
    assert_eq!((h.m.stats().rejected, h.m.stats().halted), (30, false));
}
