//! The async run loop (feature `async`): the core's driver over the async
//! flash queue, awaited by an embassy task (or any executor's).
//!
//! It is the blocking firmware loop (track an event when the app has one,
//! poll the transport and the timers, repeat) with its waits made awaits:
//! [`run`] sleeps until the app hands it an event ([`Events::next`]) or the
//! next timer or transport poll is due ([`Clock::sleep_until`]), whichever
//! comes first. The driver ([`Driver`], the core's loop compiled as async
//! code) and the queue ([`FlashQueue`], the flash queue compiled as async
//! code) are the blocking ones' code; only the waiting is new.
//!
//! # Cancellation
//!
//! Dropping the future of [`run`] part-way leaves the flash as a power cut
//! at that moment would (see [`FlashQueue`]); rebuild the queue, the
//! machine and the driver from the flash, as after a restart, before going
//! on. Events whose [`Events::tracked`] said `Ok` are on the flash then.

use core::fmt;
use core::time::Duration;

use embassy_futures::select::{select, Either};
use embedded_storage_async::nor_flash::NorFlash;
use outbox_core::{DriverError, InputError, Instant, Observer, Seq, Transport};

#[cfg(feature = "loss-reports")]
use crate::losses::LossCounter;

pub use crate::flash::asynchronous::FlashQueue;
pub use outbox_core::asynchronous::Driver;

/// The board's clock.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Now, in milliseconds from any fixed origin.
    fn now(&mut self) -> Instant;
    /// Return at `at`, or at once when it has passed (embassy:
    /// `Timer::at`). Dropped when an event comes first.
    async fn sleep_until(&mut self, at: Instant);
}

/// The app's events (embassy: a `Channel`'s receiver).
#[allow(async_fn_in_trait)]
pub trait Events {
    /// The next event's payload into `buf`: its length, or `None` once the
    /// app has no more (the loop then delivers what is queued and returns).
    /// It must be cancel-safe: the loop drops it when a timer is due
    /// first, and the event it was about to give must not be lost (an
    /// embassy `Channel`'s `receive` is).
    async fn next(&mut self, buf: &mut [u8]) -> Option<usize>;

    /// What became of the event `next` gave: its seq, stored on the flash,
    /// or why not ([`InputError::QueueFull`]: back-pressure, try it again
    /// later; anything else: it was not stored).
    fn tracked<SE: fmt::Debug, TE: fmt::Debug>(&mut self, result: Result<Seq, DriverError<SE, TE>>);
}

/// Run `driver` (built with [`Driver::new`] over a [`FlashQueue`]): restore
/// it from the flash, then track every event `events` gives, upload as the
/// machine says, and poll the transport at least every `poll_every`.
/// After a track refused for a full queue it takes no event until the
/// next timer or poll. Returns once `events` has ended and nothing is
/// queued or in flight (so not while the server keeps failing), or once
/// the machine halted. A failed upload or read is retried by the machine
/// (the loop goes on); only the restore's failure is returned.
pub async fn run<F, T, O, C, E, const N: usize>(
    driver: &mut Driver<'_, FlashQueue<F>, T, O, N>,
    clock: &mut C,
    events: &mut E,
    event_buf: &mut [u8],
    poll_every: Duration,
) -> Result<(), DriverError<crate::flash::Error<F::Error>, T::Error>>
where
    F: NorFlash,
    T: Transport,
    O: Observer,
    C: Clock,
    E: Events,
{
    run_loop(driver, clock, events, event_buf, poll_every, None).await
}

/// [`run`], reporting losses (feature `loss-reports`): `driver`'s observer
/// must feed `losses` (`&losses` itself, or a
/// [`Counted`](crate::losses::Counted) wrapping the app's observer). The
/// loop keeps the counter's clock ([`LossCounter::set_now`]: the board
/// clock's milliseconds), and whenever drops are counted and no earlier
/// report is still queued it writes the report (into `event_buf`, which
/// must hold [`LossCounter::MAX_REPORT_BYTES`], as `max_event_bytes` must)
/// and tracks it as an ordinary event, with `device_id` in its
/// `messageId`; [`LossCounter::report_stored`] when that returns `Ok`. A
/// track refused for a full queue waits like the app's events; one that
/// failed otherwise (or a report too large for `event_buf`) is tried again
/// at the next timer, with the same report. The loop returns once the
/// events ended, nothing is queued and nothing is left to report (or the
/// last try to report failed: the counts stay in `losses`); while the
/// server keeps failing, a report dropped after `max_attempts` is reported
/// again, so it does not return then (as [`run`] does not while events are
/// queued).
#[cfg(feature = "loss-reports")]
pub async fn run_with_losses<F, T, O, C, E, const N: usize>(
    driver: &mut Driver<'_, FlashQueue<F>, T, O, N>,
    clock: &mut C,
    events: &mut E,
    event_buf: &mut [u8],
    poll_every: Duration,
    losses: &LossCounter,
    device_id: &str,
) -> Result<(), DriverError<crate::flash::Error<F::Error>, T::Error>>
where
    F: NorFlash,
    T: Transport,
    O: Observer,
    C: Clock,
    E: Events,
{
    run_loop(
        driver,
        clock,
        events,
        event_buf,
        poll_every,
        Some((losses, device_id)),
    )
    .await
}

/// Without the feature, no counter is ever given.
#[cfg(not(feature = "loss-reports"))]
enum LossCounter {}

#[cfg(not(feature = "loss-reports"))]
impl LossCounter {
    fn set_now(&self, _: u64) {
        match *self {}
    }
}

async fn run_loop<F, T, O, C, E, const N: usize>(
    driver: &mut Driver<'_, FlashQueue<F>, T, O, N>,
    clock: &mut C,
    events: &mut E,
    event_buf: &mut [u8],
    poll_every: Duration,
    losses: Option<(&LossCounter, &str)>,
) -> Result<(), DriverError<crate::flash::Error<F::Error>, T::Error>>
where
    F: NorFlash,
    T: Transport,
    O: Observer,
    C: Clock,
    E: Events,
{
    // The counter's clock, set before each call that may drop events.
    let now_for = |clock: &mut C| {
        let now = clock.now();
        if let Some((l, _)) = losses {
            l.set_now(now.as_millis());
        }
        now
    };
    driver.start(now_for(clock)).await?;
    let every = u64::try_from(poll_every.as_millis()).unwrap_or(u64::MAX);
    let mut more = true;
    // The queue was full at the last track: wait for a timer before taking
    // the next event (the app keeps it), as the blocking firmware loop does.
    let mut full = false;
    // A report's track failed (not for a full queue): tried at the next
    // timer, not at every turn.
    #[cfg(feature = "loss-reports")]
    let mut report_failed = false;
    loop {
        #[cfg(feature = "loss-reports")]
        if let Some((losses, device_id)) = losses {
            if !full && !report_failed && !driver.machine().stats().halted {
                match losses.write_report(event_buf, device_id) {
                    Ok(Some(n)) => {
                        let report = event_buf.get(..n).unwrap_or(event_buf);
                        match driver.track(now_for(clock), report).await {
                            Ok(seq) => losses.report_stored(seq),
                            Err(DriverError::Input(InputError::QueueFull)) => full = true,
                            Err(_) => report_failed = true,
                        }
                    }
                    // Nothing to report, or one still queued.
                    Ok(None) => {}
                    // `event_buf` too small: the counts are kept.
                    Err(_) => report_failed = true,
                }
            }
        }
        let stats = driver.machine().stats();
        if stats.halted || (!more && stats.pending_events == 0 && stats.in_flight_events == 0) {
            return Ok(());
        }
        let now = clock.now();
        let poll_at = now.plus_millis(every);
        let wake = driver.poll_timeout().map_or(poll_at, |t| t.min(poll_at));
        let woke = if more && !full {
            match select(events.next(event_buf), clock.sleep_until(wake)).await {
                Either::First(Some(n)) => Woke::Event(n),
                Either::First(None) => Woke::Ended,
                Either::Second(()) => Woke::Timer,
            }
        } else {
            clock.sleep_until(wake).await;
            Woke::Timer
        };
        match woke {
            Woke::Event(n) => {
                let payload = event_buf.get(..n).unwrap_or(event_buf);
                let result = driver.track(now_for(clock), payload).await;
                full = matches!(result, Err(DriverError::Input(InputError::QueueFull)));
                events.tracked(result);
            }
            Woke::Ended => more = false,
            Woke::Timer => {
                full = false;
                #[cfg(feature = "loss-reports")]
                {
                    report_failed = false;
                }
            }
        }
        // A failed send or read is the machine's to retry; keep going.
        let _ = driver.poll(now_for(clock)).await;
    }
}

/// Why [`run`] woke up.
enum Woke {
    /// The app has an event of this many bytes.
    Event(usize),
    /// The app has no more events.
    Ended,
    /// A timer or a transport poll is due.
    Timer,
}
