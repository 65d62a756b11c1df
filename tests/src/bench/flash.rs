//! Row `flash`: outbox's NOR flash queue against the sequential-storage
//! crate's queue, on the same simulated flash and the same workload.
//!
//! Both run on `SimFlash` (256 pages of 4 KiB, read and write size 4), whose
//! counters give bytes written, erases and reads per event. The workload is
//! steady state: a backlog of 500 events of ~300 bytes, then, per event,
//! push one and remove the oldest (ours: `append` then `delete_through`;
//! theirs: `push` then `pop`), for long enough that both rings wrap.
//!
//! sequential-storage is async: its flash is ours wrapped in
//! embassy-embedded-hal's `BlockingAsync`, driven by embassy-futures'
//! `block_on`. Its `pop` marks an item popped by writing its header word a
//! second time, so it needs `MultiwriteNorFlash`, which ours never does: its
//! `SimFlash` has the write-once check turned off and a thin wrapper
//! declares `MultiwriteNorFlash` (the simulation still refuses any 0 → 1
//! bit without an erase). Ours runs with the write-once check on. Their
//! cache is `Cache::new_uncached()`: like our queue, no RAM index.
//!
//! D compares what each queue writes beyond the payload (headers, CRCs,
//! padding, checkpoints, page markers): bytes written per event minus the
//! payload bytes per event, each queue deleting the way it is used: ours
//! one `delete_through` per delivered batch (of 50 events; the per-event
//! delete is printed as context), theirs one `pop` per event (its only
//! way). D = our overhead per event / theirs; E = our erases per event /
//! theirs, in the same runs.
//!
//! A context line times opening a full 16 MiB flash (every record's CRC is
//! checked): bitwise CRC by default, the `crc` crate's table with
//! `--features outbox-embedded/crc-table`; the line says which.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant as StdInstant;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_futures::block_on;
use embedded_storage::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};
use outbox_embedded::flash::sim::{FlashStats, SimError, SimFlash};
use outbox_embedded::flash::{FlashQueue, CRC_TABLE};
use sequential_storage::cache::Cache;
use sequential_storage::queue::{QueueConfig, QueueStorage};

use super::events::{events, payloads};
use super::table::{grouped, Line, Ratios};
use super::{median, Options};

const PAGES: usize = 256;
const PAGE: usize = 4096;
const REGION: core::ops::Range<u32> = 0..(PAGES * PAGE) as u32;
const BACKLOG: usize = 500;
/// Appends per delete in the context line.
const DELETE_BATCH: usize = 50;

type Sim = SimFlash<4, 4, PAGE>;

/// Our simulated flash, declared multi-write for sequential-storage's pop;
/// shared so the counters can be read while the queue owns the flash
/// (`BlockingAsync` gives no access to what it wraps).
struct Multiwrite(Rc<RefCell<Sim>>);

impl ErrorType for Multiwrite {
    type Error = SimError;
}

impl ReadNorFlash for Multiwrite {
    const READ_SIZE: usize = 4;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.0.borrow_mut().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl NorFlash for Multiwrite {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.0.borrow_mut().erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.0.borrow_mut().write(offset, bytes)
    }
}

impl MultiwriteNorFlash for Multiwrite {}

/// Per-event figures of one run.
#[derive(Clone, Copy)]
struct PerEvent {
    bytes_written: f64,
    /// Payload bytes pushed per event (written bytes minus this is the
    /// queue's own overhead).
    payload: f64,
    erases: f64,
    reads: f64,
    rate: f64,
}

fn per_event(stats: FlashStats, payload: usize, n: usize, secs: f64) -> PerEvent {
    PerEvent {
        bytes_written: stats.bytes_written as f64 / n as f64,
        payload: payload as f64 / n as f64,
        erases: stats.erases as f64 / n as f64,
        reads: stats.reads as f64 / n as f64,
        rate: n as f64 / secs.max(1e-9),
    }
}

/// Ours; `batch` events appended per `delete_through` (1: the judged
/// workload; more: how outbox deletes, one per delivered batch).
fn ours(samples: &[Vec<u8>], n: usize, batch: usize) -> PerEvent {
    let mut flash = Sim::new(PAGES);
    let mut q = FlashQueue::open(&mut flash, REGION).expect("open our queue");
    let mut seq = 0u64;
    for _ in 0..BACKLOG {
        q.append(seq, &samples[seq as usize % samples.len()])
            .expect("prefill");
        seq += 1;
    }
    let before = q.flash_mut().stats();
    let start = StdInstant::now();
    let mut payload = 0usize;
    for i in 0..n {
        let p = &samples[seq as usize % samples.len()];
        q.append(seq, p).expect("append");
        payload += p.len();
        if (i + 1) % batch == 0 {
            q.delete_through(seq - BACKLOG as u64).expect("delete");
        }
        seq += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = q.flash_mut().stats().since(&before);
    assert!(q.summary().expect("summary").count as usize <= BACKLOG + batch);
    assert_eq!(q.flash_mut().violations(), 0, "our queue broke a NOR rule");
    per_event(stats, payload, n, secs)
}

fn theirs(samples: &[Vec<u8>], n: usize) -> PerEvent {
    let sim = Rc::new(RefCell::new(Sim::new(PAGES)));
    sim.borrow_mut().set_write_once(false);
    let flash = BlockingAsync::new(Multiwrite(sim.clone()));
    let mut q = QueueStorage::new(flash, QueueConfig::new(REGION), Cache::new_uncached());
    let mut buf = vec![0u8; PAGE];
    block_on(async {
        let mut i = 0usize;
        for _ in 0..BACKLOG {
            q.push(&samples[i % samples.len()], false)
                .await
                .expect("prefill");
            i += 1;
        }
        let before = sim.borrow().stats();
        let start = StdInstant::now();
        let mut payload = 0usize;
        for _ in 0..n {
            let p = &samples[i % samples.len()];
            q.push(p, false).await.expect("push");
            payload += p.len();
            let popped = q.pop(&mut buf).await.expect("pop").map(|p| p.len());
            assert_eq!(popped, Some(samples[(i - BACKLOG) % samples.len()].len()));
            i += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(sim.borrow().violations(), 0, "a NOR rule broken");
        per_event(sim.borrow().stats().since(&before), payload, n, secs)
    })
}

/// Seconds to open a full 16 MiB flash (4096 pages of 4 KiB), median of
/// `reps`, and the events it holds.
fn open_16mib(samples: &[Vec<u8>], reps: usize) -> (f64, u64) {
    const BIG: usize = 4096;
    let mut flash = Sim::new(BIG);
    let region = 0..(BIG * PAGE) as u32;
    {
        let mut q = FlashQueue::open(&mut flash, region.clone()).expect("open");
        let mut seq = 0u64;
        while q
            .append(seq, &samples[seq as usize % samples.len()])
            .is_ok()
        {
            seq += 1;
        }
    }
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..reps.max(1) {
        let start = StdInstant::now();
        let mut q = FlashQueue::open(&mut flash, region.clone()).expect("open");
        times.push(start.elapsed().as_secs_f64());
        count = q.summary().expect("summary").count;
    }
    (median(times), count)
}

/// Bytes written beyond the payload, per event.
fn overhead(r: &PerEvent) -> f64 {
    r.bytes_written - r.payload
}

/// The sizes of what our queue writes besides payloads (flash::format's
/// byte table, write size 4): an event record's header and CRC-32; a page
/// opening, its header and the header's copy (a 36-byte checkpoint
/// record); a delete's checkpoint (`live_from` as u64).
const RECORD_FRAMING: f64 = (8 + 4) as f64;
const PAGE_OPENING: f64 = 36.0 + (8 + 36 + 4) as f64;
const CHECKPOINT: f64 = (8 + 8 + 4) as f64;

/// Where our overhead per event goes, from the measured totals: framing
/// per record, a page opening per erase (steady state: every page opened
/// was erased first), a checkpoint per delete, and the rest, which is the
/// zero padding of each payload to a multiple of 4. Fails loudly when the
/// rest is not a padding (the format changed and these sizes with it).
fn breakdown(r: &PerEvent, deletes_per_event: f64) -> String {
    let pages = r.erases * PAGE_OPENING;
    let checkpoints = deletes_per_event * CHECKPOINT;
    let padding = overhead(r) - RECORD_FRAMING - pages - checkpoints;
    assert!(
        (-0.1..4.0).contains(&padding),
        "the overhead breakdown left {padding:.2} B/event that is not a padding: \
         update the sizes above to flash::format's"
    );
    format!(
        "record header and CRC {RECORD_FRAMING:.1} + page header and its copy {pages:.2} \
         + checkpoints {checkpoints:.2} + padding {padding:.2}"
    )
}

/// Run the row; sets D and E.
pub fn run(o: &Options, ratios: &mut Ratios) -> Vec<Line> {
    let n = if o.quick { 5_000 } else { 20_000 };
    let samples = payloads(&events(1000));
    let (mut a, mut b, mut batched) = (vec![], vec![], vec![]);
    for _ in 0..o.reps() {
        a.push(ours(&samples, n, 1));
        b.push(theirs(&samples, n));
        batched.push(ours(&samples, n, DELETE_BATCH));
    }
    let med = |runs: &[PerEvent], f: fn(&PerEvent) -> f64| median(runs.iter().map(f).collect());
    let line = |who: &str, runs: &[PerEvent], note: String| {
        Line::measured(
            "flash",
            who.to_string(),
            format!("{:.1} B/event over", med(runs, overhead)),
            format!(
                "{:.0} B written/ev, {:.4} erases/ev, {:.0} reads/ev, {} ev/s; {note}",
                med(runs, |r| r.bytes_written),
                med(runs, |r| r.erases),
                med(runs, |r| r.reads),
                grouped(med(runs, |r| r.rate)),
            ),
        )
    };
    ratios.flash_overhead_vs_seqstorage = Some(med(&batched, overhead) / med(&b, overhead));
    ratios.flash_erases_vs_seqstorage = Some(med(&batched, |r| r.erases) / med(&b, |r| r.erases));
    let (open_secs, open_events) = open_16mib(&samples, o.reps());
    let crc = if CRC_TABLE {
        "CRC table (feature crc-table)"
    } else {
        "bitwise CRC (default; --features outbox-embedded/crc-table for the table)"
    };
    vec![
        line(
            "outbox flash queue, a delete per 50 appends",
            &batched,
            format!(
                "D, E; {n} events after a {BACKLOG}-event backlog, 256 x 4 KiB, write-once words"
            ),
        ),
        line(
            "sequential-storage 8 queue: push, pop",
            &b,
            "same flash and events; uncached; MultiwriteNorFlash".into(),
        ),
        line(
            "outbox flash queue: append, delete_through each",
            &a,
            "context, not judged: a delete per event".into(),
        ),
        Line::measured(
            "flash",
            "outbox flash queue, a delete per 50: where D's bytes go".to_string(),
            format!("{:.1} B/event over", med(&batched, overhead)),
            format!(
                "{}; context: derived from the counts above and flash::format's sizes",
                breakdown(
                    &PerEvent {
                        bytes_written: med(&batched, |r| r.bytes_written),
                        payload: med(&batched, |r| r.payload),
                        erases: med(&batched, |r| r.erases),
                        reads: med(&batched, |r| r.reads),
                        rate: med(&batched, |r| r.rate),
                    },
                    1.0 / DELETE_BATCH as f64
                )
            ),
        ),
        Line::measured(
            "flash",
            "outbox flash queue: open a full 16 MiB flash".to_string(),
            format!("{:.0} ms", open_secs * 1e3),
            format!("{open_events} events, every CRC checked; {crc}; context, not judged"),
        ),
    ]
}
