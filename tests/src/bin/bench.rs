//! outbox against its peers and the machine's limits, side by side in one run.
//!
//! ```text
//! bench [--quick] [--only ROW[,ROW...]] [--restart-events N] [--svg PATH]
//! ```
//!
//! Rows: store, e2e, flash, core, restart, rss, trackrss. Prints a table as
//! it goes and ends with the `ratios:` line; `n/a` marks a figure not
//! measured in this run. The ratios are also drawn against their goals as
//! an SVG bar chart, at PATH (default `target/bench-ratios.svg`). `--quick` finishes in under a minute with smaller counts; the
//! full run takes a few minutes. `--restart-events N` opens the restart and
//! memory rows on N pending events instead (shown, not judged).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use outbox_tests::bench::{self, Options, ROWS};

fn usage(problem: &str) -> ExitCode {
    eprintln!("bench: {problem}");
    eprintln!("usage: bench [--quick] [--only ROW[,ROW...]] [--restart-events N] [--svg PATH]");
    eprintln!("rows: {}", ROWS.join(", "));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The child process of the restart and memory rows.
    if args.first().map(String::as_str) == Some("__hold") {
        let (Some(db), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse().ok()))
        else {
            return usage("__hold <db> <count>");
        };
        return match bench::hold_child(Path::new(db), count) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench __hold: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The child process of the track-rss row.
    if args.first().map(String::as_str) == Some("__track") {
        let (Some(db), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse().ok()))
        else {
            return usage("__track <db> <count>");
        };
        return match bench::track_child(Path::new(db), count) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench __track: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut options = Options {
        quick: false,
        only: Vec::new(),
        restart_events: None,
    };
    let mut svg = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/bench-ratios.svg"
    ));
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => options.quick = true,
            "--only" => {
                let Some(list) = it.next() else {
                    return usage("--only needs a row list");
                };
                for row in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    if !ROWS.contains(&row) {
                        return usage(&format!("unknown row {row:?}"));
                    }
                    options.only.push(row.to_string());
                }
            }
            "--restart-events" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => options.restart_events = Some(n),
                None => return usage("--restart-events needs a number"),
            },
            "--svg" => match it.next() {
                Some(p) => svg = PathBuf::from(p),
                None => return usage("--svg needs a path"),
            },
            "-h" | "--help" => {
                println!("usage: bench [--quick] [--only ROW[,ROW...]] [--restart-events N] [--svg PATH]");
                println!("rows: {}", ROWS.join(", "));
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let started = std::time::Instant::now();
    let (_lines, ratios) = bench::run(&options);
    println!(
        "({} run, {:.0} s)",
        if options.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64()
    );
    match bench::write_svg(&ratios, &svg) {
        Ok(()) => println!("(chart: {})", svg.display()),
        Err(e) => eprintln!("bench: {e}"),
    }
    println!("{ratios}");
    ExitCode::SUCCESS
}
