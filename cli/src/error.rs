//! One error type for every subcommand: a message printed as one line on
//! stderr, and the exit code that goes with it.

use std::fmt;

/// Exit codes of the `outbox` command.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: i32 = 0;
    /// It failed: unreachable endpoint, wrong key, unreadable database, ...
    pub const FAILURE: i32 = 1;
    /// The command line is wrong (unknown flag, bad value).
    pub const USAGE: i32 = 2;
    /// Time ran out (`--timeout`, or without it the bound of
    /// `cmd::deadline`) with events still queued; they stay stored for the
    /// next `send` or `flush`.
    pub const QUEUED: i32 = 3;
    /// `send --strict` met a bad input line, or no input line was valid.
    pub const BAD_INPUT: i32 = 4;
}

/// A failure to report: one line, one exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The exit code.
    pub code: i32,
    /// The line to print (without the `outbox: ` prefix).
    pub message: String,
}

impl CliError {
    /// A general failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: exit::FAILURE,
            message: message.into(),
        }
    }

    /// A bad command line (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    /// Events are still queued (exit 3).
    pub fn queued(message: impl Into<String>) -> Self {
        CliError {
            code: exit::QUEUED,
            message: message.into(),
        }
    }

    /// A bad input line under `--strict` (exit 4).
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            code: exit::BAD_INPUT,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it to one line whatever the source said, and never show the
        // credentials of a URL.
        let line: String = crate::printable::strip_userinfo(&self.message)
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        f.write_str(line.trim())
    }
}

impl std::error::Error for CliError {}

/// The result of a subcommand.
pub type CliResult<T = ()> = Result<T, CliError>;
