//! The driver over a hostile store: appends, syncs, reads, deletes and
//! restores that fail or come back short at arbitrary moments, a batch
//! buffer of any size, any answer from the server, and crashes that keep
//! only what was synced. The driver may return errors; it must not panic,
//! and the machine it drives must keep its accounts and limits.
//!
//! When the buffer holds any batch, the judge (`outbox-judge`) also rules
//! on every drop, retry, rejection, halt and send, from what this target
//! itself did: the store and the transport log each failure they cause,
//! the observer logs each output, and the log is played to the judge in
//! the order the driver met them. (A buffer too small for a batch is a
//! failure of the driver's own making that the judge has no rule for.)

#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use outbox_core::{
    judged, Batch, Config, Driver, FlushMode, Input, Instant, Machine, Outcome, Output, Overflow,
    Payloads, ReadError, RejectReason, Seq, Store, StoreSummary, Transport,
};
use outbox_judge::{Answer, Judge, Limits, Mode};

const CAP: usize = 16;

#[derive(Arbitrary, Debug, Clone, Copy, Default)]
struct Faults {
    append: bool,
    sync: bool,
    /// 0: fine, 1: error, 2: short, 3: long (more bytes than asked).
    read: u8,
    delete: bool,
    restore: bool,
    reject: bool,
}

/// What the store or the transport did while the driver applied an output.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// `read_sizes` gave this many sizes (`None`: it failed).
    Sizes(Option<usize>),
    /// The append of this number failed.
    AppendFailed(Seq),
    /// A sync failed, or succeeded.
    SyncFailed,
    Synced,
    DeleteFailed,
    /// The transport took the batch, or refused it.
    Sent,
    Refused,
}

#[derive(Debug)]
enum Item {
    Out(Output),
    Side(Side),
}

/// Everything the driver did, in order: an output, then what applying it
/// made the store and the transport do (the observer sees an output after
/// it is applied, so the side effects are moved behind it).
#[derive(Default)]
struct Log {
    during: Vec<Side>,
    items: Vec<Item>,
}

type Shared = Rc<RefCell<Log>>;

fn note(log: &Shared, side: Side) {
    log.borrow_mut().during.push(side);
}

#[derive(Default)]
struct FStore {
    /// (seq, payload, synced)
    recs: VecDeque<(Seq, Vec<u8>, bool)>,
    faults: Faults,
    floor: Seq,
    log: Shared,
}

impl Store for FStore {
    type Error = ();
    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), ()> {
        if self.faults.append {
            note(&self.log, Side::AppendFailed(seq));
            return Err(());
        }
        self.recs.retain(|(s, _, _)| *s < seq);
        self.recs.push_back((seq, payload.to_vec(), false));
        Ok(())
    }
    fn sync(&mut self) -> Result<(), ()> {
        if self.faults.sync {
            self.recs.retain(|(_, _, synced)| *synced);
            note(&self.log, Side::SyncFailed);
            return Err(());
        }
        note(&self.log, Side::Synced);
        for r in self.recs.iter_mut() {
            r.2 = true;
            self.floor = self.floor.max(r.0 + 1);
        }
        Ok(())
    }
    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<()>> {
        if self.faults.read == 1 {
            return Err(ReadError::Store(()));
        }
        let mut n = 0;
        for (_, p, _) in self
            .recs
            .iter()
            .filter(|(s, _, _)| (first..=last).contains(s))
        {
            let take = p.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&p[..take]);
            n += take;
        }
        Ok(match self.faults.read {
            2 => n / 2,
            3 => n.saturating_mul(2).saturating_add(7),
            _ => n,
        })
    }
    fn delete_through(&mut self, through: Seq) -> Result<(), ()> {
        if self.faults.delete {
            note(&self.log, Side::DeleteFailed);
            return Err(());
        }
        self.recs.retain(|(s, _, _)| *s > through);
        Ok(())
    }
    fn summary(&mut self) -> Result<StoreSummary, ()> {
        if self.faults.restore {
            return Err(());
        }
        Ok(match (self.recs.front(), self.recs.back()) {
            (Some(f), Some(l)) => StoreSummary {
                count: self.recs.len() as u64,
                bytes: self.recs.iter().map(|(_, p, _)| p.len() as u64).sum(),
                first: f.0,
                last: l.0,
            },
            _ => StoreSummary::EMPTY,
        })
    }
    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, ()> {
        if self.faults.restore {
            note(&self.log, Side::Sizes(None));
            return Err(());
        }
        // The store contract: one size per number up to the store's end,
        // a HOLE for a number without a record.
        let end = self.recs.back().map_or(from, |r| r.0 + 1);
        let n = out
            .iter_mut()
            .zip(from..end)
            .map(|(o, seq)| {
                let rec = self.recs.iter().find(|r| r.0 == seq);
                *o = rec.map_or(outbox_core::HOLE, |r| r.1.len() as u32);
            })
            .count();
        note(&self.log, Side::Sizes(Some(n)));
        Ok(n)
    }
    fn seq_floor(&mut self) -> Result<Seq, ()> {
        Ok(self.floor)
    }
    fn reject(&mut self, _: Seq, _: u16, _: RejectReason) -> Result<(), ()> {
        if self.faults.reject {
            Err(())
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
struct FTransport {
    in_flight: Option<Batch>,
    answer: Option<Outcome>,
    refuse: bool,
    log: Shared,
}

impl Transport for FTransport {
    type Error = ();
    fn send(&mut self, _: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
        let mut expect = batch.first;
        for (seq, _) in payloads {
            assert_eq!(seq, expect, "payloads out of order");
            expect += 1;
        }
        assert!(expect <= batch.last + 1);
        if self.refuse {
            note(&self.log, Side::Refused);
            return Err(());
        }
        note(&self.log, Side::Sent);
        self.in_flight = Some(*batch);
        Ok(())
    }
    fn poll_outcome(&mut self, _: Instant) -> Option<Outcome> {
        self.answer.take()
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Track {
        len: u16,
        byte: u8,
    },
    Poll(u32),
    Sync,
    Flush,
    Network(bool),
    Answer {
        status: u16,
        retry_after: Option<u16>,
        failed: bool,
    },
    Faults(Faults),
    RefuseSends(bool),
    Resume,
    SetMode(u8),
    Crash,
}

#[derive(Arbitrary, Debug)]
struct Run {
    seed: u64,
    queue_events: u8,
    queue_bytes: u16,
    event_bytes: u16,
    batch_events: u8,
    batch_bytes: u16,
    buf: u16,
    ops: Vec<Op>,
}

/// The limits the judge rules by, from the configuration the target built.
fn limits(c: &Config) -> Limits {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Limits {
        max_queue_events: c.max_queue_events(),
        max_queue_bytes: c.max_queue_bytes(),
        max_event_bytes: c.max_event_bytes(),
        drop_oldest: matches!(c.overflow(), Overflow::DropOldest),
        max_attempts: c.max_attempts(),
        retry_base_ms: ms(c.retry_base()),
        retry_cap_ms: ms(c.retry_cap()),
        max_retry_after_ms: ms(c.max_retry_after()),
        request_timeout_ms: Some(ms(c.request_timeout())),
        max_consecutive_rejections: c.max_consecutive_rejections(),
        unmetered_only: c.upload_on() == outbox_core::UploadPolicy::Unmetered,
    }
}

/// Show the judge what the driver did in one call, in order, then settle.
fn play(judge: &mut Judge, log: &Shared) {
    let items = {
        let mut l = log.borrow_mut();
        l.during.clear();
        std::mem::take(&mut l.items)
    };
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        let Item::Out(o) = item else { continue };
        if let Some(seen) = judged::seen(&o) {
            if let Err(b) = judge.seen(&seen) {
                panic!("{b} (output {o:?})");
            }
        }
        let mut sides = Vec::new();
        while let Some(Item::Side(s)) = items.next_if(|i| matches!(i, Item::Side(_))) {
            sides.push(s);
        }
        match o {
            // The driver reads the batch, then hands it to the transport;
            // a batch the transport never saw was not read (a local
            // failure: no attempt spent).
            Output::Send(_) => {
                if sides.iter().any(|s| matches!(s, Side::Refused)) {
                    judge.answer(Answer::Failed);
                } else if !sides.iter().any(|s| matches!(s, Side::Sent)) {
                    judge.read_failed();
                }
            }
            // The driver asks in chunks; numbers past the store's end are
            // holes, only a failed read leaves sizes unavailable.
            Output::ReadSizes { .. } => {
                if sides.iter().any(|s| matches!(s, Side::Sizes(None))) {
                    judge.sizes_unavailable();
                }
            }
            // What the store failed, for the judge's NotStored rule.
            Output::Persist { .. } => {
                for s in &sides {
                    if let Side::AppendFailed(seq) = *s {
                        judge.append_failed(seq);
                    }
                }
            }
            Output::Commit => {
                for s in &sides {
                    match s {
                        Side::SyncFailed => judge.commit_failed(),
                        Side::Synced => judge.committed(),
                        _ => {}
                    }
                }
            }
            Output::Delete { .. } if sides.iter().any(|s| matches!(s, Side::DeleteFailed)) => {
                judge.delete_failed();
            }
            _ => {}
        }
    }
    if let Err(b) = judge.settle() {
        panic!("{b}");
    }
}

fn forget(log: &Shared) {
    let mut l = log.borrow_mut();
    l.during.clear();
    l.items.clear();
}

fuzz_target!(|run: Run| {
    let Ok(config) = Config::builder()
        .max_queue_events(u32::from(run.queue_events).min(CAP as u32))
        .max_queue_bytes(u64::from(run.queue_bytes))
        .max_event_bytes(u32::from(run.event_bytes))
        .max_batch_events(u32::from(run.batch_events))
        .max_batch_bytes(u32::from(run.batch_bytes))
        .max_attempts(Some(3))
        .build()
    else {
        return;
    };
    let mut buf = vec![0u8; usize::from(run.buf)];
    // The judge rules when every batch fits the buffer.
    let judged = buf.len() >= config.max_batch_bytes().max(config.max_event_bytes()) as usize;
    let log: Shared = Rc::default();
    let mut judge = Judge::new(limits(&config), Mode::Immediate, true);
    let mut store = FStore {
        log: log.clone(),
        ..FStore::default()
    };
    let mut now = 0u64;
    let mut ops = run.ops.iter().peekable();
    let mut life = 0u64;
    while ops.peek().is_some() {
        life += 1;
        let Ok(machine) = Machine::<CAP>::new(config, run.seed.wrapping_add(life)) else {
            return;
        };
        let records: Vec<(Seq, u32)> = store
            .recs
            .iter()
            .map(|(s, p, _)| (*s, p.len() as u32))
            .collect();
        let observed = log.clone();
        let observer = move |o: &Output| {
            let mut l = observed.borrow_mut();
            l.items.push(Item::Out(*o));
            let during = std::mem::take(&mut l.during);
            l.items.extend(during.into_iter().map(Item::Side));
        };
        let transport = FTransport {
            log: log.clone(),
            ..FTransport::default()
        };
        let mut driver = match Driver::new(machine, store, transport, &mut buf, observer) {
            Ok(d) => d,
            // A buffer below one maximal event is refused up front.
            Err(_) => return,
        };
        judge.at(now);
        judge.restart(limits(&config), Mode::Immediate, true);
        judge.restore(records);
        if driver.start(Instant::from_millis(now)).is_err() {
            // A failed start is reported; the next life tries again.
            forget(&log);
            store = driver.into_parts().1;
            store.faults = Faults::default();
            ops.next();
            continue;
        }
        if judged {
            play(&mut judge, &log);
        }
        for op in ops.by_ref() {
            let t = Instant::from_millis(now);
            judge.at(now);
            match *op {
                Op::Track { len, byte } => {
                    judge.track(u32::from(len));
                    let _ = driver.track(t, &vec![byte; usize::from(len)]);
                }
                Op::Poll(ms) => {
                    now += u64::from(ms);
                    judge.at(now);
                    judge.tick();
                    let _ = driver.poll(Instant::from_millis(now));
                }
                Op::Sync => {
                    let _ = driver.sync(t);
                }
                Op::Flush => {
                    judge.flush();
                    let _ = driver.handle(t, Input::Flush);
                }
                Op::Network(up) => {
                    judge.network(up);
                    let _ = driver.handle(
                        t,
                        Input::Network {
                            up,
                            kind: outbox_core::NetworkKind::Unknown,
                        },
                    );
                }
                Op::Answer {
                    status,
                    retry_after,
                    failed,
                } => {
                    let tr = driver.transport_mut();
                    if let Some(b) = tr.in_flight.take() {
                        // An answer the machine no longer waits for (its
                        // deadline passed) is stale to both.
                        let (outcome, answer) = if failed {
                            (Outcome::Failed { batch: b.id }, Answer::Failed)
                        } else {
                            (
                                Outcome::Response {
                                    batch: b.id,
                                    status,
                                    retry_after: retry_after
                                        .map(|s| std::time::Duration::from_millis(u64::from(s))),
                                },
                                Answer::Status {
                                    status,
                                    retry_after_ms: retry_after.map(u64::from),
                                },
                            )
                        };
                        if judge.in_flight() {
                            judge.answer(answer);
                        }
                        tr.answer = Some(outcome);
                    }
                    // The poll collects it, and ticks when a timer is due.
                    if driver.poll_timeout().is_some_and(|w| w <= t) {
                        judge.tick();
                    }
                    let _ = driver.poll(t);
                }
                Op::Faults(f) => driver.store_mut().faults = f,
                Op::RefuseSends(r) => driver.transport_mut().refuse = r,
                Op::Resume => {
                    judge.resume();
                    let _ = driver.handle(t, Input::Resume);
                }
                Op::SetMode(m) => {
                    let (mode, judged_mode) = match m % 4 {
                        0 => (FlushMode::Immediate, Mode::Immediate),
                        1 => (FlushMode::Manual, Mode::Manual),
                        2 => (FlushMode::AppClose, Mode::AppClose),
                        _ => {
                            let period = std::time::Duration::from_millis(1 + u64::from(m) * 100);
                            let _ = driver.handle(t, Input::SetFlushPeriod(period));
                            (FlushMode::Period, Mode::Period)
                        }
                    };
                    judge.set_mode(judged_mode);
                    let _ = driver.handle(t, Input::SetFlushMode(mode));
                }
                Op::Crash => break,
            }
            if judged {
                play(&mut judge, &log);
            } else {
                forget(&log);
            }
            let m = driver.machine();
            let st = m.stats();
            assert!(st.balanced(), "accounts do not add up: {st:?}");
            assert!(st.pending_events <= config.max_queue_events());
            assert!(st.pending_bytes <= config.max_queue_bytes());
            if st.pending_events == 0 && m.in_flight().is_none() {
                assert_eq!(driver.poll_timeout(), None, "idle machine asks to be woken");
            }
        }
        // A crash: only synced records survive.
        forget(&log);
        store = driver.into_parts().1;
        store.recs.retain(|(_, _, synced)| *synced);
        store.faults = Faults::default();
    }
});
