//! The notifications waiting between two drains, in 16 bytes each.
//!
//! `Output` is 40 bytes (a `Send` carries a whole batch), but a waiting
//! notification never is a send, a persist or a delete (those are derived
//! from the machine's state when polled). Packing the rest keeps the
//! machine's fixed state small on a microcontroller.

use heapless::Deque;

use crate::output::{DropReason, HaltReason, Output, RejectReason, RetryCause};
use crate::{Instant, Seq};

/// Notifications that can wait in line between two drains. Each input queues
/// at most one (a track that overflows queues one `Dropped`), so a caller
/// that drains after every input never loses one.
pub(crate) const NOTE_CAPACITY: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
struct Note {
    kind: u8,
    detail: u8,
    status: u16,
    /// A count, or an attempt number.
    n: u32,
    /// A sequence number, or an instant.
    at: u64,
}

const DELIVERED: u8 = 1;
const DROPPED: u8 = 2;
const REJECTED: u8 = 3;
const HALTED: u8 = 4;
const RETRY: u8 = 5;

fn pack(o: Output) -> Option<Note> {
    let span =
        |first: Seq, last: Seq| u32::try_from(last.saturating_sub(first) + 1).unwrap_or(u32::MAX);
    Some(match o {
        Output::Delivered { first, last } => Note {
            kind: DELIVERED,
            n: span(first, last),
            at: first,
            ..Note::default()
        },
        Output::Dropped {
            first,
            last,
            reason,
        } => Note {
            kind: DROPPED,
            detail: match reason {
                DropReason::Overflow => 0,
                DropReason::MaxAttempts => 1,
                DropReason::NotStored => 2,
                DropReason::Damaged => 3,
                DropReason::Expired => 4,
            },
            n: span(first, last),
            at: first,
            ..Note::default()
        },
        Output::Rejected {
            seq,
            status,
            reason,
        } => Note {
            kind: REJECTED,
            detail: match reason {
                RejectReason::Poison => 0,
                RejectReason::TooLarge => 1,
                RejectReason::Malformed => 2,
            },
            status,
            at: seq,
            ..Note::default()
        },
        Output::Halted { status, reason } => Note {
            kind: HALTED,
            detail: match reason {
                HaltReason::Status => 0,
                HaltReason::RejectionStorm => 1,
                HaltReason::Storage => 2,
            },
            status,
            ..Note::default()
        },
        Output::RetryScheduled { at, attempt, cause } => Note {
            kind: RETRY,
            detail: match cause {
                RetryCause::Transport => 0,
                RetryCause::Server => 1,
                RetryCause::Local => 2,
            },
            n: attempt,
            at: at.as_millis(),
            ..Note::default()
        },
        Output::Persist { .. }
        | Output::Commit
        | Output::Discard { .. }
        | Output::ReadSizes { .. }
        | Output::Delete { .. }
        | Output::Send(_) => return None,
        #[cfg(feature = "expiry")]
        Output::FindFresh { .. } => return None,
    })
}

fn unpack(n: Note) -> Output {
    let last = n.at.saturating_add(u64::from(n.n.max(1)) - 1);
    match n.kind {
        DELIVERED => Output::Delivered { first: n.at, last },
        DROPPED => Output::Dropped {
            first: n.at,
            last,
            reason: match n.detail {
                0 => DropReason::Overflow,
                1 => DropReason::MaxAttempts,
                3 => DropReason::Damaged,
                #[cfg(feature = "expiry")]
                4 => DropReason::Expired,
                _ => DropReason::NotStored,
            },
        },
        REJECTED => Output::Rejected {
            seq: n.at,
            status: n.status,
            reason: match n.detail {
                0 => RejectReason::Poison,
                1 => RejectReason::TooLarge,
                _ => RejectReason::Malformed,
            },
        },
        HALTED => Output::Halted {
            status: n.status,
            reason: match n.detail {
                0 => HaltReason::Status,
                1 => HaltReason::RejectionStorm,
                _ => HaltReason::Storage,
            },
        },
        _ => Output::RetryScheduled {
            at: Instant::from_millis(n.at),
            attempt: n.n,
            cause: match n.detail {
                0 => RetryCause::Transport,
                1 => RetryCause::Server,
                _ => RetryCause::Local,
            },
        },
    }
}

/// A fixed queue of packed notifications.
#[derive(Clone, Debug)]
pub(crate) struct Notes {
    queue: Deque<Note, NOTE_CAPACITY>,
}

impl Notes {
    pub(crate) const fn new() -> Self {
        Notes {
            queue: Deque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Notifications that can still be queued without losing one.
    pub(crate) fn room(&self) -> usize {
        NOTE_CAPACITY - self.queue.len()
    }

    /// Queue `o`; when full, the oldest is lost and `false` is returned.
    ///
    /// A drop that continues the newest waiting drop (same reason, next
    /// sequence number) extends it instead: restoring a store over limits
    /// that shrank drops record after record before anyone can drain.
    pub(crate) fn push(&mut self, o: Output) -> bool {
        let Some(note) = pack(o) else { return true };
        if let Some(back) = self.queue.back_mut() {
            if note.kind == DROPPED
                && back.kind == DROPPED
                && back.detail == note.detail
                && back.at.checked_add(u64::from(back.n)) == Some(note.at)
            {
                back.n = back.n.saturating_add(note.n);
                return true;
            }
        }
        let kept_all = !self.queue.is_full();
        if !kept_all {
            self.queue.pop_front();
        }
        // Room was made just above.
        let _ = self.queue.push_back(note);
        kept_all
    }

    pub(crate) fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front().map(unpack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notification_round_trips() {
        let all = [
            Output::Delivered { first: 3, last: 9 },
            Output::Dropped {
                first: 0,
                last: 0,
                reason: DropReason::Overflow,
            },
            Output::Dropped {
                first: 5,
                last: 6,
                reason: DropReason::MaxAttempts,
            },
            Output::Dropped {
                first: 7,
                last: 8,
                reason: DropReason::NotStored,
            },
            Output::Dropped {
                first: 9,
                last: 12,
                reason: DropReason::Damaged,
            },
            Output::Rejected {
                seq: 4,
                status: 400,
                reason: RejectReason::Poison,
            },
            Output::Rejected {
                seq: 4,
                status: 413,
                reason: RejectReason::TooLarge,
            },
            Output::Rejected {
                seq: 4,
                status: 0,
                reason: RejectReason::Malformed,
            },
            Output::Halted {
                status: 403,
                reason: HaltReason::Status,
            },
            Output::Halted {
                status: 400,
                reason: HaltReason::RejectionStorm,
            },
            Output::Halted {
                status: 0,
                reason: HaltReason::Storage,
            },
            Output::RetryScheduled {
                at: Instant::from_millis(5),
                attempt: 0,
                cause: RetryCause::Local,
            },
            Output::RetryScheduled {
                at: Instant::from_millis(99),
                attempt: 3,
                cause: RetryCause::Server,
            },
            Output::RetryScheduled {
                at: Instant::from_millis(1),
                attempt: 1,
                cause: RetryCause::Transport,
            },
        ];
        let mut notes = Notes::new();
        for o in all {
            assert!(notes.push(o));
            let got = notes.pop();
            assert_eq!(got, Some(o));
        }
        assert_eq!(core::mem::size_of::<Note>(), 16);
    }

    #[test]
    fn overflow_keeps_the_newest() {
        let mut notes = Notes::new();
        for i in 0..6 {
            let kept = notes.push(Output::Halted {
                status: i,
                reason: HaltReason::Status,
            });
            assert_eq!(kept, i < 4);
        }
        assert_eq!(
            notes.pop(),
            Some(Output::Halted {
                status: 2,
                reason: HaltReason::Status
            })
        );
    }
}
