//! The simulated world around one machine: a store that can crash between
//! any two operations, a network, a server that deduplicates by messageId,
//! and the ledger of every event the application ever tracked.
//!
//! The store and the transport are thin handles on one shared [`World`], so
//! a crash can throw away the driver and the machine while the world (what
//! the disk holds, what the server saw) lives on.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::rc::Rc;

use outbox_core::{
    Batch, BatchId, Config, DropReason, Instant, Outcome, Output, Payloads, ReadError,
    RejectReason, Seq, Store, StoreSummary, Transport, HOLE,
};
use outbox_judge::{Answer, Judge};

use super::flash_world::{FlashDisk, Write};
use super::rng::Rng;

/// Payload header: event id (8 bytes, little endian) and a poison flag.
pub const HEADER: usize = 9;

/// A transport gives up on a request after this long.
pub const TRANSPORT_TIMEOUT_MS: u64 = 30_000;

/// Store operations and sends one driver call may make before the run
/// counts as a hang (the machine promises bounded work per call).
pub const MAX_OPS_PER_CALL: u64 = 100_000;

/// The panic message prefix of the hang watchdog.
pub const HANG: &str = "liveness: unbounded work in one driver call";

thread_local! {
    /// The step log and the current step of the seed running on this
    /// thread; kept outside the world so that a panic does not lose them.
    static TRAIL: RefCell<Trail> = RefCell::new(Trail::default());
}

/// What a seed left behind: its step log (with `verbose`) and last step.
#[derive(Default)]
pub struct Trail {
    pub step: u64,
    pub lines: Vec<String>,
}

/// Add a line to this thread's step log.
pub fn trail_push(line: String) {
    TRAIL.with(|t| t.borrow_mut().lines.push(line));
}

/// Record the step this thread's seed is at.
pub fn trail_step(step: u64) {
    TRAIL.with(|t| t.borrow_mut().step = step);
}

/// Take this thread's trail, leaving it empty.
pub fn trail_take() -> Trail {
    TRAIL.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// The world, shared by the store, the transport and the observer.
pub type Shared = Rc<RefCell<World>>;

/// The first broken invariant of a seed.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Which invariant (DESIGN.md numbers them; the rest are named).
    pub invariant: &'static str,
    /// What exactly happened.
    pub detail: String,
}

/// How one tracked event ended, as far as anyone reported.
#[derive(Clone, Debug, Default)]
pub struct Ev {
    pub size: u32,
    pub poison: bool,
    /// Tracked as critical.
    pub critical: bool,
    /// Track refused it: too large.
    pub refused_too_large: bool,
    /// Track refused it: queue full under `RejectNew`.
    pub refused_full: bool,
    /// The machine reported it delivered.
    pub reported_delivered: bool,
    /// The machine reported it dropped.
    pub dropped: Option<DropReason>,
    /// The machine reported it rejected by the server.
    pub rejected: Option<RejectReason>,
    /// A crash lost its record before any sync made it durable.
    pub lost_unsynced: bool,
    /// How many committed batches at the server held it.
    pub server: u32,
    /// A re-send of it would be explained (its last receipt's response was
    /// lost, or a crash came before its delete).
    pub may_resend: bool,
    /// The wall-clock stamp its record was appended with.
    pub stamp: Option<u64>,
}

/// The simulated server's health.
#[derive(Clone, Debug, Default)]
pub struct Server {
    /// Answer 401/403 until then.
    pub auth_until: u64,
    pub auth_status: u16,
    /// Answer 503 until then.
    pub down_until: u64,
    /// Per mille of requests answered 5xx.
    pub p_5xx: u32,
    /// Per mille answered 429.
    pub p_429: u32,
    /// Per mille of responses lost after the server handled the request.
    pub p_lost: u32,
    /// Per mille of requests that fail before reaching the server.
    pub p_pre_fail: u32,
    /// Per mille of requests that take long (possibly past the transport timeout).
    pub p_slow: u32,
    /// Per mille of requests never answered at all (only the machine's
    /// in-flight deadline ends them).
    pub p_silent: u32,
    /// The server's own limit on a batch's bytes (413 above it).
    pub max_bytes: u64,
    /// Newest event id committed for the first time (order check).
    pub last_first_commit: Option<u64>,
    /// Committed batches.
    pub batches: u64,
}

impl Server {
    /// No more faults; the byte limit stays.
    pub fn heal(&mut self) {
        self.auth_until = 0;
        self.down_until = 0;
        self.p_5xx = 0;
        self.p_429 = 0;
        self.p_lost = 0;
        self.p_pre_fail = 0;
        self.p_slow = 0;
        self.p_silent = 0;
    }
}

/// A stored record; its bytes are a function of the event.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    pub event: u64,
    pub size: u32,
}

/// A request the transport is carrying.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: BatchId,
    pub events: Vec<u64>,
    pub outcome: Outcome,
    pub at: u64,
    pub committed: bool,
}

/// Everything that outlives a crash, and the checks' bookkeeping.
pub struct World {
    pub rng: Rng,
    pub now: u64,
    pub verbose: bool,
    pub violation: Option<Violation>,

    pub cfg: Config,
    pub events: Vec<Ev>,
    /// Which event each live sequence number carries.
    pub seq_map: BTreeMap<Seq, u64>,
    /// The event being tracked right now (append checks its payload).
    pub tracking: Option<u64>,
    /// The append under way came through `append_critical`.
    pub appending_critical: bool,
    /// The append under way came through `append_stamped` with this stamp.
    pub appending_stamp: Option<u64>,
    /// Numbers discarded from the middle of the queue, until a delete
    /// passes them (read back as `DISCARDED`).
    pub discarded: std::collections::BTreeSet<Seq>,

    // store
    /// The newest wall-clock stamp of any record ever made durable (the
    /// std store's `meta.stamp_high`, committed with the records): the
    /// adapter hands it to the next life's machine as its first wall
    /// clock, so a clock set back while stopped expires nothing early.
    /// `None` until a stamped record is durable.
    pub stamp_high: Option<u64>,
    pub durable: VecDeque<(Seq, Rec)>,
    pub volatile: Vec<(Seq, Rec)>,
    pub group_commit: bool,
    /// One past the highest sequence number ever durably stored.
    pub floor: Seq,
    pub ops_until_crash: Option<u32>,
    pub crashed: bool,
    /// Per mille of appends and syncs that fail (disk full).
    pub p_disk_full: u32,
    /// Per mille of reads that fail.
    pub p_read_fail: u32,

    // network and server
    pub network_up: bool,
    /// The kind of network the platform reports (the transport works on
    /// any kind; the upload policy is the machine's to keep).
    pub network_kind: outbox_core::NetworkKind,
    /// The platform reports power save.
    pub power_save: bool,
    pub server: Server,
    pub in_flight: Option<Request>,
    pub duplicates: u64,

    /// The rules every drop, rejection, halt, retry and send is judged
    /// by, from the simulator's own bookkeeping (invariant 5).
    pub judge: Judge,
    /// Timer wake-ups the machine asked for and got.
    pub ticks: u64,
    /// Store operations and sends in the current driver call.
    pub ops_this_call: u64,
    /// The flash world's flash queue (`None`: the model store alone).
    pub flash: Option<FlashDisk>,
}

/// A store failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErr {
    /// The process died at this operation.
    Crashed,
    /// Disk full or I/O error.
    Failed,
}

/// A transport that could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportErr;

impl World {
    pub fn new(seed: u64, cfg: Config, verbose: bool) -> Self {
        World {
            rng: Rng::new(seed, 2),
            now: 0,
            verbose,
            violation: None,
            cfg,
            events: Vec::new(),
            seq_map: BTreeMap::new(),
            tracking: None,
            stamp_high: None,
            durable: VecDeque::new(),
            volatile: Vec::new(),
            group_commit: false,
            floor: 0,
            appending_critical: false,
            appending_stamp: None,
            discarded: Default::default(),
            ops_until_crash: None,
            crashed: false,
            p_disk_full: 0,
            p_read_fail: 0,
            network_up: true,
            network_kind: outbox_core::NetworkKind::Unknown,
            power_save: false,
            server: Server {
                max_bytes: u64::MAX,
                ..Server::default()
            },
            in_flight: None,
            duplicates: 0,
            judge: Judge::new(
                outbox_judge::Limits::default(),
                outbox_judge::Mode::Immediate,
                true,
            ),
            ticks: 0,
            ops_this_call: 0,
            flash: None,
        }
    }

    /// Record the first violation of the seed.
    pub fn fail(&mut self, invariant: &'static str, detail: String) {
        if self.verbose {
            trail_push(format!("  !! VIOLATION {invariant}: {detail}"));
        }
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant, detail });
        }
    }

    pub fn note(&mut self, f: impl FnOnce() -> String) {
        if self.verbose {
            let line = f();
            trail_push(format!("  {line}"));
        }
    }

    /// The payload bytes of an event.
    pub fn payload(&self, event: u64) -> Vec<u8> {
        let ev = &self.events[event as usize];
        let mut p = vec![(event % 251) as u8; ev.size as usize];
        p[..8].copy_from_slice(&event.to_le_bytes());
        p[8] = u8::from(ev.poison);
        p
    }

    fn fill(&self, event: u64, out: &mut [u8]) {
        out.fill((event % 251) as u8);
        out[..8].copy_from_slice(&event.to_le_bytes());
        out[8] = u8::from(self.events[event as usize].poison);
    }

    /// Wire bytes of a batch holding events of these sizes.
    pub fn wire_bytes(&self, sizes: impl Iterator<Item = u32>) -> u64 {
        let mut n = 0u64;
        let mut bytes = 0u64;
        for s in sizes {
            n += 1;
            bytes += u64::from(s);
        }
        u64::from(self.cfg.batch_envelope_bytes())
            + n * u64::from(self.cfg.event_envelope_bytes())
            + bytes
    }

    /// Count one operation of the current driver call; a call that never
    /// ends is a bug in the machine or the driver, reported by a panic the
    /// runner turns into a liveness violation (the call cannot be left).
    fn watchdog(&mut self) {
        self.ops_this_call += 1;
        if self.ops_this_call > MAX_OPS_PER_CALL {
            panic!("{HANG}: {MAX_OPS_PER_CALL} store operations and sends");
        }
    }

    pub(super) fn gate(&mut self) -> Result<(), StoreErr> {
        self.watchdog();
        if self.crashed {
            return Err(StoreErr::Crashed);
        }
        if let Some(n) = self.ops_until_crash {
            if n == 0 {
                self.crashed = true;
                self.ops_until_crash = None;
                self.note(|| "store: CRASH at this operation".into());
                return Err(StoreErr::Crashed);
            }
            self.ops_until_crash = Some(n - 1);
        }
        Ok(())
    }

    fn last_stored_seq(&self) -> Option<Seq> {
        self.volatile
            .last()
            .map(|(s, _)| *s)
            .or_else(|| self.durable.back().map(|(s, _)| *s))
    }

    /// Whether an event's fate is settled for the application: the server
    /// has it, or it was reported dropped or rejected.
    fn finished(&self, event: u64) -> bool {
        let ev = &self.events[event as usize];
        ev.server > 0 || ev.dropped.is_some() || ev.rejected.is_some()
    }

    /// `recs` are durable now: their stamps count for [`World::stamp_high`].
    fn note_durable(&mut self, recs: &[(Seq, Rec)]) {
        for (_, r) in recs {
            if let Some(t) = self.events[r.event as usize].stamp {
                self.stamp_high = Some(self.stamp_high.map_or(t, |h| h.max(t)));
            }
        }
    }

    /// A crash: keep what the disk holds, forget everything in flight.
    pub fn crash(&mut self) {
        self.flash_reopen();
        // Unsynced appends: a prefix may have reached the disk.
        let keep = self.rng.below(self.volatile.len() as u64 + 1) as usize;
        let lost: Vec<(Seq, Rec)> = self.volatile.drain(keep..).collect();
        let kept: Vec<(Seq, Rec)> = self.volatile.drain(..).collect();
        if let Some((s, _)) = kept.last() {
            self.floor = self.floor.max(s + 1);
        }
        self.note_durable(&kept);
        self.durable.extend(kept);
        if self.flash.is_none() && self.rng.chance(100) {
            // The store saw numbers past its newest intact record (records
            // written and found torn at the reopen): its floor is ahead of
            // its newest record, and numbering must continue there, also
            // with a queue that is not empty.
            let skip = 1 + self.rng.below(40);
            self.floor = self.floor.max(self.durable.back().map_or(0, |r| r.0 + 1)) + skip;
            self.note(|| format!("store: its floor jumps {skip} past its newest record"));
        }
        for (_, r) in &lost {
            self.events[r.event as usize].lost_unsynced = true;
        }
        // Everything still stored will be pending again: a re-send of it is
        // explained.
        for (_, r) in &self.durable {
            let ev = &mut self.events[r.event as usize];
            if ev.server > 0 {
                ev.may_resend = true;
            }
        }
        // A request in flight is gone with the process; if the server
        // committed it, its records are still stored (handled above) or
        // were deleted (nothing to re-send).
        self.in_flight = None;
        self.crashed = false;
        self.ops_until_crash = None;
        self.tracking = None;
        self.seq_map = self.durable.iter().map(|(s, r)| (*s, r.event)).collect();
        let (n, lost_n) = (self.durable.len(), lost.len());
        self.note(|| format!("crash: {n} records survive, {lost_n} unsynced lost"));
    }

    /// Apply an output the machine reported, checking it against the truth.
    pub fn observe(&mut self, o: &Output) {
        self.judge_output(o);
        match *o {
            Output::Delivered { first, last } => {
                self.note(|| format!("out: delivered {first}..={last}"));
                for seq in first..=last {
                    let Some(&e) = self.seq_map.get(&seq) else {
                        self.fail("protocol", format!("delivered unknown seq {seq}"));
                        continue;
                    };
                    if self.events[e as usize].server == 0 {
                        self.fail(
                            "1-lost",
                            format!("seq {seq} (event {e}) reported delivered but the server never committed it"),
                        );
                    }
                    self.events[e as usize].reported_delivered = true;
                }
            }
            Output::Dropped {
                first,
                last,
                reason,
            } => {
                self.note(|| format!("out: dropped {first}..={last} {reason:?}"));
                if reason == DropReason::Damaged {
                    // This store damages nothing: a hole is a number it
                    // never held (spent by an earlier life of the machine).
                    let held: Vec<Seq> = self
                        .durable
                        .iter()
                        .chain(self.volatile.iter())
                        .map(|(s, _)| *s)
                        .filter(|s| (first..=last).contains(s))
                        .collect();
                    if !held.is_empty() {
                        self.fail("1-lost", format!("stored seqs {held:?} dropped as damaged"));
                    }
                    // The flash world's bit rot did damage these.
                    self.flash_damage_reported(first, last);
                    return;
                }
                for seq in first..=last {
                    let Some(&e) = self.seq_map.get(&seq) else {
                        self.fail("protocol", format!("dropped unknown seq {seq}"));
                        continue;
                    };
                    self.events[e as usize].dropped.get_or_insert(reason);
                }
            }
            Output::Rejected {
                seq,
                status,
                reason,
            } => {
                self.note(|| format!("out: rejected {seq} {status} {reason:?}"));
                let Some(&e) = self.seq_map.get(&seq) else {
                    self.fail("protocol", format!("rejected unknown seq {seq}"));
                    return;
                };
                let ev = self.events[e as usize].clone();
                let wire = self.wire_bytes(std::iter::once(ev.size));
                let justified = match reason {
                    RejectReason::Poison => ev.poison && matches!(status, 400 | 422),
                    RejectReason::TooLarge => wire > self.server.max_bytes && status == 413,
                    _ => false,
                };
                if !justified {
                    self.fail(
                        "1-lost",
                        format!(
                            "event {e} (seq {seq}, {} bytes, poison {}) rejected {status} {reason:?} without cause",
                            ev.size, ev.poison
                        ),
                    );
                }
                if ev.server > 0 {
                    self.fail(
                        "1-lost",
                        format!("event {e} rejected although the server committed it"),
                    );
                }
                self.events[e as usize].rejected = Some(reason);
            }
            Output::RetryScheduled { at, attempt, cause } => {
                self.note(|| format!("out: retry #{attempt} at {} ({cause:?})", at.as_millis()))
            }
            Output::Halted { status, reason } => {
                self.note(|| format!("out: halted {status} ({reason:?})"))
            }
            Output::Commit => self.note(|| "out: commit".to_string()),
            Output::ReadSizes { from, max } => {
                self.note(|| format!("out: read {max} sizes from {from}"))
            }
            Output::Persist { seq, size } => self.note(|| format!("out: persist {seq} ({size} B)")),
            Output::Delete { through } => self.note(|| format!("out: delete through {through}")),
            Output::Discard { seq } => self.note(|| format!("out: discard {seq}")),
            Output::FindFresh { after_ms } => {
                self.note(|| format!("out: find the oldest stamped at or after {after_ms}"))
            }
            Output::Send(b) => self.note(|| {
                format!(
                    "out: send #{} {}..={} ({} events, {} B)",
                    b.id, b.first, b.last, b.count, b.bytes
                )
            }),
        }
    }

    /// Hand an output to the judge, in its terms.
    fn judge_output(&mut self, o: &Output) {
        let Some(seen) = outbox_core::judged::seen(o) else {
            return;
        };
        if let Err(b) = self.judge.seen(&seen) {
            self.fail(b.invariant, b.detail);
        }
        if let Output::Send(b) = *o {
            if self.in_flight.as_ref().is_none_or(|r| r.id != b.id) {
                // The driver could not read the batch from the store (the
                // simulated store's only local failure): no attempt spent.
                self.judge.read_failed();
            }
        }
    }

    /// The server handles a batch at `now`; returns the status and whether
    /// it committed.
    fn serve(&mut self, events: &[u64], wire: u64) -> (u16, Option<u64>, bool) {
        let now = self.now;
        let s = &self.server;
        if s.auth_until > now {
            return (s.auth_status, None, false);
        }
        if wire > s.max_bytes {
            return (413, None, false);
        }
        if events.iter().any(|e| self.events[*e as usize].poison) {
            // Segment answers 400; other collectors 422.
            let status = if events.len().is_multiple_of(3) {
                422
            } else {
                400
            };
            return (status, None, false);
        }
        if s.down_until > now {
            let ra = self
                .rng
                .chance(300)
                .then(|| s.down_until.saturating_sub(now));
            return (503, ra, false);
        }
        let (p_5xx, p_429) = (s.p_5xx, s.p_429);
        if self.rng.chance(p_5xx) {
            let status = [500, 502, 503, 504, 408][self.rng.below(5) as usize];
            return (status, None, false);
        }
        if self.rng.chance(p_429) {
            let ra = match self.rng.below(3) {
                0 => None,
                1 => Some(self.rng.range(0, 5_000)),
                _ => Some(self.rng.range(0, 120_000)),
            };
            return (429, ra, false);
        }
        // Commit: dedup by messageId, order check on first commits.
        self.server.batches += 1;
        for &e in events {
            let ev = &mut self.events[e as usize];
            if ev.server == 0 {
                ev.server = 1;
                ev.may_resend = false;
                if let Some(prev) = self.server.last_first_commit {
                    if e <= prev {
                        self.fail(
                            "2-order",
                            format!("server got event {e} for the first time after event {prev}"),
                        );
                    }
                }
                self.server.last_first_commit = Some(e);
            } else {
                ev.server += 1;
                self.duplicates += 1;
                if !ev.may_resend {
                    self.fail(
                        "2-duplicate",
                        format!(
                            "event {e} re-sent although its last delivery was acknowledged and no crash came before its delete"
                        ),
                    );
                }
                self.events[e as usize].may_resend = false;
            }
        }
        let status = [200, 200, 200, 201, 202, 204][self.rng.below(6) as usize];
        (status, None, true)
    }

    /// Carry a request until `at` (`u64::MAX`: forever).
    fn carry(
        &mut self,
        id: BatchId,
        events: Vec<u64>,
        outcome: Outcome,
        at: u64,
        committed: bool,
    ) -> Result<(), TransportErr> {
        self.note(|| format!("net: batch #{id} -> {outcome:?} at {at} ms (committed {committed})"));
        self.in_flight = Some(Request {
            id,
            events,
            outcome,
            at,
            committed,
        });
        Ok(())
    }

    /// The machine gave up on the request in flight (its deadline passed,
    /// the judge says): like a real transport, drop it; a late answer
    /// would name a batch nobody waits for.
    pub fn abandon_overdue(&mut self) {
        if self.judge.in_flight() || self.in_flight.is_none() {
            return;
        }
        if let Some(r) = self.in_flight.take() {
            if r.committed {
                for e in &r.events {
                    self.events[*e as usize].may_resend = true;
                }
            }
            self.note(|| format!("net: batch #{} abandoned", r.id));
        }
    }

    /// The network went down: a request in flight fails now.
    pub fn network_down(&mut self) {
        self.network_up = false;
        let now = self.now;
        if let Some(r) = self.in_flight.as_mut() {
            let batch = match r.outcome {
                Outcome::Response { batch, .. } | Outcome::Failed { batch } => batch,
            };
            if r.at > now {
                r.outcome = Outcome::Failed { batch };
                r.at = now + 1;
            }
        }
    }

    /// When the transport next has news.
    pub fn transport_due(&self) -> Option<u64> {
        self.in_flight.as_ref().map(|r| r.at)
    }

    /// The stored records as `(seq, size)` in order, a number written twice
    /// counted once (its newest copy).
    fn logical_records(&self) -> Vec<(Seq, u32)> {
        let mut by_seq = BTreeMap::new();
        for (s, r) in self.durable.iter().chain(self.volatile.iter()) {
            by_seq.insert(*s, r.size);
        }
        by_seq.into_iter().collect()
    }

    /// Store records: count and bytes.
    pub fn stored(&self) -> (usize, u64) {
        let it = self.durable.iter().chain(self.volatile.iter());
        let mut n = 0;
        let mut b = 0;
        for (_, r) in it {
            n += 1;
            b += u64::from(r.size);
        }
        (n, b)
    }
}

/// The simulated store: a handle on the world's disk.
pub struct SimStore(pub Shared);

impl Store for SimStore {
    type Error = StoreErr;

    const KEEPS_CRITICAL: bool = true;

    fn append_critical(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreErr> {
        self.0.borrow_mut().appending_critical = true;
        let r = self.append(seq, payload);
        self.0.borrow_mut().appending_critical = false;
        r
    }

    fn append_stamped(
        &mut self,
        seq: Seq,
        payload: &[u8],
        critical: bool,
        stamp_ms: u64,
    ) -> Result<(), StoreErr> {
        self.0.borrow_mut().appending_stamp = Some(stamp_ms);
        let r = if critical {
            self.append_critical(seq, payload)
        } else {
            self.append(seq, payload)
        };
        self.0.borrow_mut().appending_stamp = None;
        r
    }

    fn first_fresh(&mut self, after_ms: u64) -> Result<Option<Seq>, StoreErr> {
        let w = self.0.borrow();
        Ok(Some(
            w.durable
                .iter()
                .chain(w.volatile.iter())
                .find(|(_, r)| {
                    w.events[r.event as usize]
                        .stamp
                        .is_none_or(|t| t >= after_ms)
                })
                .map_or(Seq::MAX, |(s, _)| *s),
        ))
    }

    fn discard(&mut self, seq: Seq) -> Result<(), StoreErr> {
        let mut w = self.0.borrow_mut();
        if let Err(e) = w.gate() {
            w.judge.delete_failed();
            return Err(e);
        }
        let held = w
            .durable
            .iter()
            .chain(w.volatile.iter())
            .find(|(s, _)| *s == seq)
            .map(|(_, r)| r.event);
        match held {
            Some(e) if !w.finished(e) => w.fail(
                "1-lost",
                format!("discard of seq {seq} (event {e}) which is neither delivered, dropped nor rejected"),
            ),
            Some(e) if w.events[e as usize].critical => {
                let pending_plain = w
                    .durable
                    .iter()
                    .chain(w.volatile.iter())
                    .any(|(_, r)| !w.events[r.event as usize].critical && !w.finished(r.event));
                if pending_plain {
                    w.fail(
                        "critical",
                        format!("critical event {e} (seq {seq}) discarded while a non-critical event is pending"),
                    );
                }
            }
            Some(_) => {}
            None => w.fail("protocol", format!("discard {seq}: not stored")),
        }
        w.note(|| format!("store: discard {seq}"));
        w.durable.retain(|(s, _)| *s != seq);
        w.volatile.retain(|(s, _)| *s != seq);
        w.discarded.insert(seq);
        w.floor = w.floor.max(seq + 1);
        Ok(())
    }

    fn newest_critical(&mut self) -> Result<Option<Seq>, StoreErr> {
        let mut w = self.0.borrow_mut();
        w.gate()?;
        Ok(w.durable
            .iter()
            .chain(w.volatile.iter())
            .filter(|(_, r)| w.events[r.event as usize].critical)
            .map(|(s, _)| *s)
            .max())
    }

    fn append(&mut self, seq: Seq, payload: &[u8]) -> Result<(), StoreErr> {
        let mut w = self.0.borrow_mut();
        if let Err(e) = w.gate_write(Write::Append(seq, payload)) {
            // The judge allows a NotStored drop only for appends (and
            // commits) the store really failed.
            w.judge.append_failed(seq);
            return Err(e);
        }
        let p = w.p_disk_full;
        if w.rng.chance(p) {
            w.note(|| format!("store: append {seq} failed (disk full)"));
            w.judge.append_failed(seq);
            return Err(StoreErr::Failed);
        }
        let Some(event) = w.tracking else {
            w.fail("protocol", format!("append {seq} outside a track"));
            return Err(StoreErr::Failed);
        };
        if w.events[event as usize].critical != w.appending_critical {
            w.fail(
                "critical",
                format!(
                    "append {seq}: event {event}'s critical flag is not what the driver stored"
                ),
            );
        }
        if payload != w.payload(event).as_slice() {
            w.fail(
                "protocol",
                format!("append {seq}: payload is not event {event}'s"),
            );
        }
        let last = w.last_stored_seq();
        if last.is_some_and(|last| seq <= last) {
            w.fail(
                "protocol",
                format!("append {seq} after {last:?}: not increasing"),
            );
        }
        let rec = Rec {
            event,
            size: payload.len() as u32,
        };
        w.events[event as usize].stamp = w.appending_stamp;
        if w.group_commit {
            w.volatile.push((seq, rec));
        } else {
            w.note_durable(&[(seq, rec)]);
            w.durable.push_back((seq, rec));
            w.floor = w.floor.max(seq + 1);
        }
        w.flash_write(Write::Append(seq, payload))
    }

    fn sync(&mut self) -> Result<(), StoreErr> {
        let mut w = self.0.borrow_mut();
        if let Err(e) = w.gate() {
            w.judge.commit_failed();
            return Err(e);
        }
        let p = w.p_disk_full;
        if !w.volatile.is_empty() && w.rng.chance(p) {
            let n = w.volatile.len();
            w.note(|| format!("store: sync of {n} records failed; rolled back"));
            w.volatile.clear();
            w.judge.commit_failed();
            return Err(StoreErr::Failed);
        }
        w.judge.committed();
        let v: Vec<(Seq, Rec)> = w.volatile.drain(..).collect();
        if let Some((s, _)) = v.last() {
            w.floor = w.floor.max(s + 1);
        }
        w.note_durable(&v);
        w.durable.extend(v);
        Ok(())
    }

    fn read_range(
        &mut self,
        first: Seq,
        last: Seq,
        buf: &mut [u8],
    ) -> Result<usize, ReadError<StoreErr>> {
        let mut w = self.0.borrow_mut();
        w.gate()?;
        let p = w.p_read_fail;
        if w.rng.chance(p) {
            w.note(|| "store: read failed".into());
            return Err(ReadError::Store(StoreErr::Failed));
        }
        let recs: Vec<Rec> = w
            .durable
            .iter()
            .chain(w.volatile.iter())
            .filter(|(s, _)| (first..=last).contains(s))
            .map(|(_, r)| *r)
            .collect();
        let mut n = 0;
        for r in recs {
            let size = r.size as usize;
            if n + size > buf.len() {
                w.fail(
                    "protocol",
                    format!(
                        "read_range {first}..={last}: buffer of {} too small",
                        buf.len()
                    ),
                );
                return Err(ReadError::Store(StoreErr::Failed));
            }
            w.fill(r.event, &mut buf[n..n + size]);
            n += size;
        }
        let ledger = buf[..n].to_vec();
        let read = w.flash_read("read_range", ledger, |q| {
            let n = Store::read_range(q, first, last, buf).map_err(|e| format!("{e:?}"))?;
            Ok(buf[..n].to_vec())
        });
        buf[..read.len()].copy_from_slice(&read);
        Ok(read.len())
    }

    fn delete_through(&mut self, through: Seq) -> Result<(), StoreErr> {
        let mut w = self.0.borrow_mut();
        if let Err(e) = w.gate_write(Write::Delete(through)) {
            // The machine halts for storage until a resume.
            w.judge.delete_failed();
            return Err(e);
        }
        let doomed: Vec<(Seq, u64)> = w
            .durable
            .iter()
            .chain(w.volatile.iter())
            .take_while(|(s, _)| *s <= through)
            .map(|(s, r)| (*s, r.event))
            .collect();
        for (seq, e) in doomed {
            if !w.finished(e) {
                w.fail(
                    "1-lost",
                    format!("delete through {through} removes seq {seq} (event {e}) which is neither delivered, dropped nor rejected"),
                );
            }
        }
        w.durable.retain(|(s, _)| *s > through);
        w.volatile.retain(|(s, _)| *s > through);
        w.discarded.retain(|s| *s > through);
        w.flash_write(Write::Delete(through))
    }

    fn summary(&mut self) -> Result<StoreSummary, StoreErr> {
        let mut w = self.0.borrow_mut();
        w.gate()?;
        let recs = w.logical_records();
        let ledger = match (recs.first(), recs.last()) {
            (Some(f), Some(l)) => StoreSummary {
                count: recs.len() as u64,
                bytes: recs.iter().map(|(_, size)| u64::from(*size)).sum(),
                first: f.0,
                last: l.0,
            },
            _ => StoreSummary::EMPTY,
        };
        Ok(w.flash_summary(ledger))
    }

    fn read_sizes(&mut self, from: Seq, out: &mut [u32]) -> Result<usize, StoreErr> {
        let mut w = self.0.borrow_mut();
        if let Err(e) = w.gate() {
            // Asked again after a local backoff.
            w.judge.sizes_unavailable();
            return Err(e);
        }
        // The store contract v3: one size per number up to the store's
        // end, a HOLE for a number without a record (a spent number).
        let recs: BTreeMap<Seq, u32> = w.logical_records().into_iter().collect();
        let critical: std::collections::BTreeSet<Seq> = w
            .durable
            .iter()
            .chain(w.volatile.iter())
            .filter(|(_, r)| w.events[r.event as usize].critical)
            .map(|(s, _)| *s)
            .collect();
        let end = recs.keys().next_back().map_or(from, |l| l + 1);
        let mut n = 0;
        for (seq, o) in (from..end).zip(out.iter_mut()) {
            *o = match recs.get(&seq) {
                Some(&size) if critical.contains(&seq) => size | outbox_core::CRITICAL,
                Some(&size) => size,
                None if w.discarded.contains(&seq) => outbox_core::DISCARDED,
                None => HOLE,
            };
            n += 1;
        }
        let ledger = out[..n].to_vec();
        let read = w.flash_read("read_sizes", ledger, |q| {
            let n = Store::read_sizes(q, from, out).map_err(|e| e.to_string())?;
            Ok(out[..n].to_vec())
        });
        out[..read.len()].copy_from_slice(&read);
        Ok(read.len())
    }

    fn seq_floor(&mut self) -> Result<Seq, StoreErr> {
        let mut w = self.0.borrow_mut();
        w.gate()?;
        let floor = w.floor;
        Ok(w.flash_read("seq_floor", floor, |q| {
            Store::seq_floor(q).map_err(|e| e.to_string())
        }))
    }

    fn reject(&mut self, seq: Seq, _status: u16, _reason: RejectReason) -> Result<(), StoreErr> {
        let mut w = self.0.borrow_mut();
        w.gate()?;
        let stored = w
            .durable
            .iter()
            .chain(w.volatile.iter())
            .any(|(s, _)| *s == seq);
        if !stored {
            w.fail("protocol", format!("reject {seq}: not stored"));
        }
        Ok(())
    }
}

/// The simulated transport: a handle on the world's network and server.
pub struct SimTransport(pub Shared);

impl Transport for SimTransport {
    type Error = TransportErr;

    fn send(
        &mut self,
        now: Instant,
        batch: &Batch,
        payloads: Payloads<'_>,
    ) -> Result<(), TransportErr> {
        let mut w = self.0.borrow_mut();
        let now = now.as_millis();
        w.now = now;
        w.watchdog();
        w.abandon_overdue();
        if w.in_flight.is_some() {
            w.fail(
                "protocol",
                format!("send #{} while a batch is in flight", batch.id),
            );
        }
        // The batch: contiguous, oldest first, durable, within the limits.
        let mut events = Vec::with_capacity(batch.count as usize);
        let mut sizes = Vec::with_capacity(batch.count as usize);
        let mut expect = batch.first;
        for (seq, bytes) in payloads {
            if seq != expect || bytes.len() < HEADER {
                w.fail(
                    "2-order",
                    format!(
                        "batch #{}: payload for seq {seq} malformed or out of place",
                        batch.id
                    ),
                );
                return Ok(());
            }
            expect += 1;
            let e = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
            if e >= w.events.len() as u64 {
                w.fail(
                    "1-lost",
                    format!(
                        "batch #{}: seq {seq} carries bytes of no tracked event",
                        batch.id
                    ),
                );
                return Ok(());
            }
            let durable = w.durable.iter().any(|(s, r)| *s == seq && r.event == e);
            if !durable || bytes != w.payload(e).as_slice() {
                w.fail(
                    "1-lost",
                    format!(
                        "batch #{} names seq {seq} (event {e}) which is not durably stored as sent",
                        batch.id
                    ),
                );
            }
            events.push(e);
            sizes.push(bytes.len() as u32);
        }
        let count = events.len() as u32;
        let wire = w.wire_bytes(sizes.iter().copied());
        let first_stored = w.durable.front().map(|(s, _)| *s);
        if count != batch.count || expect != batch.last + 1 {
            w.fail(
                "protocol",
                format!(
                    "batch #{} says {} events {}..={}, carries {count}",
                    batch.id, batch.count, batch.first, batch.last
                ),
            );
        } else if count > w.cfg.max_batch_events()
            || (count > 1 && wire > u64::from(w.cfg.max_batch_bytes()))
            || u64::from(batch.bytes) != wire
        {
            w.fail(
                "3-limits",
                format!(
                    "batch #{}: {count} events, {wire} wire bytes (says {}) over the batch limits",
                    batch.id, batch.bytes
                ),
            );
        } else if first_stored != Some(batch.first) {
            w.fail(
                "2-order",
                format!(
                    "batch #{} starts at {} but the oldest stored event is {first_stored:?}",
                    batch.id, batch.first
                ),
            );
        }
        // The request's fate.
        let (outcome, at, committed) = if !w.network_up {
            let at = now + w.rng.range(1, 50);
            (Outcome::Failed { batch: batch.id }, at, false)
        } else {
            let p_pre = w.server.p_pre_fail;
            let p_slow = w.server.p_slow;
            let p_silent = w.server.p_silent;
            let p_lost = w.server.p_lost;
            let latency = if w.rng.chance(p_slow) {
                w.rng.range(2_000, 2 * TRANSPORT_TIMEOUT_MS)
            } else {
                w.rng.range(5, 500)
            };
            if w.rng.chance(p_pre) {
                (
                    Outcome::Failed { batch: batch.id },
                    now + latency.min(TRANSPORT_TIMEOUT_MS),
                    false,
                )
            } else {
                let (status, retry_after, committed) = w.serve(&events, wire);
                let lost = latency > TRANSPORT_TIMEOUT_MS || w.rng.chance(p_lost);
                if w.rng.chance(p_silent) {
                    // Handled (maybe committed), never answered.
                    return w.carry(
                        batch.id,
                        events,
                        Outcome::Failed { batch: batch.id },
                        u64::MAX,
                        committed,
                    );
                }
                let outcome = if lost {
                    Outcome::Failed { batch: batch.id }
                } else {
                    Outcome::Response {
                        batch: batch.id,
                        status,
                        retry_after: retry_after.map(core::time::Duration::from_millis),
                    }
                };
                (outcome, now + latency.min(TRANSPORT_TIMEOUT_MS), committed)
            }
        };
        w.carry(batch.id, events, outcome, at, committed)
    }

    fn poll_outcome(&mut self, now: Instant) -> Option<Outcome> {
        let mut w = self.0.borrow_mut();
        if w.in_flight.as_ref().is_none_or(|r| r.at > now.as_millis()) {
            return None;
        }
        let r = w.in_flight.take()?;
        match r.outcome {
            Outcome::Failed { .. } => {
                if r.committed {
                    for e in &r.events {
                        w.events[*e as usize].may_resend = true;
                    }
                }
                w.judge.answer(Answer::Failed);
            }
            Outcome::Response {
                status,
                retry_after,
                ..
            } => w.judge.answer(Answer::Status {
                status,
                retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
            }),
        }
        w.note(|| format!("net: outcome {:?}", r.outcome));
        Some(r.outcome)
    }
}

/// Formats a short description of the store for the log.
pub fn describe_store(w: &World) -> String {
    let mut s = String::new();
    let (n, b) = w.stored();
    let _ = write!(s, "{n} records/{b} B");
    if !w.volatile.is_empty() {
        let _ = write!(s, " ({} unsynced)", w.volatile.len());
    }
    s
}
