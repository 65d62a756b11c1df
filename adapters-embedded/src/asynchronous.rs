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
    driver.start(clock.now()).await?;
    let every = u64::try_from(poll_every.as_millis()).unwrap_or(u64::MAX);
    let mut more = true;
    // The queue was full at the last track: wait for a timer before taking
    // the next event (the app keeps it), as the blocking firmware loop does.
    let mut full = false;
    loop {
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
                let result = driver.track(clock.now(), payload).await;
                full = matches!(result, Err(DriverError::Input(InputError::QueueFull)));
                events.tracked(result);
            }
            Woke::Ended => more = false,
            Woke::Timer => full = false,
        }
        // A failed send or read is the machine's to retry; keep going.
        let _ = driver.poll(clock.now()).await;
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
