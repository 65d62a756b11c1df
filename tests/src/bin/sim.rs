//! Deterministic simulation of outbox-core.
//!
//! ```text
//! sim [--world model|flash] [--seeds N] [--start S] [--seed S] [--steps K] [--threads T] [--verbose]
//! ```
//!
//! Runs seeds `S..S+N` (default `0..1000`) or just `--seed S`, each for `K`
//! steps (default 4000) and then healed and drained, on `T` threads (default:
//! all cores; the results do not depend on it), in the model world (the
//! default: the world's own SQLite-like store) or the flash world (the flash
//! queue on a simulated NOR flash that loses power mid-write). Prints every failing seed
//! with the invariant it broke and the command that replays it (and, with
//! `--verbose`, its step log). The last line is the summary; the exit status
//! is 0 only when no invariant broke.

use std::process::ExitCode;

use outbox_tests::sim::{run_seed_caught_in, run_seeds_in, Summary, WorldKind, DEFAULT_STEPS};

fn usage() -> ExitCode {
    eprintln!(
        "usage: sim [--world model|flash] [--seeds N] [--start S] [--seed S] [--steps K] [--threads T] [--verbose]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut seeds = 1000u64;
    let mut start = 0u64;
    let mut one = None;
    let mut steps = DEFAULT_STEPS;
    let mut verbose = false;
    let mut world = WorldKind::Model;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Option<u64> {
            let v = args.next().and_then(|v| v.parse().ok());
            if v.is_none() {
                eprintln!("sim: {name} needs a number");
            }
            v
        };
        match a.as_str() {
            "--seeds" => match num("--seeds") {
                Some(v) => seeds = v,
                None => return usage(),
            },
            "--start" => match num("--start") {
                Some(v) => start = v,
                None => return usage(),
            },
            "--seed" => match num("--seed") {
                Some(v) => one = Some(v),
                None => return usage(),
            },
            "--steps" => match num("--steps") {
                Some(v) => steps = v,
                None => return usage(),
            },
            "--threads" => match num("--threads") {
                Some(v) => threads = v as usize,
                None => return usage(),
            },
            "--world" => match args.next().as_deref() {
                Some("model") => world = WorldKind::Model,
                Some("flash") => world = WorldKind::Flash,
                _ => {
                    eprintln!("sim: --world needs model or flash");
                    return usage();
                }
            },
            "--verbose" | "-v" => verbose = true,
            "--help" | "-h" => {
                usage();
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    // A panic is reported as a violation of invariant 4, not printed raw.
    std::panic::set_hook(Box::new(|_| {}));
    let summary = match one {
        Some(seed) => {
            let r = run_seed_caught_in(world, seed, steps, verbose);
            if verbose && r.violation.is_none() {
                for line in &r.log {
                    println!("{line}");
                }
            }
            let mut s = Summary::default();
            s.add(r);
            s
        }
        None => run_seeds_in(world, start..start.saturating_add(seeds), steps, threads),
    };
    for r in &summary.failures {
        if let Some((step, v)) = &r.violation {
            println!(
                "VIOLATION seed {} at step {step}: invariant {}: {}",
                r.seed, v.invariant, v.detail
            );
            let flag = if world == WorldKind::Flash {
                "--world flash "
            } else {
                ""
            };
            println!("  replay: cargo run --release -p outbox-tests --bin sim -- {flag}--seed {} --steps {steps} --verbose", r.seed);
            if verbose {
                let log = if r.log.is_empty() {
                    run_seed_caught_in(world, r.seed, steps, true).log
                } else {
                    r.log.clone()
                };
                for line in &log {
                    println!("{line}");
                }
            }
        }
    }
    println!("{}", summary.detail());
    println!("{}", summary.line());
    if summary.violations() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
