//! Record a random run as postcard bytes, replay it, get the same outputs.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Config, FlushMode, Input, Instant, Lifecycle, Machine, Output};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Trace {
    seed: u64,
    config: Config,
    inputs: Vec<(Instant, Input)>,
}

/// Run `inputs`, draining after each; the answers to batches come from the
/// trace itself (a `Response` names a batch id), so a replay is exact.
fn outputs_of(trace: &Trace) -> Vec<Output> {
    let mut m: Machine<64> = Machine::new(trace.config, trace.seed).unwrap();
    let mut out = Vec::new();
    for (now, input) in &trace.inputs {
        let _ = m.handle(*now, *input);
        while let Some(o) = m.poll_output() {
            out.push(o);
        }
    }
    out
}

/// Make a random run whose responses answer the batches it sends.
fn record(seed: u64, choices: &[u8]) -> Trace {
    let config = Config::builder()
        .max_queue_events(64)
        .max_batch_events(5)
        .max_attempts(Some(6))
        .build()
        .unwrap();
    let mut m: Machine<64> = Machine::new(config, seed).unwrap();
    let mut inputs = Vec::new();
    let mut now = Instant::ZERO;
    for &c in choices {
        let input = match c % 12 {
            0..=3 => Input::Track {
                size: u32::from(c) * 7,
            },
            4 | 5 => match m.in_flight() {
                Some(b) => Input::Response {
                    batch: b.id,
                    status: [200, 400, 413, 429, 500, 401][usize::from(c / 12) % 6],
                    retry_after: (c & 1 == 0)
                        .then(|| core::time::Duration::from_millis(u64::from(c) * 50)),
                },
                None => Input::Flush,
            },
            6 => match m.in_flight() {
                Some(b) => Input::TransportFailed { batch: b.id },
                None => Input::Tick,
            },
            7 => {
                now = now.plus_millis(u64::from(c) * 97);
                Input::Tick
            }
            8 if c & 32 == 0 => Input::PowerSave(c & 64 == 0),
            8 => Input::Network {
                up: c & 16 == 0,
                kind: [
                    crate::NetworkKind::Unmetered,
                    crate::NetworkKind::Metered,
                    crate::NetworkKind::Unknown,
                ][usize::from(c) % 3],
            },
            9 => Input::Lifecycle(
                [
                    Lifecycle::Foreground,
                    Lifecycle::Background,
                    Lifecycle::Terminate,
                ][usize::from(c) % 3],
            ),
            10 => Input::SetFlushMode(
                [
                    FlushMode::Immediate,
                    FlushMode::Manual,
                    FlushMode::AppClose,
                    FlushMode::Period,
                ][usize::from(c / 12) % 4],
            ),
            _ => Input::Resume,
        };
        let _ = m.handle(now, input);
        while m.poll_output().is_some() {}
        inputs.push((now, input));
    }
    Trace {
        seed,
        config,
        inputs,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn recorded_trace_replays_to_the_same_outputs(seed in any::<u64>(), choices in prop::collection::vec(any::<u8>(), 50..400)) {
        let trace = record(seed, &choices);
        let bytes = postcard::to_stdvec(&trace).unwrap();
        let replayed: Trace = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&replayed, &trace);
        let first = outputs_of(&trace);
        let second = outputs_of(&replayed);
        prop_assert!(!first.is_empty());
        prop_assert_eq!(&first, &second);

        // The same run through the crate's own entry codec, into one buffer.
        let mut log = vec![0u8; trace.inputs.len() * crate::trace::MAX_ENTRY_BYTES];
        let mut used = 0;
        for (now, input) in &trace.inputs {
            let entry = crate::trace::TraceEntry { now: *now, input: *input };
            used += crate::trace::encode_entry(&entry, &mut log[used..]).unwrap().len();
        }
        let mut rest = &log[..used];
        let mut decoded = Vec::new();
        while !rest.is_empty() {
            let (entry, tail) = crate::trace::decode_entry(rest).unwrap();
            decoded.push((entry.now, entry.input));
            rest = tail;
        }
        let third = outputs_of(&Trace { seed: trace.seed, config: trace.config, inputs: decoded });
        prop_assert_eq!(first, third);
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = crate::trace::decode_entry(&bytes);
    }
}

#[test]
fn a_different_seed_changes_only_the_jitter() {
    let choices: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    let a = record(1, &choices);
    let mut b = record(1, &choices);
    assert_eq!(outputs_of(&a), outputs_of(&b));
    b.seed = 2;
    let differs = outputs_of(&a)
        .iter()
        .zip(outputs_of(&b).iter())
        .any(|(x, y)| x != y);
    assert!(differs, "retry times depend on the seed");
}
