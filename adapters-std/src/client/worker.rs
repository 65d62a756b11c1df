//! The worker thread: the only owner of the machine and the store.
//!
//! It runs the core's [`Driver`] rather than a loop of its own. Each round
//! it sleeps until a message arrives or the machine's next timeout (no busy
//! waiting), then takes *every* message already queued, applies them, and
//! commits once (`Driver::sync`): that is the group commit. Only after that
//! commit are durable callers (`track_durable`, `sync`) answered. One of its
//! deadlines is the session timeout: a session whose background outlasted
//! it is ended here, with no call from the app (see `session.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant as StdInstant};

use outbox_core::{Driver, DriverError, Input, InputError, Machine, Seq, Stats, Store};

use super::buffers::BufferPool;
use super::clock::Clock;
use super::error::{ClientError, FlushError, FlushReport, TrackError};
use super::notify::Notifier;
use super::transport::ChannelTransport;
use super::ClientStats;
use super::DeadLetterSelection;
use crate::sqlite::{DeadLetter, ErrorSource, SqliteStore, StoreError};

/// The Client machine's window of sizes (`max_batch_events` may not exceed
/// it): 8 bytes a slot, whatever the queue's length. The queue itself is
/// bounded only by `max_queue_events`, `max_queue_bytes` and the disk.
pub const WINDOW: usize = 2048;

/// Messages handled in one round before committing.
const ROUND_LIMIT: usize = 4096;

/// A one-shot answer to a handle: received by blocking (`recv`) or, with
/// the `async` feature, by awaiting, so the same worker serves both faces.
pub(crate) type Reply<T> = oneshot::Sender<T>;

/// Everything the handles (and the transport thread) tell the worker.
pub(crate) enum Msg {
    Track {
        payload: Vec<u8>,
        durable: Option<Reply<Result<(), TrackError>>>,
        /// Filled with the event's seq as soon as it is queued.
        seq: Arc<OnceLock<Seq>>,
        /// The event's `messageId`, for a refusal's notification.
        message_id: String,
        /// A critical event (`Client::track_critical`).
        critical: bool,
        /// The wall clock when the caller tracked it (its stamp; `None`:
        /// the worker's now).
        wall_ms: Option<u64>,
    },
    Sync(Reply<Result<(), ClientError>>),
    Input(Input, Reply<Result<(), ClientError>>),
    FlushWait {
        /// `None`: no deadline.
        deadline: Option<StdInstant>,
        reply: Reply<Result<FlushReport, FlushError>>,
    },
    Stats(Reply<ClientStats>),
    DeadLetters(Reply<Result<Vec<DeadLetter>, StoreError>>),
    /// Put dead letters back into the queue (committed with the round).
    Requeue(DeadLetterSelection, Reply<Result<usize, ClientError>>),
    /// Delete dead letters.
    Purge(DeadLetterSelection, Reply<Result<usize, ClientError>>),
    /// A batch's outcome, with what went wrong when it was not delivered.
    Outcome(outbox_core::Outcome, Option<String>),
    /// Stop; `flush` starts a final upload first, bounded by `deadline`.
    Shutdown {
        /// `None`: no deadline.
        deadline: Option<StdInstant>,
        flush: bool,
        reply: Reply<FlushReport>,
    },
    /// The lifecycle and session state, stored after the round's commit.
    Session(crate::sqlite::StoredSession),
}

type Drv<'b> = Driver<'b, SqliteStore, ChannelTransport, Notifier, WINDOW>;
type DrvError = DriverError<StoreError, super::transport::TransportGone>;

/// A caller waiting for the round's commit.
struct DurableWaiter {
    /// The caller's event, or `None` for a `sync()`.
    seq: Option<Seq>,
    /// Index into the not-stored list when the caller's message was handled.
    mark: usize,
    reply: DurableReply,
}

enum DurableReply {
    Track(Reply<Result<(), TrackError>>),
    Sync(Reply<Result<(), ClientError>>),
}

struct FlushWaiter {
    /// Settled once the queue's head is past this event.
    through: Option<Seq>,
    start: Stats,
    deadline: Option<StdInstant>,
    reply: Reply<Result<FlushReport, FlushError>>,
}

struct Stopping {
    start: Stats,
    deadline: Option<StdInstant>,
    /// Stop without uploading: no more messages or polls this round.
    quiet: bool,
    reply: Reply<FlushReport>,
}

pub(crate) struct Worker {
    pub(crate) rx: Receiver<Msg>,
    pub(crate) clock: Clock,
    pub(crate) not_stored: Rc<RefCell<Vec<(Seq, Seq)>>>,
    pub(crate) hub: super::notify::Hub,
    halt_status: Rc<Cell<u16>>,
    durable: Vec<DurableWaiter>,
    flushes: Vec<FlushWaiter>,
    stopping: Option<Stopping>,
    last_error: Option<String>,
    last_store_error: Option<StoreError>,
    /// The last salvage of this run.
    pub(crate) salvaged: Option<crate::sqlite::Salvaged>,
    /// Non-durable tracks refused so far (their receipts' numbers count
    /// down from `u64::MAX`).
    refused: u64,
    /// A shutdown with a flush waits for the transport thread to end, until
    /// its deadline (`Some(None)`: no deadline); `close` does not.
    pub(crate) join_transport: Option<Option<StdInstant>>,
    /// A storage error not yet recorded in the database (at the next commit).
    unrecorded: Option<String>,
    /// Payload buffers stored this round, handed back to `track` after it.
    spent: Vec<Vec<u8>>,
    buffers: Arc<BufferPool>,
    /// Session state to store after the next commit.
    session: Option<crate::sqlite::StoredSession>,
    /// The lifecycle and session tracker, to end a timed-out session.
    pub(crate) sessions: Option<Arc<super::session::Shared>>,
    /// A handle held the tracker when a session end was due: try again
    /// at this time.
    sessions_retry: Option<StdInstant>,
    /// Drops to report to the server (`losses.rs`).
    pub(crate) losses: super::losses::Losses,
}

/// How soon the worker tries again for a tracker a handle holds.
const SESSION_RETRY: Duration = Duration::from_millis(5);

fn head(s: &Stats) -> Seq {
    s.next_seq - u64::from(s.pending_events)
}

fn report(start: &Stats, now: &Stats) -> FlushReport {
    FlushReport {
        delivered: now.delivered - start.delivered,
        dropped: now.dropped() - start.dropped(),
        rejected: now.rejected - start.rejected,
        pending: now.pending_events,
    }
}

impl Worker {
    pub(crate) fn new(
        rx: Receiver<Msg>,
        clock: Clock,
        not_stored: Rc<RefCell<Vec<(Seq, Seq)>>>,
        hub: super::notify::Hub,
        buffers: Arc<BufferPool>,
    ) -> Self {
        Worker {
            rx,
            clock,
            not_stored,
            hub,
            halt_status: Rc::new(Cell::new(401)),
            durable: Vec::new(),
            flushes: Vec::new(),
            stopping: None,
            last_error: None,
            last_store_error: None,
            salvaged: None,
            refused: 0,
            join_transport: None,
            unrecorded: None,
            spent: Vec::new(),
            buffers,
            session: None,
            sessions: None,
            sessions_retry: None,
            losses: Default::default(),
        }
    }

    /// Keep an upload or storage error in the database for `outbox status`
    /// (best effort: the database may be what failed).
    fn record(driver: &mut Drv<'_>, source: ErrorSource, message: &str) {
        if let Err(e) = driver.store_mut().record_error(source, message) {
            log::debug!("outbox: cannot record the last error: {e}");
        }
    }

    fn note_error(&mut self, e: &DrvError) {
        match e {
            DriverError::Store(s) => {
                log::error!("outbox: store: {s}");
                self.last_error = Some(s.to_string());
                self.last_store_error = Some(s.clone());
                self.unrecorded = Some(s.to_string());
            }
            DriverError::Transport(super::transport::TransportGone::Busy) => {
                log::warn!(
                    "outbox: the endpoint is still busy with a request given up on; retrying later"
                );
            }
            DriverError::Transport(_) => {
                log::error!("outbox: the transport thread is gone");
                self.last_error = Some("the transport thread is gone".into());
            }
            other => {
                log::warn!("outbox: {other}");
                self.last_error = Some(other.to_string());
            }
        }
    }

    /// Run until shut down (or every handle is gone); returns the shutdown
    /// caller's answer, to be sent once the store is closed.
    #[allow(clippy::type_complexity)]
    pub(crate) fn run(
        mut self,
        mut driver: Drv<'_>,
    ) -> (
        Option<(Reply<FlushReport>, FlushReport)>,
        Option<Option<StdInstant>>,
    ) {
        let mut final_answer = None;
        // A salvage made while restoring (the queue's ends could not be read).
        self.take_salvage(&mut driver);
        loop {
            let first = match self.next_wake(&driver) {
                Some(at) => {
                    let wait = at
                        .saturating_duration_since(StdInstant::now())
                        .max(Duration::from_millis(1));
                    match self.rx.recv_timeout(wait) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                },
            };
            self.not_stored.borrow_mut().clear();
            if let Some(m) = first {
                self.handle(&mut driver, m);
                for _ in 1..ROUND_LIMIT {
                    if self.quiet() {
                        break;
                    }
                    match self.rx.try_recv() {
                        Ok(m) => self.handle(&mut driver, m),
                        Err(_) => break,
                    }
                }
                self.buffers.give_back(&mut self.spent);
            }
            if !self.quiet() {
                self.end_timed_out_session(&mut driver);
            }
            self.commit(&mut driver);
            if !self.quiet() {
                self.stage_losses(&mut driver);
                self.tell_wall_clock(&mut driver);
                let now = self.clock.now();
                if let Err(e) = driver.poll(now) {
                    self.note_error(&e);
                }
                self.commit(&mut driver);
            }
            self.take_salvage(&mut driver);
            self.settle_flushes(&driver);
            if let Some(answer) = self.try_stop(&mut driver) {
                final_answer = answer;
                break;
            }
        }
        // Whatever happens, leave nothing uncommitted behind.
        let _ = driver.store_mut().sync();
        driver.transport_mut().close();
        self.hub.close();
        for w in self.flushes.drain(..) {
            let _ = w.reply.send(Err(FlushError::Stopped));
        }
        (final_answer, self.join_transport)
    }

    /// A salvage the store made this round (its file turned out damaged):
    /// told to every subscriber.
    fn take_salvage(&mut self, driver: &mut Drv<'_>) {
        if let Some(report) = driver.store_mut().take_salvaged() {
            super::losses::lock(&self.losses).salvaged();
            self.last_error = Some(report.message());
            self.salvaged = Some(report.clone());
            self.hub
                .publish_sticky(super::notify::Notification::Salvaged(report));
        }
    }

    /// Stopping without an upload.
    fn quiet(&self) -> bool {
        self.stopping.as_ref().is_some_and(|s| s.quiet)
    }

    /// The earliest of the machine's timeout, the session timeout and the
    /// callers' deadlines.
    fn next_wake(&self, driver: &Drv<'_>) -> Option<StdInstant> {
        let machine = driver.poll_timeout().map(|t| self.clock.to_std(t));
        let callers = self
            .flushes
            .iter()
            .filter_map(|w| w.deadline)
            .chain(self.stopping.as_ref().and_then(|s| s.deadline))
            .chain(self.session_wake())
            .min();
        match (machine, callers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When a session's background outlasts its timeout (the wall clock
    /// the core's sessions run on, mapped onto a sleep from now), or the
    /// retry when a handle held the tracker.
    fn session_wake(&self) -> Option<StdInstant> {
        if let Some(at) = self.sessions_retry {
            return Some(at);
        }
        let due = self.sessions.as_ref()?.due()?;
        let wait = due.saturating_sub(super::session::now_ms());
        StdInstant::now().checked_add(Duration::from_millis(wait))
    }

    /// Track `session_end` for a session whose background outlasted the
    /// timeout, once it has: every message already sent is handled first
    /// (the handles queue a session's events while holding the tracker,
    /// so the end comes after them), then the end is tracked here and the
    /// state stored with this round's commit.
    fn end_timed_out_session(&mut self, driver: &mut Drv<'_>) {
        let Some(shared) = self.sessions.clone() else {
            return;
        };
        self.sessions_retry = None;
        let expiry = match shared.expire() {
            super::session::Expired::Nothing => return,
            super::session::Expired::Busy => {
                self.sessions_retry = StdInstant::now().checked_add(SESSION_RETRY);
                return;
            }
            super::session::Expired::Due(e) => e,
        };
        // Bounded: a handle's track waits for the lock this holds, and each
        // other caller waits for its answer before it sends again.
        while let Ok(m) = self.rx.try_recv() {
            self.handle(driver, m);
        }
        self.tell_wall_clock(driver);
        let now = self.clock.now();
        let mut refused = Vec::new();
        let stored = expiry.finish(|p| {
            match driver.track(now, &p.bytes) {
                // Something else done in the same call may have failed.
                Ok(_) => refused.extend(driver.take_error()),
                Err(e) => refused.push(e),
            }
            self.spent.push(p.bytes);
        });
        for e in refused {
            log::warn!("outbox: while ending a timed-out session: {e}");
            self.note_error(&e);
        }
        self.buffers.give_back(&mut self.spent);
        if stored.is_some() {
            self.session = stored;
        }
    }

    /// Hand the machine the wall clock (before every track and every round
    /// that may form a batch): stamps and expiry use it.
    fn tell_wall_clock(&mut self, driver: &mut Drv<'_>) {
        let now_ms = self.clock.wall_ms();
        if let Err(e) = driver.handle(self.clock.now(), Input::WallClock { now_ms }) {
            self.note_error(&e);
        }
    }

    /// Write the drops seen so far into the open transaction, so the next
    /// send reports them and the round's commit keeps them.
    fn stage_losses(&self, driver: &mut Drv<'_>) {
        super::losses::lock(&self.losses).stage(driver.store_mut());
    }

    fn handle(&mut self, driver: &mut Drv<'_>, msg: Msg) {
        self.stage_losses(driver);
        match msg {
            // Stamped by the caller's clock, not when the worker gets to it.
            Msg::Track {
                wall_ms: Some(now_ms),
                ..
            } => {
                if let Err(e) = driver.handle(self.clock.now(), Input::WallClock { now_ms }) {
                    self.note_error(&e);
                }
            }
            _ => self.tell_wall_clock(driver),
        }
        let now = self.clock.now();
        match msg {
            Msg::Track {
                payload,
                durable,
                seq: slot,
                message_id,
                critical,
                wall_ms: _,
            } => {
                let mark = self.not_stored.borrow().len();
                let tracked = if critical {
                    driver.track_critical(now, &payload)
                } else {
                    driver.track(now, &payload)
                };
                match tracked {
                    Ok(seq) => {
                        // Before any notification about it can go out.
                        let _ = slot.set(seq);
                        // Something else done in the same call may have
                        // failed (a delete, an older batch's upload).
                        if let Some(e) = driver.take_error() {
                            self.note_error(&e);
                        }
                        if let Some(reply) = durable {
                            self.durable.push(DurableWaiter {
                                seq: Some(seq),
                                mark,
                                reply: DurableReply::Track(reply),
                            });
                        }
                    }
                    // An error means this event was not stored.
                    Err(e) => {
                        self.note_error(&e);
                        let err = match e {
                            DriverError::Input(InputError::QueueFull) => TrackError::QueueFull,
                            DriverError::Input(InputError::TooLarge { size, max }) => {
                                TrackError::Invalid(crate::EventError::TooLarge {
                                    size: size as usize,
                                    max: max as usize,
                                })
                            }
                            DriverError::Store(s) => TrackError::NotStored(s),
                            _ => {
                                TrackError::NotStored(self.last_store_error.clone().unwrap_or(
                                    StoreError::Other("the event was not stored".into()),
                                ))
                            }
                        };
                        match durable {
                            Some(reply) => {
                                let _ = reply.send(Err(err));
                            }
                            // Nobody waits for this answer: the receipt
                            // gets a number of its own, above every queue
                            // number, and a notification about it.
                            None => {
                                self.refused += 1;
                                let seq = u64::MAX - self.refused;
                                let _ = slot.set(seq);
                                self.hub.publish_now(super::notify::Notification::Refused {
                                    seq,
                                    message_id,
                                    error: err,
                                });
                            }
                        }
                    }
                }
                self.spent.push(payload);
            }
            Msg::Sync(reply) => {
                let mark = self.not_stored.borrow().len();
                self.durable.push(DurableWaiter {
                    seq: None,
                    mark,
                    reply: DurableReply::Sync(reply),
                });
            }
            Msg::Input(input, reply) => {
                let result = match driver.handle(now, input) {
                    Ok(_) => Ok(()),
                    Err(DriverError::Input(e)) => Err(ClientError::Refused(e)),
                    Err(e) => {
                        // Applied; a follow-up step failed and was recorded.
                        self.note_error(&e);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Msg::FlushWait { deadline, reply } => {
                if let Err(e) = driver.handle(now, Input::Flush) {
                    self.note_error(&e);
                }
                let s = driver.machine().stats();
                let through = (s.pending_events > 0).then(|| s.next_seq - 1);
                self.flushes.push(FlushWaiter {
                    through,
                    start: s,
                    deadline,
                    reply,
                });
            }
            Msg::Stats(reply) => {
                let _ = reply.send(self.stats(driver));
            }
            Msg::DeadLetters(reply) => {
                let _ = reply.send(driver.store().dead_letters());
            }
            Msg::Requeue(which, reply) => {
                let _ = reply.send(self.requeue(driver, &which));
            }
            Msg::Purge(which, reply) => {
                let ids = driver.store().dead_letters().map(|all| {
                    super::dead_letters::select(&all, &which)
                        .iter()
                        .map(|d| d.id)
                        .collect::<Vec<_>>()
                });
                let result = ids
                    .and_then(|ids| driver.store_mut().remove_dead_letters(&ids))
                    .map_err(ClientError::Store);
                let _ = reply.send(result);
            }
            Msg::Outcome(o, failure) => {
                if let Some(text) = &failure {
                    Self::record(driver, ErrorSource::Upload, text);
                }
                let delivered = driver.machine().stats().delivered;
                // A 2xx for the batch that carried the loss report deletes
                // the rows it reported with the batch's own delete.
                let report = match o {
                    outbox_core::Outcome::Response { batch, status, .. }
                        if (200..300).contains(&status) =>
                    {
                        super::losses::lock(&self.losses).carried_by(batch)
                    }
                    _ => None,
                };
                driver.store().clear_losses_with_next_delete(report);
                driver.transport_mut().ready = Some(o);
                if let Err(e) = driver.poll(now) {
                    self.note_error(&e);
                }
                if let Some(through_id) = report {
                    if driver.store().losses_cleared() {
                        super::losses::lock(&self.losses).cleared(through_id);
                    }
                    driver.store().clear_losses_with_next_delete(None);
                }
                if driver.machine().stats().delivered > delivered {
                    if let Err(e) = driver.store_mut().clear_error() {
                        log::debug!("outbox: cannot clear the last error: {e}");
                    }
                }
            }
            Msg::Shutdown {
                deadline,
                flush,
                reply,
            } => {
                if flush {
                    if let Err(e) = driver.handle(now, Input::Flush) {
                        self.note_error(&e);
                    }
                    self.join_transport = Some(deadline);
                }
                let start = driver.machine().stats();
                self.stopping = Some(Stopping {
                    start,
                    deadline,
                    quiet: !flush,
                    reply,
                });
            }
            Msg::Session(s) => self.session = Some(s),
        }
    }

    fn stats(&self, driver: &Drv<'_>) -> ClientStats {
        let store = driver.store();
        ClientStats {
            core: driver.machine().stats(),
            dead_letters: store.dead_letter_count().unwrap_or(0),
            commits: store.commits(),
            last_error: self.last_error.clone(),
            notifications_lost: self.hub.lost.load(std::sync::atomic::Ordering::Relaxed),
            path: store.path().to_path_buf(),
            salvaged: self.salvaged.clone(),
        }
    }

    /// The group commit, then the answers to durable callers.
    fn commit(&mut self, driver: &mut Drv<'_>) {
        self.stage_losses(driver);
        let now = self.clock.now();
        let synced = driver.sync(now).map_err(|e| {
            self.note_error(&e);
            match e {
                DriverError::Store(s) => s,
                other => StoreError::Other(other.to_string()),
            }
        });
        // Deletions and dead letters that no append is waiting with.
        let closed = driver.store_mut().sync();
        if let Err(e) = &closed {
            log::error!("outbox: commit failed: {e}");
            self.last_error = Some(e.to_string());
            self.unrecorded = Some(e.to_string());
        }
        super::losses::lock(&self.losses)
            .committed(synced.is_ok() && closed.is_ok(), driver.store());
        if let Some(message) = self.unrecorded.take() {
            Self::record(driver, ErrorSource::Store, &message);
        }
        // After the commit of the events it speaks of.
        if let Some(s) = self.session.take() {
            if let Err(e) = driver.store_mut().write_session(&s) {
                log::warn!("outbox: cannot store the session state: {e}");
            }
        }
        if self.durable.is_empty() {
            return;
        }
        let dropped = self.not_stored.borrow();
        let cause = || {
            self.last_store_error
                .clone()
                .unwrap_or_else(|| StoreError::Other("not stored".into()))
        };
        for w in self.durable.drain(..) {
            let later = &dropped[w.mark.min(dropped.len())..];
            let err = match w.seq {
                // An event is lost exactly when a not-stored drop covered it
                // after it was tracked (a failed commit reports one too).
                Some(seq) => later
                    .iter()
                    .any(|&(f, l)| (f..=l).contains(&seq))
                    .then(cause),
                // A sync fails when its commit failed or anything was lost.
                None => match &synced {
                    Err(e) => Some(e.clone()),
                    Ok(()) => (!later.is_empty()).then(cause),
                },
            };
            match w.reply {
                DurableReply::Track(r) => {
                    let _ = r.send(err.map_or(Ok(()), |e| Err(TrackError::NotStored(e))));
                }
                DurableReply::Sync(r) => {
                    let _ = r.send(err.map_or(Ok(()), |e| Err(ClientError::Store(e))));
                }
            }
        }
    }

    fn settle_flushes(&mut self, driver: &Drv<'_>) {
        if self.flushes.is_empty() {
            return;
        }
        let s = driver.machine().stats();
        let now = StdInstant::now();
        let halt_status = self.halt_status.get();
        for w in std::mem::take(&mut self.flushes) {
            let result = if w.through.is_none_or(|t| head(&s) > t) {
                Ok(report(&w.start, &s))
            } else if s.halted {
                Err(FlushError::Halted {
                    status: halt_status,
                    report: report(&w.start, &s),
                })
            } else if w.deadline.is_some_and(|d| now >= d) {
                Err(FlushError::TimedOut(report(&w.start, &s)))
            } else {
                self.flushes.push(w);
                continue;
            };
            let _ = w.reply.send(result);
        }
    }

    /// During a shutdown: stop once everything is delivered, nothing more
    /// can happen before the deadline, or the deadline passed. `Some` (with
    /// the caller's answer, if still wanted) means stop.
    #[allow(clippy::type_complexity)]
    fn try_stop(
        &mut self,
        driver: &mut Drv<'_>,
    ) -> Option<Option<(Reply<FlushReport>, FlushReport)>> {
        let stop = self.stopping.as_ref()?;
        let s = driver.machine().stats();
        let now = StdInstant::now();
        let retry_too_late = s
            .retry_at
            .is_some_and(|t| stop.deadline.is_some_and(|d| self.clock.to_std(t) >= d));
        let done = stop.quiet
            || s.pending_events == 0
            || s.halted
            || !s.uploads_allowed
            || (retry_too_late && s.in_flight_events == 0)
            || stop.deadline.is_some_and(|d| now >= d);
        if !done {
            return None;
        }
        let _ = driver.store_mut().sync();
        if s.pending_events > 0 {
            log::info!(
                "outbox: stopping with {} events queued; they are sent at the next start",
                s.pending_events
            );
        }
        Some(
            self.stopping
                .take()
                .map(|stop| (stop.reply, report(&stop.start, &s))),
        )
    }

    /// Track the selected dead letters again and delete them, in the same
    /// transaction (committed with this round), oldest first; stops early,
    /// leaving the rest dead, when the queue has no room.
    fn requeue(
        &mut self,
        driver: &mut Drv<'_>,
        which: &DeadLetterSelection,
    ) -> Result<usize, ClientError> {
        let all = driver.store().dead_letters().map_err(ClientError::Store)?;
        let chosen = super::dead_letters::select(&all, which);
        let config = *driver.machine().config();
        let mut moved = Vec::with_capacity(chosen.len());
        for letter in chosen.iter().copied() {
            let s = driver.machine().stats();
            let room = s.pending_events < config.max_queue_events()
                && s.pending_bytes + letter.payload.len() as u64 <= config.max_queue_bytes();
            if !room {
                log::warn!(
                    "outbox: the queue is full; {} dead letters stay",
                    chosen.len() - moved.len()
                );
                break;
            }
            match driver.track(self.clock.now(), &letter.payload) {
                Ok(_) => moved.push(letter.id),
                Err(e) => {
                    self.note_error(&e);
                    break;
                }
            }
        }
        driver
            .store_mut()
            .remove_dead_letters(&moved)
            .map_err(ClientError::Store)?;
        Ok(moved.len())
    }
}

/// Restore the store into the machine (on the worker thread, where the
/// driver lives) and run.
pub(crate) fn restore_and_run(
    worker: Worker,
    machine: Machine<WINDOW>,
    store: SqliteStore,
    (transport, transport_thread): (ChannelTransport, std::thread::JoinHandle<()>),
    batch_bytes: usize,
    started: SyncSender<Result<(), StoreError>>,
) {
    let mut buf = vec![0u8; batch_bytes];
    let notifier = Notifier {
        hub: worker.hub.clone(),
        clock: worker.clock,
        not_stored: worker.not_stored.clone(),
        halt_status: worker.halt_status.clone(),
        losses: worker.losses.clone(),
    };
    // The wall clock before the restore: a first batch formed at start
    // expires what is old already. The newest stamp the file committed
    // comes first: the machine keeps the larger, so a clock set back while
    // the app was stopped expires nothing early (and stamps go on from it).
    let mut machine = machine;
    let wall = [store.stamp_high_water(), Some(worker.clock.wall_ms())];
    for now_ms in wall.into_iter().flatten() {
        let _ = machine.handle(worker.clock.now(), Input::WallClock { now_ms });
    }
    // The configuration's batch size always holds one maximal event.
    let mut driver = match Driver::new(machine, store, transport, &mut buf, notifier) {
        Ok(d) => d,
        Err(e) => {
            let _ = started.send(Err(StoreError::Other(e.to_string())));
            return;
        }
    };
    match driver.start(worker.clock.now()) {
        Ok(()) => {}
        // Restored fine, but the first send or a delete failed: recorded.
        Err(DriverError::Transport(_)) => {}
        // Restored fine; the first batch met a damaged record (dead-lettered
        // alone) or a short read (read again after a backoff): the machine
        // handled it, as it does in any later round.
        Err(e @ (DriverError::Malformed { .. } | DriverError::ShortRead { .. })) => {
            log::warn!("outbox: at start: {e}");
        }
        Err(DriverError::Store(e)) => {
            let _ = started.send(Err(e));
            return;
        }
        Err(e) => {
            let _ = started.send(Err(StoreError::Malformed(e.to_string())));
            return;
        }
    }
    let restored = driver.machine().stats().restored;
    if restored > 0 {
        log::info!("outbox: restored {restored} queued events");
    }
    let _ = started.send(Ok(()));
    drop(started);
    let (answer, join) = worker.run(driver);
    // The worker's channel is closed now, so the transport thread ends
    // after the request it is on. A shutdown waits for that (until its
    // deadline): no upload runs on after it returned.
    if let Some(deadline) = join {
        while !transport_thread.is_finished() && deadline.is_none_or(|d| StdInstant::now() < d) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if transport_thread.is_finished() {
            let _ = transport_thread.join();
        }
    }
    // Answer the shutdown only now, with the store closed and its lock
    // released, so an async caller need not join this thread.
    if let Some((reply, report)) = answer {
        let _ = reply.send(report);
    }
}
