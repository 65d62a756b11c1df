//! A tiny driver for tests: inputs in, outputs recorded.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::{Batch, Config, Input, Instant, Machine, Output, Seq, StoreSummary};

pub(crate) const CAP: usize = 64;

/// A machine with a window of `N` sizes over a store modelled as a map.
pub(crate) struct Hn<const N: usize> {
    pub m: Machine<N>,
    pub now: Instant,
    pub out: Vec<Output>,
    /// What a store would hold: sizes by sequence number, kept from
    /// `Persist` and `Delete`, used to answer `ReadSizes`.
    pub store: BTreeMap<Seq, u32>,
    /// `ReadSizes` outputs answered.
    pub reads: u32,
}

/// The harness with the tests' usual window.
pub(crate) type H = Hn<CAP>;

impl H {
    pub fn default_small() -> Self {
        H::new(small().build().unwrap())
    }
}

impl<const N: usize> Hn<N> {
    pub fn new(config: Config) -> Self {
        Hn {
            m: Machine::new(config, 7).unwrap(),
            now: Instant::ZERO,
            out: Vec::new(),
            store: BTreeMap::new(),
            reads: 0,
        }
    }

    /// Start over a store holding `records` (seq, size).
    pub fn restore(&mut self, records: &[(Seq, u32)]) -> Vec<Output> {
        self.store = records.iter().copied().collect();
        let summary = summary_of(&self.store);
        self.input(Input::Restore(summary))
    }

    /// Drain outputs, returning what came out since the last call; persists,
    /// deletes and reads of sizes are applied to `store` on the way.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut got = Vec::new();
        while let Some(o) = self.m.poll_output() {
            match o {
                Output::Persist { seq, size } => {
                    // The store keeps the critical flag with the record.
                    let flag = match self.m.pending_critical(seq) {
                        Some(true) => crate::CRITICAL,
                        _ => 0,
                    };
                    self.store.insert(seq, size | flag);
                }
                Output::Discard { seq } => {
                    self.store.insert(seq, crate::DISCARDED);
                }
                Output::Delete { through } => self.store.retain(|s, _| *s > through),
                Output::ReadSizes { from, max } => {
                    self.reads += 1;
                    assert!(
                        max as usize <= N,
                        "asked for more sizes than the window holds"
                    );
                    // Like a store under the contract: one size per number,
                    // a HOLE for a number without a record, up to the end.
                    let last = self.store.keys().next_back().copied();
                    let sizes: Vec<(Seq, u32)> = (from..from + u64::from(max))
                        .take_while(|s| last.is_some_and(|l| *s <= l))
                        .map(|s| (s, self.store.get(&s).copied().unwrap_or(crate::HOLE)))
                        .collect();
                    for (seq, size) in sizes {
                        self.m.handle(self.now, Input::Size { seq, size }).unwrap();
                    }
                }
                _ => {}
            }
            got.push(o);
        }
        self.out.extend(got.iter().copied());
        got
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.m.handle(self.now, input).unwrap();
        self.drain()
    }

    pub fn track(&mut self, size: u32) -> Seq {
        self.m.track(self.now, size).unwrap()
    }

    pub fn track_critical(&mut self, size: u32) -> Seq {
        match self
            .m
            .handle(self.now, Input::TrackCritical { size })
            .unwrap()
        {
            crate::Accepted::Tracked(seq) => seq,
            other => panic!("a track answered {other:?}"),
        }
    }

    pub fn advance(&mut self, millis: u64) -> Vec<Output> {
        self.now = self.now.plus_millis(millis);
        self.input(Input::Tick)
    }

    pub fn respond(&mut self, batch: &Batch, status: u16) -> Vec<Output> {
        self.input(Input::Response {
            batch: batch.id,
            status,
            retry_after: None,
        })
    }
}

pub(crate) fn small() -> crate::ConfigBuilder {
    Config::builder()
        .max_queue_events(16)
        .max_queue_bytes(1600)
        .max_event_bytes(100)
        .max_batch_events(4)
        .max_batch_bytes(300)
        .envelope_bytes(10, 1)
}

/// The network going up or down, of a kind no policy cares about (the
/// rules tests' network; core/src/tests/network.rs tests the kinds).
pub(crate) fn network(up: bool) -> Input {
    Input::Network {
        up,
        kind: crate::NetworkKind::Unknown,
    }
}

pub(crate) fn sends(outs: &[Output]) -> Vec<Batch> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(*b),
            _ => None,
        })
        .collect()
}

pub(crate) fn one_send(outs: &[Output]) -> Batch {
    let s = sends(outs);
    assert_eq!(s.len(), 1, "expected exactly one send in {outs:?}");
    s[0]
}

/// The summary of a store holding `records` (a discarded one is no record;
/// a critical one weighs its size without the flag).
pub(crate) fn summary_of(records: &BTreeMap<Seq, u32>) -> StoreSummary {
    let intact = || records.iter().filter(|(_, &s)| s < crate::DISCARDED);
    match (intact().next(), intact().next_back()) {
        (Some((&first, _)), Some((&last, _))) => StoreSummary {
            count: intact().count() as u64,
            bytes: intact()
                .map(|(_, &s)| u64::from(crate::strip_critical(s)))
                .sum(),
            first,
            last,
        },
        _ => StoreSummary::EMPTY,
    }
}
