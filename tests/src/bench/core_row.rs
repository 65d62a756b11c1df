//! Row `core`: machine inputs per second over track → send → 2xx cycles
//! with batches of 500, no I/O: 500 `Track` inputs, a `Flush`, the `Send`
//! output, a 200 `Response`, every output drained.

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use outbox_core::{Config, FlushMode, Input, Instant, Machine, Output};

use super::table::{Line, Ratios};
use super::{median, Options};

const BATCH: u32 = 500;

/// Cycles for about `budget`; machine inputs per second.
fn cycles(budget: Duration) -> f64 {
    let config = Config::builder()
        .flush_mode(FlushMode::Manual)
        .max_queue_events(1000)
        .max_batch_events(BATCH)
        .build()
        .expect("core config");
    let mut m = Machine::<1024>::new(config, 7).expect("machine");
    let mut inputs = 0u64;
    let mut now = Instant::ZERO;
    let start = StdInstant::now();
    while start.elapsed() < budget {
        for _ in 0..100 {
            for _ in 0..BATCH {
                m.handle(now, Input::Track { size: 300 }).expect("track");
                while let Some(o) = m.poll_output() {
                    black_box(o);
                }
            }
            m.handle(now, Input::Flush).expect("flush");
            let mut batch = None;
            while let Some(o) = m.poll_output() {
                if let Output::Send(b) = o {
                    batch = Some(b);
                }
            }
            let batch = batch.expect("a batch of 500");
            assert_eq!(batch.count, BATCH);
            m.handle(
                now,
                Input::Response {
                    batch: batch.id,
                    status: 200,
                    retry_after: None,
                },
            )
            .expect("response");
            while let Some(o) = m.poll_output() {
                black_box(o);
            }
            inputs += u64::from(BATCH) + 2;
            now = Instant::from_millis(now.as_millis() + 1);
        }
    }
    assert_eq!(m.stats().pending_events, 0);
    inputs as f64 / start.elapsed().as_secs_f64()
}

/// Run the row; sets F.
pub fn run(o: &Options, ratios: &mut Ratios) -> Vec<Line> {
    let budget = Duration::from_millis(if o.quick { 300 } else { 1000 });
    let runs: Vec<f64> = (0..o.reps()).map(|_| cycles(budget) / 1e6).collect();
    let f = median(runs.clone());
    ratios.core_minputs_per_s = Some(f);
    let size = std::mem::size_of::<Machine<1024>>();
    vec![Line::measured(
        "core",
        "machine, track->send->2xx, batches of 500",
        format!("{f:.1} M inputs/s"),
        format!("{} reps; size_of::<Machine<1024>>() = {size} B", runs.len()),
    )]
}
