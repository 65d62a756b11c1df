//! Errors the machine returns for one input. Outside data never panics; it
//! lands here.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::Seq;

/// Why an input was refused. Nothing changed in the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum InputError {
    /// A tracked event is over `max_event_bytes`; it was not stored.
    TooLarge {
        /// The event's size.
        size: u32,
        /// The limit.
        max: u32,
    },
    /// The queue is full and the overflow policy is `RejectNew`.
    QueueFull,
    /// A restored record is not after everything already known.
    RestoreOutOfOrder {
        /// The record's sequence number.
        seq: Seq,
        /// The smallest acceptable sequence number.
        expected_at_least: Seq,
    },
    /// A restored summary's newest record is older than its oldest.
    RestoreGap {
        /// The record's sequence number.
        seq: Seq,
        /// The sequence number it should have had.
        expected: Seq,
    },
    /// A restored record's sequence number is beyond [`MAX_SEQ`](crate::MAX_SEQ).
    RestoreOutOfRange {
        /// The record's sequence number.
        seq: Seq,
    },
    /// A restored summary counts more intact records than its range has
    /// numbers (`last - first + 1`).
    RestoreCount {
        /// The records it counts.
        count: u64,
        /// The numbers from its first to its last record.
        span: u64,
    },
    /// Sequence numbers are used up (after 2^63 events).
    SeqExhausted,
    /// More than `N` events were tracked without draining the outputs (their
    /// sizes would leave the window before being committed). Drain
    /// [`Machine::poll_output`](crate::Machine::poll_output) after every input.
    Undrained,
    /// A configuration change was refused.
    Config(ConfigError),
    /// A critical track on a build without the `critical` feature: refused,
    /// nothing stored (never tracked without the flag).
    CriticalUnsupported,
}

/// The errors of tracking one event.
pub type TrackError = InputError;

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::TooLarge { size, max } => {
                write!(
                    f,
                    "event of {size} bytes is over the {max}-byte limit; not stored"
                )
            }
            InputError::QueueFull => f.write_str("queue is full (overflow policy RejectNew)"),
            InputError::RestoreOutOfOrder {
                seq,
                expected_at_least,
            } => write!(
                f,
                "restored record {seq} is out of order (expected {expected_at_least} or later)"
            ),
            InputError::RestoreGap { seq, expected } => {
                write!(
                    f,
                    "restored record {seq} leaves a gap (expected {expected})"
                )
            }
            InputError::RestoreOutOfRange { seq } => {
                write!(
                    f,
                    "restored record {seq} is beyond the largest sequence number"
                )
            }
            InputError::RestoreCount { count, span } => write!(
                f,
                "restored summary counts {count} records in a range of {span} numbers"
            ),
            InputError::SeqExhausted => f.write_str("sequence numbers are used up"),
            InputError::Undrained => {
                f.write_str("too many events tracked without draining the machine's outputs")
            }
            InputError::Config(e) => write!(f, "configuration refused: {e}"),
            InputError::CriticalUnsupported => {
                f.write_str("critical events need the `critical` feature")
            }
        }
    }
}

impl core::error::Error for InputError {}

impl From<ConfigError> for InputError {
    fn from(e: ConfigError) -> Self {
        InputError::Config(e)
    }
}
