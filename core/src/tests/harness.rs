//! A tiny driver for tests: inputs in, outputs recorded.

use std::vec::Vec;

use crate::{Batch, Config, Input, Instant, Machine, Output, Seq};

pub(crate) const CAP: usize = 64;

pub(crate) struct H {
    pub m: Machine<CAP>,
    pub now: Instant,
    pub out: Vec<Output>,
}

impl H {
    pub fn new(config: Config) -> Self {
        H {
            m: Machine::new(config, 7).unwrap(),
            now: Instant::ZERO,
            out: Vec::new(),
        }
    }

    pub fn default_small() -> Self {
        H::new(small().build().unwrap())
    }

    /// Drain outputs, returning what came out since the last call.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut got = Vec::new();
        while let Some(o) = self.m.poll_output() {
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

    pub fn advance(&mut self, millis: u64) -> Vec<Output> {
        self.now = self.now.plus_millis(millis);
        self.input(Input::Tick)
    }

    pub fn respond(&mut self, batch: &Batch, status: u16) -> Vec<Output> {
        self.input(Input::Response {
            batch: batch.id,
            status,
            retry_after_millis: None,
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
