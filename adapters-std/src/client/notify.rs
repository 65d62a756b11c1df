//! Notifications for the application, without callbacks into the core.
//!
//! The worker thread turns the machine's notification outputs into
//! [`Notification`]s, logs them through `log`, and offers each to every
//! subscriber's bounded channel. A subscriber that stops reading loses
//! notifications (counted in the stats), never slows the worker down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbox_core::{DropReason, HaltReason, Observer, Output, RejectReason, RetryCause, Seq};

use super::clock::Clock;

/// Notifications waiting per subscriber before new ones are lost.
pub const SUBSCRIBER_CAPACITY: usize = 1024;

/// Something the application may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// The server acknowledged the events `first..=last`.
    Delivered {
        /// Oldest delivered.
        first: Seq,
        /// Newest delivered.
        last: Seq,
    },
    /// The events `first..=last` left the queue undelivered.
    Dropped {
        /// Oldest dropped.
        first: Seq,
        /// Newest dropped.
        last: Seq,
        /// Why.
        reason: DropReason,
    },
    /// The server refused event `seq` for good; it is in the dead letters.
    Rejected {
        /// The event.
        seq: Seq,
        /// The status it got.
        status: u16,
        /// Why.
        reason: RejectReason,
    },
    /// Uploads stopped until [`Client::resume`](super::Client::resume) or
    /// the next start; every event is kept.
    Halted {
        /// The server's status (0 when the database failed).
        status: u16,
        /// Why: a status retrying cannot fix, a rejection storm, or storage.
        reason: HaltReason,
    },
    /// The database could not be opened or walked (damaged, truncated,
    /// not a database, a schema from the future): every event that could
    /// still be read was salvaged into a fresh database at the same path,
    /// and the damaged file was set aside; an unknown number of events may
    /// be lost. Tracking goes on. Every subscriber gets it, also one that
    /// subscribes after it happened.
    Salvaged(crate::sqlite::Salvaged),
    /// A [`Client::track`](super::Client::track) that could not be queued
    /// (the queue was full under `Overflow::RejectNew`, or the store failed):
    /// the event was never stored. Its [`Receipt`](super::Receipt) matches
    /// this notification through [`Receipt::concerns`](super::Receipt::concerns):
    /// `seq` is the number that receipt was given, above
    /// [`outbox_core::MAX_SEQ`] so never a queued event's.
    Refused {
        /// The receipt's number.
        seq: Seq,
        /// The event's `messageId`.
        message_id: String,
        /// Why it was not queued.
        error: super::TrackError,
    },
    /// An upload failed; the next attempt waits `delay`.
    RetryScheduled {
        /// Consecutive failures.
        attempt: u32,
        /// Time until the next attempt.
        delay: Duration,
        /// What failed.
        cause: RetryCause,
    },
}

impl Notification {
    /// Whether this notification is about event `seq` (it was delivered,
    /// dropped or rejected); see [`Receipt::concerns`](super::Receipt::concerns).
    pub fn covers(&self, seq: Seq) -> bool {
        match *self {
            Notification::Delivered { first, last } | Notification::Dropped { first, last, .. } => {
                (first..=last).contains(&seq)
            }
            Notification::Rejected { seq: s, .. } | Notification::Refused { seq: s, .. } => {
                s == seq
            }
            // Halts and retries are about the queue, not one event.
            _ => false,
        }
    }
}

/// A subscription: an iterator that blocks for the next notification.
///
/// ```no_run
/// # fn demo(client: outbox_std::Client) {
/// for note in client.notifications() {
///     println!("{note:?}");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Notifications {
    rx: Receiver<Notification>,
}

impl Notifications {
    /// The next notification, waiting at most `timeout`; `None` on timeout
    /// or once the Client stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Notification> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Every notification already waiting, without blocking.
    pub fn try_iter(&self) -> impl Iterator<Item = Notification> + '_ {
        self.rx.try_iter()
    }
}

impl Iterator for Notifications {
    type Item = Notification;

    /// Blocks until the next notification; `None` once the Client stopped.
    fn next(&mut self) -> Option<Notification> {
        self.rx.recv().ok()
    }
}

/// The subscribers, shared by the handles (which add) and the worker (which sends).
#[derive(Clone)]
pub(crate) struct Hub {
    /// `None` once the Client stopped: later subscriptions end at once.
    subscribers: Arc<Mutex<Option<Vec<SyncSender<Notification>>>>>,
    /// Notifications every subscriber gets, also a later one (a salvage,
    /// which happens before anyone could subscribe).
    sticky: Arc<Mutex<Vec<Notification>>>,
    pub(crate) lost: Arc<AtomicU64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            subscribers: Arc::new(Mutex::new(Some(Vec::new()))),
            sticky: Arc::default(),
            lost: Arc::default(),
        }
    }
}

impl Hub {
    pub(crate) fn subscribe(&self) -> Notifications {
        let (tx, rx) = std::sync::mpsc::sync_channel(SUBSCRIBER_CAPACITY);
        if let Ok(mut guard) = self.subscribers.lock() {
            if let Some(subs) = guard.as_mut() {
                if let Ok(sticky) = self.sticky.lock() {
                    for note in sticky.iter() {
                        let _ = tx.try_send(note.clone());
                    }
                }
                subs.push(tx);
            }
        }
        Notifications { rx }
    }

    /// Publish `note` now and to every later subscriber.
    /// Publish `note` to the subscribers there are now.
    pub(crate) fn publish_now(&self, note: Notification) {
        self.publish(note);
    }

    pub(crate) fn publish_sticky(&self, note: Notification) {
        // Under the subscribers' lock, so no subscriber gets it twice.
        let Ok(mut guard) = self.subscribers.lock() else {
            return;
        };
        if let Ok(mut sticky) = self.sticky.lock() {
            sticky.push(note.clone());
        }
        if let Some(subs) = guard.as_mut() {
            self.offer(subs, &note);
        }
    }

    fn publish(&self, note: Notification) {
        let Ok(mut guard) = self.subscribers.lock() else {
            return;
        };
        let Some(subs) = guard.as_mut() else {
            return;
        };
        self.offer(subs, &note);
    }

    /// Offers `note` to each subscriber, dropping the ones that left.
    fn offer(&self, subs: &mut Vec<SyncSender<Notification>>, note: &Notification) {
        subs.retain(|tx| match tx.try_send(note.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Drop every subscription, so their iterators end.
    pub(crate) fn close(&self) {
        if let Ok(mut guard) = self.subscribers.lock() {
            *guard = None;
        }
    }
}

/// The driver's observer on the worker thread.
pub(crate) struct Notifier {
    pub(crate) hub: Hub,
    pub(crate) clock: Clock,
    /// Ranges dropped as not stored, for answering durable callers.
    pub(crate) not_stored: Rc<RefCell<Vec<(Seq, Seq)>>>,
    /// The status of the last halt, for answering flush callers.
    pub(crate) halt_status: Rc<Cell<u16>>,
    /// Every drop, for the loss report.
    pub(crate) losses: super::losses::Losses,
}

impl Observer for Notifier {
    fn observe(&mut self, output: &Output) {
        let note = match *output {
            Output::Delivered { first, last } => {
                log::debug!("outbox: delivered events {first}..={last}");
                Notification::Delivered { first, last }
            }
            Output::Dropped {
                first,
                last,
                reason,
            } => {
                log::warn!("outbox: dropped events {first}..={last} ({reason:?})");
                if reason == DropReason::NotStored {
                    self.not_stored.borrow_mut().push((first, last));
                }
                super::losses::lock(&self.losses).note(
                    super::losses::reason_name(reason),
                    last.saturating_sub(first).saturating_add(1),
                    Some((first, last)),
                );
                Notification::Dropped {
                    first,
                    last,
                    reason,
                }
            }
            Output::Rejected {
                seq,
                status,
                reason,
            } => {
                log::warn!(
                    "outbox: server refused event {seq} with {status} ({reason:?}); moved to dead letters"
                );
                Notification::Rejected {
                    seq,
                    status,
                    reason,
                }
            }
            Output::Halted { status, reason } => {
                self.halt_status.set(status);
                match reason {
                    HaltReason::Status => log::error!(
                        "outbox: uploads halted: server answered {status} (check the write key and endpoint)"
                    ),
                    HaltReason::RejectionStorm => log::error!(
                        "outbox: uploads halted: the server rejected event after event (last {status})"
                    ),
                    _ => log::error!(
                        "outbox: uploads halted: the database could not delete delivered events"
                    ),
                }
                Notification::Halted { status, reason }
            }
            Output::RetryScheduled { at, attempt, cause } => {
                let delay = Duration::from_millis(at.millis_since(self.clock.now()));
                log::info!(
                    "outbox: upload attempt {attempt} failed ({cause:?}); retry in {delay:?}"
                );
                Notification::RetryScheduled {
                    attempt,
                    delay,
                    cause,
                }
            }
            Output::Persist { .. }
            | Output::Commit
            | Output::ReadSizes { .. }
            | Output::Delete { .. }
            | Output::Discard { .. }
            | Output::FindFresh { .. }
            | Output::Send(_) => return,
        };
        self.hub.publish(note);
    }
}
