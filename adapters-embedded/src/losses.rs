//! Loss reports from a device (feature `loss-reports`): the `outbox dropped
//! events` track event, built on the device and kept in the flash queue.
//!
//! A device is where events are lost (bit rot on the flash, a full queue,
//! a server that keeps failing), and the server sees nothing of it unless
//! the device says so. The std Client reports its losses with a diagnostic
//! event in the next batch (outbox-std's `LOSS_EVENT`); this is the same
//! event for a device on the flash queue.
//!
//! The core stays sans-IO and builds no payloads: drops reach the app as
//! `Output::Dropped { first, last, reason }` through the driver's
//! [`Observer`]. A [`LossCounter`] counts them (a few words of RAM, no
//! allocation), [`LossCounter::write_report`] writes the report's JSON into
//! a caller's buffer, and the app tracks it as an ordinary event. The
//! durable book is the queue itself: once the report's track returned
//! `Ok` it is on the flash and goes with the next batch, across power cuts
//! like any event; [`LossCounter::report_stored`] then forgets the counts.
//! A track that failed keeps them (the same report is written again).
//!
//! # What is persisted, and the window
//!
//! - Persisted: a report whose track returned `Ok` (it is an event on the
//!   flash; after a power cut it is read back and sent once, as any event).
//! - Not persisted: the counts between a drop and the report's append
//!   (the rest of the driver call that reported the drop, then the
//!   report's track). They are in RAM only; a power cut in that window
//!   forgets them for good. Damaged records too: the driver deletes a hole
//!   in the same call that reports its drop, so after such a cut the record
//!   is not found again, unless the cut fell inside that call before the
//!   delete was written (or the delete failed): then it is found, dropped
//!   and counted again at the next boot.
//! - The `messageId` is derived from what a report reports (the device id
//!   the caller gives, the first and last seq, the total; not the time, as
//!   a device's clock starts again at every boot), so a report made twice
//!   of the same losses (a hole found again after its report was stored)
//!   has the same id and the collector keeps one.
//!
//! # One report at a time; a report does not report itself
//!
//! [`write_report`](LossCounter::write_report) writes nothing while the
//! last stored report is still in the queue (neither delivered nor
//! dropped): drops meanwhile wait for the next report, so a full queue
//! under `DropOldest` never fills with reports of reports. (The counter
//! knows this within a boot: after a restart, a report read back from the
//! flash does not hold a new one back.) A report is an
//! ordinary event: if it is dropped in turn (say by overflow), that drop
//! (its seq) is counted and told in the next report.
//!
//! # `since`
//!
//! The counter stamps the first drop it counts with the time it was last
//! given: [`set_unix_now`](LossCounter::set_unix_now) (Unix milliseconds,
//! when the device knows the wall clock) makes `properties.since` an
//! RFC 3339 string, as the std Client's; [`set_now`](LossCounter::set_now)
//! (the device clock's milliseconds from boot) writes
//! `properties.since_boot_ms` instead and no `since`.
//!
//! # The blocking firmware loop
//!
//! The async loop does all of this itself
//! (`asynchronous::run_with_losses`, feature `async`). A blocking loop
//! shares the counter with its driver (the driver owns its observer; the
//! counter is a set of `Cell`s, so `&LossCounter` is the observer and the
//! loop keeps another reference):
//!
//! ```
//! use outbox_core::{Batch, Config, Driver, Instant, Machine, Outcome, Payloads, Transport};
//! use outbox_embedded::flash::{sim::SimFlash, FlashQueue};
//! use outbox_embedded::losses::LossCounter;
//! # struct Uplink;
//! # impl Transport for Uplink {
//! #     type Error = ();
//! #     fn send(&mut self, _: Instant, _: &Batch, _: Payloads<'_>) -> Result<(), ()> { Ok(()) }
//! #     fn poll_outcome(&mut self, _: Instant) -> Option<Outcome> { None }
//! # }
//!
//! let mut flash = SimFlash::<4, 4, 1024>::new(8);
//! let queue = FlashQueue::open(&mut flash, 0..8 * 1024).unwrap();
//! let config = Config::builder().max_event_bytes(400).build().unwrap();
//! let machine = Machine::<8>::new(config, 1).unwrap();
//! let losses = LossCounter::new();
//! let mut buf = [0u8; 2048];
//! let mut driver = Driver::new(machine, queue, Uplink, &mut buf, &losses).unwrap();
//! let mut report = [0u8; LossCounter::MAX_REPORT_BYTES];
//! let mut now = 0;
//! losses.set_now(now);
//! driver.start(Instant::from_millis(now)).unwrap();
//! for _ in 0..3 {
//!     now += 100;
//!     losses.set_now(now);
//!     // ... driver.track(..) the app's events, then:
//!     let _ = driver.poll(Instant::from_millis(now));
//!     if let Ok(Some(n)) = losses.write_report(&mut report, "device-1") {
//!         if let Ok(seq) = driver.track(Instant::from_millis(now), &report[..n]) {
//!             losses.report_stored(seq);
//!         }
//!     }
//! }
//! ```

use core::cell::Cell;
use core::fmt::{self, Write};

use outbox_core::{DropReason, Observer, Output, Seq};

/// The diagnostic event's name (outbox-std's `LOSS_EVENT`).
pub const LOSS_EVENT: &str = "outbox dropped events";

/// The reasons' names in the report's counts, as the std Client's.
const REASONS: [&str; 6] = [
    "overflow",
    "max_attempts",
    "not_stored",
    "damaged",
    "expired",
    "other",
];

fn reason_index(reason: DropReason) -> usize {
    match reason {
        DropReason::Overflow => 0,
        DropReason::MaxAttempts => 1,
        DropReason::NotStored => 2,
        DropReason::Damaged => 3,
        DropReason::Expired => 4,
        _ => 5,
    }
}

/// Counted drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Book {
    counts: [u32; 6],
    first: Seq,
    last: Seq,
    /// When the first was counted (see `unix`).
    since: u64,
    /// `since` is Unix milliseconds, not the device clock's.
    unix: bool,
}

impl Book {
    fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// The buffer given to [`LossCounter::write_report`] cannot hold the
/// report ([`LossCounter::MAX_REPORT_BYTES`] always can).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportTooLarge;

impl fmt::Display for ReportTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the loss report does not fit in the buffer")
    }
}

impl core::error::Error for ReportTooLarge {}

/// Counts the drops a driver reports and writes them as one loss report.
///
/// `&LossCounter` is an [`Observer`]: give it to the driver and keep
/// another reference for [`write_report`](Self::write_report). To pass
/// the outputs on to an observer of the app's as well, use [`Counted`].
///
/// ```
/// use outbox_core::{DropReason, Observer, Output};
/// use outbox_embedded::losses::LossCounter;
///
/// let losses = LossCounter::new();
/// (&losses).observe(&Output::Dropped { first: 3, last: 4, reason: DropReason::Overflow });
/// assert_eq!(losses.pending(), 2);
/// let mut buf = [0u8; LossCounter::MAX_REPORT_BYTES];
/// let n = losses.write_report(&mut buf, "device-1").unwrap().unwrap();
/// let json = core::str::from_utf8(&buf[..n]).unwrap();
/// assert!(json.contains(r#""counts":{"overflow":2}"#));
/// losses.report_stored(5); // its track returned Ok(5)
/// assert_eq!(losses.pending(), 0);
/// ```
#[derive(Debug, Default)]
pub struct LossCounter {
    /// Counted and not yet in a report.
    book: Cell<Book>,
    /// Written by `write_report`, its track not yet known to be stored.
    taken: Cell<Option<Book>>,
    /// The seq of the last stored report, while it is in the queue.
    outstanding: Cell<Option<Seq>>,
    now: Cell<u64>,
    unix: Cell<bool>,
}

impl LossCounter {
    /// The longest report [`write_report`](Self::write_report) writes.
    pub const MAX_REPORT_BYTES: usize = 512;

    /// A counter with nothing counted.
    pub const fn new() -> Self {
        LossCounter {
            book: Cell::new(Book {
                counts: [0; 6],
                first: 0,
                last: 0,
                since: 0,
                unix: false,
            }),
            taken: Cell::new(None),
            outstanding: Cell::new(None),
            now: Cell::new(0),
            unix: Cell::new(false),
        }
    }

    /// Now by the device clock (milliseconds from boot): the time given
    /// to the drops counted from here on.
    pub fn set_now(&self, ms: u64) {
        self.now.set(ms);
        self.unix.set(false);
    }

    /// Now in Unix milliseconds (when the device knows the wall clock).
    pub fn set_unix_now(&self, ms: u64) {
        self.now.set(ms);
        self.unix.set(true);
    }

    /// Count the events `first..=last` dropped for `reason`.
    pub fn count(&self, first: Seq, last: Seq, reason: DropReason) {
        let mut b = self.book.get();
        let (lo, hi) = (first.min(last), first.max(last));
        let n = hi.saturating_sub(lo).saturating_add(1);
        if b.total() == 0 {
            b.first = lo;
            b.last = hi;
            b.since = self.now.get();
            b.unix = self.unix.get();
        } else {
            b.first = b.first.min(lo);
            b.last = b.last.max(hi);
        }
        let slot = &mut b.counts[reason_index(reason)];
        *slot = slot.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        self.book.set(b);
        self.left_queue(first, last);
    }

    /// The events `first..=last` left the queue: a report among them no
    /// longer holds the next one back.
    fn left_queue(&self, first: Seq, last: Seq) {
        if let Some(seq) = self.outstanding.get() {
            if (first..=last).contains(&seq) {
                self.outstanding.set(None);
            }
        }
    }

    /// Events counted and not yet reported by a stored report.
    pub fn pending(&self) -> u64 {
        self.book.get().total() + self.taken.get().map_or(0, |b| b.total())
    }

    /// Write the loss report into `buf`: its length, or `None` when there
    /// is nothing to report or the last stored report is still in the
    /// queue. The report stays the same (same bytes, same `messageId`)
    /// until [`report_stored`](Self::report_stored); drops counted after
    /// it was first written wait for the next one.
    ///
    /// # Errors
    ///
    /// [`ReportTooLarge`] when `buf` is too small; nothing is lost.
    pub fn write_report(
        &self,
        buf: &mut [u8],
        device_id: &str,
    ) -> Result<Option<usize>, ReportTooLarge> {
        if self.outstanding.get().is_some() {
            return Ok(None);
        }
        let book = match self.taken.get() {
            Some(b) => b,
            None => {
                let b = self.book.get();
                if b.total() == 0 {
                    return Ok(None);
                }
                self.taken.set(Some(b));
                self.book.set(Book::default());
                b
            }
        };
        let mut w = SliceWriter { buf, len: 0 };
        write_json(&mut w, &book, device_id).map_err(|_| ReportTooLarge)?;
        Ok(Some(w.len))
    }

    /// The report last written was tracked and stored as `seq`: its
    /// counts are forgotten (the queue has them now), and no report is
    /// written until this one leaves the queue.
    pub fn report_stored(&self, seq: Seq) {
        if self.taken.take().is_some() {
            self.outstanding.set(Some(seq));
        }
    }
}

impl Observer for &LossCounter {
    fn observe(&mut self, output: &Output) {
        match *output {
            Output::Dropped {
                first,
                last,
                reason,
            } => self.count(first, last, reason),
            Output::Delivered { first, last } => self.left_queue(first, last),
            Output::Rejected { seq, .. } => self.left_queue(seq, seq),
            _ => {}
        }
    }
}

/// A [`LossCounter`] and the app's own observer: each output is counted,
/// then passed on.
pub struct Counted<'a, O> {
    /// Counts the drops.
    pub losses: &'a LossCounter,
    /// The app's observer.
    pub inner: O,
}

impl<O: Observer> Observer for Counted<'_, O> {
    fn observe(&mut self, output: &Output) {
        let mut c = self.losses;
        c.observe(output);
        self.inner.observe(output);
    }
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let room = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn write_json(w: &mut SliceWriter<'_>, b: &Book, device_id: &str) -> fmt::Result {
    let total = b.total();
    w.write_str(r#"{"type":"track","event":""#)?;
    w.write_str(LOSS_EVENT)?;
    w.write_str(r#"","anonymousId":"outbox","messageId":""#)?;
    write_uuid(w, message_id(device_id, b.first, b.last, total))?;
    w.write_str(r#"","properties":{"counts":{"#)?;
    let mut comma = "";
    for (name, &n) in REASONS.iter().zip(b.counts.iter()) {
        if n > 0 {
            write!(w, r#"{comma}"{name}":{n}"#)?;
            comma = ",";
        }
    }
    write!(
        w,
        r#"}},"total":{total},"first_seq":{},"last_seq":{},"#,
        b.first, b.last
    )?;
    if b.unix {
        w.write_str(r#""since":""#)?;
        write_rfc3339(w, b.since)?;
        w.write_str("\"")?;
    } else {
        write!(w, r#""since_boot_ms":{}"#, b.since)?;
    }
    write!(
        w,
        r#"}},"context":{{"library":{{"name":"outbox-embedded","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// 128 bits from the device id and what the report reports: the same
/// report from the same device has the same id, after a reboot too.
fn message_id(device_id: &str, first: Seq, last: Seq, total: u64) -> u128 {
    // FNV-1a, two lanes, each finished with SplitMix64's mixer.
    let mut a = 0xcbf2_9ce4_8422_2325u64;
    let mut b = 0x6c62_272e_07bb_0142u64;
    let numbers = [first, last, total];
    let bytes = device_id
        .bytes()
        .chain([0xFF])
        .chain(numbers.iter().flat_map(|n| n.to_le_bytes()));
    for byte in bytes {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (u128::from(mix(a)) << 64) | u128::from(mix(b ^ a.rotate_left(17)))
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `x` as a UUID (version 8: custom; RFC 9562 variant).
fn write_uuid(w: &mut SliceWriter<'_>, x: u128) -> fmt::Result {
    let x = (x & !(0xF << 76) & !(0x3 << 62)) | (0x8 << 76) | (0x2 << 62);
    write!(
        w,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (x >> 96) as u32,
        (x >> 80) as u16,
        (x >> 64) as u16,
        (x >> 48) as u16,
        x & 0xFFFF_FFFF_FFFF
    )
}

/// Unix milliseconds as RFC 3339 in UTC with milliseconds (as the std
/// Client writes `since`).
fn write_rfc3339(w: &mut SliceWriter<'_>, ms: u64) -> fmt::Result {
    let days = ms / 86_400_000;
    let rest = ms % 86_400_000;
    // Days to a civil date (H. Hinnant's `civil_from_days`), days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    write!(
        w,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(ms: u64) -> std::string::String {
        let mut buf = [0u8; 40];
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        write_rfc3339(&mut w, ms).unwrap();
        let n = w.len;
        std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn unix_milliseconds_are_written_as_rfc3339() {
        assert_eq!(rfc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(rfc(951_825_845_007), "2000-02-29T12:04:05.007Z");
        assert_eq!(rfc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn the_id_is_a_uuid_fixed_by_what_is_reported() {
        let id = |d, f, l, t| {
            let mut buf = [0u8; 40];
            let mut w = SliceWriter {
                buf: &mut buf,
                len: 0,
            };
            write_uuid(&mut w, message_id(d, f, l, t)).unwrap();
            let n = w.len;
            std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        let a = id("dev-1", 3, 9, 4);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'8');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{a}");
        assert_eq!(a, id("dev-1", 3, 9, 4));
        assert_ne!(a, id("dev-2", 3, 9, 4));
        assert_ne!(a, id("dev-1", 3, 9, 5));
        assert_ne!(a, id("dev-1", 4, 9, 4));
        assert_ne!(a, id("dev-1", 3, 8, 4));
    }

    #[test]
    fn the_longest_report_fits_its_bound() {
        let c = LossCounter::new();
        c.set_unix_now(u64::MAX / 2);
        for r in [
            DropReason::Overflow,
            DropReason::MaxAttempts,
            DropReason::NotStored,
            DropReason::Damaged,
            DropReason::Expired,
        ] {
            c.count(0, u64::MAX, r);
        }
        let mut buf = [0u8; LossCounter::MAX_REPORT_BYTES];
        let n = c.write_report(&mut buf, "d").unwrap().unwrap();
        assert!(n < LossCounter::MAX_REPORT_BYTES - 40, "{n}");
        let mut small = [0u8; 100];
        let c = LossCounter::new();
        c.count(1, 1, DropReason::Overflow);
        assert_eq!(c.write_report(&mut small, "d"), Err(ReportTooLarge));
        assert_eq!(c.pending(), 1);
    }
}
