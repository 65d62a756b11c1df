//! One module per subcommand.

pub mod collect;
pub mod dead_letter;
pub mod deliver;
pub mod demo;
pub mod flush;
pub mod gateway;
pub mod input;
pub mod progress;
pub mod send;
pub mod status;

use std::io::Write;

/// Prints one line on stdout; a closed stdout is not an error worth dying for.
pub fn out_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one line on stderr, ignoring failures.
pub fn err_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
