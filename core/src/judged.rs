//! The machine's outputs in the terms of `outbox-judge`, the rules the
//! simulator, the proptest model and the fuzz targets judge the machine by
//! (testing only: behind the `_judge` feature, outside semver).
//!
//! The judge cannot name the machine's types, so it cannot read its
//! counters; this is the one place that translates what the machine says.

use outbox_judge::{Cause, Halt, Seen, Why};

use crate::{DropReason, HaltReason, Output, RejectReason, RetryCause};

/// What the judge is shown of `output` (`None`: nothing to judge).
pub fn seen(output: &Output) -> Option<Seen> {
    Some(match *output {
        Output::Persist { seq, size } => Seen::Persist { seq, size },
        Output::Delete { .. } | Output::Commit | Output::Discard { .. } => return None,
        Output::ReadSizes { from, .. } => Seen::ReadSizes { from },
        #[cfg(feature = "expiry")]
        Output::FindFresh { .. } => return None,
        Output::Send(b) => Seen::Sent {
            first: b.first,
            last: b.last,
            count: b.count,
        },
        Output::Delivered { first, last } => Seen::Delivered { first, last },
        Output::Dropped {
            first,
            last,
            reason,
        } => Seen::Dropped {
            first,
            last,
            why: match reason {
                DropReason::Overflow => Why::Overflow,
                DropReason::MaxAttempts => Why::MaxAttempts,
                DropReason::NotStored => Why::NotStored,
                DropReason::Damaged => Why::Damaged,
                DropReason::Expired => Why::Expired,
            },
        },
        Output::Rejected {
            seq,
            reason: RejectReason::Malformed,
            ..
        } => Seen::Damaged { seq },
        Output::Rejected {
            seq,
            status,
            reason,
        } => Seen::Rejected {
            seq,
            status,
            too_large: reason == RejectReason::TooLarge,
        },
        Output::Halted { status, reason } => Seen::Halted {
            status,
            why: match reason {
                HaltReason::Status => Halt::Status,
                HaltReason::RejectionStorm => Halt::Storm,
                HaltReason::Storage => Halt::Storage,
            },
        },
        Output::RetryScheduled { at, attempt, cause } => Seen::Retry {
            at: at.as_millis(),
            cause: match cause {
                RetryCause::Transport => Cause::Transport,
                RetryCause::Server => Cause::Server,
                RetryCause::Local => Cause::Local,
            },
            attempt,
        },
    })
}
