//! Event expiry (`max_event_age`) through the driver: stamps at track,
//! the store's answer to `FindFresh`, the wall clock as an input.

use core::time::Duration;
use std::vec;
use std::vec::Vec;

use crate::{
    Batch, Config, Driver, FlushMode, Input, Instant, Machine, Outcome, Payloads, ReadError, Seq,
    Store, StoreSummary, Transport, CRITICAL,
};

/// A store that keeps each record's stamp and critical flag.
#[derive(Default)]
struct Stamped {
    /// (seq, payload, critical, stamp)
    records: Vec<(Seq, Vec<u8>, bool, Option<u64>)>,
    /// Keep stamps (a store that does not answers `None`).
    keeps: bool,
}

impl Store for Stamped {
    type Error = ();
    const KEEPS_CRITICAL: bool = true;
    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), ()> {
        self.records.push((seq, payload.to_vec(), false, None));
        Ok(())
    }
    fn append_critical(&mut self, seq: Seq, payload: &[u8]) -> Result<(), ()> {
        self.records.push((seq, payload.to_vec(), true, None));
        Ok(())
    }
    fn append_stamped(&mut self, seq: Seq, p: &[u8], critical: bool, stamp: u64) -> Result<(), ()> {
        let stamp = self.keeps.then_some(stamp);
        self.records.push((seq, p.to_vec(), critical, stamp));
        Ok(())
    }
    fn first_fresh(&mut self, after_ms: u64) -> Result<Option<Seq>, ()> {
        if !self.keeps {
            return Ok(None);
        }
        Ok(Some(
            self.records
                .iter()
                .find(|r| r.3.is_none_or(|t| t >= after_ms))
                .map_or(Seq::MAX, |r| r.0),
        ))
    }
    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<()>> {
        let mut n = 0;
        for r in self
            .records
            .iter()
            .filter(|r| (first..=last).contains(&r.0))
        {
            buf[n..n + r.1.len()].copy_from_slice(&r.1);
            n += r.1.len();
        }
        Ok(n)
    }
    fn delete_through(&mut self, through: Seq) -> Result<(), ()> {
        self.records.retain(|r| r.0 > through);
        Ok(())
    }
    fn summary(&mut self) -> Result<StoreSummary, ()> {
        Ok(match (self.records.first(), self.records.last()) {
            (Some(f), Some(l)) => StoreSummary {
                count: self.records.len() as u64,
                bytes: self.records.iter().map(|r| r.1.len() as u64).sum(),
                first: f.0,
                last: l.0,
            },
            _ => StoreSummary::EMPTY,
        })
    }
    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, ()> {
        let sizes = self
            .records
            .iter()
            .filter(|r| r.0 >= from)
            .map(|r| r.1.len() as u32 | if r.2 { CRITICAL } else { 0 });
        Ok(out.iter_mut().zip(sizes).map(|(o, s)| *o = s).count())
    }
    fn newest_critical(&mut self) -> Result<Option<Seq>, ()> {
        Ok(self.records.iter().rev().find(|r| r.2).map(|r| r.0))
    }
}

/// Answers 200 to everything; keeps what it received.
#[derive(Default)]
struct Ok200 {
    answer: Option<Outcome>,
    received: Vec<Seq>,
}

impl Transport for Ok200 {
    type Error = ();
    fn send(&mut self, _: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
        self.received.extend(payloads.map(|(s, _)| s));
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

const AGE: u64 = 60_000;
const T0: u64 = 1_700_000_000_000;

fn driver<'b>(store: Stamped, buf: &'b mut [u8]) -> Driver<'b, Stamped, Ok200, (), 16> {
    let config = Config::builder()
        .flush_mode(FlushMode::Manual)
        .max_event_age(Some(Duration::from_millis(AGE)))
        .build()
        .unwrap();
    let machine = Machine::<16>::new(config, 1).unwrap();
    let mut d = Driver::new(machine, store, Ok200::default(), buf, ()).unwrap();
    d.start(Instant::ZERO).unwrap();
    d
}

/// At wall clock `wall`: flush, and answer until idle.
fn flush(d: &mut Driver<'_, Stamped, Ok200, (), 16>, wall: u64) {
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: wall }).unwrap();
    d.handle(now, Input::Flush).unwrap();
    for _ in 0..20 {
        d.poll(now).unwrap();
    }
    assert!(d.machine().stats().balanced());
}

#[test]
fn stale_events_expire_when_their_batch_is_formed_fresh_ones_go() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(
        Stamped {
            keeps: true,
            ..Stamped::default()
        },
        &mut buf,
    );
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: T0 }).unwrap();
    d.track(now, b"a").unwrap();
    d.track(now, b"b").unwrap();
    d.handle(
        now,
        Input::WallClock {
            now_ms: T0 + AGE + 1,
        },
    )
    .unwrap();
    d.track(now, b"c").unwrap();
    // Exactly max_event_age old is not expired: only older.
    flush(&mut d, T0 + AGE + 1);
    assert_eq!(d.machine().stats().dropped_expired, 2);
    assert_eq!(d.transport().received, [2]);
    assert!(d.machine().stats().balanced());
}

#[test]
fn an_event_exactly_max_event_age_old_is_sent() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(
        Stamped {
            keeps: true,
            ..Stamped::default()
        },
        &mut buf,
    );
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: T0 }).unwrap();
    d.track(now, b"a").unwrap();
    flush(&mut d, T0 + AGE);
    assert_eq!(d.machine().stats().dropped_expired, 0);
    assert_eq!(d.transport().received, [0]);
}

#[test]
fn critical_events_never_expire() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(
        Stamped {
            keeps: true,
            ..Stamped::default()
        },
        &mut buf,
    );
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: T0 }).unwrap();
    d.track_critical(now, b"crit").unwrap();
    d.track(now, b"plain").unwrap();
    d.track_critical(now, b"crit2").unwrap();
    flush(&mut d, T0 + 10 * AGE);
    // The critical ones went (each alone: a stale plain event between
    // them expires at the head), the plain one expired.
    assert_eq!(d.transport().received, [0, 2]);
    assert_eq!(d.machine().stats().dropped_expired, 1);
    assert!(d.store().records.is_empty());
}

#[test]
fn a_wall_clock_jump_back_expires_nothing_early() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(
        Stamped {
            keeps: true,
            ..Stamped::default()
        },
        &mut buf,
    );
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: T0 }).unwrap();
    d.track(now, b"a").unwrap();
    // The clock jumps back 15 minutes; an event tracked meanwhile is
    // stamped with the largest clock seen, not the jumped one.
    d.handle(
        now,
        Input::WallClock {
            now_ms: T0 - 900_000,
        },
    )
    .unwrap();
    d.track(now, b"b").unwrap();
    assert_eq!(d.store().records[1].3, Some(T0));
    // The clock is put right: 30 s later by any measure. Nothing is old.
    flush(&mut d, T0 + 30_000);
    assert_eq!(d.machine().stats().dropped_expired, 0);
    assert_eq!(d.transport().received, [0, 1]);
}

#[test]
fn age_survives_a_restart() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(
        Stamped {
            keeps: true,
            ..Stamped::default()
        },
        &mut buf,
    );
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: T0 }).unwrap();
    d.track(now, b"a").unwrap();
    d.track(now, b"b").unwrap();
    let (_, store, _, _) = d.into_parts();
    // A new machine over the same store, a day later by the wall clock.
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(store, &mut buf);
    d.handle(
        now,
        Input::WallClock {
            now_ms: T0 + 86_400_000,
        },
    )
    .unwrap();
    d.track(now, b"c").unwrap();
    flush(&mut d, T0 + 86_400_000);
    assert_eq!(d.machine().stats().dropped_expired, 2);
    assert_eq!(d.transport().received, [2]);
}

#[test]
fn a_store_without_stamps_expires_nothing() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut d = driver(Stamped::default(), &mut buf);
    let now = Instant::ZERO;
    d.handle(now, Input::WallClock { now_ms: T0 }).unwrap();
    d.track(now, b"a").unwrap();
    flush(&mut d, T0 + 10 * AGE);
    assert_eq!(d.machine().stats().dropped_expired, 0);
    assert_eq!(d.transport().received, [0]);
}
