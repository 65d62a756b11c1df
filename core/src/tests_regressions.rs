//! Regressions found by the deterministic simulator (tests/src/sim) and the
//! fuzzer: each test names the seed that found it.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::tests::summary_of;
use crate::{Config, Input, Instant, Machine, Output, Seq};

fn drain<const N: usize>(m: &mut Machine<N>) -> Vec<Output> {
    drain_from(m, &BTreeMap::new())
}

/// Drain, answering reads of sizes from `store`.
fn drain_from<const N: usize>(m: &mut Machine<N>, store: &BTreeMap<Seq, u32>) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(o) = m.poll_output() {
        if let Output::ReadSizes { from, max } = o {
            for (&seq, &size) in store.range(from..).take(max as usize) {
                m.handle(Instant::ZERO, Input::Size { seq, size }).unwrap();
            }
        }
        out.push(o);
    }
    out
}

/// Simulator seed 96: a 400 for a batch of two, one of which overflow had
/// dropped while it was in flight, rejected the survivor as poison. Only a
/// batch of one names its culprit; the survivor must be tried alone.
#[test]
fn refused_batch_shrunk_by_overflow_is_bisected_not_blamed() {
    let config = Config::builder()
        .max_queue_events(2)
        .max_batch_events(2)
        .build()
        .unwrap();
    let mut m = Machine::<2>::new(config, 1).unwrap();
    let now = Instant::ZERO;
    m.track(now, 10).unwrap();
    m.track(now, 10).unwrap();
    let out = drain(&mut m);
    let Some(Output::Send(batch)) = out.last().copied() else {
        panic!("expected a send, got {out:?}");
    };
    assert_eq!((batch.first, batch.last), (0, 1));
    // A third event pushes the first (the poison one) out of the queue.
    m.track(now, 10).unwrap();
    drain(&mut m);
    m.handle(
        now,
        Input::Response {
            batch: batch.id,
            status: 400,
            retry_after: None,
        },
    )
    .unwrap();
    let out = drain(&mut m);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Rejected { .. })),
        "a good event was blamed: {out:?}"
    );
    let retry = out.iter().find_map(|o| match o {
        Output::Send(b) => Some(*b),
        _ => None,
    });
    let retry = retry.expect("the survivor is sent alone");
    assert_eq!((retry.first, retry.last), (1, 1));
    assert_eq!(m.stats().rejected, 0);
}

/// Simulator seed 185: after a restart over limits that had shrunk, the
/// restore dropped record after record, one notification each, before the
/// driver could drain; all but the last four drops went unreported. Drops
/// that continue each other now extend one notification (here across two
/// window refills).
#[test]
fn restore_over_shrunk_limits_reports_every_drop() {
    let config = Config::builder().max_queue_events(2).build().unwrap();
    let mut m = Machine::<2>::new(config, 1).unwrap();
    let now = Instant::ZERO;
    let store: BTreeMap<Seq, u32> = (10..20).map(|s| (s, 5)).collect();
    m.handle(now, Input::Restore(summary_of(&store))).unwrap();
    let out = drain_from(&mut m, &store);
    let dropped: u64 = out
        .iter()
        .map(|o| match o {
            Output::Dropped { first, last, .. } => last - first + 1,
            _ => 0,
        })
        .sum();
    assert_eq!(dropped, 8, "{out:?}");
    assert!(out.contains(&Output::Delete { through: 17 }), "{out:?}");
    assert_eq!(m.stats().notes_overflowed, 0);
    assert!(m.stats().balanced());
}

/// Fuzz target `machine`, input crash-b4b5c4cd (one restore of 63 479
/// bytes into a queue of 49 696): a restored record larger than the whole
/// queue (the limits shrank below it) was kept over `max_queue_bytes`. It
/// is dropped and reported like any overflow, so the limit holds.
#[test]
fn restored_record_larger_than_the_queue_is_dropped() {
    let config = Config::builder()
        .max_event_bytes(1)
        .max_queue_events(4)
        .max_queue_bytes(100)
        .build()
        .unwrap();
    let mut m = Machine::<4>::new(config, 1).unwrap();
    let now = Instant::ZERO;
    let store: BTreeMap<Seq, u32> = [(7, 50), (8, 150), (9, 50)].into_iter().collect();
    m.handle(now, Input::Restore(summary_of(&store))).unwrap();
    let out = drain_from(&mut m, &store);
    let s = m.stats();
    assert!(s.pending_bytes <= 100, "{s:?}");
    assert_eq!(
        (s.pending_events, s.dropped_overflow, s.restored),
        (1, 2, 3)
    );
    assert!(s.balanced());
    assert!(out.contains(&Output::Dropped {
        first: 7,
        last: 8,
        reason: crate::DropReason::Overflow,
    }));
    assert!(out.contains(&Output::Delete { through: 8 }));
}

/// Fuzz target `machine`, input crash-854cad71: the only stored record was
/// larger than the queue after the limits shrank, so the restore dropped
/// it; the seq floor that followed (above it: the store had once held a
/// later record) reset the delete cursor, and the dropped record was never
/// deleted from the store.
#[test]
fn seq_floor_keeps_the_delete_a_restore_owes() {
    let config = Config::builder()
        .max_event_bytes(100)
        .max_queue_events(4)
        .max_queue_bytes(100)
        .build()
        .unwrap();
    let mut m = Machine::<4>::new(config, 1).unwrap();
    let now = Instant::ZERO;
    let store: BTreeMap<Seq, u32> = [(5, 150)].into_iter().collect();
    m.handle(now, Input::Restore(summary_of(&store))).unwrap();
    m.handle(now, Input::SeqFloor { next: 7 }).unwrap();
    let out = drain_from(&mut m, &store);
    assert!(out.contains(&Output::Delete { through: 6 }), "{out:?}");
    assert_eq!(m.stats().next_seq, 7);
    assert!(m.stats().balanced());
}
