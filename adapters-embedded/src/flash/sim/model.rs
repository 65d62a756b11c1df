//! A model of the queue for tests and fuzzing (feature `_test`): random
//! steps with power cuts, write failures and bit rot, checked after every
//! step against a `VecDeque` of what must be stored. Bit rot is judged by
//! [`damage::Ledger`](super::damage::Ledger): every event whose record was
//! not hit comes back, the loss is reported, and the model then takes what
//! the queue holds. The proptest in
//! `tests/flash_model.rs` and the fuzz target `flash_ops` drive it.

use std::boxed::Box;
use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use embedded_storage::nor_flash::NorFlash;
use outbox_core::HOLE;

use super::damage::{open_all, Ledger};
use super::{SimError, SimFlash};
use crate::flash::{Error, FlashQueue};

/// Other word sizes than the exhaustive test: reads of 2, writes of 8.
type Flash = SimFlash<2, 8, PAGE>;
const PAGE: usize = 256;
const PAGES: usize = 10;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * PAGE as u32);

#[derive(Clone, Debug)]
pub enum Step {
    Append {
        len: usize,
        fill: u8,
    },
    /// Delete through the oldest + `k` - 1, at most the newest stored
    /// (`k` = 0 deletes nothing).
    Delete {
        k: u64,
    },
    /// Drop the queue and open it again (every step does; this one does
    /// nothing else).
    Reopen,
    /// Lose power during the write or erase `ops` from now, after `done`
    /// bytes of it.
    Cut {
        ops: u64,
        done: usize,
        from_end: bool,
    },
    FailWrite {
        after: u64,
        complete: bool,
    },
    Read {
        skip: u64,
        n: usize,
    },
    /// Bit rot: flip the bits of `mask` in the byte at `at`.
    Rot {
        at: usize,
        mask: u8,
    },
}

type Events = VecDeque<(u64, Vec<u8>)>;
/// Judges what a reopen found against the model before the interrupted step.
type Allowed = Box<dyn Fn(&Events, &Events) -> bool>;

struct World {
    flash: Flash,
    model: Events,
    /// The next number, as the machine would choose it.
    next: u64,
    deleted_through: Option<u64>,
    /// Every payload ever appended (or tried), for judging bit rot.
    history: Vec<(u64, Vec<u8>)>,
    /// Bit rot hit a page header: when it was the only one left (the
    /// write page's, nothing older on the flash), what the flash knew of
    /// deleted numbers is gone with it.
    header_rotted: bool,
}

fn open(flash: &mut Flash) -> FlashQueue<&mut Flash> {
    FlashQueue::open(flash, REGION).unwrap()
}

impl World {
    /// Reopen after power returns; the contents must be one of `allowed`
    /// (a check on each candidate), and become the model.
    fn recover(&mut self, allowed: &dyn Fn(&Events, &Events) -> bool) {
        self.flash.power_on();
        self.flash.cancel_faults();
        let mut q = open(&mut self.flash);
        let got: Events = read_all(&mut q).into();
        assert!(
            allowed(&self.model, &got),
            "after a power cut: model {:?}, got {:?}",
            seqs(&self.model),
            seqs(&got)
        );
        let floor = q.seq_floor().unwrap();
        if let Some(d) = self.deleted_through.filter(|_| !self.header_rotted) {
            assert!(
                floor > d,
                "floor {floor}, deleted through {d}, got {:?}",
                seqs(&got)
            );
        }
        self.model = got;
        self.next = self.model.back().map_or(floor, |e| e.0 + 1).max(floor);
    }
}

/// `m` with `(seq, p)` appended, replacing a copy of `seq` at its end.
fn appended(m: &Events, seq: u64, p: &[u8]) -> Events {
    let mut with = m.clone();
    if with.back().is_some_and(|e| e.0 == seq) {
        with.pop_back();
    }
    with.push_back((seq, p.to_vec()));
    with
}

/// Whether `got` is what is left of `m` after deleting a prefix of the
/// events up to `through`: a suffix of `m` keeping every event above it.
fn deleted_prefix(m: &Events, got: &Events, through: u64) -> bool {
    let kept = m.iter().filter(|e| e.0 > through).count();
    got.len() >= kept && got.len() <= m.len() && got.iter().eq(m.iter().skip(m.len() - got.len()))
}

fn seqs(e: &Events) -> Vec<u64> {
    e.iter().map(|x| x.0).collect()
}

/// Run `steps` from a blank flash, checking the queue against the model
/// after every one; panics on the first disagreement.
pub fn run(steps: &[Step]) {
    let mut w = World {
        flash: Flash::new(PAGES),
        model: VecDeque::new(),
        next: 0,
        deleted_through: None,
        history: Vec::new(),
        header_rotted: false,
    };
    for step in steps.iter().cloned() {
        let before = w.model.clone();
        let mut lost: Option<Allowed> = None;
        match step {
            Step::Append { len, fill } => {
                let seq = w.next;
                let p: Vec<u8> = (0..len).map(|i| fill ^ (i as u8) ^ (seq as u8)).collect();
                w.history.push((seq, p.clone()));
                let mut q = open(&mut w.flash);
                match q.append(seq, &p) {
                    Ok(()) => {
                        // A copy left by a failed append is replaced.
                        if w.model.back().is_some_and(|e| e.0 == seq) {
                            w.model.pop_back();
                        }
                        w.model.push_back((seq, p));
                        w.next += 1;
                    }
                    Err(Error::Full) => {}
                    Err(Error::Flash(SimError::PowerLoss)) => {
                        lost = Some(Box::new(move |m, got| {
                            *got == *m || *got == appended(m, seq, &p)
                        }));
                    }
                    Err(Error::Flash(SimError::Injected)) => {
                        // The record may or may not be there; the queue
                        // says which, at once and after a reopen alike.
                        let got: Events = read_all(&mut q).into();
                        assert!(
                            got == w.model || got == appended(&w.model, seq, &p),
                            "after a failed append"
                        );
                        w.model = got;
                        // As the machine does: the number is used again.
                    }
                    Err(Error::TooLarge { len, max }) => {
                        assert!(len > max && max == q.max_payload())
                    }
                    Err(e) => panic!("append {seq}: {e}"),
                }
            }
            Step::Delete { k } => {
                let Some(&(first, _)) = w.model.front() else {
                    continue;
                };
                // As the machine does: never past the newest event it
                // stored (a failed append it will reuse is not one).
                let end = (first + k).min(w.next);
                if end <= first {
                    continue;
                }
                let through = end - 1;
                let mut q = open(&mut w.flash);
                match q.delete_through(through) {
                    Ok(()) => {
                        w.model.retain(|e| e.0 > through);
                        w.deleted_through = Some(through);
                    }
                    Err(Error::Flash(SimError::PowerLoss)) => {
                        lost = Some(Box::new(move |m, got| deleted_prefix(m, got, through)));
                    }
                    Err(Error::Flash(SimError::Injected)) => {
                        let got: Events = read_all(&mut q).into();
                        assert!(
                            deleted_prefix(&w.model, &got, through),
                            "after a failed delete"
                        );
                        w.model = got;
                    }
                    Err(e) => panic!("delete through {through}: {e}"),
                }
            }
            Step::Reopen => {}
            Step::Cut {
                ops,
                done,
                from_end,
            } => {
                w.flash.set_erase_from_end(from_end);
                w.flash.cut_at_op(ops, done);
            }
            Step::FailWrite { after, complete } => w.flash.fail_write(after, complete),
            Step::Rot { at, mask } => {
                let at = at % w.flash.image().len();
                let stored: Vec<_> = w.model.iter().cloned().collect();
                let ledger = Ledger::located(
                    PAGE,
                    8,
                    w.flash.image(),
                    &stored,
                    &w.history,
                    w.deleted_through,
                );
                w.header_rotted |= at % PAGE < 40;
                w.flash.rot(at, mask);
                let mut q = open(&mut w.flash);
                let got = open_all(&mut q);
                // Earlier rot still in place counts too (a page header's
                // copy damaged before, its header now).
                if let Err(e) = ledger.check(&got, &w.flash.rotted()) {
                    panic!("after bit rot at {at} ({mask:#x}): {e}");
                }
                w.model = got.events.into();
                w.next = w.next.max(got.floor);
            }
            Step::Read { skip, n } => {
                let mut q = open(&mut w.flash);
                let from = w.model.front().map_or(0, |e| e.0) + skip;
                // One size per number from `from` to the newest, a hole
                // where the model has no event.
                let last = w.model.back().map_or(0, |e| e.0);
                let want: Vec<(u64, Option<&Vec<u8>>)> = (from..=last)
                    .take(if w.model.is_empty() { 0 } else { n })
                    .map(|s| (s, w.model.iter().find(|e| e.0 == s).map(|e| &e.1)))
                    .collect();
                let mut sizes = vec![0u32; n];
                let got = q.read_sizes(from, &mut sizes).unwrap();
                assert_eq!(got, want.len());
                for (s, e) in sizes.iter().zip(&want) {
                    assert_eq!(*s, e.1.map_or(HOLE, |p| p.len() as u32), "size of {}", e.0);
                }
                // The payloads of the first run without a hole.
                let run: Vec<_> = want.iter().map_while(|e| e.1.map(|p| (e.0, p))).collect();
                if let (Some(a), Some(b)) = (run.first(), run.last()) {
                    let mut buf = vec![0u8; run.iter().map(|e| e.1.len()).sum()];
                    let len = q.read_range(a.0, b.0, &mut buf).unwrap();
                    assert_eq!(len, buf.len());
                    assert_eq!(
                        buf,
                        run.iter().flat_map(|e| e.1.clone()).collect::<Vec<_>>()
                    );
                }
            }
        }
        if let Some(allowed) = lost {
            w.recover(&*allowed);
        } else {
            let mut q = open(&mut w.flash);
            let got: Events = read_all(&mut q).into();
            assert_eq!(seqs(&got), seqs(&w.model), "before {:?}", seqs(&before));
            assert_eq!(got, w.model);
        }
        assert_eq!(w.flash.violations(), 0, "NOR rules broken");
    }
}

/// Everything the queue holds, read through its public API in small
/// pieces (holes left out); panics when the summary, the sizes and the
/// payloads disagree.
pub fn read_all<F: NorFlash>(q: &mut FlashQueue<F>) -> Vec<(u64, Vec<u8>)> {
    super::damage::open_all(q).events
}
