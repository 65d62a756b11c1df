//! The bench: outbox against its peers and the machine's limits, side by
//! side in one run.
//!
//! The machine is shared and noisy, so every figure that is judged is a
//! ratio of two things measured in the same run: contenders alternate
//! within each repetition and each figure is the median of the
//! repetitions. Absolute numbers are printed for context only. A row that
//! cannot be measured yet says `not measured` (and `n/a` in the ratios
//! line); no figure is ever filled in by hand.

mod chart;
mod collector;
mod core_row;
mod e2e;
mod events;
mod flash;
mod restart;
mod store;
mod table;
mod track_rss;

use std::time::{Duration, Instant};

pub use chart::write_svg;
pub use restart::hold_child;
pub use table::{Line, Ratios};
pub use track_rss::track_child;

/// The bench's rows, in the order they run and print.
pub const ROWS: [&str; 7] = [
    "store", "e2e", "flash", "core", "restart", "rss", "trackrss",
];

/// What to run and how big.
#[derive(Clone, Debug)]
pub struct Options {
    /// Smaller counts (the whole run under a minute).
    pub quick: bool,
    /// Rows to run (every row when empty).
    pub only: Vec<String>,
    /// Pending events for the restart and memory rows (default: 10 million,
    /// 1 million with `quick`); another count is shown but not judged.
    pub restart_events: Option<u64>,
}

impl Options {
    fn wants(&self, row: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|r| r == row)
    }

    fn reps(&self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }
}

/// Run the rows `options` asks for, printing each line as it is measured;
/// returns every line and the ratios.
pub fn run(options: &Options) -> (Vec<Line>, Ratios) {
    let mut lines = Vec::new();
    let mut ratios = Ratios::default();
    table::print_header();
    let mut emit = |new: Vec<Line>| {
        for l in &new {
            table::print_line(l);
        }
        lines.extend(new);
    };
    if options.wants("store") {
        emit(store::run(options, &mut ratios));
    }
    if options.wants("e2e") {
        emit(e2e::run(options, &mut ratios));
    }
    if options.wants("flash") {
        emit(flash::run(options, &mut ratios));
    }
    if options.wants("core") {
        emit(core_row::run(options, &mut ratios));
    }
    if options.wants("restart") || options.wants("rss") {
        emit(restart::run(options, &mut ratios));
    }
    if options.wants("trackrss") {
        emit(track_rss::run(options, &mut ratios));
    }
    (lines, ratios)
}

/// The median of `xs` (the mean of the middle two for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty(), "median of nothing");
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Events per second for `count` events in `elapsed`.
fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// An uploader that answers every batch 200 (for the rows that never
/// upload: their Clients flush manually and are never asked to).
fn accept_all(_: &outbox_std::BatchBody) -> Result<outbox_std::Response, outbox_std::UploadFailed> {
    Ok(outbox_std::Response {
        status: 200,
        retry_after: None,
    })
}

/// Time `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
