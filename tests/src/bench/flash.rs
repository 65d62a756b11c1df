//! Row `flash`: outbox's NOR flash queue against sequential-storage's queue
//! on the same simulated flash. Not measured until the flash queue exists.

use super::table::{Line, Ratios};
use super::Options;

/// Run the row; sets D and E once it can be measured.
pub fn run(_o: &Options, _ratios: &mut Ratios) -> Vec<Line> {
    let why = "outbox's flash queue is not in this tree yet";
    vec![
        Line::not_measured("flash", "outbox flash queue: bytes, erases / event", why),
        Line::not_measured("flash", "sequential-storage queue: same workload", why),
    ]
}
