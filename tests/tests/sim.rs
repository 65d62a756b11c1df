//! The short simulation: 600 seeds through the real machine and driver,
//! with crashes, outages and a faulty server, and not one broken invariant.
//! (`cargo run --release -p outbox-tests --bin sim -- --seeds 100000` is
//! the long one.)

use outbox_tests::sim::{run_seed, run_seeds, run_seeds_in, Summary, WorldKind};

#[test]
fn six_hundred_seeds_break_no_invariant() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let summary = run_seeds(0..600, 1_500, threads);
    report(&summary, "");
    println!("{}", summary.line());
    assert_eq!(summary.seeds, 600);
    assert_eq!(summary.violations(), 0, "{}", summary.line());
    // The simulation exercises what it claims to.
    assert!(summary.delivered > 0 && summary.dropped > 0 && summary.rejected > 0);
    assert!(summary.duplicates > 0, "no lost response was ever re-sent");
    assert!(summary.crashes > 0);
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 96, 185] {
        let a = run_seed(seed, 800, true);
        let b = run_seed(seed, 800, true);
        assert_eq!(a.log, b.log, "seed {seed} did not replay");
        assert_eq!(
            (a.steps, a.events, a.delivered, a.duplicates),
            (b.steps, b.events, b.delivered, b.duplicates)
        );
        // Logging does not change the run.
        let quiet = run_seed(seed, 800, false);
        assert_eq!((quiet.steps, quiet.events), (a.steps, a.events));
    }
}

#[test]
fn the_seeds_that_found_core_bugs_pass() {
    // 96: a 400 for a batch shrunk by overflow blamed the survivor.
    // 185: drops during a restore over shrunk limits went unreported.
    // 7943, 8415 (judge): behind a critical head the machine dropped one
    // newer, bigger event that made the room alone, where the judge had
    // named two older ones ("5-drop: overflow not reported"); 18297
    // (judge): three smaller ones stood in for one bigger hidden one.
    // 9254: a terminate in AppClose over a queue of discards alone made a
    // request that stood for the next track.
    // 297: a retry's narrowed range expired in one poll and its end cut
    // the next batch to nothing (one event counted as 0 bytes).
    for seed in [96, 185, 297, 7943, 8415, 9254, 18297] {
        let r = run_seed(seed, 2_500, false);
        assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
    }
}

#[test]
fn the_flash_world_breaks_no_invariant_through_power_cuts() {
    // The flash queue on a simulated NOR flash that loses power part-way
    // through a write or an erase; reopened after every crash and held
    // against the ledger.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let summary = run_seeds_in(WorldKind::Flash, 0..300, 1_500, threads);
    report(&summary, "--world flash ");
    println!("{}\n{}", summary.detail(), summary.line());
    assert_eq!(summary.seeds, 300);
    // Bit rot happened and cost records: the ledger judged real damage.
    let [flips, rotted, _] = summary.rot;
    assert!(flips > 0 && rotted > 0, "no bit rot: {}", summary.detail());
    assert_eq!(summary.violations(), 0, "{}", summary.line());
    assert!(summary.delivered > 0 && summary.dropped > 0 && summary.rejected > 0);
    assert!(summary.duplicates > 0 && summary.crashes > 0);
}

/// Print each failing seed with the command that replays it.
fn report(summary: &Summary, world_flag: &str) {
    for r in &summary.failures {
        let (step, v) = r.violation.as_ref().expect("failures have a violation");
        eprintln!(
            "seed {} step {step}: invariant {}: {}\n  replay: cargo run --release -p outbox-tests --bin sim -- {world_flag}--seed {} --verbose",
            r.seed, v.invariant, v.detail, r.seed
        );
    }
}
