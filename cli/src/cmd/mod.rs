//! One module per subcommand.

pub mod collect;
pub mod dead_letter;
pub mod demo;
pub mod flush;
pub mod send;
pub mod status;

use std::io::Write;

/// Prints one line on stdout; a closed stdout is not an error worth dying for.
pub fn out_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
