//! Loss reports from a device (feature `loss-reports`): the core's driver
//! over the flash queue, a `LossCounter` observing it and the blocking
//! loop's pattern (write the report, track it, `report_stored`) tell the
//! server what the device lost: a damaged record, overflow; the report is
//! an event on the flash, so a power cut after its track does not lose it;
//! and it has the std Client's shape.
#![cfg(feature = "loss-reports")]

mod support;

use outbox_core::{
    Batch, Config, Driver, FlushMode, Input, Instant, Machine, Outcome, Overflow, Payloads,
    Transport,
};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;
use outbox_embedded::losses::{Counted, LossCounter, LOSS_EVENT};
use serde_json::Value;

type Flash = SimFlash<4, 4, 1024>;
const PAGES: usize = 8;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 1024);
const DEVICE: &str = "dev-7";

/// Answers 200 to every batch and keeps each batch's events.
#[derive(Default)]
struct Server {
    answer: Option<Outcome>,
    batches: Vec<Vec<(u64, Vec<u8>)>>,
}

impl Transport for Server {
    type Error = ();
    fn send(&mut self, _: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
        self.batches
            .push(payloads.map(|(s, p)| (s, p.to_vec())).collect());
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

impl Server {
    /// Every event received, in order.
    fn events(&self) -> Vec<(u64, Vec<u8>)> {
        self.batches.iter().flatten().cloned().collect()
    }
    /// The loss reports received, parsed, with their seqs.
    fn reports(&self) -> Vec<(u64, Value)> {
        self.events()
            .into_iter()
            .filter_map(|(s, p)| {
                let v: Value = serde_json::from_slice(&p).ok()?;
                (v["event"] == LOSS_EVENT).then_some((s, v))
            })
            .collect()
    }
    /// The app's events received (by their marker).
    fn app_events(&self) -> Vec<u64> {
        self.events()
            .into_iter()
            .filter(|(_, p)| p.starts_with(b"{\"n\":"))
            .map(|(s, _)| s)
            .collect()
    }
}

fn payload(n: u64) -> Vec<u8> {
    format!("{{\"n\":{n},\"mark\":\"EVT-{n:04}\"}}").into_bytes()
}

fn config(max_events: u32) -> Config {
    Config::builder()
        .max_event_bytes(LossCounter::MAX_REPORT_BYTES as u32)
        .max_queue_events(max_events)
        .overflow(Overflow::DropOldest)
        .max_batch_bytes(8000)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap()
}

type Drv<'f, 'b, 'l> = Driver<'b, FlashQueue<&'f mut Flash>, Server, Counted<'l, ()>, 16>;

fn boot<'f, 'b, 'l>(
    flash: &'f mut Flash,
    buf: &'b mut [u8],
    losses: &'l LossCounter,
    server: Server,
    max_events: u32,
    now: u64,
) -> Drv<'f, 'b, 'l> {
    let q = FlashQueue::open(flash, REGION).unwrap();
    let machine = Machine::<16>::new(config(max_events), 5).unwrap();
    let observer = Counted { losses, inner: () };
    let mut d = Driver::new(machine, q, server, buf, observer).unwrap();
    losses.set_now(now);
    d.start(Instant::from_millis(now)).unwrap();
    d
}

/// The blocking loop's report step: write the report and track it.
fn report(d: &mut Drv<'_, '_, '_>, losses: &LossCounter, now: u64) -> Option<u64> {
    let mut buf = [0u8; LossCounter::MAX_REPORT_BYTES];
    let n = losses.write_report(&mut buf, DEVICE).unwrap()?;
    losses.set_now(now);
    let seq = d.track(Instant::from_millis(now), &buf[..n]).unwrap();
    losses.report_stored(seq);
    Some(seq)
}

/// Deliver everything (flush mode immediate), with the report step each
/// round, until the queue is empty and nothing is left to report.
fn deliver(d: &mut Drv<'_, '_, '_>, losses: &LossCounter, now: &mut u64) {
    d.handle(
        Instant::from_millis(*now),
        Input::SetFlushMode(FlushMode::Immediate),
    )
    .unwrap();
    for _ in 0..200 {
        *now += 100;
        losses.set_now(*now);
        let _ = d.poll(Instant::from_millis(*now));
        report(d, losses, *now);
        let s = d.machine().stats();
        if s.pending_events == 0 && s.in_flight_events == 0 && losses.pending() == 0 {
            return;
        }
    }
    panic!("not delivered: {:?}", d.machine().stats());
}

fn track(d: &mut Drv<'_, '_, '_>, losses: &LossCounter, n: u64, now: u64) -> u64 {
    losses.set_now(now);
    d.track(Instant::from_millis(now), &payload(n)).unwrap()
}

/// (a) A record damaged on the flash is dropped when it reaches the head
/// of the queue, and the next batch carries a report of it: the oldest,
/// one in the middle, the newest.
#[test]
fn a_damaged_record_is_reported_with_its_seq() {
    for k in [0, 2, 4] {
        damaged(k);
    }
}

fn damaged(k: u64) {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 8192];
    let losses = LossCounter::new();
    {
        let mut d = boot(&mut flash, &mut buf, &losses, Server::default(), 64, 0);
        for n in 0..5 {
            assert_eq!(track(&mut d, &losses, n, 10 + n), n);
        }
    }
    // Bit rot in event k's payload: its record fails its CRC.
    let mark = format!("EVT-{k:04}");
    let at = flash
        .image()
        .windows(8)
        .position(|w| w == mark.as_bytes())
        .unwrap();
    flash.rot(at + 5, 0x04);

    let losses = LossCounter::new();
    let mut now = 1000;
    let mut d = boot(&mut flash, &mut buf, &losses, Server::default(), 64, now);
    deliver(&mut d, &losses, &mut now);
    let (_, _, server, _) = d.into_parts();
    let others: Vec<u64> = (0..5).filter(|&n| n != k).collect();
    assert_eq!(server.app_events(), others, "event {k} damaged");
    let reports = server.reports();
    assert_eq!(reports.len(), 1, "event {k} damaged: {:?}", server.batches);
    let (seq, r) = &reports[0];
    assert_eq!(*seq, 5);
    let p = &r["properties"];
    assert_eq!(p["counts"], serde_json::json!({"damaged": 1}), "event {k}");
    assert_eq!(p["total"], 1);
    assert_eq!(p["first_seq"], k);
    assert_eq!(p["last_seq"], k);
}

/// (b) Overflow drops are reported with their count and seqs; the report
/// displaces an event in turn, and that drop (not the report itself) is
/// in the next report.
#[test]
fn overflow_drops_are_reported_and_a_report_never_reports_itself() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 8192];
    let losses = LossCounter::new();
    let mut now = 0;
    let mut d = boot(&mut flash, &mut buf, &losses, Server::default(), 4, now);
    for n in 0..10 {
        now += 10;
        track(&mut d, &losses, n, now);
    }
    assert_eq!(losses.pending(), 6);
    // Tracked into a full queue: it drops event 6, counted for later.
    assert_eq!(report(&mut d, &losses, now), Some(10));
    assert_eq!(losses.pending(), 1);
    // One report in the queue at a time.
    assert_eq!(report(&mut d, &losses, now), None);
    deliver(&mut d, &losses, &mut now);
    let (_, _, server, _) = d.into_parts();
    assert_eq!(server.app_events(), [7, 8, 9]);
    let reports = server.reports();
    assert_eq!(reports.len(), 2, "{:?}", server.batches);
    let first = &reports[0].1["properties"];
    assert_eq!(reports[0].0, 10);
    assert_eq!(first["counts"], serde_json::json!({"overflow": 6}));
    assert_eq!(first["total"], 6);
    assert_eq!(
        (&first["first_seq"], &first["last_seq"]),
        (&0.into(), &5.into())
    );
    let second = &reports[1].1["properties"];
    assert_eq!(second["counts"], serde_json::json!({"overflow": 1}));
    assert_eq!(
        (&second["first_seq"], &second["last_seq"]),
        (&6.into(), &6.into())
    );
    assert_ne!(reports[0].1["messageId"], reports[1].1["messageId"]);
}

/// (c) A report whose track returned is on the flash: a power cut then
/// loses nothing, and after the reboot it is sent once.
#[test]
fn a_tracked_report_survives_a_power_cut_and_is_sent_once() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 8192];
    let mut now = 0;
    {
        let losses = LossCounter::new();
        let mut d = boot(&mut flash, &mut buf, &losses, Server::default(), 4, now);
        for n in 0..6 {
            now += 10;
            track(&mut d, &losses, n, now);
        }
        assert_eq!(report(&mut d, &losses, now), Some(6));
        // Power is cut here: the driver, the machine and the counter (with
        // the report's own overflow drop, event 2) are gone.
        d.store_mut().flash_mut().cut_at_op(0, 0);
        assert!(d.track(Instant::from_millis(now), b"{}").is_err());
    }
    flash.power_on();
    flash.cancel_faults();
    let losses = LossCounter::new();
    now += 1000;
    let mut d = boot(&mut flash, &mut buf, &losses, Server::default(), 4, now);
    deliver(&mut d, &losses, &mut now);
    let (_, _, server, _) = d.into_parts();
    assert_eq!(server.app_events(), [3, 4, 5]);
    let reports = server.reports();
    assert_eq!(reports.len(), 1, "{:?}", server.batches);
    assert_eq!(reports[0].0, 6);
    let p = &reports[0].1["properties"];
    assert_eq!(p["counts"], serde_json::json!({"overflow": 2}));
    assert_eq!((&p["first_seq"], &p["last_seq"]), (&0.into(), &1.into()));
}

/// The window: a damaged record's drop is counted in the call that
/// deletes its hole, and a power cut before the report is tracked loses
/// the count for good (the record is not found again: its delete is on
/// the flash).
#[test]
fn a_cut_before_the_report_is_tracked_loses_the_count() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 8192];
    {
        let losses = LossCounter::new();
        let mut d = boot(&mut flash, &mut buf, &losses, Server::default(), 64, 0);
        for n in 0..5 {
            track(&mut d, &losses, n, 10 + n);
        }
    }
    let at = flash
        .image()
        .windows(8)
        .position(|w| w == b"EVT-0001")
        .unwrap();
    flash.rot(at, 0x40);
    let mut server = Server::default();
    let mut now = 1000;
    {
        let losses = LossCounter::new();
        let mut d = boot(&mut flash, &mut buf, &losses, server, 64, now);
        d.handle(Instant::from_millis(now), Input::Flush).unwrap();
        // The batch up to the hole goes; its answer brings the hole to the
        // head: dropped, and deleted with event 0 in the same call.
        for _ in 0..3 {
            if losses.pending() > 0 {
                break;
            }
            now += 10;
            d.poll(Instant::from_millis(now)).unwrap();
        }
        assert_eq!(losses.pending(), 1);
        assert_eq!(d.store_mut().summary().unwrap().first, Some(2));
        // Power is cut here, before the report's track.
        server = d.into_parts().2;
    }
    let losses = LossCounter::new();
    now += 1000;
    let mut d = boot(&mut flash, &mut buf, &losses, server, 64, now);
    deliver(&mut d, &losses, &mut now);
    let (_, _, server, _) = d.into_parts();
    // The batch in flight at the cut is sent again (at least once).
    let mut got = server.app_events();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, [0, 2, 3, 4]);
    assert!(server.reports().is_empty(), "{:?}", server.reports());
}

/// A report whose track failed (here: refused, the queue full under
/// `RejectNew`) keeps its counts: written again, it is the same report
/// (same bytes, same id), tracked once there is room.
#[test]
fn a_failed_report_track_keeps_the_counts_for_the_same_report() {
    let mut flash = Flash::new(PAGES);
    let mut buf = vec![0u8; 8192];
    let losses = LossCounter::new();
    let mut now = 0;
    let q = FlashQueue::open(&mut flash, REGION).unwrap();
    let config = Config::builder()
        .max_event_bytes(LossCounter::MAX_REPORT_BYTES as u32)
        .max_queue_events(2)
        .overflow(Overflow::RejectNew)
        .flush_mode(FlushMode::Manual)
        .build()
        .unwrap();
    let machine = Machine::<16>::new(config, 5).unwrap();
    let observer = Counted {
        losses: &losses,
        inner: (),
    };
    let mut d = Driver::new(machine, q, Server::default(), &mut buf, observer).unwrap();
    d.start(Instant::from_millis(now)).unwrap();
    for n in 0..2 {
        now += 10;
        track(&mut d, &losses, n, now);
    }
    // Say an earlier batch was dropped after its last attempt.
    losses.count(40, 44, outbox_core::DropReason::MaxAttempts);
    let mut first = [0u8; LossCounter::MAX_REPORT_BYTES];
    let n = losses.write_report(&mut first, DEVICE).unwrap().unwrap();
    assert!(d.track(Instant::from_millis(now), &first[..n]).is_err());
    assert_eq!(losses.pending(), 5);
    let mut again = [0u8; LossCounter::MAX_REPORT_BYTES];
    assert_eq!(losses.write_report(&mut again, DEVICE), Ok(Some(n)));
    assert_eq!(first[..n], again[..n]);
    // Delivered: room for it, and it goes (the same bytes).
    deliver(&mut d, &losses, &mut now);
    let (_, _, server, _) = d.into_parts();
    assert_eq!(server.app_events(), [0, 1]);
    let reports: Vec<Vec<u8>> = server
        .events()
        .into_iter()
        .filter(|(_, p)| !p.starts_with(b"{\"n\":"))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(reports, [first[..n].to_vec()]);
}

/// (d) The report has the std Client's shape (and what `outbox collect`
/// reads: `type`, `event`, `properties.total` and `counts`), its
/// `messageId` a UUID made of the device id and what it reports.
#[test]
fn the_report_parses_with_the_std_shape() {
    let losses = LossCounter::new();
    losses.set_unix_now(1_767_225_600_250);
    let mut o = &losses;
    use outbox_core::{DropReason, Observer, Output};
    o.observe(&Output::Dropped {
        first: 4,
        last: 6,
        reason: DropReason::MaxAttempts,
    });
    o.observe(&Output::Dropped {
        first: 9,
        last: 9,
        reason: DropReason::Damaged,
    });
    let mut buf = [0u8; LossCounter::MAX_REPORT_BYTES];
    let n = losses.write_report(&mut buf, DEVICE).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(v["type"], "track");
    assert_eq!(v["event"], "outbox dropped events");
    assert_eq!(v["anonymousId"], "outbox");
    let p = &v["properties"];
    assert_eq!(
        p["counts"],
        serde_json::json!({"max_attempts": 3, "damaged": 1})
    );
    assert_eq!(p["total"], 4);
    assert_eq!(p["first_seq"], 4);
    assert_eq!(p["last_seq"], 9);
    assert_eq!(p["since"], "2026-01-01T00:00:00.250Z");
    assert_eq!(v["context"]["library"]["name"], "outbox-embedded");
    let id = v["messageId"].as_str().unwrap();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
    // Written again (its track failed): the same bytes.
    let mut again = [0u8; LossCounter::MAX_REPORT_BYTES];
    assert_eq!(losses.write_report(&mut again, DEVICE), Ok(Some(n)));
    assert_eq!(buf[..n], again[..n]);

    // The same losses counted again after a reboot (a damaged record found
    // again), at another time by the device clock: the same id.
    let after_cut = LossCounter::new();
    after_cut.set_now(5);
    after_cut.count(4, 6, DropReason::MaxAttempts);
    after_cut.count(9, 9, DropReason::Damaged);
    let m = after_cut.write_report(&mut again, DEVICE).unwrap().unwrap();
    let w: Value = serde_json::from_slice(&again[..m]).unwrap();
    assert_eq!(w["messageId"], v["messageId"]);
    assert_eq!(w["properties"]["since_boot_ms"], 5);
    assert!(w["properties"].get("since").is_none());
}

/// The async run loop reports by itself (features `async` and
/// `loss-reports`): a record damaged on the flash before the boot is
/// reported once, beside the app's events, and the loop then returns.
#[cfg(feature = "async")]
mod run_loop {
    use super::*;
    use outbox_embedded::asynchronous::{run_with_losses, FlashQueue as AsyncQueue};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use crate::support::async_app::{
        event, once_each, Script, Server as FlakyServer, VirtualClock,
    };
    use crate::support::async_sim::{AsyncSim, Flash as AsyncFlash};

    const PAGES: usize = 16;
    const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);

    /// Polls `fut` to its end, at most a million times.
    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        let mut fut = pin!(fut);
        for _ in 0..1_000_000 {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return v;
            }
        }
        panic!("the run did not return");
    }

    #[test]
    fn run_with_losses_reports_a_damaged_record_once() {
        let mut flash = AsyncFlash::new(PAGES);
        {
            let mut q = outbox_embedded::flash::FlashQueue::open(&mut flash, REGION).unwrap();
            for n in 0..4 {
                q.append(n, &payload(n)).unwrap();
            }
        }
        let at = flash
            .image()
            .windows(8)
            .position(|w| w == b"EVT-0001")
            .unwrap();
        flash.rot(at, 0x01);

        let queue = block_on(AsyncQueue::open(AsyncSim::new(flash), REGION)).unwrap();
        let config = Config::builder()
            .max_event_bytes(LossCounter::MAX_REPORT_BYTES as u32)
            .max_batch_bytes(4000)
            .flush_mode(FlushMode::Immediate)
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(400))
            .build()
            .unwrap();
        let machine = Machine::<32>::new(config, 3).unwrap();
        let losses = LossCounter::new();
        let mut buf = vec![0u8; 4000];
        let mut driver = outbox_embedded::asynchronous::Driver::new(
            machine,
            queue,
            FlakyServer::default(),
            &mut buf,
            &losses,
        )
        .unwrap();
        let mut clock = VirtualClock::default();
        let mut script = Script {
            left: (0..5).map(event).collect(),
            ..Script::default()
        };
        let mut event_buf = [0u8; LossCounter::MAX_REPORT_BYTES];
        block_on(run_with_losses(
            &mut driver,
            &mut clock,
            &mut script,
            &mut event_buf,
            Duration::from_millis(20),
            &losses,
            DEVICE,
        ))
        .unwrap();
        let (_, _, server, _) = driver.into_parts();
        let got = once_each(&server.received);
        let reports: Vec<Value> = got
            .iter()
            .filter_map(|p| serde_json::from_slice::<Value>(p).ok())
            .filter(|v| v["event"] == LOSS_EVENT)
            .collect();
        assert_eq!(reports.len(), 1, "{got:?}");
        let p = &reports[0]["properties"];
        assert_eq!(p["counts"], serde_json::json!({"damaged": 1}));
        assert_eq!((&p["first_seq"], &p["last_seq"]), (&1.into(), &1.into()));
        assert!(p["since_boot_ms"].is_u64());
        // Every other event arrived; the loop ended with nothing to report.
        assert_eq!(got.len(), 3 + 5 + 1);
        assert_eq!(script.stored.len(), 5);
        assert_eq!(losses.pending(), 0);
    }
}
