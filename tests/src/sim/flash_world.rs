//! The flash world: the same simulated life, but the store's records live
//! in a real [`FlashQueue`] on a simulated NOR flash ([`SimFlash`]) that
//! loses power part-way through a write or an erase.
//!
//! The world's own record of the store (`World::durable`) stays the ledger
//! every invariant is checked against; the flash queue does the storing.
//! Each store operation is applied to both, and every read is answered by
//! the flash and compared with the ledger, so the machine only ever sees
//! what the flash holds. When the world's crash fires inside a write (an
//! append or a delete), power is cut at a random flash operation of it
//! and a random byte of that operation; at the crash the queue is reopened
//! from the image and its contents are held against the ledger: every
//! record whose append returned is there, byte for byte, unless a returned
//! delete covered it; the interrupted append may or may not be there, the
//! interrupted delete may or may not have happened (as a whole prefix);
//! nothing else. The ledger then takes what the flash holds. Appends on the
//! flash are durable when they return (bounded durability: no group
//! commit), and the queue's byte limit fits on the flash, so a full flash
//! is a violation.
//!
//! Bit rot is a fault next to power cuts: at some crashes, before the
//! reopen, one to four bits flip, in a stored record (header, payload,
//! CRC), a page header, or anywhere (a checkpoint, free space). The checker
//! knows which bytes it flipped and asks whether the intact events survive
//! ([`Ledger`]): every stored event whose record bytes were not touched,
//! and one of whose page header's two copies was not, comes back, exactly
//! once, in order (the write page's header included: one damaged copy
//! must never lower the seq floor); a lost one is a hole in the sizes or
//! under the seq floor. Rot stays until an erase resets it, and the check
//! counts earlier rot too. The judge is told which numbers the
//! checker damaged; the machine must report each lost event dropped as
//! `Damaged`, at the edges of the queue too: the store's summary spans
//! from the last delete to the floor, so a number lost before the oldest
//! intact record, or after the newest with its number readable, is a hole
//! the machine reports; with no intact record left the summary still
//! spans them (a count of 0). A record header that lost one or two bits is
//! recovered (the event comes back). Counted as `unreported` is only what
//! the format cannot know: a loss after the newest intact record whose
//! header is beyond recovery (or both copies of its page header went with
//! it), and a loss outside the span when no intact record is left (record
//! 0 alone, which reads as an empty store; or a number unreadable).
//! Appends after the damage go on being checked against the ledger as
//! before.

use std::collections::BTreeMap;

use outbox_core::{DropReason, Seq, Store, StoreSummary, HOLE};
use outbox_embedded::flash::sim::damage::{page_laps, records, Ledger, Opened};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

use super::rng::Rng;
use super::world::{Rec, StoreErr, World};

/// The simulated part: 4-byte reads and writes, 4 KiB pages.
pub type Flash = SimFlash<4, 4, 4096>;

/// Pages of the queue's region: room for 64 events of 512 bytes (the
/// simulator's largest) several times over.
pub const PAGES: usize = 32;

const PAGE: usize = 4096;

const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * PAGE as u32);

/// Per mille of crashes at which bits rot before the reopen.
const P_ROT: u32 = 300;

/// Which store backs a simulated world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorldKind {
    /// The world's own model of an SQLite-like store (group commit or not).
    #[default]
    Model,
    /// The flash queue on a simulated NOR flash with power cuts.
    Flash,
}

/// A write the crash may interrupt.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    Append(Seq, &'a [u8]),
    Delete(Seq),
}

/// What the interrupted write may have left behind.
#[derive(Clone, Debug)]
enum Pending {
    Append(Seq, Vec<u8>),
    Delete(Seq),
}

/// The flash and its queue, part of the world (they outlive a crash).
pub struct FlashDisk {
    queue: Option<FlashQueue<Flash>>,
    rng: Rng,
    pending: Option<Pending>,
    /// Power cuts inside a write.
    pub cuts: u64,
    /// The event of every number ever appended.
    appended: BTreeMap<Seq, u64>,
    /// The newest delete that returned.
    deleted_through: Option<Seq>,
    /// Numbers lost to bit rot, and their events, until the machine
    /// reports them.
    damaged: BTreeMap<Seq, u64>,
    /// Bit flips, records lost to them, and those the store contract
    /// cannot report (see the module docs).
    pub flips: u64,
    pub rotted: u64,
    pub unreported: u64,
    /// The span of the summary the queue gave at the last reopen (holes at
    /// its edges included), until the next write.
    span: Option<(Seq, Seq)>,
}

impl FlashDisk {
    /// A blank flash for `seed` (its own random stream: the rest of the
    /// world draws exactly what it draws in the model world).
    pub fn new(seed: u64) -> FlashDisk {
        let mut rng = Rng::new(seed, 3);
        let mut flash = Flash::new(PAGES);
        flash.set_erase_from_end(rng.chance(500));
        let queue = FlashQueue::open(flash, REGION).expect("a blank flash opens");
        let need = queue.max_queue_bytes(512, super::CAP as u32);
        assert!(need >= 512 * super::CAP as u64, "flash too small: {need}");
        FlashDisk {
            queue: Some(queue),
            rng,
            pending: None,
            cuts: 0,
            appended: BTreeMap::new(),
            deleted_through: None,
            damaged: BTreeMap::new(),
            flips: 0,
            rotted: 0,
            unreported: 0,
            span: None,
        }
    }

    fn q(&mut self) -> &mut FlashQueue<Flash> {
        self.queue
            .as_mut()
            .expect("the queue is open between crashes")
    }
}

/// Every record the queue holds, through the Store interface (holes left
/// out), and the seq floor.
fn contents(q: &mut FlashQueue<Flash>) -> Result<Opened, String> {
    let sum = Store::summary(q).map_err(|e| format!("summary: {e}"))?;
    let floor = Store::seq_floor(q).map_err(|e| format!("seq_floor: {e}"))?;
    // (A count of 0 with a span: every record lost, the span reported.)
    if sum == StoreSummary::EMPTY {
        return Ok(Opened {
            floor,
            ..Opened::default()
        });
    }
    let span = sum
        .last
        .checked_sub(sum.first)
        .and_then(|d| d.checked_add(1))
        .filter(|&s| s >= sum.count)
        .ok_or_else(|| format!("summary {sum:?}: count over its span"))?;
    let mut sizes: Vec<u32> = Vec::new();
    let mut chunk = [0u32; 16];
    while (sizes.len() as u64) < span {
        let n = Store::read_sizes(q, sum.first + sizes.len() as Seq, &mut chunk)
            .map_err(|e| format!("read_sizes: {e}"))?;
        if n == 0 {
            // The end of the store: the rest of the span is holes (records
            // lost after the newest intact one).
            sizes.resize(span as usize, HOLE);
            break;
        }
        sizes.extend_from_slice(&chunk[..n]);
    }
    sizes.truncate(span as usize);
    let mut out = Opened {
        floor,
        span: Some((sum.first, sum.last)),
        ..Opened::default()
    };
    let (mut count, mut bytes) = (0u64, 0u64);
    for (i, &s) in sizes.iter().enumerate() {
        let seq = sum.first + i as Seq;
        if s == HOLE {
            out.holes.push(seq);
            continue;
        }
        let mut buf = vec![0u8; s as usize];
        let n = Store::read_range(q, seq, seq, &mut buf)
            .map_err(|e| format!("read_range {seq}: {e:?}"))?;
        if n != buf.len() {
            return Err(format!("read_range {seq}: {n} bytes, the size says {s}"));
        }
        count += 1;
        bytes += u64::from(s);
        out.events.push((seq, buf));
    }
    if count != sum.count || bytes != sum.bytes {
        return Err(format!(
            "summary {sum:?} disagrees with {count} records of {bytes} B read"
        ));
    }
    Ok(out)
}

impl World {
    /// The store's gate for a write; in the flash world a crash firing here
    /// cuts power inside the write on the flash.
    pub(super) fn gate_write(&mut self, op: Write<'_>) -> Result<(), StoreErr> {
        let was = self.crashed;
        let r = self.gate();
        if r.is_err() && !was {
            if let Some(fd) = self.flash.as_mut() {
                let ops = fd.rng.below(4);
                let done = fd.rng.below(4097) as usize;
                fd.cuts += 1;
                fd.q().flash_mut().cut_at_op(ops, done);
                let (what, r) = match op {
                    Write::Append(seq, p) => {
                        fd.appended.insert(seq, event_of(p));
                        fd.pending = Some(Pending::Append(seq, p.to_vec()));
                        (format!("append {seq}"), fd.q().append(seq, p))
                    }
                    Write::Delete(t) => {
                        fd.pending = Some(Pending::Delete(t));
                        (format!("delete through {t}"), fd.q().delete_through(t))
                    }
                };
                let powered = fd.q().flash_mut().is_powered();
                self.note(|| {
                    format!("flash: power cut at write/erase {ops} (+{done} B) of {what}: {r:?}, powered {powered}")
                });
            }
        }
        r
    }

    /// Apply a write the ledger accepted to the flash too.
    pub(super) fn flash_write(&mut self, op: Write<'_>) -> Result<(), StoreErr> {
        let Some(fd) = self.flash.as_mut() else {
            return Ok(());
        };
        fd.span = None;
        let r = match op {
            Write::Append(seq, p) => {
                fd.appended.insert(seq, event_of(p));
                fd.q().append(seq, p)
            }
            Write::Delete(t) => {
                fd.deleted_through = Some(t);
                fd.q().delete_through(t)
            }
        };
        if let Err(e) = r {
            // The limits fit on the flash and power is on: nothing may fail.
            self.fail("3-limits", format!("flash: {op:?} failed: {e}"));
            return Err(StoreErr::Failed);
        }
        Ok(())
    }

    /// Answer a read from the flash, holding it against the ledger's answer.
    pub(super) fn flash_read<T: PartialEq + core::fmt::Debug>(
        &mut self,
        what: &str,
        ledger: T,
        read: impl FnOnce(&mut FlashQueue<Flash>) -> Result<T, String>,
    ) -> T {
        let Some(fd) = self.flash.as_mut() else {
            return ledger;
        };
        match read(fd.q()) {
            Ok(v) if v == ledger => v,
            Ok(v) => {
                self.fail(
                    "1-lost",
                    format!("flash: {what} reads {v:?}, the ledger says {ledger:?}"),
                );
                v
            }
            Err(e) => {
                self.fail("1-lost", format!("flash: {what} failed: {e}"));
                ledger
            }
        }
    }

    /// The flash's summary, checked against the ledger's (whose span takes
    /// in the holes at the edges the reopen found and checked).
    pub(super) fn flash_summary(&mut self, mut ledger: StoreSummary) -> StoreSummary {
        if let Some((f, l)) = self.flash.as_ref().and_then(|fd| fd.span) {
            if ledger.count > 0 {
                ledger.first = ledger.first.min(f);
                ledger.last = ledger.last.max(l);
            } else {
                // Every record lost: the span alone, of count 0.
                (ledger.first, ledger.last) = (f, l);
            }
        }
        self.flash_read("summary", ledger, |q| {
            Store::summary(q).map_err(|e| e.to_string())
        })
    }

    /// After a crash: power on, perhaps let bits rot, reopen the queue from
    /// the image, hold what it holds against the ledger, and make the
    /// ledger what it holds.
    pub(super) fn flash_reopen(&mut self) {
        let Some(fd) = self.flash.as_mut() else {
            return;
        };
        let mut flash = fd.queue.take().expect("open").into_inner();
        flash.power_on();
        flash.cancel_faults();
        let pending = fd.pending.take();
        let violations = flash.violations();
        let damage = if fd.rng.chance(P_ROT) {
            rot(&mut fd.rng, &mut flash)
        } else {
            Vec::new()
        };
        fd.flips += damage.len() as u64;
        // Earlier rot no erase has reset counts too (a page header hit
        // before, its copy now).
        let rotted = flash.rotted();
        let before_rot = {
            let mut img = flash.image().to_vec();
            for &(at, mask) in &damage {
                img[at] ^= mask;
            }
            img
        };
        let (queue, found) = match FlashQueue::open(flash, REGION) {
            Ok(mut q) => {
                let found = contents(&mut q);
                (q, found)
            }
            Err(e) => (
                FlashQueue::open(Flash::new(PAGES), REGION).expect("a blank flash opens"),
                Err(format!("open after a power cut: {e}")),
            ),
        };
        fd.queue = Some(queue);
        if violations > 0 {
            self.fail(
                "protocol",
                format!("flash: {violations} NOR rule violations"),
            );
        }
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                self.fail("1-lost", format!("flash: {e}"));
                return;
            }
        };
        let span = found.span;
        if damage.is_empty() {
            self.reopen_after_cut(pending, found);
        } else {
            self.reopen_after_rot(pending, found, &before_rot, &damage, &rotted);
        }
        // Numbers lost earlier and not reported yet stay in the summary's
        // span (it starts at the last delete, and the floor covers them),
        // unless nothing intact is left (the contract has no summary of
        // holes alone) or a later loss took a newer one's header (the floor
        // may go back over it): then they can no longer be reported.
        let Some(fd) = self.flash.as_mut() else {
            return;
        };
        fd.span = span;
        if let Some((s, (sf, _))) = fd.damaged.keys().next().zip(span) {
            if *s < sf {
                let s = *s;
                self.fail(
                    "1-lost",
                    format!("flash: {s}, lost and not reported yet, lies before the summary's first {sf}"),
                );
                return;
            }
        }
        let Some(fd) = self.flash.as_mut() else {
            return;
        };
        let gone: Vec<(Seq, u64)> = fd
            .damaged
            .iter()
            .filter(|(s, _)| span.is_none_or(|(_, l)| **s > l))
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in gone {
            fd.damaged.remove(&s);
            fd.unreported += 1;
            self.events[e as usize]
                .dropped
                .get_or_insert(DropReason::Damaged);
        }
    }

    /// The machine reported `first..=last` dropped as damaged: the events
    /// the flash lost to bit rot are accounted for.
    pub(super) fn flash_damage_reported(&mut self, first: Seq, last: Seq) {
        let Some(fd) = self.flash.as_mut() else {
            return;
        };
        let hit: Vec<(Seq, u64)> = fd
            .damaged
            .range(first..=last)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in hit {
            fd.damaged.remove(&s);
            self.events[e as usize]
                .dropped
                .get_or_insert(DropReason::Damaged);
        }
    }

    /// Bits rotted before the reopen: judge by the ledger of what was
    /// stored, which bytes held it, and which bytes were hit (`rotted`:
    /// now, or before and not erased since).
    fn reopen_after_rot(
        &mut self,
        pending: Option<Pending>,
        found: Opened,
        image: &[u8],
        damage: &[(usize, u8)],
        rotted: &[usize],
    ) {
        let appended: Vec<(Seq, u64)> = self
            .flash
            .as_ref()
            .map(|fd| fd.appended.iter().map(|(s, e)| (*s, *e)).collect())
            .unwrap_or_default();
        let mut stored: Vec<(Seq, Vec<u8>)> = self
            .durable
            .iter()
            .map(|(s, r)| (*s, self.payload(r.event)))
            .collect();
        // What may come back: anything ever appended (a damaged checkpoint
        // brings deleted events back), the interrupted append.
        let mut maybe: Vec<(Seq, Vec<u8>)> = appended
            .iter()
            .map(|(s, e)| (*s, self.payload(*e)))
            .collect();
        if let Some(Pending::Append(s, p)) = &pending {
            maybe.push((*s, p.clone()));
        }
        if let Some(Pending::Delete(t)) = pending {
            // An interrupted delete: what it covers need not come back.
            stored.retain(|(s, _)| *s > t);
        }
        // A record the cut left whole may be a second copy in the image.
        let ledger = Ledger::located(PAGE, 4, image, &stored, &maybe, None);
        let lost = match ledger.check(&found, rotted) {
            Ok(lost) => lost,
            Err(e) => {
                let d = format!("{damage:x?}");
                self.fail("1-lost", format!("flash after bit rot at {d}: {e}"));
                return;
            }
        };
        let fd = self.flash.as_mut().expect("the flash world");
        let mut notes = Vec::new();
        for &seq in &lost {
            let Some(&e) = fd.appended.get(&seq) else {
                continue;
            };
            fd.rotted += 1;
            self.judge.damaged(seq);
            // The ledger's check demands the span cover every loss the
            // format can know; outside it: nothing intact is left, or the
            // number was lost with its header after the newest record.
            if found.span.is_none_or(|(f, l)| seq < f || seq > l) {
                fd.unreported += 1;
                self.events[e as usize]
                    .dropped
                    .get_or_insert(DropReason::Damaged);
            } else {
                fd.damaged.insert(seq, e);
            }
            notes.push(seq);
        }
        let kept: Vec<(Seq, Rec)> = found
            .events
            .iter()
            .map(|(s, p)| {
                let e = event_of(p);
                (
                    *s,
                    Rec {
                        event: e,
                        size: p.len() as u32,
                    },
                )
            })
            .collect();
        let n = kept.len();
        let flips = format!("{damage:x?}");
        self.note(|| format!("flash: bits rotted at {flips}, lost {notes:?}, {n} records"));
        // The floor may go back only over numbers lost with their header
        // (their number unreadable); it never goes back over a number that
        // is still stored or was deleted.
        let deleted = self.flash.as_ref().and_then(|fd| fd.deleted_through);
        if found.floor < self.floor {
            // (A number whose append was cut, or was spent without a
            // record, was never held: the floor may forget it.)
            let held = stored
                .iter()
                .map(|(s, _)| *s)
                .filter(|&s| s >= found.floor && deleted.is_none_or(|d| s > d))
                .find(|s| !lost.contains(s));
            if let Some(s) = held {
                let (from, to) = (self.floor, found.floor);
                self.fail(
                    "1-lost",
                    format!(
                        "flash: the seq floor went back from {from} to {to} over {s}, not lost"
                    ),
                );
                return;
            }
            self.floor = found.floor;
        }
        self.floor = self.floor.max(found.floor);
        self.durable = kept.into();
    }

    /// A power cut (no rot): what the ledger says must be there, less a
    /// prefix through an interrupted delete, plus perhaps the interrupted
    /// append; nothing else.
    fn reopen_after_cut(&mut self, pending: Option<Pending>, found: Opened) {
        let floor = found.floor;
        let found = found.events;
        // What the ledger says must be there; a prefix of it (through the
        // interrupted delete) may be gone, the interrupted append may be new.
        let ledger: Vec<(Seq, u64)> = self.durable.iter().map(|(s, r)| (*s, r.event)).collect();
        let gone = found.first().map_or(ledger.len(), |(s, _)| {
            ledger.iter().take_while(|(l, _)| l < s).count()
        });
        let may_go = match pending {
            Some(Pending::Delete(t)) => ledger.iter().take_while(|(s, _)| *s <= t).count(),
            _ => 0,
        };
        let mut kept = Vec::new();
        let mut problem = None;
        if gone > may_go {
            problem = Some(format!(
                "{} records lost (seq {} on), a delete covered {may_go}",
                gone - may_go,
                ledger[may_go].0
            ));
        }
        let mut rest = ledger[gone.min(ledger.len())..].iter();
        for (seq, bytes) in &found {
            match rest.next() {
                Some((s, e)) if s == seq && *bytes == self.payload(*e) => {
                    kept.push((
                        *seq,
                        Rec {
                            event: *e,
                            size: bytes.len() as u32,
                        },
                    ));
                }
                Some((s, e)) => {
                    problem.get_or_insert(format!(
                        "seq {s} (event {e}) expected, the flash holds seq {seq} ({} B)",
                        bytes.len()
                    ));
                    break;
                }
                None => match &pending {
                    Some(Pending::Append(s, p)) if s == seq && p == bytes => {
                        let e = u64::from_le_bytes(p[..8].try_into().unwrap_or_default());
                        kept.push((
                            *seq,
                            Rec {
                                event: e,
                                size: p.len() as u32,
                            },
                        ));
                    }
                    _ => {
                        problem.get_or_insert(format!(
                            "the flash holds seq {seq} ({} B) that no returned or interrupted append wrote",
                            bytes.len()
                        ));
                        break;
                    }
                },
            }
        }
        if problem.is_none() {
            if let Some((s, _)) = rest.next() {
                problem = Some(format!("seq {s} and on lost after the power cut"));
            }
        }
        if let Some(p) = problem {
            self.fail("1-lost", format!("flash after a power cut: {p}"));
        }
        if let Some((s, _)) = kept.last() {
            self.floor = self.floor.max(s + 1);
        }
        // The interrupted append's number counts once its record was
        // written whole, even when its CRC fails; a delete's numbers count
        // (it may cover numbers spent without a record).
        let deleted = self.flash.as_ref().and_then(|fd| fd.deleted_through);
        let may = [
            match &pending {
                Some(Pending::Append(s, _)) => Some(s + 1),
                Some(Pending::Delete(t)) => Some(t + 1),
                None => None,
            },
            deleted.map(|t| t + 1),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        if floor < self.floor {
            self.fail(
                "1-lost",
                format!(
                    "flash: the seq floor went back from {} to {floor}",
                    self.floor
                ),
            );
        } else if floor > self.floor && floor > may {
            self.fail(
                "protocol",
                format!(
                    "flash: the seq floor {floor} is past every number appended ({})",
                    self.floor
                ),
            );
        }
        self.floor = self.floor.max(floor);
        let n = kept.len();
        self.note(|| format!("flash: reopened, {n} records"));
        self.durable = kept.into();
    }
}

/// The event a payload belongs to (its first eight bytes).
fn event_of(p: &[u8]) -> u64 {
    u64::from_le_bytes(
        p.get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    )
}

/// Flip one to four bits: in a stored record, a page header in use (the
/// write page's too: format 2 keeps a copy of every page header, so one
/// damaged header costs nothing), or anywhere. Returns the addresses and
/// masks flipped.
fn rot(rng: &mut Rng, flash: &mut Flash) -> Vec<(usize, u8)> {
    let recs = records(flash.image(), PAGE, 4);
    let used: Vec<usize> = page_laps(flash.image(), PAGE, 4)
        .iter()
        .map(|(p, _)| *p)
        .collect();
    let n = 1 + rng.below(4) as usize;
    let mut out = Vec::new();
    for _ in 0..n {
        let at = match rng.below(10) {
            0..=5 if !recs.is_empty() => {
                let r = &recs[rng.below(recs.len() as u64) as usize].1;
                r.start + rng.below(r.len() as u64) as usize
            }
            6 if !used.is_empty() => {
                used[rng.below(used.len() as u64) as usize] * PAGE + rng.below(36) as usize
            }
            _ => rng.below((PAGES * PAGE) as u64) as usize,
        };
        let mask = 1u8 << rng.below(8);
        flash.rot(at, mask);
        out.push((at, mask));
    }
    out
}
