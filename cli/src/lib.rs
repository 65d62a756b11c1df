//! The `outbox` command as a library: argument parsing ([`args`]), the
//! reference collector ([`collect`], also used in-process by the demo), the
//! device [`gateway`] and the subcommands. `src/main.rs` only parses, runs and maps errors to one
//! line on stderr and an exit code.

#![forbid(unsafe_code)]

pub mod args;
mod cmd;
pub mod collect;
pub mod error;
pub mod gateway;
pub mod printable;

pub use error::{exit, CliError, CliResult};

/// Runs one parsed command line.
pub fn run(cli: args::Cli) -> CliResult {
    use args::Command;
    if matches!(
        cli.command,
        Command::Send(_) | Command::Flush(_) | Command::Status(_) | Command::DeadLetter(_)
    ) {
        cmd::db_key::check()?;
    }
    match cli.command {
        Command::Send(a) => cmd::send::run(a),
        Command::Flush(a) => cmd::flush::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::DeadLetter(a) => cmd::dead_letter::run(a),
        Command::Collect(a) => cmd::collect::run(a),
        Command::Gateway(a) => cmd::gateway::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    }
}
