//! Model-based property tests: the machine beside a plain reference model.
//!
//! The model is what a careful person would write with a `VecDeque`: the
//! store's records (built only from the machine's `Persist` and `Delete`
//! outputs), and the fate of every accepted event (pending, delivered,
//! dropped, rejected). After every step the invariants of DESIGN.md are
//! checked: nothing silently lost, tracking order, limits held, accounts
//! that add up, one batch in flight, and no wake-ups when idle.

use core::time::Duration;
use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use crate::{
    Batch, Config, FlushMode, Input, Instant, Lifecycle, Machine, Output, Overflow, Seq,
    StoreSummary,
};

const CAP: usize = 32;
const MAX_EVENT: u32 = 100;

#[derive(Clone, Debug)]
enum Op {
    Track(u32),
    Advance(u64),
    Flush,
    Network(bool),
    Lifecycle(Lifecycle),
    Respond {
        status: u16,
        retry_after: Option<u64>,
    },
    TransportFail,
    PersistFail(u8),
    Resume,
    SetMode(FlushMode),
    SetPeriod(u64),
    SetThreshold(Option<u32>),
    /// Crash: throw the machine away, start a new one from the store.
    Restart,
}

fn mode() -> impl Strategy<Value = FlushMode> {
    prop_oneof![
        Just(FlushMode::Immediate),
        Just(FlushMode::Period),
        Just(FlushMode::AppClose),
        Just(FlushMode::Manual),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::sample::select(
        &[
            200u16, 201, 204, 400, 413, 401, 403, 429, 500, 503, 302, 404,
        ][..],
    );
    prop_oneof![
        8 => (0u32..=MAX_EVENT + 10).prop_map(Op::Track),
        4 => (0u64..40_000).prop_map(Op::Advance),
        2 => Just(Op::Flush),
        2 => any::<bool>().prop_map(Op::Network),
        1 => prop::sample::select(&[Lifecycle::Foreground, Lifecycle::Background, Lifecycle::Terminate][..]).prop_map(Op::Lifecycle),
        6 => (status, prop::option::of(0u64..60_000)).prop_map(|(status, retry_after)| Op::Respond { status, retry_after }),
        2 => Just(Op::TransportFail),
        1 => any::<u8>().prop_map(Op::PersistFail),
        1 => Just(Op::Resume),
        1 => mode().prop_map(Op::SetMode),
        1 => (0u64..20_000).prop_map(Op::SetPeriod),
        1 => prop::option::of(0u32..10).prop_map(Op::SetThreshold),
        1 => Just(Op::Restart),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        mode(),
        1u32..=CAP as u32,
        1u32..6,
        prop::option::of(1u32..5),
        any::<bool>(),
        prop::option::of(1u32..10),
        300u64..3000,
        (1u64..20_000, prop::option::of(1u64..5000)),
    )
        .prop_map(
            |(
                mode,
                queue,
                batch,
                attempts,
                reject_new,
                threshold,
                queue_bytes,
                (period, commit),
            )| {
                Config::builder()
                    .flush_mode(mode)
                    .flush_period(Duration::from_millis(period))
                    .max_commit_delay(Duration::from_millis(commit.unwrap_or(0)))
                    // The model answers or fails every batch itself.
                    .request_timeout(Duration::from_secs(1 << 40))
                    .max_queue_events(queue)
                    .max_queue_bytes(queue_bytes)
                    .max_event_bytes(MAX_EVENT)
                    .max_batch_events(batch)
                    .max_batch_bytes(250)
                    .envelope_bytes(10, 1)
                    .max_attempts(attempts)
                    .overflow(if reject_new {
                        Overflow::RejectNew
                    } else {
                        Overflow::DropOldest
                    })
                    .flush_threshold(threshold.map(|t| t.min(queue)))
                    .build()
                    .unwrap()
            },
        )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pending,
    Delivered,
    Dropped,
    /// Dropped because the store did not keep it; its number may be reused.
    NotStored,
    Rejected,
}

/// The reference model.
#[derive(Default)]
struct Model {
    /// Records in the simulated store, built from Persist/Delete only.
    store: VecDeque<(Seq, u32)>,
    /// Fate of each accepted event, in acceptance order.
    fates: Vec<(Seq, Fate)>,
    in_flight: Option<Batch>,
    last_delivered: Option<Seq>,
    /// Accepted in this machine's life (since the last restart).
    accepted: u64,
    /// Fates counted before the last restart.
    base: [u64; 5],
    restored: u64,
    /// One past the highest sequence number ever deleted from the store.
    floor: Seq,
    /// Records below this are committed.
    committed: Seq,
}

impl Model {
    fn fate_mut(&mut self, seq: Seq) -> &mut Fate {
        // The newest acceptance with this number (numbers of never-stored
        // events are reused).
        &mut self
            .fates
            .iter_mut()
            .rev()
            .find(|(s, _)| *s == seq)
            .unwrap_or_else(|| panic!("unknown seq {seq}"))
            .1
    }

    fn settle(&mut self, seq: Seq, fate: Fate) {
        let f = self.fate_mut(seq);
        assert_eq!(
            *f,
            Fate::Pending,
            "event {seq} reported twice ({fate:?} after {f:?})"
        );
        *f = fate;
    }

    fn apply(&mut self, o: Output, config: &Config) {
        match o {
            Output::Persist { seq, size } => {
                if let Some((last, _)) = self.store.back() {
                    assert_eq!(seq, last + 1, "persist out of order");
                }
                self.store.push_back((seq, size));
            }
            Output::Delete { through } => {
                self.floor = self.floor.max(through + 1);
                while self.store.front().is_some_and(|(s, _)| *s <= through) {
                    let (s, _) = self.store.pop_front().unwrap();
                    assert_ne!(
                        *self.fate_mut(s),
                        Fate::Pending,
                        "event {s} deleted without a report"
                    );
                }
            }
            Output::Send(b) => {
                assert!(self.in_flight.is_none(), "two batches in flight");
                assert_eq!(
                    self.store.front().map(|r| r.0),
                    Some(b.first),
                    "batch not from the head"
                );
                assert_eq!(b.count as u64, b.last - b.first + 1);
                assert!(b.count <= config.max_batch_events());
                assert!(b.count == 1 || b.bytes <= config.max_batch_bytes());
                for seq in b.first..=b.last {
                    assert!(
                        self.store.iter().any(|(s, _)| *s == seq),
                        "send names unstored {seq}"
                    );
                }
                self.in_flight = Some(b);
            }
            Output::Delivered { first, last } => {
                if let Some(prev) = self.last_delivered {
                    assert!(first > prev, "delivered out of order");
                }
                self.last_delivered = Some(last);
                for s in first..=last {
                    self.settle(s, Fate::Delivered);
                }
            }
            Output::Dropped {
                first,
                last,
                reason,
            } => {
                let fate = if reason == crate::DropReason::NotStored {
                    Fate::NotStored
                } else {
                    Fate::Dropped
                };
                for s in first..=last {
                    self.settle(s, fate);
                }
            }
            Output::Rejected { seq, .. } => self.settle(seq, Fate::Rejected),
            Output::Commit => {
                self.committed = self.store.back().map_or(self.committed, |r| r.0 + 1);
            }
            Output::ReadSizes { .. } | Output::Halted { .. } | Output::RetryScheduled { .. } => {}
        }
    }
}

/// Drain the machine into the model, answering reads of sizes from the
/// model's store.
fn pump(m: &mut Machine<CAP>, model: &mut Model, now: Instant) {
    while let Some(o) = m.poll_output() {
        if let Output::ReadSizes { from, max } = o {
            let sizes: Vec<(Seq, u32)> = model
                .store
                .iter()
                .filter(|(s, _)| *s >= from)
                .take(max as usize)
                .copied()
                .collect();
            for (seq, size) in sizes {
                m.handle(now, Input::Size { seq, size }).unwrap();
            }
        }
        model.apply(o, m.config());
    }
}

fn count(model: &Model, f: Fate) -> u64 {
    model.fates.iter().filter(|(_, x)| *x == f).count() as u64
}

const FATES: [Fate; 5] = [
    Fate::Pending,
    Fate::Delivered,
    Fate::Dropped,
    Fate::NotStored,
    Fate::Rejected,
];

fn run(config: Config, seed: u64, ops: &[Op]) {
    let mut m: Machine<CAP> = Machine::new(config, seed).unwrap();
    let mut model = Model::default();
    let mut now = Instant::ZERO;
    for op in ops {
        let input = match *op {
            Op::Track(size) => Input::Track { size },
            Op::Advance(ms) => {
                now = now.plus_millis(ms);
                Input::Tick
            }
            Op::Flush => Input::Flush,
            Op::Network(up) => Input::Network { up },
            Op::Lifecycle(l) => Input::Lifecycle(l),
            Op::Respond {
                status,
                retry_after,
            } => match model.in_flight.take() {
                Some(b) => Input::Response {
                    batch: b.id,
                    status,
                    retry_after: retry_after.map(Duration::from_millis),
                },
                None => Input::Response {
                    batch: 999_999,
                    status,
                    retry_after: None,
                },
            },
            Op::TransportFail => match model.in_flight.take() {
                Some(b) => Input::TransportFailed { batch: b.id },
                None => Input::Tick,
            },
            Op::PersistFail(back) => {
                // The newest `back % 4` records were not stored after all
                // (only uncommitted ones can be lost).
                let uncommitted = model
                    .store
                    .iter()
                    .filter(|(s, _)| *s >= model.committed)
                    .count();
                let n = usize::from(back % 4).min(uncommitted);
                let keep = model.store.len() - n;
                let from = model.store.get(keep).map_or(u64::MAX, |r| r.0);
                if n == 0 || model.in_flight.is_some_and(|b| b.last >= from) {
                    // A send only ever names stored events; an adapter
                    // cannot fail a persist it already sent.
                    Input::Tick
                } else {
                    model.store.truncate(keep);
                    Input::PersistFailed { from_seq: from }
                }
            }
            Op::Resume => Input::Resume,
            Op::SetMode(mode) => Input::SetFlushMode(mode),
            Op::SetPeriod(millis) => Input::SetFlushPeriod(Duration::from_millis(millis)),
            Op::SetThreshold(t) => Input::SetFlushThreshold(t),
            Op::Restart => {
                // A crash after a commit: the store keeps every record.
                m.handle(now, Input::Commit).unwrap();
                pump(&mut m, &mut model, now);
                m = Machine::new(config, seed.wrapping_add(model.floor)).unwrap();
                let summary = match (model.store.front(), model.store.back()) {
                    (Some(f), Some(l)) => StoreSummary {
                        count: model.store.len() as u64,
                        bytes: model.store.iter().map(|r| u64::from(r.1)).sum(),
                        first: f.0,
                        last: l.0,
                    },
                    _ => StoreSummary::EMPTY,
                };
                m.handle(now, Input::Restore(summary)).unwrap();
                m.handle(now, Input::SeqFloor { next: model.floor })
                    .unwrap();
                model.in_flight = None;
                model.accepted = 0;
                model.restored = model.store.len() as u64;
                for (i, f) in FATES.iter().enumerate() {
                    model.base[i] = count(&model, *f);
                }
                // Pending events carry over as restored ones.
                model.base[0] = 0;
                Input::Tick
            }
        };
        let before = m.stats();
        match m.handle(now, input) {
            Ok(crate::Accepted::Tracked(seq)) => {
                // Never reused: only numbers that were never stored come back.
                assert!(
                    model
                        .fates
                        .iter()
                        .all(|(s, f)| *s != seq || *f == Fate::NotStored),
                    "sequence number {seq} reused"
                );
                model.fates.push((seq, Fate::Pending));
                model.accepted += 1;
            }
            Ok(_) => {}
            Err(_) => {
                // A refused input changes nothing.
                let after = m.stats();
                assert_eq!(
                    (before.tracked, before.pending_events),
                    (after.tracked, after.pending_events)
                );
            }
        }
        pump(&mut m, &mut model, now);
        check(&m, &model);
    }
}

fn check(m: &Machine<CAP>, model: &Model) {
    let s = m.stats();
    let c = m.config();
    // Accounts add up, and agree with the model.
    assert!(s.balanced(), "{s:?}");
    assert_eq!(s.tracked, model.accepted);
    assert_eq!(s.restored, model.restored);
    let since = |i: usize| count(model, FATES[i]) - model.base[i];
    assert_eq!(s.delivered, since(1));
    assert_eq!(s.dropped(), since(2) + since(3));
    assert_eq!(s.rejected, since(4));
    // Nothing silently lost: pending events are exactly the stored ones.
    let pending: Vec<Seq> = model
        .fates
        .iter()
        .filter(|(_, f)| *f == Fate::Pending)
        .map(|(s, _)| *s)
        .collect();
    let stored: Vec<Seq> = model.store.iter().map(|(s, _)| *s).collect();
    assert_eq!(pending, stored, "pending events and stored records differ");
    assert_eq!(s.pending_events as usize, stored.len());
    assert_eq!(
        s.pending_bytes,
        model.store.iter().map(|r| u64::from(r.1)).sum::<u64>()
    );
    // Limits held.
    assert!(s.pending_events <= c.max_queue_events());
    assert!(s.pending_bytes <= c.max_queue_bytes());
    // Idle means no wake-ups.
    if s.pending_events == 0 && m.in_flight().is_none() {
        assert_eq!(m.poll_timeout(), None);
        assert!(!s.flush_requested);
    }
    assert_eq!(m.in_flight().map(|b| b.id), model.in_flight.map(|b| b.id));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn machine_agrees_with_the_model(config in config(), seed in any::<u64>(), ops in prop::collection::vec(op(), 200)) {
        run(config, seed, &ops);
    }
}

/// With a healthy server and network, any run ends with everything delivered.
#[test]
fn healed_runs_deliver_everything_left() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(config(), any::<u64>(), prop::collection::vec(op(), 100)),
            |(config, seed, ops)| {
                let mut m: Machine<CAP> = Machine::new(config, seed).unwrap();
                let mut model = Model::default();
                let mut now = Instant::ZERO;
                for op in &ops {
                    if let Op::Track(size) = op {
                        if let Ok(seq) = m.track(now, *size) {
                            model.fates.push((seq, Fate::Pending));
                            model.accepted += 1;
                        }
                    }
                    now = now.plus_millis(10);
                    pump(&mut m, &mut model, now);
                }
                // Heal: network up, resume, flush; answer 200 until idle.
                for input in [Input::Network { up: true }, Input::Resume, Input::Flush] {
                    m.handle(now, input).unwrap();
                }
                for _ in 0..10_000 {
                    pump(&mut m, &mut model, now);
                    if let Some(b) = model.in_flight.take() {
                        m.handle(
                            now,
                            Input::Response {
                                batch: b.id,
                                status: 200,
                                retry_after: None,
                            },
                        )
                        .unwrap();
                    } else if let Some(t) = m.poll_timeout() {
                        now = t;
                        m.handle(now, Input::Tick).unwrap();
                    } else {
                        break;
                    }
                }
                check(&m, &model);
                prop_assert_eq!(m.stats().pending_events, 0);
                Ok(())
            },
        )
        .unwrap();
}
