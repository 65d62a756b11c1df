//! The app around the async run loop, for its tests (feature `async`): a
//! fake server, a virtual clock, a script of events.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::Duration;

use outbox_core::{
    Batch, Config, DriverError, FlushMode, InputError, Instant, Outcome, Overflow, Payloads, Seq,
    Transport,
};
use outbox_embedded::asynchronous::{Clock, Events};

use super::async_sim::YieldOnce;

/// Answers 200, except every third batch, which gets no answer.
#[derive(Default)]
pub struct Server {
    answer: Option<Outcome>,
    pub batches: u64,
    pub received: Vec<Vec<u8>>,
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

/// Virtual time: sleeping suspends once, then the clock jumps.
#[derive(Default)]
pub struct VirtualClock {
    pub now: u64,
    pub sleeps: u64,
}

impl Clock for VirtualClock {
    fn now(&mut self) -> Instant {
        Instant::from_millis(self.now)
    }
    async fn sleep_until(&mut self, at: Instant) {
        YieldOnce(false).await;
        self.sleeps += 1;
        self.now = self.now.max(at.as_millis());
    }
}

/// The app: a script of payloads, each handed over after a suspension;
/// one refused for a full queue goes back to the front.
#[derive(Default)]
pub struct Script {
    pub left: VecDeque<Vec<u8>>,
    /// The payload handed over and not yet answered.
    pub handed: Option<Vec<u8>>,
    /// Tracked and stored, in order.
    pub stored: Vec<(Seq, Vec<u8>)>,
    /// Handed over, whatever became of them.
    pub attempted: Vec<Vec<u8>>,
    pub refused_full: u64,
}

impl Events for Script {
    async fn next(&mut self, buf: &mut [u8]) -> Option<usize> {
        YieldOnce(false).await;
        // Taken only when returned: dropped before, nothing is lost.
        let p = self.left.pop_front()?;
        buf[..p.len()].copy_from_slice(&p);
        self.attempted.push(p.clone());
        let n = p.len();
        self.handed = Some(p);
        Some(n)
    }
    fn tracked<SE: Debug, TE: Debug>(&mut self, result: Result<Seq, DriverError<SE, TE>>) {
        let p = self
            .handed
            .take()
            .expect("tracked answers an event handed over");
        match result {
            Ok(seq) => self.stored.push((seq, p)),
            Err(DriverError::Input(InputError::QueueFull)) => {
                self.refused_full += 1;
                self.left.push_front(p);
            }
            Err(e) => panic!("track failed: {e:?}"),
        }
    }
}

pub fn event(i: u32) -> Vec<u8> {
    format!(
        "{{\"event\":\"e{i}\",\"pad\":\"{}\"}}",
        "x".repeat(i as usize % 40)
    )
    .into_bytes()
}

pub fn config() -> Config {
    Config::builder()
        .max_event_bytes(100)
        .max_queue_events(24)
        .max_queue_bytes(2000)
        .max_batch_bytes(600)
        .flush_mode(FlushMode::Immediate)
        .overflow(Overflow::RejectNew)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// The events the server got, without the re-sends of a batch whose
/// answer was lost (the server deduplicates by messageId).
pub fn once_each(received: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for p in received {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}
