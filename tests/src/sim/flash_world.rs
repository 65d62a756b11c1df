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

use outbox_core::{Seq, Store, StoreSummary};
use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;

use super::rng::Rng;
use super::world::{Rec, StoreErr, World};

/// The simulated part: 4-byte reads and writes, 4 KiB pages.
pub type Flash = SimFlash<4, 4, 4096>;

/// Pages of the queue's region: room for 64 events of 512 bytes (the
/// simulator's largest) several times over.
pub const PAGES: usize = 32;

const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 4096);

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
        }
    }

    fn q(&mut self) -> &mut FlashQueue<Flash> {
        self.queue
            .as_mut()
            .expect("the queue is open between crashes")
    }
}

/// Every record the queue holds, through the Store interface.
fn contents(q: &mut FlashQueue<Flash>) -> Result<Vec<(Seq, Vec<u8>)>, String> {
    let sum = Store::summary(q).map_err(|e| format!("summary: {e}"))?;
    if sum.count == 0 {
        return Ok(Vec::new());
    }
    let mut sizes = Vec::new();
    let mut chunk = [0u32; 16];
    while (sizes.len() as u64) < sum.count {
        let n = Store::read_sizes(q, sum.first + sizes.len() as Seq, &mut chunk)
            .map_err(|e| format!("read_sizes: {e}"))?;
        if n == 0 {
            return Err(format!(
                "read_sizes stops after {} of {}",
                sizes.len(),
                sum.count
            ));
        }
        sizes.extend_from_slice(&chunk[..n]);
    }
    let total: usize = sizes.iter().map(|s| *s as usize).sum();
    let mut buf = vec![0u8; total];
    let n = Store::read_range(q, sum.first, sum.last, &mut buf)
        .map_err(|e| format!("read_range: {e:?}"))?;
    if n != total || sum.last + 1 - sum.first != sum.count {
        return Err(format!("summary {sum:?} disagrees with {n} bytes read"));
    }
    let mut out = Vec::new();
    let mut at = 0;
    for (i, s) in sizes.iter().enumerate() {
        out.push((sum.first + i as Seq, buf[at..at + *s as usize].to_vec()));
        at += *s as usize;
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
        let r = match op {
            Write::Append(seq, p) => fd.q().append(seq, p),
            Write::Delete(t) => fd.q().delete_through(t),
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

    /// The flash's summary, checked against the ledger's.
    pub(super) fn flash_summary(&mut self, ledger: StoreSummary) -> StoreSummary {
        self.flash_read("summary", ledger, |q| {
            Store::summary(q).map_err(|e| e.to_string())
        })
    }

    /// After a crash: power on, reopen the queue from the image, hold what
    /// it holds against the ledger, and make the ledger what it holds.
    pub(super) fn flash_reopen(&mut self) {
        let Some(fd) = self.flash.as_mut() else {
            return;
        };
        let mut flash = fd.queue.take().expect("open").into_inner();
        flash.power_on();
        flash.cancel_faults();
        let pending = fd.pending.take();
        let violations = flash.violations();
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
        let n = kept.len();
        self.note(|| format!("flash: reopened, {n} records"));
        self.durable = kept.into();
    }
}
