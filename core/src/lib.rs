//! # outbox-core
//!
//! The sans-IO heart of outbox: a `#![no_std]`, allocation-free state machine
//! that decides when events are stored, batched, uploaded, retried, deleted,
//! dropped or rejected — and does none of it itself. Adapters own the disk and
//! the network; the machine owns the rules, so the same rules run on a server
//! with SQLite and on a microcontroller with NOR flash.
//!
//! * Time comes in with every input ([`Instant`], milliseconds); the next
//!   wake-up goes out through [`Machine::poll_timeout`]. An idle machine
//!   never asks to be woken.
//! * Randomness (retry jitter) comes from a seed: same seed and inputs, same
//!   outputs. [`Input`] and [`Output`] are serde types, so a run can be
//!   recorded with postcard and replayed.
//! * Memory is fixed and does not grow with the queue: `Machine<N>` keeps
//!   the queue's totals and the sizes of a window of `N` events (payloads
//!   and the other sizes stay in the store, which the machine asks for
//!   sizes when its window runs low).
//!
//! ## The run loop
//!
//! [`Driver`] is the loop every adapter shares: it feeds inputs to the
//! machine and applies each output to a [`Store`] or a [`Transport`]. Here is
//! all of it, with an in-memory store and a transport that answers from a
//! script (first a 503, then 200s):
//!
//! ```
//! use outbox_core::{Batch, Config, Driver, Instant, Machine, Outcome, Output, Payloads, ReadError, Seq, Store, StoreSummary, Transport};
//!
//! #[derive(Default)]
//! struct MemStore(Vec<(Seq, Vec<u8>)>);
//! impl Store for MemStore {
//!     type Error = ();
//!     fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), ()> {
//!         Ok(self.0.push((seq, payload.to_vec())))
//!     }
//!     fn read_range(&mut self, first: Seq, last: Seq, buf: &mut [u8]) -> Result<usize, ReadError<()>> {
//!         let mut n = 0;
//!         for (_, p) in self.0.iter().filter(|(s, _)| (first..=last).contains(s)) {
//!             buf[n..n + p.len()].copy_from_slice(p);
//!             n += p.len();
//!         }
//!         Ok(n)
//!     }
//!     fn delete_through(&mut self, through: Seq) -> Result<(), ()> {
//!         Ok(self.0.retain(|(s, _)| *s > through))
//!     }
//!     fn summary(&mut self) -> Result<StoreSummary, ()> {
//!         let bytes = self.0.iter().map(|(_, p)| p.len() as u64).sum();
//!         Ok(match (self.0.first(), self.0.last()) {
//!             (Some(f), Some(l)) => StoreSummary { count: self.0.len() as u64, bytes, first: f.0, last: l.0 },
//!             _ => StoreSummary::EMPTY,
//!         })
//!     }
//!     fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, ()> {
//!         let sizes = self.0.iter().filter(|(s, _)| *s >= from).map(|(_, p)| p.len() as u32);
//!         Ok(out.iter_mut().zip(sizes).map(|(o, s)| *o = s).count())
//!     }
//! }
//!
//! /// Answers each batch with the next scripted status.
//! struct Scripted { statuses: Vec<u16>, answer: Option<Outcome>, received: Vec<Vec<u8>> }
//! impl Transport for Scripted {
//!     type Error = ();
//!     fn send(&mut self, _now: Instant, batch: &Batch, payloads: Payloads<'_>) -> Result<(), ()> {
//!         let status = if self.statuses.is_empty() { 200 } else { self.statuses.remove(0) };
//!         if status == 200 {
//!             self.received.extend(payloads.map(|(_, p)| p.to_vec()));
//!         }
//!         self.answer = Some(Outcome::Response { batch: batch.id, status, retry_after: None });
//!         Ok(())
//!     }
//!     fn poll_outcome(&mut self, _now: Instant) -> Option<Outcome> {
//!         self.answer.take()
//!     }
//! }
//!
//! let machine = Machine::<64>::new(Config::default(), 42).unwrap();
//! let transport = Scripted { statuses: vec![503], answer: None, received: vec![] };
//! let mut delivered = 0;
//! let mut buf = vec![0u8; 40 * 1024];                // one batch (at least one maximal event)
//! let mut driver = Driver::new(machine, MemStore::default(), transport, &mut buf, |o: &Output| {
//!     if let Output::Delivered { first, last } = o { delivered += last - first + 1 }
//! }).unwrap();
//!
//! let mut now = Instant::ZERO;
//! driver.start(now).unwrap();                       // restore what the store holds
//! for event in [&b"{\"n\":1}"[..], b"{\"n\":2}", b"{\"n\":3}"] {
//!     driver.track(now, event).unwrap();            // stored, then (Immediate mode) sent
//! }
//! // The run loop: poll for outcomes, sleep until the machine's next timeout
//! // (a batch in flight has one: its request deadline).
//! for _ in 0..100 {
//!     driver.poll(now).unwrap();
//!     match driver.poll_timeout() {
//!         Some(t) => now = t,                       // a real loop sleeps until t or the transport's news
//!         None => break,                            // idle: nothing pending, nothing in flight
//!     }
//! }
//! let (machine, store, transport, _) = driver.into_parts();
//! assert_eq!(machine.stats().delivered, 3);
//! assert_eq!(machine.stats().retries, 1);           // the 503 was retried after backoff
//! assert!(store.0.is_empty());                      // delivered events are deleted
//! assert_eq!(transport.received.len(), 3);
//! assert_eq!(delivered, 3);
//! ```
//!
//! Without the driver, the same loop is: `handle(now, input)`, then
//! `while let Some(o) = machine.poll_output() { apply(o) }`, then sleep until
//! `poll_timeout()`.
//!
//! ## Memory
//!
//! `size_of::<Machine<N>>()` is [`FIXED_STATE_BYTES`] plus
//! [`BYTES_PER_WINDOW_SLOT`] × `N` (a test checks it): 912 bytes fixed and
//! 8 bytes a slot on a 64-bit target (the sizes of the oldest `N` events and
//! of the newest `N` until they are committed). The queue's length costs
//! nothing: `Machine<64>` is 1424 bytes whether ten events or ten million
//! wait in the store (88 more with event expiry, feature `expiry`). `N` only has to hold one batch (`max_batch_events` is
//! at most `N`). The fixed part is mostly 64-bit sequence numbers, instants
//! and counters (so a busy server never wraps them): [`Stats`] counters,
//! the [`Config`], the waiting notifications, the window's bookkeeping,
//! the commit and refill cursors, the batch in flight, and up to four
//! ranges of numbers the machine spent without storing them.
//!
//! ## Damaged storage: holes
//!
//! A damaged record costs that record alone. A store reports the numbers
//! between its oldest and newest intact records that hold no intact record
//! as holes ([`store`] module): its [`StoreSummary`] counts intact records
//! only, and [`Store::read_sizes`] gives [`HOLE`] for a hole. The machine
//! drops holes when they reach the head of the queue, one
//! [`Output::Dropped`] with [`DropReason::Damaged`] per run, covered by the
//! next `Delete`, and never puts one in a batch. Sequence numbers are never
//! reused: new events are numbered from the larger of the queue's end and
//! the store's floor ([`Store::seq_floor`]), and the numbers of events the
//! store did not keep (`NotStored`) are spent for good, so no response or
//! receipt of a lost event can ever match another one. A record found
//! damaged only when its bytes are read ([`ReadError::Malformed`]) is
//! dead-lettered alone ([`RejectReason::Malformed`]).

#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod config;
mod error;
mod input;
#[cfg(any(test, feature = "_judge"))]
pub mod judged;
mod machine;
pub mod network;
mod notes;
mod output;
mod pending;
mod rng;
pub mod session;
mod stats;
// The store contract and the driver loop, written once and compiled twice
// (the `bisync` crate's way): `blocking` here, `asynchronous` with the
// feature `async`.
#[path = "."]
mod blocking {
    use crate::bisync_shim::synchronous::*;
    pub mod driver;
    pub mod store;
}
use blocking::driver;
pub use blocking::store;
mod time;
pub mod trace;

/// The driver loop over an async [`Store`](asynchronous::Store) (feature
/// `async`): the same code as the blocking [`Driver`], each method that
/// touches the store an `async fn`. The transport, observer, errors and
/// store types are the blocking ones (re-exported here); the transport's
/// `send` only starts an upload and `poll_outcome` only looks, so neither
/// waits.
///
/// A future of this driver dropped part-way (a `select`, a timeout) may
/// leave the machine and the store out of step (a store write it was
/// awaiting may or may not have happened): rebuild both from the store, as
/// after a restart, before going on.
#[cfg(feature = "async")]
#[path = "."]
pub mod asynchronous {
    use crate::bisync_shim::asynchronous::*;
    #[allow(clippy::duplicate_mod)]
    mod driver;
    #[allow(clippy::duplicate_mod)]
    pub mod store;
    pub use driver::{BufferTooSmall, Driver, DriverError, Observer, Outcome, Payloads, Transport};
    pub use store::{ReadError, Store, StoreSummary, HOLE};
}

/// The `bisync` crate's attributes for each face (the crate itself is
/// these re-exports over its macros crate): `#[bisync]` keeps an
/// `async fn` or strips its `async` and `.await`s; `#[only_sync]` and
/// `#[only_async]` keep an item in one face alone.
mod bisync_shim {
    pub mod synchronous {
        pub use ::bisync_macros::internal_delete as only_async;
        pub use ::bisync_macros::internal_noop as only_sync;
        pub use ::bisync_macros::internal_strip_async as bisync;
    }
    #[cfg(feature = "async")]
    pub mod asynchronous {
        pub use ::bisync_macros::internal_delete as only_sync;
        pub use ::bisync_macros::internal_noop as only_async;
        pub use ::bisync_macros::internal_noop as bisync;
    }
}

pub use config::{Config, ConfigBuilder, ConfigError, FlushMode, Overflow};
pub use driver::{BufferTooSmall, Driver, DriverError, Observer, Outcome, Payloads, Transport};
pub use error::{InputError, TrackError};
pub use input::{Input, Lifecycle, LocalFailure};
pub use machine::{Accepted, Machine};
pub use network::{NetworkKind, UploadPolicy};
pub use output::{Batch, BatchId, DropReason, HaltReason, Output, RejectReason, RetryCause};
pub use stats::Stats;
pub use store::{strip_critical, ReadError, Store, StoreSummary, CRITICAL, DISCARDED, HOLE};
pub use time::Instant;

/// An event's sequence number: assigned by the machine, strictly increasing,
/// never reused across restarts.
pub type Seq = u64;

/// The largest sequence number the machine hands out or restores (2^63 - 1),
/// so arithmetic on sequence numbers can never overflow.
pub const MAX_SEQ: Seq = u64::MAX >> 1;

/// Bytes of a machine's state that do not depend on its capacity `N`.
pub const FIXED_STATE_BYTES: usize = core::mem::size_of::<Machine<0>>();

/// Bytes each window slot adds to a machine (the size of one of the oldest
/// events and of one of the newest).
pub const BYTES_PER_WINDOW_SLOT: usize = 2 * core::mem::size_of::<u32>();

/// [`FIXED_STATE_BYTES`] on 64-bit targets, as the crate docs state it
/// (feature `expiry` adds 88: the wall clock, the store's last answer, a
/// counter and the setting).
#[cfg(all(test, not(feature = "expiry")))]
const DOCUMENTED_FIXED_STATE_BYTES: usize = 912;
#[cfg(all(test, feature = "expiry"))]
const DOCUMENTED_FIXED_STATE_BYTES: usize = 912 + 88;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_regressions;

/// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
