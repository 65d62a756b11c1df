//! The core's driver running the machine on the flash queue, with power
//! cuts: every event whose track returned is delivered, in order, and
//! nothing arrives that was not tracked.

use std::collections::BTreeSet;

use outbox_core::{
    Batch, Config, Driver, FlushMode, Instant, Machine, Outcome, Payloads, Transport,
};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

type Flash = SimFlash<4, 4, 1024>;
const PAGES: usize = 16;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 1024);

/// Answers 200, except every third batch, which gets no answer.
#[derive(Default)]
struct Server {
    answer: Option<Outcome>,
    batches: u64,
    received: Vec<Vec<u8>>,
}

impl Transport for Server {
    type Error = ();
    fn send(&mut self, _: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
        self.batches += 1;
        self.answer = Some(if self.batches.is_multiple_of(3) {
            Outcome::Failed { batch: batch.id }
        } else {
            self.received.extend(payloads.map(|(_, p)| p.to_vec()));
            Outcome::Response {
                batch: batch.id,
                status: 200,
                retry_after: None,
            }
        });
        Ok(())
    }
    fn poll_outcome(&mut self, _: Instant) -> Option<Outcome> {
        self.answer.take()
    }
}

#[test]
fn tracked_events_survive_power_cuts_and_are_delivered_in_order() {
    let mut flash = Flash::new(PAGES);
    let mut server = Server::default();
    let mut tracked = Vec::new();
    // Every payload handed to track: one whose track failed may still be
    // stored and delivered (its append may have landed before the cut).
    let mut attempted = BTreeSet::new();
    let mut buf = vec![0u8; 4096];
    let mut now = 0u64;
    let mut cuts = 0;
    let mut n = 0u32;
    while n < 600 {
        // Boot: open the queue and start a machine on it.
        flash.power_on();
        let q = FlashQueue::open(&mut flash, REGION).unwrap();
        let config = Config::builder()
            .max_event_bytes(100)
            .max_queue_events(64)
            .max_queue_bytes(q.max_queue_bytes(100, 64))
            .max_batch_bytes(2000)
            .flush_mode(FlushMode::Immediate)
            .build()
            .unwrap();
        let machine = Machine::<16>::new(config, u64::from(n)).unwrap();
        let mut d = Driver::new(machine, q, std::mem::take(&mut server), &mut buf, ()).unwrap();
        d.start(Instant::from_millis(now)).unwrap();
        // Power fails somewhere in the next few dozen writes and erases.
        d.store_mut()
            .flash_mut()
            .cut_at_op(u64::from(n % 97) + 20, (n as usize * 13) % 60);
        loop {
            now += 100;
            let payload = format!("event-{n:05}-{}", "x".repeat((n % 70) as usize));
            attempted.insert(payload.clone().into_bytes());
            match d.track(Instant::from_millis(now), payload.as_bytes()) {
                Ok(_) => tracked.push(payload.into_bytes()),
                Err(_) => break,
            }
            n += 1;
            let _ = d.poll(Instant::from_millis(now));
            if !d.store_mut().flash_mut().is_powered() || n >= 600 {
                break;
            }
        }
        if !d.store_mut().flash_mut().is_powered() {
            cuts += 1;
        }
        let (_, _, s, ()) = d.into_parts();
        server = s;
    }
    // A last boot without cuts drains the queue.
    flash.power_on();
    flash.cancel_faults();
    let q = FlashQueue::open(&mut flash, REGION).unwrap();
    let config = Config::builder()
        .max_event_bytes(100)
        .max_batch_bytes(2000)
        .build()
        .unwrap();
    let machine = Machine::<16>::new(config, 7).unwrap();
    let mut d = Driver::new(machine, q, server, &mut buf, ()).unwrap();
    d.start(Instant::from_millis(now)).unwrap();
    for _ in 0..2000 {
        now += 1000;
        let _ = d.poll(Instant::from_millis(now));
        if d.store_mut().summary().unwrap().count == 0 {
            break;
        }
    }
    assert_eq!(
        d.store_mut().summary().unwrap().count,
        0,
        "queue not drained"
    );
    let (_, _, server, ()) = d.into_parts();

    assert!(cuts >= 5, "only {cuts} power cuts");
    let tracked_set: BTreeSet<&Vec<u8>> = tracked.iter().collect();
    for r in &server.received {
        assert!(attempted.contains(r), "delivered a payload never tracked");
    }
    // Every tracked event arrived; first arrivals in tracking order.
    let mut seen = BTreeSet::new();
    let firsts: Vec<&Vec<u8>> = server.received.iter().filter(|r| seen.insert(*r)).collect();
    let delivered: Vec<&Vec<u8>> = firsts
        .into_iter()
        .filter(|r| tracked_set.contains(r))
        .collect();
    assert_eq!(delivered, tracked.iter().collect::<Vec<_>>());
}
