//! Receipts never lie: a receipt whose event was not stored (its commit
//! failed: a `NotStored` drop) never matches a `Delivered`, because the
//! machine never gives its sequence number to another event.
//!
//! The std Client has no hook to fail a commit on demand (its SQLite store
//! fails appends, not commits, when the disk fills, and a failed append
//! never sets a receipt's number), so this drives the same `Driver` loop
//! the Client's worker runs, with a store double whose sync fails once, and
//! a Client with the Client's commit delay: a non-durable `track` returns
//! (and sets the receipt's number) before the commit. The notifications are
//! the Client's `Notification`s, matched with `Notification::covers`, which
//! is all `Receipt::concerns` does.

use std::time::Duration;

use outbox_core::{
    Batch, Config, Driver, FlushMode, Input, Instant, Machine, Outcome, Output, Payloads,
    ReadError, Seq, Store, StoreSummary, Transport, HOLE,
};
use outbox_std::Notification;

/// A store in memory whose next `sync` can be made to fail; a record whose
/// sync failed stays readable, as a real store's may.
#[derive(Default)]
struct FlakyStore {
    records: Vec<(Seq, Vec<u8>)>,
    fail_next_sync: bool,
}

impl Store for FlakyStore {
    type Error = &'static str;
    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), Self::Error> {
        // (An append of a number already held replaces it.)
        self.records.retain(|(s, _)| *s != seq);
        self.records.push((seq, payload.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> Result<(), Self::Error> {
        if std::mem::take(&mut self.fail_next_sync) {
            return Err("sync failed");
        }
        Ok(())
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
        Ok(n)
    }
    fn delete_through(&mut self, through: Seq) -> Result<(), Self::Error> {
        self.records.retain(|(s, _)| *s > through);
        Ok(())
    }
    fn summary(&mut self) -> Result<StoreSummary, Self::Error> {
        Ok(StoreSummary::EMPTY)
    }
    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, Self::Error> {
        let last = self.records.iter().map(|r| r.0).max();
        let mut n = 0;
        for (seq, o) in (from..).zip(out.iter_mut()) {
            if last.is_none_or(|l| seq > l) {
                break;
            }
            let size = self.records.iter().find(|r| r.0 == seq);
            *o = size.map_or(HOLE, |r| r.1.len() as u32);
            n += 1;
        }
        Ok(n)
    }
}

/// A collector that answers 200 at once and keeps what it received.
#[derive(Default)]
struct Collector {
    answer: Option<Outcome>,
    received: Vec<Vec<u8>>,
}

impl Transport for Collector {
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

/// What the Client's notifier makes of an output.
fn notification(o: &Output) -> Option<Notification> {
    Some(match *o {
        Output::Delivered { first, last } => Notification::Delivered { first, last },
        Output::Dropped {
            first,
            last,
            reason,
        } => Notification::Dropped {
            first,
            last,
            reason,
        },
        Output::Rejected {
            seq,
            status,
            reason,
        } => Notification::Rejected {
            seq,
            status,
            reason,
        },
        _ => return None,
    })
}

#[test]
fn a_receipt_of_an_event_that_was_not_stored_never_reports_delivered() {
    let config = Config::builder()
        .flush_mode(FlushMode::Manual)
        // The Client's default: a track returns before its commit.
        .max_commit_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let machine = Machine::<64>::new(config, 1).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut notes = Vec::new();
    let mut driver = Driver::new(
        machine,
        FlakyStore::default(),
        Collector::default(),
        &mut buf,
        |o: &Output| notes.extend(notification(o)),
    )
    .unwrap();
    let now = Instant::ZERO;
    driver.start(now).unwrap();

    // "lost" is tracked: the receipt gets its number, the commit is owed.
    let lost = driver.track(now, b"{\"id\":\"lost\"}").unwrap();
    // The group commit fails: "lost" was not stored.
    driver.store_mut().fail_next_sync = true;
    assert!(driver.sync(now).is_err());
    // The disk is healthy again; the app tracks another event, which is
    // delivered.
    let kept = driver.track(now, b"{\"id\":\"kept\"}").unwrap();
    driver.sync(now).unwrap();
    driver.handle(now, Input::Flush).unwrap();
    let mut t = now;
    for _ in 0..100 {
        driver.poll(t).unwrap();
        match driver.poll_timeout() {
            Some(next) => t = next,
            None => break,
        }
    }
    let (_, store, collector, _) = driver.into_parts();
    assert_eq!(collector.received, vec![b"{\"id\":\"kept\"}".to_vec()]);
    assert!(store.records.is_empty(), "the lost record was deleted too");
    drop(buf);

    let about_lost: Vec<&Notification> = notes.iter().filter(|n| n.covers(lost)).collect();
    assert!(
        about_lost
            .iter()
            .all(|n| !matches!(n, Notification::Delivered { .. })),
        "the receipt of an event that was never stored reports Delivered: {about_lost:?}"
    );
    assert!(
        about_lost.iter().any(|n| matches!(
            n,
            Notification::Dropped {
                reason: outbox_core::DropReason::NotStored,
                ..
            }
        )),
        "{notes:?}"
    );
    assert!(notes
        .iter()
        .any(|n| matches!(n, Notification::Delivered { .. }) && n.covers(kept)));
    assert_ne!(kept, lost, "the lost event's number went to another event");
}
