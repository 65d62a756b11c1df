//! The machine under arbitrary input sequences.
//!
//! The fuzzer plays the driver, the store and the server: it applies every
//! output to a model store (a `VecDeque` of sequence numbers), answers
//! batches with any status (or a stale id), fails persists, moves time
//! backwards, and restarts the machine from the model store, sometimes with
//! smaller limits. After every input it checks what the simulator checks,
//! where it applies: no panic, bounded work, accounts that add up, limits
//! held, sends oldest first and within the batch limits, deletes only of
//! settled events, deliveries in order, no report lost or doubled, and no
//! wake-up asked with nothing pending. The judge (`outbox-judge`) rules on
//! every drop, rejection, halt, retry and send from what the fuzzer did and
//! saw, never from the machine's counters (invariant 5).

#![no_main]

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use outbox_core::{
    judged, Batch, Config, FlushMode, Input, InputError, Instant, Lifecycle, Machine, NetworkKind,
    Output, Overflow, Seq, StoreSummary, UploadPolicy,
};
use outbox_judge::{Answer, Judge, Kind, Limits};

const CAP: usize = 32;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mode {
    Immediate,
    Period(u32),
    AppClose,
    Manual,
}

impl Mode {
    fn judged(self) -> outbox_judge::Mode {
        match self {
            Mode::Immediate => outbox_judge::Mode::Immediate,
            Mode::Period(_) => outbox_judge::Mode::Period,
            Mode::AppClose => outbox_judge::Mode::AppClose,
            Mode::Manual => outbox_judge::Mode::Manual,
        }
    }

    fn period(self) -> Option<Duration> {
        match self {
            Mode::Period(ms) => Some(Duration::from_millis(u64::from(ms))),
            _ => None,
        }
    }

    fn flush_mode(self) -> FlushMode {
        match self {
            Mode::Immediate => FlushMode::Immediate,
            Mode::Period(_) => FlushMode::Period,
            Mode::AppClose => FlushMode::AppClose,
            Mode::Manual => FlushMode::Manual,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Setup {
    seed: u64,
    mode: Mode,
    threshold: Option<u8>,
    queue_events: u8,
    queue_bytes: u16,
    event_bytes: u16,
    batch_events: u8,
    batch_bytes: u16,
    envelope: (u8, u8),
    reject_new: bool,
    retry_base: u16,
    retry_cap: u32,
    max_attempts: Option<u8>,
    commit_delay: u16,
    /// The in-flight deadline in ms (0: practically never).
    request_timeout: u16,
    max_rejections: Option<u8>,
    /// Upload policy `Unmetered` (else `Any`).
    unmetered_only: bool,
}

impl Setup {
    /// The limits for the judge, from the fuzzer's own setup.
    fn limits(&self, queue_events: u32, queue_bytes: u64) -> Limits {
        Limits {
            max_queue_events: queue_events,
            max_queue_bytes: queue_bytes,
            max_event_bytes: u32::from(self.event_bytes),
            drop_oldest: !self.reject_new,
            max_attempts: self.max_attempts.map(u32::from),
            retry_base_ms: u64::from(self.retry_base),
            retry_cap_ms: u64::from(self.retry_cap),
            request_timeout_ms: Some(self.request_timeout().as_millis() as u64),
            max_consecutive_rejections: self.max_rejections.map(u32::from),
            unmetered_only: self.unmetered_only,
            ..Limits::default()
        }
    }

    fn request_timeout(&self) -> Duration {
        match self.request_timeout {
            0 => Duration::from_secs(1 << 40),
            ms => Duration::from_millis(u64::from(ms)),
        }
    }

    fn config(&self, queue_events: u32, queue_bytes: u64) -> Option<Config> {
        let b = Config::builder();
        let b = match self.mode.period() {
            Some(p) => b.flush_period(p),
            None => b,
        };
        b.flush_mode(self.mode.flush_mode())
            .max_commit_delay(Duration::from_millis(u64::from(self.commit_delay)))
            .request_timeout(self.request_timeout())
            .max_consecutive_rejections(self.max_rejections.map(u32::from))
            .flush_threshold(self.threshold.map(u32::from))
            .max_queue_events(queue_events)
            .max_queue_bytes(queue_bytes)
            .max_event_bytes(u32::from(self.event_bytes))
            .max_batch_events(u32::from(self.batch_events))
            .max_batch_bytes(u32::from(self.batch_bytes))
            .envelope_bytes(u32::from(self.envelope.0), u32::from(self.envelope.1))
            .overflow(if self.reject_new {
                Overflow::RejectNew
            } else {
                Overflow::DropOldest
            })
            .retry_backoff(
                Duration::from_millis(u64::from(self.retry_base)),
                Duration::from_millis(u64::from(self.retry_cap)),
            )
            .max_attempts(self.max_attempts.map(u32::from))
            .upload_on(if self.unmetered_only {
                UploadPolicy::Unmetered
            } else {
                UploadPolicy::Any
            })
            .build()
            .ok()
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Track(u16),
    /// A critical event of this size.
    TrackCritical(u16),
    Advance(u32),
    Back(u16),
    Tick,
    Flush,
    /// Up or down, and the kind (`kind % 3`: unmetered, metered, unknown).
    Network(bool, u8),
    PowerSave(bool),
    Lifecycle(u8),
    Respond {
        status: u16,
        retry_after: Option<u32>,
        stale: bool,
    },
    Fail {
        stale: bool,
    },
    PersistFailed(u8),
    Resume,
    SetMode(Mode),
    SetPeriod(u32),
    SetThreshold(Option<u8>),
    /// A restore or a seq floor at the wrong time must be refused, not obeyed.
    LateRestore {
        seq: u64,
        size: u16,
    },
    /// Throw the machine away; restore the model store, maybe over smaller limits.
    Restart {
        shrink: Option<(u8, u16)>,
    },
}

#[derive(Arbitrary, Debug)]
struct Run {
    setup: Setup,
    ops: Vec<Op>,
}

/// The fuzzer's view of the world.
struct Model {
    now: u64,
    /// Stored events: (seq, size), oldest first.
    store: VecDeque<(Seq, u32)>,
    /// One past the highest seq ever stored.
    floor: Seq,
    /// Stored events already reported delivered, dropped or rejected.
    settled: BTreeSet<Seq>,
    in_flight: Option<Batch>,
    /// The batch a response just answered (deliveries must fall in it).
    answered: Option<Batch>,
    last_delivered: Option<Seq>,
    config: Config,
    judge: Judge,
    /// Stored events below this are committed.
    committed: Seq,
    /// When the batch in flight times out (`request_timeout` after its send).
    deadline: u64,
    /// The event being tracked is critical (until its `Persist`).
    tracking_critical: bool,
    /// Stored events that are critical (the store keeps the flag).
    critical: BTreeSet<Seq>,
    /// Events discarded from the middle, until a delete passes them.
    discarded: BTreeSet<Seq>,
}

impl Model {
    fn drain(&mut self, m: &mut Machine<CAP>) {
        self.pump(m);
        if let Err(b) = self.judge.settle() {
            panic!("{b}");
        }
        if !self.judge.in_flight() {
            self.in_flight = None;
        }
        self.check(m);
    }

    /// Apply every output, checking each.
    fn pump(&mut self, m: &mut Machine<CAP>) {
        let cfg = *m.config();
        for _ in 0..100_000 {
            if !self.judge.in_flight() {
                // Its deadline passed: the judge says the machine gave up.
                self.in_flight = None;
            }
            let Some(o) = m.poll_output() else {
                return;
            };
            if let Some(seen) = judged::seen(&o) {
                if let Err(b) = self.judge.seen(&seen) {
                    panic!("{b} (output {o:?})");
                }
            }
            match o {
                Output::Persist { seq, size } => {
                    if let Some((last, _)) = self.store.back() {
                        assert!(seq > *last, "persist {seq} after {last}");
                    }
                    self.settled.remove(&seq);
                    self.store.push_back((seq, size));
                    self.floor = self.floor.max(seq + 1);
                    if std::mem::take(&mut self.tracking_critical) {
                        self.critical.insert(seq);
                    }
                }
                Output::Discard { seq } => {
                    let at = self.store.iter().position(|r| r.0 == seq);
                    let at = at.unwrap_or_else(|| panic!("discard of unstored {seq}"));
                    assert!(
                        self.settled.contains(&seq),
                        "discard of {seq} before its report"
                    );
                    assert!(!self.critical.contains(&seq), "critical {seq} discarded");
                    self.store.remove(at);
                    self.settled.remove(&seq);
                    self.discarded.insert(seq);
                }
                Output::Delete { through } => {
                    self.discarded.retain(|&s| s > through);
                    while let Some(&(seq, _)) = self.store.front() {
                        if seq > through {
                            break;
                        }
                        assert!(
                            self.settled.remove(&seq),
                            "delete through {through} removes unsettled {seq}"
                        );
                        self.store.pop_front();
                    }
                }
                Output::Send(b) => {
                    assert!(self.in_flight.is_none(), "two batches in flight");
                    assert_eq!(
                        self.store.front().map(|s| s.0),
                        Some(b.first),
                        "send not oldest first"
                    );
                    assert!(b.first <= b.last);
                    assert_eq!(u64::from(b.count), b.last - b.first + 1);
                    assert!(b.count <= cfg.max_batch_events(), "batch over max events");
                    assert!(
                        b.count == 1 || b.bytes <= cfg.max_batch_bytes(),
                        "batch over max bytes"
                    );
                    let stored = self
                        .store
                        .iter()
                        .filter(|(s, _)| (b.first..=b.last).contains(s))
                        .count();
                    assert_eq!(
                        stored as u64,
                        u64::from(b.count),
                        "send names unstored events"
                    );
                    self.in_flight = Some(b);
                    let timeout = cfg.request_timeout().as_millis();
                    self.deadline = self
                        .now
                        .saturating_add(u64::try_from(timeout).unwrap_or(u64::MAX));
                }
                Output::Delivered { first, last } => {
                    let b = self.answered.expect("delivered without a response");
                    assert!(
                        b.first <= first && last <= b.last,
                        "delivered outside the batch"
                    );
                    if let Some(prev) = self.last_delivered {
                        assert!(first > prev, "delivered {first} after {prev}: out of order");
                    }
                    self.last_delivered = Some(last);
                    self.settle(first, last);
                }
                Output::Dropped {
                    first,
                    last,
                    reason: outbox_core::DropReason::Damaged,
                } => {
                    // Holes: numbers this store never held (spent by an
                    // earlier machine); it damages nothing.
                    for seq in first..=last {
                        assert!(
                            !self.store.iter().any(|(s, _)| *s == seq),
                            "stored {seq} dropped as damaged"
                        );
                    }
                }
                Output::Dropped { first, last, .. } => self.settle(first, last),
                Output::Rejected { seq, status, .. } => {
                    assert!(matches!(status, 400 | 413 | 422), "rejected on {status}");
                    self.settle(seq, seq);
                }
                // The judge rules on halts (the status table, storms).
                Output::Halted { .. } => {}
                Output::Commit => {
                    self.committed = self.store.back().map_or(self.committed, |r| r.0 + 1);
                }
                Output::ReadSizes { from, max } => {
                    // As the driver answers under the store contract: one
                    // size per number asked for, a HOLE for a number without
                    // a record (also past the store's end).
                    let sizes: Vec<(Seq, u32)> = (from..from + u64::from(max))
                        .map(|seq| {
                            let size = self.store.iter().find(|r| r.0 == seq).map(|r| r.1);
                            let size = match size {
                                Some(z) if self.critical.contains(&seq) => {
                                    z | outbox_core::CRITICAL
                                }
                                Some(z) => z,
                                None if self.discarded.contains(&seq) => outbox_core::DISCARDED,
                                None => outbox_core::HOLE,
                            };
                            (seq, size)
                        })
                        .collect();
                    let now = Instant::from_millis(self.now);
                    for (seq, size) in sizes {
                        m.handle(now, Input::Size { seq, size })
                            .expect("a size is accepted");
                    }
                }
                Output::RetryScheduled { at, .. } => {
                    assert!(at.as_millis() >= self.now, "retry scheduled in the past")
                }
            }
        }
        panic!("poll_output did not run dry: unbounded work");
    }

    /// A tick at or after the deadline fails the batch in flight.
    fn expire_in_flight(&mut self) {
        if self.in_flight.is_some() && self.now >= self.deadline {
            self.in_flight = None;
        }
    }

    fn settle(&mut self, first: Seq, last: Seq) {
        assert!(first <= last);
        for seq in first..=last {
            assert!(
                self.store.iter().any(|(s, _)| *s == seq),
                "reported {seq}, which is not stored"
            );
            assert!(self.settled.insert(seq), "{seq} reported twice");
        }
    }

    fn check(&self, m: &Machine<CAP>) {
        let st = m.stats();
        let cfg = m.config();
        assert!(st.balanced(), "accounts do not add up: {st:?}");
        assert_eq!(st.notes_overflowed, 0, "a notification was lost");
        assert!(
            st.pending_events <= cfg.max_queue_events(),
            "queue over max events"
        );
        assert!(
            st.pending_bytes <= cfg.max_queue_bytes(),
            "queue over max bytes"
        );
        assert_eq!(
            self.store.len() as u64,
            u64::from(st.pending_events),
            "store and machine disagree"
        );
        let bytes: u64 = self.store.iter().map(|(_, s)| u64::from(*s)).sum();
        assert_eq!(bytes, st.pending_bytes);
        if let Some((last, _)) = self.store.back() {
            // Numbers of events not stored are spent: the next one may be
            // past the newest record, never at or below it.
            assert!(*last < st.next_seq, "{last} stored, next {}", st.next_seq);
        }
        if st.pending_events == 0 && m.in_flight().is_none() {
            assert_eq!(m.poll_timeout(), None, "idle machine asks to be woken");
        }
        assert_eq!(m.in_flight(), self.in_flight);
        assert!(self.config.max_event_bytes() == cfg.max_event_bytes());
    }
}

fn restart(
    model: &mut Model,
    config: Config,
    limits: Limits,
    mode: Mode,
    seed: u64,
) -> Option<Machine<CAP>> {
    let mut m = Machine::<CAP>::new(config, seed).ok()?;
    model.in_flight = None;
    model.answered = None;
    model.config = config;
    let now = Instant::from_millis(model.now);
    model.judge.at(model.now);
    model.judge.restart(limits, mode.judged(), true);
    let flagged: Vec<(Seq, u32, bool)> = model
        .store
        .iter()
        .map(|&(seq, size)| (seq, size, model.critical.contains(&seq)))
        .collect();
    model.judge.restore_flagged(flagged);
    let summary = match (model.store.front(), model.store.back()) {
        (Some(f), Some(l)) => StoreSummary {
            count: model.store.len() as u64,
            bytes: model.store.iter().map(|r| u64::from(r.1)).sum(),
            first: f.0,
            last: l.0,
        },
        _ => StoreSummary::EMPTY,
    };
    m.handle(now, Input::Restore(summary))
        .expect("a summary of the store is accepted");
    model.committed = model.store.back().map_or(0, |r| r.0 + 1);
    m.handle(now, Input::SeqFloor { next: model.floor })
        .expect("a seq floor after restores is accepted");
    let newest_critical = model
        .store
        .iter()
        .rev()
        .find(|r| model.critical.contains(&r.0));
    if let Some(&(through, _)) = newest_critical {
        m.handle(now, Input::CriticalPending { through })
            .expect("the newest critical record is accepted");
    }
    model.drain(&mut m);
    Some(m)
}

fuzz_target!(|run: Run| {
    let s = &run.setup;
    let queue_events = u32::from(s.queue_events);
    let queue_bytes = u64::from(s.queue_bytes);
    let Some(config) = s.config(queue_events, queue_bytes) else {
        return;
    };
    let mut model = Model {
        now: 0,
        store: VecDeque::new(),
        floor: 0,
        settled: BTreeSet::new(),
        in_flight: None,
        answered: None,
        last_delivered: None,
        config,
        judge: Judge::new(s.limits(queue_events, queue_bytes), s.mode.judged(), true),
        committed: 0,
        deadline: 0,
        tracking_critical: false,
        critical: BTreeSet::new(),
        discarded: BTreeSet::new(),
    };
    let limits = s.limits(queue_events, queue_bytes);
    let Some(mut m) = restart(&mut model, config, limits, s.mode, s.seed) else {
        return;
    };
    let max_event = config.max_event_bytes();
    for (i, op) in run.ops.iter().enumerate() {
        let now = Instant::from_millis(model.now);
        model.answered = None;
        model.judge.at(model.now);
        let mut woken = false;
        match *op {
            Op::Track(size) | Op::TrackCritical(size) => {
                let critical = matches!(*op, Op::TrackCritical(_));
                let size = u32::from(size);
                let before = m.stats();
                let verdict = if critical {
                    model.judge.track_critical(size)
                } else {
                    model.judge.track(size)
                };
                let input = if critical {
                    Input::TrackCritical { size }
                } else {
                    Input::Track { size }
                };
                let r = m.handle(now, input);
                model.tracking_critical = critical && r.is_ok();
                if verdict.may_refuse && matches!(r, Err(InputError::QueueFull)) {
                    // Behind critical events the machine may refuse.
                    model.judge.refused();
                }
                if size > max_event {
                    assert!(
                        matches!(r, Err(InputError::TooLarge { .. })),
                        "over-size accepted"
                    );
                }
                // Refused as full exactly when it did not fit under RejectNew.
                let must = !verdict.too_large && !verdict.fits && (s.reject_new || verdict.refused);
                let may = must || (!verdict.too_large && verdict.may_refuse);
                let full = matches!(r, Err(InputError::QueueFull));
                assert!(
                    full == must || (full && may),
                    "queue full judged wrong: {r:?}, {verdict:?}"
                );
                if r.is_err() {
                    assert_eq!(
                        m.stats().tracked,
                        before.tracked,
                        "a refused track changed the machine"
                    );
                }
            }
            Op::Advance(ms) => {
                model.now += u64::from(ms);
                model.judge.at(model.now);
                model.judge.tick();
                let _ = m.handle(Instant::from_millis(model.now), Input::Tick);
                model.expire_in_flight();
            }
            Op::Back(ms) => {
                model.judge.tick();
                // Time reported backwards: treated as the latest instant seen.
                let _ = m.handle(
                    Instant::from_millis(model.now.saturating_sub(u64::from(ms))),
                    Input::Tick,
                );
            }
            Op::Tick => {
                let due = m.poll_timeout();
                if let Some(t) = due {
                    model.now = model.now.max(t.as_millis());
                }
                model.judge.at(model.now);
                model.judge.tick();
                let _ = m.handle(Instant::from_millis(model.now), Input::Tick);
                woken = due.is_some();
                model.expire_in_flight();
            }
            Op::Flush => {
                model.judge.flush();
                let _ = m.handle(now, Input::Flush);
            }
            Op::Network(up, kind) => {
                let (kind, judged) = [
                    (NetworkKind::Unmetered, Kind::Unmetered),
                    (NetworkKind::Metered, Kind::Metered),
                    (NetworkKind::Unknown, Kind::Unknown),
                ][usize::from(kind % 3)];
                model.judge.network_kind(up, judged);
                let _ = m.handle(now, Input::Network { up, kind });
            }
            Op::PowerSave(on) => {
                model.judge.power_save(on);
                let _ = m.handle(now, Input::PowerSave(on));
            }
            Op::Lifecycle(l) => {
                let l = [
                    Lifecycle::Foreground,
                    Lifecycle::Background,
                    Lifecycle::Terminate,
                ][usize::from(l % 3)];
                if l != Lifecycle::Foreground {
                    model.judge.closing();
                }
                let _ = m.handle(now, Input::Lifecycle(l));
            }
            Op::Respond {
                status,
                retry_after,
                stale,
            } => {
                let id = match model.in_flight {
                    Some(b) if !stale => {
                        model.in_flight = None;
                        model.answered = Some(b);
                        model.judge.answer(Answer::Status {
                            status,
                            retry_after_ms: retry_after.map(u64::from),
                        });
                        b.id
                    }
                    Some(b) => b.id.wrapping_add(1 + u64::from(status)),
                    None => u64::from(status),
                };
                let _ = m.handle(
                    now,
                    Input::Response {
                        batch: id,
                        status,
                        retry_after: retry_after.map(|ms| Duration::from_millis(u64::from(ms))),
                    },
                );
            }
            Op::Fail { stale } => {
                let id = match model.in_flight {
                    Some(b) if !stale => {
                        model.in_flight = None;
                        model.judge.answer(Answer::Failed);
                        b.id
                    }
                    Some(b) => b.id.wrapping_add(7),
                    None => 0,
                };
                let _ = m.handle(now, Input::TransportFailed { batch: id });
            }
            Op::PersistFailed(back) => {
                // Only events not yet sent can fail to persist (a send
                // follows a sync); pick one of those, if any.
                let next = m.stats().next_seq;
                let from = next.saturating_sub(u64::from(back % 4) + 1);
                // Only uncommitted events can fail to persist.
                let sent_through = model.in_flight.map(|b| b.last);
                if from >= model.committed && sent_through.is_none_or(|l| from > l) {
                    model.judge.append_failed(from);
                    let _ = m.handle(now, Input::PersistFailed { from_seq: from });
                    model.pump(&mut m);
                    // The store never got them (after the report, which
                    // names them while they are still in the model).
                    while model.store.back().is_some_and(|(s, _)| *s >= from) {
                        let (seq, _) = model.store.pop_back().unwrap_or_default();
                        assert!(
                            model.settled.contains(&seq),
                            "persist failure unreported for {seq}"
                        );
                        model.settled.remove(&seq);
                    }
                }
            }
            Op::Resume => {
                model.judge.resume();
                let _ = m.handle(now, Input::Resume);
            }
            Op::SetMode(mode) => {
                model.judge.set_mode(mode.judged());
                if let Some(p) = mode.period() {
                    let _ = m.handle(now, Input::SetFlushPeriod(p));
                }
                let _ = m.handle(now, Input::SetFlushMode(mode.flush_mode()));
            }
            Op::SetPeriod(ms) => {
                let _ = m.handle(
                    now,
                    Input::SetFlushPeriod(Duration::from_millis(u64::from(ms))),
                );
            }
            Op::SetThreshold(t) => {
                let _ = m.handle(now, Input::SetFlushThreshold(t.map(u32::from)));
            }
            Op::LateRestore { seq, size } => {
                let before = m.stats();
                let r = m.handle(
                    now,
                    Input::Restore(StoreSummary {
                        count: 1,
                        bytes: u64::from(size),
                        first: seq,
                        last: seq,
                    }),
                );
                // The machine restored at start-up already: refused.
                assert!(r.is_err(), "a late restore was obeyed");
                assert_eq!(m.stats(), before, "a refused restore changed the machine");
            }
            Op::Restart { shrink } => {
                let (qe, qb) = match shrink {
                    Some((e, b)) => (u32::from(e), u64::from(b)),
                    None => (queue_events, queue_bytes),
                };
                let (config, limits) = match s.config(qe, qb) {
                    Some(c) => (c, s.limits(qe, qb)),
                    None => (config, limits),
                };
                let seed = s.seed.wrapping_add(i as u64);
                match restart(&mut model, config, limits, s.mode, seed) {
                    Some(new) => m = new,
                    None => continue,
                }
            }
        }
        model.drain(&mut m);
        if woken {
            // Woken and drained, it does not ask to be woken at once.
            if let Some(next) = m.poll_timeout() {
                assert!(
                    next.as_millis() > model.now,
                    "woken, asks to be woken again now"
                );
            }
        }
    }
});
