//! `outbox flush`.

use crate::error::{CliError, CliResult};

/// Runs the subcommand.
pub fn run<A>(_args: A) -> CliResult {
    Err(CliError::failure(
        "`outbox flush` is not built yet: it waits for outbox-std's Client",
    ))
}
