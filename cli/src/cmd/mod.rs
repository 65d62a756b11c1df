//! One module per subcommand.

pub mod collect;
pub mod db_key;
pub mod dead_letter;
pub mod deadline;
pub mod deliver;
pub mod demo;
pub mod flush;
pub mod gateway;
pub mod guard;
pub mod input;
pub mod progress;
pub mod send;
pub mod status;

use std::io::Write;

/// Prints one line on stdout (without a URL's credentials); a closed stdout
/// is not an error worth dying for.
pub fn out_line(line: &str) {
    let line = crate::printable::strip_userinfo(line);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one line on stderr (without a URL's credentials), ignoring failures.
pub fn err_line(line: &str) {
    let line = crate::printable::strip_userinfo(line);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
