//! Event expiry on the flash queue (feature `expiry`): the driver stamps
//! each event at track, the record carries the stamp, and `first_fresh`
//! reads it back, so events older than `max_event_age` are dropped as
//! `Expired` and never sent, across a power cut too; a wall clock that
//! jumps back expires nothing early; records without a stamp (written by
//! a build without the feature, or before the driver had a wall clock)
//! never expire at once.

#![cfg(feature = "expiry")]

mod support;

use core::time::Duration;

use outbox_core::{
    Batch, Config, Driver, FlushMode, Input, Instant, Machine, Outcome, Payloads, Store, Transport,
};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::{Error, FlashQueue};

type Flash = SimFlash<4, 4, 1024>;
const PAGES: usize = 8;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 1024);
const AGE: u64 = 60_000;
const T0: u64 = 1_700_000_000_000;

/// Answers 200 to everything; keeps the payloads it received.
#[derive(Default)]
struct Ok200 {
    answer: Option<Outcome>,
    received: Vec<Vec<u8>>,
}

impl Transport for Ok200 {
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

type D<'f, 'b> = Driver<'b, FlashQueue<&'f mut Flash>, Ok200, (), 16>;

/// Boot: open the queue on `flash` and start a machine with
/// `max_event_age` on it.
fn boot<'f, 'b>(flash: &'f mut Flash, buf: &'b mut [u8]) -> D<'f, 'b> {
    flash.power_on();
    let q = FlashQueue::open(flash, REGION).unwrap();
    let config = Config::builder()
        .flush_mode(FlushMode::Manual)
        .max_event_bytes(64)
        .max_queue_bytes(q.max_queue_bytes(64, 32))
        .max_queue_events(32)
        .max_event_age(Some(Duration::from_millis(AGE)))
        .build()
        .unwrap();
    let machine = Machine::<16>::new(config, 1).unwrap();
    let mut d = Driver::new(machine, q, Ok200::default(), buf, ()).unwrap();
    d.start(Instant::ZERO).unwrap();
    d
}

fn wall(d: &mut D<'_, '_>, now_ms: u64) {
    d.handle(Instant::ZERO, Input::WallClock { now_ms })
        .unwrap();
}

/// At wall clock `now_ms`: flush, and answer until idle.
fn flush(d: &mut D<'_, '_>, now_ms: u64) {
    wall(d, now_ms);
    d.handle(Instant::ZERO, Input::Flush).unwrap();
    for _ in 0..20 {
        d.poll(Instant::ZERO).unwrap();
    }
    assert!(d.machine().stats().balanced());
}

fn received<'d>(d: &'d D<'_, '_>) -> Vec<&'d [u8]> {
    d.transport().received.iter().map(Vec::as_slice).collect()
}

#[test]
fn stale_events_on_flash_expire_and_fresh_ones_are_sent() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 4096];
    let mut d = boot(&mut flash, &mut buf);
    wall(&mut d, T0);
    d.track(Instant::ZERO, b"old-a").unwrap();
    d.track(Instant::ZERO, b"old-b").unwrap();
    wall(&mut d, T0 + AGE + 1);
    d.track(Instant::ZERO, b"fresh").unwrap();
    flush(&mut d, T0 + AGE + 1);
    assert_eq!(d.machine().stats().dropped_expired, 2);
    assert_eq!(received(&d), [b"fresh"]);
    // All three gone from flash: the expired ones deleted, not kept.
    assert_eq!(d.store_mut().summary().unwrap().count, 0);
}

#[test]
fn stamps_survive_a_power_cut() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 4096];
    let mut d = boot(&mut flash, &mut buf);
    wall(&mut d, T0);
    d.track(Instant::ZERO, b"a").unwrap();
    d.track(Instant::ZERO, b"b").unwrap();
    // Power fails at the next flash operation: nothing more is written.
    d.store_mut().flash_mut().cut_at_op(1, 0);
    drop(d);

    // A new life a day later by the wall clock: the stamps came back from
    // flash, so both events are a day old.
    let mut d = boot(&mut flash, &mut buf);
    wall(&mut d, T0 + 86_400_000);
    d.track(Instant::ZERO, b"c").unwrap();
    flush(&mut d, T0 + 86_400_000);
    assert_eq!(d.machine().stats().dropped_expired, 2);
    assert_eq!(received(&d), [b"c"]);
}

#[test]
fn a_wall_clock_that_jumps_back_expires_nothing_early() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 4096];
    let mut d = boot(&mut flash, &mut buf);
    wall(&mut d, T0);
    d.track(Instant::ZERO, b"a").unwrap();
    // The clock jumps back 15 minutes; the event tracked meanwhile is
    // stamped with the largest clock seen (T0), and that stamp is what the
    // flash keeps.
    wall(&mut d, T0 - 900_000);
    d.track(Instant::ZERO, b"b").unwrap();
    drop(d);

    // Rebooted with the clock still behind: nothing is old.
    let mut d = boot(&mut flash, &mut buf);
    flush(&mut d, T0 - 870_000);
    assert_eq!(d.machine().stats().dropped_expired, 0);
    assert_eq!(received(&d), [b"a", b"b"]);

    // Same again, but put right to just under max_event_age after T0: b
    // is as young as a (its stamp is T0, not the jumped clock).
    let mut flash = Flash::new(PAGES);
    let mut d = boot(&mut flash, &mut buf);
    wall(&mut d, T0);
    d.track(Instant::ZERO, b"a").unwrap();
    wall(&mut d, T0 - 900_000);
    d.track(Instant::ZERO, b"b").unwrap();
    drop(d);
    let mut d = boot(&mut flash, &mut buf);
    flush(&mut d, T0 + AGE - 1_000);
    assert_eq!(d.machine().stats().dropped_expired, 0);
    assert_eq!(received(&d), [b"a", b"b"]);
}

#[test]
fn unstamped_records_never_expire_at_once() {
    let mut flash = Flash::new(PAGES);
    // Written as a build without the feature does (or the driver before it
    // had a wall clock): no stamp. (An unstamped record counts as fresh, and
    // the machine expires only the stale run at the head of the queue, so
    // a stale stamped event in the same batch after it would be sent.)
    {
        let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
        q.append(0, b"unstamped").unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let mut d = boot(&mut flash, &mut buf);
    // Ten ages after the driver's clock first reads: sent, not expired.
    flush(&mut d, T0 + 10 * AGE);
    assert_eq!(received(&d), [b"unstamped"]);
    assert_eq!(d.machine().stats().dropped_expired, 0);
    // An event stamped now still expires once it is too old.
    d.track(Instant::ZERO, b"stamped").unwrap();
    flush(&mut d, T0 + 12 * AGE);
    assert_eq!(received(&d), [b"unstamped"]);
    assert_eq!(d.machine().stats().dropped_expired, 1);
    assert_eq!(d.store_mut().summary().unwrap().count, 0);
}

#[test]
fn first_fresh_reads_the_stamps_and_the_payload_comes_back_without_one() {
    let mut flash = Flash::new(PAGES);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    q.append_stamped(3, b"one", 100).unwrap();
    q.append_stamped(4, b"two", 200).unwrap();
    q.append(5, b"three").unwrap();
    q.append_stamped(6, b"four", 50).unwrap();
    assert_eq!(q.first_fresh(0), Ok(3));
    assert_eq!(q.first_fresh(100), Ok(3));
    assert_eq!(q.first_fresh(101), Ok(4));
    // The unstamped one stops expiry.
    assert_eq!(q.first_fresh(201), Ok(5));
    q.delete_through(5).unwrap();
    // All older: one past the newest.
    assert_eq!(q.first_fresh(51), Ok(7));
    assert_eq!(Store::first_fresh(&mut q, 51), Ok(Some(7)));
    let mut buf = [0u8; 16];
    assert_eq!(q.read_range(6, 6, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"four");
    assert_eq!(q.read_sizes(6, &mut [0; 2]), Ok(1));
    assert_eq!(q.summary().unwrap().bytes, 4);
    q.delete_through(6).unwrap();
    assert_eq!(q.first_fresh(0), Ok(7));
}

#[test]
fn a_stamped_payload_of_max_payload_fits_and_one_more_byte_does_not() {
    let mut flash = Flash::new(PAGES);
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let max = q.max_payload();
    let big = vec![0xA5; max + 1];
    assert!(matches!(
        q.append_stamped(0, &big, 1),
        Err(Error::TooLarge { .. })
    ));
    // The same limit unstamped.
    assert!(matches!(q.append(0, &big), Err(Error::TooLarge { .. })));
    q.append_stamped(0, &big[..max], 7).unwrap();
    let _ = q.into_inner();
    let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
    let mut buf = vec![0u8; max];
    assert_eq!(q.read_range(0, 0, &mut buf), Ok(max));
    assert_eq!(buf, big[..max]);
    assert_eq!(q.first_fresh(7), Ok(0));
    assert_eq!(q.first_fresh(8), Ok(1));
}

/// A sealed queue keeps the stamp in clear before the ciphertext: the tag
/// covers the payload, the CRC the whole record.
#[cfg(feature = "encryption")]
#[test]
fn a_sealed_queue_keeps_stamps_across_a_reopen() {
    const KEY: [u8; 32] = [0x5E; 32];
    let mut flash = Flash::new(PAGES);
    let mut q = FlashQueue::open_sealed(&mut flash, REGION, &KEY, [1; 12]).unwrap();
    q.append_stamped(0, b"secret-old", 1_000).unwrap();
    q.append(1, b"secret-plain").unwrap();
    q.append_stamped(2, b"secret-new", 5_000).unwrap();
    let _ = q.into_inner();
    assert!(!flash.image().windows(6).any(|w| w == b"secret"));
    let mut q = FlashQueue::open_sealed(&mut flash, REGION, &KEY, [2; 12]).unwrap();
    assert_eq!(q.summary().unwrap().count, 3);
    assert_eq!(q.first_fresh(2_000), Ok(1));
    q.delete_through(1).unwrap();
    assert_eq!(q.first_fresh(5_000), Ok(2));
    assert_eq!(q.first_fresh(5_001), Ok(3));
    let mut buf = [0u8; 64];
    assert_eq!(q.read_range(2, 2, &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"secret-new");
}

/// The async face (feature `async`) is the same code: the same answers and
/// the same bytes on flash as the blocking queue.
#[cfg(feature = "async")]
#[test]
fn the_async_queue_stamps_and_answers_as_the_blocking_one() {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use outbox_embedded::flash::asynchronous::FlashQueue as AsyncQueue;
    use support::async_sim::{AsyncSim, Flash as Small};

    fn block_on<T>(fut: impl core::future::Future<Output = T>) -> T {
        let mut fut = pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return v;
            }
        }
    }
    const SMALL: core::ops::Range<u32> = 0..6 * 512;
    let mut flash = Small::new(6);
    let mut q = FlashQueue::open(&mut flash, SMALL).unwrap();
    let mut aq = block_on(AsyncQueue::open(AsyncSim::new(Small::new(6)), SMALL)).unwrap();
    for seq in 0..40u64 {
        let p = format!("event-{seq}");
        let stamp = 1_000 + seq * 10;
        if seq % 5 == 4 {
            q.append(seq, p.as_bytes()).unwrap();
            block_on(aq.append(seq, p.as_bytes())).unwrap();
        } else {
            q.append_stamped(seq, p.as_bytes(), stamp).unwrap();
            block_on(aq.append_stamped(seq, p.as_bytes(), stamp)).unwrap();
        }
        if seq % 8 == 7 {
            q.delete_through(seq - 3).unwrap();
            block_on(aq.delete_through(seq - 3)).unwrap();
        }
        for after in [0, 1_000 + seq * 5, 1_000 + seq * 10, u64::MAX] {
            assert_eq!(block_on(aq.first_fresh(after)), q.first_fresh(after));
        }
    }
    let aq = aq.into_inner();
    assert_eq!(aq.flash.image(), q.into_inner().image());
}
