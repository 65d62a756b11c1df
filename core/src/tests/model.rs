//! Model-based property tests: the machine beside a plain reference model.
//!
//! The model is what a careful person would write with a `VecDeque`: the
//! store's records (built only from the machine's `Persist` and `Delete`
//! outputs), and the fate of every accepted event (pending, delivered,
//! dropped, rejected). After every step the invariants of DESIGN.md are
//! checked: nothing silently lost, tracking order, limits held, accounts
//! that add up, one batch in flight, and no wake-ups when idle. Beside the
//! model runs the judge (`outbox-judge`): every drop, rejection, halt, retry
//! and send is judged from what the test did and saw, never from the
//! machine's counters (invariant 5).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use outbox_judge::{Answer, Judge, Kind, Limits, Mode, TrackVerdict};

use crate::{
    Batch, Config, FlushMode, Input, InputError, Instant, Lifecycle, Machine, NetworkKind, Output,
    Overflow, Seq, StoreSummary, UploadPolicy,
};

const CAP: usize = 32;
const MAX_EVENT: u32 = 100;

#[derive(Clone, Debug)]
enum Op {
    Track(u32),
    /// A critical event of this size.
    TrackCritical(u32),
    Advance(u64),
    Flush,
    Network(bool, NetworkKind),
    PowerSave(bool),
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
    /// The wall clock jumps by this many ms (back when negative).
    WallJump(i64),
}

fn mode() -> impl Strategy<Value = FlushMode> {
    prop_oneof![
        Just(FlushMode::Immediate),
        Just(FlushMode::Period),
        Just(FlushMode::AppClose),
        Just(FlushMode::Manual),
    ]
}

fn kind() -> impl Strategy<Value = NetworkKind> {
    prop::sample::select(
        &[
            NetworkKind::Unmetered,
            NetworkKind::Metered,
            NetworkKind::Unknown,
        ][..],
    )
}

/// The kind in the judge's terms.
fn judged_kind(kind: NetworkKind) -> Kind {
    match kind {
        NetworkKind::Unmetered => Kind::Unmetered,
        NetworkKind::Metered => Kind::Metered,
        NetworkKind::Unknown => Kind::Unknown,
    }
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::sample::select(
        &[
            200u16, 201, 204, 400, 422, 413, 401, 403, 404, 410, 418, 408, 429, 500, 501, 503, 505,
            302,
        ][..],
    );
    prop_oneof![
        8 => (0u32..=MAX_EVENT + 10).prop_map(Op::Track),
        2 => (0u32..=MAX_EVENT + 10).prop_map(Op::TrackCritical),
        4 => (0u64..40_000).prop_map(Op::Advance),
        2 => Just(Op::Flush),
        2 => (any::<bool>(), kind()).prop_map(|(up, k)| Op::Network(up, k)),
        1 => any::<bool>().prop_map(Op::PowerSave),
        1 => prop::sample::select(&[Lifecycle::Foreground, Lifecycle::Background, Lifecycle::Terminate][..]).prop_map(Op::Lifecycle),
        6 => (status, prop::option::of(0u64..60_000)).prop_map(|(status, retry_after)| Op::Respond { status, retry_after }),
        2 => Just(Op::TransportFail),
        1 => any::<u8>().prop_map(Op::PersistFail),
        1 => Just(Op::Resume),
        1 => mode().prop_map(Op::SetMode),
        1 => (0u64..20_000).prop_map(Op::SetPeriod),
        1 => prop::option::of(0u32..10).prop_map(Op::SetThreshold),
        1 => Just(Op::Restart),
        1 => (-100_000i64..100_000).prop_map(Op::WallJump),
    ]
}

/// The machine's settings, kept so that the judge gets them from here and
/// not from the machine.
#[derive(Clone, Copy, Debug)]
struct Setup {
    mode: FlushMode,
    queue: u32,
    queue_bytes: u64,
    batch: u32,
    attempts: Option<u32>,
    reject_new: bool,
    threshold: Option<u32>,
    period: u64,
    commit: u64,
    /// The in-flight deadline; when it passes, the judge says the batch
    /// failed and the model forgets it was in flight.
    request_timeout: u64,
    max_rejections: Option<u32>,
    /// Upload policy `Unmetered`.
    unmetered_only: bool,
    /// `max_event_age` in ms.
    max_age: Option<u64>,
}

impl Setup {
    fn config(&self) -> Config {
        Config::builder()
            .flush_mode(self.mode)
            .flush_period(Duration::from_millis(self.period))
            .max_commit_delay(Duration::from_millis(self.commit))
            .request_timeout(Duration::from_millis(self.request_timeout))
            .max_consecutive_rejections(self.max_rejections)
            .max_queue_events(self.queue)
            .max_queue_bytes(self.queue_bytes)
            .max_event_bytes(MAX_EVENT)
            .max_batch_events(self.batch)
            .max_batch_bytes(250)
            .envelope_bytes(10, 1)
            .max_attempts(self.attempts)
            .overflow(if self.reject_new {
                Overflow::RejectNew
            } else {
                Overflow::DropOldest
            })
            .flush_threshold(self.threshold.map(|t| t.min(self.queue)))
            .upload_on(if self.unmetered_only {
                UploadPolicy::Unmetered
            } else {
                UploadPolicy::Any
            })
            .max_event_age(self.max_age.map(Duration::from_millis))
            .build()
            .unwrap()
    }

    /// The same limits, for the judge (defaults as DESIGN.md states them).
    fn limits(&self) -> Limits {
        Limits {
            max_queue_events: self.queue,
            max_queue_bytes: self.queue_bytes,
            max_event_bytes: MAX_EVENT,
            drop_oldest: !self.reject_new,
            max_attempts: self.attempts,
            request_timeout_ms: Some(self.request_timeout),
            max_consecutive_rejections: self.max_rejections,
            unmetered_only: self.unmetered_only,
            ..Limits::default()
        }
    }
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        mode(),
        1u32..=CAP as u32,
        1u32..6,
        prop::option::of(1u32..5),
        any::<bool>(),
        prop::option::of(1u32..10),
        300u64..3000,
        (
            1u64..20_000,
            prop::option::of(1u64..5000),
            prop_oneof![1u64..60_000, Just(1 << 40)],
            prop_oneof![Just(Some(20)), Just(None), (1u32..4).prop_map(Some)],
            any::<bool>(),
        ),
        prop::option::of(1u64..80_000),
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
                (period, commit, request_timeout, max_rejections, unmetered_only),
                max_age,
            )| Setup {
                mode,
                queue,
                queue_bytes,
                batch,
                attempts,
                reject_new,
                threshold,
                period,
                commit: commit.unwrap_or(0),
                request_timeout,
                max_rejections,
                unmetered_only,
                max_age,
            },
        )
}

fn judged_mode(mode: FlushMode) -> Mode {
    match mode {
        FlushMode::Immediate => Mode::Immediate,
        FlushMode::Period => Mode::Period,
        FlushMode::AppClose => Mode::AppClose,
        FlushMode::Manual => Mode::Manual,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pending,
    Delivered,
    Dropped,
    /// Dropped because the store did not keep it; its number is never
    /// used again.
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
    /// The first of `fates` accepted by this machine (since the last restart).
    life_start: usize,
    /// The event being tracked is critical (until its `Persist`).
    tracking_critical: bool,
    /// Stored records that are critical (the store keeps the flag).
    critical: BTreeSet<Seq>,
    /// Records discarded from the middle of the queue, until a delete
    /// covers them (the store shows them as `DISCARDED`).
    discarded: BTreeSet<Seq>,
    /// The stamp of the event being tracked (until its `Persist`).
    tracking_stamp: Option<u64>,
    /// Each stored record's stamp, when it has one.
    stamps: BTreeMap<Seq, u64>,
}

impl Model {
    fn fate_mut(&mut self, seq: Seq) -> &mut Fate {
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
                    // Numbers only grow; a not-stored event's are skipped.
                    assert!(seq > *last, "persist out of order");
                }
                self.store.push_back((seq, size));
                if core::mem::take(&mut self.tracking_critical) {
                    self.critical.insert(seq);
                }
                if let Some(stamp) = self.tracking_stamp.take() {
                    self.stamps.insert(seq, stamp);
                }
            }
            Output::Discard { seq } => {
                let at = self.store.iter().position(|r| r.0 == seq);
                let at = at.unwrap_or_else(|| panic!("discard of unstored {seq}"));
                assert_eq!(
                    *self.fate_mut(seq),
                    Fate::Dropped,
                    "discard of {seq} before its report"
                );
                let fates = &self.fates;
                let pending = |s: Seq| {
                    fates
                        .iter()
                        .rev()
                        .find(|(x, _)| *x == s)
                        .is_some_and(|(_, f)| *f == Fate::Pending)
                };
                let oldest_pending = self
                    .store
                    .iter()
                    .map(|r| r.0)
                    .find(|&s| s != seq && pending(s));
                let flight = self.in_flight.map(|b| (b.first, b.last));
                let plain_before = self.store.iter().map(|r| r.0).any(|s| {
                    s < seq
                        && pending(s)
                        && !self.critical.contains(&s)
                        && !flight.is_some_and(|(f, l)| f <= s && s <= l)
                });
                assert!(
                    oldest_pending.is_some() && !plain_before,
                    "discard of {seq} while an older non-critical event (not in flight) is pending"
                );
                self.store.remove(at);
                self.discarded.insert(seq);
                // The store remembers how far numbering went.
                self.floor = self.floor.max(seq + 1);
            }
            Output::Delete { through } => {
                self.floor = self.floor.max(through + 1);
                self.discarded.retain(|&s| s > through);
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
                reason: crate::DropReason::Damaged,
            } => {
                // Holes: numbers the model's store never held (the store is
                // never damaged here). After a restart, the numbers spent
                // by the previous machine are holes to the new one.
                for s in first..=last {
                    assert!(
                        !self.store.iter().any(|r| r.0 == s),
                        "stored event {s} dropped as damaged"
                    );
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
            Output::ReadSizes { .. }
            | Output::FindFresh { .. }
            | Output::Halted { .. }
            | Output::RetryScheduled { .. } => {}
        }
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

/// The machine, the model beside it and the judge, driven together.
struct Harness {
    setup: Setup,
    config: Config,
    seed: u64,
    m: Machine<CAP>,
    model: Model,
    judge: Judge,
    now: Instant,
    /// The wall clock (ms since the epoch): moves with `now`, and jumps.
    wall: u64,
}

impl Harness {
    fn new(setup: Setup, seed: u64) -> Self {
        let config = setup.config();
        Harness {
            setup,
            config,
            seed,
            m: Machine::new(config, seed).unwrap(),
            model: Model::default(),
            judge: {
                let mut judge = Judge::new(setup.limits(), judged_mode(setup.mode), true);
                judge.max_event_age(setup.max_age);
                judge
            },
            now: Instant::ZERO,
            wall: 1_700_000_000_000,
        }
    }

    /// Apply one op: tell the judge what is done, do it, judge every
    /// output, check the model.
    fn step(&mut self, op: &Op) {
        self.judge.at(self.now.as_millis());
        let model = &mut self.model;
        let judge = &mut self.judge;
        let mut verdict = None;
        let input = match *op {
            Op::Track(size) => {
                // Stamped as the driver stamps: the machine's wall clock.
                judge.stamp(self.m.wall_clock());
                model.tracking_stamp = self.m.wall_clock();
                verdict = Some(judge.track(size));
                Input::Track { size }
            }
            Op::TrackCritical(size) => {
                judge.stamp(self.m.wall_clock());
                model.tracking_stamp = self.m.wall_clock();
                verdict = Some(judge.track_critical(size));
                model.tracking_critical = true;
                Input::TrackCritical { size }
            }
            Op::Advance(ms) => {
                self.now = self.now.plus_millis(ms);
                self.wall = self.wall.saturating_add(ms);
                judge.at(self.now.as_millis());
                judge.tick();
                Input::Tick
            }
            Op::WallJump(by) => {
                self.wall = self.wall.saturating_add_signed(by);
                judge.wall_clock(self.wall);
                Input::WallClock { now_ms: self.wall }
            }
            Op::Flush => {
                judge.flush();
                Input::Flush
            }
            Op::Network(up, kind) => {
                judge.network_kind(up, judged_kind(kind));
                Input::Network { up, kind }
            }
            Op::PowerSave(on) => {
                judge.power_save(on);
                Input::PowerSave(on)
            }
            Op::Lifecycle(l) => {
                if l != Lifecycle::Foreground {
                    judge.closing();
                }
                Input::Lifecycle(l)
            }
            Op::Respond {
                status,
                retry_after,
            } => match model.in_flight.take() {
                Some(b) => {
                    judge.answer(Answer::Status {
                        status,
                        retry_after_ms: retry_after,
                    });
                    Input::Response {
                        batch: b.id,
                        status,
                        retry_after: retry_after.map(Duration::from_millis),
                    }
                }
                None => Input::Response {
                    batch: 999_999,
                    status,
                    retry_after: None,
                },
            },
            Op::TransportFail => match model.in_flight.take() {
                Some(b) => {
                    judge.answer(Answer::Failed);
                    Input::TransportFailed { batch: b.id }
                }
                None => {
                    judge.tick();
                    Input::Tick
                }
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
                    judge.tick();
                    Input::Tick
                } else {
                    model.store.truncate(keep);
                    judge.append_failed(from);
                    Input::PersistFailed { from_seq: from }
                }
            }
            Op::Resume => {
                judge.resume();
                Input::Resume
            }
            Op::SetMode(mode) => {
                judge.set_mode(judged_mode(mode));
                Input::SetFlushMode(mode)
            }
            Op::SetPeriod(millis) => Input::SetFlushPeriod(Duration::from_millis(millis)),
            Op::SetThreshold(t) => Input::SetFlushThreshold(t),
            Op::Restart => return self.restart(),
        };
        self.feed(input, verdict);
        if let Op::Advance(_) = op {
            // The adapter tells the wall clock after the tick.
            self.judge.wall_clock(self.wall);
            self.feed(Input::WallClock { now_ms: self.wall }, None);
        }
    }

    /// A crash after a commit (the store keeps every record), then a new
    /// machine restored from the model's store.
    fn restart(&mut self) {
        self.feed(Input::Commit, None);

        let (model, judge) = (&mut self.model, &mut self.judge);
        let now = self.now;
        let m = &mut self.m;
        *m = Machine::new(self.config, self.seed.wrapping_add(model.floor)).unwrap();
        judge.restart(self.setup.limits(), judged_mode(self.setup.mode), true);
        for &(seq, _) in &model.store {
            if let Some(&stamp) = model.stamps.get(&seq) {
                judge.restore_stamp(seq, stamp);
            }
        }
        judge.restore_flagged(
            model
                .store
                .iter()
                .map(|&(seq, size)| (seq, size, model.critical.contains(&seq))),
        );
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
        let newest_critical = model
            .store
            .iter()
            .rev()
            .find(|r| model.critical.contains(&r.0));
        if let Some(&(through, _)) = newest_critical {
            m.handle(now, Input::CriticalPending { through }).unwrap();
        }
        model.in_flight = None;
        model.accepted = 0;
        model.life_start = model.fates.len();
        model.restored = model.store.len() as u64;
        for (i, f) in FATES.iter().enumerate() {
            model.base[i] = count(model, *f);
        }
        // Pending events carry over as restored ones.
        model.base[0] = 0;
        judge.tick();

        self.feed(Input::Tick, None);
        // The new machine learns the wall clock from its adapter.
        self.judge.wall_clock(self.wall);
        self.feed(Input::WallClock { now_ms: self.wall }, None);
    }

    /// Hand the machine one input and drain it, judging every output.
    fn feed(&mut self, input: Input, verdict: Option<TrackVerdict>) {
        let (m, model) = (&mut self.m, &mut self.model);
        let before = m.stats();
        let result = m.handle(self.now, input);
        match result {
            Ok(crate::Accepted::Tracked(seq)) => {
                // Never reused, not even a never-stored event's number, in
                // one machine's life. After a restart only a number the
                // store never held (a previous life's NotStored) may come
                // back: the store's floor cannot know it.
                let (before, this_life) = model.fates.split_at(model.life_start);
                assert!(
                    this_life.iter().all(|(s, _)| *s != seq)
                        && before
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
        if let Some(v) = verdict {
            // Refused exactly when too large, or full under RejectNew.
            let expected = if v.too_large {
                Err(InputError::TooLarge {
                    size: match input {
                        Input::Track { size } | Input::TrackCritical { size } => size,
                        _ => 0,
                    },
                    max: MAX_EVENT,
                })
            } else if !v.fits && (self.setup.reject_new || v.refused) {
                Err(InputError::QueueFull)
            } else if v.may_refuse && result == Err(InputError::QueueFull) {
                // Behind a critical head the machine may refuse instead.
                self.judge.refused();
                Err(InputError::QueueFull)
            } else {
                result.map(|_| crate::Accepted::Applied)
            };
            assert_eq!(result.map(|_| crate::Accepted::Applied), expected);
        }
        self.pump();
        self.model.tracking_critical = false;
        if let Err(b) = self.judge.settle() {
            panic!("{b}");
        }
        // A critical event's flush stands in every mode until it is sent.
        if self.judge.critical_flush_owed() {
            assert!(
                self.m.stats().flush_requested,
                "a critical event waits for its flush, but none is requested"
            );
        }
        if !self.judge.in_flight() {
            // Its deadline passed: the judge says the machine gave up on it.
            self.model.in_flight = None;
        }
        check(&self.m, &self.model);
    }

    /// Drain the machine into the model and the judge, answering reads of
    /// sizes from the model's store.
    fn pump(&mut self) {
        let (m, model) = (&mut self.m, &mut self.model);
        while let Some(o) = m.poll_output() {
            if let Output::ReadSizes { from, max } = o {
                // As the driver answers: one size per number, a HOLE for a
                // number without a record (also past the store's end, where
                // a discarded newest record leaves numbers the floor spent).
                let sizes: Vec<(Seq, u32)> = (from..from + u64::from(max))
                    .map(|s| {
                        let size = model.store.iter().find(|r| r.0 == s).map(|r| r.1);
                        let size = match size {
                            Some(size) if model.critical.contains(&s) => size | crate::CRITICAL,
                            Some(size) => size,
                            None if model.discarded.contains(&s) => crate::DISCARDED,
                            None => crate::HOLE,
                        };
                        (s, size)
                    })
                    .collect();
                for (seq, size) in sizes {
                    m.handle(self.now, Input::Size { seq, size }).unwrap();
                }
            }
            if let Output::FindFresh { after_ms } = o {
                // As a stamping store answers: the oldest record stamped at
                // or after the cutoff (or not stamped), else past the end.
                let first_fresh_seq = model
                    .store
                    .iter()
                    .map(|r| r.0)
                    .find(|s| model.stamps.get(s).is_none_or(|&t| t >= after_ms))
                    .unwrap_or(Seq::MAX);
                m.handle(self.now, Input::Fresh { first_fresh_seq })
                    .unwrap();
            }
            if !self.judge.in_flight() {
                // Its deadline passed: the judge says the machine gave up on it.
                model.in_flight = None;
            }
            model.apply(o, &self.config);
            if let Some(seen) = crate::judged::seen(&o) {
                if let Err(b) = self.judge.seen(&seen) {
                    panic!("{b} (output {o:?})");
                }
            }
        }
    }

    /// Network up, resume, flush, then answer 200 to everything until idle.
    fn heal(&mut self) {
        self.judge.at(self.now.as_millis());
        self.judge.network_kind(true, Kind::Unmetered);
        self.feed(
            Input::Network {
                up: true,
                kind: NetworkKind::Unmetered,
            },
            None,
        );
        self.judge.power_save(false);
        self.feed(Input::PowerSave(false), None);
        self.judge.resume();
        self.feed(Input::Resume, None);
        self.judge.flush();
        self.feed(Input::Flush, None);
        for _ in 0..10_000 {
            if let Some(b) = self.model.in_flight.take() {
                self.judge.answer(Answer::Status {
                    status: 200,
                    retry_after_ms: None,
                });
                let input = Input::Response {
                    batch: b.id,
                    status: 200,
                    retry_after: None,
                };
                self.feed(input, None);
            } else if let Some(t) = self.m.poll_timeout() {
                self.now = t;
                self.judge.at(t.as_millis());
                self.judge.tick();
                self.feed(Input::Tick, None);
            } else {
                break;
            }
        }
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
    fn machine_agrees_with_the_model(setup in setup(), seed in any::<u64>(), ops in prop::collection::vec(op(), 200)) {
        let mut h = Harness::new(setup, seed);
        for op in &ops {
            h.step(op);
        }
    }
}

/// With a healthy server and network, any run (every op may come before
/// the healing) ends with everything delivered.
#[test]
fn healed_runs_deliver_everything_left() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(setup(), any::<u64>(), prop::collection::vec(op(), 100)),
            |(setup, seed, ops)| {
                let mut h = Harness::new(setup, seed);
                for op in &ops {
                    h.step(op);
                }
                h.heal();
                prop_assert_eq!(h.m.stats().pending_events, 0);
                Ok(())
            },
        )
        .unwrap();
}
