//! Issue 8 item 1: a queue far longer than the machine's window of sizes.
//! Before the window, `Machine<N>` refused `max_queue_events > N` (seen
//! failing: `QueueAboveCapacity`), so none of these could run.

use std::vec::Vec;

use super::harness::Hn;
use crate::{Batch, Config, FlushMode, Input, Instant, Output, Seq};

/// A machine with a window of 4.
type W = Hn<4>;

/// Answer every batch with `status(batch)` until nothing is in flight.
fn serve(w: &mut W, status: impl Fn(&Batch) -> u16) {
    for _ in 0..10_000 {
        let Some(b) = w.m.in_flight() else { return };
        w.respond(&b, status(&b));
    }
    panic!("never idle");
}

fn long_queue() -> crate::ConfigBuilder {
    Config::builder()
        .max_queue_events(1_000)
        .max_event_bytes(100)
        .max_batch_bytes(1_000)
        .flush_mode(FlushMode::Manual)
}

#[test]
fn a_queue_far_longer_than_the_window_delivers_in_order() {
    let mut w = W::new(long_queue().build().unwrap());
    assert_eq!(w.m.config().max_batch_events(), 4);
    for i in 0..100 {
        w.m.track(Instant::ZERO, 1 + i % 7).unwrap();
        w.drain();
    }
    assert_eq!(w.m.stats().pending_events, 100);
    w.input(Input::Flush);
    serve(&mut w, |_| 200);
    let delivered: Vec<(Seq, Seq)> = w
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Delivered { first, last } => Some((*first, *last)),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 25, "batches of 4");
    assert!(delivered.windows(2).all(|p| p[1].0 == p[0].1 + 1));
    assert_eq!((delivered[0].0, delivered[24].1), (0, 99));
    assert!(w.reads >= 20, "the window was refilled from the store");
    assert!(w.store.is_empty());
    assert!(w.m.stats().balanced());
}

#[test]
fn drop_oldest_reads_the_sizes_it_does_not_hold() {
    let cfg = long_queue().max_queue_bytes(100).build().unwrap();
    let mut w = W::new(cfg);
    for _ in 0..10 {
        w.m.track(Instant::ZERO, 10).unwrap();
        w.drain();
    }
    w.out.clear();
    // 60 bytes need six 10-byte events gone; the window holds four sizes.
    let seq = w.m.track(Instant::ZERO, 60).unwrap();
    w.drain();
    let dropped: u64 = w
        .out
        .iter()
        .map(|o| match o {
            Output::Dropped { first, last, .. } => last - first + 1,
            _ => 0,
        })
        .sum();
    assert_eq!(dropped, 6);
    assert!(w.reads > 0);
    let persist = w
        .out
        .iter()
        .position(|o| matches!(o, Output::Persist { .. }))
        .unwrap();
    let delete = w
        .out
        .iter()
        .rposition(|o| matches!(o, Output::Delete { .. }))
        .unwrap();
    assert!(delete < persist, "room is made before the event is stored");
    assert_eq!(w.store.get(&seq), Some(&60));
    let s = w.m.stats();
    assert_eq!((s.pending_events, s.pending_bytes), (5, 100));
    assert_eq!(w.store.values().map(|&v| u64::from(v)).sum::<u64>(), 100);
}

#[test]
fn bisection_finds_a_poison_event_across_refills() {
    let mut w = W::new(long_queue().build().unwrap());
    for _ in 0..20 {
        w.m.track(Instant::ZERO, 5).unwrap();
        w.drain();
    }
    w.input(Input::Flush);
    serve(&mut w, |b| {
        if (b.first..=b.last).contains(&13) {
            400
        } else {
            200
        }
    });
    let s = w.m.stats();
    assert_eq!((s.delivered, s.rejected, s.pending_events), (19, 1, 0));
    assert!(w
        .out
        .iter()
        .any(|o| matches!(o, Output::Rejected { seq: 13, .. })));
}

#[test]
fn a_restart_reads_the_summary_and_one_window() {
    let mut w = W::new(long_queue().max_queue_events(10_000_000).build().unwrap());
    let summary = crate::StoreSummary {
        count: 10_000_000,
        bytes: 50_000_000,
        first: 7,
        last: 10_000_006,
    };
    w.m.handle(Instant::ZERO, Input::Restore(summary)).unwrap();
    w.m.handle(Instant::ZERO, Input::Flush).unwrap();
    assert_eq!(
        w.m.poll_output(),
        Some(Output::ReadSizes { from: 7, max: 4 })
    );
    let s = w.m.stats();
    assert_eq!(
        (s.pending_events, s.pending_bytes, s.restored),
        (10_000_000, 50_000_000, 10_000_000)
    );
    assert_eq!(w.m.track(Instant::ZERO, 5), Ok(10_000_007));
}

/// One `ReadSizes` is answered by several `Size` inputs: while they arrive
/// the machine must not ask again for what is already asked (before this
/// test nothing caught a machine that forgot its outstanding read on every
/// input, `Size` included, and asked for the same sizes over and over).
#[test]
fn a_read_of_sizes_is_asked_once_while_its_answers_arrive() {
    let mut w = W::new(long_queue().max_queue_events(100).build().unwrap());
    let summary = crate::StoreSummary {
        count: 20,
        bytes: 100,
        first: 7,
        last: 26,
    };
    w.m.handle(Instant::ZERO, Input::Restore(summary)).unwrap();
    w.m.handle(Instant::ZERO, Input::Flush).unwrap();
    assert_eq!(
        w.m.poll_output(),
        Some(Output::ReadSizes { from: 7, max: 4 })
    );
    let mut asked = Vec::new();
    for seq in 7..11 {
        w.m.handle(Instant::ZERO, Input::Size { seq, size: 5 })
            .unwrap();
        while let Some(o) = w.m.poll_output() {
            if let Output::ReadSizes { from, max } = o {
                asked.push((seq, from, max));
            }
        }
    }
    assert_eq!(
        asked,
        [],
        "asked again (after the answer for seq, from, max)"
    );
    assert_eq!(w.m.stats().pending_events, 20);
}
