//! Shared by the flash tests: a workload runner over the simulated flash and
//! a model of what must, may and must not be in the queue after a power cut.

#![allow(dead_code)]

use std::collections::BTreeMap;

#[cfg(feature = "async")]
pub mod async_app;
#[cfg(feature = "async")]
pub mod async_sim;

use embedded_storage::nor_flash::NorFlash;
use outbox_embedded::flash::sim::SimError;
use outbox_embedded::flash::{Error, FlashQueue};

/// One step of a workload.
#[derive(Clone, Debug)]
pub enum Op {
    Append(u64, Vec<u8>),
    Delete(u64),
    /// The write `after` writes from now fails (power stays on), with its
    /// bytes programmed or not.
    FailWrite {
        after: u64,
        complete: bool,
    },
}

/// A payload for `seq`: 1 to 48 bytes that differ by `salt`.
pub fn payload(seq: u64, salt: u8) -> Vec<u8> {
    let len = 1 + (seq.wrapping_mul(2654435761) % 48) as usize;
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31) ^ (i as u8) ^ salt.wrapping_mul(101))
        .collect()
}

/// What the queue must, may and must not hold.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Appends that returned `Ok`, less the returned deletes.
    pub acked: BTreeMap<u64, Vec<u8>>,
    /// Appends that failed without a power loss: they may be there.
    pub maybe: Vec<(u64, Vec<u8>)>,
    /// The highest `through` of a delete that returned `Ok`.
    pub deleted_through: Option<u64>,
    /// The operation under way when power was lost.
    pub in_flight: Option<Op>,
}

impl Model {
    /// Run `ops` until they end (false) or power is lost (true).
    pub fn run<F: NorFlash<Error = SimError>>(
        &mut self,
        q: &mut FlashQueue<F>,
        ops: &[Op],
        on_fail: &mut dyn FnMut(&mut FlashQueue<F>, u64, bool),
    ) -> bool {
        for op in ops {
            self.in_flight = Some(op.clone());
            match op {
                Op::Append(seq, p) => match q.append(*seq, p) {
                    Ok(()) => {
                        self.acked.insert(*seq, p.clone());
                        self.maybe.retain(|(s, _)| s != seq);
                    }
                    Err(Error::Flash(SimError::PowerLoss)) => return true,
                    Err(Error::Flash(SimError::Injected)) => {
                        // The newest number appended again: the old copy
                        // stays unless the new record was written whole.
                        if let Some(old) = self.acked.remove(seq) {
                            self.maybe.push((*seq, old));
                        }
                        self.maybe.push((*seq, p.clone()));
                    }
                    Err(e) => panic!("append {seq}: {e}"),
                },
                Op::Delete(through) => match q.delete_through(*through) {
                    Ok(()) => self.deleted(*through),
                    Err(Error::Flash(SimError::PowerLoss)) => return true,
                    Err(e) => panic!("delete through {through}: {e}"),
                },
                Op::FailWrite { after, complete } => on_fail(q, *after, *complete),
            }
            self.in_flight = None;
        }
        false
    }

    pub fn deleted(&mut self, through: u64) {
        self.acked.retain(|s, _| *s > through);
        self.maybe.retain(|(s, _)| *s > through);
        self.deleted_through = Some(self.deleted_through.map_or(through, |d| d.max(through)));
    }

    /// Judge what a reopened queue holds; `ctx` names the case in failures.
    pub fn check(&self, got: &[(u64, Vec<u8>)], ctx: &str) {
        let mut present = BTreeMap::new();
        for (s, p) in got {
            assert!(
                present.insert(*s, p).is_none(),
                "{ctx}: {s} came back twice"
            );
            if let Some(d) = self.deleted_through {
                assert!(
                    *s > d,
                    "{ctx}: {s} came back after a delete through {d} returned"
                );
            }
            let ok = self.acked.get(s) == Some(p)
                || self.maybe.iter().any(|(ms, mp)| ms == s && mp == p)
                || matches!(&self.in_flight, Some(Op::Append(fs, fp)) if fs == s && fp == p);
            assert!(
                ok,
                "{ctx}: {s} holds {p:?}, which no append of it wrote (acked {:?})",
                self.acked.get(s)
            );
        }
        let interrupted_delete = match self.in_flight {
            Some(Op::Delete(t)) => Some(t),
            _ => None,
        };
        let mut gone_below = None;
        for s in self.acked.keys() {
            if present.contains_key(s) {
                continue;
            }
            match interrupted_delete {
                Some(t) if *s <= t => gone_below = Some(*s),
                _ => panic!("{ctx}: {s} was appended and never deleted, but it is gone"),
            }
        }
        if let Some(g) = gone_below {
            // An interrupted delete removes a prefix, never a middle.
            assert!(
                self.acked.range(..g).all(|(s, _)| !present.contains_key(s)),
                "{ctx}: an interrupted delete left a hole"
            );
        }
    }
}

#[allow(unused_imports)]
pub use outbox_embedded::flash::sim::model::read_all as contents;
