//! One seed: a random life of one device, then healing, then the books.

use std::cell::RefCell;
use std::rc::Rc;

use outbox_core::{
    Config, Driver, DriverError, FlushMode, InputError, Instant, Lifecycle, Machine, NetworkKind,
    Observer, Output, Overflow, UploadPolicy,
};

use outbox_judge::{Judge, Kind, Limits, Mode, TrackVerdict};

use super::flash_world::{FlashDisk, WorldKind};
use super::rng::Rng;
use super::world::{
    describe_store, trail_push, trail_step, trail_take, Shared, SimStore, SimTransport, StoreErr,
    Violation, World, HEADER,
};

/// Capacity of the simulated machine (most pending events).
pub const CAP: usize = 64;

/// Steps one seed may spend healing before it counts as stuck.
const HEAL_STEPS: u64 = 50_000;

type SimDriver<'b, O> = Driver<'b, SimStore, SimTransport, O, CAP>;

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct SeedResult {
    pub seed: u64,
    pub steps: u64,
    pub events: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub crashes: u64,
    /// Timer wake-ups (ticks at the machine's `poll_timeout`).
    pub wakeups: u64,
    /// Dropped events by why: overflow, queue full (RejectNew), max
    /// attempts, not stored, lost unsynced in a crash, expired.
    pub drops: [u64; 6],
    /// Flash world only: bits flipped, records lost to them, and losses
    /// the store contract cannot report (at the edges of the queue).
    pub rot: [u64; 3],
    /// The step and the invariant, if one broke.
    pub violation: Option<(u64, Violation)>,
    /// The step log (with `verbose`).
    pub log: Vec<String>,
}

/// The limits a machine is built with.
#[derive(Clone, Copy, Debug)]
struct Params {
    mode: FlushMode,
    period: u64,
    commit_delay: u64,
    threshold: Option<u32>,
    queue_events: u32,
    queue_bytes: u64,
    event_bytes: u32,
    batch_events: u32,
    batch_bytes: u32,
    envelope: (u32, u32),
    overflow: Overflow,
    retry: (u64, u64),
    max_attempts: Option<u32>,
    max_retry_after: u64,
    request_timeout: u64,
    max_rejections: Option<u32>,
    /// Upload policy `Unmetered` (else `Any`).
    unmetered_only: bool,
    /// `max_event_age` in ms (drawn apart from the life's own stream).
    max_age: Option<u64>,
}

impl Params {
    fn random(rng: &mut Rng) -> Params {
        let event_bytes = rng.range(16, 512) as u32;
        let envelope = (rng.range(0, 64) as u32, rng.range(0, 3) as u32);
        let one = envelope.0 + envelope.1 + event_bytes;
        let queue_events = if rng.chance(300) {
            rng.range(1, 8) as u32
        } else {
            rng.range(8, CAP as u64) as u32
        };
        let queue_bytes = if rng.chance(500) {
            u64::from(event_bytes) * rng.range(1, 40)
        } else {
            u64::from(event_bytes) * 1000
        };
        let base = rng.range(50, 2_000);
        Params {
            mode: random_mode(rng),
            period: rng.range(100, 120_000),
            commit_delay: if rng.chance(300) {
                rng.range(1, 5_000)
            } else {
                0
            },
            threshold: (!rng.chance(300)).then(|| rng.range(1, 30) as u32),
            queue_events,
            queue_bytes,
            event_bytes,
            batch_events: rng.range(1, 20) as u32,
            batch_bytes: one + rng.range(0, u64::from(event_bytes) * 10) as u32,
            envelope,
            overflow: if rng.chance(800) {
                Overflow::DropOldest
            } else {
                Overflow::RejectNew
            },
            retry: (base, base * rng.range(1, 64)),
            max_attempts: rng.chance(300).then(|| rng.range(1, 8) as u32),
            max_retry_after: if rng.chance(300) {
                rng.range(1_000, 600_000)
            } else {
                3_600_000
            },
            request_timeout: if rng.chance(300) {
                rng.range(500, 60_000)
            } else {
                30_000
            },
            max_rejections: match rng.below(10) {
                0 => None,
                1..=3 => Some(rng.range(1, 5) as u32),
                _ => Some(20),
            },
            unmetered_only: rng.chance(300),
            max_age: None,
        }
    }

    /// The same limits, for the judge (built from the parameters, never
    /// read back from the machine).
    fn limits(&self) -> Limits {
        Limits {
            max_queue_events: self.queue_events,
            max_queue_bytes: self.queue_bytes,
            max_event_bytes: self.event_bytes,
            drop_oldest: self.overflow == Overflow::DropOldest,
            max_attempts: self.max_attempts,
            retry_base_ms: self.retry.0,
            retry_cap_ms: self.retry.1,
            max_retry_after_ms: self.max_retry_after,
            request_timeout_ms: Some(self.request_timeout),
            max_consecutive_rejections: self.max_rejections,
            unmetered_only: self.unmetered_only,
        }
    }

    fn config(&self) -> Config {
        Config::builder()
            .flush_mode(self.mode)
            .flush_period(core::time::Duration::from_millis(self.period))
            .max_commit_delay(core::time::Duration::from_millis(self.commit_delay))
            .flush_threshold(self.threshold.map(|t| t.min(self.queue_events)))
            .max_queue_events(self.queue_events)
            .max_queue_bytes(self.queue_bytes)
            .max_event_bytes(self.event_bytes)
            .max_batch_events(self.batch_events)
            .max_batch_bytes(self.batch_bytes)
            .envelope_bytes(self.envelope.0, self.envelope.1)
            .overflow(self.overflow)
            .retry_backoff(
                core::time::Duration::from_millis(self.retry.0),
                core::time::Duration::from_millis(self.retry.1),
            )
            .max_attempts(self.max_attempts)
            .max_retry_after(core::time::Duration::from_millis(self.max_retry_after))
            .request_timeout(core::time::Duration::from_millis(self.request_timeout))
            .max_consecutive_rejections(self.max_rejections)
            .upload_on(if self.unmetered_only {
                UploadPolicy::Unmetered
            } else {
                UploadPolicy::Any
            })
            .max_event_age(self.max_age.map(core::time::Duration::from_millis))
            .build()
            .expect("the simulator builds valid configs")
    }
}

/// A flush mode in the judge's terms.
fn judged_mode(mode: FlushMode) -> Mode {
    match mode {
        FlushMode::Immediate => Mode::Immediate,
        FlushMode::Period => Mode::Period,
        FlushMode::AppClose => Mode::AppClose,
        _ => Mode::Manual,
    }
}

/// A network kind in the judge's terms.
fn judged_kind(kind: NetworkKind) -> Kind {
    match kind {
        NetworkKind::Unmetered => Kind::Unmetered,
        NetworkKind::Metered => Kind::Metered,
        NetworkKind::Unknown => Kind::Unknown,
    }
}

fn random_kind(rng: &mut Rng) -> NetworkKind {
    match rng.below(3) {
        0 => NetworkKind::Unmetered,
        1 => NetworkKind::Metered,
        _ => NetworkKind::Unknown,
    }
}

fn random_mode(rng: &mut Rng) -> FlushMode {
    match rng.below(5) {
        0 | 1 => FlushMode::Immediate,
        2 => FlushMode::Period,
        3 => FlushMode::AppClose,
        _ => FlushMode::Manual,
    }
}

/// How an incarnation (one process lifetime) ended.
enum End {
    Crash,
    Done,
    Violation,
}

/// The actions a seed picks from, by weight.
#[derive(Clone, Copy)]
enum Act {
    Track,
    Burst,
    Flush,
    SetMode,
    SetPeriodOrThreshold,
    Lifecycle,
    NetDown,
    NetUp,
    ServerPhase,
    Resume,
    CrashNow,
    CrashAtOp,
    Sync,
    DiskPhase,
    LongOutage,
    /// The network's kind changes (up or down stays).
    NetKind,
    /// Power save begins or ends.
    PowerSave,
}

const ACTS: [Act; 17] = [
    Act::Track,
    Act::Burst,
    Act::Flush,
    Act::SetMode,
    Act::SetPeriodOrThreshold,
    Act::Lifecycle,
    Act::NetDown,
    Act::NetUp,
    Act::ServerPhase,
    Act::Resume,
    Act::CrashNow,
    Act::CrashAtOp,
    Act::Sync,
    Act::DiskPhase,
    Act::LongOutage,
    Act::NetKind,
    Act::PowerSave,
];

struct Sim {
    rng: Rng,
    world: Shared,
    params: Params,
    /// `max_event_bytes` of the first incarnation (restarts may shrink it).
    first_event_bytes: u32,
    weights: [u32; 17],
    p_poison: u32,
    /// Per mille of tracks that are critical (0 in a flash world: the
    /// flash queue cannot keep the flag and refuses them).
    p_critical: u32,
    /// Draws for critical tracks, apart from the life's own stream.
    critical_rng: Rng,
    max_steps: u64,
    step: u64,
    heal_steps: u64,
    healing: bool,
    now: u64,
    next_action_at: u64,
    crashes: u64,
    /// Draws for wall-clock jumps, apart from the life's own stream.
    expiry_rng: Rng,
    /// How far the wall clock is from `WALL0 + now` (it jumps both ways).
    wall_skew: i64,
}

/// The wall clock at virtual time 0 (ms since the Unix epoch).
const WALL0: u64 = 1_700_000_000_000;

/// Run one seed for `steps` steps (then heal), checking every invariant
/// after every step.
pub fn run_seed(seed: u64, steps: u64, verbose: bool) -> SeedResult {
    run_seed_in(WorldKind::Model, seed, steps, verbose)
}

/// [`run_seed`] in a world of the given kind (the same seed draws the same
/// life in either).
pub fn run_seed_in(kind: WorldKind, seed: u64, steps: u64, verbose: bool) -> SeedResult {
    trail_take();
    let mut rng = Rng::new(seed, 1);
    let mut params = Params::random(&mut rng);
    // Expiry in half the lives, drawn apart from the life's own stream (so
    // a seed draws the same life as before it existed;
    // `OUTBOX_SIM_EXPIRY=0` turns it off, and the lives are those of
    // before it).
    let mut expiry_rng = Rng::new(seed, 9);
    let expiry_on = std::env::var("OUTBOX_SIM_EXPIRY").map_or(true, |v| v != "0");
    if expiry_on && expiry_rng.chance(500) {
        params.max_age = Some(expiry_rng.range(1_000, 900_000));
    }
    let cfg = params.config();
    let mut world = World::new(seed, cfg, verbose);
    world.group_commit = rng.chance(300);
    if kind == WorldKind::Flash {
        // An append on the flash is durable when it returns.
        world.group_commit = false;
        world.flash = Some(FlashDisk::new(seed));
    }
    let one = world.wire_bytes(std::iter::once(params.event_bytes));
    world.server.max_bytes = match rng.below(10) {
        0..=6 => u64::MAX,
        7 | 8 => rng.range(one, u64::from(params.batch_bytes)),
        _ => rng.range(world.wire_bytes(std::iter::once(HEADER as u32)), one),
    };
    let mut weights = [30, 4, 5, 2, 2, 3, 2, 3, 3, 1, 1, 1, 3, 1, 1, 2, 2];
    for w in weights.iter_mut().skip(3) {
        if rng.chance(150) {
            *w = 0;
        }
    }
    if rng.chance(200) {
        // A crash-heavy life.
        weights[10] = 4;
        weights[11] = 6;
    }
    let p_poison = if rng.chance(400) {
        0
    } else {
        rng.range(1, 60) as u32
    };
    // Critical tracks in three worlds of four that keep the flag: up to a
    // few percent of tracks (`OUTBOX_SIM_CRITICAL=<max per mille>` raises
    // the ceiling for a harder run; 0 turns them off).
    let max_critical: u64 = std::env::var("OUTBOX_SIM_CRITICAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut critical_rng = Rng::new(seed, 7);
    let p_critical = match (kind, critical_rng.below(4)) {
        (WorldKind::Flash, _) | (_, 0) => 0,
        _ if max_critical == 0 => 0,
        _ => critical_rng.range(1, max_critical.max(2)) as u32,
    };
    if verbose {
        trail_push(format!(
            "seed {seed}: {params:?}, group commit {}, server max {} B, poison {p_poison}‰, critical {p_critical}‰",
            world.group_commit, world.server.max_bytes
        ));
    }
    let mut sim = Sim {
        rng,
        world: Rc::new(RefCell::new(world)),
        params,
        first_event_bytes: params.event_bytes,
        weights,
        p_poison,
        p_critical,
        critical_rng,
        max_steps: steps,
        step: 0,
        heal_steps: 0,
        healing: false,
        now: 0,
        next_action_at: 0,
        crashes: 0,
        expiry_rng,
        wall_skew: 0,
    };
    sim.next_action_at = sim.gap();
    let mut buf;
    loop {
        buf = vec![0u8; sim.params.batch_bytes as usize];
        let cfg = sim.params.config();
        {
            let mut w = sim.world.borrow_mut();
            w.cfg = cfg;
            let up = w.network_up;
            w.judge
                .restart(sim.params.limits(), judged_mode(sim.params.mode), up);
            w.judge.max_event_age(sim.params.max_age);
        }
        let mut machine = Machine::<CAP>::new(cfg, sim.rng.next_u64()).expect("config fits CAP");
        if sim.params.max_age.is_some() {
            sim.wall_clock_at_start(&mut machine);
        }
        let (up, kind, power_save) = {
            let w = sim.world.borrow();
            (w.network_up, w.network_kind, w.power_save)
        };
        if !up || kind != NetworkKind::Unknown {
            // Told before the driver starts (and sends anything).
            sim.log(|| format!("restart: network up {up}, {kind:?}"));
            sim.judge(|j| j.network_kind(up, judged_kind(kind)));
            machine
                .handle(
                    Instant::from_millis(sim.now),
                    outbox_core::Input::Network { up, kind },
                )
                .expect("network input is always accepted");
        }
        if power_save {
            sim.log(|| "restart: power save".to_string());
            sim.judge(|j| j.power_save(true));
            machine
                .handle(
                    Instant::from_millis(sim.now),
                    outbox_core::Input::PowerSave(true),
                )
                .expect("power save input is always accepted");
        }
        let ow = sim.world.clone();
        let observer = move |o: &Output| ow.borrow_mut().observe(o);
        let mut driver = Driver::new(
            machine,
            SimStore(sim.world.clone()),
            SimTransport(sim.world.clone()),
            &mut buf,
            observer,
        )
        .expect("a batch buffer holds one maximal event");
        let end = sim.incarnation(&mut driver);
        drop(driver);
        match end {
            End::Crash => {
                sim.crashes += 1;
                sim.world.borrow_mut().crash();
                sim.restart_params();
            }
            End::Done | End::Violation => break,
        }
    }
    if sim.world.borrow().violation.is_none() {
        sim.final_books();
    }
    sim.result(seed)
}

impl Sim {
    /// A new life's wall clock, as the std Client starts one: now and then
    /// the clock was set back while the app was stopped (by up to twice
    /// `max_event_age`, so below the newest stamp); and the newest stamp
    /// the store committed (`World::stamp_high`, the std store's
    /// `meta.stamp_high`) is the machine's first wall clock, so that the
    /// jump expires nothing early. The flash queue keeps no such mark (a
    /// documented gap): its world hands none.
    /// How far the wall clock jumps, either way: up to twice `max_event_age`.
    fn wall_jump_ms(&mut self) -> i64 {
        let span = self.params.max_age.unwrap_or(0).saturating_mul(2).max(2);
        self.expiry_rng.range(1, span) as i64
    }

    fn wall_clock_at_start(&mut self, machine: &mut Machine<CAP>) {
        if self.crashes > 0 && self.expiry_rng.chance(300) {
            let by = self.wall_jump_ms();
            self.wall_skew -= by;
            let skew = self.wall_skew;
            self.log(|| format!("restart: the wall clock was set back {by} ms while stopped: skew now {skew} ms"));
        }
        let mark = {
            let w = self.world.borrow();
            if w.flash.is_some() {
                None
            } else {
                w.stamp_high
            }
        };
        if let Some(mark) = mark {
            self.log(|| {
                format!("restart: the store's newest stamp {mark} is the first wall clock")
            });
            self.judge(|j| j.wall_clock(mark));
            machine
                .handle(
                    Instant::from_millis(self.now),
                    outbox_core::Input::WallClock { now_ms: mark },
                )
                .expect("a wall clock is always accepted");
        }
    }

    fn gap(&mut self) -> u64 {
        self.now
            + match self.rng.below(20) {
                0..=11 => self.rng.range(0, 1_000),
                12..=18 => self.rng.range(1_000, 20_000),
                _ => self.rng.range(20_000, 600_000),
            }
    }

    fn log(&self, f: impl FnOnce() -> String) {
        if self.world.borrow().verbose {
            let line = f();
            let now = self.now;
            let step = self.step;
            trail_push(format!("[{step}] t={now} {line}"));
        }
    }

    fn fail(&self, invariant: &'static str, detail: String) {
        self.world.borrow_mut().fail(invariant, detail);
    }

    /// Tell the judge what the simulator is about to do to the machine.
    fn judge(&self, f: impl FnOnce(&mut Judge)) {
        let mut w = self.world.borrow_mut();
        w.judge.at(self.now);
        f(&mut w.judge);
    }

    fn violated(&self) -> bool {
        self.world.borrow().violation.is_some()
    }

    /// After a crash the limits may have changed (an app update).
    fn restart_params(&mut self) {
        if self.rng.chance(150) {
            // Stored events may now be over the event limit: they are
            // still delivered, and new ones are judged by the new limit.
            // It never grows past the first one, which the batch limit and
            // the driver's buffer were sized for.
            self.params.event_bytes = if self.rng.chance(700) {
                self.rng
                    .range(HEADER as u64 + 1, u64::from(self.params.event_bytes))
                    as u32
            } else {
                self.first_event_bytes
            };
            self.params.queue_bytes = self
                .params
                .queue_bytes
                .max(u64::from(self.params.event_bytes));
        }
        if self.rng.chance(200) {
            self.params.queue_events = self.rng.range(1, CAP as u64) as u32;
            self.params.queue_bytes = u64::from(self.params.event_bytes) * self.rng.range(1, 40);
        }
    }

    /// Feed one driver call; returns whether the store crashed in it.
    fn call<O: Observer, R>(
        &mut self,
        d: &mut SimDriver<'_, O>,
        what: &str,
        f: impl FnOnce(
            &mut SimDriver<'_, O>,
            Instant,
        ) -> Result<R, DriverError<StoreErr, super::world::TransportErr>>,
    ) -> (
        bool,
        Result<R, DriverError<StoreErr, super::world::TransportErr>>,
    ) {
        {
            let mut w = self.world.borrow_mut();
            w.now = self.now;
            w.judge.at(self.now);
            w.ops_this_call = 0;
        }
        self.log(|| what.to_string());
        if self.params.max_age.is_some() {
            // The adapter hands the wall clock over before each call; now
            // and then it jumps (forward, or back: NTP, a user).
            if self.expiry_rng.chance(4) {
                let by = self.wall_jump_ms();
                self.wall_skew += if self.expiry_rng.chance(500) { by } else { -by };
                let skew = self.wall_skew;
                self.log(|| format!("wall clock jumps: skew now {skew} ms"));
            }
            let wall = (WALL0 + self.now).saturating_add_signed(self.wall_skew);
            self.world.borrow_mut().judge.wall_clock(wall);
            let _ = d.handle(
                Instant::from_millis(self.now),
                outbox_core::Input::WallClock { now_ms: wall },
            );
        }
        let r = f(d, Instant::from_millis(self.now));
        let crashed = {
            let mut w = self.world.borrow_mut();
            if !w.crashed {
                if let Err(b) = w.judge.settle() {
                    w.fail(b.invariant, b.detail);
                }
                w.abandon_overdue();
            }
            w.crashed
        };
        if let Err(e) = &r {
            self.log(|| format!("  -> error: {e}"));
            match e {
                DriverError::Store(_) | DriverError::Input(_) | DriverError::NotStored => {}
                other => self.fail(
                    "protocol",
                    format!("{what}: unexpected driver error {other}"),
                ),
            }
        }
        (crashed, r)
    }

    /// The network goes up or down as `kind`: the world, the judge and
    /// the machine are told, in that order. Returns whether the store
    /// crashed in the call.
    fn network<O: Observer>(
        &mut self,
        d: &mut SimDriver<'_, O>,
        what: &str,
        up: bool,
        kind: NetworkKind,
    ) -> bool {
        {
            let mut w = self.world.borrow_mut();
            if up {
                w.network_up = true;
            } else {
                w.network_down();
            }
            w.network_kind = kind;
        }
        self.judge(|j| j.network_kind(up, judged_kind(kind)));
        self.call(d, &format!("{what} ({kind:?})"), |d, now| {
            d.handle(now, outbox_core::Input::Network { up, kind })
        })
        .0
    }

    fn incarnation<O: Observer>(&mut self, d: &mut SimDriver<'_, O>) -> End {
        let records: Vec<(u64, u32, bool)> = {
            let w = self.world.borrow();
            w.durable
                .iter()
                .map(|(s, r)| (*s, r.size, w.events[r.event as usize].critical))
                .collect()
        };
        self.judge(|j| j.restore_flagged(records));
        let stamps: Vec<(u64, u64)> = {
            let w = self.world.borrow();
            w.durable
                .iter()
                .filter_map(|(s, r)| Some((*s, w.events[r.event as usize].stamp?)))
                .collect()
        };
        self.judge(|j| stamps.iter().for_each(|&(s, t)| j.restore_stamp(s, t)));
        let (crashed, r) = self.call(d, "start (restore)", |d, now| d.start(now));
        if crashed {
            return End::Crash;
        }
        if let Err(e @ DriverError::Input(_)) = r {
            self.fail("protocol", format!("start failed: {e}"));
            return End::Violation;
        }
        self.check(d, false);
        loop {
            if self.violated() {
                return End::Violation;
            }
            if !self.healing && self.step >= self.max_steps {
                if let Some(end) = self.begin_heal(d) {
                    return end;
                }
                continue;
            }
            let internal = {
                let w = self.world.borrow();
                match (d.poll_timeout().map(Instant::as_millis), w.transport_due()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            self.step += 1;
            trail_step(self.step);
            let mut polled = false;
            let crashed = match internal {
                Some(t) if self.healing || t <= self.next_action_at => {
                    self.now = self.now.max(t);
                    polled = d.poll_timeout().is_some_and(|p| p.as_millis() <= self.now);
                    if polled {
                        self.world.borrow_mut().ticks += 1;
                    }
                    let crashed = self.call(d, "poll", |d, now| d.poll(now)).0;
                    if polled {
                        // The driver ticked the machine (a timer was due).
                        self.world.borrow_mut().judge.tick();
                    }
                    crashed
                }
                _ if self.healing => {
                    self.heal_steps += 1;
                    let st = d.machine().stats();
                    if st.pending_events == 0 && d.machine().in_flight().is_none() {
                        return End::Done;
                    }
                    if st.halted {
                        self.judge(Judge::resume);
                        self.call(d, "heal: resume", |d, now| {
                            d.handle(now, outbox_core::Input::Resume)
                        })
                        .0
                    } else {
                        self.fail(
                            "liveness",
                            format!("{} events pending after healing, and the machine asks for no wake-up", st.pending_events),
                        );
                        return End::Violation;
                    }
                }
                _ => {
                    self.now = self.now.max(self.next_action_at);
                    let r = self.act(d);
                    self.next_action_at = self.gap();
                    match r {
                        Some(End::Crash) => return End::Crash,
                        Some(other) => return other,
                        None => self.world.borrow().crashed,
                    }
                }
            };
            if crashed {
                return End::Crash;
            }
            if self.healing {
                self.heal_steps += 1;
                if self.heal_steps > HEAL_STEPS {
                    let st = d.machine().stats();
                    self.fail(
                        "liveness",
                        format!(
                            "{} events still pending after {HEAL_STEPS} healing steps",
                            st.pending_events
                        ),
                    );
                    return End::Violation;
                }
            }
            self.check(d, polled);
        }
    }

    fn begin_heal<O: Observer>(&mut self, d: &mut SimDriver<'_, O>) -> Option<End> {
        self.healing = true;
        self.log(|| "=== heal: network up, server healthy, no more crashes".into());
        {
            let mut w = self.world.borrow_mut();
            w.ops_until_crash = None;
            w.p_disk_full = 0;
            w.p_read_fail = 0;
            w.server.heal();
        }
        self.judge(|j| {
            j.resume();
            j.flush();
        });
        let _ = self.network(
            d,
            "heal: network up, unmetered",
            true,
            NetworkKind::Unmetered,
        );
        self.world.borrow_mut().power_save = false;
        self.judge(|j| j.power_save(false));
        let _ = self.call(d, "heal: power save off", |d, now| {
            d.handle(now, outbox_core::Input::PowerSave(false))
        });
        let _ = self.call(d, "heal: sync", |d, now| d.sync(now));
        let _ = self.call(d, "heal: resume", |d, now| {
            d.handle(now, outbox_core::Input::Resume)
        });
        let _ = self.call(d, "heal: flush", |d, now| {
            d.handle(now, outbox_core::Input::Flush)
        });
        if self.world.borrow().crashed {
            self.fail("protocol", "the store crashed while healing".into());
            return Some(End::Violation);
        }
        self.check(d, false);
        None
    }

    fn event_size(&mut self, max: u32) -> u32 {
        let max = u64::from(max);
        let small = max.min(64);
        (match self.rng.below(40) {
            0..=23 => self.rng.range(HEADER as u64, small),
            24..=35 => self.rng.range(HEADER as u64, max),
            36 | 37 => max,
            _ => self.rng.range(max + 1, max + 200),
        }) as u32
    }

    /// Track one event; returns whether the store crashed.
    fn track<O: Observer>(&mut self, d: &mut SimDriver<'_, O>) -> bool {
        let size = self.event_size(self.params.event_bytes);
        let poison = self.rng.chance(self.p_poison);
        let critical = self.critical_rng.chance(self.p_critical);
        let seq = d.machine().stats().next_seq;
        let mut verdict = None;
        if critical {
            self.judge(|j| verdict = Some(j.track_critical(size)));
        } else {
            self.judge(|j| verdict = Some(j.track(size)));
        }
        let Some(TrackVerdict {
            too_large,
            fits,
            refused,
            may_refuse,
        }) = verdict
        else {
            unreachable!("the judge gives a verdict");
        };
        let reject_new = self.params.overflow == Overflow::RejectNew;
        let (id, payload) = {
            let mut w = self.world.borrow_mut();
            let id = w.events.len() as u64;
            w.events.push(super::world::Ev {
                size,
                poison,
                critical,
                ..Default::default()
            });
            w.tracking = Some(id);
            w.seq_map.insert(seq, id);
            (id, w.payload(id))
        };
        let world = self.world.clone();
        let (crashed, r) = self.call(
            d,
            &format!(
                "track event {id} ({size} B{}{})",
                if poison { ", poison" } else { "" },
                if critical { ", critical" } else { "" }
            ),
            |d, now| {
                // The checker stamps with its own wall clock (the largest
                // it was given this life, the store's newest stamp first),
                // not the machine's.
                world.borrow_mut().judge.stamp_now();
                let r = if critical {
                    d.track_critical(now, &payload)
                } else {
                    d.track(now, &payload)
                };
                if (refused || may_refuse)
                    && matches!(r, Err(DriverError::Input(InputError::QueueFull)))
                {
                    // Behind critical events: refused rather than dropping
                    // a critical event or one the machine cannot see. The
                    // judge hears it before it settles this input.
                    world.borrow_mut().judge.refused();
                }
                r
            },
        );
        let mut w = self.world.borrow_mut();
        w.tracking = None;
        match r {
            Ok(s) => {
                if s != seq {
                    w.fail(
                        "protocol",
                        format!("event {id} got seq {s}, expected {seq}"),
                    );
                }
                if too_large {
                    w.fail(
                        "3-limits",
                        format!(
                            "event {id} of {size} B accepted over the {}-byte limit",
                            self.params.event_bytes
                        ),
                    );
                }
                if !fits && reject_new {
                    w.fail(
                        "3-limits",
                        format!("event {id} of {size} B accepted by RejectNew, but it did not fit"),
                    );
                }
                if refused {
                    w.fail(
                        "critical",
                        format!("event {id} of {size} B accepted, but it could only fit by dropping a critical event"),
                    );
                }
            }
            Err(DriverError::Input(InputError::TooLarge { .. })) => {
                if !too_large {
                    w.fail(
                        "1-lost",
                        format!("event {id} of {size} B refused as too large"),
                    );
                }
                w.events[id as usize].refused_too_large = true;
                w.seq_map.remove(&seq);
            }
            Err(DriverError::Input(InputError::QueueFull)) if refused || may_refuse => {
                w.events[id as usize].refused_full = true;
                w.seq_map.remove(&seq);
            }
            Err(DriverError::Input(InputError::QueueFull)) => {
                if too_large || fits || !reject_new {
                    w.fail(
                        "1-lost",
                        format!("event {id} of {size} B refused as queue full (fits {fits})"),
                    );
                }
                w.events[id as usize].refused_full = true;
                w.seq_map.remove(&seq);
            }
            Err(_) => {
                if too_large {
                    w.fail(
                        "3-limits",
                        format!("event {id} of {size} B went past the size check"),
                    );
                }
            }
        }
        crashed
    }

    fn act<O: Observer>(&mut self, d: &mut SimDriver<'_, O>) -> Option<End> {
        use outbox_core::Input;
        let act = ACTS[self.rng.weighted(&self.weights)];
        let crashed = match act {
            Act::Track => self.track(d),
            Act::Burst => {
                let n = self.rng.range(2, 20);
                let mut crashed = false;
                for _ in 0..n {
                    crashed = self.track(d);
                    if crashed || self.violated() {
                        break;
                    }
                }
                crashed
            }
            Act::LongOutage => {
                let kind = self.world.borrow().network_kind;
                let mut crashed = self.network(d, "long outage: network down", false, kind);
                let n = self
                    .rng
                    .range(1, 2 * u64::from(self.params.queue_events) + 2);
                for _ in 0..n {
                    if crashed || self.violated() {
                        break;
                    }
                    crashed = self.track(d);
                }
                crashed
            }
            Act::Flush => {
                self.judge(Judge::flush);
                self.call(d, "flush", |d, now| d.handle(now, Input::Flush))
                    .0
            }
            Act::SetMode => {
                let mode = random_mode(&mut self.rng);
                self.judge(|j| j.set_mode(judged_mode(mode)));
                self.call(d, &format!("set mode {mode:?}"), |d, now| {
                    d.handle(now, Input::SetFlushMode(mode))
                })
                .0
            }
            Act::SetPeriodOrThreshold => {
                if self.rng.chance(500) {
                    let millis = self.rng.range(1, 120_000);
                    self.call(d, &format!("set period {millis} ms"), |d, now| {
                        d.handle(
                            now,
                            Input::SetFlushPeriod(core::time::Duration::from_millis(millis)),
                        )
                    })
                    .0
                } else {
                    let t = (!self.rng.chance(200)).then(|| self.rng.range(1, 30) as u32);
                    self.call(d, &format!("set threshold {t:?}"), |d, now| {
                        d.handle(now, Input::SetFlushThreshold(t))
                    })
                    .0
                }
            }
            Act::Lifecycle => {
                let l = [
                    Lifecycle::Foreground,
                    Lifecycle::Background,
                    Lifecycle::Terminate,
                ][self.rng.below(3) as usize];
                if l != Lifecycle::Foreground {
                    self.judge(Judge::closing);
                }
                self.call(d, &format!("lifecycle {l:?}"), |d, now| {
                    d.handle(now, Input::Lifecycle(l))
                })
                .0
            }
            Act::NetDown => {
                let kind = self.world.borrow().network_kind;
                self.network(d, "network down", false, kind)
            }
            Act::NetUp => {
                let kind = self.world.borrow().network_kind;
                self.network(d, "network up", true, kind)
            }
            Act::NetKind => {
                let up = self.world.borrow().network_up;
                let kind = random_kind(&mut self.rng);
                self.network(d, "network kind", up, kind)
            }
            Act::PowerSave => {
                let on = self.rng.chance(500);
                self.world.borrow_mut().power_save = on;
                self.judge(|j| j.power_save(on));
                self.call(d, &format!("power save {on}"), |d, now| {
                    d.handle(now, Input::PowerSave(on))
                })
                .0
            }
            Act::ServerPhase => {
                let now = self.now;
                // One fault at a time; often none. Faults mostly clear up
                // within minutes, sometimes within half an hour.
                let k = self.rng.below(13);
                let mut w = self.world.borrow_mut();
                let p = w.rng.range(100, 700) as u32;
                let until = now
                    + if w.rng.chance(800) {
                        w.rng.range(1_000, 300_000)
                    } else {
                        w.rng.range(300_000, 1_800_000)
                    };
                let s = &mut w.server;
                s.heal();
                let what = match k {
                    0 | 8 | 9 | 10 => "healthy",
                    1 => {
                        s.p_5xx = p;
                        "5xx"
                    }
                    2 => {
                        s.p_429 = p;
                        "429"
                    }
                    3 => {
                        s.auth_until = until;
                        s.auth_status = [401, 403][(p & 1) as usize];
                        "auth broken"
                    }
                    4 => {
                        s.down_until = until;
                        "down"
                    }
                    5 => {
                        s.p_lost = p;
                        "losing responses"
                    }
                    6 => {
                        s.p_pre_fail = p;
                        "unreachable at times"
                    }
                    11 => {
                        s.p_silent = p;
                        "never answering at times"
                    }
                    12 => {
                        // A wrong endpoint or protocol: the table says halt.
                        s.auth_until = until;
                        s.auth_status = [404, 405, 410, 418, 501, 505][(p % 6) as usize];
                        "endpoint broken"
                    }
                    _ => {
                        s.p_slow = p;
                        "slow"
                    }
                };
                drop(w);
                self.log(|| format!("server: {what} ({p}‰, until {until})"));
                false
            }
            Act::Resume => {
                self.judge(Judge::resume);
                self.call(d, "resume", |d, now| d.handle(now, Input::Resume))
                    .0
            }
            Act::CrashNow => {
                self.log(|| "crash between two calls".into());
                return Some(End::Crash);
            }
            Act::CrashAtOp => {
                let n = self.rng.range(0, 6) as u32;
                self.log(|| format!("the store will crash in {n} operations"));
                self.world.borrow_mut().ops_until_crash = Some(n);
                false
            }
            Act::Sync => self.call(d, "sync", |d, now| d.sync(now)).0,
            Act::DiskPhase => {
                let (full, read) = if self.rng.chance(500) {
                    (0, 0)
                } else {
                    (self.rng.range(0, 500) as u32, self.rng.range(0, 100) as u32)
                };
                self.log(|| format!("disk: {full}‰ writes fail, {read}‰ reads fail"));
                let mut w = self.world.borrow_mut();
                w.p_disk_full = full;
                w.p_read_fail = read;
                false
            }
        };
        crashed.then_some(End::Crash)
    }

    /// The invariants that hold after every step.
    fn check<O: Observer>(&mut self, d: &SimDriver<'_, O>, polled: bool) {
        let m = d.machine();
        let st = m.stats();
        let cfg = *m.config();
        let timeout = m.poll_timeout().map(Instant::as_millis);
        let mut w = self.world.borrow_mut();
        if w.verbose {
            let store = describe_store(&w);
            trail_push(format!(
                "  state: pending {}/{} B, in flight {:?}, timeout {timeout:?}, retry_at {:?}, halted {}, flush {}, store {store}",
                st.pending_events,
                st.pending_bytes,
                m.in_flight().map(|b| (b.id, b.first, b.last)),
                st.retry_at.map(Instant::as_millis),
                st.halted,
                st.flush_requested
            ));
        }
        if st.notes_overflowed > 0 {
            w.fail(
                "1-lost",
                format!(
                    "{} notifications lost before the driver drained",
                    st.notes_overflowed
                ),
            );
        }
        if !st.balanced() {
            w.fail("accounting", format!("stats do not add up: {st:?}"));
        }
        if w.judge.critical_flush_owed() && !st.flush_requested {
            w.fail(
                "critical",
                "a critical event waits for its flush, but none is requested".into(),
            );
        }
        if st.pending_events > cfg.max_queue_events() || st.pending_bytes > cfg.max_queue_bytes() {
            w.fail(
                "3-limits",
                format!(
                    "{} pending events / {} B over the limits {} / {}",
                    st.pending_events,
                    st.pending_bytes,
                    cfg.max_queue_events(),
                    cfg.max_queue_bytes()
                ),
            );
        }
        let (n, b) = w.stored();
        if n as u64 > u64::from(cfg.max_queue_events()) || b > cfg.max_queue_bytes() {
            w.fail(
                "3-limits",
                format!("the store holds {n} events / {b} B, over the limits"),
            );
        }
        let last = w
            .volatile
            .last()
            .map(|(s, _)| *s)
            .or(w.durable.back().map(|(s, _)| *s));
        // Numbers of events the store did not keep are spent: the newest
        // record may be older than the machine's newest number.
        if n as u64 != u64::from(st.pending_events) || last.is_some_and(|l| l >= st.next_seq) {
            w.fail(
                "1-lost",
                format!(
                    "the store holds {n} events up to {last:?}, the machine {} pending up to {}",
                    st.pending_events,
                    st.next_seq.wrapping_sub(1)
                ),
            );
        }
        let carrying = w.in_flight.is_some();
        if m.in_flight().is_some() != carrying {
            w.fail(
                "protocol",
                format!(
                    "machine in flight {:?}, transport carrying {carrying}",
                    m.in_flight()
                ),
            );
        }
        // Liveness: an idle machine asks for no wake-up; a backoff is kept.
        if st.pending_events == 0 && m.in_flight().is_none() && timeout.is_some() {
            w.fail(
                "liveness",
                format!("empty queue but a wake-up at {timeout:?}"),
            );
        }
        if let Some(r) = st.retry_at.map(Instant::as_millis) {
            // Earlier wake-ups: the period, or a group commit owed.
            let period = (cfg.flush_mode() == FlushMode::Period && !st.flush_requested)
                || cfg.max_commit_delay() > core::time::Duration::ZERO;
            match timeout {
                None if st.pending_events > 0 => w.fail(
                    "liveness",
                    format!("in backoff until {r} with events pending, but no wake-up asked"),
                ),
                Some(t) if t > r || (t < r && !period) => w.fail(
                    "liveness",
                    format!("in backoff until {r}, but the wake-up is at {t}"),
                ),
                _ => {}
            }
        }
        if polled && timeout.is_some_and(|t| t <= self.now) {
            w.fail(
                "liveness",
                format!(
                    "woken at {}, asks to be woken again at {timeout:?}",
                    self.now
                ),
            );
        }
        // Whether the mode's flushes may go, by the simulator's own account
        // of what it told the machine (not the machine's stats).
        let uploads = w.network_up
            && (!self.params.unmetered_only || w.network_kind == NetworkKind::Unmetered)
            && !w.power_save;
        if st.pending_events > 0 && uploads && !st.halted && st.retry_at.is_none() {
            match cfg.flush_mode() {
                FlushMode::Immediate if m.in_flight().is_none() => w.fail(
                    "liveness",
                    format!(
                        "Immediate mode, network up, no backoff, {} pending, nothing in flight",
                        st.pending_events
                    ),
                ),
                FlushMode::Period if !st.flush_requested && timeout.is_none() => w.fail(
                    "liveness",
                    format!(
                        "Period mode with {} pending and no timer",
                        st.pending_events
                    ),
                ),
                _ => {}
            }
        }
    }

    /// After healing: every event is accounted for.
    fn final_books(&mut self) {
        let mut w = self.world.borrow_mut();
        let (n, _) = w.stored();
        if n > 0 {
            w.fail("1-lost", format!("{n} records still stored after draining"));
        }
        for e in 0..w.events.len() {
            let ev = w.events[e].clone();
            if ev.reported_delivered && ev.server == 0 {
                w.fail(
                    "1-lost",
                    format!("event {e} reported delivered, never at the server"),
                );
            }
            if ev.server > 0 && !ev.reported_delivered && ev.dropped.is_none() {
                w.fail(
                    "accounting",
                    format!("event {e} reached the server but the application was told nothing"),
                );
            }
            let accounted = ev.refused_too_large
                || ev.rejected.is_some()
                || ev.server > 0
                || ev.dropped.is_some()
                || ev.refused_full
                || (ev.lost_unsynced && w.group_commit);
            if !accounted {
                w.fail(
                    "1-lost",
                    format!(
                        "event {e} ({} B) was silently lost: not delivered, dropped or rejected",
                        ev.size
                    ),
                );
                break;
            }
        }
    }

    fn result(&self, seed: u64) -> SeedResult {
        let mut w = self.world.borrow_mut();
        let mut r = SeedResult {
            seed,
            steps: self.step,
            events: w.events.len() as u64,
            duplicates: w.duplicates,
            crashes: self.crashes,
            wakeups: w.ticks,
            ..SeedResult::default()
        };
        for ev in &w.events {
            if ev.refused_too_large || ev.rejected.is_some() {
                r.rejected += 1;
            } else if ev.server > 0 {
                r.delivered += 1;
            } else {
                r.dropped += 1;
                let why = match ev.dropped {
                    _ if ev.refused_full => 1,
                    Some(outbox_core::DropReason::Overflow) => 0,
                    Some(outbox_core::DropReason::MaxAttempts) => 2,
                    Some(outbox_core::DropReason::Expired) => 5,
                    Some(_) => 3,
                    None => 4,
                };
                r.drops[why] += 1;
            }
        }
        if let Some(fd) = &w.flash {
            r.rot = [fd.flips, fd.rotted, fd.unreported];
        }
        r.violation = w.violation.take().map(|v| (self.step, v));
        r.log = trail_take().lines;
        r
    }
}
