//! The driver over a hostile store: appends, syncs, reads, deletes and
//! restores that fail or come back short at arbitrary moments, a batch
//! buffer of any size, any answer from the server, and crashes that keep
//! only what was synced. The driver may return errors; it must not panic,
//! and the machine it drives must keep its accounts and limits.

#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use outbox_core::{
    Batch, Config, Driver, FlushMode, Input, Instant, Machine, Outcome, Output, Payloads,
    ReadError, RejectReason, Seq, Store, StoreSummary, Transport,
};

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

#[derive(Default)]
struct FStore {
    /// (seq, payload, synced)
    recs: VecDeque<(Seq, Vec<u8>, bool)>,
    faults: Faults,
    floor: Seq,
}

impl Store for FStore {
    type Error = ();
    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), ()> {
        if self.faults.append {
            return Err(());
        }
        self.recs.retain(|(s, _, _)| *s < seq);
        self.recs.push_back((seq, payload.to_vec(), false));
        Ok(())
    }
    fn sync(&mut self) -> Result<(), ()> {
        if self.faults.sync {
            self.recs.retain(|(_, _, synced)| *synced);
            return Err(());
        }
        for r in self.recs.iter_mut() {
            r.2 = true;
            self.floor = self.floor.max(r.0 + 1);
        }
        Ok(())
    }
    fn read_range(&mut self, first: Seq, last: Seq, buf: &mut [u8]) -> Result<usize, ReadError<()>> {
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
            return Err(());
        }
        let sizes = self.recs.iter().filter(|(s, _, _)| *s >= from);
        Ok(out
            .iter_mut()
            .zip(sizes)
            .map(|(o, (_, p, _))| *o = p.len() as u32)
            .count())
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
            return Err(());
        }
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
    let mut store = FStore::default();
    let mut now = 0u64;
    let mut ops = run.ops.iter().peekable();
    let mut life = 0u64;
    while ops.peek().is_some() {
        life += 1;
        let Ok(machine) = Machine::<CAP>::new(config, run.seed.wrapping_add(life)) else {
            return;
        };
        let mut driver = match Driver::new(
            machine,
            store,
            FTransport::default(),
            &mut buf,
            |_: &Output| {},
        ) {
            Ok(d) => d,
            // A buffer below one maximal event is refused up front.
            Err(_) => return,
        };
        if driver.start(Instant::from_millis(now)).is_err() {
            // A failed start is reported; the next life tries again.
            store = driver.into_parts().1;
            store.faults = Faults::default();
            ops.next();
            continue;
        }
        for op in ops.by_ref() {
            let t = Instant::from_millis(now);
            match *op {
                Op::Track { len, byte } => {
                    let _ = driver.track(t, &vec![byte; usize::from(len)]);
                }
                Op::Poll(ms) => {
                    now += u64::from(ms);
                    let _ = driver.poll(Instant::from_millis(now));
                }
                Op::Sync => {
                    let _ = driver.sync(t);
                }
                Op::Flush => {
                    let _ = driver.handle(t, Input::Flush);
                }
                Op::Network(up) => {
                    let _ = driver.handle(t, Input::Network { up });
                }
                Op::Answer {
                    status,
                    retry_after,
                    failed,
                } => {
                    let tr = driver.transport_mut();
                    if let Some(b) = tr.in_flight.take() {
                        tr.answer = Some(if failed {
                            Outcome::Failed { batch: b.id }
                        } else {
                            Outcome::Response {
                                batch: b.id,
                                status,
                                retry_after: retry_after
                                    .map(|s| std::time::Duration::from_millis(u64::from(s))),
                            }
                        });
                    }
                    let _ = driver.poll(t);
                }
                Op::Faults(f) => driver.store_mut().faults = f,
                Op::RefuseSends(r) => driver.transport_mut().refuse = r,
                Op::Resume => {
                    let _ = driver.handle(t, Input::Resume);
                }
                Op::SetMode(m) => {
                    let mode = match m % 4 {
                        0 => FlushMode::Immediate,
                        1 => FlushMode::Manual,
                        2 => FlushMode::AppClose,
                        _ => {
                            let period = std::time::Duration::from_millis(1 + u64::from(m) * 100);
                            let _ = driver.handle(t, Input::SetFlushPeriod(period));
                            FlushMode::Period
                        }
                    };
                    let _ = driver.handle(t, Input::SetFlushMode(mode));
                }
                Op::Crash => break,
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
        store = driver.into_parts().1;
        store.recs.retain(|(_, _, synced)| *synced);
        store.faults = Faults::default();
    }
});
