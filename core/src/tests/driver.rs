//! The driver under store and transport failures.

use std::cell::Cell;
use std::vec::Vec;

use crate::{
    Batch, Config, Driver, DriverError, FlushMode, Input, Instant, Machine, Outcome, Output,
    Payloads, ReadError, Seq, Store, StoreSummary, Transport,
};

/// An in-memory store whose operations can be told to fail.
#[derive(Default)]
struct TestStore {
    records: Vec<(Seq, Vec<u8>)>,
    floor: Seq,
    fail_append: bool,
    fail_delete: bool,
    fail_sync: bool,
    short_read: Cell<bool>,
}

impl Store for TestStore {
    type Error = &'static str;
    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        if self.fail_append {
            return Err("append");
        }
        self.records.retain(|(s, _)| *s != seq);
        self.records.push((seq, payload.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> Result<(), Self::Error> {
        if self.fail_sync {
            Err("sync")
        } else {
            Ok(())
        }
    }
    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<Self::Error>> {
        let mut n = 0;
        for (_, p) in self
            .records
            .iter()
            .filter(|(s, _)| (first..=last).contains(s))
        {
            buf[n..n + p.len()].copy_from_slice(p);
            n += p.len();
        }
        if self.short_read.replace(false) {
            n /= 2;
        }
        Ok(n)
    }
    fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error> {
        if self.fail_delete {
            return Err("delete");
        }
        self.floor = self.floor.max(through + 1);
        self.records.retain(|(s, _)| *s > through);
        Ok(())
    }
    fn summary(&mut self) -> Result<StoreSummary, Self::Error> {
        let bytes = self.records.iter().map(|(_, p)| p.len() as u64).sum();
        Ok(match (self.records.first(), self.records.last()) {
            (Some(f), Some(l)) => StoreSummary {
                count: self.records.len() as u64,
                bytes,
                first: f.0,
                last: l.0,
            },
            _ => StoreSummary::EMPTY,
        })
    }
    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Self::Error> {
        let sizes = self.records.iter().filter(|(s, _)| *s >= from);
        Ok(out
            .iter_mut()
            .zip(sizes)
            .map(|(o, (_, p))| *o = p.len() as u32)
            .count())
    }
    fn seq_floor(&mut self) -> Result<Seq, Self::Error> {
        Ok(self.floor)
    }
}

/// Answers 200 to everything and keeps what it received.
#[derive(Default)]
struct Server {
    answer: Option<Outcome>,
    received: Vec<Vec<u8>>,
}

impl Transport for Server {
    type Error = ();
    fn send(&mut self, _: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
        self.received.extend(payloads.map(|(_, p)| p.to_vec()));
        self.answer = Some(Outcome::Response {
            batch: batch.id,
            status: 200,
            retry_after: None,
        });
        Ok(())
    }
    fn poll_outcome(&mut self, _: Instant) -> Option<Outcome> {
        self.answer.take()
    }
}

type D<'b> = Driver<'b, TestStore, Server, fn(&Output), 16>;

fn driver(buf: &mut [u8], mode: FlushMode) -> D<'_> {
    let config = Config::builder()
        .max_queue_events(16)
        .max_event_bytes(64)
        .max_batch_bytes(1000)
        .flush_mode(mode)
        .build()
        .unwrap();
    let machine = Machine::new(config, 3).unwrap();
    let mut d: D<'_> = D::new(
        machine,
        TestStore::default(),
        Server::default(),
        buf,
        |_| {},
    )
    .unwrap();
    d.start(Instant::ZERO).unwrap();
    d
}

fn run_idle(d: &mut D<'_>) {
    let mut now = Instant::ZERO;
    for _ in 0..100 {
        let _ = d.poll(now);
        match d.poll_timeout() {
            Some(t) => now = t,
            None if d.transport().answer.is_none() => return,
            None => {}
        }
    }
}

#[test]
fn track_fails_only_when_its_own_event_was_not_stored() {
    let mut buf = [0u8; 1000];
    let mut d = driver(&mut buf, FlushMode::Manual);
    d.store_mut().fail_append = true;
    assert_eq!(
        d.track(Instant::ZERO, b"a"),
        Err(DriverError::Store("append"))
    );
    assert_eq!(d.machine().stats().dropped_not_stored, 1);
    d.store_mut().fail_append = false;

    // An unrelated failure (the delete after an older batch) does not fail the track.
    assert_eq!(
        d.track(Instant::ZERO, b"b"),
        Ok(0),
        "the unstored number is reused"
    );
    d.store_mut().fail_delete = true;
    d.handle(Instant::ZERO, Input::SetFlushMode(FlushMode::Immediate))
        .unwrap();
    d.poll(Instant::ZERO).unwrap_err();
    assert_eq!(d.track(Instant::ZERO, b"c"), Ok(1));
    d.poll(Instant::ZERO).ok();
    assert!(d.machine().stats().delivered >= 1);
}

#[test]
fn a_failed_sync_drops_what_it_covered_and_the_number_is_reused() {
    let mut buf = [0u8; 1000];
    let mut d = driver(&mut buf, FlushMode::Immediate);
    d.store_mut().fail_sync = true;
    // The send syncs first; the sync fails, so the event is not stored.
    assert_eq!(
        d.track(Instant::ZERO, b"first"),
        Err(DriverError::Store("sync"))
    );
    assert_eq!(d.machine().stats().dropped_not_stored, 1);
    d.store_mut().fail_sync = false;
    assert_eq!(d.track(Instant::ZERO, b"second"), Ok(0));
    run_idle(&mut d);
    assert_eq!(d.transport().received, [b"second".to_vec()]);
    assert!(d.store().records.is_empty());
}

#[test]
fn a_batch_too_large_for_the_buffer_is_split_not_jammed() {
    let mut buf = [0u8; 130];
    let mut d = driver(&mut buf, FlushMode::Manual);
    for i in 0..4u8 {
        d.track(Instant::ZERO, &[i; 40]).unwrap();
    }
    let flushed = d.handle(Instant::ZERO, Input::Flush);
    assert!(matches!(
        flushed,
        Err(DriverError::BufferTooSmall {
            needed: 160,
            available: 130
        })
    ));
    run_idle(&mut d);
    let s = d.machine().stats();
    assert_eq!((s.delivered, s.rejected, s.pending_events), (4, 0, 0));
    assert_eq!(d.transport().received.len(), 4);
}

#[test]
fn a_short_read_is_an_error_and_is_retried_whole() {
    let mut buf = [0u8; 1000];
    let mut d = driver(&mut buf, FlushMode::Manual);
    d.track(Instant::ZERO, b"hello").unwrap();
    d.track(Instant::ZERO, b"world").unwrap();
    d.store().short_read.set(true);
    let r = d.handle(Instant::ZERO, Input::Flush);
    assert_eq!(
        r,
        Err(DriverError::ShortRead {
            expected: 10,
            got: 5
        })
    );
    assert!(
        d.transport().received.is_empty(),
        "nothing cut short was sent"
    );
    run_idle(&mut d);
    assert_eq!(
        d.transport().received,
        [b"hello".to_vec(), b"world".to_vec()]
    );
}

#[test]
fn handle_refuses_a_track_without_payload() {
    let mut buf = [0u8; 200];
    let mut d = driver(&mut buf, FlushMode::Manual);
    assert_eq!(
        d.handle(Instant::ZERO, Input::Track { size: 3 }),
        Err(DriverError::PayloadRequired)
    );
    assert_eq!(d.machine().stats().tracked, 0);
}

#[test]
fn restart_continues_numbering_after_the_store_emptied() {
    let mut buf = [0u8; 1000];
    let mut d = driver(&mut buf, FlushMode::Immediate);
    for _ in 0..3 {
        d.track(Instant::ZERO, b"x").unwrap();
        run_idle(&mut d);
    }
    let (_, store, _, _) = d.into_parts();
    assert!(store.records.is_empty());
    let config = Config::builder()
        .max_queue_events(16)
        .max_event_bytes(64)
        .build()
        .unwrap();
    let machine = Machine::new(config, 4).unwrap();
    let mut buf = [0u8; 1000];
    let mut d: D<'_> = D::new(machine, store, Server::default(), &mut buf, |_| {}).unwrap();
    d.start(Instant::ZERO).unwrap();
    assert_eq!(d.track(Instant::ZERO, b"y"), Ok(3));
}
