//! The async run loop (feature `async`): the core's driver over the async
//! flash queue, polled to the end by a minimal `block_on` (a no-op waker,
//! counting the suspensions), on the simulated
//! flash suspending at every operation, a virtual clock and a fake server.
//!
//! - `run_delivers_every_tracked_event_once_in_order`: 300 events, every
//!   third batch unanswered, a queue small enough to push back: every
//!   event tracked is delivered once, in order, and the flash ends empty.
//! - `dropping_run_part_way_loses_no_tracked_event`: the run's future is
//!   dropped after `k` polls (as a task cancelled, or power lost), the
//!   queue reopened from the flash and the rest run by a new loop: every
//!   event whose track returned `Ok` is delivered, in order, and only
//!   events the app handed over are.
#![cfg(feature = "async")]

mod support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use outbox_core::{Machine, Seq};
use outbox_embedded::asynchronous::{run, Driver, FlashQueue};
use support::async_app::{config, event, once_each, Script, Server, VirtualClock};
use support::async_sim::{AsyncSim, Flash};

const PAGES: usize = 16;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);

#[test]
fn run_delivers_every_tracked_event_once_in_order() {
    let (queue, _) = block_on_counting(FlashQueue::open(AsyncSim::new(Flash::new(PAGES)), REGION));
    let queue = queue.unwrap();
    let machine = Machine::<32>::new(config(), 7).unwrap();
    let mut buf = vec![0u8; 600];
    let mut driver = Driver::new(machine, queue, Server::default(), &mut buf, ()).unwrap();
    let mut clock = VirtualClock::default();
    let mut script = Script {
        left: (0..300).map(event).collect(),
        ..Script::default()
    };
    let mut event_buf = [0u8; 128];
    let (result, suspended) = block_on_counting(run(
        &mut driver,
        &mut clock,
        &mut script,
        &mut event_buf,
        Duration::from_millis(20),
    ));
    result.unwrap();
    let (_, queue, server, _) = driver.into_parts();

    assert_eq!(script.stored.len(), 300, "every event stored");
    let seqs: Vec<Seq> = script.stored.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs grow");
    let sent: Vec<Vec<u8>> = script.stored.iter().map(|(_, p)| p.clone()).collect();
    assert!(
        server.received == sent,
        "each delivered once, in order: {} received, {} stored",
        server.received.len(),
        sent.len()
    );
    assert!(server.batches >= 3, "some batches went unanswered");
    assert!(script.refused_full > 0, "the queue never pushed back");
    assert!(
        clock.sleeps > 0 && suspended > 1000,
        "{suspended} suspensions"
    );
    let mut flash = queue.into_inner().flash;
    flash.power_on();
    let mut q = outbox_embedded::flash::FlashQueue::open(&mut flash, REGION).unwrap();
    assert_eq!(q.summary().unwrap().count, 0, "the flash ends empty");
    assert_eq!(flash.violations(), 0);
}

#[test]
fn dropping_run_part_way_loses_no_tracked_event() {
    // How many polls a whole run takes; then a drop after every few.
    let (dropped, whole) = scenario(u64::MAX);
    assert!(!dropped);
    let step = (whole / 80).max(1);
    let mut drops = 0;
    for k in (1..whole).step_by(step as usize) {
        let (dropped, _) = scenario(k);
        assert!(dropped, "k {k}: the run ended before {whole} polls");
        drops += 1;
    }
    assert!(drops >= 60, "only {drops} runs were dropped part-way");
}

/// 60 events: a first run dropped after `k` polls (unless it ends first),
/// then a second from the flash to the end; judged. Whether the first was
/// dropped, and how many polls it took.
fn scenario(k: u64) -> (bool, u64) {
    let mut flash = Flash::new(PAGES);
    let mut script = Script {
        left: (0..60).map(event).collect(),
        ..Script::default()
    };
    let mut server = Server::default();
    let mut clock = VirtualClock::default();
    let mut dropped = false;
    let mut first_polls = 0;
    for life in 0..2 {
        if life == 1 && !dropped {
            break;
        }
        let (queue, _) = block_on_counting(FlashQueue::open(AsyncSim::new(flash), REGION));
        let queue = queue.unwrap();
        let machine = Machine::<32>::new(config(), k).unwrap();
        let mut buf = vec![0u8; 600];
        let mut driver = Driver::new(machine, queue, server, &mut buf, ()).unwrap();
        let mut event_buf = [0u8; 128];
        {
            let fut = run(
                &mut driver,
                &mut clock,
                &mut script,
                &mut event_buf,
                Duration::from_millis(20),
            );
            let mut fut = pin!(fut);
            let limit = if life == 0 { k } else { u64::MAX };
            let mut polls = 0;
            loop {
                if polls == limit {
                    dropped = true;
                    break;
                }
                polls += 1;
                let cx = &mut Context::from_waker(Waker::noop());
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    r.unwrap();
                    break;
                }
            }
            if life == 0 {
                first_polls = polls;
            }
            // The future is dropped here: part-way, in the first life.
        }
        let (_, queue, s, _) = driver.into_parts();
        server = s;
        flash = queue.into_inner().flash;
        // An event handed over whose track never answered: the app hands
        // it over again (it may be stored already: then twice).
        if let Some(p) = script.handed.take() {
            script.left.push_front(p);
        }
    }
    let delivered = once_each(&server.received);
    for (seq, p) in &script.stored {
        assert!(
            delivered.contains(p),
            "k {k}: event {seq} was stored (its track returned Ok) but never delivered"
        );
    }
    for p in &delivered {
        assert!(
            script.attempted.contains(p),
            "k {k}: an event never tracked arrived"
        );
    }
    // In order: the first copy of each event comes in script order.
    let order: Vec<usize> = delivered
        .iter()
        .map(|p| (0..60).position(|i| event(i) == *p).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "k {k}: out of order {order:?}"
    );
    assert_eq!(delivered.len(), 60, "k {k}: every event delivered");
    assert_eq!(flash.violations(), 0);
    (dropped, first_polls)
}

/// Poll to the end, counting the suspensions.
fn block_on_counting<T>(fut: impl Future<Output = T>) -> (T, u64) {
    let mut fut = pin!(fut);
    let mut pending = 0;
    loop {
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => return (v, pending),
            Poll::Pending => pending += 1,
        }
    }
}
