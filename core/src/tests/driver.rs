//! The driver under store and transport failures.

use std::cell::Cell;
use std::vec::Vec;

use crate::{
    Batch, BufferTooSmall, Config, Driver, DriverError, DropReason, FlushMode, HaltReason, Input,
    Instant, Machine, Observer, Outcome, Output, Payloads, ReadError, RejectReason, RetryCause,
    Seq, Store, StoreSummary, Transport,
};

/// An in-memory store whose operations can be told to fail.
#[derive(Default)]
struct TestStore {
    records: Vec<(Seq, Vec<u8>)>,
    floor: Seq,
    fail_append: bool,
    fail_delete: bool,
    fail_sync: bool,
    fail_read: bool,
    short_read: Cell<bool>,
    /// A record whose bytes no longer match its size.
    malformed: Option<Seq>,
    rejected: Vec<(Seq, u16, RejectReason)>,
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
        if self.fail_read {
            return Err(ReadError::Store("read"));
        }
        if let Some(seq) = self.malformed.filter(|s| (first..=last).contains(s)) {
            return Err(ReadError::Malformed { seq });
        }
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
    fn reject(&mut self, seq: Seq, status: u16, reason: RejectReason) -> Result<(), Self::Error> {
        self.rejected.push((seq, status, reason));
        Ok(())
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

/// Poll at each timeout until nothing is due and no answer waits.
fn run_idle<O: Observer>(d: &mut Driver<'_, TestStore, Server, O, 16>) {
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
        Ok(1),
        "the unstored number is spent, never reused"
    );
    d.store_mut().fail_delete = true;
    d.handle(Instant::ZERO, Input::SetFlushMode(FlushMode::Immediate))
        .unwrap();
    d.poll(Instant::ZERO).unwrap_err();
    assert_eq!(d.track(Instant::ZERO, b"c"), Ok(2));
    d.poll(Instant::ZERO).ok();
    assert!(d.machine().stats().delivered >= 1);
}

#[test]
fn a_failed_sync_drops_what_it_covered_and_the_number_is_spent() {
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
    // The store still shows record 0 (its sync failed); it is never sent,
    // and its number is never given to another event.
    assert_eq!(d.track(Instant::ZERO, b"second"), Ok(1));
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

/// Keeps every output the driver applied.
#[derive(Default)]
struct Log(Vec<Output>);

impl Observer for Log {
    fn observe(&mut self, output: &Output) {
        self.0.push(*output);
    }
}

type L<'b> = Driver<'b, TestStore, Server, Log, 16>;

fn small_config() -> crate::ConfigBuilder {
    Config::builder()
        .max_queue_events(16)
        .max_event_bytes(64)
        .max_batch_bytes(1000)
        .flush_mode(FlushMode::Manual)
}

fn logged(buf: &mut [u8], config: Config, store: TestStore) -> L<'_> {
    let machine = Machine::new(config, 3).unwrap();
    let mut d = L::new(machine, store, Server::default(), buf, Log::default()).unwrap();
    d.start(Instant::ZERO).unwrap();
    d
}

fn log_of(d: L<'_>) -> (TestStore, Vec<Output>) {
    let (_, store, _, log) = d.into_parts();
    (store, log.0)
}

/// Issue 8 item 5: tracking before `start` appended over the records a
/// restore had not read yet, and reported nothing. Seen failing before the
/// fix (the track returned Ok(0) and replaced stored record 0).
#[test]
fn nothing_runs_before_start() {
    let mut buf = [0u8; 1000];
    let store = TestStore {
        records: std::vec![(0, b"kept".to_vec())],
        ..TestStore::default()
    };
    let machine = Machine::new(small_config().build().unwrap(), 1).unwrap();
    let mut d = L::new(machine, store, Server::default(), &mut buf, Log::default()).unwrap();
    let now = Instant::ZERO;
    assert_eq!(d.track(now, b"new"), Err(DriverError::NotStarted));
    assert_eq!(d.handle(now, Input::Flush), Err(DriverError::NotStarted));
    assert_eq!(d.poll(now), Err(DriverError::NotStarted));
    assert_eq!(d.sync(now), Err(DriverError::NotStarted));
    assert_eq!(d.store().records, [(0, b"kept".to_vec())]);
    d.start(now).unwrap();
    assert_eq!(d.track(now, b"new"), Ok(1));
}

/// Issue 8 item 5: a buffer that cannot hold one maximal event was
/// accepted, and each event that did not fit was dead-lettered as if the
/// server had answered 413.
#[test]
fn new_refuses_a_buffer_below_one_maximal_event() {
    let config = small_config().build().unwrap();
    let needed = L::min_buffer_bytes(&config);
    assert_eq!(needed, 64 + 64 + 1);
    let mut buf = std::vec![0u8; needed - 1];
    let machine = Machine::new(config, 1).unwrap();
    let refused = L::new(
        machine,
        TestStore::default(),
        Server::default(),
        &mut buf,
        Log::default(),
    );
    assert_eq!(
        refused.err(),
        Some(BufferTooSmall {
            needed,
            available: needed - 1
        })
    );
}

/// Issue 8 item 5: a restored event larger than the buffer (the limits
/// shrank) was rejected as "413 from the server". It is rejected as too
/// large with no server status, and no attempt is spent.
#[test]
fn an_event_the_buffer_cannot_carry_is_no_server_413() {
    let mut buf = [0u8; 200];
    let store = TestStore {
        records: std::vec![(0, std::vec![b'x'; 300]), (1, b"ok".to_vec())],
        floor: 2,
        ..TestStore::default()
    };
    let mut d = logged(&mut buf, small_config().build().unwrap(), store);
    d.handle(Instant::ZERO, Input::Flush).unwrap_err();
    run_idle(&mut d);
    let s = d.machine().stats();
    assert_eq!((s.rejected, s.delivered, s.retries), (1, 1, 0));
    let (store, log) = log_of(d);
    assert_eq!(store.rejected, [(0, 0, RejectReason::TooLarge)]);
    assert!(!log
        .iter()
        .any(|o| matches!(o, Output::RetryScheduled { .. })));
}

/// Issue 8 item 5: a read error was fed to the machine as a transport
/// failure, so with `max_attempts(1)` one bad read dropped the batch as
/// max-attempts. Seen failing before the fix (dropped_max_attempts == 2).
#[test]
fn a_read_error_spends_no_attempt() {
    let mut buf = [0u8; 1000];
    let config = small_config().max_attempts(Some(1)).build().unwrap();
    let mut d = logged(&mut buf, config, TestStore::default());
    d.track(Instant::ZERO, b"a").unwrap();
    d.track(Instant::ZERO, b"b").unwrap();
    d.store_mut().fail_read = true;
    assert_eq!(
        d.handle(Instant::ZERO, Input::Flush),
        Err(DriverError::Store("read"))
    );
    let s = d.machine().stats();
    assert_eq!((s.dropped_max_attempts, s.pending_events), (0, 2));
    d.store_mut().fail_read = false;
    run_idle(&mut d);
    assert_eq!(d.machine().stats().delivered, 2);
    let (_, log) = log_of(d);
    assert!(log.contains(&Output::RetryScheduled {
        at: Instant::from_millis(1000),
        attempt: 0,
        cause: RetryCause::Local
    }));
}

/// Issue 8 item 5: a failed sync before a send was also fed as a transport
/// failure, so with `max_attempts(1)` the older, committed events of the
/// batch were dropped as max-attempts. Only the uncommitted event goes now.
#[test]
fn a_failed_commit_spends_no_attempt() {
    let mut buf = [0u8; 1000];
    let config = small_config()
        .max_attempts(Some(1))
        .max_commit_delay(core::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let mut d = logged(&mut buf, config, TestStore::default());
    let now = Instant::ZERO;
    d.track(now, b"old").unwrap();
    d.sync(now).unwrap();
    d.track(now, b"new").unwrap();
    d.store_mut().fail_sync = true;
    assert_eq!(d.handle(now, Input::Flush), Err(DriverError::Store("sync")));
    let s = d.machine().stats();
    assert_eq!(
        (s.dropped_not_stored, s.dropped_max_attempts, s.retries),
        (1, 0, 0)
    );
    d.store_mut().fail_sync = false;
    run_idle(&mut d);
    assert_eq!(d.transport().received, [b"old".to_vec()]);
}

/// Issue 8 item 5: a second deferred failure overwrote the first. Seen
/// failing before the fix (take_error returned the delete's error).
#[test]
fn only_the_first_deferred_error_is_kept() {
    let mut buf = [0u8; 1000];
    let config = small_config()
        .max_queue_events(1)
        .flush_mode(FlushMode::Immediate)
        .build()
        .unwrap();
    let mut d = logged(&mut buf, config, TestStore::default());
    let now = Instant::ZERO;
    d.store_mut().fail_read = true;
    d.track(now, b"a").unwrap();
    d.store_mut().fail_read = false;
    d.store_mut().fail_delete = true;
    // Overflow drops "a"; its delete fails.
    d.track(now, b"b").unwrap();
    assert_eq!(d.take_error(), Some(DriverError::Store("read")));
    assert_eq!(d.take_error(), None);
}

/// Issue 11 hook: a delete that fails after a 2xx is a storage failure.
/// Uploads halt (reported once, with its own reason) instead of sending
/// again what the server has; `Resume` tries the delete again.
#[test]
fn a_failed_delete_halts_uploads_once() {
    let mut buf = [0u8; 1000];
    let mut d = logged(
        &mut buf,
        small_config().build().unwrap(),
        TestStore::default(),
    );
    let now = Instant::ZERO;
    d.track(now, b"a").unwrap();
    d.track(now, b"b").unwrap();
    d.store_mut().fail_delete = true;
    d.handle(now, Input::Flush).unwrap();
    assert_eq!(d.poll(now), Err(DriverError::Store("delete")));
    assert_eq!(d.machine().stats().halt_reason, Some(HaltReason::Storage));
    d.track(now, b"c").unwrap();
    d.handle(now, Input::Flush).unwrap();
    run_idle(&mut d);
    assert_eq!(d.transport().received.len(), 2, "nothing sent while halted");
    d.store_mut().fail_delete = false;
    d.handle(now, Input::Resume).unwrap();
    assert_eq!(d.store().records.len(), 1, "the owed delete was retried");
    run_idle(&mut d);
    assert_eq!(d.transport().received.len(), 3);
    let (_, log) = log_of(d);
    let halts: Vec<_> = log
        .iter()
        .filter(|o| matches!(o, Output::Halted { .. }))
        .collect();
    assert_eq!(
        halts,
        [&Output::Halted {
            status: 0,
            reason: HaltReason::Storage
        }]
    );
}

/// Issue 11 hook: a record whose stored size and bytes disagree is
/// dead-lettered alone (reason Malformed, no server status, no attempt
/// spent, reported once); the events around it are delivered.
#[test]
fn a_malformed_record_is_dead_lettered_alone() {
    let mut buf = [0u8; 1000];
    let config = small_config().max_attempts(Some(1)).build().unwrap();
    let mut d = logged(&mut buf, config, TestStore::default());
    let now = Instant::ZERO;
    for p in [b"a", b"b", b"c", b"d"] {
        d.track(now, p).unwrap();
    }
    d.store_mut().malformed = Some(2);
    assert_eq!(
        d.handle(now, Input::Flush),
        Err(DriverError::Malformed { seq: 2 })
    );
    run_idle(&mut d);
    let s = d.machine().stats();
    assert_eq!(
        (s.delivered, s.rejected, s.retries, s.pending_events),
        (3, 1, 0, 0)
    );
    assert_eq!(
        d.transport().received,
        [b"a".to_vec(), b"b".to_vec(), b"d".to_vec()]
    );
    let (store, log) = log_of(d);
    assert_eq!(store.rejected, [(2, 0, RejectReason::Malformed)]);
    let rejections = log
        .iter()
        .filter(|o| matches!(o, Output::Rejected { .. }))
        .count();
    assert_eq!(rejections, 1);
    assert!(!log.iter().any(|o| matches!(
        o,
        Output::Dropped {
            reason: DropReason::MaxAttempts,
            ..
        }
    )));
}

#[test]
fn a_store_that_cannot_keep_the_flag_refuses_critical_events() {
    // `TestStore` keeps `KEEPS_CRITICAL` at its default (`false`), as the
    // NOR flash queue does: the event is refused, never stored unflagged.
    let mut buf = [0u8; 1000];
    let mut d = driver(&mut buf, FlushMode::Manual);
    assert_eq!(
        d.track_critical(Instant::ZERO, b"alarm"),
        Err(DriverError::CriticalUnsupported)
    );
    assert_eq!(d.machine().stats().tracked, 0);
    assert_eq!(
        d.handle(Instant::ZERO, Input::TrackCritical { size: 5 }),
        Err(DriverError::PayloadRequired)
    );
    assert_eq!(d.track(Instant::ZERO, b"plain"), Ok(0));
}
