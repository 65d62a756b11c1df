//! Deterministic simulation of outbox-core (DESIGN.md, "Testing").
//!
//! Each seed drives the real [`outbox_core::Machine`] through the real
//! [`outbox_core::Driver`], with a virtual clock, a seeded random number
//! generator, a store that can crash between any two of its operations, and
//! a server that deduplicates by messageId. After every step it checks the
//! invariants (and a few more: accounting, liveness, backoff); at the
//! end of a seed it heals everything, drains, and checks the books.
//!
//! `cargo run --release -p outbox-tests --bin sim -- --seeds N` runs it;
//! `--seed S --verbose` replays one seed with its step log.
//! `--world flash` runs the same lives on the flash queue over a simulated
//! NOR flash that loses power mid-write (see `flash_world`).
//!
//! A violation names the invariant it broke:
//!
//! * `1-lost`: an event deleted, rejected without cause, reported delivered
//!   but not at the server, sent while not durable, or at the end neither
//!   delivered, dropped nor rejected; the store and the machine disagree.
//! * `2-order`: a batch not oldest-first or not contiguous; the server got
//!   an event for the first time after a later one.
//! * `2-duplicate`: the server got an event again although its last
//!   delivery was acknowledged and no crash came before its delete.
//! * `3-limits`: the queue, the store or a batch over its limits; an event
//!   over `max_event_bytes` accepted.
//! * `4-no-panic`: the machine, the driver (or the simulator) panicked.
//! * `accounting`: `Stats` do not add up; an event reached the server and
//!   the application was told nothing.
//! * `liveness`: a wake-up asked with nothing pending, earlier than the
//!   backoff, or again at once; events left sitting in `Immediate` mode or
//!   without a timer in `Period` mode; a queue that does not drain once
//!   everything is healed; unbounded work in one driver call.
//! * `backoff`: a retry sooner than the backoff or the Retry-After allows,
//!   or later than base × 2^n + 50 % jitter.
//! * `protocol`: the driver broke the store or transport contract (appends
//!   out of order, two batches in flight, ...).
//!
//! The judge (`outbox-judge`) rules on every drop, rejection, halt, retry
//! and send from the simulator's own bookkeeping, never from the machine's
//! counters (invariant 5), and names these:
//!
//! * `5-drop`: an overflow drop of an event that fit (or not exactly the
//!   oldest that had to go), a max-attempts drop with no limit or before
//!   the limit's count of failures in a row, or one missing when due.
//! * `backoff` (also): a retry numbered or blamed other than the failures
//!   counted here, or a retry with no failure before it.
//! * `status`: a rejection, halt or storm halt the status table and the
//!   answers handed over do not call for, or one missing.
//! * `flush-mode`: a send in `Manual` (or `AppClose`) that no explicit
//!   flush (or background, terminate) asked for since the switch.
//! * `deadline`: a batch with no answer still in flight after its
//!   `request_timeout`.

mod flash_world;
mod rng;
mod seed;
mod world;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use flash_world::WorldKind;
pub use rng::Rng;
pub use seed::{run_seed, run_seed_in, SeedResult, CAP};
pub use world::Violation;

/// Steps per seed unless told otherwise.
pub const DEFAULT_STEPS: u64 = 4_000;

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub steps: u64,
    pub events: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub crashes: u64,
    /// Timer wake-ups.
    pub wakeups: u64,
    /// Dropped events by why (see [`SeedResult::drops`]).
    pub drops: [u64; 6],
    /// Flash world only: bits flipped, records lost to them, losses the
    /// store contract cannot report (see [`SeedResult::rot`]).
    pub rot: [u64; 3],
    /// Failing seeds, in seed order.
    pub failures: Vec<SeedResult>,
}

impl Summary {
    /// Count one seed in.
    pub fn add(&mut self, r: SeedResult) {
        self.seeds += 1;
        self.steps += r.steps;
        self.events += r.events;
        self.delivered += r.delivered;
        self.dropped += r.dropped;
        self.rejected += r.rejected;
        self.duplicates += r.duplicates;
        self.crashes += r.crashes;
        self.wakeups += r.wakeups;
        for (a, b) in self.drops.iter_mut().zip(r.drops) {
            *a += b;
        }
        for (a, b) in self.rot.iter_mut().zip(r.rot) {
            *a += b;
        }
        if r.violation.is_some() {
            self.failures.push(r);
        }
    }

    /// Fold in another thread's totals.
    pub fn merge(&mut self, other: Summary) {
        self.seeds += other.seeds;
        self.steps += other.steps;
        self.events += other.events;
        self.delivered += other.delivered;
        self.dropped += other.dropped;
        self.rejected += other.rejected;
        self.duplicates += other.duplicates;
        self.crashes += other.crashes;
        self.wakeups += other.wakeups;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
        for (a, b) in self.rot.iter_mut().zip(other.rot) {
            *a += b;
        }
        self.failures.extend(other.failures);
    }

    /// Seeds with a broken invariant.
    pub fn violations(&self) -> u64 {
        self.failures.len() as u64
    }

    /// What the runs went through (printed before the closing line).
    pub fn detail(&self) -> String {
        let d = &self.drops;
        let mut detail = format!(
            "crashes: {}, wake-ups: {}, dropped for overflow: {}, queue full: {}, max attempts: {}, not stored: {}, unsynced at a crash: {}, expired: {}",
            self.crashes, self.wakeups, d[0], d[1], d[2], d[3], d[4], d[5]
        );
        let [flips, rotted, unreported] = self.rot;
        if flips > 0 {
            detail.push_str(&format!(
                ", bits flipped: {flips}, records lost to them: {rotted}, of which not reportable (after the newest with their header beyond recovery, or seq 0 alone): {unreported}"
            ));
        }
        detail
    }

    /// The closing line.
    pub fn line(&self) -> String {
        format!(
            "seeds: {}, steps: {}, events: {}, delivered: {}, dropped: {}, rejected: {}, duplicates: {}, violations: {}",
            self.seeds,
            self.steps,
            self.events,
            self.delivered,
            self.dropped,
            self.rejected,
            self.duplicates,
            self.violations()
        )
    }
}

/// Run one seed, turning a panic into a violation of invariant 4.
pub fn run_seed_caught(seed: u64, steps: u64, verbose: bool) -> SeedResult {
    run_seed_caught_in(WorldKind::Model, seed, steps, verbose)
}

/// [`run_seed_caught`] in a world of the given kind.
pub fn run_seed_caught_in(kind: WorldKind, seed: u64, steps: u64, verbose: bool) -> SeedResult {
    match std::panic::catch_unwind(|| run_seed_in(kind, seed, steps, verbose)) {
        Ok(r) => r,
        Err(p) => {
            let trail = world::trail_take();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "panic".into());
            SeedResult {
                seed,
                steps: trail.step,
                log: trail.lines,
                violation: Some((
                    trail.step,
                    Violation {
                        invariant: if msg.starts_with(world::HANG) {
                            "liveness"
                        } else {
                            "4-no-panic"
                        },
                        detail: msg,
                    },
                )),
                ..SeedResult::default()
            }
        }
    }
}

/// Run `seeds` on `threads` threads; the result does not depend on `threads`.
pub fn run_seeds(seeds: std::ops::Range<u64>, steps: u64, threads: usize) -> Summary {
    run_seeds_in(WorldKind::Model, seeds, steps, threads)
}

/// [`run_seeds`] in worlds of the given kind.
pub fn run_seeds_in(
    kind: WorldKind,
    seeds: std::ops::Range<u64>,
    steps: u64,
    threads: usize,
) -> Summary {
    let next = AtomicU64::new(seeds.start);
    let total = Mutex::new(Summary::default());
    let threads = threads.max(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut local = Summary::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    local.add(run_seed_caught_in(kind, seed, steps, false));
                }
                total.lock().unwrap_or_else(|e| e.into_inner()).merge(local);
            });
        }
    });
    let mut total = total.into_inner().unwrap_or_else(|e| e.into_inner());
    total.failures.sort_by_key(|r| r.seed);
    total
}
